//! The native Linux backend: namespaces, a pivoted read-only root, rlimits, no privileges.
//!
//! One module per isolation concern, in the order the child applies them:
//! [`namespaces`] (one `clone` into new user/mount/pid/net/ipc/uts/cgroup namespaces),
//! [`idmap`] (inner 1000 -> caller), `hostname`, [`net`] (`lo` up), [`mounts`] (the root;
//! with the workspace overlay, [`overlay`] mounts one per command),
//! then in the command's process [`rlimits`], [`caps`], [`landlock`], [`seccomp`] and
//! `execve` ([`command`]). [`init`] is the child code, [`spawn`] the parent side (which also
//! puts init into its [`cgroup`] before releasing it), [`worker`] the background thread
//! (teardown, cgroup pool, armed thread), [`report`] the failure channel;
//! [`explain`] describes all of it from the same plan and probes.
//!
//! Guarantees: see the crate docs and each module; every step either succeeds or the
//! command does not run and [`SandboxError::Setup`] names the layer. Not yet provided:
//! egress proxy forwarding, Landlock network rules.
//!
//! [`Sandbox::start`] prepares the plan (mount steps, rlimits, C strings) and builds one
//! live sandbox: init in its namespaces, set up once. Each [`Instance::exec`] sends one
//! command to init over the [`control`] channel. [`Sandbox::spawn`] builds a live sandbox
//! the same way and sends it one long-running command, whose pipes go to the caller; its
//! [`Process`] owns the sandbox, so killing or dropping it kills init and with it the
//! whole pid namespace.

mod caps;
mod cgroup;
mod command;
mod control;
mod explain;
mod idmap;
mod init;
mod landlock;
mod mounts;
mod namespaces;
mod net;
mod overlay;
mod report;
mod rlimits;
mod seccomp;
mod spawn;
mod worker;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::stderr_tail::StderrTail;
use crate::{
    ExecOutput, ExecRequest, ExitStatus, Instance, Layer, Process, Profile, Sandbox, SandboxError,
    SpawnRequest,
};

pub use idmap::{SANDBOX_GID, SANDBOX_UID};

/// Hostname inside the sandbox's uts namespace.
pub const HOSTNAME: &str = "cordon-sandbox";

use command::CommandPlan;
use mounts::MountPlan;
use report::{Report, Stage};
use rlimits::Rlimits;

/// The Linux native backend. Works as root and as an unprivileged user (it needs
/// unprivileged user namespaces in the latter case).
///
/// [`Sandbox::start`] builds one live sandbox; [`Instance::exec`] runs each request in it
/// and blocks until the command and everything it started are gone. A program that cannot be executed (not found in the
/// profile's `PATH`, not executable, bad working directory) is returned as
/// [`SandboxError::Exec`], never as an exit status; a layer that cannot be set up is
/// [`SandboxError::Setup`] and the command does not run. See the crate's README for the
/// full list of what the command can and cannot see.
#[derive(Debug, Default, Clone, Copy)]
pub struct NativeSandbox {
    pooling: Pooling,
}

/// Whether the native backend prepares for the next [`Sandbox::start`] of the process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// After each start, pre-create cgroups (and, on cgroup v1, a thread inside one with a
    /// network namespace) for the next one, off the critical path; they are removed at
    /// exit. For processes that start sandboxes again and again (the agent, `serve`).
    #[default]
    Refill,
    /// Prepare nothing beyond the sandbox asked for, and leave the pool as it is: for a
    /// process that starts one sandbox and exits (`cordon sandbox exec`), where a refill
    /// would be made only to be removed again at exit. Each start is as a process's first
    /// with [`Pooling::Refill`]; isolation and limits are the same.
    Off,
}

impl NativeSandbox {
    pub fn new() -> NativeSandbox {
        NativeSandbox::default()
    }

    /// A backend whose starts prepare for a next one or not ([`Pooling`]).
    pub fn with_pooling(pooling: Pooling) -> NativeSandbox {
        NativeSandbox { pooling }
    }
}

/// Everything prepared from a profile, reused by every exec.
pub(crate) struct Prepared {
    mounts: MountPlan,
    rlimits: Rlimits,
    cgroup: cgroup::CgroupPlan,
    last_cap: u32,
    env: Vec<(String, String)>,
    workspace: PathBuf,
    workspace_access: crate::WorkspaceAccess,
    /// The workspace overlay, when the plan mounts one per command.
    overlay: Option<crate::overlay::ResolvedOverlay>,
    /// Whether starting it refills the pool for a next start.
    pooling: Pooling,
}

impl Sandbox for NativeSandbox {
    fn backend(&self) -> &'static str {
        "native"
    }

    fn isolation(&self) -> crate::Isolation {
        crate::Isolation::Isolated
    }

    fn explain(&self, profile: &Profile) -> crate::Explanation {
        explain::explain(profile)
    }

    fn start(&self, profile: &Profile) -> Result<Box<dyn Instance>, SandboxError> {
        Ok(Box::new(NativeInstance::start(profile, self.pooling)?))
    }

    /// Linux >= 5.11 with overlayfs; `start` still fails (naming the layer) if the
    /// filesystem of the upper directory cannot hold an overlay's upper layer.
    fn supports_workspace_overlay(&self) -> bool {
        overlay::kernel_support().is_ok()
    }

    /// With [`Pooling::Off`] (a process that starts one sandbox): compile the seccomp
    /// filter and arm the start's thread (its cgroup with the profile's limits, moved
    /// into, and its network namespace with `lo` up) on a thread of their own now; the
    /// start takes that thread if it was armed for the same limits and arms one itself
    /// otherwise. With [`Pooling::Refill`] nothing: the pool prepares for every start
    /// after the first.
    fn prepare(&self, profile: &Profile) {
        if self.pooling == Pooling::Off {
            worker::arm_ahead(profile.limits);
        }
    }

    /// A sandbox of its own for one long-running process: [`Sandbox::start`], then the
    /// command sent to init as a spawn (init answers as soon as it passed `execve`).
    fn spawn(
        &self,
        profile: &Profile,
        req: &SpawnRequest,
    ) -> Result<Box<dyn Process>, SandboxError> {
        let cmd = CommandPlan::from_parts(&req.argv, req.cwd.as_deref(), &profile.env)?;
        let mut instance = NativeInstance::start(profile, self.pooling)?;
        let live = instance.live.as_mut().ok_or_else(|| {
            SandboxError::Invalid("this sandbox instance was never started".into())
        })?;
        let io = match live.spawn(&cmd)? {
            Ok(io) => io,
            Err(report) => return Err(instance.explain(report, Some(&cmd))),
        };
        let stderr = StderrTail::start(io.stderr, req.stderr_limit)?;
        Ok(Box::new(NativeProcess {
            instance,
            stdin: Some(io.stdin),
            stdout: Some(io.stdout),
            stderr,
            status: None,
        }))
    }
}

impl NativeInstance {
    fn start(profile: &Profile, pooling: Pooling) -> Result<NativeInstance, SandboxError> {
        let workspace = crate::host::resolve_workspace(profile)?;
        let ro_binds = crate::ro_bind::resolve(&profile.ro_binds)?;
        let overlay = match &profile.workspace_overlay {
            Some(o) if profile.workspace_access.writable() => {
                let resolved = crate::overlay::resolve(o, &workspace)?;
                overlay::kernel_support()
                    .and_then(|()| overlay::check_user_xattrs(&resolved.work))
                    .map_err(|detail| SandboxError::Setup {
                        layer: Layer::WorkspaceOverlay,
                        detail: format!("{detail}; run without workspace_overlay here"),
                    })?;
                Some(resolved)
            }
            _ => None,
        };
        let last_cap = caps::last_cap().map_err(|detail| SandboxError::Setup {
            layer: Layer::Capabilities,
            detail,
        })?;
        // Compiled once per process, before any clone: the child only installs it.
        seccomp::prepare().map_err(|detail| SandboxError::Setup {
            layer: Layer::Seccomp,
            detail,
        })?;
        let mut instance = NativeInstance {
            prepared: Prepared {
                mounts: MountPlan::build(
                    &workspace,
                    profile.workspace_access,
                    profile.limits.tmp_size,
                    &profile.etc_files,
                    &ro_binds,
                    overlay.as_ref(),
                )?,
                rlimits: Rlimits::new(&profile.limits),
                cgroup: cgroup::CgroupPlan::new(&profile.limits),
                last_cap,
                env: profile.env.clone(),
                workspace,
                workspace_access: profile.workspace_access,
                overlay,
                pooling,
            },
            live: None,
        };
        match spawn::start(&instance.prepared, profile.egress_port) {
            Ok(live) => instance.live = Some(live),
            Err(spawn::StartError::Other(e)) => return Err(e),
            Err(spawn::StartError::Step(report)) => return Err(instance.explain(report, None)),
        }
        Ok(instance)
    }
}

/// A long-running process in a native sandbox of its own.
struct NativeProcess {
    /// Its sandbox, serving only this process.
    instance: NativeInstance,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: StderrTail,
    /// Known once it exited or was killed.
    status: Option<ExitStatus>,
}

impl Process for NativeProcess {
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

    fn wait(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, SandboxError> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(live) = self.instance.live.as_mut() else {
            return Err(SandboxError::Invalid(
                "this sandbox instance was never started".into(),
            ));
        };
        self.status = live.wait_status(timeout)?;
        Ok(self.status)
    }

    /// Kills the sandbox's init, which takes every process in its pid namespace with it,
    /// and reaps it before returning; the cgroup is removed in the background.
    fn kill(&mut self) -> Result<(), SandboxError> {
        if self.status.is_none() {
            // An exit that already happened is its real status, not the kill.
            let exited = self.wait(Duration::ZERO).ok().flatten();
            self.status = Some(exited.unwrap_or(ExitStatus::Signaled(libc::SIGKILL)));
        }
        if let Some(live) = self.instance.live.as_mut() {
            live.kill_now();
        }
        Ok(())
    }

    fn egress_listener(&mut self) -> Option<OwnedFd> {
        self.instance.egress_listener()
    }
}

/// A started native sandbox: one live init in its namespaces, one command per exec.
struct NativeInstance {
    prepared: Prepared,
    /// Always `Some` once `start` returned it.
    live: Option<spawn::Live>,
}

impl Instance for NativeInstance {
    /// Runs `req` in this sandbox. A program that cannot be executed (not found, not
    /// executable) is returned as [`SandboxError::Exec`], never as an exit status.
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        let cmd = CommandPlan::new(req, &self.prepared.env)?;
        let live = self.live.as_mut().ok_or_else(|| {
            SandboxError::Invalid("this sandbox instance was never started".into())
        })?;
        let outcome = live.exec(&cmd, req)?;
        match outcome.report {
            None => Ok(outcome.output),
            Some(report) => Err(self.explain(report, Some(&cmd))),
        }
    }

    fn egress_listener(&mut self) -> Option<std::os::fd::OwnedFd> {
        self.live.as_mut().and_then(spawn::Live::take_listener)
    }
}

impl NativeInstance {
    /// A failure to mount the workspace overlay: index 0 at start, 1 before the command
    /// (it did not run).
    fn overlay_error(&self, index: u32, os: &std::io::Error) -> SandboxError {
        let detail = match &self.prepared.overlay {
            Some(o) => format!(
                "mounting an overlay at {} {} (lower {}, upper {}, work {}, userxattr): {}; \
                 it needs overlayfs mounts in user namespaces (Linux >= 5.11), and upper and \
                 work writable by the sandbox's user, on a filesystem with user extended \
                 attributes and d_type (ext4, xfs, btrfs; tmpfs from Linux 6.6); run without \
                 workspace_overlay here",
                crate::WORKSPACE_MOUNT,
                if index == 0 {
                    "while starting the sandbox"
                } else {
                    "for the command (it did not run)"
                },
                self.prepared.workspace.display(),
                o.upper.display(),
                o.work.display(),
                if os.raw_os_error() == Some(libc::EROFS) {
                    "the kernel could only mount it read-only, as it does when it cannot use \
                     the work directory (see the kernel log)"
                        .to_owned()
                } else {
                    os.to_string()
                },
            ),
            None => format!("the workspace overlay failed without being configured: {os}"),
        };
        SandboxError::Setup {
            layer: Layer::WorkspaceOverlay,
            detail,
        }
    }

    /// `cmd`: the command being started, `None` for failures while starting the sandbox.
    fn explain(&self, r: Report, cmd: Option<&CommandPlan>) -> SandboxError {
        let program = cmd.map_or_else(String::new, |c| c.program.clone());
        let os = std::io::Error::from_raw_os_error(r.errno);
        let setup = |layer: Layer, what: String| SandboxError::Setup {
            layer,
            detail: format!("{what}: {os}"),
        };
        match r.stage {
            Stage::InitPrctl => setup(
                Layer::PidNamespace,
                match r.index {
                    1 => "making init non-dumpable",
                    2 => "starting a new session for init",
                    _ => "creating init's SIGCHLD signalfd",
                }
                .into(),
            ),
            Stage::Hostname => setup(
                Layer::UtsNamespace,
                format!("setting the hostname {HOSTNAME}"),
            ),
            Stage::Loopback => setup(Layer::NetworkNamespace, "bringing up lo".into()),
            Stage::Mount => {
                let (layer, what) = self.prepared.mounts.describe(r.index);
                let hint = if r.index == 0 || layer == Layer::PidNamespace {
                    " (the host may forbid mounts in user namespaces)"
                } else {
                    ""
                };
                setup(layer, format!("{what}{hint}"))
            }
            Stage::Fork => setup(Layer::PidNamespace, "forking the command from init".into()),
            Stage::Stdio => setup(Layer::Exec, format!("installing stdio fd {}", r.index)),
            Stage::Chdir => SandboxError::Exec {
                program,
                detail: format!(
                    "working directory {}: {os}; use a directory that exists inside the sandbox \
                     ({})",
                    cmd.map_or_else(Default::default, |c| c.cwd.to_string_lossy()),
                    match self.prepared.workspace_access {
                        crate::WorkspaceAccess::None => format!(
                            "no workspace is mounted: {} is empty",
                            crate::WORKSPACE_MOUNT
                        ),
                        _ => format!(
                            "the workspace is {} -> {}",
                            self.prepared.workspace.display(),
                            crate::WORKSPACE_MOUNT
                        ),
                    }
                ),
            },
            Stage::Rlimit => setup(Layer::Rlimits, self.prepared.rlimits.describe(r.index)),
            Stage::CloseFds => setup(
                Layer::Exec,
                "marking inherited descriptors close-on-exec".into(),
            ),
            Stage::SetIds => setup(Layer::IdMapping, "switching to uid/gid 1000".into()),
            Stage::CapBound => setup(
                Layer::Capabilities,
                format!("dropping capability {} from the bounding set", r.index),
            ),
            Stage::Ambient => setup(Layer::Capabilities, "clearing ambient capabilities".into()),
            Stage::NoNewPrivs => setup(Layer::Capabilities, "setting no_new_privs".into()),
            Stage::Capset => setup(Layer::Capabilities, "clearing capability sets".into()),
            Stage::Landlock => setup(Layer::Landlock, landlock::describe(r.index)),
            Stage::Seccomp => setup(Layer::Seccomp, "installing the seccomp filter".into()),
            Stage::Exec => {
                let detail = match r.errno {
                    libc::ENOENT if cmd.is_some_and(|c| c.candidates.len() > 1) => {
                        let path = command::search_path(&self.prepared.env);
                        format!("not found in PATH ({path}) inside the sandbox")
                    }
                    libc::ENOENT => "no such file inside the sandbox".to_owned(),
                    libc::EACCES => format!("permission denied ({os}); is it executable?"),
                    _ => os.to_string(),
                };
                SandboxError::Exec { program, detail }
            }
            Stage::Egress => setup(
                Layer::NetworkNamespace,
                format!(
                    "{} the egress listener on the sandbox's 127.0.0.1",
                    match r.index {
                        0 => "creating",
                        1 => "binding",
                        _ => "listening on",
                    }
                ),
            ),
            Stage::Overlay => self.overlay_error(r.index, &os),
            Stage::Request => SandboxError::Io(std::io::Error::other(
                "the sandbox init could not parse the exec request (internal error); start a \
                 new instance",
            )),
        }
    }
}
