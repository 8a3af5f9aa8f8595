//! What `send_message` sends through: the chat channels of the process that runs the
//! agent (`cordon serve`), attached to the runtime after it is built
//! ([`Runtime::set_messenger`]). Without one the tool is not offered.
//!
//! Guarantees asked of an implementation: it sends only to the conversation named, only
//! through the channel named, and records the message (the gateway's `channel`
//! `outbound` audit record, with the session). The decision to send was made before it
//! is called ([`crate::Runtime::perform`]): a messenger decides nothing.

use async_trait::async_trait;
use config::ChannelKind;

use crate::Runtime;

/// A way to post a message to a chat conversation.
#[async_trait]
pub trait Messenger: Send + Sync {
    /// Whether `channel` is running here (a configured channel may not be).
    fn serves(&self, channel: ChannelKind) -> bool;
    /// Send `text` to `conversation` of `channel` on behalf of `session`; the platform's
    /// id of the (last) message sent, or why it was not sent.
    async fn send(
        &self,
        session: &str,
        channel: ChannelKind,
        conversation: &str,
        text: &str,
    ) -> Result<String, String>;
}

impl Runtime {
    /// Attach the chat channels `send_message` sends through. Returns `false` when one
    /// was already attached (the first stays).
    pub fn set_messenger(&self, m: std::sync::Arc<dyn Messenger>) -> bool {
        self.ext.messenger.set(m).is_ok()
    }

    pub(crate) fn messenger(&self) -> Option<&std::sync::Arc<dyn Messenger>> {
        self.ext.messenger.get()
    }
}
