//! The `none` backend: commands run directly on the host, as the calling user.
//!
//! Guarantees: the command's environment is exactly [`Profile::env`] (nothing inherited);
//! its working directory is the workspace (a `cwd` under [`WORKSPACE_MOUNT`] is mapped to
//! the real workspace); it runs in its own process group, which is `SIGKILL`ed at the
//! deadline and when the command exits; rlimits from [`Limits`] are set before `execve`;
//! output is capped like the native backend's.
//!
//! Not guaranteed — this is **no isolation**: the command sees the whole host filesystem
//! with the caller's permissions, the host network, every process the caller can signal,
//! and the caller's capabilities. A process that calls `setsid` escapes the group kill.
//! Paths in `argv` are not rewritten (`/workspace/x` on the command line means the host's
//! `/workspace/x`). Use it only where the host itself is disposable.

pub(crate) mod supervise;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{
    Access, ExecOutput, ExecRequest, Explanation, Instance, LayerStatus, Limits, MountView,
    Profile, Sandbox, SandboxError, WORKSPACE_MOUNT,
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
        Ok(Box::new(HostInstance {
            workspace,
            env: profile.env.clone(),
            limits: profile.limits,
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
        ("RLIMIT_AS".into(), l.max_memory.to_string()),
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

impl Instance for HostInstance {
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        let Some(program) = req.argv.first() else {
            return Err(SandboxError::Invalid(
                "empty argv: give at least the program to run".into(),
            ));
        };
        let cwd = host_cwd(&self.workspace, req.cwd.as_deref());
        let mut cmd = Command::new(program);
        cmd.args(&req.argv[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&cwd);
        let limits = rlimit_table(&self.limits);
        // SAFETY: the closure runs in the forked child before execve and only calls
        // getrlimit/setrlimit (async-signal-safe, no allocation, no locks) on a table
        // built before the fork.
        unsafe {
            cmd.pre_exec(move || apply_rlimits(&limits));
        }
        match supervise::run(cmd, &req.stdin, req.timeout, req.output_limit)? {
            Ok(out) => Ok(out),
            Err(f) => Err(SandboxError::Exec {
                program: program.clone(),
                detail: match f.error.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "not found (PATH from the profile, or working directory {} missing): {}",
                        cwd.display(),
                        f.error
                    ),
                    _ => f.error.to_string(),
                },
            }),
        }
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
        (libc::RLIMIT_AS, l.max_memory),
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
