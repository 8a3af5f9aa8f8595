//! [`Gate`]: what happens to each update from a chat platform, decided once for every
//! platform, and recorded (a `channel` audit record with `action: inbound` for each).
//!
//! The rules, in order:
//! 1. An update the service could not read, or without a sender, goes nowhere.
//! 2. A sender over `rate_per_min` messages a minute goes nowhere (the flood is recorded,
//!    not answered, so it cannot be turned into a flood of replies either).
//! 3. A message longer than `max_message_bytes` is refused with a reply saying so.
//! 4. Groups: a group not in `groups` is ignored; in an allowlisted group only a message
//!    that mentions the bot goes on.
//! 5. Identity is the platform's immutable id: a role comes from `allow` in the config or
//!    an approved pairing, never from a display name. In a direct conversation an unknown
//!    sender is given a pairing code (`inbound = "pairing"`), refused (`allowlist`) or
//!    let in as `user` (`open`); their message never reaches the agent until then. A denied
//!    sender is ignored.
//! 6. Labels: only an owner's own words are the user speaking. Everything else — anyone
//!    else's message, a forwarded message (even an owner's), a link preview, a file — is
//!    untrusted content: the turn is labelled as if the agent had fetched a web page.
//! 7. A button press goes on only from an identity whose role may answer approvals
//!    (`approver` or `owner`); the approval itself is checked by `approvals.rs`.
//!
//! Does not: start turns or send anything (the caller does what the [`Verdict`] says), or
//! check a button's approval id (see [`crate::approvals`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit::event::{ChannelEvent, ChannelInbound, ChannelPairing};
use config::{ChannelConfig, ChannelKind, ChannelRole, InboundPolicy};
use store::{NewPairing, PairingRequest, PairingStatus, Store};

use crate::service::{BotIdentity, Conversation, FileRef, Inbound, InboundKind};

/// How long a pairing code decides anything.
pub const PAIRING_TTL: Duration = Duration::from_secs(3600);
/// Unexpired codes a channel holds at most; more senders are told to try later.
pub const MAX_PENDING: u32 = 3;

/// What to do with one update.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Start a turn in `conversation`'s session.
    Turn(Turn),
    /// A button press from someone who may answer approvals.
    Press {
        sender: String,
        role: ChannelRole,
        conversation: Conversation,
        data: String,
        message_id: String,
        ack: Option<String>,
        /// Its inbound record, written by the caller once the press was checked
        /// ([`Gate::record_inbound`]).
        record: ChannelInbound,
    },
    /// Reply `text` to the conversation and do nothing else.
    Reply {
        conversation: Conversation,
        text: String,
        /// What the reply is, for the record (`pairing_code`, `refusal`).
        purpose: &'static str,
    },
    /// Nothing (recorded).
    Ignore,
}

/// A turn to start. Serialisable: the gateway keeps accepted turns in the store until
/// they have run, so the gate's decision (role, labels) is kept with it, not made again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub conversation: Conversation,
    pub sender: String,
    pub role: ChannelRole,
    /// The sender's own words when they are the user speaking (an owner's message).
    pub trusted: Option<String>,
    /// Content from someone else (with its source), to be read as data.
    pub untrusted: Option<(String, String)>,
    /// A file to fetch and hand to the agent as untrusted.
    pub file: Option<FileRef>,
    /// The platform's id of the update (for records).
    pub event_id: String,
}

/// A per-sender sliding window of one minute.
struct RateLimiter {
    per_min: u32,
    seen: Mutex<HashMap<String, Vec<Instant>>>,
}

impl RateLimiter {
    fn allow(&self, sender: &str) -> bool {
        let now = Instant::now();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 100_000 {
            // Bound the table under a flood of distinct ids: forget idle senders.
            seen.retain(|_, v| {
                v.last()
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
            });
        }
        let times = seen.entry(sender.to_string()).or_default();
        times.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if times.len() >= self.per_min as usize {
            return false;
        }
        times.push(now);
        true
    }
}

/// The inbound rules of one channel; see the module docs.
pub struct Gate {
    kind: ChannelKind,
    config: ChannelConfig,
    bot: BotIdentity,
    store: Arc<Store>,
    audit: Arc<audit::Log>,
    limiter: RateLimiter,
}

impl Gate {
    pub fn new(
        kind: ChannelKind,
        config: ChannelConfig,
        bot: BotIdentity,
        store: Arc<Store>,
        audit: Arc<audit::Log>,
    ) -> Gate {
        let limiter = RateLimiter {
            per_min: config.rate_per_min,
            seen: Mutex::new(HashMap::new()),
        };
        Gate {
            kind,
            config,
            bot,
            store,
            audit,
            limiter,
        }
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// The role of `sender`: from the config's `allow`, else an approved pairing.
    pub fn role_of(&self, sender: &str) -> Result<Option<ChannelRole>, store::StoreError> {
        if let Some(who) = self.config.allow.iter().find(|w| w.id == sender) {
            return Ok(Some(who.role));
        }
        Ok(self
            .store
            .pairing(self.kind.as_str(), sender)?
            .filter(|p| p.status == PairingStatus::Approved)
            .and_then(|p| p.role.as_deref().and_then(ChannelRole::parse)))
    }

    /// Decide what `update` leads to, and record it.
    pub fn judge(&self, update: &Inbound) -> Verdict {
        let mut record = ChannelInbound {
            channel: self.kind.as_str().into(),
            event_id: update.event_id.clone(),
            conversation: update.conversation.id.clone(),
            group: update.conversation.group,
            sender: update.sender.clone(),
            kind: kind_name(&update.kind).into(),
            bytes: size_of(&update.kind),
            accepted: false,
            label: None,
            reason: None,
            session: None,
        };
        let verdict = self.decide(update, &mut record);
        match verdict {
            Verdict::Press { .. } => {}
            _ => self.record_inbound(record),
        }
        verdict
    }

    /// Record an inbound update (also used by the caller to add the session once known).
    pub fn record_inbound(&self, record: ChannelInbound) {
        if let Err(e) = self.audit.record_event(None, ChannelEvent::Inbound(record)) {
            tracing::error!(
                "channel {}: cannot record an inbound message: {e}",
                self.kind
            );
        }
    }

    fn decide(&self, update: &Inbound, record: &mut ChannelInbound) -> Verdict {
        let refuse = |record: &mut ChannelInbound, why: String| {
            record.reason = Some(why);
            Verdict::Ignore
        };
        if let InboundKind::Malformed { reason, .. } = &update.kind {
            return refuse(record, format!("malformed update: {reason}"));
        }
        let Some(sender) = update.sender.clone() else {
            return refuse(record, "the update names no sender".into());
        };
        if sender == self.bot.user_id {
            return refuse(record, "the bot's own message".into());
        }
        if !self.limiter.allow(&sender) {
            return refuse(
                record,
                format!(
                    "rate limited: more than {} messages a minute from this sender",
                    self.config.rate_per_min
                ),
            );
        }
        let conversation = update.conversation.clone();
        if record.bytes > self.config.max_message_bytes
            && !matches!(update.kind, InboundKind::File { .. })
        {
            record.reason = Some(format!(
                "message of {} bytes over max_message_bytes ({})",
                record.bytes, self.config.max_message_bytes
            ));
            return Verdict::Reply {
                conversation,
                text: format!(
                    "Your message is too long ({} bytes; the limit is {}). Nothing was done with it.",
                    record.bytes, self.config.max_message_bytes
                ),
                purpose: "refusal",
            };
        }
        let (mentioned, forwarded) = match &update.kind {
            InboundKind::Text {
                mentioned,
                forwarded,
                ..
            }
            | InboundKind::File {
                mentioned,
                forwarded,
                ..
            } => (*mentioned, *forwarded),
            _ => (false, false),
        };
        if conversation.group {
            if !self.config.groups.contains(&conversation.id) {
                return refuse(
                    record,
                    format!(
                        "group `{}` is not in channels.{}.groups",
                        conversation.id, self.kind
                    ),
                );
            }
            if !mentioned && !matches!(update.kind, InboundKind::Button { .. }) {
                return refuse(
                    record,
                    "a group message that does not mention the bot".into(),
                );
            }
        }
        let role = match self.role_of(&sender) {
            Ok(role) => role,
            Err(e) => {
                tracing::error!("channel {}: cannot read pairings: {e}", self.kind);
                return refuse(record, format!("cannot read pairings: {e}"));
            }
        };
        let role = match (role, self.config.inbound, conversation.group) {
            (Some(role), _, _) => role,
            // In an allowlisted group, members reach the agent as untrusted content.
            (None, _, true) => ChannelRole::User,
            (None, InboundPolicy::Open, false) => ChannelRole::User,
            (None, InboundPolicy::Allowlist, false) => {
                return refuse(
                    record,
                    format!("sender is not in channels.{}.allow", self.kind),
                );
            }
            (None, InboundPolicy::Pairing, false) => {
                return self.pair(&sender, update, record);
            }
        };
        if let InboundKind::Button {
            data,
            message_id,
            ack,
        } = &update.kind
        {
            if role < ChannelRole::Approver {
                return refuse(
                    record,
                    format!(
                        "a button press from role `{}`, which may not answer approvals",
                        role.as_str()
                    ),
                );
            }
            record.accepted = true;
            return Verdict::Press {
                sender,
                role,
                conversation,
                data: data.clone(),
                message_id: message_id.clone(),
                ack: ack.clone(),
                record: record.clone(),
            };
        }
        let where_ = if conversation.group {
            format!("{} group {}", self.kind, conversation.id)
        } else {
            format!("{} direct conversation", self.kind)
        };
        let source = format!("{where_} from {sender} (role {})", role.as_str());
        let mut turn = Turn {
            conversation,
            sender: sender.clone(),
            role,
            trusted: None,
            untrusted: None,
            file: None,
            event_id: update.event_id.clone(),
        };
        let owner = role == ChannelRole::Owner;
        let mut why_untrusted = Vec::new();
        match &update.kind {
            InboundKind::Text {
                text, link_preview, ..
            } => {
                let text = self.strip_mention(text);
                if owner && !forwarded {
                    turn.trusted = Some(text);
                    if let Some(preview) = link_preview {
                        why_untrusted.push("a link preview");
                        turn.untrusted =
                            Some((format!("link preview in {where_}"), preview.clone()));
                    }
                } else {
                    why_untrusted.push(if forwarded {
                        "a forwarded message"
                    } else if turn.conversation.group {
                        "a group member who is not an owner"
                    } else {
                        "a sender who is not an owner"
                    });
                    let mut content = text;
                    if let Some(preview) = link_preview {
                        content.push_str("\n\n[link preview]\n");
                        content.push_str(preview);
                    }
                    turn.untrusted = Some((source, content));
                }
            }
            InboundKind::File { file, caption, .. } => {
                if self.config.max_file_bytes == 0 {
                    record.reason = Some(format!(
                        "attachments are off (channels.{}.max_file_bytes = 0)",
                        self.kind
                    ));
                    return Verdict::Reply {
                        conversation: turn.conversation,
                        text: "Attachments are not accepted here. Nothing was done with it.".into(),
                        purpose: "refusal",
                    };
                }
                if file.size.is_some_and(|s| s > self.config.max_file_bytes) {
                    record.reason = Some(format!(
                        "file over max_file_bytes ({})",
                        self.config.max_file_bytes
                    ));
                    return Verdict::Reply {
                        conversation: turn.conversation,
                        text: format!(
                            "That file is larger than {} bytes. Nothing was done with it.",
                            self.config.max_file_bytes
                        ),
                        purpose: "refusal",
                    };
                }
                why_untrusted.push("a file");
                let caption = caption.as_deref().map(|c| self.strip_mention(c));
                if owner && !forwarded {
                    turn.trusted = caption.filter(|c| !c.is_empty());
                } else if let Some(c) = caption {
                    turn.untrusted = Some((source, c));
                }
                turn.file = Some(file.clone());
            }
            InboundKind::Button { .. } | InboundKind::Malformed { .. } => {}
        }
        record.accepted = true;
        if why_untrusted.is_empty() {
            record.label = Some("user".into());
        } else {
            record.label = Some("untrusted".into());
            record.reason = Some(format!("content from {}", why_untrusted.join(", ")));
        }
        Verdict::Turn(turn)
    }

    /// Give an unknown sender a pairing code (or the one they have), never the agent.
    fn pair(&self, sender: &str, update: &Inbound, record: &mut ChannelInbound) -> Verdict {
        let conversation = update.conversation.clone();
        let code = match new_code() {
            Ok(c) => c,
            Err(e) => {
                record.reason = Some(format!("cannot make a pairing code: {e}"));
                return Verdict::Ignore;
            }
        };
        let asked = self.store.request_pairing(&NewPairing {
            channel: self.kind.as_str(),
            sender,
            sender_name: update.sender_name.as_deref(),
            code: &code,
            ttl: PAIRING_TTL,
            max_pending: MAX_PENDING,
        });
        let (decision, reply) = match asked {
            Ok(PairingRequest::Issued(p)) | Ok(PairingRequest::Pending(p)) => {
                let code = p.code.unwrap_or_default();
                record.reason = Some("unpaired sender: given a pairing code".into());
                (
                    Some("requested"),
                    Some(format!(
                        "This bot talks only to people its owner has paired. Your pairing code is {code} \
                         (valid for an hour). Give it to the owner, who runs: cordon pairing approve {code}"
                    )),
                )
            }
            Ok(PairingRequest::TooMany) => {
                record.reason = Some(format!(
                    "unpaired sender: {MAX_PENDING} pairing codes already pending; none issued"
                ));
                (
                    Some("refused"),
                    Some("Too many pairing requests are waiting; try again later.".to_string()),
                )
            }
            Ok(PairingRequest::Decided(p)) => {
                record.reason = Some(format!("sender's pairing was {:?}", p.status).to_lowercase());
                (None, None)
            }
            Err(e) => {
                tracing::error!(
                    "channel {}: cannot record a pairing request: {e}",
                    self.kind
                );
                record.reason = Some(format!("cannot record a pairing request: {e}"));
                (None, None)
            }
        };
        if let Some(decision) = decision {
            let event = ChannelEvent::Pairing(ChannelPairing {
                channel: self.kind.as_str().into(),
                sender: sender.to_string(),
                decision: decision.into(),
                role: None,
                by: "channel".into(),
            });
            if let Err(e) = self.audit.record_event(None, event) {
                tracing::error!("channel {}: cannot record a pairing: {e}", self.kind);
            }
        }
        match reply {
            Some(text) => Verdict::Reply {
                conversation,
                text,
                purpose: "pairing_code",
            },
            None => Verdict::Ignore,
        }
    }

    /// The text without the bot's mention (`@bot`), trimmed.
    fn strip_mention(&self, text: &str) -> String {
        let mut text = text.to_string();
        if let Some(m) = &self.bot.mention {
            text = text.replace(m.as_str(), "");
        }
        text.trim().to_string()
    }
}

/// A pairing code: 8 upper-case letters and digits from the OS's random source, without
/// look-alikes (`0`/`O`, `1`/`I`). 32 symbols, so each random byte maps without bias.
pub fn new_code() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect())
}

fn kind_name(kind: &InboundKind) -> &'static str {
    match kind {
        InboundKind::Text { .. } => "text",
        InboundKind::File { .. } => "file",
        InboundKind::Button { .. } => "button",
        InboundKind::Malformed { .. } => "malformed",
    }
}

fn size_of(kind: &InboundKind) -> u64 {
    match kind {
        InboundKind::Text { text, .. } => text.len() as u64,
        InboundKind::File { file, caption, .. } => file
            .size
            .unwrap_or(caption.as_ref().map_or(0, |c| c.len() as u64)),
        InboundKind::Button { data, .. } => data.len() as u64,
        InboundKind::Malformed { raw_bytes, .. } => *raw_bytes as u64,
    }
}
