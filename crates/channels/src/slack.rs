//! [`Slack`]: the Slack channel, over Socket Mode (updates) and the Web API (sending).
//!
//! Two tokens, both passed in by the caller from the vault and never logged: the bot's
//! `xoxb-` token for the Web API and files, and the app-level `xapp-` token, used only
//! for `apps.connections.open`, which answers the socket's one-time URL.
//!
//! Guarantees:
//! - **Nothing lost, nothing twice.** An envelope is acknowledged only after `next` has
//!   handed it to the caller and the caller has asked for more: frames read from the
//!   socket wait in a queue inside the client (which survives a cancelled `next`), and
//!   the envelopes one call returned are acknowledged at the start of the next call —
//!   the gateway asks again only once it has stored what it was given (its durable
//!   per-conversation queue). An envelope the process never stored is never
//!   acknowledged, so Slack delivers it again (`retry_attempt`) on the next socket.
//!   Acknowledging on receipt instead would lose every queued envelope to a crash or a
//!   dropped client. A redelivery of
//!   something already returned is dropped by its envelope id, its event id, or, for a
//!   message, its `channel:ts` (Slack sends a mention as both `message` and
//!   `app_mention`), and acknowledged so that Slack stops. The caller must keep calling
//!   `next` (Slack wants an acknowledgement within seconds; a late one costs only a
//!   redelivery, which is dropped).
//! - **Reconnection.** A closed socket, an error on it or a `disconnect` message opens a
//!   new one within the same `next` (a few times at most, then an `Err`, so the caller
//!   backs off instead of spinning).
//! - **The bot's own messages are skipped**, not returned as updates nor as malformed:
//!   Slack echoes every message the bot posts or edits (see `event.rs` for the rest of
//!   what an event becomes).
//! - **Tokens go only to Slack.** The socket URL and a file's `url_private` come from
//!   Slack's answers; the socket is opened, and the bot token sent with a download, only
//!   when the URL's host is the API's host or below it (`slack.com` → `files.slack.com`,
//!   `wss-primary.slack.com`) and its scheme is as secure as the API's. The socket is
//!   dialled by `http::websocket` under the same rules as the Web API client (the same
//!   resolver: no non-public address below the API host, a timeout), and a refused URL
//!   is a [`ChannelError::Refused`], which the gateway records.
//! - **Outbound messages are inert**: `&`, `<` and `>` are escaped (so the agent's text
//!   cannot ping `<!channel>` or forge a link), and link unfurling is off (so a URL the
//!   agent writes is not fetched by Slack's unfurler).
//!
//! What it does not do: the socket does not go through the caller's `reqwest::Client`
//! (a WebSocket is not a reqwest request), so anything set on that client alone — a
//! proxy, another resolver — does not apply to it; the guard it goes through is derived
//! from the API URL, as `http::client_for` derives the client's. Threads, reactions,
//! slash commands and modals are not handled (they are returned as malformed).

mod event;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::error::ChannelError;
use crate::http::WebSocketError;
use crate::service::{BotIdentity, Button, ChatService, FileRef, Inbound, Platform, Sent};
use event::{Frame, Item, Me};

const PLATFORM: &str = "slack";

/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// How many sockets one `next` opens before it gives up with an `Err`.
const MAX_SOCKETS_PER_CALL: usize = 3;

/// How many returned ids are remembered to drop redeliveries.
const REMEMBERED_IDS: usize = 8192;

/// Slack's cap on a section block's text.
const SECTION_TEXT_MAX: usize = 3000;

/// Slack's cap on a button's label.
const BUTTON_LABEL_MAX: usize = 75;

type Socket = crate::http::WebSocket;

/// A Slack app in one workspace.
pub struct Slack {
    api: Url,
    bot_token: String,
    app_token: String,
    http: reqwest::Client,
    me: std::sync::Mutex<Option<Me>>,
    socket: tokio::sync::Mutex<SocketState>,
    /// channel id → is a direct conversation (from `conversations.info`).
    channel_kinds: std::sync::Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("api", &self.api.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct SocketState {
    socket: Option<Socket>,
    /// Read from the socket, not yet returned (hence not yet acknowledged).
    queue: VecDeque<Pending>,
    /// Returned by the last `next`, acknowledged when the caller asks for more (it has
    /// then stored what it was given).
    unacked: Vec<String>,
    returned: RecentIds,
}

struct Pending {
    envelope_id: Option<String>,
    items: Vec<Item>,
}

/// The last [`REMEMBERED_IDS`] ids returned.
#[derive(Default)]
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// A Web API call's arguments.
enum Args {
    None,
    Form(Vec<(&'static str, String)>),
    Json(Value),
}

impl Slack {
    /// A client of the Web API at `api` (normally [`DEFAULT_API_URL`]) with the bot's
    /// `xoxb-` token and the app-level `xapp-` token, through `http`.
    pub fn new(api: Url, bot_token: String, app_token: String, http: reqwest::Client) -> Slack {
        let mut api = api;
        if !api.path().ends_with('/') {
            let path = format!("{}/", api.path());
            api.set_path(&path);
        }
        Slack {
            api,
            bot_token,
            app_token,
            http,
            me: std::sync::Mutex::new(None),
            socket: tokio::sync::Mutex::new(SocketState::default()),
            channel_kinds: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn method_url(&self, method: &str) -> Result<Url, ChannelError> {
        self.api.join(method).map_err(|e| ChannelError::Protocol {
            platform: PLATFORM,
            method: method.to_string(),
            detail: format!("bad API URL: {e}"),
        })
    }

    /// Call a Web API method; `Ok` only for `"ok": true`.
    async fn call(&self, method: &str, token: &str, args: Args) -> Result<Value, ChannelError> {
        let url = self.method_url(method)?;
        let mut req = self.http.post(url.clone()).bearer_auth(token);
        req = match args {
            Args::None => req,
            Args::Form(pairs) => req.form(&pairs),
            Args::Json(v) => req.json(&v),
        };
        let resp = req.send().await.map_err(|e| cannot_reach(&url, e))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(api_error(
                method,
                "rate limited (HTTP 429)".into(),
                retry_after,
            ));
        }
        if !status.is_success() {
            return Err(api_error(method, format!("HTTP {status}"), retry_after));
        }
        let body = resp.bytes().await.map_err(|e| cannot_reach(&url, e))?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| ChannelError::Protocol {
            platform: PLATFORM,
            method: method.to_string(),
            detail: format!("not JSON: {e}"),
        })?;
        if v["ok"].as_bool() == Some(true) {
            return Ok(v);
        }
        let error = v["error"].as_str().unwrap_or("no `ok` in the answer");
        match error {
            "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "not_allowed_token_type"
            | "no_permission" => Err(ChannelError::Unauthorized {
                platform: PLATFORM,
                detail: format!("{method}: {error}"),
            }),
            _ => Err(api_error(method, error.to_string(), retry_after)),
        }
    }

    /// Who the bot is, asking Slack the first time.
    async fn me(&self) -> Result<Me, ChannelError> {
        if let Some(me) = self.lock_me().clone() {
            return Ok(me);
        }
        self.connect().await?;
        self.lock_me()
            .clone()
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "auth.test".into(),
                detail: "no identity after auth.test".into(),
            })
    }

    fn lock_me(&self) -> std::sync::MutexGuard<'_, Option<Me>> {
        self.me.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `url` is Slack's own: the API's host or a host below it, over a scheme
    /// at least as secure as the API's (`secure`/`plain` being `https`/`http` for files,
    /// `wss`/`ws` for the socket).
    fn is_slack_url(&self, url: &Url, secure: &str, plain: &str) -> bool {
        let scheme_ok = if self.api.scheme() == "https" {
            url.scheme() == secure
        } else {
            url.scheme() == secure || url.scheme() == plain
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        scheme_ok && crate::http::ApiHost::of(&self.api).admits_name(host)
    }

    /// `apps.connections.open`, then the WebSocket, through the channel's guard
    /// ([`crate::http::websocket`]): refused unless the URL is `wss` (`ws` only when the
    /// API is `http`) on the API host or below it, at a public address unless it is the
    /// API host itself.
    async fn open_socket(&self) -> Result<Socket, ChannelError> {
        const METHOD: &str = "apps.connections.open";
        let v = self.call(METHOD, &self.app_token, Args::None).await?;
        let url = v["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: METHOD.into(),
                detail: "`url` is missing or not a URL".into(),
            })?;
        // The URL's query is a one-time ticket: kept out of errors and logs.
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        );
        match crate::http::websocket(&self.api, &url).await {
            Ok(socket) => Ok(socket),
            Err(WebSocketError::Refused(reason)) => {
                tracing::warn!(url = %shown, %reason, "slack: socket URL refused");
                Err(ChannelError::Refused {
                    platform: PLATFORM,
                    what: format!("socket URL {shown} from {METHOD}"),
                    reason: reason.to_string(),
                })
            }
            Err(WebSocketError::Status(status)) => Err(api_error(
                "socket",
                format!("handshake answered HTTP {status}"),
                None,
            )),
            Err(WebSocketError::Unreachable(detail)) => Err(ChannelError::Unreachable {
                platform: PLATFORM,
                url: shown,
                detail,
            }),
        }
    }

    /// Whether `channel` is a direct conversation, from `conversations.info` (cached).
    /// Should Slack not say, a `D` id is one (Slack's naming of direct conversations).
    async fn is_direct(&self, channel: &str) -> bool {
        if let Some(&direct) = self.kinds().get(channel) {
            return direct;
        }
        let args = Args::Form(vec![("channel", channel.to_string())]);
        match self.call("conversations.info", &self.bot_token, args).await {
            Ok(v) => match v["channel"]["is_im"].as_bool() {
                Some(direct) => {
                    self.kinds().insert(channel.to_string(), direct);
                    direct
                }
                None => channel.starts_with('D'),
            },
            Err(e) => {
                tracing::warn!(channel, error = %e, "slack: conversations.info failed; judging by the id");
                channel.starts_with('D')
            }
        }
    }

    fn kinds(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.channel_kinds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read one frame's worth into the queue; `false` if the socket is gone.
    async fn take_frame(st: &mut SocketState, msg: Message, me: &Me) -> bool {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(_) => {
                st.socket = None;
                return false;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return true,
        };
        match event::parse_frame(&text, me) {
            Frame::Hello => {}
            Frame::Disconnect { reason } => {
                tracing::debug!(reason, "slack: socket retired by Slack; reconnecting");
                if let Some(mut s) = st.socket.take() {
                    // A close frame, politely; Slack may never answer it, so not waited on.
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.close(None)).await;
                }
                return false;
            }
            Frame::Stray(item) => st.queue.push_back(Pending {
                envelope_id: None,
                items: vec![item],
            }),
            Frame::Envelope { envelope_id, items } => {
                let queued = |id: &str| {
                    st.queue.iter().any(|p| {
                        p.envelope_id.as_deref() == Some(id)
                            || p.items.iter().any(|i| i.keys.iter().any(|k| k == id))
                    })
                };
                if queued(&envelope_id) {
                    return true; // acknowledged when the queued copy is returned
                }
                let fresh: Vec<Item> = if st.returned.contains(&envelope_id) {
                    Vec::new()
                } else {
                    items
                        .into_iter()
                        .filter(|i| !i.keys.iter().any(|k| st.returned.contains(k) || queued(k)))
                        .collect()
                };
                if fresh.is_empty() {
                    // Nothing to hand over (an echo, a redelivery): acknowledge now.
                    st.returned.insert(envelope_id.clone());
                    return ack(st, &[envelope_id]).await;
                }
                st.queue.push_back(Pending {
                    envelope_id: Some(envelope_id),
                    items: fresh,
                });
            }
        }
        true
    }
}

/// Acknowledge envelopes; `false` (and the socket dropped) if it failed.
async fn ack(st: &mut SocketState, ids: &[String]) -> bool {
    let Some(socket) = st.socket.as_mut() else {
        return false;
    };
    let mut ok = true;
    for id in ids {
        let frame = json!({ "envelope_id": id }).to_string();
        if socket.feed(Message::Text(frame.into())).await.is_err() {
            ok = false;
            break;
        }
    }
    if ok && socket.flush().await.is_err() {
        ok = false;
    }
    if !ok {
        st.socket = None;
    }
    ok
}

#[async_trait]
impl ChatService for Slack {
    fn platform(&self) -> Platform {
        Platform::Slack
    }

    /// `auth.test` with the bot token. The mention is `<@U…>`, as it appears in text.
    async fn connect(&self) -> Result<BotIdentity, ChannelError> {
        let v = self.call("auth.test", &self.bot_token, Args::None).await?;
        let user_id = v["user_id"]
            .as_str()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "auth.test".into(),
                detail: "`user_id` is missing".into(),
            })?
            .to_string();
        let bot_id = v["bot_id"].as_str().map(str::to_string);
        *self.lock_me() = Some(Me {
            user_id: user_id.clone(),
            bot_id,
        });
        Ok(BotIdentity {
            mention: Some(format!("<@{user_id}>")),
            user_id,
        })
    }

    async fn next(&self, wait: Duration) -> Result<Vec<Inbound>, ChannelError> {
        let me = self.me().await?;
        let mut st = self.socket.lock().await;
        // The caller asks again once it has kept (judged, queued, stored) what the last
        // call returned: only now are those envelopes acknowledged.
        let done = std::mem::take(&mut st.unacked);
        if !done.is_empty() && !ack(&mut st, &done).await {
            // Slack will deliver these again; they are remembered and dropped then.
            tracing::debug!("slack: acknowledgement failed; redeliveries will be dropped");
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut opened = 0;
        while st.queue.is_empty() {
            if st.socket.is_none() {
                if opened == MAX_SOCKETS_PER_CALL {
                    return Err(api_error(
                        "socket",
                        format!("the socket closed {opened} times in one wait"),
                        None,
                    ));
                }
                let socket = self.open_socket().await?;
                st.socket = Some(socket);
                opened += 1;
            }
            let Some(socket) = st.socket.as_mut() else {
                continue;
            };
            let msg = match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => break, // a quiet period
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "slack: socket failed; reconnecting");
                    st.socket = None;
                    continue;
                }
                Ok(None) => {
                    st.socket = None;
                    continue;
                }
            };
            if !Self::take_frame(&mut st, msg, &me).await {
                continue;
            }
            // Whatever else already arrived goes in the same batch.
            while let Some(socket) = st.socket.as_mut() {
                let Some(Some(Ok(msg))) = socket.next().now_or_never() else {
                    break;
                };
                if !Self::take_frame(&mut st, msg, &me).await {
                    break;
                }
            }
        }
        // Still queued, so that a cancelled call loses nothing.
        for i in 0..st.queue.len() {
            for j in 0..st.queue[i].items.len() {
                if st.queue[i].items[j].resolve_channel {
                    let id = st.queue[i].items[j].inbound.conversation.id.clone();
                    let direct = self.is_direct(&id).await;
                    let item = &mut st.queue[i].items[j];
                    item.inbound.conversation.group = !direct;
                    item.resolve_channel = false;
                }
            }
        }
        let ids: Vec<String> = st
            .queue
            .iter()
            .filter_map(|p| p.envelope_id.clone())
            .collect();
        st.unacked = ids;
        let mut out = Vec::new();
        let queue = std::mem::take(&mut st.queue);
        for pending in queue {
            if let Some(id) = pending.envelope_id {
                st.returned.insert(id);
            }
            for item in pending.items {
                for key in item.keys {
                    st.returned.insert(key);
                }
                out.push(item.inbound);
            }
        }
        Ok(out)
    }

    /// `chat.postMessage`; buttons are an `actions` block whose buttons' `value` is the
    /// button's data, returned verbatim when pressed.
    async fn send(
        &self,
        conversation: &str,
        text: &str,
        buttons: &[Button],
    ) -> Result<Sent, ChannelError> {
        let mut body = json!({
            "channel": conversation,
            "text": escape(text),
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if !buttons.is_empty() {
            let mut blocks = sections(text);
            blocks.push(actions(buttons));
            body["blocks"] = Value::Array(blocks);
        }
        let v = self
            .call("chat.postMessage", &self.bot_token, Args::Json(body))
            .await?;
        let message_id = v["ts"]
            .as_str()
            .ok_or_else(|| ChannelError::Protocol {
                platform: PLATFORM,
                method: "chat.postMessage".into(),
                detail: "`ts` is missing".into(),
            })?
            .to_string();
        Ok(Sent {
            conversation: v["channel"].as_str().unwrap_or(conversation).to_string(),
            message_id,
        })
    }

    /// `chat.update` with the new text as the only blocks, which removes the buttons.
    async fn edit(&self, sent: &Sent, text: &str) -> Result<(), ChannelError> {
        let body = json!({
            "channel": sent.conversation,
            "ts": sent.message_id,
            "text": escape(text),
            "blocks": sections(text),
        });
        self.call("chat.update", &self.bot_token, Args::Json(body))
            .await
            .map(|_| ())
    }

    /// Nothing to do: the envelope's acknowledgement is the press's.
    async fn ack_button(&self, _ack: &str, _text: &str) -> Result<(), ChannelError> {
        Ok(())
    }

    /// GET the file's `url_private` (asking `files.info` for it when the event gave only
    /// the file's id) with the bot token, counting bytes as they arrive.
    async fn download(&self, file: &FileRef, cap: u64) -> Result<Vec<u8>, ChannelError> {
        if file.size.is_some_and(|s| s > cap) {
            return Err(ChannelError::TooLarge {
                platform: PLATFORM,
                cap,
            });
        }
        let url = if file.id.starts_with("https://") || file.id.starts_with("http://") {
            file.id.clone()
        } else {
            let args = Args::Form(vec![("file", file.id.clone())]);
            let v = self.call("files.info", &self.bot_token, args).await?;
            if v["file"]["size"].as_u64().is_some_and(|s| s > cap) {
                return Err(ChannelError::TooLarge {
                    platform: PLATFORM,
                    cap,
                });
            }
            v["file"]["url_private"]
                .as_str()
                .ok_or_else(|| ChannelError::Protocol {
                    platform: PLATFORM,
                    method: "files.info".into(),
                    detail: "`file.url_private` is missing".into(),
                })?
                .to_string()
        };
        let url = Url::parse(&url).map_err(|e| ChannelError::Protocol {
            platform: PLATFORM,
            method: "download".into(),
            detail: format!("`url_private` is not a URL: {e}"),
        })?;
        if !self.is_slack_url(&url, "https", "http") {
            return Err(ChannelError::Protocol {
                platform: PLATFORM,
                method: "download".into(),
                detail: format!(
                    "file URL host {} is not Slack's; the token is not sent there",
                    url.host_str().unwrap_or_default()
                ),
            });
        }
        let mut resp = self
            .http
            .get(url.clone())
            .bearer_auth(&self.bot_token)
            .send()
            .await
            .map_err(|e| cannot_reach(&url, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ChannelError::Unauthorized {
                platform: PLATFORM,
                detail: format!("download: HTTP {status}"),
            });
        }
        if !status.is_success() {
            let retry = retry_after(resp.headers());
            return Err(api_error("download", format!("HTTP {status}"), retry));
        }
        // Slack answers a login page, not an error, when the token may not read files.
        let html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        if html {
            return Err(api_error(
                "download",
                "an HTML page instead of the file (does the app have files:read?)".into(),
                None,
            ));
        }
        if resp.content_length().is_some_and(|l| l > cap) {
            return Err(ChannelError::TooLarge {
                platform: PLATFORM,
                cap,
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| cannot_reach(&url, e))? {
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                return Err(ChannelError::TooLarge {
                    platform: PLATFORM,
                    cap,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// Slack's escaping of the three characters its markup gives meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` as section blocks, each at most Slack's cap once escaped (a character is
/// escaped on its own, so no escape is cut in two).
fn sections(text: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut chunk = String::new();
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => c.encode_utf8(&mut buf),
        };
        if chunk.len() + piece.len() > SECTION_TEXT_MAX {
            blocks.push(std::mem::take(&mut chunk));
        }
        chunk.push_str(piece);
    }
    if !chunk.is_empty() || blocks.is_empty() {
        blocks.push(chunk);
    }
    blocks
        .into_iter()
        .map(|t| {
            // Slack refuses an empty section.
            let t = if t.is_empty() { " ".to_string() } else { t };
            json!({"type": "section", "text": {"type": "mrkdwn", "text": t}})
        })
        .collect()
}

fn actions(buttons: &[Button]) -> Value {
    let elements: Vec<Value> = buttons
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let label: String = b.label.chars().take(BUTTON_LABEL_MAX).collect();
            json!({
                "type": "button",
                "action_id": format!("cordon-{i}"),
                "text": {"type": "plain_text", "text": label, "emoji": true},
                "value": b.data,
            })
        })
        .collect();
    json!({"type": "actions", "block_id": "cordon-actions", "elements": elements})
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn api_error(method: &str, detail: String, retry_after: Option<u64>) -> ChannelError {
    ChannelError::Api {
        platform: PLATFORM,
        method: method.to_string(),
        detail,
        retry_after,
    }
}

fn cannot_reach(url: &Url, e: reqwest::Error) -> ChannelError {
    ChannelError::Unreachable {
        platform: PLATFORM,
        url: format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        ),
        detail: e.without_url().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(api: &str) -> Slack {
        Slack::new(
            Url::parse(api).unwrap(),
            "xoxb-t".into(),
            "xapp-t".into(),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn tokens_go_only_to_slack_hosts() {
        let s = slack(DEFAULT_API_URL);
        let ok = |u: &str, sec, plain| s.is_slack_url(&Url::parse(u).unwrap(), sec, plain);
        assert!(ok(
            "https://files.slack.com/files-pri/T-F/a.txt",
            "https",
            "http"
        ));
        assert!(ok(
            "wss://wss-primary.slack.com/link/?ticket=1",
            "wss",
            "ws"
        ));
        assert!(!ok(
            "http://files.slack.com/files-pri/T-F/a.txt",
            "https",
            "http"
        ));
        assert!(!ok("ws://wss-primary.slack.com/link/", "wss", "ws"));
        assert!(!ok(
            "https://files.slack.com.evil.example/x",
            "https",
            "http"
        ));
        assert!(!ok("https://evilslack.com/x", "https", "http"));
        assert!(!ok("https://169.254.169.254/latest", "https", "http"));
        let local = slack("http://127.0.0.1:9/api");
        assert_eq!(local.api.as_str(), "http://127.0.0.1:9/api/");
        assert!(local.is_slack_url(&Url::parse("ws://127.0.0.1:9/socket").unwrap(), "wss", "ws"));
        assert!(!local.is_slack_url(&Url::parse("ws://127.0.0.2:9/socket").unwrap(), "wss", "ws"));
    }

    #[test]
    fn outbound_text_is_inert() {
        assert_eq!(
            escape("<!channel> & <https://x|y>"),
            "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
        );
    }

    #[test]
    fn long_text_is_cut_into_sections_without_splitting_escapes() {
        let text = format!("{}{}", "a".repeat(2998), "<b>".repeat(2000));
        let blocks = sections(&text);
        assert!(blocks.len() > 1);
        let mut joined = String::new();
        for b in &blocks {
            let t = b["text"]["text"].as_str().unwrap();
            assert!(t.len() <= SECTION_TEXT_MAX, "{}", t.len());
            assert!(!t.ends_with('&') && !t.starts_with("lt;") && !t.starts_with("gt;"));
            joined.push_str(t);
        }
        assert_eq!(joined, escape(&text));
        assert_eq!(sections("").len(), 1);
    }

    #[test]
    fn buttons_carry_their_data_verbatim() {
        let a = actions(&[
            Button {
                label: "Approve".into(),
                data: "ap:01J:yes".into(),
            },
            Button {
                label: "x".repeat(100),
                data: "ap:01J:no".into(),
            },
        ]);
        assert_eq!(a["elements"][0]["value"], "ap:01J:yes");
        assert_eq!(a["elements"][1]["value"], "ap:01J:no");
        assert_eq!(a["elements"][1]["text"]["text"].as_str().unwrap().len(), 75);
        assert_ne!(a["elements"][0]["action_id"], a["elements"][1]["action_id"]);
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut ids = RecentIds::default();
        for i in 0..=REMEMBERED_IDS {
            ids.insert(i.to_string());
        }
        assert!(!ids.contains("0"));
        assert!(ids.contains("1"));
        assert!(ids.contains(&REMEMBERED_IDS.to_string()));
    }
}
