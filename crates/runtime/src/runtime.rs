//! Runtime construction: one [`Runtime`] per agent, built from the config, the audit
//! log, the sandbox backend, the approver, the redactor, the egress proxy and the agent's
//! policy; [`Runtime::child`] builds a sub-agent's from its parent's.
//!
//! Guarantees: a runtime exists only for a configured agent with a usable workspace and a
//! policy, loaded or compiled at its first decision (a [`guard::LazyPolicy`]: if it
//! cannot be compiled then, every decision is a deny naming why); a config that lists
//! `[policy] files` needs the policy handed in (it is never silently rebuilt without
//! them); the model's own API key is always among the redacted values; a child shares
//! its parent's policy, sandbox backend, egress proxy, approver, redaction, audit log and
//! tool registry, with its tools narrowed and its step limit capped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use config::{AgentConfig, ToolName};
use guard::{LazyPolicy, Policy};

use crate::ToolSpec;
use crate::approval::{Approver, StoredApprovals};
use crate::session::SessionState;
use crate::tools::{self, Registry};
use crate::workspace::{Workspace, WorkspaceError};

pub struct RuntimeOptions {
    pub config: Arc<config::Config>,
    pub agent: String,
    pub audit: Arc<audit::Log>,
    pub sandbox: Arc<dyn sandbox::Sandbox>,
    pub approver: Arc<dyn Approver>,
    /// Pending approvals and grants, kept in the store (answerable from any process).
    pub approvals: Arc<StoredApprovals>,
    /// Redacts every vault value (and known credential formats) from what comes back.
    pub redactor: secrets::Redactor,
    /// The one way out: every outbound connection of this agent's tools goes through it.
    pub egress: Arc<egress::Proxy>,
    /// The vault secrets this agent may use (`agents.NAME.egress.secrets`), with their
    /// bound hosts. Tools only ever see per-session placeholders for them.
    pub secrets: Vec<AgentSecret>,
    /// Every vault value (name, value): blocked wherever it appears in outbound traffic.
    pub watched_secrets: Vec<(String, String)>,
    /// The agent's policy (`guard::Policy::load`, with the `[policy] files`), compiled
    /// already or at the first decision (every decision is then denied if it cannot be).
    /// `None` builds it from the config alone, now, and refuses a config that lists
    /// policy files.
    pub policy: Option<Arc<LazyPolicy>>,
    /// The skills enabled for this agent, verified ([`crate::skills::installed`]).
    pub skills: Vec<crate::skills::InstalledSkill>,
    /// Approved MCP tools (`mcp.lock`) and each server's secrets (`[mcp.servers.NAME]
    /// secrets`, from the vault): the agent is offered the pinned tools of the servers it
    /// uses.
    pub mcp: McpOptions,
    /// The directory of this agent's checkpoint journal (`STATE/checkpoints/AGENT`):
    /// used when `[checkpoints] enabled`; `None` journals nothing.
    pub checkpoints_dir: Option<std::path::PathBuf>,
}

/// What the runtime needs to offer and run MCP servers' tools.
#[derive(Default)]
pub struct McpOptions {
    pub pins: mcp::Pins,
    /// Server name -> its secrets with their values.
    pub secrets: BTreeMap<String, Vec<AgentSecret>>,
}

/// A vault secret an agent may use.
#[derive(Clone)]
pub struct AgentSecret {
    pub name: String,
    pub value: secrets::Secret,
    pub hosts: Vec<config::HostPattern>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no agent `{agent}` in the config; known agents: {known}")]
    UnknownAgent { agent: String, known: String },
    #[error("workspace of agent `{agent}` ({}) is not usable: {source}", path.display())]
    Workspace {
        agent: String,
        path: std::path::PathBuf,
        #[source]
        source: WorkspaceError,
    },
    #[error("cannot set up http_fetch for agent `{agent}`: {detail}")]
    Http { agent: String, detail: String },
    #[error("the policy of agent `{agent}` cannot be loaded: {detail}")]
    Policy { agent: String, detail: String },
    #[error("cannot open the checkpoint journal of agent `{agent}`: {reason}")]
    Checkpoints { agent: String, reason: String },
}

/// The effect boundary of one agent.
pub struct Runtime {
    pub(crate) config: Arc<config::Config>,
    pub(crate) agent: String,
    pub(crate) agent_cfg: AgentConfig,
    pub(crate) audit: Arc<audit::Log>,
    pub(crate) sandbox: Arc<dyn sandbox::Sandbox>,
    pub(crate) approver: Arc<dyn Approver>,
    pub(crate) approvals: Arc<StoredApprovals>,
    pub(crate) redactor: secrets::Redactor,
    pub(crate) policy: Arc<LazyPolicy>,
    /// Bound hosts of the agent's secrets, for decisions on secret-labelled data.
    pub(crate) secret_hosts: Arc<BTreeMap<String, Vec<config::HostPattern>>>,
    pub(crate) workspace: Workspace,
    pub(crate) http_tls: Arc<rustls::ClientConfig>,
    pub(crate) sessions: Mutex<HashMap<String, SessionState>>,
    /// Sub-agent session -> the session that spawned it (shared with child runtimes).
    pub(crate) lineage: Arc<Mutex<HashMap<String, String>>>,
    pub(crate) egress: Arc<egress::Proxy>,
    pub(crate) secrets: Vec<AgentSecret>,
    pub(crate) watched_secrets: Vec<(String, String)>,
    pub(crate) ca_bundle: Arc<Vec<u8>>,
    /// Memory, quarantined reader and sub-agent runner, attached after construction.
    pub(crate) ext: crate::extensions::Extensions,
    /// The tools this runtime can run (the agent is offered those its config lists).
    pub(crate) registry: Arc<Registry>,
    /// The skills enabled for this agent (shared with children).
    pub(crate) skills: Arc<Vec<Arc<crate::skills::InstalledSkill>>>,
    /// The journal of the workspace's changes (`[checkpoints]`), shared with children;
    /// `None` when checkpoints are off.
    pub(crate) journal: Option<Arc<crate::checkpoints::Journal>>,
}

impl Runtime {
    pub fn new(opts: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let Some(agent_cfg) = opts.config.agents.get(&opts.agent).cloned() else {
            let known: Vec<&str> = opts.config.agents.keys().map(String::as_str).collect();
            return Err(RuntimeError::UnknownAgent {
                agent: opts.agent,
                known: if known.is_empty() {
                    "(none)".into()
                } else {
                    known.join(", ")
                },
            });
        };
        let workspace =
            Workspace::open(&agent_cfg.workspace).map_err(|source| RuntimeError::Workspace {
                agent: opts.agent.clone(),
                path: agent_cfg.workspace.clone(),
                source,
            })?;
        let http_tls = tools::http_fetch::transport::tls_config(opts.egress.ca().ca_der())
            .map_err(|detail| RuntimeError::Http {
                agent: opts.agent.clone(),
                detail,
            })?;
        let mut redactor = opts.redactor;
        if let Some(var) = &opts.config.model.api_key_env
            && let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty())
            && !redactor.secret_names().contains(var)
        {
            redactor = redactor.with_secrets(vec![(var.clone(), value)]);
        }
        let policy = match opts.policy {
            Some(p) => p,
            None if !opts.config.policy.files.is_empty() => {
                return Err(RuntimeError::Policy {
                    agent: opts.agent,
                    detail: "[policy] files are listed but the runtime was given no loaded policy"
                        .into(),
                });
            }
            None => Arc::new(LazyPolicy::compiled(
                Policy::load(&opts.config, std::path::Path::new("."), &opts.agent).map_err(
                    |e| RuntimeError::Policy {
                        agent: opts.agent.clone(),
                        detail: e.to_string(),
                    },
                )?,
            )),
        };
        let secret_hosts = Arc::new(
            opts.secrets
                .iter()
                .map(|s| (s.name.clone(), s.hosts.clone()))
                .collect(),
        );
        // The built-in tools, then each approved tool of the MCP servers the agent uses.
        let servers = crate::mcp_servers::for_agent(
            &opts.config,
            &opts.agent,
            &opts.mcp.pins,
            &opts.mcp.secrets,
        );
        let registry = Arc::new(
            servers
                .iter()
                .flat_map(|server| {
                    server
                        .pins
                        .iter()
                        .map(|pin| tools::mcp_tool::McpTool::new(server.clone(), pin))
                })
                .fold(tools::builtin(), Registry::with),
        );
        let journal = match &opts.checkpoints_dir {
            Some(dir) if opts.config.checkpoints.enabled => Some(Arc::new(
                crate::checkpoints::Journal::open(
                    dir,
                    opts.config.checkpoints.max_mb.saturating_mul(1 << 20),
                    workspace.root(),
                )
                .map_err(|reason| RuntimeError::Checkpoints {
                    agent: opts.agent.clone(),
                    reason,
                })?,
            )),
            _ => None,
        };
        Ok(Runtime {
            journal,
            policy,
            secret_hosts,
            config: opts.config,
            agent: opts.agent,
            agent_cfg,
            audit: opts.audit,
            sandbox: opts.sandbox,
            approver: opts.approver,
            approvals: opts.approvals,
            redactor,
            workspace,
            http_tls,
            sessions: Mutex::new(HashMap::new()),
            lineage: Arc::default(),
            ca_bundle: Arc::new(tools::exec::ca_bundle(opts.egress.ca().ca_pem())),
            egress: opts.egress,
            secrets: opts.secrets,
            watched_secrets: opts.watched_secrets,
            ext: crate::extensions::Extensions::default(),
            registry,
            skills: Arc::new(opts.skills.into_iter().map(Arc::new).collect()),
        })
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The tools this agent is given, with their JSON Schemas.
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        self.registry
            .iter()
            .filter(|t| t.offered(self))
            .map(|t| t.spec())
            .collect()
    }

    /// Redact secrets from text (for the agent to clean model text before logging it).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).text
    }

    /// The agent's policy (compiled when first used).
    pub fn policy(&self) -> &Arc<LazyPolicy> {
        &self.policy
    }

    /// The system prompt's list of enabled skills, if any are.
    pub fn skill_catalog(&self) -> Option<String> {
        crate::skills::catalog(&self.skills)
    }

    /// The enabled skills.
    pub fn skills(&self) -> impl Iterator<Item = &crate::skills::InstalledSkill> {
        self.skills.iter().map(|s| s.as_ref())
    }
}

/// What the parts attached after construction (memory, quarantine, sub-agents; see
/// [`crate::extensions`]) need of the runtime.
impl Runtime {
    /// A runtime for a child agent: the same agent config, sandbox backend, egress proxy,
    /// approver, redaction and audit log, with `tools` (a subset of this runtime's,
    /// checked by the caller) and at most `max_steps`; one level deeper.
    pub fn child(&self, tools: Vec<ToolName>, max_steps: u32) -> Result<Runtime, RuntimeError> {
        let mut agent_cfg = self.agent_cfg.clone();
        agent_cfg.tools.retain(|t| tools.contains(t));
        agent_cfg.max_steps = max_steps.min(self.agent_cfg.max_steps);
        let workspace =
            Workspace::open(self.workspace.root()).map_err(|source| RuntimeError::Workspace {
                agent: self.agent.clone(),
                path: self.workspace.root().to_path_buf(),
                source,
            })?;
        Ok(Runtime {
            config: self.config.clone(),
            agent: self.agent.clone(),
            // The parent's policy (with its `[policy] files`): a forbid binds children too.
            // The narrowed tool set is enforced by the pipeline (tools outside
            // `agent_cfg.tools` do not exist for the child) and by `spawn_refusal` for
            // grandchildren.
            policy: self.policy.clone(),
            secret_hosts: self.secret_hosts.clone(),
            agent_cfg,
            audit: self.audit.clone(),
            sandbox: self.sandbox.clone(),
            approver: self.approver.clone(),
            approvals: self.approvals.clone(),
            redactor: self.redactor.clone(),
            workspace,
            http_tls: self.http_tls.clone(),
            sessions: Mutex::new(HashMap::new()),
            lineage: self.lineage.clone(),
            egress: self.egress.clone(),
            secrets: self.secrets.clone(),
            watched_secrets: self.watched_secrets.clone(),
            ca_bundle: self.ca_bundle.clone(),
            ext: self.ext.child(self.ext.depth + 1),
            registry: self.registry.clone(),
            skills: self.skills.clone(),
            journal: self.journal.clone(),
        })
    }

    /// The tools and step limit this runtime's agent has.
    pub fn tools(&self) -> &[ToolName] {
        &self.agent_cfg.tools
    }

    pub fn max_steps(&self) -> u32 {
        self.agent_cfg.max_steps
    }

    pub(crate) fn audit_log(&self) -> &audit::Log {
        &self.audit
    }

    pub(crate) fn agent_cfg(&self) -> &AgentConfig {
        &self.agent_cfg
    }

    /// Whether the sandbox backend isolates commands from the host.
    pub(crate) fn isolation(&self) -> sandbox::Isolation {
        self.sandbox.isolation()
    }
}
