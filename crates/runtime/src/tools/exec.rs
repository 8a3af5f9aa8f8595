//! `exec`: run a shell command in the session's sandbox instance.
//!
//! Guarantees: the command only ever runs through [`sandbox::Instance::exec`] with a
//! fixed minimal environment (nothing inherited from the host) and the limits of
//! `[sandbox]`; if the sandbox cannot be started the command does not run. The blocking
//! call runs on tokio's blocking pool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::{Config, ExecConfig, SandboxScope};
use sandbox::{ExecOutput, ExecRequest, ExitStatus, Instance, Limits, Profile, Sandbox};

use super::{ToolOutput, truncate_utf8};

/// The sandbox's environment: exactly this.
const ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/workspace"),
    ("LANG", "C.UTF-8"),
    ("TERM", "dumb"),
    ("TMPDIR", "/tmp"),
];

/// One session's sandbox, shared between calls of that session.
pub(crate) type SharedInstance = Arc<Mutex<Option<Box<dyn Instance>>>>;

/// The sandbox profile every `exec` of an agent gets: its workspace, the fixed
/// environment and the limits of `[sandbox]`. `cordon sandbox exec` uses the same.
pub fn sandbox_profile(config: &Config, workspace: &std::path::Path) -> Profile {
    let s = &config.sandbox;
    Profile {
        workspace: workspace.to_path_buf(),
        workspace_writable: true,
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
        // The egress proxy (issue 4) will set this.
        egress_port: None,
        etc_files: Vec::new(),
    }
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
    req: ExecRequest,
) -> Result<ExecOutput, String> {
    let joined = tokio::task::spawn_blocking(move || {
        let start = || {
            sandbox
                .start(&profile)
                .map_err(|e| format!("exec refused: {e} (the command did not run)"))
        };
        if scope == SandboxScope::Call {
            let mut fresh = start()?;
            return fresh.exec(&req).map_err(|e| format!("exec failed: {e}"));
        }
        let mut guard = instance.lock().map_err(|_| {
            "the session's sandbox is unusable after a crash; start a new session".to_string()
        })?;
        let inst = match guard.as_mut() {
            Some(inst) => inst,
            None => guard.insert(start()?),
        };
        let result = inst.exec(&req).map_err(|e| format!("exec failed: {e}"));
        if result.is_err() {
            *guard = None;
        }
        result
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
