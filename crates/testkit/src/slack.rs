//! [`FakeSlack`]: Slack's Web API and Socket Mode on `127.0.0.1`, for the Slack channel's
//! tests. Real HTTP and a real WebSocket, in the shapes Slack documents.
//!
//! Web API (`POST /api/METHOD`, a form or JSON body, the token as `Authorization: Bearer`
//! or a `token` field): `apps.connections.open` (the app-level `xapp-` token) answers the
//! socket's URL; `auth.test`, `chat.postMessage`, `chat.update`, `conversations.info` and
//! `files.info` take the bot's `xoxb-` token. Another token is `invalid_auth`, the wrong
//! kind of token `not_allowed_token_type`, none `not_authed`. Files are served at their
//! `url_private` (`/files-pri/…`) to the bot token only.
//!
//! Socket Mode (`GET /socket?ticket=…`, one ticket per `apps.connections.open`): the
//! server sends `hello`, then every pushed envelope (`events_api`, `interactive`), and
//! expects `{"envelope_id": …}` acknowledgements. An envelope not acknowledged when its
//! connection ends is delivered again on the next connection with `retry_attempt` one
//! higher, as Slack retries. The newest connection gets the envelopes; older ones close.
//!
//! Test control: push messages, files, button presses or raw frames; read what the bot
//! sent ([`FakeSlack::sent`]); take the service down ([`FakeSlack::set_down`]: HTTP 503
//! and no socket), answer the next Web API call with 429 ([`FakeSlack::rate_limit_next`]),
//! drop the socket, ask the client to reconnect (`disconnect`), or hand out another
//! socket URL ([`FakeSlack::answer_socket_url`]). Every Web API call is
//! counted per method.
//!
//! What it does not do: no signing secrets, no scopes, no threads or reactions, no pagination;
//! it checks only what a Slack client could get wrong in ways that matter to Cordon.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

/// The bot's token (`xoxb-`), for the Web API.
pub const SLACK_BOT_TOKEN: &str = "xoxb-1-fake-cordon-bot-token";
/// The app-level token (`xapp-`), for `apps.connections.open` only.
pub const SLACK_APP_TOKEN: &str = "xapp-1-fake-cordon-app-token";
/// The bot user's id, as `auth.test` answers it and as it appears in `<@…>` mentions.
pub const SLACK_BOT_USER: &str = "UCORDONBOT";
/// The bot's `bot_id`, carried by the messages it sends.
pub const SLACK_BOT_ID: &str = "BCORDONBOT";
/// The workspace (team) id.
pub const SLACK_TEAM: &str = "TFAKETEAM";

/// A fake Slack workspace on `127.0.0.1`. Dropping it shuts the server down.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A message the bot sent (`chat.postMessage`) or edited (`chat.update`).
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// `chat.postMessage` or `chat.update`.
    pub method: String,
    pub channel: String,
    pub ts: String,
    pub text: String,
    /// The `blocks` as sent (`Value::Null` when there were none).
    pub blocks: Value,
}

impl SentMessage {
    /// The buttons in the message's `actions` blocks: `(label, value)`.
    pub fn buttons(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for block in self.blocks.as_array().into_iter().flatten() {
            if block["type"] != "actions" {
                continue;
            }
            for el in block["elements"].as_array().into_iter().flatten() {
                if el["type"] == "button" {
                    out.push((
                        el["text"]["text"].as_str().unwrap_or_default().to_string(),
                        el["value"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
        out
    }
}

/// What a push put on the socket's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub envelope_id: String,
    /// The Events API `event_id` (`Ev…`); empty for interactive payloads.
    pub event_id: String,
    pub channel: String,
    /// The message's `ts` (for a button press, the pressed message's).
    pub ts: String,
}

struct Shared {
    state: Mutex<FakeState>,
    /// Woken on every push and every socket command.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct FakeState {
    down: bool,
    rate_limit_next: Option<u64>,
    calls: BTreeMap<String, usize>,
    /// Envelopes not yet written to a socket.
    pending: VecDeque<Frame>,
    /// Envelopes written but not acknowledged.
    inflight: Vec<Frame>,
    acked: Vec<String>,
    /// Every frame written to a socket, in order (hello included).
    delivered: Vec<String>,
    sent: Vec<SentMessage>,
    tickets: Vec<String>,
    /// The live connection's number; a connection whose number is not this one closes.
    socket_gen: u64,
    connections: usize,
    disconnect: Option<String>,
    /// Echo the bot's posted messages as events.
    echo: bool,
    /// Web API methods answered only after a pause.
    slow: HashMap<String, Duration>,
    /// The socket URL `apps.connections.open` answers instead of the fake's own.
    socket_url: Option<String>,
    /// channel id → is_im.
    conversations: HashMap<String, bool>,
    files: HashMap<String, FakeFile>,
    counter: u64,
}

#[derive(Clone)]
struct Frame {
    envelope_id: Option<String>,
    /// The envelope as JSON when it is JSON (its `retry_attempt` is raised on redelivery).
    json: Option<Value>,
    raw: String,
}

impl Frame {
    fn text(&self) -> String {
        match &self.json {
            Some(v) => v.to_string(),
            None => self.raw.clone(),
        }
    }
}

struct FakeFile {
    name: String,
    bytes: Bytes,
}

impl FakeSlack {
    /// Start on a random loopback port. Panics only if the machine cannot bind loopback.
    pub async fn start() -> FakeSlack {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(l) => l,
            Err(e) => panic!("FakeSlack cannot bind 127.0.0.1: {e}"),
        };
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState::default()),
            changed: tokio::sync::Notify::new(),
        });
        let app = Router::new()
            .route("/api/{method}", any(api))
            .route("/socket", get(socket))
            .route("/files-pri/{file}/{name}", get(file_download))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        FakeSlack {
            addr,
            shared,
            shutdown: Some(tx),
            task,
        }
    }

    /// `http://127.0.0.1:PORT/api/`: the Web API base (Slack's is `https://slack.com/api/`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The DM channel between `user` and the bot (`D…`).
    pub fn dm_channel(user: &str) -> String {
        format!("D{}", user.trim_start_matches('U'))
    }

    /// `user` writes `text` to the bot in their direct conversation (`channel_type: im`).
    pub fn push_dm(&self, user: &str, text: &str) -> Pushed {
        let channel = FakeSlack::dm_channel(user);
        self.push_message_event(json!({
            "type": "message", "channel": channel, "user": user, "text": text,
        }))
    }

    /// `user` writes `text` in `channel` (`C…` public, `G…` private); a mention of the
    /// bot is `<@UCORDONBOT>` in `text`, as Slack writes it.
    pub fn push_channel_message(&self, channel: &str, user: &str, text: &str) -> Pushed {
        self.push_message_event(json!({
            "type": "message", "channel": channel, "user": user, "text": text,
        }))
    }

    /// The `app_mention` event Slack sends (besides the `message` event) when `text`
    /// mentions the bot in a channel. It carries no `channel_type`.
    pub fn push_app_mention(&self, channel: &str, user: &str, text: &str, ts: &str) -> Pushed {
        self.register_channel(channel);
        self.push_event(json!({
            "type": "app_mention", "channel": channel, "user": user, "text": text,
            "ts": ts, "event_ts": ts,
        }))
    }

    /// `user` shares a file (served at its `url_private` to the bot token) with `caption`.
    pub fn push_file(
        &self,
        channel: &str,
        user: &str,
        name: &str,
        bytes: &[u8],
        caption: &str,
    ) -> Pushed {
        let file = self.add_file(name, bytes);
        self.push_message_event(json!({
            "type": "message", "subtype": "file_share", "channel": channel, "user": user,
            "text": caption, "files": [file], "upload": false,
        }))
    }

    /// Register a file and answer its object as `files.info` does.
    pub fn add_file(&self, name: &str, bytes: &[u8]) -> Value {
        let mut st = self.lock();
        st.counter += 1;
        let id = format!("F{:08}", st.counter);
        st.files.insert(
            id.clone(),
            FakeFile {
                name: name.to_string(),
                bytes: Bytes::copy_from_slice(bytes),
            },
        );
        file_object(&self.base_url(), &id, name, bytes.len())
    }

    /// `user` shares another person's message (`original`, written by `author`) into
    /// `channel`, with `comment` as their own words: Slack puts the original in an
    /// attachment marked `is_share` / `is_msg_unfurl`.
    pub fn push_forwarded(
        &self,
        channel: &str,
        user: &str,
        comment: &str,
        author: &str,
        original: &str,
    ) -> Pushed {
        self.push_message_event(json!({
            "type": "message", "channel": channel, "user": user, "text": comment,
            "attachments": [{
                "id": 1, "is_share": true, "is_msg_unfurl": true, "author_id": author,
                "author_name": "someone", "text": original, "fallback": original,
                "from_url": "https://fake.slack.com/archives/C0/p1",
            }],
        }))
    }

    /// `user` posts `text` with a link that Slack unfurled into a preview.
    pub fn push_link_preview(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        url: &str,
        title: &str,
        description: &str,
    ) -> Pushed {
        self.push_message_event(json!({
            "type": "message", "channel": channel, "user": user, "text": text,
            "attachments": [{
                "id": 1, "original_url": url, "from_url": url, "title": title,
                "title_link": url, "text": description, "fallback": title,
                "service_name": "example",
            }],
        }))
    }

    /// The bot's own message echoed back (as Slack does for messages the bot posts).
    pub fn push_own_message(&self, channel: &str, text: &str) -> Pushed {
        self.push_message_event(json!({
            "type": "message", "channel": channel, "user": SLACK_BOT_USER,
            "bot_id": SLACK_BOT_ID, "text": text,
        }))
    }

    /// `user` edits their message `ts` in `channel` from `old` to `new`.
    pub fn push_message_changed(
        &self,
        channel: &str,
        user: &str,
        ts: &str,
        old: &str,
        new: &str,
    ) -> Pushed {
        self.push_message_event(json!({
            "type": "message", "subtype": "message_changed", "channel": channel,
            "hidden": true,
            "message": {"type": "message", "user": user, "text": new, "ts": ts,
                        "edited": {"user": user, "ts": ts}},
            "previous_message": {"type": "message", "user": user, "text": old, "ts": ts},
        }))
    }

    /// `user` presses the button with `value` under the bot's message `message_ts`.
    pub fn push_block_action(
        &self,
        channel: &str,
        user: &str,
        message_ts: &str,
        value: &str,
    ) -> Pushed {
        self.register_channel(channel);
        let (envelope_id, action_ts) = {
            let mut st = self.lock();
            st.counter += 1;
            (format!("env-{:06}", st.counter), next_ts(st.counter))
        };
        let envelope = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": false,
            "payload": {
                "type": "block_actions",
                "user": {"id": user, "username": "someone", "name": "someone", "team_id": SLACK_TEAM},
                "api_app_id": "AFAKEAPP",
                "token": "verification-token",
                "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                              "is_ephemeral": false},
                "trigger_id": "1.2.3",
                "team": {"id": SLACK_TEAM, "domain": "fake"},
                "channel": {"id": channel, "name": "somewhere"},
                "message": {"type": "message", "ts": message_ts, "user": SLACK_BOT_USER,
                            "bot_id": SLACK_BOT_ID, "text": "…"},
                "response_url": format!("{}response/1", self.base_url()),
                "actions": [{
                    "action_id": "cordon-0", "block_id": "cordon-actions",
                    "text": {"type": "plain_text", "text": "button"},
                    "value": value, "type": "button", "action_ts": action_ts,
                }],
            },
        });
        self.enqueue(Some(envelope_id.clone()), Some(envelope), String::new());
        Pushed {
            envelope_id,
            event_id: String::new(),
            channel: channel.to_string(),
            ts: message_ts.to_string(),
        }
    }

    /// A message event: gets `ts`, `event_ts`, `team` and (unless set) a `channel_type`
    /// from the channel id's first letter (`D` im, `G` group, else channel).
    pub fn push_message_event(&self, mut event: Value) -> Pushed {
        let channel = event["channel"].as_str().unwrap_or_default().to_string();
        self.register_channel(&channel);
        let ts = {
            let mut st = self.lock();
            st.counter += 1;
            next_ts(st.counter)
        };
        if let Some(obj) = event.as_object_mut() {
            obj.entry("ts").or_insert_with(|| json!(ts));
            obj.entry("event_ts").or_insert_with(|| json!(ts));
            obj.entry("team").or_insert_with(|| json!(SLACK_TEAM));
            obj.entry("channel_type")
                .or_insert_with(|| json!(channel_type(&channel)));
        }
        self.push_event(event)
    }

    /// Wrap `event` in an `events_api` envelope and queue it.
    pub fn push_event(&self, event: Value) -> Pushed {
        let channel = event["channel"].as_str().unwrap_or_default().to_string();
        let ts = event["ts"].as_str().unwrap_or_default().to_string();
        let (envelope_id, event_id, envelope) = {
            let mut st = self.lock();
            st.counter += 1;
            events_envelope(st.counter, event)
        };
        self.enqueue(Some(envelope_id.clone()), Some(envelope), String::new());
        Pushed {
            envelope_id,
            event_id,
            channel,
            ts,
        }
    }

    /// Echo every message the bot posts (a `message` event) or edits (`message_changed`)
    /// back to it, as Slack does for an app subscribed to the conversation's messages
    /// (off by default).
    pub fn echo_own_messages(&self, on: bool) {
        self.lock().echo = on;
    }

    /// Queue a whole envelope as given (its `envelope_id`, if any, is tracked for acks).
    pub fn push_envelope(&self, envelope: Value) {
        let id = envelope["envelope_id"].as_str().map(str::to_string);
        self.enqueue(id, Some(envelope), String::new());
    }

    /// Queue a text frame exactly as given (not JSON, or JSON of any shape).
    pub fn push_raw(&self, text: &str) {
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        let id = parsed
            .as_ref()
            .and_then(|v| v["envelope_id"].as_str().map(str::to_string));
        self.enqueue(id, None, text.to_string());
    }

    /// Everything the bot sent or edited, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    /// Wait until at least `n` messages were sent or edited (or `timeout` passed), and
    /// answer them all.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sent = self.sent();
            if sent.len() >= n || tokio::time::Instant::now() >= deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Take the service down (every Web API call and file answers 503, the socket closes
    /// and no new one opens) or bring it back. Pushed envelopes wait for it.
    pub fn set_down(&self, down: bool) {
        let mut st = self.lock();
        st.down = down;
        if down {
            st.socket_gen += 1;
        }
        drop(st);
        self.shared.changed.notify_waiters();
    }

    /// Answer the next Web API call with HTTP 429 and `Retry-After: secs`.
    pub fn rate_limit_next(&self, secs: u64) {
        self.lock().rate_limit_next = Some(secs);
    }

    /// Close the live socket without a word (as a network failure would).
    pub fn drop_socket(&self) {
        self.lock().socket_gen += 1;
        self.shared.changed.notify_waiters();
    }

    /// Send `{"type":"disconnect","reason":…}` on the live socket, as Slack does before it
    /// retires a connection; the socket then delivers nothing more.
    pub fn disconnect(&self, reason: &str) {
        self.lock().disconnect = Some(reason.to_string());
        self.shared.changed.notify_waiters();
    }

    /// Answer `apps.connections.open` with `url` as the socket's URL (as a compromised or
    /// impersonated Slack could), or with the fake's own again (`None`).
    pub fn answer_socket_url(&self, url: Option<&str>) {
        self.lock().socket_url = url.map(str::to_string);
    }

    /// Answer every call of the Web API `method` only after `pause` (for a client that
    /// gives up waiting).
    pub fn slow_method(&self, method: &str, pause: Duration) {
        self.lock().slow.insert(method.to_string(), pause);
    }

    /// How many times the Web API `method` was called (rate-limited and refused calls
    /// included).
    pub fn calls(&self, method: &str) -> usize {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// How many sockets were opened.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// Envelope ids acknowledged, in order.
    pub fn acked(&self) -> Vec<String> {
        self.lock().acked.clone()
    }

    /// Envelope ids not acknowledged yet (queued or written).
    pub fn unacked(&self) -> Vec<String> {
        let st = self.lock();
        st.inflight
            .iter()
            .chain(st.pending.iter())
            .filter_map(|f| f.envelope_id.clone())
            .collect()
    }

    /// Every frame written to a socket, in order.
    pub fn delivered(&self) -> Vec<String> {
        self.lock().delivered.clone()
    }

    /// Wait until every queued envelope with an id was acknowledged (or `timeout`).
    pub async fn wait_for_acks(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.unacked().is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn register_channel(&self, channel: &str) {
        if channel.is_empty() {
            return;
        }
        self.lock()
            .conversations
            .insert(channel.to_string(), channel.starts_with('D'));
    }

    fn enqueue(&self, envelope_id: Option<String>, json: Option<Value>, raw: String) {
        self.lock().pending.push_back(Frame {
            envelope_id,
            json,
            raw,
        });
        self.shared.changed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// An `events_api` envelope around `event`: (envelope id, event id, envelope).
fn events_envelope(counter: u64, event: Value) -> (String, String, Value) {
    let envelope_id = format!("env-{counter:06}");
    let event_id = format!("Ev{counter:08}");
    let envelope = json!({
        "envelope_id": envelope_id,
        "type": "events_api",
        "accepts_response_payload": false,
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": {
            "token": "verification-token",
            "team_id": SLACK_TEAM,
            "api_app_id": "AFAKEAPP",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1_700_000_000,
        },
    });
    (envelope_id, event_id, envelope)
}

fn next_ts(counter: u64) -> String {
    format!("1700000000.{counter:06}")
}

fn channel_type(channel: &str) -> &'static str {
    match channel.chars().next() {
        Some('D') => "im",
        Some('G') => "group",
        _ => "channel",
    }
}

fn file_object(base: &str, id: &str, name: &str, size: usize) -> Value {
    let url = format!("{base}files-pri/{SLACK_TEAM}-{id}/{name}");
    json!({
        "id": id, "name": name, "title": name, "mimetype": "application/octet-stream",
        "filetype": "binary", "size": size, "url_private": url,
        "url_private_download": format!("{url}?download=1"), "mode": "hosted",
        "is_external": false,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn slack_error(error: &str) -> Response {
    json_response(StatusCode::OK, json!({"ok": false, "error": error}))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::to_string)
}

/// The call's arguments: the query string, then a JSON or form body.
fn arguments(headers: &HeaderMap, query: HashMap<String, String>, body: &[u8]) -> Value {
    let mut args = serde_json::Map::new();
    for (k, v) in query {
        args.insert(k, Value::String(v));
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json_body {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            args.extend(map);
        }
    } else if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        for (k, v) in pairs {
            // Form bodies carry structured arguments (`blocks`) as JSON text.
            let v = match k.as_str() {
                "blocks" | "attachments" => serde_json::from_str(&v).unwrap_or(Value::String(v)),
                _ => Value::String(v),
            };
            args.insert(k, v);
        }
    }
    Value::Object(args)
}

async fn api(
    State(s): State<Arc<Shared>>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = arguments(&headers, query, &body);
    let token = bearer(&headers).or_else(|| args["token"].as_str().map(str::to_string));
    let pause = s.lock().slow.get(&method).copied();
    if let Some(pause) = pause {
        tokio::time::sleep(pause).await;
    }
    let mut st = s.lock();
    *st.calls.entry(method.clone()).or_insert(0) += 1;
    if st.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response();
    }
    if let Some(secs) = st.rate_limit_next.take() {
        let mut resp = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error": "ratelimited"}),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    let wanted = if method == "apps.connections.open" {
        SLACK_APP_TOKEN
    } else {
        SLACK_BOT_TOKEN
    };
    match token.as_deref() {
        None | Some("") => return slack_error("not_authed"),
        Some(t) if t == wanted => {}
        Some(t) if t == SLACK_APP_TOKEN || t == SLACK_BOT_TOKEN => {
            return slack_error("not_allowed_token_type");
        }
        Some(_) => return slack_error("invalid_auth"),
    }
    let base = format!("http://{}/", headers_host(&headers));
    match method.as_str() {
        "apps.connections.open" => {
            st.counter += 1;
            let ticket = format!("ticket-{:06}", st.counter);
            st.tickets.push(ticket.clone());
            let url = st.socket_url.clone().unwrap_or_else(|| {
                format!(
                    "ws://{}/socket?ticket={ticket}&app_id=AFAKEAPP",
                    headers_host(&headers)
                )
            });
            json_response(StatusCode::OK, json!({"ok": true, "url": url}))
        }
        "auth.test" => json_response(
            StatusCode::OK,
            json!({
                "ok": true, "url": "https://fake.slack.com/", "team": "Fake",
                "user": "cordon", "team_id": SLACK_TEAM, "user_id": SLACK_BOT_USER,
                "bot_id": SLACK_BOT_ID, "is_enterprise_install": false,
            }),
        ),
        "chat.postMessage" => {
            let Some(channel) = args["channel"].as_str().filter(|c| !c.is_empty()) else {
                return slack_error("channel_not_found");
            };
            let text = args["text"].as_str().unwrap_or_default().to_string();
            if text.is_empty() && args["blocks"].is_null() {
                return slack_error("no_text");
            }
            st.counter += 1;
            let ts = next_ts(st.counter);
            let sent = SentMessage {
                method,
                channel: channel.to_string(),
                ts: ts.clone(),
                text: text.clone(),
                blocks: args["blocks"].clone(),
            };
            st.sent.push(sent);
            if st.echo {
                st.counter += 1;
                let event = json!({
                    "type": "message", "channel": channel, "user": SLACK_BOT_USER,
                    "bot_id": SLACK_BOT_ID, "text": text, "ts": ts, "event_ts": ts,
                    "team": SLACK_TEAM, "channel_type": channel_type(channel),
                });
                let (envelope_id, _, envelope) = events_envelope(st.counter, event);
                st.pending.push_back(Frame {
                    envelope_id: Some(envelope_id),
                    json: Some(envelope),
                    raw: String::new(),
                });
                s.changed.notify_waiters();
            }
            json_response(
                StatusCode::OK,
                json!({
                    "ok": true, "channel": channel, "ts": ts,
                    "message": {"type": "message", "user": SLACK_BOT_USER, "bot_id": SLACK_BOT_ID,
                                "text": text, "ts": ts, "blocks": args["blocks"]},
                }),
            )
        }
        "chat.update" => {
            let channel = args["channel"].as_str().unwrap_or_default().to_string();
            let ts = args["ts"].as_str().unwrap_or_default().to_string();
            let exists = st
                .sent
                .iter()
                .any(|m| m.method == "chat.postMessage" && m.channel == channel && m.ts == ts);
            if !exists {
                return slack_error("message_not_found");
            }
            let text = args["text"].as_str().unwrap_or_default().to_string();
            let previous = st
                .sent
                .iter()
                .rev()
                .find(|m| m.channel == channel && m.ts == ts)
                .map(|m| m.text.clone())
                .unwrap_or_default();
            st.sent.push(SentMessage {
                method,
                channel: channel.clone(),
                ts: ts.clone(),
                text: text.clone(),
                blocks: args["blocks"].clone(),
            });
            if st.echo {
                st.counter += 1;
                let event_ts = next_ts(st.counter);
                let event = json!({
                    "type": "message", "subtype": "message_changed", "channel": channel,
                    "hidden": true, "ts": event_ts, "event_ts": event_ts,
                    "channel_type": channel_type(&channel),
                    "message": {"type": "message", "user": SLACK_BOT_USER, "bot_id": SLACK_BOT_ID,
                                "text": text, "ts": ts, "edited": {"user": SLACK_BOT_USER, "ts": event_ts}},
                    "previous_message": {"type": "message", "user": SLACK_BOT_USER,
                                         "bot_id": SLACK_BOT_ID, "text": previous, "ts": ts},
                });
                let (envelope_id, _, envelope) = events_envelope(st.counter, event);
                st.pending.push_back(Frame {
                    envelope_id: Some(envelope_id),
                    json: Some(envelope),
                    raw: String::new(),
                });
                s.changed.notify_waiters();
            }
            json_response(
                StatusCode::OK,
                json!({"ok": true, "channel": channel, "ts": ts, "text": text}),
            )
        }
        "conversations.info" => {
            let channel = args["channel"].as_str().unwrap_or_default();
            match st.conversations.get(channel) {
                Some(&is_im) => json_response(
                    StatusCode::OK,
                    json!({"ok": true, "channel": {
                        "id": channel, "is_im": is_im, "is_channel": channel.starts_with('C'),
                        "is_group": channel.starts_with('G'), "is_mpim": false,
                        "is_private": !channel.starts_with('C'),
                    }}),
                ),
                None => slack_error("channel_not_found"),
            }
        }
        "files.info" => {
            let id = args["file"].as_str().unwrap_or_default();
            match st.files.get(id) {
                Some(f) => json_response(
                    StatusCode::OK,
                    json!({"ok": true, "file": file_object(&base, id, &f.name, f.bytes.len())}),
                ),
                None => slack_error("file_not_found"),
            }
        }
        _ => slack_error("unknown_method"),
    }
}

fn headers_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

async fn file_download(
    State(s): State<Arc<Shared>>,
    Path((file, _name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let bytes = {
        let st = s.lock();
        if st.down {
            return (StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response();
        }
        if bearer(&headers).as_deref() != Some(SLACK_BOT_TOKEN) {
            return (StatusCode::FORBIDDEN, "not authorised").into_response();
        }
        let id = file.rsplit('-').next().unwrap_or_default();
        match st.files.get(id) {
            Some(f) => f.bytes.clone(),
            None => return (StatusCode::NOT_FOUND, "no such file").into_response(),
        }
    };
    // In pieces, so that a client's cap is exercised while the body streams.
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut resp = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

async fn socket(
    State(s): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    {
        let mut st = s.lock();
        if st.down {
            return (StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response();
        }
        let ticket = query.get("ticket").cloned().unwrap_or_default();
        let Some(pos) = st.tickets.iter().position(|t| *t == ticket) else {
            return (StatusCode::UNAUTHORIZED, "unknown ticket").into_response();
        };
        st.tickets.remove(pos);
    }
    ws.on_upgrade(move |socket| serve_socket(s, socket))
}

async fn serve_socket(s: Arc<Shared>, mut ws: WebSocket) {
    let generation = {
        let mut st = s.lock();
        st.socket_gen += 1;
        st.connections += 1;
        st.disconnect = None;
        // Slack retries what the last connection did not acknowledge.
        let mut retry: Vec<Frame> = std::mem::take(&mut st.inflight);
        for f in &mut retry {
            if let Some(obj) = f.json.as_mut().and_then(Value::as_object_mut) {
                let attempt = obj
                    .get("retry_attempt")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                obj.insert("retry_attempt".into(), json!(attempt + 1));
                obj.insert("retry_reason".into(), json!("timeout"));
            }
        }
        for f in retry.into_iter().rev() {
            st.pending.push_front(f);
        }
        st.socket_gen
    };
    s.changed.notify_waiters();
    let hello = json!({
        "type": "hello", "num_connections": 1,
        "debug_info": {"host": "testkit", "approximate_connection_time": 3600},
        "connection_info": {"app_id": "AFAKEAPP"},
    })
    .to_string();
    s.lock().delivered.push(hello.clone());
    if ws.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let mut retiring = false;
    loop {
        // Registered before the state is read, so a push in between still wakes us.
        let changed = s.changed.notified();
        let (out, disconnect) = {
            let mut st = s.lock();
            if st.socket_gen != generation || st.down {
                return; // dropping the socket closes the TCP connection, no close frame
            }
            let disconnect = if retiring { None } else { st.disconnect.take() };
            let out: Vec<Frame> = if retiring || disconnect.is_some() {
                Vec::new()
            } else {
                st.pending.drain(..).collect()
            };
            for f in &out {
                st.delivered.push(f.text());
                if f.envelope_id.is_some() {
                    st.inflight.push(f.clone());
                }
            }
            (out, disconnect)
        };
        for f in out {
            if ws.send(Message::Text(f.text().into())).await.is_err() {
                return;
            }
        }
        if let Some(reason) = disconnect {
            retiring = true;
            let msg = json!({"type": "disconnect", "reason": reason,
                             "debug_info": {"host": "testkit"}})
            .to_string();
            s.lock().delivered.push(msg.clone());
            if ws.send(Message::Text(msg.into())).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            msg = ws.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text)
                        && let Some(id) = v["envelope_id"].as_str()
                    {
                        let mut st = s.lock();
                        st.inflight.retain(|f| f.envelope_id.as_deref() != Some(id));
                        st.pending.retain(|f| f.envelope_id.as_deref() != Some(id));
                        st.acked.push(id.to_string());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
