//! Chat channels and triggers: the ways into an agent other than its own terminal and web
//! UI. Platform clients ([`service::ChatService`]: Telegram, Slack, Matrix) only speak
//! their protocols; the rules every platform shares — pairing, roles, labels, rate limits,
//! size caps, approvals answered in the chat — are decided once, above them.

pub mod approvals;
pub mod error;
pub mod http;
pub mod inbound;
pub mod matrix;
pub mod pairing;
pub mod service;
pub mod slack;
pub mod telegram;
pub mod webhook;

pub use approvals::{ButtonKey, Choice, PressError};
pub use error::ChannelError;
pub use inbound::{Gate, Turn, Verdict};
pub use pairing::{PairingDecision, PairingError};
pub use service::{
    BotIdentity, Button, ChatService, Conversation, FileRef, Inbound, InboundKind, Platform, Sent,
};
