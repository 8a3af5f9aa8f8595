//! The `none` backend: commands run directly on the host, as the calling user.
//!
//! Guarantees: the command's environment is exactly [`Profile::env`] (nothing inherited);
//! its working directory is the workspace (a `cwd` under [`WORKSPACE_MOUNT`] is mapped to
//! the real workspace); it runs in its own process group, which is `SIGKILL`ed at the
//! deadline and when the command exits; rlimits from [`Limits`] are set before `execve`;
//! output is capped like the native backend's. [`Sandbox::spawn`] starts the same kind of
//! child, in its own process group, with piped stdin/stdout and a bounded stderr tail; the
//! group is `SIGKILL`ed at kill, drop, and when the child exits.
//!
//! Not guaranteed — this is **no isolation**: the command sees the whole host filesystem
//! with the caller's permissions, the host network, every process the caller can signal,
//! and the caller's capabilities. A process that calls `setsid` escapes the group kill.
//! Paths in `argv` are not rewritten (`/workspace/x` on the command line means the host's
//! `/workspace/x`). Use it only where the host itself is disposable.

pub(crate) mod supervise;

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::stderr_tail::StderrTail;
use crate::{
    Access, ExecOutput, ExecRequest, ExitStatus, Explanation, Instance, LayerStatus, Limits,
    MountView, Process, Profile, Sandbox, SandboxError, SpawnRequest, WORKSPACE_MOUNT,
};

/// Runs tool processes on the host with no isolation (`backend = "none"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct HostSandbox {
    _private: (),
}

impl HostSandbox {
    pub fn new() -> HostSandbox {
        HostSandbox { _private: () }
    }
}

/// The warning `explain` always carries.
pub const HOST_WARNING: &str =
    "NO ISOLATION: tool processes run as you, on the host, with your files and network";

/// Canonical, existing workspace directory of `profile`, or a clear error.
pub(crate) fn resolve_workspace(profile: &Profile) -> Result<PathBuf, SandboxError> {
    let ws = &profile.workspace;
    let workspace = ws.canonicalize().map_err(|e| {
        SandboxError::Invalid(format!(
            "workspace {}: {e}; create it or fix `workspace` in the agent's profile",
            ws.display()
        ))
    })?;
    if !workspace.is_dir() {
        return Err(SandboxError::Invalid(format!(
            "workspace {} is not a directory; point `workspace` at a directory",
            ws.display()
        )));
    }
    Ok(workspace)
}

impl Sandbox for HostSandbox {
    fn backend(&self) -> &'static str {
        "none"
    }

    fn isolation(&self) -> crate::Isolation {
        crate::Isolation::None
    }

    fn start(&self, profile: &Profile) -> Result<Box<dyn Instance>, SandboxError> {
        Ok(Box::new(HostInstance::new(profile)?))
    }

    /// A plain host child in its own process group, with the same environment, working
    /// directory and rlimits as [`Instance::exec`] here: no isolation.
    fn spawn(
        &self,
        profile: &Profile,
        req: &SpawnRequest,
    ) -> Result<Box<dyn Process>, SandboxError> {
        let host = HostInstance::new(profile)?;
        let Some(program) = req.argv.first().filter(|p| !p.is_empty()) else {
            return Err(SandboxError::Invalid(
                "empty argv: give at least the program to run".into(),
            ));
        };
        let cwd = host_cwd(&host.workspace, req.cwd.as_deref());
        let mut cmd = host.command(program, &req.argv[1..], &cwd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| exec_error(program, &cwd, &e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(&mut child);
            return Err(SandboxError::Io(std::io::Error::other(
                "the child's pipes were not created",
            )));
        };
        let stderr = match StderrTail::start(stderr.into(), req.stderr_limit) {
            Ok(t) => t,
            Err(e) => {
                kill_group(&mut child);
                return Err(e.into());
            }
        };
        Ok(Box::new(HostProcess {
            child,
            stdin: Some(stdin.into()),
            stdout: Some(stdout.into()),
            stderr,
            status: None,
        }))
    }

    fn explain(&self, profile: &Profile) -> Explanation {
        let inactive = |layer: &str| LayerStatus {
            layer: layer.to_owned(),
            active: false,
            detail: "not applied: backend = \"none\" runs commands directly on the host".into(),
        };
        let layers = [
            "user namespace",
            "mount namespace",
            "pid namespace",
            "network namespace",
            "ipc namespace",
            "uts namespace",
            "capabilities",
            "no_new_privs",
            "seccomp",
            "landlock",
            "cgroup limits",
        ]
        .into_iter()
        .map(inactive)
        .collect();
        let l = &profile.limits;
        let write = match profile.workspace_access {
            crate::WorkspaceAccess::Write => "(writable by you)".to_owned(),
            access => {
                format!("(workspace access {access} is NOT enforced: the host filesystem is yours)")
            }
        };
        let mut warnings = vec![
            HOST_WARNING.to_owned(),
            "every isolation layer is inactive; only rlimits, the deadline (process group \
             kill) and the environment are applied"
                .to_owned(),
            "a process that calls setsid leaves the process group and survives the deadline"
                .to_owned(),
        ];
        if let Some(port) = profile.egress_port {
            warnings.push(format!(
                "egress_port {port} is not applied: commands bypass the egress proxy and \
                 connect directly"
            ));
        }
        if let Err(e) = crate::overlay::refuse("none", profile) {
            warnings.push(format!("this profile cannot start: {e}"));
        }
        if !profile.ro_binds.is_empty() {
            warnings.push(
                "ro_binds cannot be mounted: starting a sandbox with them is refused".to_owned(),
            );
        }
        Explanation {
            backend: "none".into(),
            layers,
            mounts: vec![MountView {
                path: "/".into(),
                access: Access::ReadWrite,
                source: format!(
                    "host:/ — the whole host filesystem with your permissions; cwd = {} {write}",
                    profile.workspace.display()
                ),
            }],
            // SAFETY: geteuid/getegid cannot fail and touch no memory.
            uid: unsafe { libc::geteuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getegid() },
            limits: host_limits(l),
            network: "the host's network: everything you can reach".into(),
            warnings,
        }
    }
}

fn host_limits(l: &Limits) -> Vec<(String, String)> {
    vec![
        ("RLIMIT_NPROC".into(), l.max_processes.to_string()),
        ("RLIMIT_NOFILE".into(), l.max_open_files.to_string()),
        ("RLIMIT_FSIZE".into(), l.max_file_size.to_string()),
        ("RLIMIT_CPU".into(), l.max_cpu_secs.to_string()),
        ("RLIMIT_DATA".into(), l.max_memory.to_string()),
        ("RLIMIT_CORE".into(), "0".into()),
        ("cgroup".into(), "none (not applied)".into()),
        (
            "/tmp".into(),
            "the host's /tmp (tmp_size not applied)".into(),
        ),
    ]
}

struct HostInstance {
    workspace: PathBuf,
    env: Vec<(String, String)>,
    limits: Limits,
}

/// Where `cwd` is on the host: `None` → the workspace; under [`WORKSPACE_MOUNT`] or
/// relative → inside the workspace; other absolute paths as given.
pub(crate) fn host_cwd(workspace: &Path, cwd: Option<&Path>) -> PathBuf {
    match cwd {
        None => workspace.to_path_buf(),
        Some(c) => match c.strip_prefix(WORKSPACE_MOUNT) {
            Ok(rest) => workspace.join(rest),
            Err(_) if c.is_relative() => workspace.join(c),
            Err(_) => c.to_path_buf(),
        },
    }
}

impl HostInstance {
    fn new(profile: &Profile) -> Result<HostInstance, SandboxError> {
        crate::overlay::refuse("none", profile)?;
        let workspace = resolve_workspace(profile)?;
        crate::ro_bind::resolve(&profile.ro_binds)?;
        if let Some(b) = profile.ro_binds.first() {
            // The command would find nothing at /skills/NAME, and nothing here could keep
            // the tree read-only: refuse rather than run a skill's script half-set-up.
            return Err(SandboxError::Invalid(format!(
                "ro_binds[0].target {:?}: backend \"none\" runs commands on the host and \
                 cannot mount anything; use the native or container backend to run skills",
                b.target
            )));
        }
        Ok(HostInstance {
            workspace,
            env: profile.env.clone(),
            limits: profile.limits,
        })
    }

    /// `program args` in `cwd` with exactly the profile's environment and its rlimits.
    fn command(&self, program: &str, args: &[String], cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd);
        let limits = rlimit_table(&self.limits);
        // SAFETY: the closure runs in the forked child before execve and only calls
        // getrlimit/setrlimit (async-signal-safe, no allocation, no locks) on a table
        // built before the fork.
        unsafe {
            cmd.pre_exec(move || apply_rlimits(&limits));
        }
        cmd
    }
}

fn exec_error(program: &str, cwd: &Path, e: &std::io::Error) -> SandboxError {
    SandboxError::Exec {
        program: program.to_owned(),
        detail: match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "not found (PATH from the profile, or working directory {} missing): {e}",
                cwd.display()
            ),
            _ => e.to_string(),
        },
    }
}

impl Instance for HostInstance {
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        let Some(program) = req.argv.first() else {
            return Err(SandboxError::Invalid(
                "empty argv: give at least the program to run".into(),
            ));
        };
        let cwd = host_cwd(&self.workspace, req.cwd.as_deref());
        let cmd = self.command(program, &req.argv[1..], &cwd);
        match supervise::run(cmd, &req.stdin, req.timeout, req.output_limit)? {
            Ok(out) => Ok(out),
            Err(f) => Err(exec_error(program, &cwd, &f.error)),
        }
    }
}

/// A long-running host child (backend `none`): no isolation.
struct HostProcess {
    child: Child,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: StderrTail,
    status: Option<ExitStatus>,
}

/// How often [`HostProcess::wait`] checks the child.
const WAIT_POLL: Duration = Duration::from_millis(2);

/// SIGKILL the child's process group while the child is still unreaped (so the pgid cannot
/// have been reused), then reap the child. Its status, if it could be reaped.
fn kill_group(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill with integer arguments; the group leader is our unreaped child.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    child.wait().ok()
}

fn host_status(s: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(code), _) => ExitStatus::Exited(code),
        (None, Some(sig)) => ExitStatus::Signaled(sig),
        (None, None) => ExitStatus::Exited(-1),
    }
}

impl Process for HostProcess {
    fn stdin(&mut self) -> Option<OwnedFd> {
        self.stdin.take()
    }

    fn stdout(&mut self) -> Option<OwnedFd> {
        self.stdout.take()
    }

    fn stderr_tail(&self) -> Vec<u8> {
        self.stderr.bytes()
    }

    fn stderr_dropped(&self) -> u64 {
        self.stderr.dropped()
    }

    /// When the child has exited, what is left of its process group is killed (as for
    /// exec here) before it is reaped.
    fn wait(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, SandboxError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(status) = self.status {
                return Ok(Some(status));
            }
            if supervise::exited_unreaped(&self.child)? {
                let status = kill_group(&mut self.child).ok_or_else(|| {
                    SandboxError::Io(std::io::Error::other("could not reap the process"))
                })?;
                self.status = Some(host_status(status));
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let left = deadline.map_or(WAIT_POLL, |d| d - now);
            std::thread::sleep(left.min(WAIT_POLL));
        }
    }

    /// SIGKILLs the child's process group (a process that left it with `setsid` survives:
    /// backend `none` isolates nothing).
    fn kill(&mut self) -> Result<(), SandboxError> {
        if self.status.is_none() {
            let status = kill_group(&mut self.child).map(host_status);
            self.status = Some(status.unwrap_or(ExitStatus::Signaled(libc::SIGKILL)));
        }
        Ok(())
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

type RlimitTable = [(Resource, u64); 6];

fn rlimit_table(l: &Limits) -> RlimitTable {
    [
        (libc::RLIMIT_NPROC, l.max_processes),
        (libc::RLIMIT_NOFILE, l.max_open_files),
        (libc::RLIMIT_FSIZE, l.max_file_size),
        (libc::RLIMIT_CPU, l.max_cpu_secs),
        (libc::RLIMIT_DATA, l.max_memory),
        (libc::RLIMIT_CORE, 0),
    ]
}

/// Sets soft = hard = the wanted value (never above the current hard limit). Runs in the
/// forked child: no allocation.
fn apply_rlimits(table: &RlimitTable) -> std::io::Result<()> {
    for &(resource, want) in table {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `cur` is a valid, writable rlimit.
        if unsafe { libc::getrlimit(resource, &mut cur) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let value = want.min(cur.rlim_max);
        let new = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: `new` is a valid rlimit read by the kernel only.
        if unsafe { libc::setrlimit(resource, &new) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_maps_workspace_paths_to_the_real_workspace() {
        let ws = Path::new("/srv/ws");
        assert_eq!(host_cwd(ws, None), PathBuf::from("/srv/ws"));
        assert_eq!(
            host_cwd(ws, Some(Path::new("/workspace"))),
            PathBuf::from("/srv/ws")
        );
        assert_eq!(
            host_cwd(ws, Some(Path::new("/workspace/src/a"))),
            PathBuf::from("/srv/ws/src/a")
        );
        assert_eq!(
            host_cwd(ws, Some(Path::new("src"))),
            PathBuf::from("/srv/ws/src")
        );
        assert_eq!(host_cwd(ws, Some(Path::new("/etc"))), PathBuf::from("/etc"));
        // Not a path-prefix match: /workspacefoo is not under /workspace.
        assert_eq!(
            host_cwd(ws, Some(Path::new("/workspacefoo"))),
            PathBuf::from("/workspacefoo")
        );
    }
}
