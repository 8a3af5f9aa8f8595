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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use audit::EventKind;
use config::{AgentConfig, ToolName};
use guard::{Action, Decision, Policy};
use serde_json::{Value, json};
use sha2::Digest;

use crate::approval::{ApprovalAnswer, ApprovalRequest, Approver};
use crate::hygiene;
use crate::tools::exec::SharedInstance;
use crate::tools::http_fetch::Target;
use crate::tools::{
    self, Args, EditFileArgs, ExecArgs, HttpFetchArgs, ListDirArgs, ReadFileArgs, SearchArgs,
    ToolOutput, WriteFileArgs,
};
use crate::workspace::{Workspace, WorkspaceError, WorkspacePath};
use crate::{Integrity, Observation, Provenance, ToolCall, ToolSpec};

pub struct RuntimeOptions {
    pub config: Arc<config::Config>,
    pub agent: String,
    pub audit: Arc<audit::Log>,
    pub sandbox: Arc<dyn sandbox::Sandbox>,
    pub approver: Arc<dyn Approver>,
    /// Redacts every vault value (and known credential formats) from what comes back.
    pub redactor: secrets::Redactor,
    /// The one way out: every outbound connection of this agent's tools goes through it.
    pub egress: Arc<egress::Proxy>,
    /// The vault secrets this agent may use (`agents.NAME.egress.secrets`), with their
    /// bound hosts. Tools only ever see per-session placeholders for them.
    pub secrets: Vec<AgentSecret>,
    /// Every vault value (name, value): blocked wherever it appears in outbound traffic.
    pub watched_secrets: Vec<(String, String)>,
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
}

#[derive(Default)]
struct SessionState {
    instance: SharedInstance,
    grants: HashSet<String>,
    /// Placeholders and the egress policy of the session, made on first use.
    egress: Option<SessionEgress>,
    /// The marker around the session's untrusted content, made on first use.
    boundary: Option<hygiene::Boundary>,
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
    redactor: secrets::Redactor,
    policy: Policy,
    workspace: Workspace,
    http_tls: Arc<rustls::ClientConfig>,
    sessions: Mutex<HashMap<String, SessionState>>,
    egress: Arc<egress::Proxy>,
    secrets: Vec<AgentSecret>,
    watched_secrets: Vec<(String, String)>,
    ca_bundle: Arc<Vec<u8>>,
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
}

impl Plan {
    fn action(&self) -> Action {
        match self {
            Plan::ReadFile(_, p) => Action::ReadFile { path: p.as_str() },
            Plan::WriteFile(_, p) => Action::WriteFile { path: p.as_str() },
            Plan::EditFile(_, p) => Action::EditFile { path: p.as_str() },
            Plan::ListDir(_, p) => Action::ListDir { path: p.as_str() },
            Plan::Search(_, p) => Action::Search { path: p.as_str() },
            Plan::Exec(a) => Action::Exec {
                command: a.command.clone(),
            },
            Plan::HttpFetch(a, t) => Action::HttpFetch {
                method: a.method.unwrap_or(tools::Method::Get).as_str().to_string(),
                url: t.url.to_string(),
                host: t.host.clone(),
                port: t.port,
            },
        }
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
        Ok(Runtime {
            policy: Policy::new(&opts.agent, &agent_cfg),
            config: opts.config,
            agent: opts.agent,
            agent_cfg,
            audit: opts.audit,
            sandbox: opts.sandbox,
            approver: opts.approver,
            redactor,
            workspace,
            http_tls,
            sessions: Mutex::new(HashMap::new()),
            ca_bundle: Arc::new(tools::exec::ca_bundle(opts.egress.ca().ca_pem())),
            egress: opts.egress,
            secrets: opts.secrets,
            watched_secrets: opts.watched_secrets,
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
    pub fn end_session(&self, session: &str) {
        let removed = match self.sessions.lock() {
            Ok(mut s) => s.remove(session),
            Err(poisoned) => poisoned.into_inner().remove(session),
        };
        // Dropping the instance tears the sandbox down; do it outside the lock.
        drop(removed);
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
                let integrity = if call.name == ToolName::HttpFetch.as_str() {
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
            provenance: Provenance { source, integrity },
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
        self.authorize(session, call, tool, &plan.action(), &args_json)
            .await?;

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
                let out = self.exec(session, call, &a.command).await?;
                // What a command printed may come from the network it could reach.
                let integrity = if self.exec_reaches_network() {
                    Integrity::Untrusted
                } else {
                    Integrity::Trusted
                };
                Ok((out, format!("tool:{tool}"), integrity))
            }
            Plan::HttpFetch(a, first) => {
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
                let source = format!("tool:http_fetch {}", fetched.final_url);
                Ok((fetched.output, source, Integrity::Untrusted))
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
            Args::MemoryWrite(_) | Args::SpawnAgent(_) => {
                return Err(fail("tool", "this tool is being built and cannot run yet"));
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

    /// Guard decision (durably audited), then approval when asked.
    async fn authorize(
        &self,
        session: &str,
        call: &ToolCall,
        tool: ToolName,
        action: &Action,
        args_json: &Value,
    ) -> Result<(), Failure> {
        let decision = self.policy.decide(action);
        let canonical = action.canonical();
        // A session grant answers an `Ask` without a new question; the decision record
        // says so (there is no `approval` record: nobody was asked).
        let granted =
            matches!(decision, Decision::Ask { .. }) && self.has_grant(session, &canonical);
        let mut data = json!({
            "call_id": call.id,
            "tool": tool.as_str(),
            "action": self.redact(&canonical),
            "decision": decision.kind(),
            "reason": decision.reason(),
        });
        if granted {
            data["session_grant"] = Value::Bool(true);
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
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { reason } => Err(fail("decision", format!("{tool} denied: {reason}"))),
            Decision::Ask { reason } => {
                if granted {
                    return Ok(());
                }
                let req = ApprovalRequest {
                    session: session.to_string(),
                    agent: self.agent.clone(),
                    tool: tool.as_str().to_string(),
                    action: canonical.clone(),
                    arguments: args_json.clone(),
                    reason: reason.clone(),
                };
                let answer = self.approver.ask(&req).await;
                let answer_json = serde_json::to_value(&answer).unwrap_or(Value::Null);
                self.audit
                    .record(
                        EventKind::Approval,
                        Some(session),
                        json!({
                            "call_id": call.id,
                            "action": self.redact(&canonical),
                            "answer": answer_json,
                        }),
                    )
                    .map_err(|e| fail("audit", format!("{tool} not run: {e}")))?;
                match answer {
                    ApprovalAnswer::Once => Ok(()),
                    ApprovalAnswer::Session => {
                        self.add_grant(session, canonical);
                        Ok(())
                    }
                    ApprovalAnswer::Deny => Err(fail(
                        "approval",
                        format!("{tool} denied: the human refused ({reason})"),
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

    /// Run one redirect hop through the guard; only `Allow` proceeds (a redirect is not
    /// put to a human: the model did not ask for that host).
    fn check_redirect(
        &self,
        session: &str,
        call: &ToolCall,
        t: &Target,
        method: tools::Method,
    ) -> Result<(), String> {
        let action = Action::HttpFetch {
            method: method.as_str().to_string(),
            url: t.url.to_string(),
            host: t.host.clone(),
            port: t.port,
        };
        let decision = self.policy.decide(&action);
        self.audit
            .record(
                EventKind::Decision,
                Some(session),
                json!({
                    "call_id": call.id,
                    "tool": "http_fetch",
                    "action": self.redact(&action.canonical()),
                    "redirect": true,
                    "decision": decision.kind(),
                    "reason": decision.reason(),
                }),
            )
            .map_err(|e| {
                format!("http_fetch stopped: the audit log cannot record the redirect: {e}")
            })?;
        match decision {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { reason } | Decision::Ask { reason } => {
                Err(format!("http_fetch redirect to {} denied: {reason}", t.url))
            }
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
        Ok(tools::exec::EgressSetup {
            proxy: self.egress.clone(),
            policy: self.egress_policy(session, &e.placeholders),
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

    fn instance(&self, session: &str) -> SharedInstance {
        self.with_session(session, |s| s.instance.clone())
    }

    fn has_grant(&self, session: &str, canonical: &str) -> bool {
        self.with_session(session, |s| s.grants.contains(canonical))
    }

    fn add_grant(&self, session: &str, canonical: String) {
        self.with_session(session, |s| {
            s.grants.insert(canonical);
        });
    }
}
