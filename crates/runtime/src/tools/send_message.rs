//! `send_message`: post a message to a chat conversation (`CHANNEL:CONVERSATION`)
//! through the chat channels attached to the runtime ([`crate::Messenger`]). The answer
//! to the conversation that asked needs no tool (the gateway sends it); this one reaches
//! anyone else, so it is decided as `send_message: CHANNEL:CONVERSATION` with the
//! channel's API host: a human is asked unless the conversation is in
//! `agents.NAME.send_message.allow` and the session read nothing untrusted; a session
//! holding private data, or secret data not bound to that host, is refused (built-in
//! rule `label.message_data_unbound`).
//!
//! Refused before the guard: a channel that is not configured, or not running in this
//! process (no messenger attached: `cordon run`), and text holding a vault value.

use async_trait::async_trait;
use config::ChannelKind;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Executed, Tool, ToolOutput};
use crate::authorise::{Authorization, Refusal};
use crate::pipeline::{Cx, Failure, Stage};

/// The longest text one call may send, in bytes (the gateway splits it into the
/// platform's message size).
pub(crate) const MAX_TEXT_BYTES: usize = 16 * 1024;

pub(crate) struct SendMessage;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessageArgs {
    /// The conversation: CHANNEL:CONVERSATION, e.g. telegram:123456
    pub to: String,
    /// The message text
    pub text: String,
}

/// A message with its target checked.
pub(crate) struct Message {
    pub(crate) channel: ChannelKind,
    pub(crate) conversation: String,
    pub(crate) to: String,
    /// The channel's API host (for the data rules).
    pub(crate) host: String,
    pub(crate) text: String,
}

fn invalid(m: impl std::fmt::Display) -> Failure {
    Failure::new(
        Stage::Arguments,
        format!("invalid arguments for send_message: {m}"),
    )
}

#[async_trait]
impl Tool for SendMessage {
    type Args = SendMessageArgs;
    type Plan = Message;

    fn name(&self) -> &str {
        "send_message"
    }

    fn description(&self) -> &str {
        "Send a message to a chat conversation through a configured channel (`to` is CHANNEL:CONVERSATION, e.g. `telegram:123456`). Your answer already goes to the conversation that asked you: use this only to reach another one. A human is usually asked first; it is refused while you hold private data."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: SendMessageArgs) -> Result<Message, Failure> {
        let to = args.to.trim();
        let (channel, conversation) = to.split_once(':').ok_or_else(|| {
            invalid(format!(
                "`to` = `{to}` must be CHANNEL:CONVERSATION, e.g. `telegram:123456`"
            ))
        })?;
        let kind = ChannelKind::parse(channel).ok_or_else(|| {
            invalid(format!(
                "`{channel}` is not a channel; use telegram, slack or matrix"
            ))
        })?;
        let Some(cfg) = cx.rt.config.channels.get(&kind) else {
            return Err(invalid(format!(
                "channel `{channel}` is not configured (no [channels.{channel}])"
            )));
        };
        if conversation.is_empty()
            || conversation.len() > 256
            || conversation.chars().any(char::is_control)
        {
            return Err(invalid(
                "the conversation id must be 1-256 characters, without control characters",
            ));
        }
        if args.text.trim().is_empty() {
            return Err(invalid("`text` is empty"));
        }
        if args.text.len() > MAX_TEXT_BYTES {
            return Err(invalid(format!(
                "`text` is {} bytes; at most {MAX_TEXT_BYTES}",
                args.text.len()
            )));
        }
        let api = cfg
            .api_url
            .as_deref()
            .or(kind.default_api_url())
            .unwrap_or_default();
        let host = url::Url::parse(api)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        Ok(Message {
            channel: kind,
            conversation: conversation.to_string(),
            to: format!("{kind}:{conversation}"),
            host,
            text: args.text,
        })
    }

    fn action(&self, _cx: &Cx<'_>, m: &Message) -> Action {
        Action::SendMessage {
            to: m.to.clone(),
            host: m.host.clone(),
        }
    }

    fn refuse(&self, cx: &Cx<'_>, m: &Message) -> Option<Refusal> {
        match cx.rt.messenger() {
            Some(ms) if ms.serves(m.channel) => {}
            _ => {
                return Some(Refusal {
                    rule: "send_message.no_channel",
                    reason: format!(
                        "channel `{}` does not run in this process: messages are sent by \
                         `cordon serve` (and `cordon schedules run`)",
                        m.channel
                    ),
                });
            }
        }
        // The agent never sees a vault value; one in its text came from somewhere it
        // should not have, and does not leave through a chat either.
        let found = cx
            .rt
            .watched_secrets
            .iter()
            .find(|(_, v)| !v.is_empty() && m.text.contains(v.as_str()));
        found.map(|(name, _)| Refusal {
            rule: "send_message.secret_value",
            reason: format!("the text holds the value of secret `{name}`"),
        })
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        m: &Message,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let Some(messenger) = cx.rt.messenger() else {
            return Err(Failure::new(
                Stage::Message,
                "no chat channel runs in this process",
            ));
        };
        let id = messenger
            .send(cx.session, m.channel, &m.conversation, &m.text)
            .await
            .map_err(|e| Failure::new(Stage::Message, format!("not sent to {}: {e}", m.to)))?;
        Ok(Executed::new(
            cx,
            ToolOutput::ok(format!("sent to {} (message {id})", m.to)),
        ))
    }
}
