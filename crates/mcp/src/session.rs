//! One live connection to one MCP server, over any pair of byte streams.
//!
//! Guarantees: `initialize` is answered within [`Limits::init_timeout`] with a
//! protocol version this client speaks, or the session is not made; every request has
//! a deadline, and a call that misses its deadline, floods notifications or is dropped
//! by its caller is cancelled with `notifications/cancelled`; a server that exits,
//! sends a line that is not JSON-RPC or one longer than [`Limits::max_message_bytes`]
//! fails every waiting request with that reason (the session is then closed); results
//! are cut to [`Limits::max_result_bytes`]. The client declares no capabilities:
//! a server's sampling requests are refused, elicitations declined, roots empty.
//!
//! Not done here: starting, sandboxing or restarting the server (the caller owns the
//! process and hands over its stdout and stdin), policy, redaction, audit.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotification, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientNotification, ClientRequest, Implementation,
    PaginatedRequestParams, ProtocolVersion, RequestId, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, RunningService, ServiceError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, ErrorKind};
use crate::outcome::{self, CallOutcome};
use crate::transport::{Fault, Stdio, Watch};

/// Bounds on what a server may cost. The defaults suit a local server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For the `initialize` exchange.
    pub init_timeout: Duration,
    /// For each page of `tools/list`.
    pub list_timeout: Duration,
    /// Longest single JSON-RPC message read from the server, in bytes.
    pub max_message_bytes: usize,
    /// Longest result text handed back, in bytes (the rest is cut, and the text says so).
    pub max_result_bytes: usize,
    /// Notifications and server requests accepted during one call; more cancel it.
    pub max_notifications_per_call: u32,
    /// Tools accepted from one listing (all pages together).
    pub max_tools: usize,
    /// Pages of `tools/list` followed.
    pub max_pages: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            init_timeout: Duration::from_secs(30),
            list_timeout: Duration::from_secs(30),
            max_message_bytes: 16 * 1024 * 1024,
            max_result_bytes: 1024 * 1024,
            max_notifications_per_call: 1000,
            max_tools: 1000,
            max_pages: 100,
        }
    }
}

/// What the server said about itself when initializing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `serverInfo.name` (empty if the server gave none).
    pub name: String,
    /// `serverInfo.version` (empty if the server gave none).
    pub version: String,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// The server's `instructions`, untrusted text as sent (see [`crate::model_facing`]).
    pub instructions: Option<String>,
}

/// One tool as the server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub title: Option<String>,
    /// As sent (empty when absent): untrusted, see [`crate::vet`] and [`crate::model_facing`].
    pub description: String,
    /// The JSON Schema of the arguments (a JSON object).
    pub input_schema: serde_json::Value,
}

impl Tool {
    fn from_rmcp(t: rmcp::model::Tool) -> Tool {
        Tool {
            name: t.name.into_owned(),
            title: t.title,
            description: t.description.map(Cow::into_owned).unwrap_or_default(),
            input_schema: serde_json::Value::Object((*t.input_schema).clone()),
        }
    }
}

/// The protocol versions this client accepts from a server, newest first: every
/// version rmcp knows that still has the `initialize` handshake.
fn supported_versions() -> Vec<ProtocolVersion> {
    let mut v: Vec<ProtocolVersion> = ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .filter(|v| v.has_initialize())
        .cloned()
        .collect();
    v.reverse();
    v
}

/// A live session with one server.
pub struct Session {
    server: String,
    service: RunningService<RoleClient, ClientConfig>,
    watch: Arc<Watch>,
    limits: Limits,
    info: ServerInfo,
    /// Tool names of the last listing.
    listed: Mutex<Option<Vec<String>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Initialize a session with the server named `server` (a name for errors and
    /// records) that reads requests from `write` and writes messages to `read` — for a
    /// child process, its stdout and stdin. Offers the newest protocol version with an
    /// `initialize` handshake and accepts any older one this client knows.
    pub async fn connect<R, W>(
        server: &str,
        read: R,
        write: W,
        limits: Limits,
    ) -> Result<Session, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let watch = Watch::new(limits.max_notifications_per_call);
        let transport = Stdio::new(read, write, limits.max_message_bytes, watch.clone());
        Session::connect_over(server, transport, watch, limits).await
    }

    /// Initialize over any rmcp transport whose received messages pass through `watch`.
    pub(crate) async fn connect_over<T>(
        server: &str,
        transport: T,
        watch: Arc<Watch>,
        limits: Limits,
    ) -> Result<Session, Error>
    where
        T: rmcp::transport::Transport<RoleClient> + 'static,
    {
        let fail = |kind| Error::new(server, None, kind);
        let mut config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("cordon", env!("CARGO_PKG_VERSION")),
        );
        config.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
        let service =
            match tokio::time::timeout(limits.init_timeout, rmcp::serve_client(config, transport))
                .await
            {
                Err(_) => return Err(fail(ErrorKind::InitTimeout(limits.init_timeout))),
                Ok(Err(e)) => {
                    if let Some(kind) = fault_kind(&watch) {
                        return Err(fail(kind));
                    }
                    return Err(fail(match e {
                        rmcp::service::ClientInitializeError::ConnectionClosed(detail) => {
                            ErrorKind::ExitedDuringInit { detail }
                        }
                        rmcp::service::ClientInitializeError::JsonRpcError(e) => ErrorKind::Rpc {
                            code: e.code.0,
                            message: e.message.into_owned(),
                        },
                        rmcp::service::ClientInitializeError::TransportError { error, context } => {
                            ErrorKind::Init(format!("{context}: {}", chain(&*error.error)))
                        }
                        other => ErrorKind::Init(other.to_string()),
                    }));
                }
                Ok(Ok(service)) => service,
            };
        let Some(peer_info) = service.peer().peer_info() else {
            return Err(fail(ErrorKind::Init(
                "no initialize result was recorded".to_string(),
            )));
        };
        let version = peer_info.protocol_version.clone();
        let supported = supported_versions();
        if !supported.contains(&version) {
            let _ = service.cancel().await;
            return Err(fail(ErrorKind::UnsupportedProtocol {
                version: version.to_string(),
                supported: supported
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }));
        }
        let (name, server_version) = peer_info
            .server_info
            .as_ref()
            .map(|i| (i.name.clone(), i.version.clone()))
            .unwrap_or_default();
        let info = ServerInfo {
            name,
            version: server_version,
            protocol_version: version.to_string(),
            instructions: peer_info.instructions.clone(),
        };
        Ok(Session {
            server: server.to_string(),
            service,
            watch,
            limits,
            info,
            listed: Mutex::new(None),
        })
    }

    /// The name the session was connected with.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many `notifications/tools/list_changed` the server has sent: when it grows,
    /// list the tools again (and compare them with the pins).
    pub fn tools_changed(&self) -> u64 {
        self.watch.list_changed()
    }

    /// Notifications and server requests dropped for being over a budget.
    pub fn dropped_notifications(&self) -> u64 {
        self.watch.dropped()
    }

    /// Whether the connection has ended (the server exited or broke the protocol).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.watch.fault().is_some()
    }

    fn error(&self, tool: Option<&str>, kind: ErrorKind) -> Error {
        Error::new(&self.server, tool, kind)
    }

    /// The error for a request that failed in rmcp: a recorded fault first.
    fn service_error(&self, tool: Option<&str>, e: ServiceError) -> Error {
        if let Some(kind) = fault_kind(&self.watch) {
            return self.error(tool, kind);
        }
        self.error(
            tool,
            match e {
                ServiceError::McpError(e) => ErrorKind::Rpc {
                    code: e.code.0,
                    message: e.message.into_owned(),
                },
                ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                    ErrorKind::Closed(None)
                }
                ServiceError::Timeout { timeout } => ErrorKind::Timeout(timeout),
                other => ErrorKind::Unexpected(other.to_string()),
            },
        )
    }

    /// Every tool the server lists, following pages (at most [`Limits::max_pages`]
    /// pages and [`Limits::max_tools`] tools, each page within
    /// [`Limits::list_timeout`]). Remembers the names for [`Session::call_tool`].
    pub async fn list_tools(&self) -> Result<Vec<Tool>, Error> {
        let peer = self.service.peer();
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..self.limits.max_pages {
            let params = PaginatedRequestParams::default().with_cursor(cursor.take());
            let page =
                tokio::time::timeout(self.limits.list_timeout, peer.list_tools(Some(params)))
                    .await
                    .map_err(|_| self.error(None, ErrorKind::Timeout(self.limits.list_timeout)))?
                    .map_err(|e| self.service_error(None, e))?;
            for tool in page.tools.into_iter().map(Tool::from_rmcp) {
                // Two tools of one name: which one a call reaches is the server's choice,
                // not the one a human approved.
                if tools.iter().any(|t: &Tool| t.name == tool.name) {
                    return Err(self.error(
                        Some(&tool.name),
                        ErrorKind::Unexpected(
                            "the server listed this tool twice; refusing the listing".to_string(),
                        ),
                    ));
                }
                tools.push(tool);
            }
            if tools.len() > self.limits.max_tools {
                return Err(self.error(None, ErrorKind::ListTooLong(self.limits.max_tools)));
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => {
                    *self.listed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(tools.iter().map(|t| t.name.clone()).collect());
                    return Ok(tools);
                }
            }
        }
        Err(self.error(None, ErrorKind::ListTooLong(self.limits.max_pages)))
    }

    /// Call tool `name` with `args` (a JSON object, or null for none), waiting at most
    /// `timeout`. A tool the last listing did not name is refused without asking the
    /// server (the tools are listed first if they never were). On timeout, a
    /// notification flood, or when this future is dropped, the server is sent
    /// `notifications/cancelled` for the request.
    pub async fn call_tool(
        &self,
        name: &str,
        args: serde_json::Value,
        timeout: Duration,
    ) -> Result<CallOutcome, Error> {
        let tool = Some(name);
        let arguments = match args {
            serde_json::Value::Object(o) => Some(o),
            serde_json::Value::Null => None,
            other => return Err(self.error(tool, ErrorKind::BadArguments(json_kind(&other)))),
        };
        self.check_listed(name).await?;

        let started = Instant::now();
        let (key, flood) = self.watch.begin();
        let _end = EndCall {
            watch: &self.watch,
            key,
        };
        let mut params = CallToolRequestParams::new(name.to_string());
        if let Some(a) = arguments {
            params = params.with_arguments(a);
        }
        let peer = self.service.peer();
        let mut handle = peer
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                PeerRequestOptions::no_options(),
            )
            .await
            .map_err(|e| self.service_error(tool, e))?;
        self.watch.set_token(key, handle.progress_token.clone());
        let mut cancel = CancelOnDrop {
            peer: peer.clone(),
            id: Some(handle.id.clone()),
            reason: "abandoned by the caller",
        };
        let answer = tokio::select! {
            biased;
            answer = &mut handle.rx => answer,
            _ = flood.notified() => {
                cancel.reason = "too many notifications";
                return Err(self.error(tool, ErrorKind::NotificationFlood {
                    limit: self.limits.max_notifications_per_call,
                }));
            }
            _ = tokio::time::sleep(timeout) => {
                cancel.reason = "timed out";
                return Err(self.error(tool, ErrorKind::Timeout(timeout)));
            }
        };
        cancel.id = None;
        let result = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.service_error(tool, e)),
            Err(_) => return Err(self.service_error(tool, ServiceError::TransportClosed)),
        };
        let seen = self.watch.end(key);
        let result = match result {
            ServerResult::CallToolResult(r) => r,
            // A result without `content` decodes as the empty result.
            ServerResult::EmptyResult(_) => rmcp::model::CallToolResult::success(Vec::new()),
            other => {
                let shown = serde_json::to_string(&other).unwrap_or_default();
                return Err(self.error(
                    tool,
                    ErrorKind::Unexpected(format!(
                        "not a tools/call result: {}",
                        shown.chars().take(200).collect::<String>()
                    )),
                ));
            }
        };
        Ok(outcome::render(
            result,
            self.limits.max_result_bytes,
            (seen.progress, seen.last_progress),
            started.elapsed(),
        ))
    }

    async fn check_listed(&self, name: &str) -> Result<(), Error> {
        let known = self
            .listed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let names = match known {
            Some(n) => n,
            None => {
                self.list_tools().await?;
                self.listed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_default()
            }
        };
        if names.iter().any(|n| n == name) {
            return Ok(());
        }
        let mut listed = names.join(", ");
        if listed.is_empty() {
            listed = "none".to_string();
        }
        Err(self.error(Some(name), ErrorKind::UnknownTool { listed }))
    }

    /// End the session: closes the server's stdin (a stdio server exits on that) and
    /// waits for the client's task.
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

fn fault_kind(watch: &Watch) -> Option<ErrorKind> {
    Some(match watch.fault()?.clone() {
        Fault::Malformed { detail, excerpt } => ErrorKind::Malformed { detail, excerpt },
        Fault::TooLarge { limit } => ErrorKind::MessageTooLarge { limit },
        Fault::Read(e) => ErrorKind::Closed(Some(format!("reading its output failed: {e}"))),
    })
}

/// An error and its sources, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Forgets a call's watch when the call ends, however it ends.
struct EndCall<'a> {
    watch: &'a Watch,
    key: u64,
}

impl Drop for EndCall<'_> {
    fn drop(&mut self) {
        self.watch.end(self.key);
    }
}

/// Sends `notifications/cancelled` for a request that was not answered, unless
/// disarmed (`id` taken).
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
    reason: &'static str,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let peer = self.peer.clone();
        let note = ClientNotification::CancelledNotification(CancelledNotification::new(
            CancelledNotificationParam::new(Some(id), Some(self.reason.to_string())),
        ));
        rt.spawn(async move {
            let _ = peer.send_notification(note).await;
        });
    }
}
