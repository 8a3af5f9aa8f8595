//! The stdio framing (one JSON-RPC message per line) between rmcp and a server's
//! byte streams, and the watch over what the server sends.
//!
//! Why not rmcp's own `AsyncRwTransport`: it drops unparsable and oversized lines
//! silently, so a request whose answer was garbage waits for its timeout and nobody
//! learns why. Here a line that is not JSON-RPC, or longer than the limit, is a
//! *fault*: it is recorded (with an excerpt), the transport ends, and every waiting
//! request fails with that fault named. Lines are read with a bounded buffer: a
//! server cannot make the client hold more than `max_message_bytes` of one message.
//!
//! The watch ([`Watch`]) counts what the server sends unasked — notifications and
//! requests — per call in flight, and drops them past the budget so a flood costs
//! parsing, not memory or tasks in rmcp. It also counts
//! `notifications/tools/list_changed` for the session's owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::RoleClient;
use rmcp::model::{
    ClientJsonRpcMessage, JsonRpcMessage, ProgressToken, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::transport::Transport;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

/// Why the server's output can no longer be trusted.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    Malformed { detail: String, excerpt: String },
    TooLarge { limit: usize },
    Read(String),
}

/// Characters of a bad line shown in an error.
const EXCERPT_CHARS: usize = 120;

fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// What one call in flight has seen.
#[derive(Debug, Default)]
struct CallWatch {
    token: Option<ProgressToken>,
    /// Unasked messages counted against this call.
    seen: u32,
    progress: u32,
    last_progress: Option<String>,
    flooded: bool,
    flood: Arc<Notify>,
}

#[derive(Default)]
struct State {
    next_key: u64,
    calls: HashMap<u64, CallWatch>,
    /// Unasked messages while no call was in flight (reset at each call's start).
    idle: u32,
}

/// Shared between the transport (which sees every message) and the session.
pub(crate) struct Watch {
    limit: u32,
    state: Mutex<State>,
    fault: OnceLock<Fault>,
    list_changed: AtomicU64,
    dropped: AtomicU64,
}

/// Progress seen by a call, returned when it ends.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pub progress: u32,
    pub last_progress: Option<String>,
}

impl Watch {
    pub fn new(limit: u32) -> Arc<Watch> {
        Arc::new(Watch {
            limit,
            state: Mutex::new(State::default()),
            fault: OnceLock::new(),
            list_changed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fault(&self) -> Option<&Fault> {
        self.fault.get()
    }

    fn set_fault(&self, fault: Fault) {
        let _ = self.fault.set(fault);
    }

    pub fn list_changed(&self) -> u64 {
        self.list_changed.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A call starts: its key and the notifier that fires when it is flooded.
    pub fn begin(&self) -> (u64, Arc<Notify>) {
        let mut st = self.state();
        st.next_key += 1;
        let key = st.next_key;
        let call = CallWatch::default();
        let flood = call.flood.clone();
        st.calls.insert(key, call);
        st.idle = 0;
        (key, flood)
    }

    /// The progress token rmcp gave the call's request.
    pub fn set_token(&self, key: u64, token: ProgressToken) {
        if let Some(c) = self.state().calls.get_mut(&key) {
            c.token = Some(token);
        }
    }

    /// A call ends (answered, failed or abandoned).
    pub fn end(&self, key: u64) -> Seen {
        self.state()
            .calls
            .remove(&key)
            .map(|c| Seen {
                progress: c.progress,
                last_progress: c.last_progress,
            })
            .unwrap_or_default()
    }

    /// Whether to pass `msg` on to rmcp. Responses always pass; unasked messages are
    /// counted: a progress notification against the call whose token it carries,
    /// anything else against every call in flight (or the idle budget). A call past
    /// its budget is flagged (its caller cancels it) and further messages are dropped.
    pub fn admit(&self, msg: &ServerJsonRpcMessage) -> bool {
        let (token, progress_message) = match msg {
            JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_) => return true,
            JsonRpcMessage::Notification(n) => match &n.notification {
                ServerNotification::ProgressNotification(p) => (
                    Some(&p.params.progress_token),
                    Some(
                        p.params
                            .message
                            .clone()
                            .unwrap_or_else(|| match p.params.total {
                                Some(t) => format!("{}/{}", p.params.progress, t),
                                None => p.params.progress.to_string(),
                            }),
                    ),
                ),
                ServerNotification::ToolListChangedNotification(_) => {
                    self.list_changed.fetch_add(1, Ordering::Relaxed);
                    (None, None)
                }
                _ => (None, None),
            },
            JsonRpcMessage::Request(_) => (None, None),
        };
        let limit = self.limit;
        let mut st = self.state();
        let owner = token.and_then(|t| {
            st.calls
                .iter()
                .find(|(_, c)| c.token.as_ref() == Some(t))
                .map(|(k, _)| *k)
        });
        let admitted = match owner {
            Some(key) => {
                let c = st.calls.get_mut(&key).expect("key found above");
                c.progress += 1;
                c.last_progress = progress_message;
                count(c, limit)
            }
            None if st.calls.is_empty() => {
                st.idle = st.idle.saturating_add(1);
                st.idle <= limit
            }
            None => {
                // Every call is charged, even after one refuses.
                let mut ok = true;
                for c in st.calls.values_mut() {
                    ok &= count(c, limit);
                }
                ok
            }
        };
        drop(st);
        if !admitted {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }
}

/// Count one unasked message against `c`; false once it is past `limit`.
fn count(c: &mut CallWatch, limit: u32) -> bool {
    c.seen = c.seen.saturating_add(1);
    if c.seen > limit {
        if !c.flooded {
            c.flooded = true;
            c.flood.notify_one();
        }
        false
    } else {
        true
    }
}

/// rmcp's transport over a server's stdout (`R`) and stdin (`W`).
pub(crate) struct Stdio<R, W> {
    read: BufReader<R>,
    /// The line being read; kept across cancelled reads (rmcp polls `receive` in a
    /// `select!`).
    line: Vec<u8>,
    max: usize,
    write: Arc<tokio::sync::Mutex<Option<W>>>,
    watch: Arc<Watch>,
}

impl<R, W> Stdio<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(read: R, write: W, max: usize, watch: Arc<Watch>) -> Stdio<R, W> {
        Stdio {
            read: BufReader::with_capacity(64 * 1024, read),
            line: Vec::new(),
            max,
            write: Arc::new(tokio::sync::Mutex::new(Some(write))),
            watch,
        }
    }

    /// The next whole line (without its `\n`), `Ok(None)` at the end of the output.
    async fn next_line(&mut self) -> Result<Option<Vec<u8>>, Fault> {
        loop {
            let buf = self
                .read
                .fill_buf()
                .await
                .map_err(|e| Fault::Read(e.to_string()))?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if self.line.len() + take > self.max {
                return Err(Fault::TooLarge { limit: self.max });
            }
            self.line.extend_from_slice(&buf[..take]);
            self.read.consume(if done { take + 1 } else { take });
            if done {
                return Ok(Some(std::mem::take(&mut self.line)));
            }
        }
    }

    /// Parse one line; `Ok(None)` for a line to skip (blank, or a notification this
    /// SDK has no type for).
    fn parse(line: &[u8]) -> Result<Option<ServerJsonRpcMessage>, Fault> {
        let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(None);
        }
        match serde_json::from_slice::<ServerJsonRpcMessage>(line) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) => {
                // A well-formed notification of an unknown shape answers nothing and
                // correlates with nothing: skipping it loses nothing.
                if let Ok(serde_json::Value::Object(o)) =
                    serde_json::from_slice::<serde_json::Value>(line)
                    && o.get("method").is_some_and(|m| m.is_string())
                    && !o.contains_key("id")
                {
                    tracing::debug!(error = %e, "skipping a notification of unknown shape");
                    return Ok(None);
                }
                Err(Fault::Malformed {
                    detail: e.to_string(),
                    excerpt: excerpt(line),
                })
            }
        }
    }
}

impl<R, W> Transport<RoleClient> for Stdio<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            let mut guard = write.lock().await;
            let w = guard.as_mut().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotConnected, "transport closed")
            })?;
            w.write_all(&bytes).await?;
            w.flush().await
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        if self.watch.fault().is_some() {
            return None;
        }
        loop {
            let line = match self.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => return None,
                Err(fault) => {
                    self.watch.set_fault(fault);
                    return None;
                }
            };
            match Self::parse(&line) {
                Ok(Some(msg)) if self.watch.admit(&msg) => return Some(msg),
                Ok(_) => continue,
                Err(fault) => {
                    self.watch.set_fault(fault);
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let mut guard = self.write.lock().await;
        if let Some(mut w) = guard.take() {
            // Closing the server's stdin is how a stdio server is told to exit.
            let _ = w.shutdown().await;
        }
        Ok(())
    }
}
