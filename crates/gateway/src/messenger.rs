//! The `send_message` tool's way out: [`runtime::Messenger`] over the running chat
//! channels. The hub attaches one [`ChatMessenger`] to every agent it builds; the channels
//! are filled in when they start ([`crate::hub::Hub::set_chats`]), so an agent built
//! before them (or in a process that runs none) is refused at the call, not at build.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use config::ChannelKind;

use crate::chat::Chats;

/// The running channels, once started.
#[derive(Default)]
pub struct ChatMessenger {
    chats: OnceLock<Arc<Chats>>,
}

impl ChatMessenger {
    /// Set the channels; `false` when already set (the first stay).
    pub fn attach(&self, chats: Arc<Chats>) -> bool {
        self.chats.set(chats).is_ok()
    }
}

#[async_trait]
impl runtime::Messenger for ChatMessenger {
    fn serves(&self, channel: ChannelKind) -> bool {
        self.chats.get().is_some_and(|c| c.runs(channel))
    }

    async fn send(
        &self,
        session: &str,
        channel: ChannelKind,
        conversation: &str,
        text: &str,
    ) -> Result<String, String> {
        let Some(chats) = self.chats.get() else {
            return Err("no chat channel runs in this process".into());
        };
        chats
            .send_message(channel, conversation, text, session)
            .await
    }
}
