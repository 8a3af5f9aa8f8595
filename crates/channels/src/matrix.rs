//! Matrix through the client-server API: `/sync` (long poll from a `since` token) for
//! updates, `PUT …/send` for messages, `m.replace` for edits, the authenticated media
//! endpoint for files. There is no public default homeserver: the base URL is the bot's
//! own (`https://matrix.example.org/`).
//!
//! What a sync becomes:
//! - Each joined room's timeline `m.room.message` events from others (the bot's own are
//!   skipped) are [`Inbound`]s: `m.text`/`m.notice`/`m.emote` are text, `m.file`/
//!   `m.image`/`m.audio`/`m.video` are files (`mxc://` id, the `filename` field or else the
//!   body as the name, the body as the caption when a `filename` is given). An edit
//!   (`m.relates_to.rel_type = m.replace`) is a text with the new content. A room with more
//!   than two joined members is a group. The bot is mentioned when `m.mentions.user_ids`
//!   holds its user id, or the body does (clients without intentional mentions).
//! - Matrix has no forwarding marker (clients copy the content) and no server-side link
//!   previews in events, so `forwarded` is always false and `link_preview` always `None`.
//! - State events (membership, names, power levels…), reactions and redactions are not
//!   messages and produce nothing; redacted messages neither. Encrypted events
//!   (`m.room.encrypted`: end-to-end encryption is not supported), other event types and
//!   message types, and events with missing or mistyped fields are
//!   [`InboundKind::Malformed`] naming what was wrong.
//! - **Buttons.** Matrix has no standard buttons. [`ChatService::send`] writes the options
//!   under the text as reply commands, one a line: `Label: reply !press <data>`; a message
//!   whose body (after any reply quote) starts with `!press ` is an [`InboundKind::Button`]
//!   whose data is the rest of the line, verbatim. Its `message_id` is the event the reply
//!   answers (`m.in_reply_to`) or else the last message this client sent with that data.
//!   Anyone in the room can type the command: like a press of a Telegram button, whether
//!   it counts is decided above (roles, approval ids), never here.
//! - **Invites are joined**, all of them, DMs and groups alike. Joining a room does not let
//!   anyone reach the agent: pairing and the group policy (allowlisted groups only, and
//!   only when mentioned) decide that for every message, as they do on Telegram and Slack,
//!   where adding a bot to a group needs no consent from it. Refusing group invites here
//!   would only make allowlisting a Matrix group impossible.
//!
//! The cursor: the `next_batch` of the last sync whose updates were all returned
//! ([`Matrix::since`], persisted by the caller and given back with [`Matrix::with_since`]).
//! A failed sync leaves it where it was. A sync whose timeline was cut (`limited`) is
//! completed from `/messages` back to the previous token, so a burst larger than the
//! timeline limit is not lost (beyond 2,000 events in one room, the oldest are not fetched
//! and a [`InboundKind::Malformed`] update says so). Without a token, [`ChatService::connect`] syncs once and
//! starts after what is already there: history from before the bot's first sync is not
//! delivered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};
use url::Url;

use crate::error::ChannelError;
use crate::service::{
    BotIdentity, Button, ChatService, Conversation, FileRef, Inbound, InboundKind, Platform, Sent,
};

const PLATFORM: &str = "matrix";
/// The reply command that stands for a button press (see the module docs).
pub const BUTTON_COMMAND: &str = "!press ";
/// Events per room per sync; a longer burst is fetched from `/messages`.
const TIMELINE_LIMIT: u32 = 100;
/// At most this many `/messages` pages fill one room's gap.
const MAX_GAP_PAGES: usize = 20;
/// Button data remembered for `message_id` when a reply does not say which message.
const REMEMBERED_BUTTONS: usize = 1000;

/// A Matrix account the bot logs in as; see the module docs.
pub struct Matrix {
    base: Url,
    token: String,
    http: reqwest::Client,
    since: Mutex<Option<String>>,
    user_id: Mutex<Option<String>>,
    /// Joined members per room, forgotten when a membership event for the room arrives.
    members: Mutex<HashMap<String, usize>>,
    /// Button data → the event it was sent on (most recent sends).
    buttons: Mutex<Vec<(String, String)>>,
    /// One sync at a time: two concurrent `next` calls would return the same events.
    polling: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Matrix {
    /// A client of the homeserver at `base` (e.g. `https://matrix.example.org/`) with the
    /// bot's `access_token`, over `http` (the caller's client, with its egress rules).
    pub fn new(base: Url, access_token: String, http: reqwest::Client) -> Matrix {
        Matrix {
            base,
            token: access_token,
            http,
            since: Mutex::new(None),
            user_id: Mutex::new(None),
            members: Mutex::new(HashMap::new()),
            buttons: Mutex::new(Vec::new()),
            polling: tokio::sync::Mutex::new(()),
        }
    }

    /// Resume from a persisted sync token.
    pub fn with_since(self, since: Option<String>) -> Matrix {
        *lock(&self.since) = since;
        self
    }

    /// The sync token after the last returned updates, to persist.
    pub fn since(&self) -> Option<String> {
        lock(&self.since).clone()
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn call(
        &self,
        method_name: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ChannelError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, e))?;
        let response = check(method_name, response).await?;
        let bytes = response.bytes().await.map_err(|e| ChannelError::Protocol {
            platform: PLATFORM,
            method: method_name.to_string(),
            detail: format!("reading the answer: {e}"),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ChannelError::Protocol {
            platform: PLATFORM,
            method: method_name.to_string(),
            detail: format!("not JSON: {e}"),
        })
    }

    async fn sync(&self, since: Option<&str>, wait: Duration) -> Result<Value, ChannelError> {
        let filter = json!({
            "presence": { "not_types": ["*"] },
            "account_data": { "not_types": ["*"] },
            "room": {
                "ephemeral": { "not_types": ["*"] },
                "account_data": { "not_types": ["*"] },
                "timeline": { "limit": TIMELINE_LIMIT },
            },
        })
        .to_string();
        let timeout_ms = wait.as_millis().to_string();
        let mut query = vec![
            ("timeout", timeout_ms.as_str()),
            ("filter", filter.as_str()),
        ];
        if let Some(since) = since {
            query.push(("since", since));
        }
        let request = self
            .http
            .get(self.endpoint(&["_matrix", "client", "v3", "sync"]))
            .query(&query)
            .timeout(wait + Duration::from_secs(30));
        self.call("sync", request).await
    }

    fn bot_id(&self) -> Option<String> {
        lock(&self.user_id).clone()
    }

    async fn whoami(&self) -> Result<String, ChannelError> {
        let request = self
            .http
            .get(self.endpoint(&["_matrix", "client", "v3", "account", "whoami"]));
        let answer = self.call("whoami", request).await?;
        let user_id = answer["user_id"]
            .as_str()
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "whoami".into(),
                detail: "no `user_id` in the answer".into(),
            })?
            .to_string();
        *lock(&self.user_id) = Some(user_id.clone());
        Ok(user_id)
    }

    /// Join every room the bot is invited to. A refused join (the room is gone, the invite
    /// withdrawn) is logged and skipped; an unreachable server fails the sync.
    async fn join_invites(&self, sync: &Value) -> Result<(), ChannelError> {
        let Some(invites) = sync["rooms"]["invite"].as_object() else {
            return Ok(());
        };
        for room in invites.keys() {
            let request = self
                .http
                .post(self.endpoint(&["_matrix", "client", "v3", "join", room]))
                .json(&json!({}));
            match self.call("join", request).await {
                Ok(_) => {}
                Err(e @ (ChannelError::Unreachable { .. } | ChannelError::Unauthorized { .. })) => {
                    return Err(e);
                }
                Err(e) => tracing::warn!(room = %room, error = %e, "matrix: invite not joined"),
            }
        }
        Ok(())
    }

    /// Joined members of `room`, from the sync's summary, the cache, or the server.
    async fn member_count(&self, room: &str, summary: &Value) -> Result<usize, ChannelError> {
        if let Some(n) = summary["m.joined_member_count"].as_u64() {
            let n = n as usize;
            lock(&self.members).insert(room.to_string(), n);
            return Ok(n);
        }
        if let Some(n) = lock(&self.members).get(room) {
            return Ok(*n);
        }
        let request = self.http.get(self.endpoint(&[
            "_matrix",
            "client",
            "v3",
            "rooms",
            room,
            "joined_members",
        ]));
        let answer = self.call("joined_members", request).await?;
        let n = answer["joined"]
            .as_object()
            .map(|m| m.len())
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "joined_members".into(),
                detail: "no `joined` object in the answer".into(),
            })?;
        lock(&self.members).insert(room.to_string(), n);
        Ok(n)
    }

    /// The events a `limited` timeline left out: `/messages` backwards from the timeline's
    /// `prev_batch` to the previous sync token, oldest first, and whether that reached the
    /// token (false after [`MAX_GAP_PAGES`] pages: the oldest events were not fetched).
    async fn fill_gap(
        &self,
        room: &str,
        prev_batch: &str,
        since: &str,
    ) -> Result<(Vec<Value>, bool), ChannelError> {
        let mut from = prev_batch.to_string();
        let mut gap = Vec::new();
        let mut complete = false;
        for _ in 0..MAX_GAP_PAGES {
            let request = self
                .http
                .get(self.endpoint(&["_matrix", "client", "v3", "rooms", room, "messages"]))
                .query(&[
                    ("from", from.as_str()),
                    ("to", since),
                    ("dir", "b"),
                    ("limit", "100"),
                ]);
            let answer = self.call("messages", request).await?;
            let chunk = answer["chunk"].as_array().cloned().unwrap_or_default();
            let end = answer["end"].as_str().map(str::to_string);
            let done = chunk.is_empty() || end.is_none();
            gap.extend(chunk);
            match end {
                Some(end) if !done => from = end,
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        gap.reverse();
        Ok((gap, complete))
    }

    fn remember_button(&self, data: &str, event_id: &str) {
        let mut buttons = lock(&self.buttons);
        buttons.retain(|(d, _)| d != data);
        buttons.push((data.to_string(), event_id.to_string()));
        if buttons.len() > REMEMBERED_BUTTONS {
            buttons.remove(0);
        }
    }

    fn button_message(&self, data: &str) -> Option<String> {
        lock(&self.buttons)
            .iter()
            .rev()
            .find(|(d, _)| d == data)
            .map(|(_, e)| e.clone())
    }

    async fn send_content(&self, room: &str, content: Value) -> Result<String, ChannelError> {
        let txn = format!("cordon-{:016x}", rand::random::<u64>());
        let request = self
            .http
            .put(self.endpoint(&[
                "_matrix",
                "client",
                "v3",
                "rooms",
                room,
                "send",
                "m.room.message",
                &txn,
            ]))
            .json(&content);
        let answer = self.call("send", request).await?;
        answer["event_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "send".into(),
                detail: "no `event_id` in the answer".into(),
            })
    }
}

fn unreachable(base: &Url, e: reqwest::Error) -> ChannelError {
    // Only the base URL: a request URL carries the sync token and filter.
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ChannelError::Unreachable {
        platform: PLATFORM,
        url: base.to_string(),
        detail,
    }
}

/// A non-2xx answer as an error: a refused token is `Unauthorized`, a 429 carries the
/// wait the server asked for (`Retry-After`, else `retry_after_ms`, rounded up to seconds).
async fn check(
    method: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ChannelError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let header_wait = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let errcode = body["errcode"].as_str().unwrap_or("");
    let error = body["error"].as_str().unwrap_or("");
    let detail = format!("HTTP {}: {errcode} {error}", status.as_u16());
    if matches!(errcode, "M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN")
        || status == reqwest::StatusCode::UNAUTHORIZED
    {
        return Err(ChannelError::Unauthorized {
            platform: PLATFORM,
            detail,
        });
    }
    let retry_after = if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        header_wait.or_else(|| body["retry_after_ms"].as_u64().map(|ms| ms.div_ceil(1000)))
    } else {
        None
    };
    Err(ChannelError::Api {
        platform: PLATFORM,
        method: method.to_string(),
        detail,
        retry_after,
    })
}

/// The room-specific context an event is read in.
struct RoomContext<'a> {
    room: &'a str,
    group: bool,
    bot: &'a str,
}

fn malformed(reason: impl Into<String>, raw: &Value) -> InboundKind {
    InboundKind::Malformed {
        reason: reason.into(),
        raw_bytes: serde_json::to_vec(raw).map(|v| v.len()).unwrap_or(0),
    }
}

/// One timeline event as an [`Inbound`], or `None` for what is not a message to the bot
/// (its own events, state events, reactions, redactions, redacted messages).
fn read_event(raw: &Value, ctx: &RoomContext<'_>, fallback_id: &str) -> Option<Inbound> {
    let event_id = raw["event_id"].as_str().unwrap_or(fallback_id).to_string();
    let conversation = Conversation {
        id: ctx.room.to_string(),
        group: ctx.group,
    };
    let sender = raw["sender"].as_str().map(str::to_string);
    let inbound = |sender: Option<String>, kind: InboundKind| Inbound {
        event_id: event_id.clone(),
        conversation: conversation.clone(),
        sender,
        sender_name: None,
        kind,
    };
    if !raw.is_object() {
        return Some(inbound(
            None,
            malformed("the event is not a JSON object", raw),
        ));
    }
    let Some(event_type) = raw["type"].as_str() else {
        return Some(inbound(
            sender,
            malformed("`type` is missing or not a string", raw),
        ));
    };
    if raw.get("state_key").is_some() {
        return None;
    }
    if sender.as_deref() == Some(ctx.bot) {
        return None;
    }
    let Some(sender) = sender else {
        return Some(inbound(
            None,
            malformed("`sender` is missing or not a string", raw),
        ));
    };
    if raw["event_id"].as_str().is_none() {
        return Some(inbound(
            Some(sender),
            malformed("`event_id` is missing or not a string", raw),
        ));
    }
    if raw["unsigned"]["redacted_because"].is_object() {
        return None;
    }
    let kind = match event_type {
        "m.room.message" => read_message(raw, ctx),
        "m.reaction" | "m.room.redaction" => return None,
        "m.room.encrypted" => malformed(
            "m.room.encrypted: end-to-end encrypted rooms are not supported",
            raw,
        ),
        other => malformed(format!("unknown event type `{other}`"), raw),
    };
    Some(inbound(Some(sender), kind))
}

fn read_message(raw: &Value, ctx: &RoomContext<'_>) -> InboundKind {
    let Some(content) = raw["content"].as_object() else {
        return malformed("`content` is missing or not an object", raw);
    };
    let relates = &raw["content"]["m.relates_to"];
    let edit = relates["rel_type"].as_str() == Some("m.replace");
    // An edit's new text is in `m.new_content`; its `body` is a fallback ("* …").
    let content = if edit {
        match content.get("m.new_content").and_then(Value::as_object) {
            Some(new) => new,
            None => return malformed("an edit without an `m.new_content` object", raw),
        }
    } else {
        content
    };
    let Some(msgtype) = content.get("msgtype").and_then(Value::as_str) else {
        return malformed("`content.msgtype` is missing or not a string", raw);
    };
    let Some(body) = content.get("body").and_then(Value::as_str) else {
        return malformed("`content.body` is missing or not a string", raw);
    };
    let mentioned = raw["content"]["m.mentions"]["user_ids"]
        .as_array()
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(ctx.bot)))
        || body.contains(ctx.bot);
    match msgtype {
        "m.text" | "m.notice" | "m.emote" => {
            let reply_to = relates["m.in_reply_to"]["event_id"].as_str();
            let text = if reply_to.is_some() {
                strip_reply_fallback(body)
            } else {
                body
            };
            if !edit && let Some(data) = text.strip_prefix(BUTTON_COMMAND) {
                let data = data.lines().next().unwrap_or("").trim_end_matches('\r');
                if !data.is_empty() {
                    return InboundKind::Button {
                        data: data.to_string(),
                        message_id: reply_to.unwrap_or("").to_string(),
                        ack: None,
                    };
                }
            }
            InboundKind::Text {
                text: text.to_string(),
                mentioned,
                forwarded: false,
                link_preview: None,
            }
        }
        "m.file" | "m.image" | "m.audio" | "m.video" => {
            let Some(url) = content.get("url").and_then(Value::as_str) else {
                return if content.contains_key("file") {
                    malformed(
                        format!("{msgtype}: encrypted attachments are not supported"),
                        raw,
                    )
                } else {
                    malformed(
                        format!("{msgtype}: `content.url` is missing or not a string"),
                        raw,
                    )
                };
            };
            if parse_mxc(url).is_none() {
                return malformed(
                    format!("{msgtype}: `content.url` is not an mxc:// URI"),
                    raw,
                );
            }
            let filename = content.get("filename").and_then(Value::as_str);
            let (name, caption) = match filename {
                Some(f) if f != body => (f, Some(body.to_string())),
                Some(f) => (f, None),
                None => (body, None),
            };
            InboundKind::File {
                file: FileRef {
                    id: url.to_string(),
                    name: Some(name.to_string()),
                    size: content
                        .get("info")
                        .and_then(|i| i.get("size"))
                        .and_then(Value::as_u64),
                },
                caption,
                mentioned,
                forwarded: false,
            }
        }
        other => malformed(format!("unknown msgtype `{other}`"), raw),
    }
}

/// A reply's body without the quote older clients put before it (`> …` lines, then a
/// blank line).
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with('>') {
        return body;
    }
    let mut rest = body;
    while rest.starts_with('>') {
        match rest.find('\n') {
            Some(i) => rest = &rest[i + 1..],
            None => return body,
        }
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// `mxc://server/media-id` → (server, media id), both restricted to the characters the
/// spec allows, so neither can change the download path.
fn parse_mxc(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("mxc://")?;
    let (server, media) = rest.split_once('/')?;
    let server_ok = !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let media_ok = !media.is_empty()
        && media
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    (server_ok && media_ok).then_some((server, media))
}

/// The text of a message with buttons: the options as reply commands under it.
fn with_button_commands(text: &str, buttons: &[Button]) -> String {
    if buttons.is_empty() {
        return text.to_string();
    }
    let mut body = format!("{text}\n");
    for button in buttons {
        body.push_str(&format!(
            "\n{}: reply {BUTTON_COMMAND}{}",
            button.label, button.data
        ));
    }
    body
}

#[async_trait]
impl ChatService for Matrix {
    fn platform(&self) -> Platform {
        Platform::Matrix
    }

    fn cursor(&self) -> Option<String> {
        self.since()
    }

    fn resume_from(&self, cursor: &str) {
        *lock(&self.since) = Some(cursor.to_string());
    }

    async fn connect(&self) -> Result<BotIdentity, ChannelError> {
        let user_id = self.whoami().await?;
        if self.since().is_none() {
            let _poll = self.polling.lock().await;
            let first = self.sync(None, Duration::ZERO).await?;
            self.join_invites(&first).await?;
            let next_batch =
                first["next_batch"]
                    .as_str()
                    .ok_or_else(|| ChannelError::Protocol {
                        platform: PLATFORM,
                        method: "sync".into(),
                        detail: "no `next_batch` in the answer".into(),
                    })?;
            *lock(&self.since) = Some(next_batch.to_string());
        }
        Ok(BotIdentity {
            mention: Some(user_id.clone()),
            user_id,
        })
    }

    async fn next(&self, wait: Duration) -> Result<Vec<Inbound>, ChannelError> {
        let _poll = self.polling.lock().await;
        let bot = match self.bot_id() {
            Some(id) => id,
            None => self.whoami().await?,
        };
        let since = self.since();
        let sync = self.sync(since.as_deref(), wait).await?;
        let next_batch = sync["next_batch"]
            .as_str()
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "sync".into(),
                detail: "no `next_batch` in the answer".into(),
            })?
            .to_string();
        self.join_invites(&sync).await?;
        if let Some(left) = sync["rooms"]["leave"].as_object() {
            let mut members = lock(&self.members);
            for room in left.keys() {
                members.remove(room);
            }
        }
        let mut updates = Vec::new();
        if let Some(joined) = sync["rooms"]["join"].as_object() {
            for (room, data) in joined {
                let timeline = &data["timeline"];
                let mut events = timeline["events"].as_array().cloned().unwrap_or_default();
                let membership_changed = data["state"]["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(events.iter())
                    .any(|e| e["type"] == "m.room.member");
                if membership_changed {
                    lock(&self.members).remove(room);
                }
                let mut messages = Vec::new();
                let mut group = None;
                if timeline["limited"] == true
                    && let (Some(prev), Some(since)) =
                        (timeline["prev_batch"].as_str(), since.as_deref())
                {
                    let (mut gap, complete) = self.fill_gap(room, prev, since).await?;
                    if !complete {
                        // Said, not silently skipped: the caller records what was missed.
                        let g = self.member_count(room, &data["summary"]).await? > 2;
                        group = Some(g);
                        messages.push(Inbound {
                            event_id: format!("{next_batch}/{room}/gap"),
                            conversation: Conversation {
                                id: room.clone(),
                                group: g,
                            },
                            sender: None,
                            sender_name: None,
                            kind: InboundKind::Malformed {
                                reason: format!(
                                    "more than {} events arrived in this room since the \
                                     last sync; the oldest were not fetched",
                                    MAX_GAP_PAGES * 100
                                ),
                                raw_bytes: 0,
                            },
                        });
                    }
                    gap.extend(events);
                    events = gap;
                }
                for (i, raw) in events.iter().enumerate() {
                    if raw.get("state_key").is_some() || raw["sender"].as_str() == Some(&bot) {
                        continue;
                    }
                    let group = match group {
                        Some(g) => g,
                        None => {
                            let g = self.member_count(room, &data["summary"]).await? > 2;
                            group = Some(g);
                            g
                        }
                    };
                    let ctx = RoomContext {
                        room,
                        group,
                        bot: &bot,
                    };
                    let fallback = format!("{next_batch}/{room}/{i}");
                    if let Some(mut inbound) = read_event(raw, &ctx, &fallback) {
                        if let InboundKind::Button {
                            data, message_id, ..
                        } = &mut inbound.kind
                            && message_id.is_empty()
                        {
                            *message_id = self.button_message(data).unwrap_or_default();
                        }
                        messages.push(inbound);
                    }
                }
                updates.extend(messages);
            }
        }
        *lock(&self.since) = Some(next_batch);
        Ok(updates)
    }

    async fn send(
        &self,
        conversation: &str,
        text: &str,
        buttons: &[Button],
    ) -> Result<Sent, ChannelError> {
        let body = with_button_commands(text, buttons);
        let event_id = self
            .send_content(conversation, json!({ "msgtype": "m.text", "body": body }))
            .await?;
        for button in buttons {
            self.remember_button(&button.data, &event_id);
        }
        Ok(Sent {
            conversation: conversation.to_string(),
            message_id: event_id,
        })
    }

    async fn edit(&self, sent: &Sent, text: &str) -> Result<(), ChannelError> {
        let content = json!({
            "msgtype": "m.text",
            "body": format!("* {text}"),
            "m.new_content": { "msgtype": "m.text", "body": text },
            "m.relates_to": { "rel_type": "m.replace", "event_id": sent.message_id },
        });
        self.send_content(&sent.conversation, content).await?;
        Ok(())
    }

    async fn ack_button(&self, _ack: &str, _text: &str) -> Result<(), ChannelError> {
        // A reply command needs no acknowledgement.
        Ok(())
    }

    async fn download(&self, file: &FileRef, cap: u64) -> Result<Vec<u8>, ChannelError> {
        let Some((server, media)) = parse_mxc(&file.id) else {
            return Err(ChannelError::Protocol {
                platform: PLATFORM,
                method: "download".into(),
                detail: "the file id is not an mxc:// URI".into(),
            });
        };
        let too_large = ChannelError::TooLarge {
            platform: PLATFORM,
            cap,
        };
        if file.size.is_some_and(|size| size > cap) {
            return Err(too_large);
        }
        let response = self
            .http
            .get(self.endpoint(&[
                "_matrix", "client", "v1", "media", "download", server, media,
            ]))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, e))?;
        let response = check("download", response).await?;
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unreachable(&self.base, e))?;
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "@cordon:example.org";

    fn ctx(group: bool) -> RoomContext<'static> {
        RoomContext {
            room: "!room:example.org",
            group,
            bot: BOT,
        }
    }

    fn read(raw: Value) -> Option<Inbound> {
        read_event(&raw, &ctx(true), "fallback")
    }

    fn message(content: Value) -> Value {
        json!({
            "type": "m.room.message", "event_id": "$ev1", "sender": "@alice:example.org",
            "origin_server_ts": 1, "content": content,
        })
    }

    #[test]
    fn a_text_with_an_intentional_mention() {
        let got = read(message(json!({
            "msgtype": "m.text", "body": "Cordon: hello",
            "m.mentions": { "user_ids": [BOT] },
        })))
        .unwrap();
        assert_eq!(got.event_id, "$ev1");
        assert_eq!(got.sender.as_deref(), Some("@alice:example.org"));
        assert!(got.conversation.group);
        assert_eq!(
            got.kind,
            InboundKind::Text {
                text: "Cordon: hello".into(),
                mentioned: true,
                forwarded: false,
                link_preview: None
            }
        );
    }

    #[test]
    fn a_mention_by_user_id_in_the_body_or_none() {
        let kind = |body: &str| read(message(json!({"msgtype":"m.text","body":body}))).unwrap();
        assert!(matches!(
            kind("hey @cordon:example.org").kind,
            InboundKind::Text {
                mentioned: true,
                ..
            }
        ));
        assert!(matches!(
            kind("hey cordon").kind,
            InboundKind::Text {
                mentioned: false,
                ..
            }
        ));
    }

    #[test]
    fn own_state_reaction_and_redacted_events_are_not_messages() {
        let mut own = message(json!({"msgtype":"m.text","body":"mine"}));
        own["sender"] = json!(BOT);
        assert_eq!(read(own), None);
        assert_eq!(
            read(
                json!({"type":"m.room.member","state_key":"@a:x","sender":"@a:x",
                "event_id":"$m","content":{"membership":"join"}})
            ),
            None
        );
        assert_eq!(
            read(json!({"type":"m.reaction","sender":"@a:x","event_id":"$r",
                "content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e","key":"👍"}}})),
            None
        );
        let mut redacted = message(json!({}));
        redacted["unsigned"] = json!({"redacted_because": {"type": "m.room.redaction"}});
        assert_eq!(read(redacted), None);
    }

    #[test]
    fn a_file_with_a_caption_and_one_without() {
        let got = read(message(json!({
            "msgtype": "m.file", "body": "the report", "filename": "report.pdf",
            "url": "mxc://example.org/AbC-123_x", "info": { "size": 42 },
        })))
        .unwrap();
        assert_eq!(
            got.kind,
            InboundKind::File {
                file: FileRef {
                    id: "mxc://example.org/AbC-123_x".into(),
                    name: Some("report.pdf".into()),
                    size: Some(42)
                },
                caption: Some("the report".into()),
                mentioned: false,
                forwarded: false,
            }
        );
        let got = read(message(json!({
            "msgtype": "m.image", "body": "cat.png", "url": "mxc://example.org/cat",
        })))
        .unwrap();
        assert!(
            matches!(got.kind, InboundKind::File { caption: None, file: FileRef { name: Some(ref n), size: None, .. }, .. } if n == "cat.png")
        );
    }

    #[test]
    fn a_reply_command_is_a_button_press_with_its_data_verbatim() {
        let got = read(message(json!({
            "msgtype": "m.text",
            "body": "> <@cordon:example.org> Run ls?\n\n!press appr:01J/yes=1",
            "m.relates_to": { "m.in_reply_to": { "event_id": "$asked" } },
        })))
        .unwrap();
        assert_eq!(
            got.kind,
            InboundKind::Button {
                data: "appr:01J/yes=1".into(),
                message_id: "$asked".into(),
                ack: None
            }
        );
        // Typed without a reply: the message id is found from what was sent (in `next`).
        let got = read(message(json!({"msgtype":"m.text","body":"!press x y"}))).unwrap();
        assert!(
            matches!(got.kind, InboundKind::Button { ref data, ref message_id, .. } if data == "x y" && message_id.is_empty())
        );
        // Not at the start: just text.
        let got = read(message(json!({"msgtype":"m.text","body":"say !press x"}))).unwrap();
        assert!(matches!(got.kind, InboundKind::Text { .. }));
    }

    #[test]
    fn an_edit_is_text_with_the_new_content_and_never_a_press() {
        let got = read(message(json!({
            "msgtype": "m.text", "body": "* !press yes",
            "m.new_content": { "msgtype": "m.text", "body": "!press yes" },
            "m.relates_to": { "rel_type": "m.replace", "event_id": "$old" },
        })))
        .unwrap();
        assert!(matches!(got.kind, InboundKind::Text { ref text, .. } if text == "!press yes"));
    }

    #[test]
    fn unreadable_events_are_malformed_naming_the_field_or_type() {
        let reason = |raw: Value| match read(raw).unwrap().kind {
            InboundKind::Malformed { reason, raw_bytes } => {
                assert!(raw_bytes > 0);
                reason
            }
            other => panic!("not malformed: {other:?}"),
        };
        assert!(reason(message(json!({"msgtype":"m.text","body":7}))).contains("content.body"));
        assert!(reason(message(json!({"body":"x"}))).contains("content.msgtype"));
        assert!(reason(message(json!("text"))).contains("`content`"));
        assert!(
            reason(message(json!({"msgtype":"m.location","body":"here"}))).contains("m.location")
        );
        assert!(
            reason(message(
                json!({"msgtype":"m.file","body":"f","url":"https://evil/x"})
            ))
            .contains("mxc://")
        );
        assert!(
            reason(message(json!({"msgtype":"m.file","body":"f","file":{}}))).contains("encrypted")
        );
        assert!(
            reason(json!({"type":"com.example.poke","sender":"@a:x","event_id":"$p","content":{}}))
                .contains("com.example.poke")
        );
        assert!(
            reason(json!({"type":"m.room.encrypted","sender":"@a:x","event_id":"$p","content":{}}))
                .contains("encrypted")
        );
        assert!(reason(json!({"sender":"@a:x","event_id":"$p"})).contains("`type`"));
        let got = read(json!(["not", "an", "event"])).unwrap();
        assert_eq!(got.event_id, "fallback");
        assert!(matches!(got.kind, InboundKind::Malformed { .. }));
    }

    #[test]
    fn mxc_uris_cannot_steer_the_download_path() {
        assert_eq!(
            parse_mxc("mxc://example.org:8448/abc_D-1"),
            Some(("example.org:8448", "abc_D-1"))
        );
        for bad in [
            "mxc://example.org/../../admin",
            "mxc://example.org/a/b",
            "mxc://exa/mple.org",
            "mxc:///x",
            "mxc://x/",
            "https://x/y",
            "mxc://x/a?b",
        ] {
            assert_eq!(parse_mxc(bad), None, "{bad}");
        }
    }

    #[test]
    fn buttons_become_reply_commands_under_the_text() {
        let body = with_button_commands(
            "Run ls?",
            &[
                Button {
                    label: "Approve".into(),
                    data: "a:1".into(),
                },
                Button {
                    label: "Deny".into(),
                    data: "d:1".into(),
                },
            ],
        );
        assert_eq!(
            body,
            "Run ls?\n\nApprove: reply !press a:1\nDeny: reply !press d:1"
        );
    }

    #[test]
    fn reply_fallbacks_are_stripped() {
        assert_eq!(
            strip_reply_fallback("> <@a:x> q\n> more\n\nanswer"),
            "answer"
        );
        assert_eq!(strip_reply_fallback("plain"), "plain");
        assert_eq!(strip_reply_fallback("> only a quote"), "> only a quote");
    }
}
