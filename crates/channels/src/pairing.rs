//! A human's pairing decisions, shared by `cordon pairing` and the gateway's
//! `/api/pairing`: approve a pending code with a role, deny it, or remove a sender's
//! pairing. Each decision is taken by the store in one transaction (a code decides one
//! pending pairing once; an expired code decides nothing) and then recorded as a
//! `channel` audit record with `action: pairing` naming who decided.
//!
//! Does not: issue codes (the inbound gate does) or check who may decide (the CLI runs
//! as the owner of the state directory; the gateway checks the token's scope).

use audit::event::{ChannelEvent, ChannelPairing};
use config::ChannelRole;
use store::{PairingRecord, PairingStatus, Store, StoreError};

/// What a human decided about a pending code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingDecision {
    /// Admit the sender with this role.
    Approve(ChannelRole),
    /// Refuse the sender; later messages are ignored.
    Deny,
}

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// No pending pairing holds the code: never issued, or already decided.
    #[error(
        "no pending pairing with code `{code}` (never issued, or already decided); \
         `cordon pairing list` shows the pending codes"
    )]
    UnknownCode { code: String },
    /// The code was issued but its hour is over: the sender must ask again.
    #[error(
        "pairing code `{code}` expired at {expired_at}; the sender gets a new code by \
         writing to the bot again"
    )]
    Expired { code: String, expired_at: String },
    /// `remove`: the sender has no pairing on that channel.
    #[error("no pairing of sender `{sender}` on channel `{channel}`")]
    NoSuchPairing { channel: String, sender: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decision was taken but could not be recorded.
    #[error("the decision was taken but not recorded in the audit log: {0}")]
    Audit(#[from] audit::AuditError),
}

/// A code as people type it: surrounding space dropped, upper-cased.
pub fn normalise_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Decide the pending pairing holding `code`, then record the decision (`by`: `cli`,
/// `gateway token ID`).
pub fn decide(
    store: &Store,
    audit: &audit::Log,
    code: &str,
    decision: PairingDecision,
    by: &str,
) -> Result<PairingRecord, PairingError> {
    let code = normalise_code(code);
    let role = match decision {
        PairingDecision::Approve(role) => Some(role.as_str()),
        PairingDecision::Deny => None,
    };
    let record = match store.decide_pairing(&code, role, by) {
        Ok(r) => r,
        Err(StoreError::NoPairing { .. }) => return Err(why_not(store, &code)?),
        Err(e) => return Err(e.into()),
    };
    audit.record_event(
        None,
        ChannelEvent::Pairing(ChannelPairing {
            channel: record.channel.clone(),
            sender: record.sender.clone(),
            decision: match decision {
                PairingDecision::Approve(_) => "approved",
                PairingDecision::Deny => "denied",
            }
            .into(),
            role: role.map(str::to_string),
            by: by.to_string(),
        }),
    )?;
    Ok(record)
}

/// Remove `sender`'s pairing of `channel` (they must pair again), then record it.
pub fn remove(
    store: &Store,
    audit: &audit::Log,
    channel: &str,
    sender: &str,
    by: &str,
) -> Result<PairingRecord, PairingError> {
    let Some(record) = store.remove_pairing(channel, sender)? else {
        return Err(PairingError::NoSuchPairing {
            channel: channel.to_string(),
            sender: sender.to_string(),
        });
    };
    audit.record_event(
        None,
        ChannelEvent::Pairing(ChannelPairing {
            channel: record.channel.clone(),
            sender: record.sender.clone(),
            decision: "removed".into(),
            role: record.role.clone(),
            by: by.to_string(),
        }),
    )?;
    Ok(record)
}

/// Why `code` decided nothing: an expired pending code, or no pending code at all.
fn why_not(store: &Store, code: &str) -> Result<PairingError, StoreError> {
    let expired = store
        .pairings(None)?
        .into_iter()
        .find(|p| p.status == PairingStatus::Pending && p.code.as_deref() == Some(code));
    Ok(match expired {
        Some(p) => PairingError::Expired {
            code: code.to_string(),
            expired_at: p.expires_at.unwrap_or_default(),
        },
        None => PairingError::UnknownCode {
            code: code.to_string(),
        },
    })
}
