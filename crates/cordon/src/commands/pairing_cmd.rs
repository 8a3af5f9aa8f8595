//! `cordon pairing list|approve|deny|remove`: who may talk to agents through the chat
//! channels. Decisions go through `channels::pairing` (one store transaction, then a
//! `channel`/`pairing` audit record with `by: "cli"`), as the gateway's do.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use channels::pairing::{self, PairingDecision};
use config::ChannelKind;
use store::{PairingRecord, PairingStatus};

use crate::cli::PairingCommand;
use crate::setup::open_state;

/// Who decided, in the store and the audit log.
const BY: &str = "cli";

pub fn pairing(command: PairingCommand) -> Result<ExitCode> {
    let state = open_state()?;
    match command {
        PairingCommand::List { channel, json } => {
            let channel = channel.as_deref().map(channel_name).transpose()?;
            list(&state.store.pairings(channel)?, json)
        }
        PairingCommand::Approve { code, role } => {
            let role: config::ChannelRole = role.into();
            let p = pairing::decide(
                &state.store,
                &state.audit,
                &code,
                PairingDecision::Approve(role),
                BY,
            )?;
            println!(
                "approved {}: {} sender {}{} may talk to the agent as {}",
                pairing::normalise_code(&code),
                p.channel,
                p.sender,
                shown(&p),
                role.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        PairingCommand::Deny { code } => {
            let p = pairing::decide(&state.store, &state.audit, &code, PairingDecision::Deny, BY)?;
            println!(
                "denied {}: {} sender {}{} is refused; `cordon pairing remove {} {}` lets \
                 them ask again",
                pairing::normalise_code(&code),
                p.channel,
                p.sender,
                shown(&p),
                p.channel,
                p.sender
            );
            Ok(ExitCode::SUCCESS)
        }
        PairingCommand::Remove { channel, sender } => {
            let channel = channel_name(&channel)?;
            let p = pairing::remove(&state.store, &state.audit, channel, &sender, BY)?;
            println!(
                "removed the {} pairing of {} sender {}{}: they must pair again",
                p.status.as_str(),
                p.channel,
                p.sender,
                shown(&p)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A channel name from the command line, checked.
fn channel_name(name: &str) -> Result<&'static str> {
    match ChannelKind::parse(name) {
        Some(k) => Ok(k.as_str()),
        None => bail!("`{name}` is not a channel; use telegram, slack or matrix"),
    }
}

fn list(records: &[PairingRecord], json: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(records)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        writeln!(out, "no pairings")?;
        return Ok(ExitCode::SUCCESS);
    }
    for (title, wanted) in [
        ("pending", PairingStatus::Pending),
        ("approved", PairingStatus::Approved),
        ("denied", PairingStatus::Denied),
    ] {
        let group: Vec<_> = records.iter().filter(|p| p.status == wanted).collect();
        if group.is_empty() {
            continue;
        }
        writeln!(out, "{title}:")?;
        for p in group {
            let who = format!("{:<8}  {}{}", p.channel, p.sender, shown(p));
            match p.status {
                PairingStatus::Pending => {
                    let expiry = p.expires_at.as_deref().unwrap_or("?");
                    let state = if p.is_expired_now() {
                        format!("expired {expiry}")
                    } else {
                        format!("expires {expiry}")
                    };
                    writeln!(
                        out,
                        "  {}  {who}  {state}",
                        p.code.as_deref().unwrap_or("-")
                    )?
                }
                _ => writeln!(
                    out,
                    "  {who}{}  by {} at {}",
                    p.role
                        .as_deref()
                        .map(|r| format!("  role {r}"))
                        .unwrap_or_default(),
                    p.decided_by.as_deref().unwrap_or("?"),
                    p.decided_at.as_deref().unwrap_or("?")
                )?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// ` ("Name")` when the platform showed a name.
fn shown(p: &PairingRecord) -> String {
    p.sender_name
        .as_deref()
        .map(|n| format!(" ({n:?})"))
        .unwrap_or_default()
}
