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
//! whose session broke is started again on the next call.
//!
//! A changed tool is refused (an `error` at stage `mcp`) and raises `alert`
//! `mcp_tool_changed` with the difference.
//!
//! Not yet: HTTP servers (refused with a clear error), restart back-off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
    running: Mutex<Option<Running>>,
}

struct Running {
    session: mcp::Session,
    /// Kept alive with the session; dropping it kills the server and its sandbox.
    _process: Box<dyn sandbox::Process>,
    _egress: Option<egress::ServeHandle>,
    listed: Vec<mcp::Tool>,
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
            running: Mutex::new(None),
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
    ) -> Result<mcp::CallOutcome, Failure> {
        let mut running = server.running.lock().await;
        if running.as_ref().is_none_or(|r| r.session.is_closed()) {
            *running = Some(self.start_mcp(server).await?);
        }
        let Some(r) = running.as_ref() else {
            return Err(Failure::new(Stage::Mcp, "the server is not running"));
        };
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
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                if e.kind.is_fatal() {
                    *running = None;
                }
                Err(Failure::new(Stage::Mcp, e.to_string()))
            }
        }
    }

    /// Start `server` in a sandbox of its own and open its MCP session.
    async fn start_mcp(&self, server: &McpServer) -> Result<Running, Failure> {
        let fail = |m: String| Failure::new(Stage::Mcp, m);
        let Some(command) = &server.cfg.command else {
            return Err(fail(format!(
                "MCP server `{}`: HTTP servers are not supported yet",
                server.name
            )));
        };
        let mut profile = crate::tools::exec::sandbox_profile(&self.config, self.workspace.root());
        profile.workspace_access = match server.cfg.workspace {
            config::McpWorkspace::None => sandbox::WorkspaceAccess::None,
            config::McpWorkspace::Read => sandbox::WorkspaceAccess::Read,
            config::McpWorkspace::Write => sandbox::WorkspaceAccess::Write,
        };
        let mut set = secrets::PlaceholderSet::new();
        for s in &server.secrets {
            set.insert(&s.name, s.value.clone(), s.hosts.clone())
                .map_err(|e| fail(format!("cannot make placeholders: {e}")))?;
        }
        let policy = egress::EgressPolicy::new(
            format!("{} (mcp {})", self.agent, server.name),
            format!("mcp:{}", server.name),
            server.cfg.egress.clone(),
        )
        .with_credentials(&set)
        .with_watched_secrets(self.watched_secrets.clone());
        let setup = crate::tools::exec::EgressSetup {
            proxy: self.egress.clone(),
            policy,
            env: set.env(),
            ca_bundle: self.ca_bundle.clone(),
        };
        setup.apply(&mut profile);
        let policy = setup.policy;
        let mut argv = vec![command.clone()];
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
        let listed = session
            .list_tools()
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Running {
            session,
            _process: process,
            _egress: serving,
            listed,
        })
    }
}
