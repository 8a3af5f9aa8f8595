//! [`Runtime::perform`]: one tool call from proposal to labelled, redacted, audited
//! observation.
//!
//! Guarantees: the proposal is audited before anything else (a proposal the log refuses
//! does not run); the guard's decision is made durable (`Log::record`) before anything
//! executes; `Ask` never runs without a human's `Once`/`Session` answer or a session
//! grant for the exact same canonical action (noted as `session_grant` on the decision
//! record; `approval` records are written only when a human was actually asked); every
//! result is redacted before it leaves, labelled (`http_fetch`, and `exec` when it can
//! reach the network, are untrusted; their content is cleaned and wrapped in the
//! session's boundary markers by [`crate::hygiene`]), and audited with a digest. Any
//! failure becomes an error observation and an `error` audit record; nothing panics and
//! nothing runs outside the sandbox / workspace confinement. If the audit log cannot
//! record the decision, the action does not run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use audit::EventKind;
use config::{AgentConfig, ToolName};
use guard::{Action, Confidentiality, Decision, Labels, Policy, Verdict};
use serde_json::{Value, json};
use sha2::Digest;

use crate::approval::{ApprovalAnswer, ApprovalKind, ApprovalRequest, Approver, StoredApprovals};
use crate::flow::SessionFlow;
use crate::hygiene;
use crate::memory::MemoryFile;
use crate::tools::exec::SharedInstance;
use crate::tools::http_fetch::Target;
use crate::tools::{
    self, Args, EditFileArgs, ExecArgs, HttpFetchArgs, ListDirArgs, MemoryWriteArgs, ReadFileArgs,
    SearchArgs, SpawnAgentArgs, ToolOutput, WriteFileArgs,
};
use crate::workspace::{Workspace, WorkspaceError, WorkspacePath};
use crate::{Integrity, Observation, Provenance, ToolCall, ToolSpec};

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
    /// The agent's policy (`guard::Policy::load`, with the `[policy] files`). `None`
    /// builds it from the config alone and refuses a config that lists policy files.
    pub policy: Option<Arc<Policy>>,
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
}

#[derive(Default)]
struct SessionState {
    instance: SharedInstance,
    /// Placeholders and the egress policy of the session, made on first use.
    egress: Option<SessionEgress>,
    /// The marker around the session's untrusted content, made on first use.
    boundary: Option<hygiene::Boundary>,
    /// The session's label and contacted hosts, made on first use.
    flow: Option<Arc<SessionFlow>>,
}

/// What a session's traffic is decided with: its own placeholders (unguessable, new
/// for every session) and the policy the proxy applies to its connections.
#[derive(Clone)]
pub(crate) struct SessionEgress {
    pub(crate) env: Vec<(String, String)>,
    /// The policy of the runtime's own requests (`http_fetch`) in this session.
    pub(crate) policy: Arc<egress::EgressPolicy>,
    /// The session's placeholders, for the policy of each sandbox it starts (every
    /// sandbox gets its own connection and byte budget).
    pub(crate) placeholders: Arc<secrets::PlaceholderSet>,
}

/// The effect boundary of one agent.
pub struct Runtime {
    config: Arc<config::Config>,
    agent: String,
    agent_cfg: AgentConfig,
    audit: Arc<audit::Log>,
    sandbox: Arc<dyn sandbox::Sandbox>,
    approver: Arc<dyn Approver>,
    approvals: Arc<StoredApprovals>,
    redactor: secrets::Redactor,
    policy: Arc<Policy>,
    /// Bound hosts of the agent's secrets, for decisions on secret-labelled data.
    secret_hosts: Arc<BTreeMap<String, Vec<config::HostPattern>>>,
    workspace: Workspace,
    http_tls: Arc<rustls::ClientConfig>,
    sessions: Mutex<HashMap<String, SessionState>>,
    /// Sub-agent session -> the session that spawned it (shared with child runtimes).
    lineage: Arc<Mutex<HashMap<String, String>>>,
    egress: Arc<egress::Proxy>,
    secrets: Vec<AgentSecret>,
    watched_secrets: Vec<(String, String)>,
    ca_bundle: Arc<Vec<u8>>,
    /// Memory, quarantined reader and sub-agent runner, attached after construction.
    pub(crate) ext: crate::extensions::Extensions,
}

/// A call whose arguments are parsed and whose targets are resolved: what the guard
/// decides on and what the tools execute.
enum Plan {
    ReadFile(ReadFileArgs, WorkspacePath),
    WriteFile(WriteFileArgs, WorkspacePath),
    EditFile(EditFileArgs, WorkspacePath),
    ListDir(ListDirArgs, WorkspacePath),
    Search(SearchArgs, WorkspacePath),
    Exec(ExecArgs),
    HttpFetch(HttpFetchArgs, Target),
    MemoryWrite(MemoryWriteArgs, MemoryFile),
    SpawnAgent(SpawnAgentArgs, Vec<ToolName>),
}

impl Plan {
    /// `None` for `memory_write` and `spawn_agent` until `guard::Action` can express them:
    /// the runtime decides those itself (and audits the decision) in their execute arms.
    fn action(&self) -> Option<Action> {
        Some(match self {
            Plan::ReadFile(_, p) => Action::ReadFile { path: p.as_str() },
            Plan::WriteFile(_, p) => Action::WriteFile { path: p.as_str() },
            Plan::EditFile(_, p) => Action::EditFile { path: p.as_str() },
            Plan::ListDir(_, p) => Action::ListDir { path: p.as_str() },
            Plan::Search(_, p) => Action::Search { path: p.as_str() },
            Plan::Exec(a) => Action::Exec {
                command: a.command.clone(),
            },
            Plan::HttpFetch(a, t) => connect_action(a.method.unwrap_or(tools::Method::Get), t),
            Plan::MemoryWrite(..) | Plan::SpawnAgent(..) => return None,
        })
    }
}

/// Why a call ended without (successful) execution: the text for the model and the
/// stage for the audit `error` record.
struct Failure {
    stage: &'static str,
    message: String,
}

fn fail(stage: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        message: message.into(),
    }
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
        let http_tls =
            tools::http_fetch::tls_config(opts.egress.ca().ca_der()).map_err(|detail| {
                RuntimeError::Http {
                    agent: opts.agent.clone(),
                    detail,
                }
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
            None => Arc::new(
                Policy::load(&opts.config, std::path::Path::new("."), &opts.agent).map_err(
                    |e| RuntimeError::Policy {
                        agent: opts.agent.clone(),
                        detail: e.to_string(),
                    },
                )?,
            ),
        };
        let secret_hosts = Arc::new(
            opts.secrets
                .iter()
                .map(|s| (s.name.clone(), s.hosts.clone()))
                .collect(),
        );
        Ok(Runtime {
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
        ToolName::ALL
            .into_iter()
            .filter(|t| self.agent_cfg.tools.contains(t))
            .map(tools::spec)
            .collect()
    }

    /// Redact secrets from text (for the agent to clean model text before logging it).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).text
    }

    /// The model's arguments for the audit log: redacted, and as JSON when they parse
    /// (the raw redacted text otherwise).
    fn redacted_arguments(&self, raw: &str) -> Value {
        let text = self.redact(raw);
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    /// Untrusted content is cleaned and wrapped in the session's boundary (see
    /// [`crate::hygiene`]) before redaction; without a boundary it is withheld.
    fn hygiene(&self, session: &str, source: &str, response: bool, output: &mut ToolOutput) {
        let made = self.with_session(session, |s| match &s.boundary {
            Some(b) => Ok(b.clone()),
            None => hygiene::Boundary::new().map(|b| s.boundary.insert(b).clone()),
        });
        match made {
            Ok(b) if response => {
                output.content = hygiene::http_response(&b, source, &output.content);
            }
            Ok(b) => output.content = hygiene::untrusted_text(&b, source, &output.content),
            Err(e) => {
                output.content = e.to_string();
                output.is_error = true;
            }
        }
    }

    /// Drop the session's sandbox instance and its grants.
    /// Record that sub-agent session `child` was spawned by `parent` (so that what it
    /// asks a human is shown where the human is looking: the top-level session).
    pub fn link_child(&self, child: &str, parent: &str) {
        self.lineage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(child.to_string(), parent.to_string());
    }

    /// The top-level session `session` descends from (itself if it has no parent).
    pub fn root_session(&self, session: &str) -> String {
        let lineage = self
            .lineage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut s = session;
        // Depth is bounded by subagents.max_depth; the bound only guards a cycle.
        for _ in 0..64 {
            match lineage.get(s) {
                Some(p) => s = p,
                None => break,
            }
        }
        s.to_string()
    }

    pub fn end_session(&self, session: &str) {
        self.lineage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(session);
        let removed = match self.sessions.lock() {
            Ok(mut s) => s.remove(session),
            Err(poisoned) => poisoned.into_inner().remove(session),
        };
        // Dropping the instance tears the sandbox down; do it outside the lock.
        drop(removed);
        self.ext.forget(session);
    }

    /// Decide, execute, redact, label and audit one proposed tool call.
    pub async fn perform(&self, session: &str, call: &ToolCall) -> Observation {
        let started = Instant::now();
        let proposed = self.audit.append(
            EventKind::ToolProposed,
            Some(session),
            json!({
                "call_id": call.id,
                "tool": call.name,
                "arguments": self.redacted_arguments(&call.arguments),
            }),
        );
        let outcome = match proposed {
            Ok(()) => self.run(session, call).await,
            Err(e) => Err(fail(
                "audit",
                format!(
                    "{} not run: the audit log cannot record the proposal: {e}",
                    call.name
                ),
            )),
        };
        let untrusted_source = || format!("tool:{}", call.name);
        let (mut output, source, integrity, responded) = match outcome {
            Ok((out, source, integrity)) => (out, source, integrity, true),
            Err(f) => {
                let message = self.redact(&f.message);
                let _ = self.audit.append(
                    EventKind::Error,
                    Some(session),
                    json!({
                        "call_id": call.id,
                        "tool": call.name,
                        "stage": f.stage,
                        "message": message,
                    }),
                );
                // A refusal before anything was sent (Cordon's own words) is trusted;
                // a failure of the fetch itself may quote what a server answered.
                let cordon_refusal = matches!(
                    f.stage,
                    "tool" | "arguments" | "decision" | "approval" | "audit" | "secrets"
                );
                let integrity = if call.name == ToolName::HttpFetch.as_str() && !cordon_refusal {
                    Integrity::Untrusted
                } else {
                    Integrity::Trusted
                };
                let out = ToolOutput {
                    content: message,
                    is_error: true,
                    ..ToolOutput::default()
                };
                (out, untrusted_source(), integrity, false)
            }
        };
        if integrity == Integrity::Untrusted {
            let http_response = responded && call.name == ToolName::HttpFetch.as_str();
            self.hygiene(session, &source, http_response, &mut output);
        }
        let redacted = self.redactor.redact(&output.content);
        let labels = self.result_labels(
            session, call, &source, integrity, &redacted, &output, responded,
        );
        self.flow(session).join(&labels);
        let digest = hex::encode(sha2::Sha256::digest(redacted.text.as_bytes()));
        let result = self.audit.record(
            EventKind::ToolResult,
            Some(session),
            json!({
                "call_id": call.id,
                "tool": call.name,
                "is_error": output.is_error,
                "status": output.status,
                "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "bytes": redacted.text.len(),
                "sha256": digest,
                "truncated": output.truncated,
                "redacted": redacted.hits,
                "labels": labels,
            }),
        );
        let (content, is_error) = match result {
            Ok(_) => (redacted.text, output.is_error),
            Err(e) => (
                format!(
                    "{}\n[warning: the audit log could not record this result: {e}]",
                    redacted.text
                ),
                true,
            ),
        };
        Observation {
            call_id: call.id.clone(),
            content,
            is_error,
            provenance: Provenance {
                source,
                integrity,
                confidentiality: labels.confidentiality,
                secrets: labels.secrets,
            },
        }
    }

    /// The label of one result: its integrity and source; `private` when it shows a
    /// workspace file matching `labels.private`; `secret` (with the names) when a vault
    /// value or credential was redacted from it or it carries a secret's placeholder.
    /// `ran`: the tool ran (a failed command's output may still show the file; a refusal
    /// before running shows nothing).
    #[allow(clippy::too_many_arguments)]
    fn result_labels(
        &self,
        session: &str,
        call: &ToolCall,
        source: &str,
        integrity: Integrity,
        redacted: &secrets::Redacted,
        output: &ToolOutput,
        ran: bool,
    ) -> Labels {
        let mut labels = if integrity == Integrity::Untrusted {
            Labels::untrusted(source)
        } else {
            Labels::trusted()
        };
        let mut secrets: Vec<String> = redacted.hits.clone();
        if !redacted.credentials.is_empty() {
            secrets.push("*".into());
        }
        if let Some(e) = self.with_session(session, |s| s.egress.clone()) {
            for (name, placeholder) in &e.env {
                if output.content.contains(placeholder.as_str()) && !secrets.contains(name) {
                    secrets.push(name.clone());
                }
            }
        }
        if !secrets.is_empty() {
            labels.confidentiality = Confidentiality::Secret;
            labels.secrets = secrets;
        } else if ran && self.shows_private(call, &output.content) {
            labels.confidentiality = Confidentiality::Private;
        }
        labels
    }

    /// Whether a `read_file`, `search` or `exec` result shows a private file.
    fn shows_private(&self, call: &ToolCall, content: &str) -> bool {
        let Some(tool) = ToolName::parse(&call.name) else {
            return false;
        };
        match tools::parse_args(tool, &call.arguments) {
            Ok(Args::ReadFile(a)) => self
                .workspace
                .resolve(&a.path)
                .is_ok_and(|p| self.policy.is_private(&p.as_str())),
            // `path:line: text` per match.
            Ok(Args::Search(_)) => content.lines().any(|l| {
                l.split_once(':')
                    .is_some_and(|(path, _)| self.policy.is_private(path))
            }),
            // A command that names a private file (as an argument, a glob that can match
            // one, or a redirection source): `cat finance/q3.csv`, `tar c finance/*`.
            Ok(Args::Exec(a)) => {
                let c = guard::canonicalise_exec(&a.command);
                c.commands.iter().any(|cmd| {
                    let args = cmd.argv.iter().skip(1).enumerate().map(|(i, w)| {
                        if cmd.globs.contains(&(i + 1)) {
                            // The literal part before the first glob character, plus a
                            // name: what the glob may expand to beneath it.
                            let cut = w.find(['*', '?', '[']).unwrap_or(w.len());
                            format!("{}x", &w[..cut])
                        } else {
                            w.clone()
                        }
                    });
                    args.chain(cmd.redirects.iter().map(|r| r.target.clone()))
                        .any(|p| self.policy.is_private(&p))
                })
            }
            _ => false,
        }
    }

    async fn run(
        &self,
        session: &str,
        call: &ToolCall,
    ) -> Result<(ToolOutput, String, Integrity), Failure> {
        let available = || {
            self.agent_cfg
                .tools
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let tool = match ToolName::parse(&call.name) {
            Some(t) if self.agent_cfg.tools.contains(&t) => t,
            Some(_) => {
                return Err(fail(
                    "tool",
                    format!(
                        "tool `{}` is not available to agent `{}`; available tools: {}",
                        call.name,
                        self.agent,
                        available()
                    ),
                ));
            }
            None => {
                return Err(fail(
                    "tool",
                    format!(
                        "unknown tool `{}`; available tools: {}",
                        call.name,
                        available()
                    ),
                ));
            }
        };
        let args = tools::parse_args(tool, &call.arguments).map_err(|m| fail("arguments", m))?;
        let args_json: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);

        let plan = self.plan(args)?;
        let mut authorized = None;
        if let Some(action) = plan.action() {
            authorized = Some(
                self.authorize(session, call, tool, &action, &args_json)
                    .await?,
            );
            // Each of the agent's secrets the call names is a `use_secret` action of its
            // own (tainted sessions ask; a host the secret is not bound to is denied).
            for use_secret in self.secret_uses(session, &plan) {
                self.authorize(session, call, tool, &use_secret, &args_json)
                    .await?;
            }
            if let Action::Connect { host, .. } = &action {
                // Allowed or approved: the host is now one this session contacts.
                self.flow(session).contact(host);
            }
        }

        // Execute.
        let ws = &self.workspace;
        let trusted = |out: ToolOutput| Ok((out, format!("tool:{tool}"), Integrity::Trusted));
        let ws_err = |e: WorkspaceError| fail("workspace", e.to_string());
        match plan {
            Plan::ReadFile(a, p) => trusted(tools::files::read_file(ws, &p, &a).map_err(ws_err)?),
            Plan::WriteFile(a, p) => trusted(tools::files::write_file(ws, &p, &a).map_err(ws_err)?),
            Plan::EditFile(a, p) => {
                trusted(tools::files::edit_file(ws, &p, &a).map_err(|m| fail("workspace", m))?)
            }
            Plan::ListDir(a, p) => trusted(tools::files::list_dir(ws, &p, &a).map_err(ws_err)?),
            Plan::Search(a, p) => {
                trusted(tools::files::search(ws, &p, &a).map_err(|m| fail("workspace", m))?)
            }
            Plan::Exec(a) => {
                let flow = self.flow(session);
                let before = flow.connections();
                // A human approved this command: the connections it opens to hosts the
                // session has not contacted are covered by that approval.
                let approved =
                    (authorized == Some(Authorized::Human)).then(|| flow.approved_exec());
                let out = self.exec(session, call, &a.command).await?;
                drop(approved);
                // What a command printed may come from the network: untrusted when it
                // opened a connection (or when commands run on the host, unisolated).
                let reached = flow.connections() > before
                    || (self.sandbox.backend() == "none" && self.exec_reaches_network());
                let integrity = if reached {
                    Integrity::Untrusted
                } else {
                    Integrity::Trusted
                };
                let source = if reached {
                    format!("tool:exec (network) {}", a.command)
                } else {
                    format!("tool:{tool}")
                };
                Ok((out, source, integrity))
            }
            Plan::HttpFetch(a, first) => {
                if let Some(x) = &a.extract {
                    self.check_extract(x).map_err(|m| fail("arguments", m))?;
                }
                let mut check_hop =
                    |t: &Target, m: tools::Method| self.check_redirect(session, call, t, m);
                let egress = self.session_egress(session)?;
                // `${NAME}` / `$NAME` of the agent's secrets become the session's
                // placeholders; the proxy swaps in real values for bound hosts only.
                let a = tools::http_fetch::expand_secret_refs(a, &egress.env);
                let via = tools::http_fetch::Via {
                    proxy: &self.egress,
                    policy: egress.policy,
                    tls: &self.http_tls,
                };
                let fetched = tools::http_fetch::fetch(&via, &a, first, &mut check_hop)
                    .await
                    .map_err(|m| fail("http_fetch", m))?;
                let _ = self.audit.append(
                    EventKind::Egress,
                    Some(session),
                    json!({
                        "call_id": call.id,
                        "url": fetched.final_url,
                        "status": fetched.output.status,
                    }),
                );
                if let Some(x) = &a.extract {
                    // Quarantined reading: only the validated answer leaves this arm.
                    let answer = self
                        .quarantined_extract(
                            session,
                            call,
                            &fetched.output.content,
                            &fetched.final_url,
                            x,
                        )
                        .await
                        .map_err(|m| fail("extract", m))?;
                    let source = format!("tool:http_fetch extract {}", fetched.final_url);
                    return Ok((answer, source, Integrity::Untrusted));
                }
                let source = format!("tool:http_fetch {}", fetched.final_url);
                Ok((fetched.output, source, Integrity::Untrusted))
            }
            Plan::MemoryWrite(a, file) => {
                // Decided here, not in `authorize`: an `Ask` becomes a request in the
                // approvals queue that a human answers later, so the session is not
                // blocked (and no grant covers it).
                let action = Action::MemoryWrite {
                    file: file.to_string(),
                };
                let verdict = self.flow(session).decide(&action);
                let data = self.decision_record(call, tool.as_str(), &action, &verdict);
                self.audit
                    .record(EventKind::Decision, Some(session), data)
                    .map_err(|e| {
                        fail(
                            "audit",
                            format!(
                                "{tool} not run: the audit log cannot record the decision: {e}"
                            ),
                        )
                    })?;
                let write = tools::memory::Write {
                    agent: &self.agent,
                    session,
                    file: &file,
                    text: &a.content,
                };
                let out = self
                    .memory_write(&self.approvals, call, &verdict, &write)
                    .map_err(|(stage, m)| fail(stage, m))?;
                Ok((out, format!("tool:{tool}"), Integrity::Trusted))
            }
            Plan::SpawnAgent(a, tools) => {
                // The runtime's own limits first (audited as a decision), then the guard.
                let action = self
                    .check_spawn(session, call, &a, &tools)
                    .map_err(|(stage, m)| fail(stage, m))?;
                self.authorize(session, call, tool, &action, &args_json)
                    .await?;
                self.spawn_agent(session, call, a, tools)
                    .await
                    .map_err(|(stage, m)| fail(stage, m))
            }
        }
    }

    /// Parse paths and URLs at the edge: the guard and the tools see resolved targets.
    fn plan(&self, args: Args) -> Result<Plan, Failure> {
        let ws_path = |p: Option<&str>| {
            self.workspace
                .resolve(p.unwrap_or("."))
                .map_err(|e| fail("workspace", e.to_string()))
        };
        Ok(match args {
            Args::ReadFile(a) => {
                let p = ws_path(Some(&a.path))?;
                Plan::ReadFile(a, p)
            }
            Args::WriteFile(a) => {
                let p = ws_path(Some(&a.path))?;
                Plan::WriteFile(a, p)
            }
            Args::EditFile(a) => {
                let p = ws_path(Some(&a.path))?;
                Plan::EditFile(a, p)
            }
            Args::ListDir(a) => {
                let p = ws_path(a.path.as_deref())?;
                Plan::ListDir(a, p)
            }
            Args::Search(a) => {
                tools::files::check_pattern(&a.pattern).map_err(|m| fail("arguments", m))?;
                let p = ws_path(a.path.as_deref())?;
                Plan::Search(a, p)
            }
            Args::Exec(a) => Plan::Exec(a),
            Args::MemoryWrite(a) => {
                let file = match &a.file {
                    Some(f) => MemoryFile::parse(f),
                    None => Ok(MemoryFile::main()),
                }
                .map_err(|e| {
                    fail(
                        "arguments",
                        format!("invalid arguments for memory_write: {e}"),
                    )
                })?;
                Plan::MemoryWrite(a, file)
            }
            Args::SpawnAgent(a) => {
                let tools = crate::subagent::child_tools(&self.agent_cfg, a.tools.as_deref())
                    .map_err(|m| {
                        fail(
                            "arguments",
                            format!("invalid arguments for spawn_agent: {m}"),
                        )
                    })?;
                Plan::SpawnAgent(a, tools)
            }
            Args::HttpFetch(a) => {
                tools::http_fetch::check_headers(&a).map_err(|m| fail("arguments", m))?;
                let t = tools::http_fetch::target(&a.url).map_err(|m| {
                    fail(
                        "arguments",
                        format!("invalid arguments for http_fetch: {m}"),
                    )
                })?;
                Plan::HttpFetch(a, t)
            }
        })
    }

    /// Guard decision (durably audited, with the rule and the session's labels), then
    /// approval when asked. Returns who allowed it.
    async fn authorize(
        &self,
        session: &str,
        call: &ToolCall,
        tool: ToolName,
        action: &Action,
        args_json: &Value,
    ) -> Result<Authorized, Failure> {
        let flow = self.flow(session);
        let verdict = flow.decide(action);
        let decision = verdict.decision.clone();
        let canonical = action.canonical();
        // What a human would be asked; also the key of stored grants.
        let req = ApprovalRequest {
            session: session.to_string(),
            agent: self.agent.clone(),
            kind: ApprovalKind::Action,
            tool: tool.as_str().to_string(),
            action: self.redact(&canonical),
            fingerprint: action.fingerprint(),
            argv: simple_argv(action),
            host: action_host(action),
            arguments: args_json.clone(),
            reason: decision.reason().to_string(),
            rule: verdict.rule.clone(),
            labels: serde_json::to_value(&verdict.labels).unwrap_or(Value::Null),
            untrusted_sources: verdict.labels.untrusted_sources.clone(),
            root_session: Some(self.root_session(session)).filter(|r| r != session),
            ..Default::default()
        };
        // A stored grant (this session's, or the agent's) answers an `Ask` without a new
        // question; the decision record names it. A store error means "no grant": ask.
        let grant = if matches!(decision, Decision::Ask { .. }) {
            self.approvals.find_grant(&req).unwrap_or_else(|e| {
                tracing::warn!("grant lookup failed, asking instead: {e}");
                None
            })
        } else {
            None
        };
        let mut data = self.decision_record(call, tool.as_str(), action, &verdict);
        if let Some(g) = &grant {
            data["grant_id"] = Value::String(g.id.clone());
            data["session_grant"] = Value::Bool(g.session.is_some());
        }
        self.audit
            .record(EventKind::Decision, Some(session), data)
            .map_err(|e| {
                fail(
                    "audit",
                    format!("{tool} not run: the audit log cannot record the decision: {e}"),
                )
            })?;
        match decision {
            Decision::Allow { .. } => Ok(Authorized::Policy),
            Decision::Deny { reason } => {
                if verdict.rule.starts_with("label.") || verdict.rule.starts_with("secret.") {
                    // Private or secret data headed for an unbound host: an exfiltration
                    // attempt, whoever asked for it.
                    let _ = self.audit.append(
                        EventKind::Alert,
                        Some(session),
                        json!({
                            "call_id": call.id,
                            "alert": "data_exfiltration_blocked",
                            "action": self.redact(&canonical),
                            "rule": verdict.rule,
                            "labels": verdict.labels,
                        }),
                    );
                }
                // A secondary action (a secret the call names) says which one it was.
                let what = match action {
                    Action::UseSecret { .. } => format!(" ({})", self.redact(&canonical)),
                    _ => String::new(),
                };
                Err(fail(
                    "decision",
                    format!("{tool} denied: {reason}{what} [rule {}]", verdict.rule),
                ))
            }
            Decision::Ask { reason } => {
                if grant.is_some() {
                    return Ok(Authorized::Human);
                }
                let answer = self.approvals.ask(&req, self.approver.as_ref()).await;
                let answer_json = serde_json::to_value(&answer).unwrap_or(Value::Null);
                self.audit
                    .record(
                        EventKind::Approval,
                        Some(session),
                        json!({
                            // StoredApprovals wrote "requested"/"answered"/"granted"/
                            // "expired"; this is the call's outcome.
                            "state": "decided",
                            "call_id": call.id,
                            "action": self.redact(&canonical),
                            "fingerprint": req.fingerprint,
                            "rule": verdict.rule,
                            "labels": verdict.labels,
                            "answer": answer_json,
                        }),
                    )
                    .map_err(|e| fail("audit", format!("{tool} not run: {e}")))?;
                match answer {
                    ApprovalAnswer::Once
                    | ApprovalAnswer::Session
                    | ApprovalAnswer::Agent { .. } => Ok(Authorized::Human),
                    ApprovalAnswer::Deny => Err(fail(
                        "approval",
                        format!("{tool} denied: the human refused ({reason})"),
                    )),
                    ApprovalAnswer::Expired => Err(fail(
                        "approval",
                        format!(
                            "{tool} denied: approval required ({reason}) and nobody answered \
                             within approvals.timeout_secs; it expired. In a non-interactive \
                             run (`cordon run`) answer from another terminal with `cordon \
                             approvals list` and `cordon approvals approve ID`"
                        ),
                    )),
                    ApprovalAnswer::Unavailable(why) => Err(fail(
                        "approval",
                        format!(
                            "{tool} denied: approval required ({reason}) but no human can answer: {why}"
                        ),
                    )),
                }
            }
        }
    }

    /// The audit record of a guard decision: the action, its fingerprint, the decision,
    /// the deciding rule, the policies that matched and the session's labels.
    fn decision_record(&self, call: &ToolCall, tool: &str, action: &Action, v: &Verdict) -> Value {
        json!({
            "call_id": call.id,
            "tool": tool,
            "action": self.redact(&action.canonical()),
            "action_kind": action.name(),
            "fingerprint": action.fingerprint(),
            "decision": v.decision.kind(),
            "reason": v.decision.reason(),
            "rule": v.rule,
            "matched": v.matched.iter().map(|m| format!("{}:{}", m.effect.as_str(), m.id)).collect::<Vec<_>>(),
            "labels": v.labels,
        })
    }

    /// Run one redirect hop through the guard; only `Allow` proceeds (a redirect is not
    /// put to a human: the model did not ask for that host).
    fn check_redirect(
        &self,
        session: &str,
        call: &ToolCall,
        t: &Target,
        method: tools::Method,
    ) -> Result<(), String> {
        let action = connect_action(method, t);
        let flow = self.flow(session);
        let verdict = flow.decide(&action);
        let mut data = self.decision_record(call, "http_fetch", &action, &verdict);
        data["redirect"] = Value::Bool(true);
        self.audit
            .record(EventKind::Decision, Some(session), data)
            .map_err(|e| {
                format!("http_fetch stopped: the audit log cannot record the redirect: {e}")
            })?;
        match verdict.decision {
            Decision::Allow { .. } => {
                flow.contact(&t.host);
                Ok(())
            }
            Decision::Deny { reason } | Decision::Ask { reason } => Err(format!(
                "http_fetch redirect to {} denied: {reason} [rule {}]",
                t.url, verdict.rule
            )),
        }
    }

    async fn exec(
        &self,
        session: &str,
        call: &ToolCall,
        command: &str,
    ) -> Result<ToolOutput, Failure> {
        let instance = self.instance(session);
        let profile = tools::exec::sandbox_profile(&self.config, self.workspace.root());
        let req = tools::exec::request(command, &self.agent_cfg.exec);
        let scope = self.config.sandbox.scope;
        let egress = self.egress_setup(session)?;
        let out = tools::exec::run(
            self.sandbox.clone(),
            instance,
            scope,
            profile,
            Some(egress),
            req,
        )
        .await
        .map_err(|m| fail("sandbox", m))?;
        let unisolated = self.sandbox.backend() == "none";
        let _ = self.audit.append(
            EventKind::SandboxExec,
            Some(session),
            json!({
                "call_id": call.id,
                "backend": self.sandbox.backend(),
                "isolation": if unisolated {
                    "NONE: the command ran on the host without a sandbox (sandbox.backend = \"none\")"
                } else {
                    "sandboxed"
                },
                "status": tools::exec::status_json(out.status),
                "duration_ms": u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
                "stdout_bytes": out.stdout.len() as u64 + out.stdout_dropped,
                "stderr_bytes": out.stderr.len() as u64 + out.stderr_dropped,
            }),
        );
        Ok(tools::exec::format(&out, &self.agent_cfg.exec))
    }

    /// Whether `exec` can reach the network: the agent has an egress allowlist, or the
    /// `none` backend runs commands on the host.
    fn exec_reaches_network(&self) -> bool {
        !self.agent_cfg.egress.allow.is_empty() || self.sandbox.backend() == "none"
    }

    fn with_session<R>(&self, session: &str, f: impl FnOnce(&mut SessionState) -> R) -> R {
        let mut sessions = match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(sessions.entry(session.to_string()).or_default())
    }

    /// The session's placeholders and egress policy, made on first use.
    fn session_egress(&self, session: &str) -> Result<SessionEgress, Failure> {
        if let Some(e) = self.with_session(session, |s| s.egress.clone()) {
            return Ok(e);
        }
        let mut set = secrets::PlaceholderSet::new();
        for s in &self.secrets {
            set.insert(&s.name, s.value.clone(), s.hosts.clone())
                .map_err(|e| fail("secrets", format!("cannot make placeholders: {e}")))?;
        }
        let made = SessionEgress {
            env: set.env(),
            policy: Arc::new(self.egress_policy(session, &set)),
            placeholders: Arc::new(set),
        };
        Ok(self.with_session(session, |s| s.egress.get_or_insert(made).clone()))
    }

    /// The session's placeholders as `(NAME, placeholder)`: what tools and the model use
    /// in place of the agent's secrets. The egress proxy swaps a placeholder for the real
    /// value only in requests to the hosts that secret is bound to.
    pub fn placeholders(&self, session: &str) -> Result<Vec<(String, String)>, String> {
        self.session_egress(session)
            .map(|e| e.env)
            .map_err(|f| f.message)
    }

    fn egress_policy(
        &self,
        session: &str,
        placeholders: &secrets::PlaceholderSet,
    ) -> egress::EgressPolicy {
        egress::EgressPolicy::new(&self.agent, session, self.agent_cfg.egress.allow.clone())
            .with_credentials(placeholders)
            .with_watched_secrets(self.watched_secrets.clone())
    }

    fn egress_setup(&self, session: &str) -> Result<tools::exec::EgressSetup, Failure> {
        let e = self.session_egress(session)?;
        // Commands' connections are decided by the same policy, with the session's label.
        let gate: Arc<dyn egress::ConnectGate> = self.flow(session);
        Ok(tools::exec::EgressSetup {
            proxy: self.egress.clone(),
            policy: self.egress_policy(session, &e.placeholders).with_gate(gate),
            env: e.env,
            ca_bundle: self.ca_bundle.clone(),
        })
    }

    /// Run `argv` in this agent's sandbox exactly as the `exec` tool would (same profile,
    /// egress, placeholders), without the guard: for `cordon sandbox exec`, where a human
    /// typed the command. The caller records it in the audit log.
    pub async fn sandbox_exec(
        &self,
        session: &str,
        argv: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<sandbox::ExecOutput, String> {
        let profile = tools::exec::sandbox_profile(&self.config, self.workspace.root());
        let egress = self.egress_setup(session).map_err(|f| f.message)?;
        let req = sandbox::ExecRequest {
            argv,
            cwd: None,
            stdin: Vec::new(),
            timeout,
            output_limit: self.agent_cfg.exec.output_limit,
        };
        // `scope = call`: a sandbox of its own, never the session's instance.
        tools::exec::run(
            self.sandbox.clone(),
            SharedInstance::default(),
            config::SandboxScope::Call,
            profile,
            Some(egress),
            req,
        )
        .await
    }

    /// The `use_secret` actions of a call: every agent secret an exec command or an
    /// http_fetch header/body/URL names (`$NAME`, `${NAME}`, or the session's placeholder
    /// itself), with the request's host (empty for exec: unknown until it connects).
    fn secret_uses(&self, session: &str, plan: &Plan) -> Vec<Action> {
        let (texts, host): (Vec<&str>, String) = match plan {
            Plan::Exec(a) => (vec![a.command.as_str()], String::new()),
            Plan::HttpFetch(a, t) => {
                let mut texts = vec![a.url.as_str()];
                texts.extend(a.body.as_deref());
                if let Some(h) = &a.headers {
                    texts.extend(h.values().map(String::as_str));
                }
                (texts, t.host.clone())
            }
            _ => return Vec::new(),
        };
        let placeholders = self
            .with_session(session, |s| s.egress.clone())
            .map(|e| e.env)
            .unwrap_or_default();
        self.secrets
            .iter()
            .filter(|s| {
                let placeholder = placeholders
                    .iter()
                    .find(|(n, _)| n == &s.name)
                    .map(|(_, p)| p.as_str());
                texts.iter().any(|t| {
                    names_variable(t, &s.name) || placeholder.is_some_and(|p| t.contains(p))
                })
            })
            .map(|s| Action::UseSecret {
                name: s.name.clone(),
                host: host.clone(),
            })
            .collect()
    }

    /// The session's information-flow state, made (trusted) on first use.
    fn flow(&self, session: &str) -> Arc<SessionFlow> {
        self.with_session(session, |s| {
            s.flow
                .get_or_insert_with(|| {
                    Arc::new(SessionFlow::new(
                        session,
                        self.ext.depth,
                        self.policy.clone(),
                        self.secret_hosts.clone(),
                        Labels::trusted(),
                        self.audit.clone(),
                    ))
                })
                .clone()
        })
    }

    /// The session's label: the join of everything in its context.
    pub fn session_labels(&self, session: &str) -> Labels {
        self.flow(session).labels()
    }

    /// Add `labels` to the session's label: for context the agent puts there itself (a
    /// resumed session's stored items, memory, a sub-agent's answer).
    pub fn join_labels(&self, session: &str, labels: &Labels) {
        self.flow(session).join(labels);
    }

    /// The agent's policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    fn instance(&self, session: &str) -> SharedInstance {
        self.with_session(session, |s| s.instance.clone())
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
            // The narrowed tool set is enforced by `run` (tools outside `agent_cfg.tools`
            // do not exist for the child) and by `check_spawn` for grandchildren.
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

    pub(crate) fn sandbox_backend(&self) -> &str {
        self.sandbox.backend()
    }
}

/// The `connect` action of an http_fetch request (or redirect hop) to `t`.
fn connect_action(method: tools::Method, t: &Target) -> Action {
    Action::Connect {
        host: t.host.clone(),
        port: t.port,
        scheme: t.url.scheme().to_string(),
        method: method.as_str().to_string(),
        url: t.url.to_string(),
    }
}

/// Who let an action run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authorized {
    /// The policy allowed it.
    Policy,
    /// A human approved it (now, or by a grant).
    Human,
}

/// The argv of an exec that is one plain command (no `;`/pipe/redirection/env change/
/// expansion/xargs/arbitrary code): the only actions an argv-prefix grant may cover.
fn simple_argv(action: &Action) -> Option<Vec<String>> {
    let Action::Exec { command } = action else {
        return None;
    };
    let c = guard::canonicalise_exec(command);
    if c.unparsable.is_some() || c.arbitrary_code.is_some() {
        return None;
    }
    match c.commands.as_slice() {
        [one]
            if !one.argv.is_empty()
                && one.redirects.is_empty()
                && one.env.is_empty()
                && one.expansions.is_empty()
                && !one.open_ended =>
        {
            Some(one.argv.clone())
        }
        _ => None,
    }
}

/// The host of a connection, for host grants.
fn action_host(action: &Action) -> Option<String> {
    match action {
        Action::Connect { host, .. } => Some(host.to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether `text` names the variable `name` as `${name}` or as `$name` not followed by
/// another name character.
fn names_variable(text: &str, name: &str) -> bool {
    if text.contains(&format!("${{{name}}}")) {
        return true;
    }
    let bare = format!("${name}");
    text.match_indices(&bare).any(|(i, _)| {
        !text[i + bare.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}
