//! [`ChatService`]: what Cordon needs of a chat platform, one implementation per platform
//! (`telegram.rs`, `slack.rs`, `matrix.rs`). A service only speaks its platform's protocol:
//! it turns the platform's updates into [`Inbound`] values and sends messages. Every rule
//! (pairing, roles, labels, rate limits, size caps, approvals) is decided above it, once,
//! for all platforms (`inbound.rs`), so a new platform adds no second set of rules.
//!
//! Guarantees a service keeps: identities are the platform's immutable ids (Telegram's
//! numeric user id, Slack's `U…` id, Matrix's `@user:server`), never display names; an
//! update the service cannot parse is returned as [`InboundKind::Malformed`] with the
//! reason, never dropped silently and never guessed at; `next` returns each accepted
//! update once (its cursor moves past it only after it was returned); a platform that is
//! down or answers errors is an `Err` from `next`, and the caller backs off.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ChannelError;

/// Which platform a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Telegram,
    Slack,
    Matrix,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Telegram => "telegram",
            Platform::Slack => "slack",
            Platform::Matrix => "matrix",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message was written: a direct conversation with the bot, or a group (Telegram
/// group, Slack channel, Matrix room with more than two members).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conversation {
    /// The platform's id of the conversation (Telegram chat id, Slack channel id, Matrix
    /// room id). Replies go here and nowhere else.
    pub id: String,
    pub group: bool,
}

/// One update from the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The platform's id of this update (Telegram `update_id`, Slack envelope or event id,
    /// Matrix event id): recorded, and used to drop a platform's redelivery.
    pub event_id: String,
    pub conversation: Conversation,
    /// The sender's immutable platform id; `None` only for a malformed update.
    pub sender: Option<String>,
    /// The sender's display name, for people reading records only; never for a decision.
    pub sender_name: Option<String>,
    pub kind: InboundKind,
}

/// What an update carries.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    /// A text message.
    Text {
        text: String,
        /// The bot was mentioned (`@bot` in a group).
        mentioned: bool,
        /// Forwarded from someone else: the words are not the sender's.
        forwarded: bool,
        /// The platform's preview of a link in the message (title and description),
        /// which is the linked site's words.
        link_preview: Option<String>,
    },
    /// A file (document, photo, audio…), fetched with [`ChatService::download`].
    File {
        file: FileRef,
        /// Its caption, if any.
        caption: Option<String>,
        mentioned: bool,
        forwarded: bool,
    },
    /// A press of one of the bot's buttons.
    Button {
        /// The data the bot put in the button (see `approvals.rs`).
        data: String,
        /// The platform's id of the message the button was on.
        message_id: String,
        /// What the platform needs to acknowledge the press (Telegram callback query id).
        ack: Option<String>,
    },
    /// An update the service could not read (bad JSON, a field of the wrong type, an
    /// event type it does not handle). `raw_bytes` is its size, `reason` says what.
    Malformed { reason: String, raw_bytes: usize },
}

/// A file as the platform names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The platform's handle (Telegram `file_id`, Slack `url_private`, Matrix `mxc://`).
    pub id: String,
    /// The name the sender gave it (untrusted: used only after sanitising).
    pub name: Option<String>,
    /// The size the platform announced, if it did.
    pub size: Option<u64>,
}

/// A button under a message the bot sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    /// Returned in [`InboundKind::Button`] when pressed (at most 64 bytes: Telegram's cap).
    pub data: String,
}

/// A message the bot sent, as the platform names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub conversation: String,
    pub message_id: String,
}

/// A chat platform.
#[async_trait]
pub trait ChatService: Send + Sync {
    fn platform(&self) -> Platform;

    /// Check the credentials and learn the bot's own identity (its user id, and the
    /// name it is mentioned by). Called once before `next`.
    async fn connect(&self) -> Result<BotIdentity, ChannelError>;

    /// The next updates, waiting (long poll, socket, sync) up to about `wait`. An empty
    /// vector is a quiet period. An `Err` means the platform is unreachable or refused:
    /// the caller backs off and calls again; no update is lost (the cursor did not move).
    async fn next(&self, wait: std::time::Duration) -> Result<Vec<Inbound>, ChannelError>;

    /// Send `text` (with `buttons`, if any) to `conversation`.
    async fn send(
        &self,
        conversation: &str,
        text: &str,
        buttons: &[Button],
    ) -> Result<Sent, ChannelError>;

    /// Replace the text of a message the bot sent (its buttons are removed).
    async fn edit(&self, sent: &Sent, text: &str) -> Result<(), ChannelError>;

    /// Acknowledge a button press (Telegram shows `text` as a toast); a no-op where the
    /// platform needs none.
    async fn ack_button(&self, ack: &str, text: &str) -> Result<(), ChannelError>;

    /// Fetch a file's bytes, refusing (an `Err`, nothing kept) once more than `cap`
    /// bytes arrive.
    async fn download(&self, file: &FileRef, cap: u64) -> Result<Vec<u8>, ChannelError>;

    /// Where `next` would continue from, for the caller to persist (Telegram's offset,
    /// Matrix's `since`); `None` for a platform that keeps it itself (Slack).
    fn cursor(&self) -> Option<String> {
        None
    }

    /// Continue from a cursor persisted earlier (ignored where `cursor` is `None`).
    fn resume_from(&self, _cursor: &str) {}
}

/// Who the bot is on its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: String,
    /// The name users mention it by (`@cordon_bot`), if the platform has one.
    pub mention: Option<String>,
}
