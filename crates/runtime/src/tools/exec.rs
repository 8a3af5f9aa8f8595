//! `exec`: run a shell command in the session's sandbox instance.
//!
//! Guarantees: the command only ever runs through [`sandbox::Instance::exec`] with a
//! fixed minimal environment (nothing inherited from the host) and the limits of
//! `[sandbox]`; if the sandbox cannot be started the command does not run. The blocking
//! call runs on tokio's blocking pool. The guard decides `exec: COMMAND` (canonicalised
//! inside the guard), and each agent secret the command names as `use_secret`. While a
//! command a human approved runs, its new connections are covered by that approval. Its
//! output is untrusted when it opened a connection, or when commands run unisolated on
//! the host; it is private when the command names a private file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::{Config, ExecConfig, SandboxScope};
use sandbox::{
    ExecOutput, ExecRequest, ExitStatus, Instance, Limits, Profile, Sandbox, SandboxError,
};

use async_trait::async_trait;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Executed, Sends, Tool, ToolOutput, truncate_utf8};
use crate::authorise::{Authorization, Authorized};
use crate::pipeline::{Cx, Failure, Stage};

pub(crate) struct Exec;

/// A command, and the skill whose script it runs (then decided as `run_skill` and run
/// with the skill's capabilities instead of the agent's).
pub(crate) struct ExecPlan {
    pub(crate) command: String,
    pub(crate) skill: Option<Arc<crate::skills::InstalledSkill>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecArgs {
    /// The shell command
    pub command: String,
}

#[async_trait]
impl Tool for Exec {
    type Args = ExecArgs;
    type Plan = ExecPlan;

    fn name(&self) -> &str {
        "exec"
    }

    fn description(&self) -> &str {
        "Run a shell command (`/bin/sh -c`) in an isolated sandbox with the workspace at /workspace as the working directory. Network access only through the configured proxy (already set in HTTP_PROXY/HTTPS_PROXY), to the allowed hosts. Secrets you were given are environment variables holding placeholders ($NAME) that only work toward the secret's own hosts. Returns the exit status, stdout and stderr."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: ExecArgs) -> Result<ExecPlan, Failure> {
        match crate::skills::skill_run(&args.command, &cx.rt.skills) {
            Ok(skill) => Ok(ExecPlan {
                skill: skill.cloned(),
                command: args.command,
            }),
            Err(why) => {
                crate::skills::refused_call(
                    &cx.rt.audit,
                    Some(cx.session),
                    &crate::skills::named_in(&args.command),
                    None,
                    "run",
                    &why,
                    Some(&cx.call.id),
                );
                Err(Failure::new(Stage::Skill, why))
            }
        }
    }

    fn action(&self, _cx: &Cx<'_>, a: &ExecPlan) -> Action {
        match &a.skill {
            Some(s) => Action::RunSkill {
                name: s.name.clone(),
                sha256: s.sha256.clone(),
                command: a.command.clone(),
                network: !s.egress.is_empty(),
                writes: s.capabilities.workspace == skills::WorkspaceAccess::Write,
            },
            None => Action::Exec {
                command: a.command.clone(),
            },
        }
    }

    fn runs_labelled(&self, cx: &Cx<'_>, a: &ExecPlan) -> Vec<String> {
        cx.rt.labelled_code(&a.command)
    }

    fn sends<'p>(&self, a: &'p ExecPlan) -> Option<Sends<'p>> {
        Some(Sends {
            texts: vec![a.command.as_str()],
            host: String::new(),
        })
    }

    /// A command that names a private file (as an argument, a glob that can match one,
    /// or a redirection source): `cat finance/q3.csv`, `tar c finance/*`.
    fn shows_private(&self, cx: &Cx<'_>, a: &ExecPlan, _content: &str) -> bool {
        let c = guard::canonicalise_exec(&a.command);
        c.commands.iter().any(|cmd| {
            let args = cmd.argv.iter().skip(1).enumerate().map(|(i, w)| {
                if cmd.globs.contains(&(i + 1)) {
                    // The literal part before the first glob character, plus a name:
                    // what the glob may expand to beneath it.
                    let cut = w.find(['*', '?', '[']).unwrap_or(w.len());
                    format!("{}x", &w[..cut])
                } else {
                    w.clone()
                }
            });
            args.chain(cmd.redirects.iter().map(|r| r.target.clone()))
                .any(|p| cx.rt.policy.is_private(&p))
        })
    }

    fn checkpointed(&self, cx: &Cx<'_>, _a: &ExecPlan) -> bool {
        // A skill's script with write access sees the workspace through the overlay too;
        // one without cannot change it.
        cx.rt.command_checkpointed()
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        a: &ExecPlan,
        auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let flow = cx.rt.flow(cx.session);
        let labelled = cx.rt.files_of_command(&a.command)?;
        // What the command reads is in its hands before it runs: the connections it opens
        // are decided with those files' labels too.
        flow.join(&labelled.labels);
        // A command through the workspace overlay has its changes labelled as they are
        // applied; otherwise the workspace is scanned around it.
        let scan = if cx.rt.commands_use_overlay() {
            None
        } else {
            cx.rt.scan_before_command(cx.session, &labelled.labels)
        };
        let before = flow.connections();
        // A human approved this command: the connections it opens to hosts the session
        // has not contacted are covered by that approval.
        let approved = (auth.by == Authorized::Human).then(|| flow.approved_exec());
        let out = match &a.skill {
            Some(skill) => {
                super::load_skill::verified(cx, skill)?;
                crate::skills::used(&cx.rt.audit, cx.session, skill, &cx.call.id, Some(&a.command));
                cx.rt.run_skill_command(cx, auth, skill, &a.command).await?
            }
            None => cx.rt.run_command(cx, auth, &a.command).await?,
        };
        drop(approved);
        let mut out = out;
        cx.rt.label_command_changes(cx, scan, &mut out)?;
        // What a command printed may come from the network: untrusted when it opened a
        // connection (or when commands run on the host, unisolated).
        if flow.connections() > before || cx.rt.runs_unisolated() {
            let source = format!("tool:exec (network) {}", a.command);
            return Ok(labelled.mark(Executed::untrusted(out, source)));
        }
        Ok(labelled.mark(Executed::new(cx, out)))
    }
}

/// The sandbox's environment: exactly this.
const ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/workspace"),
    ("LANG", "C.UTF-8"),
    ("TERM", "dumb"),
    ("TMPDIR", "/tmp"),
];

/// Port of the egress proxy's listener inside every sandbox (`127.0.0.1:3128`).
pub const EGRESS_PORT: u16 = 3128;

/// Where the CA bundle (system roots + the per-install egress CA) appears inside.
pub const CA_BUNDLE_INSIDE: &str = "/etc/cordon-ca.pem";

/// A live sandbox and the proxy serving its egress listener; dropping it tears both down.
pub(crate) struct Running {
    instance: Box<dyn Instance>,
    _egress: Option<egress::ServeHandle>,
}

/// One session's sandbox, shared between calls of that session.
pub(crate) type SharedInstance = Arc<Mutex<Option<Running>>>;

/// How a sandbox reaches the network: the proxy, the session's policy, the environment
/// (proxy variables, placeholders, CA paths) and the CA bundle to trust.
pub(crate) struct EgressSetup {
    pub(crate) proxy: Arc<egress::Proxy>,
    pub(crate) policy: egress::EgressPolicy,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) ca_bundle: Arc<Vec<u8>>,
}

impl EgressSetup {
    /// Give `profile` the egress listener, the proxy variables, the session's
    /// placeholders and the CA bundle.
    pub(crate) fn apply(&self, profile: &mut Profile) {
        profile.egress_port = Some(EGRESS_PORT);
        let proxy = format!("http://127.0.0.1:{EGRESS_PORT}");
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            profile.env.push((var.into(), proxy.clone()));
        }
        for var in ["NO_PROXY", "no_proxy"] {
            profile
                .env
                .push((var.into(), "localhost,127.0.0.1,::1".into()));
        }
        for var in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
        ] {
            profile.env.push((var.into(), CA_BUNDLE_INSIDE.into()));
        }
        profile.env.extend(self.env.iter().cloned());
        let name = CA_BUNDLE_INSIDE.trim_start_matches("/etc/");
        profile
            .etc_files
            .push((name.into(), self.ca_bundle.to_vec()));
    }
}

/// The host's CA bundle followed by the egress CA: what sandboxed programs trust.
pub(crate) fn ca_bundle(egress_ca_pem: &str) -> Vec<u8> {
    let system = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .unwrap_or_default();
    let mut bundle = system;
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(egress_ca_pem.as_bytes());
    bundle
}

/// Start a sandbox for `profile` and serve its egress listener with the session policy.
fn start(
    sandbox: &dyn Sandbox,
    mut profile: Profile,
    egress: Option<EgressSetup>,
) -> Result<Running, String> {
    if let Some(e) = &egress {
        e.apply(&mut profile);
    }
    let mut instance = sandbox
        .start(&profile)
        .map_err(|e| format!("exec refused: {e} (the command did not run)"))?;
    let serving = match (egress, instance.egress_listener()) {
        (Some(e), Some(fd)) => {
            let listener = std::net::TcpListener::from(fd);
            let handle = e
                .proxy
                .serve(listener, e.policy)
                .map_err(|err| format!("exec refused: the egress proxy could not serve the sandbox: {err} (the command did not run)"))?;
            Some(handle)
        }
        // Backends without a listener (containers with --network none, `none`) have no
        // way out through the proxy; they say so in `sandbox explain`.
        _ => None,
    };
    Ok(Running {
        instance,
        _egress: serving,
    })
}

/// The sandbox profile every `exec` of an agent gets: its workspace, the fixed
/// environment and the limits of `[sandbox]`. `cordon sandbox exec` uses the same.
pub fn sandbox_profile(config: &Config, workspace: &std::path::Path) -> Profile {
    let s = &config.sandbox;
    Profile {
        workspace: workspace.to_path_buf(),
        workspace_access: sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: Limits {
            max_processes: s.max_processes,
            max_open_files: s.max_open_files,
            max_file_size: s.max_file_size_mb.saturating_mul(1 << 20),
            max_cpu_secs: s.max_cpu_secs,
            max_memory: s.max_memory_mb.saturating_mul(1 << 20),
            tmp_size: s.tmp_size_mb.saturating_mul(1 << 20),
            cgroup_memory: s.cgroup_memory_mb.saturating_mul(1 << 20),
            cgroup_pids: s.cgroup_pids,
            cgroup_cpu_percent: s.cgroup_cpu_percent,
        },
        // Set with the session's egress when the sandbox starts.
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

/// Narrow `profile` to a run of `skill`'s script: its tree read-only at `/skills/NAME`
/// and its workspace access.
pub(crate) fn confine_to_skill(profile: &mut Profile, skill: &crate::skills::InstalledSkill) {
    profile.workspace_access = skill.capabilities.workspace;
    profile.ro_binds.push(sandbox::RoBind {
        source: skill.dir.clone(),
        target: format!("{}/{}", sandbox::SKILLS_MOUNT, skill.name),
    });
}

pub(crate) fn request(command: &str, exec: &ExecConfig) -> ExecRequest {
    ExecRequest {
        argv: vec!["/bin/sh".into(), "-c".into(), command.to_string()],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(exec.timeout_secs),
        output_limit: exec.output_limit,
    }
}

/// Run `req` in the session's instance, starting it first if needed (`scope = "task"`),
/// or in a sandbox of its own that is destroyed right after (`scope = "call"`). An
/// instance whose `exec` failed is discarded, so the next call starts a fresh sandbox
/// instead of reusing one in an unknown state.
pub(crate) async fn run(
    sandbox: Arc<dyn Sandbox>,
    instance: SharedInstance,
    scope: SandboxScope,
    profile: Profile,
    egress: Option<EgressSetup>,
    req: ExecRequest,
) -> Result<ExecOutput, String> {
    let joined = tokio::task::spawn_blocking(move || {
        if scope == SandboxScope::Call {
            let mut fresh = start(sandbox.as_ref(), profile, egress)?;
            return fresh
                .instance
                .exec(&req)
                .map_err(|e| format!("exec failed: {e}"));
        }
        let mut guard = instance.lock().map_err(|_| {
            "the session's sandbox is unusable after a crash; start a new session".to_string()
        })?;
        let running = match guard.as_mut() {
            Some(running) => running,
            None => guard.insert(start(sandbox.as_ref(), profile, egress)?),
        };
        let result = running.instance.exec(&req);
        // A command that could not start (not found, bad request) leaves the sandbox
        // healthy; a broken sandbox is discarded so the next call gets a fresh one.
        if matches!(
            result,
            Err(SandboxError::Io(_) | SandboxError::Setup { .. })
        ) {
            *guard = None;
        }
        result.map_err(|e| format!("exec failed: {e}"))
    })
    .await;
    match joined {
        Ok(r) => r,
        Err(e) => Err(format!(
            "exec failed: the sandbox task ended abnormally: {e}"
        )),
    }
}

/// Status for the audit record.
pub(crate) fn status_json(status: ExitStatus) -> serde_json::Value {
    match status {
        ExitStatus::Exited(c) => serde_json::json!({ "exit_code": c }),
        ExitStatus::Signaled(s) => serde_json::json!({ "signal": s }),
        ExitStatus::TimedOut => serde_json::json!({ "timeout": true }),
    }
}

/// The observation text: status, stdout, stderr, and explicit notes on cuts.
pub(crate) fn format(out: &ExecOutput, exec: &ExecConfig) -> ToolOutput {
    let mut text = format!("{}\n", out.status);
    if out.status == ExitStatus::TimedOut {
        text.push_str(&format!(
            "[the command hit the {}s deadline (agents.*.exec.timeout_secs) and its process tree was killed]\n",
            exec.timeout_secs
        ));
    }
    let mut truncated = false;
    for (name, bytes, dropped) in [
        ("stdout", &out.stdout, out.stdout_dropped),
        ("stderr", &out.stderr, out.stderr_dropped),
    ] {
        let mut s = String::from_utf8_lossy(bytes).into_owned();
        // Belt and braces: never return more than the limit even if a backend does.
        let cut_here = truncate_utf8(&mut s, exec.output_limit);
        text.push_str(&format!("--- {name} ---\n{s}"));
        if !s.is_empty() && !s.ends_with('\n') {
            text.push('\n');
        }
        if dropped > 0 || cut_here {
            truncated = true;
            text.push_str(&format!(
                "[{name} truncated: {dropped} more bytes dropped beyond the {} byte limit]\n",
                exec.output_limit
            ));
        }
    }
    ToolOutput {
        content: text,
        is_error: !out.status.success(),
        status: Some(status_json(out.status)),
        truncated,
    }
}
