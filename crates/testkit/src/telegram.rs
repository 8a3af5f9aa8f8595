//! [`FakeTelegram`]: a Telegram Bot API server on `127.0.0.1` (random port) for testing bot
//! clients without Telegram.
//!
//! It speaks the Bot API over real HTTP: `POST` (or `GET`) `/bot<TOKEN>/<method>` with a
//! JSON, form-encoded or query-string body, answered `{"ok":true,"result":…}` or
//! `{"ok":false,"error_code":…,"description":…}` with the matching HTTP status, and files
//! at `/file/bot<TOKEN>/<file_path>`. Methods: `getMe`, `getUpdates` (offset confirmation,
//! `limit`, `timeout` long polling that answers as soon as an update is pushed,
//! `allowed_updates` remembered between calls as Telegram does, `409 Conflict` for a poll
//! cut short by a newer one), `sendMessage` (inline keyboards), `editMessageText`,
//! `answerCallbackQuery` and `getFile`.
//!
//! Tests push updates with [`FakeTelegram::message`] (a builder for private, group,
//! mentioning, forwarded, file and link-preview messages), [`FakeTelegram::press`] (a
//! button press), [`FakeTelegram::push_update`] and [`FakeTelegram::push_raw`] (anything,
//! malformed included); they read what the bot sent with [`FakeTelegram::sent`] and
//! [`FakeTelegram::wait_for_sent`], and break the server with [`FakeTelegram::set_down`]
//! (every request answers 502) and [`FakeTelegram::rate_limit_next`] (one 429 with
//! `parameters.retry_after`). [`FakeTelegram::requests`] counts requests per method, so a
//! test can assert a client does not poll in a busy loop.
//!
//! It checks the one token it was started with (any other: 401 `Unauthorized`) and the
//! limits a client most often gets wrong (empty or over-long text, button data over 64
//! bytes, a chat the bot has never seen, editing a message to the same content). It does
//! not implement the rest of the Bot API, webhooks, multipart uploads or per-chat message
//! numbering (message ids are unique across chats).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

/// Telegram's cap on a message's text, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Telegram's cap on a button's `callback_data`, in bytes.
pub const MAX_BUTTON_DATA_BYTES: usize = 64;
/// The update types delivered when a client never set `allowed_updates` (Telegram leaves
/// these three out by default).
const NOT_BY_DEFAULT: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];
/// Bytes per network write of a file download, so a client's cap is checked mid-stream.
const FILE_CHUNK: usize = 16 * 1024;

/// A Telegram user as updates carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
}

impl TgUser {
    pub fn new(id: i64, first_name: &str) -> TgUser {
        TgUser {
            id,
            first_name: first_name.to_string(),
            username: None,
        }
    }

    pub fn with_username(mut self, username: &str) -> TgUser {
        self.username = Some(username.to_string());
        self
    }

    fn to_json(&self, is_bot: bool) -> Value {
        let mut v = json!({"id": self.id, "is_bot": is_bot, "first_name": self.first_name});
        if let Some(u) = &self.username {
            v["username"] = json!(u);
        }
        v
    }
}

/// One `sendMessage` or `editMessageText` call the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCall {
    /// `sendMessage` or `editMessageText`.
    pub method: String,
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    /// The inline keyboard's rows (empty: no buttons, or removed by an edit).
    pub buttons: Vec<Vec<SentButton>>,
    /// The request's `link_preview_options.is_disabled`.
    pub link_preview_disabled: bool,
    /// The request's `parse_mode`, if any.
    pub parse_mode: Option<String>,
}

/// A button of an inline keyboard the bot sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentButton {
    pub text: String,
    pub callback_data: String,
}

/// One `answerCallbackQuery` call the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    pub callback_query_id: String,
    pub text: Option<String>,
}

/// A Bot API server on `127.0.0.1`. Dropping it shuts the server down.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    token: String,
    bot: TgUser,
    state: Mutex<St>,
    /// Woken when an update is pushed, the server goes down or up, or a poll starts.
    updates: Notify,
    /// Woken when a message is sent or edited.
    sent: Notify,
}

#[derive(Default)]
struct St {
    next_update_id: i64,
    queue: Vec<Queued>,
    /// `None`: Telegram's default set.
    allowed: Option<Vec<String>>,
    poll_generation: u64,
    next_message_id: i64,
    /// Messages the bot sent, by (chat id, message id).
    messages: HashMap<(i64, i64), Value>,
    /// Chats the bot has seen an update from, by id.
    chats: HashMap<i64, Value>,
    files: HashMap<String, StoredFile>,
    next_file: u64,
    open_callbacks: HashSet<String>,
    next_callback: u64,
    answered: Vec<CallbackAnswer>,
    sent: Vec<SentCall>,
    down: bool,
    rate_limit: Option<u64>,
    counts: BTreeMap<String, usize>,
}

struct Queued {
    id: i64,
    /// The update's type (its one field besides `update_id`); `None` for a non-object.
    kind: Option<String>,
    body: Value,
}

struct StoredFile {
    path: String,
    bytes: Vec<u8>,
    announce_size: bool,
}

impl FakeTelegram {
    /// Start on a random loopback port, accepting `token` only. The bot's id is the
    /// token's number before `:` (as on Telegram; 1 if there is none) and its username
    /// `cordon_test_bot`. Panics only if the machine cannot bind loopback.
    pub async fn start(token: &str) -> FakeTelegram {
        FakeTelegram::start_as(token, "cordon_test_bot").await
    }

    /// [`FakeTelegram::start`] with the bot's username.
    pub async fn start_as(token: &str, username: &str) -> FakeTelegram {
        let id = token
            .split(':')
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(1);
        let bot = TgUser::new(id, "Cordon").with_username(username);
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(l) => l,
            Err(e) => panic!("FakeTelegram cannot bind 127.0.0.1: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("FakeTelegram has no local address: {e}"),
        };
        let shared = Arc::new(Shared {
            token: token.to_string(),
            bot,
            state: Mutex::new(St {
                next_update_id: 700_000_001,
                next_message_id: 1,
                ..St::default()
            }),
            updates: Notify::new(),
            sent: Notify::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        FakeTelegram {
            addr,
            shared,
            shutdown: Some(tx),
            task,
        }
    }

    /// `http://127.0.0.1:PORT/`: the Bot API base (methods at `bot<TOKEN>/<method>`).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bot itself, as `getMe` answers.
    pub fn bot(&self) -> &TgUser {
        &self.shared.bot
    }

    /// A message from `from` in a private chat with the bot; see [`MessageBuilder`].
    pub fn message(&self, from: &TgUser) -> MessageBuilder<'_> {
        MessageBuilder {
            tg: self,
            from: from.clone(),
            chat: json!({"id": from.id, "type": "private", "first_name": from.first_name}),
            text: None,
            caption: None,
            appended: Vec::new(),
            forward_origin: None,
            link_preview: None,
            file: None,
            announce_size: true,
        }
    }

    /// `from` presses the button carrying `data` under the bot's message `message_id` in
    /// `chat_id` (the data is not checked against the buttons sent: a modified client can
    /// send any). Returns the callback query's id.
    pub fn press(&self, from: &TgUser, chat_id: i64, message_id: i64, data: &str) -> String {
        let mut st = self.shared.lock();
        st.next_callback += 1;
        let query_id = format!("{}{:06}", self.shared.bot.id, st.next_callback);
        let message = match st.messages.get(&(chat_id, message_id)) {
            Some(m) => m.clone(),
            // Telegram's InaccessibleMessage: too old, or not the bot's.
            None => json!({"chat": chat_json(&st, chat_id), "message_id": message_id, "date": 0}),
        };
        st.open_callbacks.insert(query_id.clone());
        let cb = json!({
            "id": query_id,
            "from": from.to_json(false),
            "message": message,
            "chat_instance": format!("{}", chat_id.unsigned_abs() * 31 + 7),
            "data": data,
        });
        push(&self.shared, &mut st, Some("callback_query"), cb);
        query_id
    }

    /// Push an update of type `kind` (`"channel_post"`, `"edited_message"`, …) with
    /// `payload` as its content; returns its `update_id`.
    pub fn push_update(&self, kind: &str, payload: Value) -> i64 {
        let mut st = self.shared.lock();
        if let Some(chat) = payload.get("chat") {
            remember_chat(&mut st, chat);
        }
        push(&self.shared, &mut st, Some(kind), payload)
    }

    /// Push `raw` as an update, as is: an object without `update_id` gets the next one; a
    /// value that is not an object is delivered as it is (and confirmed by the next
    /// offset past the id it was queued under). Returns the id it was queued under.
    pub fn push_raw(&self, raw: Value) -> i64 {
        let mut st = self.shared.lock();
        let id = match raw.get("update_id").and_then(Value::as_i64) {
            Some(id) => {
                st.next_update_id = st.next_update_id.max(id + 1);
                id
            }
            None => {
                let id = st.next_update_id;
                st.next_update_id += 1;
                id
            }
        };
        let mut body = raw;
        let kind = match &mut body {
            Value::Object(o) => {
                o.entry("update_id").or_insert(json!(id));
                o.keys().find(|k| *k != "update_id").cloned()
            }
            _ => None,
        };
        st.queue.push(Queued { id, kind, body });
        drop(st);
        self.shared.updates.notify_waiters();
        id
    }

    /// `user` has a private chat with the bot, as after they started it earlier, with no
    /// update pending (the Bot API sends only to chats it knows).
    pub fn open_chat(&self, user: &TgUser) {
        let chat = json!({"id": user.id, "type": "private", "first_name": user.first_name});
        remember_chat(&mut self.shared.lock(), &chat);
    }

    /// Every `sendMessage` and `editMessageText` call accepted, in order.
    pub fn sent(&self) -> Vec<SentCall> {
        self.shared.lock().sent.clone()
    }

    /// Wait until at least `n` calls were accepted (see [`FakeTelegram::sent`]) and return
    /// them all. Panics after `timeout`, listing what was sent.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentCall> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.sent.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let sent = self.sent();
            if sent.len() >= n {
                return sent;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "FakeTelegram: {} message(s) sent within {timeout:?}, expected {n}: {sent:#?}",
                    sent.len()
                );
            }
        }
    }

    /// Every `answerCallbackQuery` call accepted, in order.
    pub fn answered(&self) -> Vec<CallbackAnswer> {
        self.shared.lock().answered.clone()
    }

    /// Updates queued and not yet confirmed by a client's offset.
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// While `down`, every request is answered `502 Bad Gateway` (and waiting long polls
    /// end with it); pushed updates are kept for when it is back.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
        self.shared.updates.notify_waiters();
    }

    /// The next request (of any method) is answered `429` with
    /// `parameters.retry_after = seconds` and not carried out.
    pub fn rate_limit_next(&self, seconds: u64) {
        self.shared.lock().rate_limit = Some(seconds);
    }

    /// How many requests named `method` arrived (any token, any outcome); file downloads
    /// count as `"file"`. Method names are case-insensitive, as on Telegram.
    pub fn requests(&self, method: &str) -> usize {
        let st = self.shared.lock();
        st.counts
            .get(&method.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Requests per method (lowercase), as [`FakeTelegram::requests`] counts them.
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        self.shared.lock().counts.clone()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Long polls would hold a graceful shutdown open; a dropped server is gone now.
        self.task.abort();
    }
}

/// A message to push, from [`FakeTelegram::message`]. Without [`MessageBuilder::in_group`]
/// it is in the sender's private chat with the bot.
pub struct MessageBuilder<'a> {
    tg: &'a FakeTelegram,
    from: TgUser,
    chat: Value,
    text: Option<String>,
    caption: Option<String>,
    appended: Vec<Appended>,
    forward_origin: Option<Value>,
    link_preview: Option<String>,
    file: Option<FileSpec>,
    announce_size: bool,
}

enum Appended {
    /// `@username` with a `mention` entity.
    Mention(String),
    /// The user's first name with a `text_mention` entity carrying the user.
    TextMention(TgUser),
}

enum FileSpec {
    Document { name: String, bytes: Vec<u8> },
    Photo { bytes: Vec<u8> },
}

impl MessageBuilder<'_> {
    /// In the group `chat_id` (a supergroup when the id is in Telegram's `-100…` range).
    pub fn in_group(mut self, chat_id: i64, title: &str) -> Self {
        let kind = if chat_id <= -1_000_000_000_000 {
            "supergroup"
        } else {
            "group"
        };
        self.chat = json!({"id": chat_id, "type": kind, "title": title});
        self
    }

    pub fn text(mut self, text: &str) -> Self {
        self.text = Some(text.to_string());
        self
    }

    /// Append ` @<bot username>` to the text (or the caption) with a `mention` entity.
    pub fn mention_bot(mut self) -> Self {
        let name = self.tg.shared.bot.username.clone().unwrap_or_default();
        self.appended.push(Appended::Mention(name));
        self
    }

    /// Append ` @<username>` (someone else) with a `mention` entity.
    pub fn mention(mut self, username: &str) -> Self {
        self.appended.push(Appended::Mention(
            username.trim_start_matches('@').to_string(),
        ));
        self
    }

    /// Append the bot's first name with a `text_mention` entity carrying the bot's user.
    pub fn text_mention_bot(mut self) -> Self {
        self.appended
            .push(Appended::TextMention(self.tg.shared.bot.clone()));
        self
    }

    /// Forwarded from `original` (`forward_origin` of type `user`).
    pub fn forwarded_from(mut self, original: &TgUser) -> Self {
        self.forward_origin = Some(json!({
            "type": "user", "date": now() - 3600, "sender_user": original.to_json(false),
        }));
        self
    }

    /// Forwarded from a user who hides their account (`forward_origin` of type
    /// `hidden_user`).
    pub fn forwarded_from_hidden(mut self, name: &str) -> Self {
        self.forward_origin = Some(json!({
            "type": "hidden_user", "date": now() - 3600, "sender_user_name": name,
        }));
        self
    }

    /// With `link_preview_options` previewing `url` (the text should contain it).
    pub fn link_preview(mut self, url: &str) -> Self {
        self.link_preview = Some(url.to_string());
        self
    }

    /// A document named `name` with these bytes (fetched with `getFile`).
    pub fn document(mut self, name: &str, bytes: &[u8]) -> Self {
        self.file = Some(FileSpec::Document {
            name: name.to_string(),
            bytes: bytes.to_vec(),
        });
        self
    }

    /// A photo with these bytes (in three sizes, as Telegram sends; all three are these
    /// bytes, the largest announced last).
    pub fn photo(mut self, bytes: &[u8]) -> Self {
        self.file = Some(FileSpec::Photo {
            bytes: bytes.to_vec(),
        });
        self
    }

    /// The file's caption.
    pub fn caption(mut self, caption: &str) -> Self {
        self.caption = Some(caption.to_string());
        self
    }

    /// Leave `file_size` out of the update and of `getFile`, as Telegram may.
    pub fn without_file_size(mut self) -> Self {
        self.announce_size = false;
        self
    }

    /// Queue the update; returns its `update_id`.
    pub fn push(self) -> i64 {
        let shared = &self.tg.shared;
        let mut st = shared.lock();
        st.next_message_id += 1;
        let message_id = st.next_message_id;
        let mut msg = json!({
            "message_id": message_id,
            "from": self.from.to_json(false),
            "chat": self.chat,
            "date": now(),
        });
        let has_file = self.file.is_some();
        let (mut body, text_key, entities_key) = if has_file {
            (self.caption.clone(), "caption", "caption_entities")
        } else {
            (self.text.clone(), "text", "entities")
        };
        let mut entities = Vec::new();
        for a in &self.appended {
            let s = body.get_or_insert_with(String::new);
            if !s.is_empty() {
                s.push(' ');
            }
            let offset = utf16_len(s);
            match a {
                Appended::Mention(name) => {
                    let token = format!("@{name}");
                    entities.push(
                        json!({"type": "mention", "offset": offset, "length": utf16_len(&token)}),
                    );
                    s.push_str(&token);
                }
                Appended::TextMention(user) => {
                    entities.push(json!({
                        "type": "text_mention", "offset": offset,
                        "length": utf16_len(&user.first_name), "user": user.to_json(true),
                    }));
                    s.push_str(&user.first_name);
                }
            }
        }
        if let Some(b) = body {
            msg[text_key] = json!(b);
        }
        if !entities.is_empty() {
            msg[entities_key] = json!(entities);
        }
        if let Some(origin) = self.forward_origin {
            msg["forward_origin"] = origin;
        }
        if let Some(url) = self.link_preview {
            msg["link_preview_options"] = json!({"url": url});
        }
        match self.file {
            Some(FileSpec::Document { name, bytes }) => {
                let size = bytes.len();
                let ext = extension(&name);
                let f = store_file(&mut st, "documents", &ext, bytes, self.announce_size);
                let mut doc = json!({"file_id": f.0, "file_unique_id": f.1, "file_name": name});
                if self.announce_size {
                    doc["file_size"] = json!(size);
                }
                msg["document"] = doc;
            }
            Some(FileSpec::Photo { bytes }) => {
                let size = bytes.len();
                let mut sizes = Vec::new();
                for (w, h) in [(90, 67), (320, 240), (1280, 960)] {
                    let f = store_file(&mut st, "photos", "jpg", bytes.clone(), self.announce_size);
                    let mut p =
                        json!({"file_id": f.0, "file_unique_id": f.1, "width": w, "height": h});
                    if self.announce_size {
                        p["file_size"] = json!(size);
                    }
                    sizes.push(p);
                }
                msg["photo"] = json!(sizes);
            }
            None => {}
        }
        remember_chat(&mut st, &msg["chat"]);
        push(shared, &mut st, Some("message"), msg)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn push(shared: &Shared, st: &mut St, kind: Option<&str>, payload: Value) -> i64 {
    let id = st.next_update_id;
    st.next_update_id += 1;
    let mut body = Map::new();
    body.insert("update_id".into(), json!(id));
    if let Some(k) = kind {
        body.insert(k.to_string(), payload);
    }
    st.queue.push(Queued {
        id,
        kind: kind.map(str::to_string),
        body: Value::Object(body),
    });
    shared.updates.notify_waiters();
    id
}

/// Store a file as `<dir>/file_<n>.<ext>` (Telegram's shape; the sender's file name is
/// not part of it); returns (file_id, file_unique_id).
fn store_file(
    st: &mut St,
    dir: &str,
    ext: &str,
    bytes: Vec<u8>,
    announce_size: bool,
) -> (String, String) {
    st.next_file += 1;
    let n = st.next_file;
    let file_id = format!("BQACAgQAAxkBAAI{n:08}");
    let unique = format!("AgAD{n:06}");
    st.files.insert(
        file_id.clone(),
        StoredFile {
            path: format!("{dir}/file_{n}.{ext}"),
            bytes,
            announce_size,
        },
    );
    (file_id, unique)
}

/// A file name's extension if it is short and alphanumeric, else `bin`.
fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, e))
            if !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            e.to_ascii_lowercase()
        }
        _ => "bin".into(),
    }
}

fn remember_chat(st: &mut St, chat: &Value) {
    if let Some(id) = chat.get("id").and_then(Value::as_i64) {
        st.chats.insert(id, chat.clone());
    }
}

fn chat_json(st: &St, id: i64) -> Value {
    st.chats
        .get(&id)
        .cloned()
        .unwrap_or_else(|| json!({"id": id, "type": if id < 0 { "group" } else { "private" }}))
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---- HTTP ----------------------------------------------------------------------------

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 8 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(400, "Bad Request: request body too large", None),
    };
    if let Some(rest) = path.strip_prefix("/file/bot") {
        let (token, file_path) = rest.split_once('/').unwrap_or((rest, ""));
        return file(&s, token, file_path);
    }
    let Some(rest) = path.strip_prefix("/bot") else {
        return error(404, "Not Found", None);
    };
    let Some((token, method)) = rest.split_once('/') else {
        return error(404, "Not Found", None);
    };
    let method = method.to_ascii_lowercase();
    {
        let mut st = s.lock();
        *st.counts.entry(method.clone()).or_default() += 1;
        if st.down {
            return bad_gateway();
        }
        if let Some(secs) = st.rate_limit.take() {
            return error(
                429,
                &format!("Too Many Requests: retry after {secs}"),
                Some(secs),
            );
        }
    }
    if token != s.token {
        return error(401, "Unauthorized", None);
    }
    let params = match Params::parse(&query, &content_type, &body) {
        Ok(p) => p,
        Err(e) => return error(400, &format!("Bad Request: {e}"), None),
    };
    match method.as_str() {
        "getme" => ok(s.bot.to_json(true)),
        "getupdates" => get_updates(&s, &params).await,
        "sendmessage" => send_message(&s, &params),
        "editmessagetext" => edit_message_text(&s, &params),
        "answercallbackquery" => answer_callback_query(&s, &params),
        "getfile" => get_file(&s, &params),
        _ => error(404, "Not Found", None),
    }
}

async fn get_updates(s: &Shared, p: &Params) -> Response {
    let offset = p.int("offset");
    let limit = p.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = p.int("timeout").unwrap_or(0).clamp(0, 50) as u64;
    let my_generation = {
        let mut st = s.lock();
        if let Some(list) = p.get("allowed_updates") {
            match list.as_array() {
                Some(a) if a.is_empty() => st.allowed = None,
                Some(a) => {
                    st.allowed = Some(
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect(),
                    )
                }
                None => return error(400, "Bad Request: can't parse allowed_updates", None),
            }
        }
        match offset {
            Some(o) if o > 0 => st.queue.retain(|u| u.id >= o),
            Some(o) if o < 0 => {
                let keep = o.unsigned_abs() as usize;
                let len = st.queue.len();
                if len > keep {
                    st.queue.drain(..len - keep);
                }
            }
            _ => {}
        }
        st.poll_generation += 1;
        st.poll_generation
    };
    // A newer poll ends this one with 409, as on Telegram.
    s.updates.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = s.updates.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = s.lock();
            if st.down {
                return bad_gateway();
            }
            if st.poll_generation != my_generation {
                return error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    None,
                );
            }
            let ready: Vec<Value> = st
                .queue
                .iter()
                .filter(|u| deliverable(&st.allowed, u.kind.as_deref()))
                .take(limit)
                .map(|u| u.body.clone())
                .collect();
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return ok(Value::Array(ready));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

fn deliverable(allowed: &Option<Vec<String>>, kind: Option<&str>) -> bool {
    let Some(kind) = kind else { return true };
    match allowed {
        None => !NOT_BY_DEFAULT.contains(&kind),
        Some(list) => list.iter().any(|a| a == kind),
    }
}

fn send_message(s: &Shared, p: &Params) -> Response {
    let Some(chat_id) = p.int("chat_id") else {
        return error(400, "Bad Request: chat_id is empty", None);
    };
    let text = p.str("text").unwrap_or_default();
    let buttons = match check_text(&text).and_then(|()| keyboard(p)) {
        Ok(b) => b,
        Err(refusal) => return error(400, refusal, None),
    };
    let mut st = s.lock();
    if !st.chats.contains_key(&chat_id) {
        return error(400, "Bad Request: chat not found", None);
    }
    st.next_message_id += 1;
    let message_id = st.next_message_id;
    let mut msg = json!({
        "message_id": message_id, "from": s.bot.to_json(true),
        "chat": chat_json(&st, chat_id), "date": now(), "text": text,
    });
    if let Some(markup) = p.get("reply_markup").filter(|_| !buttons.is_empty()) {
        msg["reply_markup"] = markup.clone();
    }
    st.messages.insert((chat_id, message_id), msg.clone());
    st.sent.push(SentCall {
        method: "sendMessage".into(),
        chat_id,
        message_id,
        text,
        buttons,
        link_preview_disabled: preview_disabled(p),
        parse_mode: p.str("parse_mode"),
    });
    drop(st);
    s.sent.notify_waiters();
    ok(msg)
}

fn edit_message_text(s: &Shared, p: &Params) -> Response {
    let (Some(chat_id), Some(message_id)) = (p.int("chat_id"), p.int("message_id")) else {
        return error(400, "Bad Request: message to edit not found", None);
    };
    let text = p.str("text").unwrap_or_default();
    let buttons = match check_text(&text).and_then(|()| keyboard(p)) {
        Ok(b) => b,
        Err(refusal) => return error(400, refusal, None),
    };
    let mut st = s.lock();
    let Some(msg) = st.messages.get_mut(&(chat_id, message_id)) else {
        return error(400, "Bad Request: message to edit not found", None);
    };
    let markup = p
        .get("reply_markup")
        .filter(|_| !buttons.is_empty())
        .cloned();
    if msg["text"] == json!(text) && msg.get("reply_markup") == markup.as_ref() {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            None,
        );
    }
    msg["text"] = json!(text);
    msg["edit_date"] = json!(now());
    match markup {
        Some(m) => msg["reply_markup"] = m,
        // Without reply_markup the inline keyboard goes, as on Telegram.
        None => {
            if let Some(o) = msg.as_object_mut() {
                o.remove("reply_markup");
            }
        }
    }
    let msg = msg.clone();
    st.sent.push(SentCall {
        method: "editMessageText".into(),
        chat_id,
        message_id,
        text,
        buttons,
        link_preview_disabled: preview_disabled(p),
        parse_mode: p.str("parse_mode"),
    });
    drop(st);
    s.sent.notify_waiters();
    ok(msg)
}

fn answer_callback_query(s: &Shared, p: &Params) -> Response {
    let id = p.str("callback_query_id").unwrap_or_default();
    let mut st = s.lock();
    if !st.open_callbacks.remove(&id) {
        return error(
            400,
            "Bad Request: query is too old and response timeout expired or query ID is invalid",
            None,
        );
    }
    st.answered.push(CallbackAnswer {
        callback_query_id: id,
        text: p.str("text"),
    });
    ok(json!(true))
}

fn get_file(s: &Shared, p: &Params) -> Response {
    let id = p.str("file_id").unwrap_or_default();
    let st = s.lock();
    let Some(f) = st.files.get(&id) else {
        return error(400, "Bad Request: invalid file_id", None);
    };
    let mut v = json!({"file_id": id, "file_unique_id": format!("u{id}"), "file_path": f.path});
    if f.announce_size {
        v["file_size"] = json!(f.bytes.len());
    }
    ok(v)
}

fn file(s: &Shared, token: &str, file_path: &str) -> Response {
    let bytes = {
        let mut st = s.lock();
        *st.counts.entry("file".into()).or_default() += 1;
        if st.down {
            return bad_gateway();
        }
        if token != s.token {
            return error(401, "Unauthorized", None);
        }
        match st.files.values().find(|f| f.path == file_path) {
            Some(f) => f.bytes.clone(),
            None => return error(404, "Not Found", None),
        }
    };
    // Several writes and no Content-Length: a client's cap must hold mid-stream.
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(FILE_CHUNK)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut resp = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

/// Telegram's refusal of a message text, if it refuses it.
fn check_text(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        return Err("Bad Request: message text is empty");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("Bad Request: message is too long");
    }
    Ok(())
}

fn preview_disabled(p: &Params) -> bool {
    p.get("link_preview_options")
        .and_then(|o| o.get("is_disabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The inline keyboard of `reply_markup`, checked as Telegram checks it (`Err`: its
/// refusal).
fn keyboard(p: &Params) -> Result<Vec<Vec<SentButton>>, &'static str> {
    let Some(markup) = p.get("reply_markup") else {
        return Ok(Vec::new());
    };
    let bad = || "Bad Request: can't parse reply keyboard markup JSON object";
    let Some(rows) = markup.get("inline_keyboard").and_then(Value::as_array) else {
        return Err(bad());
    };
    let mut out = Vec::new();
    for row in rows {
        let Some(row) = row.as_array() else {
            return Err(bad());
        };
        let mut buttons = Vec::new();
        for b in row {
            let (Some(text), Some(data)) = (
                b.get("text").and_then(Value::as_str),
                b.get("callback_data").and_then(Value::as_str),
            ) else {
                return Err(bad());
            };
            if data.is_empty() || data.len() > MAX_BUTTON_DATA_BYTES {
                return Err("Bad Request: BUTTON_DATA_INVALID");
            }
            buttons.push(SentButton {
                text: text.to_string(),
                callback_data: data.to_string(),
            });
        }
        out.push(buttons);
    }
    Ok(out)
}

/// A request's parameters, from its query string and its JSON or form body (form values
/// holding JSON, such as `reply_markup`, are read as JSON, as Telegram reads them).
struct Params(Map<String, Value>);

impl Params {
    fn parse(query: &str, content_type: &str, body: &[u8]) -> Result<Params, String> {
        let mut map = Map::new();
        add_form(&mut map, query.as_bytes())?;
        if content_type.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => map.extend(o),
                _ => return Err("can't parse JSON object".into()),
            }
        } else if !body.is_empty() {
            add_form(&mut map, body)?;
        }
        Ok(Params(map))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn add_form(map: &mut Map<String, Value>, bytes: &[u8]) -> Result<(), String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|e| e.to_string())?;
    for (k, v) in pairs {
        let value = match serde_json::from_str::<Value>(&v) {
            Ok(j @ (Value::Object(_) | Value::Array(_))) => j,
            _ => Value::String(v),
        };
        map.insert(k, value);
    }
    Ok(())
}

fn ok(result: Value) -> Response {
    json_response(StatusCode::OK, &json!({"ok": true, "result": result}))
}

fn error(code: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(secs) = retry_after {
        body["parameters"] = json!({"retry_after": secs});
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &body)
}

/// What a proxy in front of a Bot API server answers when the server is down.
fn bad_gateway() -> Response {
    let mut resp = Response::new(Body::from(
        "<html><head><title>502 Bad Gateway</title></head></html>\r\n",
    ));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
