//! [`Telegram`]: the Bot API client behind a Telegram channel (long polling with
//! `getUpdates`, `sendMessage` with inline keyboards, `editMessageText`,
//! `answerCallbackQuery`, `getFile` and the file download).
//!
//! What it guarantees:
//! - Identity is the sender's numeric user id (`from.id`), never a name. A message written
//!   on behalf of a chat (`sender_chat`: anonymous group admins, linked channels) carries no
//!   user and is returned as [`InboundKind::Malformed`], not attributed to Telegram's shared
//!   placeholder account.
//! - The bot is mentioned only by structured data: a `mention` entity that is exactly
//!   `@<its username>` (case-insensitive, as Telegram usernames are), a `text_mention`
//!   entity carrying its user id, or a `bot_command` entity addressed `/cmd@<its username>`.
//!   Entity offsets are UTF-16 code units, as the Bot API counts them.
//! - Every update of a `getUpdates` answer is returned, readable or not (then `Malformed`
//!   naming the field or the update type), and the offset moves past an update only in the
//!   same call that returns it, so an `Err` or a dropped call loses nothing: Telegram
//!   redelivers what was not confirmed. [`Telegram::offset`] and [`Telegram::set_offset`]
//!   let the caller persist the cursor across restarts.
//! - The token appears only in request paths: errors carry the API base URL, and reqwest's
//!   errors are stripped of their URL before they are shown.
//! - Messages are sent as plain text (no `parse_mode`: the agent's words cannot become
//!   links or markup) with link previews disabled (a preview would make Telegram's servers
//!   fetch whatever URL the text holds).
//! - A download is refused before it starts when Telegram announces a size over the cap,
//!   and stopped as soon as more than the cap has arrived otherwise.
//!
//! What it does not do: webhooks, inline mode, edits of the user's messages
//! (`edited_message` is returned as `Malformed`, to be recorded), channels (`channel_post`:
//! `Malformed`), splitting text over Telegram's 4096-character cap (the server refuses it
//! and the caller sees the error), or retrying: the caller backs off (using
//! [`ChannelError::retry_after`]) and calls again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use crate::error::ChannelError;
use crate::service::{
    BotIdentity, Button, ChatService, Conversation, FileRef, Inbound, InboundKind, Platform, Sent,
};

/// The public Bot API.
pub const DEFAULT_API: &str = "https://api.telegram.org/";
/// Telegram's cap on a message's text, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Telegram's cap on a button's data, in bytes.
pub const MAX_BUTTON_DATA_BYTES: usize = 64;
/// The update types asked for. `message` and `callback_query` are what the bot handles;
/// `edited_message` and `channel_post` are asked for only so that they reach the records
/// (as `Malformed`) instead of vanishing unseen.
pub const ALLOWED_UPDATES: [&str; 4] = [
    "message",
    "edited_message",
    "channel_post",
    "callback_query",
];

const PLATFORM: &str = "telegram";
/// How much longer than the long poll a `getUpdates` request may take before it is
/// abandoned (a proxy or a slow network in between).
const POLL_GRACE: Duration = Duration::from_secs(15);
/// The timeout of every other request.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest API answer read (100 updates with long texts fit well within it).
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;
/// Buttons per keyboard row.
const BUTTONS_PER_ROW: usize = 3;
/// Telegram's answer to an edit that changes nothing.
const NOT_MODIFIED: &str = "message is not modified";

/// A Telegram bot, reached through the Bot API.
pub struct Telegram {
    api: Url,
    token: String,
    http: reqwest::Client,
    /// The next `getUpdates` offset (0: from the oldest unconfirmed update).
    offset: AtomicI64,
    /// One poll at a time: two would race for the same updates (and Telegram ends the
    /// older one with 409).
    polling: Mutex<()>,
    me: OnceCell<Me>,
}

#[derive(Debug, Clone)]
struct Me {
    id: i64,
    username: Option<String>,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("api", &self.api.as_str())
            .field("token", &"<redacted>")
            .field("offset", &self.offset())
            .finish()
    }
}

impl Telegram {
    /// A client of the Bot API at `api` (normally [`DEFAULT_API`]) for the bot `token`,
    /// sending through `http` (which the caller built with its egress allowlist).
    pub fn new(api: Url, token: String, http: reqwest::Client) -> Telegram {
        let mut api = api;
        // `bot<TOKEN>/…` is appended as path segments below `api`, never joined as a
        // relative reference (a token's `:` would read as a URL scheme).
        if let Ok(mut segments) = api.path_segments_mut() {
            segments.pop_if_empty();
        }
        Telegram {
            api,
            token,
            http,
            offset: AtomicI64::new(0),
            polling: Mutex::new(()),
            me: OnceCell::new(),
        }
    }

    /// The next `getUpdates` offset: one past the last update returned by
    /// [`ChatService::next`] (0 before the first). Persist it to resume after a restart.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }

    /// Resume from a persisted offset (updates below it are confirmed at the next poll).
    pub fn set_offset(&self, offset: i64) {
        self.offset.store(offset, Ordering::SeqCst);
    }

    fn method_url(&self, method: &str) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(&format!("bot{}", self.token)).push(method);
        }
        url
    }

    /// Call `method` with a JSON body; the `result` of a successful answer.
    async fn call(
        &self,
        method: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, ChannelError> {
        tracing::debug!(method, "telegram call");
        let resp = self
            .http
            .post(self.method_url(method))
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let retry_header = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = read_capped(resp, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                Capped::Over => protocol(
                    method,
                    format!("answer larger than {MAX_ANSWER_BYTES} bytes"),
                ),
                Capped::Net(e) => self.unreachable(e),
            })?;
        answer(method, status.as_u16(), retry_header, &bytes)
    }

    fn unreachable(&self, e: reqwest::Error) -> ChannelError {
        ChannelError::Unreachable {
            platform: PLATFORM,
            url: self.api.to_string(),
            // The request URL holds the token.
            detail: error_chain(&e.without_url()),
        }
    }

    async fn me(&self) -> Result<&Me, ChannelError> {
        self.me
            .get_or_try_init(|| async {
                let v = self.call("getMe", json!({}), CALL_TIMEOUT).await?;
                let o = Obj::root(&v, "getMe");
                let id = o.int("id").map_err(|e| protocol("getMe", e))?;
                let username = o.str_opt("username").map_err(|e| protocol("getMe", e))?;
                Ok(Me { id, username })
            })
            .await
    }
}

#[async_trait]
impl ChatService for Telegram {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    fn cursor(&self) -> Option<String> {
        Some(self.offset().to_string())
    }

    fn resume_from(&self, cursor: &str) {
        if let Ok(offset) = cursor.parse::<i64>() {
            self.set_offset(offset);
        }
    }

    async fn connect(&self) -> Result<BotIdentity, ChannelError> {
        let me = self.me().await?;
        Ok(BotIdentity {
            user_id: me.id.to_string(),
            mention: me.username.as_ref().map(|u| format!("@{u}")),
        })
    }

    async fn next(&self, wait: Duration) -> Result<Vec<Inbound>, ChannelError> {
        let _one_poll = self.polling.lock().await;
        let me = self.me().await?.clone();
        let offset = self.offset();
        let mut body = json!({"timeout": wait.as_secs(), "allowed_updates": ALLOWED_UPDATES});
        if offset != 0 {
            body["offset"] = json!(offset);
        }
        let result = self.call("getUpdates", body, wait + POLL_GRACE).await?;
        let Value::Array(updates) = result else {
            return Err(protocol("getUpdates", "result is not an array".into()));
        };
        let mut out = Vec::with_capacity(updates.len());
        let mut next_offset = offset;
        for raw in &updates {
            if let Some(id) = raw.get("update_id").and_then(Value::as_i64) {
                next_offset = next_offset.max(id.saturating_add(1));
            }
            out.push(parse_update(raw, &me));
        }
        // No await between here and the return: the cursor moves with the answer.
        self.offset.store(next_offset, Ordering::SeqCst);
        Ok(out)
    }

    async fn send(
        &self,
        conversation: &str,
        text: &str,
        buttons: &[Button],
    ) -> Result<Sent, ChannelError> {
        let mut body = json!({
            "chat_id": chat_id(conversation),
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if !buttons.is_empty() {
            body["reply_markup"] = keyboard(buttons)?;
        }
        let v = self.call("sendMessage", body, CALL_TIMEOUT).await?;
        let id = Obj::root(&v, "message")
            .int("message_id")
            .map_err(|e| protocol("sendMessage", e))?;
        Ok(Sent {
            conversation: conversation.to_string(),
            message_id: id.to_string(),
        })
    }

    async fn edit(&self, sent: &Sent, text: &str) -> Result<(), ChannelError> {
        let message_id: i64 = sent.message_id.parse().map_err(|_| ChannelError::Api {
            platform: PLATFORM,
            method: "editMessageText".into(),
            detail: format!(
                "message id {:?} is not a Telegram message id",
                sent.message_id
            ),
            retry_after: None,
        })?;
        // Without `reply_markup` Telegram removes the message's inline keyboard.
        let body = json!({
            "chat_id": chat_id(&sent.conversation),
            "message_id": message_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        match self.call("editMessageText", body, CALL_TIMEOUT).await {
            Ok(_) => Ok(()),
            // Already that text and no buttons: the edit's purpose holds.
            Err(ChannelError::Api { detail, .. }) if detail.contains(NOT_MODIFIED) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn ack_button(&self, ack: &str, text: &str) -> Result<(), ChannelError> {
        let mut body = json!({"callback_query_id": ack});
        if !text.is_empty() {
            body["text"] = json!(text);
        }
        self.call("answerCallbackQuery", body, CALL_TIMEOUT).await?;
        Ok(())
    }

    async fn download(&self, file: &FileRef, cap: u64) -> Result<Vec<u8>, ChannelError> {
        let too_large = || ChannelError::TooLarge {
            platform: PLATFORM,
            cap,
        };
        if file.size.is_some_and(|s| s > cap) {
            return Err(too_large());
        }
        let v = self
            .call("getFile", json!({"file_id": file.id}), CALL_TIMEOUT)
            .await?;
        let o = Obj::root(&v, "file");
        if o.int_opt("file_size")
            .map_err(|e| protocol("getFile", e))?
            .is_some_and(|s| u64::try_from(s).map_or(true, |s| s > cap))
        {
            return Err(too_large());
        }
        let path = o
            .str_opt("file_path")
            .map_err(|e| protocol("getFile", e))?
            .ok_or_else(|| protocol("getFile", "file.file_path is missing".into()))?;
        let mut url = self.api.clone();
        {
            let Ok(mut segments) = url.path_segments_mut() else {
                return Err(protocol(
                    "getFile",
                    "the API URL cannot carry a path".into(),
                ));
            };
            segments.push("file").push(&format!("bot{}", self.token));
            for part in path.split('/') {
                if part.is_empty() || part == "." || part == ".." {
                    return Err(protocol(
                        "getFile",
                        format!("file.file_path {path:?} is not a plain relative path"),
                    ));
                }
                segments.push(part);
            }
        }
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = read_capped(resp, 64 * 1024).await.unwrap_or_default();
            return Err(answer("file download", status.as_u16(), None, &bytes)
                .err()
                .unwrap_or_else(|| api("file download", format!("HTTP {status}"), None)));
        }
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(too_large());
        }
        read_capped(resp, cap).await.map_err(|e| match e {
            Capped::Over => too_large(),
            Capped::Net(e) => self.unreachable(e),
        })
    }
}

// ---- answers ---------------------------------------------------------------------------

enum Capped {
    Over,
    Net(reqwest::Error),
}

/// The body, read chunk by chunk and abandoned once more than `cap` bytes arrived.
async fn read_capped(resp: reqwest::Response, cap: u64) -> Result<Vec<u8>, Capped> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Capped::Net)?;
        if out.len() as u64 + chunk.len() as u64 > cap {
            return Err(Capped::Over);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The `result` of a Bot API answer, or the error it (or its HTTP status) says.
fn answer(
    method: &str,
    status: u16,
    retry_header: Option<u64>,
    bytes: &[u8],
) -> Result<Value, ChannelError> {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(bytes).ok();
    let ok = parsed
        .as_ref()
        .and_then(|o| o.get("ok"))
        .and_then(Value::as_bool);
    if let (Some(true), Some(o)) = (ok, &parsed)
        && (200..300).contains(&status)
    {
        return o
            .get("result")
            .cloned()
            .ok_or_else(|| protocol(method, "ok answer without result".into()));
    }
    let code = parsed
        .as_ref()
        .and_then(|o| o.get("error_code"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(status));
    let description = parsed
        .as_ref()
        .and_then(|o| o.get("description"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let retry_after = parsed
        .as_ref()
        .and_then(|o| o.get("parameters"))
        .and_then(|p| p.get("retry_after"))
        .and_then(Value::as_u64)
        .or(retry_header);
    if parsed.is_none() && (200..300).contains(&status) {
        return Err(protocol(method, "answer is not a JSON object".into()));
    }
    let detail = match description {
        Some(d) => format!("{code} {d}"),
        None => format!("HTTP {status}"),
    };
    if code == 401 || status == 401 {
        return Err(ChannelError::Unauthorized {
            platform: PLATFORM,
            detail,
        });
    }
    Err(api(method, detail, retry_after))
}

fn api(method: &str, detail: String, retry_after: Option<u64>) -> ChannelError {
    ChannelError::Api {
        platform: PLATFORM,
        method: method.to_string(),
        detail,
        retry_after,
    }
}

fn protocol(method: &str, detail: String) -> ChannelError {
    ChannelError::Protocol {
        platform: PLATFORM,
        method: method.to_string(),
        detail,
    }
}

/// An error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A conversation id as Telegram takes it: a number when it is one.
fn chat_id(conversation: &str) -> Value {
    match conversation.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(conversation),
    }
}

fn keyboard(buttons: &[Button]) -> Result<Value, ChannelError> {
    for b in buttons {
        if b.data.is_empty() || b.data.len() > MAX_BUTTON_DATA_BYTES {
            return Err(api(
                "sendMessage",
                format!(
                    "button {:?} carries {} bytes of data; Telegram takes 1 to {MAX_BUTTON_DATA_BYTES}",
                    b.label,
                    b.data.len()
                ),
                None,
            ));
        }
    }
    let rows: Vec<Value> = buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|b| json!({"text": b.label, "callback_data": b.data}))
                    .collect(),
            )
        })
        .collect();
    Ok(json!({"inline_keyboard": rows}))
}

// ---- updates ---------------------------------------------------------------------------

/// One element of `getUpdates`' result as an [`Inbound`]; never fails.
fn parse_update(raw: &Value, me: &Me) -> Inbound {
    let raw_bytes = serde_json::to_vec(raw).map(|b| b.len()).unwrap_or(0);
    let event_id = raw
        .get("update_id")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let malformed = |reason: String, conversation: Conversation, sender: Option<String>| Inbound {
        event_id: event_id.clone(),
        conversation,
        sender,
        sender_name: None,
        kind: InboundKind::Malformed { reason, raw_bytes },
    };
    let nowhere = || Conversation {
        id: String::new(),
        group: false,
    };
    let Some(update) = raw.as_object() else {
        return malformed("update is not a JSON object".into(), nowhere(), None);
    };
    if !update.get("update_id").is_some_and(Value::is_i64) {
        return malformed(
            "update_id: missing or not an integer".into(),
            nowhere(),
            None,
        );
    }
    let Some((kind, payload)) = update.iter().find(|(k, _)| *k != "update_id") else {
        return malformed(
            "update carries nothing besides update_id".into(),
            nowhere(),
            None,
        );
    };
    let parsed = match kind.as_str() {
        "message" => parse_message(payload, me),
        "callback_query" => parse_callback(payload),
        _ => {
            // Say where it came from when that much is readable, for the records.
            let conversation = payload
                .get("chat")
                .or_else(|| payload.get("message").and_then(|m| m.get("chat")))
                .and_then(|c| chat(&Obj::root(c, "chat")).ok())
                .unwrap_or_else(nowhere);
            let sender = payload
                .get("from")
                .and_then(|f| f.get("id"))
                .and_then(Value::as_i64)
                .map(|id| id.to_string());
            let reason = if KNOWN_UNHANDLED.contains(&kind.as_str()) {
                format!("{kind} is not handled")
            } else {
                format!("unknown update type {kind:?}")
            };
            return malformed(reason, conversation, sender);
        }
    };
    match parsed {
        Ok(p) => Inbound {
            event_id,
            conversation: p.conversation,
            sender: p.sender,
            sender_name: p.sender_name,
            kind: p.kind,
        },
        Err(Bad {
            reason,
            conversation,
            sender,
        }) => malformed(reason, conversation.unwrap_or_else(nowhere), sender),
    }
}

/// Bot API update types this client knows and does not handle.
const KNOWN_UNHANDLED: [&str; 20] = [
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
];

struct Parsed {
    conversation: Conversation,
    sender: Option<String>,
    sender_name: Option<String>,
    kind: InboundKind,
}

/// Why an update was not read, with what was readable of where it came from.
struct Bad {
    reason: String,
    conversation: Option<Conversation>,
    sender: Option<String>,
}

impl From<String> for Bad {
    fn from(reason: String) -> Bad {
        Bad {
            reason,
            conversation: None,
            sender: None,
        }
    }
}

/// Fields of a message that say nothing of its content (for naming what a message with
/// neither text nor a file carried).
const MESSAGE_META: [&str; 22] = [
    "message_id",
    "message_thread_id",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "via_bot",
    "edit_date",
    "has_protected_content",
    "is_from_offline",
    "author_signature",
    "link_preview_options",
];

/// File-carrying fields, in the order they are looked for.
const FILE_FIELDS: [&str; 7] = [
    "document",
    "photo",
    "audio",
    "video",
    "voice",
    "video_note",
    "animation",
];

fn parse_message(v: &Value, me: &Me) -> Result<Parsed, Bad> {
    let msg = Obj::root(v, "message");
    msg.ensure_object()?;
    let conversation = chat(&msg.obj("chat")?)?;
    let with_place = |reason: String, sender: Option<String>| Bad {
        reason,
        conversation: Some(conversation.clone()),
        sender,
    };
    if let Some(sc) = msg
        .obj_opt("sender_chat")
        .map_err(|e| with_place(e, None))?
    {
        let id = sc.int("id").map(|i| i.to_string()).unwrap_or_default();
        return Err(with_place(
            format!("message.sender_chat: written on behalf of chat {id}, not by a user"),
            None,
        ));
    }
    let from = msg.obj("from").map_err(|e| with_place(e, None))?;
    let sender_id = from.int("id").map_err(|e| with_place(e, None))?;
    let sender = Some(sender_id.to_string());
    let sender_name = display_name(&from);
    let forwarded = msg.has("forward_origin") || msg.has("forward_date") || msg.has("forward_from");
    let fail = |e: String| with_place(e, sender.clone());

    let file = FILE_FIELDS
        .iter()
        .find(|f| msg.has(f))
        .map(|f| file_ref(&msg, f))
        .transpose()
        .map_err(fail)?;
    let kind = match (file, msg.str_opt("text").map_err(fail)?) {
        (Some(file), _) => {
            let caption = msg.str_opt("caption").map_err(fail)?;
            let mentioned = match &caption {
                Some(c) => mentions(&msg, "caption_entities", c, me).map_err(fail)?,
                None => false,
            };
            InboundKind::File {
                file,
                caption,
                mentioned,
                forwarded,
            }
        }
        (None, Some(text)) => {
            let mentioned = mentions(&msg, "entities", &text, me).map_err(fail)?;
            InboundKind::Text {
                link_preview: link_preview(&msg).map_err(fail)?,
                text,
                mentioned,
                forwarded,
            }
        }
        (None, None) => {
            let mut carried: Vec<&str> = msg
                .keys()
                .into_iter()
                .filter(|k| !MESSAGE_META.contains(k))
                .collect();
            carried.sort_unstable();
            let what = if carried.is_empty() {
                "nothing".to_string()
            } else {
                carried.join(", ")
            };
            return Err(fail(format!(
                "message: neither text nor a file (it carries {what})"
            )));
        }
    };
    Ok(Parsed {
        conversation,
        sender,
        sender_name,
        kind,
    })
}

fn parse_callback(v: &Value) -> Result<Parsed, Bad> {
    let cb = Obj::root(v, "callback_query");
    cb.ensure_object()?;
    let ack = cb.str("id")?;
    let from = cb.obj("from")?;
    let sender = Some(from.int("id")?.to_string());
    let sender_name = display_name(&from);
    let fail = |e: String| Bad {
        reason: e,
        conversation: None,
        sender: sender.clone(),
    };
    // Without `message` the button was on an inline-mode message, which this bot does
    // not send.
    let message = cb.obj("message").map_err(fail)?;
    let conversation = chat(&message.obj("chat").map_err(fail)?).map_err(fail)?;
    let message_id = message.int("message_id").map_err(fail)?;
    let Some(data) = cb.str_opt("data").map_err(fail)? else {
        return Err(Bad {
            reason: "callback_query.data is missing (a game button?)".into(),
            conversation: Some(conversation),
            sender,
        });
    };
    Ok(Parsed {
        conversation,
        sender,
        sender_name,
        kind: InboundKind::Button {
            data,
            message_id: message_id.to_string(),
            ack: Some(ack),
        },
    })
}

fn chat(c: &Obj<'_>) -> Result<Conversation, String> {
    let id = c.int("id")?;
    let group = match c.str("type")?.as_str() {
        "private" => false,
        "group" | "supergroup" => true,
        other => {
            return Err(format!(
                "{}.type: {other:?} is not a private chat or a group",
                c.path
            ));
        }
    };
    Ok(Conversation {
        id: id.to_string(),
        group,
    })
}

fn display_name(from: &Obj<'_>) -> Option<String> {
    let first = from.str_opt("first_name").ok().flatten();
    let last = from.str_opt("last_name").ok().flatten();
    let user = from.str_opt("username").ok().flatten();
    let mut name = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(u) = user {
        if name.is_empty() {
            name = format!("@{u}");
        } else {
            name = format!("{name} (@{u})");
        }
    }
    (!name.is_empty()).then_some(name)
}

/// The file of `msg.<field>` (for `photo`, its largest size).
fn file_ref(msg: &Obj<'_>, field: &str) -> Result<FileRef, String> {
    let f = if field == "photo" {
        let sizes = msg.array("photo")?;
        // Sizes come smallest first; pick by pixels, not by position.
        let mut best: Option<(i64, Obj<'_>)> = None;
        for (i, s) in sizes.iter().enumerate() {
            let o = Obj::at(s, format!("message.photo[{i}]"));
            let px = o.int_opt("width")?.unwrap_or(0) * o.int_opt("height")?.unwrap_or(0);
            if best.as_ref().is_none_or(|(b, _)| px >= *b) {
                best = Some((px, o));
            }
        }
        match best {
            Some((_, o)) => o,
            None => return Err("message.photo: no sizes".into()),
        }
    } else {
        msg.obj(field)?
    };
    let size = match f.int_opt("file_size")? {
        Some(n) => Some(u64::try_from(n).map_err(|_| format!("{}.file_size: negative", f.path))?),
        None => None,
    };
    Ok(FileRef {
        id: f.str("file_id")?,
        name: f.str_opt("file_name")?,
        size,
    })
}

/// The URL Telegram previews under the message, when it says so. (The Bot API gives bots
/// the preview's options, not the page's title and description.)
fn link_preview(msg: &Obj<'_>) -> Result<Option<String>, String> {
    let Some(o) = msg.obj_opt("link_preview_options")? else {
        return Ok(None);
    };
    if o.bool_opt("is_disabled")?.unwrap_or(false) {
        return Ok(None);
    }
    o.str_opt("url")
}

/// Whether an entity of `msg.<field>` over `text` names the bot.
fn mentions(msg: &Obj<'_>, field: &str, text: &str, me: &Me) -> Result<bool, String> {
    let Some(entities) = msg.array_opt(field)? else {
        return Ok(false);
    };
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let mut found = false;
    for (i, e) in entities.iter().enumerate() {
        let e = Obj::at(e, format!("message.{field}[{i}]"));
        let kind = e.str("type")?;
        if !matches!(kind.as_str(), "mention" | "text_mention" | "bot_command") {
            continue;
        }
        let offset = usize::try_from(e.int("offset")?).ok();
        let length = usize::try_from(e.int("length")?).ok();
        let covered = match (offset, length) {
            (Some(o), Some(l)) => o.checked_add(l).and_then(|end| utf16.get(o..end)),
            _ => None,
        };
        let Some(covered) = covered else {
            return Err(format!(
                "{}: offset and length fall outside the text",
                e.path
            ));
        };
        let covered = String::from_utf16_lossy(covered);
        let username = me.username.as_deref().unwrap_or_default();
        found |= match kind.as_str() {
            "mention" => {
                !username.is_empty()
                    && covered
                        .strip_prefix('@')
                        .is_some_and(|u| u.eq_ignore_ascii_case(username))
            }
            "text_mention" => e.obj("user")?.int("id")? == me.id,
            _ => {
                !username.is_empty()
                    && covered
                        .rsplit_once('@')
                        .is_some_and(|(_, u)| u.eq_ignore_ascii_case(username))
            }
        };
    }
    Ok(found)
}

/// A JSON value with its path (`message.chat`), whose accessors name the field they
/// found missing or of the wrong type.
struct Obj<'a> {
    v: &'a Value,
    path: String,
}

impl<'a> Obj<'a> {
    fn root(v: &'a Value, name: &str) -> Obj<'a> {
        Obj {
            v,
            path: name.to_string(),
        }
    }

    fn at(v: &'a Value, path: String) -> Obj<'a> {
        Obj { v, path }
    }

    fn ensure_object(&self) -> Result<(), String> {
        if self.v.is_object() {
            Ok(())
        } else {
            Err(format!("{}: not an object", self.path))
        }
    }

    fn keys(&self) -> Vec<&'a str> {
        self.v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    fn has(&self, key: &str) -> bool {
        self.v.get(key).is_some_and(|v| !v.is_null())
    }

    fn field(&self, key: &str) -> Option<&'a Value> {
        self.v.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> String {
        format!("{}.{key}: missing", self.path)
    }

    fn wrong(&self, key: &str, want: &str) -> String {
        format!("{}.{key}: not {want}", self.path)
    }

    fn int_opt(&self, key: &str) -> Result<Option<i64>, String> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an integer")),
        }
    }

    fn int(&self, key: &str) -> Result<i64, String> {
        self.int_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn bool_opt(&self, key: &str) -> Result<Option<bool>, String> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a boolean")),
        }
    }

    fn str_opt(&self, key: &str) -> Result<Option<String>, String> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| self.wrong(key, "a string")),
        }
    }

    fn str(&self, key: &str) -> Result<String, String> {
        self.str_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn obj_opt(&self, key: &str) -> Result<Option<Obj<'a>>, String> {
        match self.field(key) {
            None => Ok(None),
            Some(v) if v.is_object() => Ok(Some(Obj::at(v, format!("{}.{key}", self.path)))),
            Some(_) => Err(self.wrong(key, "an object")),
        }
    }

    fn obj(&self, key: &str) -> Result<Obj<'a>, String> {
        self.obj_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn array_opt(&self, key: &str) -> Result<Option<&'a Vec<Value>>, String> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an array")),
        }
    }

    fn array(&self, key: &str) -> Result<&'a Vec<Value>, String> {
        self.array_opt(key)?.ok_or_else(|| self.missing(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me {
            id: 123456789,
            username: Some("cordon_bot".into()),
        }
    }

    fn parse(v: Value) -> Inbound {
        parse_update(&v, &me())
    }

    fn text_of(i: &Inbound) -> (&str, bool, bool, Option<&str>) {
        match &i.kind {
            InboundKind::Text {
                text,
                mentioned,
                forwarded,
                link_preview,
            } => (text, *mentioned, *forwarded, link_preview.as_deref()),
            other => panic!("not text: {other:?}"),
        }
    }

    fn reason(i: &Inbound) -> &str {
        match &i.kind {
            InboundKind::Malformed { reason, raw_bytes } => {
                assert!(*raw_bytes > 0);
                reason
            }
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn a_private_text_message() {
        let i = parse(json!({"update_id": 10000, "message": {
            "message_id": 1365, "date": 1441645532,
            "from": {"id": 1111111, "is_bot": false, "first_name": "Test", "last_name": "Lastname", "username": "Test", "language_code": "en"},
            "chat": {"id": 1111111, "type": "private", "first_name": "Test", "last_name": "Lastname", "username": "Test"},
            "text": "/start"}}));
        assert_eq!(i.event_id, "10000");
        assert_eq!(
            i.conversation,
            Conversation {
                id: "1111111".into(),
                group: false
            }
        );
        assert_eq!(i.sender.as_deref(), Some("1111111"));
        assert_eq!(i.sender_name.as_deref(), Some("Test Lastname (@Test)"));
        assert_eq!(text_of(&i), ("/start", false, false, None));
    }

    #[test]
    fn a_mention_is_found_by_utf16_offsets_after_emoji() {
        // "😀 hi @cordon_bot": the emoji is two UTF-16 units, so the mention starts at 6.
        let i = parse(json!({"update_id": 2, "message": {
            "message_id": 7, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": -1001234567890_i64, "type": "supergroup", "title": "T"},
            "text": "😀 hi @cordon_bot", "entities": [{"type": "mention", "offset": 6, "length": 11}]}}));
        assert!(i.conversation.group);
        assert!(text_of(&i).1);
        // The same entity counted in bytes or chars would miss; a near-miss name is no mention.
        let i = parse(json!({"update_id": 3, "message": {
            "message_id": 8, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": -5, "type": "group", "title": "T"},
            "text": "hi @cordon_bot2", "entities": [{"type": "mention", "offset": 3, "length": 12}]}}));
        assert!(!text_of(&i).1);
    }

    #[test]
    fn text_mention_and_addressed_commands_name_the_bot() {
        let base = |text: &str, entities: Value| {
            json!({"update_id": 4, "message": {
                "message_id": 9, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
                "chat": {"id": -5, "type": "group", "title": "T"}, "text": text, "entities": entities}})
        };
        let i = parse(base(
            "Cordon do it",
            json!([{"type": "text_mention", "offset": 0, "length": 6, "user": {"id": 123456789, "is_bot": true, "first_name": "Cordon"}}]),
        ));
        assert!(text_of(&i).1);
        let i = parse(base(
            "Mallory do it",
            json!([{"type": "text_mention", "offset": 0, "length": 7, "user": {"id": 42, "is_bot": false, "first_name": "Mallory"}}]),
        ));
        assert!(!text_of(&i).1);
        let i = parse(base(
            "/status@Cordon_Bot",
            json!([{"type": "bot_command", "offset": 0, "length": 18}]),
        ));
        assert!(text_of(&i).1);
        // A bare command in a group is not addressed to this bot.
        let i = parse(base(
            "/status",
            json!([{"type": "bot_command", "offset": 0, "length": 7}]),
        ));
        assert!(!text_of(&i).1);
        // The name in plain text, without an entity, is not a mention.
        let i = parse(base("@cordon_bot", json!([])));
        assert!(!text_of(&i).1);
    }

    #[test]
    fn an_entity_outside_the_text_is_malformed_naming_it() {
        let i = parse(json!({"update_id": 4, "message": {
            "message_id": 9, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": -5, "type": "group", "title": "T"}, "text": "hi",
            "entities": [{"type": "mention", "offset": 1, "length": 30}]}}));
        assert_eq!(
            reason(&i),
            "message.entities[0]: offset and length fall outside the text"
        );
        assert_eq!(i.sender.as_deref(), Some("5"));
        assert_eq!(i.conversation.id, "-5");
    }

    #[test]
    fn forwards_and_link_previews() {
        let i = parse(json!({"update_id": 5, "message": {
            "message_id": 10, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": 5, "type": "private", "first_name": "A"},
            "forward_origin": {"type": "hidden_user", "sender_user_name": "X", "date": 1},
            "text": "see https://example.com/a", "entities": [{"type": "url", "offset": 4, "length": 21}],
            "link_preview_options": {"url": "https://example.com/a", "prefer_small_media": true}}}));
        assert_eq!(
            text_of(&i),
            (
                "see https://example.com/a",
                false,
                true,
                Some("https://example.com/a")
            )
        );
        let i = parse(json!({"update_id": 6, "message": {
            "message_id": 11, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": 5, "type": "private", "first_name": "A"}, "forward_date": 5,
            "text": "x", "link_preview_options": {"is_disabled": true}}}));
        assert_eq!(text_of(&i), ("x", false, true, None));
    }

    #[test]
    fn documents_and_the_largest_photo() {
        let i = parse(json!({"update_id": 7, "message": {
            "message_id": 12, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": -5, "type": "group", "title": "T"},
            "document": {"file_id": "BQAD", "file_unique_id": "AgAD", "file_name": "../../etc/passwd", "mime_type": "text/plain", "file_size": 1234},
            "caption": "look @cordon_bot", "caption_entities": [{"type": "mention", "offset": 5, "length": 11}]}}));
        assert_eq!(
            i.kind,
            InboundKind::File {
                file: FileRef {
                    id: "BQAD".into(),
                    name: Some("../../etc/passwd".into()),
                    size: Some(1234)
                },
                caption: Some("look @cordon_bot".into()),
                mentioned: true,
                forwarded: false,
            }
        );
        let i = parse(json!({"update_id": 8, "message": {
            "message_id": 13, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": 5, "type": "private", "first_name": "A"},
            "photo": [
                {"file_id": "small", "file_unique_id": "a", "width": 90, "height": 51, "file_size": 1000},
                {"file_id": "large", "file_unique_id": "c", "width": 1280, "height": 720},
                {"file_id": "medium", "file_unique_id": "b", "width": 320, "height": 180, "file_size": 9000}]}}));
        let InboundKind::File { file, caption, .. } = &i.kind else {
            panic!("{i:?}")
        };
        assert_eq!(
            (file.id.as_str(), file.size, caption),
            ("large", None, &None)
        );
    }

    #[test]
    fn a_button_press() {
        let i = parse(json!({"update_id": 9, "callback_query": {
            "id": "4382bfdwdsb323b2d9", "chat_instance": "42",
            "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "message": {"message_id": 77, "date": 1, "chat": {"id": 5, "type": "private", "first_name": "A"},
                        "from": {"id": 123456789, "is_bot": true, "first_name": "Cordon"}, "text": "Approve?"},
            "data": "ap:01J:yes"}}));
        assert_eq!(i.sender.as_deref(), Some("5"));
        assert_eq!(
            i.kind,
            InboundKind::Button {
                data: "ap:01J:yes".into(),
                message_id: "77".into(),
                ack: Some("4382bfdwdsb323b2d9".into())
            }
        );
        // An inaccessible message (date 0) still names its chat and id.
        let i = parse(json!({"update_id": 10, "callback_query": {
            "id": "q", "chat_instance": "42", "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "message": {"message_id": 78, "date": 0, "chat": {"id": -5, "type": "group", "title": "T"}},
            "data": "x"}}));
        assert!(i.conversation.group);
        assert!(matches!(i.kind, InboundKind::Button { .. }));
        let i = parse(json!({"update_id": 11, "callback_query": {
            "id": "q", "chat_instance": "42", "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "inline_message_id": "AAA", "data": "x"}}));
        assert_eq!(reason(&i), "callback_query.message: missing");
    }

    #[test]
    fn what_is_not_read_is_malformed_and_says_why() {
        let i = parse(json!({"update_id": 12, "channel_post": {
            "message_id": 1, "date": 1, "chat": {"id": -1009, "type": "channel", "title": "News"}, "text": "x"}}));
        assert_eq!(reason(&i), "channel_post is not handled");
        assert_eq!(i.event_id, "12");
        let i = parse(json!({"update_id": 13, "edited_message": {
            "message_id": 1, "date": 1, "edit_date": 2, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": 5, "type": "private"}, "text": "x"}}));
        assert_eq!(reason(&i), "edited_message is not handled");
        assert_eq!(i.sender.as_deref(), Some("5"));
        assert_eq!(i.conversation.id, "5");
        let i = parse(json!({"update_id": 14, "galactic_event": {"x": 1}}));
        assert_eq!(reason(&i), "unknown update type \"galactic_event\"");
        let i = parse(
            json!({"update_id": 15, "message": {"message_id": 1, "date": 1, "chat": "oops", "text": "x"}}),
        );
        assert_eq!(reason(&i), "message.chat: not an object");
        let i = parse(json!({"update_id": 16, "message": {
            "message_id": 1, "date": 1, "from": {"id": "5", "first_name": "A"},
            "chat": {"id": 5, "type": "private"}, "text": "x"}}));
        assert_eq!(reason(&i), "message.from.id: not an integer");
        assert_eq!(i.conversation.id, "5");
        let i = parse(json!({"update_id": 17, "message": {
            "message_id": 1, "date": 1, "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "chat": {"id": 5, "type": "private"}, "sticker": {"file_id": "s"}}}));
        assert_eq!(
            reason(&i),
            "message: neither text nor a file (it carries sticker)"
        );
        let i = parse(json!({"update_id": 18, "message": {
            "message_id": 1, "date": 1, "from": {"id": 1087968824, "is_bot": true, "first_name": "Group"},
            "sender_chat": {"id": -1001, "type": "supergroup", "title": "T"},
            "chat": {"id": -1001, "type": "supergroup", "title": "T"}, "text": "x"}}));
        assert_eq!(
            reason(&i),
            "message.sender_chat: written on behalf of chat -1001, not by a user"
        );
        assert_eq!(i.sender, None);
        assert_eq!(
            reason(&parse(json!("nonsense"))),
            "update is not a JSON object"
        );
        assert_eq!(
            reason(&parse(json!({"update_id": 19}))),
            "update carries nothing besides update_id"
        );
    }

    #[test]
    fn error_answers_map_to_the_error_kinds() {
        let e = answer(
            "getMe",
            401,
            None,
            br#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ChannelError::Unauthorized { .. }), "{e}");
        let e = answer(
            "sendMessage",
            429,
            Some(3),
            br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 9","parameters":{"retry_after":9}}"#,
        )
        .unwrap_err();
        assert_eq!(e.retry_after(), Some(9));
        let e = answer("getUpdates", 429, Some(3), b"slow down").unwrap_err();
        assert_eq!(e.retry_after(), Some(3));
        let e = answer("getUpdates", 502, None, b"<html>").unwrap_err();
        assert_eq!(e.to_string(), "telegram: getUpdates failed: HTTP 502");
        let e = answer("getUpdates", 200, None, b"<html>").unwrap_err();
        assert!(matches!(e, ChannelError::Protocol { .. }), "{e}");
        assert_eq!(
            answer("getMe", 200, None, br#"{"ok":true,"result":{"id":1}}"#).unwrap(),
            json!({"id": 1})
        );
    }

    #[test]
    fn the_token_is_a_path_segment_and_never_debug_printed() {
        let t = Telegram::new(
            Url::parse("http://127.0.0.1:9/tg").unwrap(),
            "123:AAH-secret_x".into(),
            reqwest::Client::new(),
        );
        assert_eq!(
            t.method_url("getMe").as_str(),
            "http://127.0.0.1:9/tg/bot123:AAH-secret_x/getMe"
        );
        assert!(!format!("{t:?}").contains("AAH-secret"));
        let t = Telegram::new(
            Url::parse(DEFAULT_API).unwrap(),
            "1:x".into(),
            reqwest::Client::new(),
        );
        assert_eq!(
            t.method_url("getMe").as_str(),
            "https://api.telegram.org/bot1:x/getMe"
        );
    }
}
