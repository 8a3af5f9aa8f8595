//! MCP servers in the runtime: the `[mcp.servers]` an agent uses, each started on first
//! use in a sandbox of its own, and the calls of their approved tools.
//!
//! Guarantees: the tools offered are exactly those pinned in `mcp.lock` (approved by a
//! human, with the description and schema the model is shown) that the server's `tools`
//! filter lets through. A stdio server runs through [`sandbox::Sandbox::spawn`] with the
//! profile of `[sandbox]`, its declared workspace access, its own egress allowlist
//! through the proxy (nothing else reachable) and its secrets as placeholders only. Each
//! start lists the server's tools again; a tool whose name, description or schema no
//! longer hashes to its pin is refused (the server changed it after approval). A server
//! whose session broke (it crashed, or broke the protocol) is started again on the next
//! call, with back-off: at once after one failure, then after 1, 2, 4 … up to 60 seconds
//! while it keeps failing; a call in between is refused naming the last failure. A
//! `notifications/tools/list_changed` makes the next call list the tools again first, so
//! a change while the server runs is caught like a change between starts.
//!
//! An HTTP server is reached only through the egress proxy: its requests go to a
//! listener on this host's loopback served under the server's own policy (its URL's
//! host plus its `egress`, credentials for its secrets' bound hosts), which serves only
//! connections that carry this start's random proxy token. Its `headers` carry its
//! secrets as placeholders.
//!
//! A changed tool is refused (an `error` at stage `mcp`) and raises `alert`
//! `mcp_tool_changed` with the difference.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::Runtime;
use crate::pipeline::{Failure, Stage};
use crate::runtime::AgentSecret;

/// One configured server of this agent.
pub(crate) struct McpServer {
    pub(crate) name: String,
    pub(crate) cfg: config::McpServerConfig,
    /// Approved tools (from `mcp.lock`).
    pub(crate) pins: Vec<mcp::ToolPin>,
    /// Its secrets, with their values (placeholders are made from them at start).
    pub(crate) secrets: Vec<AgentSecret>,
    state: Mutex<State>,
}

/// Longest wait before a failing server is started again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    running: Option<Running>,
    /// Failures (a start that failed, a session that broke) since the last good call.
    failures: u32,
    last_failure: String,
    /// No start before this.
    retry_at: Option<Instant>,
}

impl State {
    /// Count a failure: the session is dropped (its server killed) and the next start
    /// waits — not at all after the first failure, then 1, 2, 4 … seconds.
    fn failed(&mut self, reason: &str) {
        self.running = None;
        self.failures = self.failures.saturating_add(1);
        self.last_failure = reason.to_string();
        let wait = match self.failures {
            0 | 1 => Duration::ZERO,
            n => Duration::from_secs(1u64 << (n - 2).min(6)).min(MAX_BACKOFF),
        };
        self.retry_at = Some(Instant::now() + wait);
    }

    /// Refused while the back-off lasts.
    fn may_start(&self, server: &str) -> Result<(), Failure> {
        match self.retry_at {
            Some(at) if at > Instant::now() => {
                let secs = (at - Instant::now()).as_secs_f64().ceil();
                Err(Failure::new(
                    Stage::Mcp,
                    format!(
                        "MCP server `{server}` failed {} times in a row (last: {}); it is \
                         started again in {secs:.0} s",
                        self.failures, self.last_failure
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

struct Running {
    session: mcp::Session,
    /// Kept alive with the session; dropping it kills the server and its sandbox (none
    /// for an HTTP server).
    /// (In a mutex only to make the session shareable across threads.)
    _process: Option<std::sync::Mutex<Box<dyn sandbox::Process>>>,
    _egress: Option<egress::ServeHandle>,
    listed: Vec<mcp::Tool>,
    /// [`mcp::Session::tools_changed`] when `listed` was taken.
    listed_at_change: u64,
}

impl McpServer {
    pub(crate) fn new(
        name: &str,
        cfg: config::McpServerConfig,
        pins: Vec<mcp::ToolPin>,
        secrets: Vec<AgentSecret>,
    ) -> McpServer {
        McpServer {
            name: name.to_string(),
            cfg,
            pins,
            secrets,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the server can reach the network.
    pub(crate) fn networked(&self) -> bool {
        !self.cfg.egress.is_empty() || self.cfg.url.is_some()
    }
}

/// The servers agent `agent` uses, with their pins and secrets.
pub(crate) fn for_agent(
    config: &config::Config,
    agent: &str,
    pins: &mcp::Pins,
    secrets: &BTreeMap<String, Vec<AgentSecret>>,
) -> Vec<Arc<McpServer>> {
    config
        .mcp
        .servers
        .iter()
        .filter(|(_, s)| s.agents.is_empty() || s.agents.iter().any(|a| a == agent))
        .map(|(name, cfg)| {
            let pinned: Vec<mcp::ToolPin> = pins
                .server(name)
                .iter()
                .filter(|p| cfg.tools.allows(&p.name))
                .cloned()
                .collect();
            Arc::new(McpServer::new(
                name,
                cfg.clone(),
                pinned,
                secrets.get(name).cloned().unwrap_or_default(),
            ))
        })
        .collect()
}

impl Runtime {
    /// Start the configured server `name` (for this agent), list its tools and stop it:
    /// for `cordon mcp tools|approve|test`, where a human asked.
    pub async fn mcp_list_tools(
        &self,
        name: &str,
        secrets: Vec<AgentSecret>,
    ) -> Result<(mcp::ServerInfo, Vec<mcp::Tool>), String> {
        let cfg = self
            .config
            .mcp
            .servers
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no MCP server `{name}` in [mcp.servers]"))?;
        let server = McpServer::new(name, cfg, Vec::new(), secrets);
        let running = self.start_mcp(&server).await.map_err(|f| f.message)?;
        let info = running.session.info().clone();
        let listed = running.listed.clone();
        running.session.close().await;
        Ok((info, listed))
    }

    /// Call `tool` of `server` with `args`: start the server if it is not running, check
    /// the tool still matches its pin, call it within the server's timeout.
    pub(crate) async fn mcp_call(
        &self,
        server: &McpServer,
        tool: &str,
        args: serde_json::Value,
    ) -> Result<(mcp::CallOutcome, mcp::ServerInfo), Failure> {
        let mut state = server.state.lock().await;
        if state
            .running
            .as_ref()
            .is_some_and(|r| r.session.is_closed())
        {
            state.failed("it exited or closed its connection after the last call");
        }
        if state.running.is_none() {
            state.may_start(&server.name)?;
            match self.start_mcp(server).await {
                Ok(r) => state.running = Some(r),
                Err(f) => {
                    state.failed(&f.message);
                    return Err(f);
                }
            }
        }
        let Some(r) = state.running.as_mut() else {
            return Err(Failure::new(Stage::Mcp, "the server is not running"));
        };
        // The server said its tools changed: list them again before trusting the
        // listing (the pin check below then sees the change).
        let changes = r.session.tools_changed();
        if changes != r.listed_at_change {
            match r.session.list_tools().await {
                Ok(listed) => {
                    r.listed = listed;
                    r.listed_at_change = changes;
                }
                Err(e) => {
                    if e.kind.is_fatal() {
                        state.failed(&e.to_string());
                    }
                    return Err(Failure::new(Stage::Mcp, e.to_string()));
                }
            }
        }
        let r = &*r;
        let pin = server.pins.iter().find(|p| p.name == tool).ok_or_else(|| {
            Failure::new(
                Stage::Mcp,
                format!(
                    "tool `{tool}` of MCP server `{}` is not approved",
                    server.name
                ),
            )
        })?;
        let Some(listed) = r.listed.iter().find(|t| t.name == tool) else {
            return Err(Failure::new(
                Stage::Mcp,
                format!(
                    "MCP server `{}` no longer offers `{tool}`; approve its tools again with \
                     `cordon mcp approve {}`",
                    server.name, server.name
                ),
            ));
        };
        let now = mcp::pin::tool_hash(&listed.name, &listed.description, &listed.input_schema);
        if now != pin.sha256 {
            let diff = mcp::compare(std::slice::from_ref(listed), std::slice::from_ref(pin))
                .into_iter()
                .find_map(|c| match c.status {
                    mcp::Status::Changed { diff, .. } => Some(diff),
                    _ => None,
                })
                .unwrap_or_default();
            let alert = audit::event::Alert::Named(audit::event::NamedAlert::McpToolChanged(
                audit::event::McpToolChanged {
                    server: server.name.clone(),
                    tool: tool.to_string(),
                    pinned: pin.sha256.clone(),
                    now,
                    diff,
                },
            ));
            if let Err(e) = self.audit.append_event(None, alert) {
                tracing::warn!("audit: cannot append an alert: {e}");
            }
            return Err(Failure::new(
                Stage::Mcp,
                format!(
                    "MCP server `{}` changed the description or schema of `{tool}` since it \
                     was approved: the tool is disabled until a human approves the new one \
                     (`cordon mcp tools {}` shows the difference)",
                    server.name, server.name
                ),
            ));
        }
        let timeout = Duration::from_secs(server.cfg.timeout_secs);
        match r.session.call_tool(tool, args, timeout).await {
            Ok(outcome) => {
                let info = r.session.info().clone();
                state.failures = 0;
                state.retry_at = None;
                Ok((outcome, info))
            }
            Err(e) => {
                if e.kind.is_fatal() {
                    state.failed(&e.to_string());
                }
                Err(Failure::new(Stage::Mcp, e.to_string()))
            }
        }
    }

    /// Start `server` (a stdio server in a sandbox of its own, or a session with an HTTP
    /// server through the egress proxy) and list its tools.
    async fn start_mcp(&self, server: &McpServer) -> Result<Running, Failure> {
        let fail = |m: String| Failure::new(Stage::Mcp, m);
        let mut set = secrets::PlaceholderSet::new();
        for s in &server.secrets {
            set.insert(&s.name, s.value.clone(), s.hosts.clone())
                .map_err(|e| fail(format!("cannot make placeholders: {e}")))?;
        }
        let (session, process, serving) = match (&server.cfg.command, &server.cfg.url) {
            (Some(command), _) => self.start_stdio(server, command, &set).await?,
            (None, Some(url)) => self.start_http(server, url, &set).await?,
            (None, None) => {
                return Err(fail(format!(
                    "MCP server `{}` has neither `command` nor `url`",
                    server.name
                )));
            }
        };
        let listed_at_change = session.tools_changed();
        let listed = session
            .list_tools()
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Running {
            session,
            _process: process.map(std::sync::Mutex::new),
            _egress: serving,
            listed,
            listed_at_change,
        })
    }

    /// The egress policy of `server`: its `egress` (and `extra` hosts), its secrets'
    /// placeholders swapped for their bound hosts.
    fn mcp_egress_policy(
        &self,
        server: &McpServer,
        extra: Option<config::HostPattern>,
        set: &secrets::PlaceholderSet,
    ) -> egress::EgressPolicy {
        let mut allow = server.cfg.egress.clone();
        allow.extend(extra);
        egress::EgressPolicy::new(
            format!("{} (mcp {})", self.agent, server.name),
            format!("mcp:{}", server.name),
            allow,
        )
        .with_credentials(set)
        .with_watched_secrets(self.watched_secrets.clone())
    }

    async fn start_stdio(
        &self,
        server: &McpServer,
        command: &str,
        set: &secrets::PlaceholderSet,
    ) -> Result<Started, Failure> {
        let fail = |m: String| Failure::new(Stage::Mcp, m);
        let mut profile = crate::tools::exec::sandbox_profile(&self.config, self.workspace.root());
        profile.workspace_access = match server.cfg.workspace {
            config::McpWorkspace::None => sandbox::WorkspaceAccess::None,
            config::McpWorkspace::Read => sandbox::WorkspaceAccess::Read,
            config::McpWorkspace::Write => sandbox::WorkspaceAccess::Write,
        };
        let setup = crate::tools::exec::EgressSetup {
            proxy: self.egress.clone(),
            policy: self.mcp_egress_policy(server, None, set),
            env: set.env(),
            ca_bundle: self.ca_bundle.clone(),
        };
        setup.apply(&mut profile);
        let policy = setup.policy;
        let mut argv = vec![command.to_string()];
        argv.extend(server.cfg.args.iter().cloned());
        let sandbox = self.sandbox.clone();
        let req = sandbox::SpawnRequest::new(argv);
        let mut process = tokio::task::spawn_blocking(move || sandbox.spawn(&profile, &req))
            .await
            .map_err(|e| fail(format!("the sandbox task ended abnormally: {e}")))?
            .map_err(|e| fail(format!("MCP server `{}` could not start: {e}", server.name)))?;
        let serving = match process.egress_listener() {
            Some(fd) => Some(
                self.egress
                    .serve(std::net::TcpListener::from(fd), policy)
                    .map_err(|e| fail(format!("the egress proxy could not serve it: {e}")))?,
            ),
            None => None,
        };
        let (Some(stdin), Some(stdout)) = (process.stdin(), process.stdout()) else {
            return Err(fail("the sandbox gave no stdio pipes".into()));
        };
        let write = tokio::net::unix::pipe::Sender::from_owned_fd(stdin)
            .map_err(|e| fail(format!("stdin: {e}")))?;
        let read = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout)
            .map_err(|e| fail(format!("stdout: {e}")))?;
        let session = mcp::Session::connect(&server.name, read, write, mcp::Limits::default())
            .await
            .map_err(|e| {
                let tail = String::from_utf8_lossy(&process.stderr_tail()).into_owned();
                fail(format!("{e}; its stderr ends: {}", tail.trim()))
            })?;
        Ok((session, Some(process), serving))
    }

    /// A session with the HTTP server at `url`, every request sent through a loopback
    /// listener of the egress proxy that serves only this client (a random proxy token).
    async fn start_http(
        &self,
        server: &McpServer,
        url: &str,
        set: &secrets::PlaceholderSet,
    ) -> Result<Started, Failure> {
        let fail = |m: String| Failure::new(Stage::Mcp, m);
        let parsed = reqwest::Url::parse(url).map_err(|e| fail(format!("`{url}`: {e}")))?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(fail(format!("`{url}` names no host")));
        };
        let own = config::HostPattern::parse(&format!("{host}:{port}"))
            .map_err(|e| fail(format!("`{url}`: {}", e.reason)))?;
        let policy = self.mcp_egress_policy(server, Some(own), set);
        let token = secrets::Placeholder::generate()
            .map_err(|e| fail(format!("no randomness for the proxy token: {e}")))?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| {
            fail(format!(
                "cannot listen on loopback for the egress proxy: {e}"
            ))
        })?;
        let serving = self
            .egress
            .serve_authenticated(listener, policy, token.as_str())
            .map_err(|e| fail(format!("the egress proxy could not serve it: {e}")))?;
        let client = http_client(
            server,
            serving.local_addr(),
            token.as_str(),
            set,
            &self.ca_bundle,
        )
        .map_err(|e| fail(format!("MCP server `{}`: {e}", server.name)))?;
        let session = mcp::Session::connect_http(&server.name, url, client, mcp::Limits::default())
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok((session, None, Some(serving)))
    }
}

/// A session, the process behind it (stdio), the egress listener serving it.
type Started = (
    mcp::Session,
    Option<Box<dyn sandbox::Process>>,
    Option<egress::ServeHandle>,
);

/// The HTTP client of an HTTP server's session: every request through the proxy at
/// `proxy` (with its token), TLS trusting only the bundle the sandboxes trust (public
/// roots and the proxy's CA, which signs the leaf where it injects a credential), the
/// server's `headers` with `${NAME}` replaced by the secret's placeholder.
fn http_client(
    server: &McpServer,
    proxy: std::net::SocketAddr,
    token: &str,
    set: &secrets::PlaceholderSet,
    ca_bundle: &[u8],
) -> Result<mcp::reqwest::Client, String> {
    use mcp::reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    // reqwest 0.13 brings no crypto provider of its own; the rest of Cordon uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HeaderMap::new();
    for (name, value) in &server.cfg.headers {
        let mut value = value.clone();
        for (secret, placeholder) in set.env() {
            value = value.replace(&format!("${{{secret}}}"), &placeholder);
        }
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header `{name}`: {e}"))?;
        let mut value =
            HeaderValue::from_str(&value).map_err(|e| format!("header `{name}`: {e}"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let roots = mcp::reqwest::Certificate::from_pem_bundle(ca_bundle)
        .map_err(|e| format!("the CA bundle: {e}"))?;
    let proxy = mcp::reqwest::Proxy::all(format!("http://{proxy}"))
        .map_err(|e| format!("the proxy: {e}"))?
        .basic_auth("cordon", token);
    mcp::reqwest::Client::builder()
        .proxy(proxy)
        .tls_certs_only(roots)
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(10))
        .redirect(mcp::reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build its HTTP client: {e}"))
}
