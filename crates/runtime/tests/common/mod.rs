//! A runtime wired to real things: a temp workspace, a real `audit::Log` in a temp dir,
//! a scripted approver, and a sandbox (a recording double for decision tests, the native
//! one for execution tests).

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use audit::{EventKind, Record};
use cordon_runtime::{
    AgentSecret, ApprovalAnswer, ApprovalRequest, Approver, Observation, Runtime, RuntimeOptions,
    ToolCall,
};
use rustls::pki_types::CertificateDer;
use sandbox::{ExecOutput, ExecRequest, ExitStatus, Instance, Profile, Sandbox, SandboxError};
use serde_json::Value;

/// Agent settings the tests vary.
pub struct Setup {
    pub tools: &'static str,
    pub exec_mode: &'static str,
    pub exec_allow: &'static str,
    pub egress_allow: String,
    pub approver: Vec<ApprovalAnswer>,
    pub secrets: Vec<(String, String)>,
    pub native_sandbox: bool,
    /// Vault secrets the agent may use, with their bound hosts (placeholders per session).
    pub agent_secrets: Vec<AgentSecret>,
    /// Static name → address answers of the test proxy (e.g. `docs.test` → 127.0.0.1).
    pub resolve: Vec<(&'static str, IpAddr)>,
    /// Extra trust anchors of the test proxy's upstream TLS (a test server's CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// TOML appended to the config (e.g. `[agents.dev.labels]`).
    pub extra_toml: &'static str,
    /// Approved MCP tools (`mcp.lock`).
    pub mcp_pins: mcp::Pins,
    /// Journal workspace changes in the harness's `checkpoints` directory.
    pub checkpoints: bool,
    /// Open the store (`cordon.db` in the harness's directory) at its first use, as
    /// `cordon sandbox exec` does, instead of before the runtime is built.
    pub store_on_first_use: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            tools: r#"["read_file", "write_file", "edit_file", "list_dir", "search", "exec", "http_fetch"]"#,
            exec_mode: "ask",
            exec_allow: "[]",
            egress_allow: "[]".into(),
            approver: Vec::new(),
            secrets: Vec::new(),
            native_sandbox: false,
            agent_secrets: Vec::new(),
            resolve: Vec::new(),
            extra_roots: Vec::new(),
            extra_toml: "",
            mcp_pins: mcp::Pins::default(),
            checkpoints: false,
            store_on_first_use: false,
        }
    }
}

/// Answers from a script, recording every question; `Unavailable` once the script ends.
pub struct ScriptedApprover {
    answers: Mutex<Vec<ApprovalAnswer>>,
    pub asked: Mutex<Vec<ApprovalRequest>>,
}

#[async_trait]
impl Approver for ScriptedApprover {
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer {
        self.asked.lock().unwrap().push(req.clone());
        let mut a = self.answers.lock().unwrap();
        if a.is_empty() {
            ApprovalAnswer::Unavailable("script exhausted".into())
        } else {
            a.remove(0)
        }
    }
}

/// A sandbox double for decision-logic tests: records each request, runs nothing.
#[derive(Default)]
pub struct RecordingSandbox {
    pub starts: Mutex<Vec<Profile>>,
    pub requests: Arc<Mutex<Vec<ExecRequest>>>,
}

struct RecordingInstance {
    requests: Arc<Mutex<Vec<ExecRequest>>>,
}

impl Sandbox for RecordingSandbox {
    fn backend(&self) -> &'static str {
        "recording-double"
    }
    fn isolation(&self) -> sandbox::Isolation {
        sandbox::Isolation::Isolated
    }
    fn start(&self, profile: &Profile) -> Result<Box<dyn Instance>, SandboxError> {
        self.starts.lock().unwrap().push(profile.clone());
        Ok(Box::new(RecordingInstance {
            requests: self.requests.clone(),
        }))
    }
    fn explain(&self, _profile: &Profile) -> sandbox::Explanation {
        sandbox::Explanation {
            backend: "recording-double".into(),
            layers: Vec::new(),
            mounts: Vec::new(),
            uid: 0,
            gid: 0,
            limits: Vec::new(),
            network: "none: nothing runs".into(),
            warnings: Vec::new(),
        }
    }
}

impl Instance for RecordingInstance {
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        self.requests.lock().unwrap().push(req.clone());
        Ok(ExecOutput {
            status: ExitStatus::Exited(0),
            stdout: b"recorded\n".to_vec(),
            stderr: Vec::new(),
            stdout_dropped: 0,
            stderr_dropped: 0,
            duration: Duration::from_millis(1),
        })
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub ws: PathBuf,
    pub audit_dir: PathBuf,
    pub rt: Runtime,
    pub approver: Arc<ScriptedApprover>,
    pub sandbox: Arc<RecordingSandbox>,
    pub store: Arc<store::Store>,
    next_id: Mutex<u32>,
}

pub const SESSION: &str = "s1";

impl Harness {
    pub fn new(setup: Setup) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let audit_dir = dir.path().join("audit");
        let toml = format!(
            r#"
[model]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "test"

[agents.dev]
workspace = "{ws}"
tools = {tools}

[agents.dev.exec]
mode = "{mode}"
allow = {allow}
timeout_secs = 10
output_limit = 4096

[agents.dev.egress]
allow = {egress}
{extra}
"#,
            extra = setup.extra_toml,
            ws = ws.display(),
            tools = setup.tools,
            mode = setup.exec_mode,
            allow = setup.exec_allow,
            egress = setup.egress_allow,
        );
        let config = config::load_str(&toml, Path::new("test.toml")).unwrap();
        let audit = Arc::new(audit::Log::open(&audit_dir).unwrap());
        let audit_for_proxy = audit.clone();
        let approver = Arc::new(ScriptedApprover {
            answers: Mutex::new(setup.approver),
            asked: Mutex::new(Vec::new()),
        });
        let recording = Arc::new(RecordingSandbox::default());
        let sandbox: Arc<dyn Sandbox> = if setup.native_sandbox {
            Arc::new(sandbox::NativeSandbox::new())
        } else {
            recording.clone()
        };
        let db = dir.path().join("cordon.db");
        let store = Arc::new(if setup.store_on_first_use {
            store::Store::open_on_first_use(&db)
        } else {
            store::Store::open(&db).unwrap()
        });
        let approvals = Arc::new(cordon_runtime::StoredApprovals::new(
            store.clone(),
            audit.clone(),
            std::time::Duration::from_secs(5),
            30,
        ));
        let rt = Runtime::new(RuntimeOptions {
            config: Arc::new(config),
            agent: "dev".into(),
            audit,
            sandbox,
            approver: approver.clone(),
            approvals,
            redactor: secrets::Redactor::new(setup.secrets),
            egress: test_proxy_with(
                &dir.path().join("egress"),
                audit_for_proxy,
                &setup.resolve,
                setup.extra_roots,
            ),
            secrets: setup.agent_secrets,
            watched_secrets: Vec::new(),
            skills: Vec::new(),
            mcp: cordon_runtime::McpOptions {
                pins: setup.mcp_pins,
                secrets: Default::default(),
            },
            policy: None,
            checkpoints_dir: setup.checkpoints.then(|| dir.path().join("checkpoints")),
        })
        .unwrap();
        Harness {
            dir,
            ws,
            audit_dir,
            rt,
            approver,
            sandbox: recording,
            store,
            next_id: Mutex::new(0),
        }
    }

    /// Perform `tool` with JSON arguments in the default session.
    pub async fn call(&self, tool: &str, args: Value) -> (String, Observation) {
        self.call_raw(tool, &args.to_string()).await
    }

    pub async fn call_raw(&self, tool: &str, args: &str) -> (String, Observation) {
        self.call_raw_in(SESSION, tool, args).await
    }

    /// Perform `tool` with JSON arguments in session `session`.
    pub async fn call_in(&self, session: &str, tool: &str, args: Value) -> (String, Observation) {
        self.call_raw_in(session, tool, &args.to_string()).await
    }

    async fn call_raw_in(&self, session: &str, tool: &str, args: &str) -> (String, Observation) {
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("call-{n}")
        };
        let call = ToolCall {
            id: id.clone(),
            name: tool.into(),
            arguments: args.into(),
        };
        let obs = self.rt.perform(session, &call).await;
        assert_eq!(obs.call_id, id);
        (id, obs)
    }

    pub fn records(&self) -> Vec<Record> {
        audit::read(&self.audit_dir).unwrap()
    }

    /// Records of one call: those whose data carries its `call_id`, plus the decision /
    /// approval records between its `tool_proposed` and `tool_result`.
    pub fn records_of(&self, call_id: &str) -> Vec<Record> {
        let all = self.records();
        let start = all
            .iter()
            .position(|r| r.kind == EventKind::ToolProposed && r.data["call_id"] == call_id)
            .expect("tool_proposed record");
        let end = all
            .iter()
            .position(|r| r.kind == EventKind::ToolResult && r.data["call_id"] == call_id)
            .expect("tool_result record");
        assert!(start < end);
        all[start..=end].to_vec()
    }

    pub fn one(&self, call_id: &str, kind: EventKind) -> Record {
        let recs: Vec<Record> = self
            .records_of(call_id)
            .into_iter()
            .filter(|r| r.kind == kind)
            // An approval's request/answer/grant records come from the store side; the
            // call's own outcome is the `decided` one.
            .filter(|r| r.kind != EventKind::Approval || r.data["state"] == "decided")
            .collect();
        assert_eq!(
            recs.len(),
            1,
            "expected one {kind} record for {call_id}: {recs:#?}"
        );
        recs.into_iter().next().unwrap()
    }

    pub fn has(&self, call_id: &str, kind: EventKind) -> bool {
        self.records_of(call_id).iter().any(|r| r.kind == kind)
    }

    /// The call was refused before execution: error observation, a `decision` or `error`
    /// record explaining it, and a `tool_result` with `is_error`.
    pub fn assert_refused(&self, call_id: &str, obs: &Observation, needle: &str) {
        assert!(obs.is_error, "{call_id} should fail: {}", obs.content);
        assert!(
            obs.content.contains(needle),
            "`{needle}` not in: {}",
            obs.content
        );
        let err = self.one(call_id, EventKind::Error);
        assert!(
            err.data["message"].as_str().unwrap().contains(needle),
            "audit error lacks `{needle}`: {err:?}"
        );
        let result = self.one(call_id, EventKind::ToolResult);
        assert_eq!(result.data["is_error"], true);
    }
}

/// An egress proxy for tests: a fresh CA in `dir`; loopback test servers are reachable
/// by name only where a test's policy allows them (`allow_ranges` covers 127.0.0.1).
pub fn test_proxy(dir: &Path, audit: Arc<audit::Log>) -> Arc<egress::Proxy> {
    test_proxy_with(dir, audit, &[], Vec::new())
}

/// [`test_proxy`] with static name answers and extra upstream trust anchors.
pub fn test_proxy_with(
    dir: &Path,
    audit: Arc<audit::Log>,
    resolve: &[(&str, IpAddr)],
    extra_roots: Vec<CertificateDer<'static>>,
) -> Arc<egress::Proxy> {
    let ca = egress::CertificateAuthority::load_or_create(dir).unwrap();
    let cfg = egress::ProxyConfig {
        allow_ranges: vec!["127.0.0.1/32".parse().unwrap()],
        resolve: resolve.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        extra_roots,
        ..egress::ProxyConfig::default()
    };
    egress::Proxy::new(cfg, ca, audit).unwrap()
}
