//! The isolation boundary for every tool process.
//!
//! Every process a tool starts runs through a [`Sandbox`]. The native Linux backend
//! ([`NativeSandbox`]) gives each instance (one task, or one call when the caller starts an
//! instance per call) its own user, mount, pid, net, ipc, uts and cgroup namespaces,
//! built once in [`Sandbox::start`], and runs each [`Instance::exec`] in them with no
//! process surviving from one call to the next: a minimal read-only root, the workspace at
//! `/workspace` (writable, read-only or absent, per [`WorkspaceAccess`]), read-only binds
//! of skill trees at `/skills/NAME` ([`RoBind`]), a private `/tmp`,
//! only loopback networking, no capabilities, a seccomp filter, Landlock rules mirroring
//! the mounts, rlimits, a per-sandbox cgroup when the caller may create one, and a
//! wall-clock deadline that kills the whole process tree (by killing the pid namespace's
//! init). [`Sandbox::explain`] lists what applies on this machine.
//!
//! With [`Profile::workspace_overlay`] (native backend, see
//! [`Sandbox::supports_workspace_overlay`]), each command sees the workspace through a new
//! overlay whose changes land in a caller's upper directory and never in the workspace,
//! complete when [`Instance::exec`] returns ([`WorkspaceOverlay`]).
//!
//! Fail closed: if any layer cannot be set up the command does not run, and
//! [`SandboxError::Setup`] names the layer. There is no fallback to running unsandboxed.
//!
//! Long-running processes (stdio MCP servers): [`Sandbox::spawn`] starts a sandbox of its
//! own for one process with the same [`Profile`] (every layer above, the egress listener
//! included) and returns a [`Process`]: its stdin and stdout as pipes the caller owns, the
//! last [`SpawnRequest::stderr_limit`] bytes of its stderr, its exit status
//! ([`Process::try_wait`], [`Process::wait`]), and [`Process::kill`], which ends the whole
//! process tree and tears the sandbox down (dropping the [`Process`] does the same). When
//! the process exits on its own, everything else it started is killed too.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(unix)]
mod container;
mod error;
#[cfg(unix)]
mod host;
#[cfg(target_os = "linux")]
mod linux;
mod overlay;
mod ro_bind;
mod stderr_tail;

#[cfg(unix)]
pub use container::{ContainerConfig, ContainerSandbox, Engine, exec_args, run_args, spawn_args};
pub use error::{Layer, SandboxError};
#[cfg(unix)]
pub use host::{HOST_WARNING, HostSandbox};
#[cfg(target_os = "linux")]
pub use linux::{HOSTNAME, NativeSandbox, Pooling, SANDBOX_GID, SANDBOX_UID};
pub use overlay::WorkspaceOverlay;
pub use ro_bind::{RoBind, SKILLS_MOUNT};

/// Path of the workspace inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Workspace access of a sandboxed process, written `none`, `read` or `write`. Ordered
/// from least to most.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceAccess {
    /// Not mounted: `/workspace` is an empty read-only directory (it still exists, so it
    /// stays the default working directory).
    None,
    /// Mounted read-only (what a skill that declares nothing gets).
    #[default]
    Read,
    /// Mounted writable.
    Write,
}

impl WorkspaceAccess {
    /// `none`, `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceAccess::None => "none",
            WorkspaceAccess::Read => "read",
            WorkspaceAccess::Write => "write",
        }
    }

    /// Whether the process may write the workspace.
    pub fn writable(self) -> bool {
        self == WorkspaceAccess::Write
    }
}

impl std::fmt::Display for WorkspaceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sandboxed process sees and may do.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Host directory mounted at [`WORKSPACE_MOUNT`]. Must exist, even with
    /// [`WorkspaceAccess::None`] (every backend checks it the same way).
    pub workspace: PathBuf,
    /// Whether the workspace is mounted, and whether writable.
    pub workspace_access: WorkspaceAccess,
    /// With [`WorkspaceAccess::Write`]: show each command the workspace through an
    /// overlay whose changes land in [`WorkspaceOverlay::upper`], never in the real
    /// workspace (see [`WorkspaceOverlay`]). Only backends whose
    /// [`Sandbox::supports_workspace_overlay`] is true accept it. Ignored with `Read` or
    /// `None` access (nothing can change).
    pub workspace_overlay: Option<WorkspaceOverlay>,
    /// Host directories bound read-only (nosuid, nodev; executable) at `/skills/NAME`:
    /// a skill's installed tree, so its scripts run from there. Targets are checked by
    /// every backend; a bad one is [`SandboxError::Invalid`] naming it.
    pub ro_binds: Vec<RoBind>,
    /// Environment of the command: exactly this, nothing inherited from the host.
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    /// When set, the sandbox gets a TCP listener on its own `127.0.0.1:PORT`, handed to the
    /// caller by [`Instance::egress_listener`] (the egress proxy accepts on it); nothing
    /// inside can bind that port.
    pub egress_port: Option<u16>,
    /// Extra files generated in the sandbox's `/etc` as (file name, contents), read-only
    /// inside: e.g. the egress CA bundle `cordon-ca.pem`. Names are one plain path
    /// component and may not replace the generated identity files or the host binds.
    pub etc_files: Vec<(String, Vec<u8>)>,
}

/// Resource limits applied to every process in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_NPROC.
    pub max_processes: u64,
    /// RLIMIT_NOFILE.
    pub max_open_files: u64,
    /// RLIMIT_FSIZE, bytes.
    pub max_file_size: u64,
    /// RLIMIT_CPU, seconds.
    pub max_cpu_secs: u64,
    /// RLIMIT_DATA (private writable memory per process), bytes.
    pub max_memory: u64,
    /// Size cap of the private `/tmp` tmpfs, bytes.
    pub tmp_size: u64,
    /// cgroup memory limit for the whole sandbox, bytes (memory.max / memory.limit_in_bytes).
    pub cgroup_memory: u64,
    /// cgroup limit on tasks in the whole sandbox (pids.max).
    pub cgroup_pids: u64,
    /// cgroup CPU bandwidth for the whole sandbox, in percent of one CPU (100 = one core);
    /// 0 sets no CPU cap (`cpu.max` "max").
    pub cgroup_cpu_percent: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_processes: 256,
            max_open_files: 1024,
            max_file_size: 1 << 30,
            max_cpu_secs: 300,
            max_memory: 4 << 30,
            tmp_size: 256 << 20,
            cgroup_memory: 2 << 30,
            cgroup_pids: 512,
            cgroup_cpu_percent: 200,
        }
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Program and arguments. `argv[0]` is looked up in the sandbox's `PATH` when it has
    /// no `/`.
    pub argv: Vec<String>,
    /// Working directory inside the sandbox; [`WORKSPACE_MOUNT`] when `None`.
    pub cwd: Option<PathBuf>,
    /// Bytes fed to stdin, then closed. Empty: stdin is `/dev/null`-like (closed pipe).
    pub stdin: Vec<u8>,
    /// Wall-clock deadline; at it the whole process tree is killed.
    pub timeout: Duration,
    /// Bytes of stdout and of stderr kept; the rest is read and dropped, and reported.
    pub output_limit: usize,
}

/// One long-running process to start with [`Sandbox::spawn`].
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// Program and arguments. `argv[0]` is looked up in the sandbox's `PATH` when it has
    /// no `/`.
    pub argv: Vec<String>,
    /// Working directory inside the sandbox; [`WORKSPACE_MOUNT`] when `None`.
    pub cwd: Option<PathBuf>,
    /// Bytes of stderr kept: the last ones ([`Process::stderr_tail`]); older bytes are
    /// read and dropped, so a chatty process never blocks on stderr nor grows memory.
    pub stderr_limit: usize,
}

impl SpawnRequest {
    /// `argv` in the workspace, keeping the last 64 KiB of stderr.
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> SpawnRequest {
        SpawnRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: None,
            stderr_limit: 64 * 1024,
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed at the deadline.
    TimedOut,
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by signal {s}"),
            ExitStatus::TimedOut => f.write_str("killed at the deadline"),
        }
    }
}

/// What came back from a command.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes of stdout beyond `output_limit` that were dropped.
    pub stdout_dropped: u64,
    /// Bytes of stderr beyond `output_limit` that were dropped.
    pub stderr_dropped: u64,
    pub duration: Duration,
}

/// Whether a backend isolates the commands it runs. Callers decide on this (labels,
/// `require_sandbox`), never on a backend's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Commands run in their own namespaces or container ([`NativeSandbox`],
    /// [`ContainerSandbox`]).
    Isolated,
    /// Commands run on the host as the calling user ([`HostSandbox`], `backend = "none"`).
    None,
}

/// An isolation backend.
pub trait Sandbox: Send + Sync {
    /// Short backend name for logs and `sandbox explain` (`native`, `docker`, …).
    fn backend(&self) -> &'static str;
    /// Whether commands are isolated from the host.
    fn isolation(&self) -> Isolation;
    /// Prepare a sandbox for a task. Its [`Instance::exec`] runs commands inside it.
    fn start(&self, profile: &Profile) -> Result<Box<dyn Instance>, SandboxError>;
    /// What a process sandboxed with `profile` sees and may do, as this backend would
    /// set it up on this machine now (probing kernel support, cgroup writability…).
    /// `cordon sandbox explain` prints it; tests check every claim against reality.
    fn explain(&self, profile: &Profile) -> Explanation;
    /// Whether this backend can show the workspace through an overlay
    /// ([`Profile::workspace_overlay`]) on this machine. When false, the caller runs
    /// without one (commands then write the real workspace directly): the built-in
    /// backends without support refuse a profile with an overlay (`SandboxError::Invalid`)
    /// rather than let commands write the workspace the caller meant to protect.
    fn supports_workspace_overlay(&self) -> bool {
        false
    }
    /// A hint that one [`Sandbox::start`] (or [`Sandbox::spawn`]) with `profile`'s limits
    /// follows soon, in a process that starts no other: a backend may begin, on another
    /// thread, the setup that does not depend on the command, so that the start finds it
    /// done. It changes nothing about what the start sets up or allows, and never fails:
    /// whatever went wrong is met again, and reported, by the start. Work prepared for a
    /// start that never comes is undone when the process exits. Default: nothing.
    fn prepare(&self, _profile: &Profile) {}
    /// Start one long-running process in a sandbox of its own, set up from `profile`
    /// exactly as [`Sandbox::start`] does, with piped stdin and stdout. Returns once the
    /// program was executed: a program that cannot be started (not found, not executable,
    /// bad working directory) is [`SandboxError::Exec`] naming it. There is no deadline:
    /// the caller ends it with [`Process::kill`] or by dropping it.
    ///
    /// The default refuses: a backend that cannot keep a process running says so.
    fn spawn(
        &self,
        profile: &Profile,
        req: &SpawnRequest,
    ) -> Result<Box<dyn Process>, SandboxError> {
        let _ = (profile, req);
        Err(SandboxError::Invalid(format!(
            "the {} sandbox backend cannot run long-running processes; use the native, \
             container or none backend",
            self.backend()
        )))
    }
}

/// A long-running process started by [`Sandbox::spawn`]. Dropping it kills the process,
/// everything it started, and its sandbox.
pub trait Process: Send {
    /// The write end of the process's stdin, once (later calls return `None`). Closing it
    /// is end-of-file for the process. Blocking; set `O_NONBLOCK` to use it with an async
    /// runtime.
    fn stdin(&mut self) -> Option<std::os::fd::OwnedFd>;
    /// The read end of the process's stdout, once. End-of-file once the process and
    /// everything it started are gone.
    fn stdout(&mut self) -> Option<std::os::fd::OwnedFd>;
    /// The last bytes the process wrote to stderr (at most
    /// [`SpawnRequest::stderr_limit`]), also after it exited.
    fn stderr_tail(&self) -> Vec<u8>;
    /// Bytes of stderr dropped from the front of [`Process::stderr_tail`] so far.
    fn stderr_dropped(&self) -> u64;
    /// Wait up to `timeout` for the process to exit; `None` if it is still running.
    /// Once it has exited (or was killed), every call returns the same status.
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Option<ExitStatus>, SandboxError>;
    /// The exit status if the process has exited, without waiting.
    fn try_wait(&mut self) -> Result<Option<ExitStatus>, SandboxError> {
        self.wait(Duration::ZERO)
    }
    /// Kill the process and everything it started, and tear its sandbox down. Its status
    /// becomes [`ExitStatus::Signaled`] with `SIGKILL` unless it had already exited.
    /// Killing twice is harmless.
    fn kill(&mut self) -> Result<(), SandboxError>;
    /// The sandbox's egress listener (see [`Instance::egress_listener`]), once.
    fn egress_listener(&mut self) -> Option<std::os::fd::OwnedFd> {
        None
    }
}

/// What a sandboxed process sees and may do. Every field is a claim the escape suite
/// verifies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    pub backend: String,
    /// Each isolation layer and whether it will be applied, with details (e.g. the
    /// Landlock ABI, "cgroup v1: memory, pids, cpu", "seccomp: 52 syscalls denied").
    pub layers: Vec<LayerStatus>,
    /// Every path visible inside, with its access. Anything not listed does not exist.
    pub mounts: Vec<MountView>,
    /// uid and gid of the command inside.
    pub uid: u32,
    pub gid: u32,
    /// Effective limits.
    pub limits: Vec<(String, String)>,
    /// Network reachable from inside, in words (e.g. "loopback only").
    pub network: String,
    /// Known gaps on this machine (e.g. "RLIMIT_NPROC is not enforced for host root").
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerStatus {
    pub layer: String,
    pub active: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountView {
    /// Path inside the sandbox.
    pub path: String,
    pub access: Access,
    /// What it is: `host:/usr`, `tmpfs 256 MiB`, `proc (sandbox pids only)`, `generated`.
    pub source: String,
}

/// A sandbox for one task. Dropping it destroys everything it holds.
pub trait Instance: Send {
    /// Run one command to completion inside the sandbox. Blocking.
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError>;
    /// The listening socket on the sandbox's `127.0.0.1:`[`Profile::egress_port`], once
    /// (later calls return `None`); `None` when the profile has no egress port or the
    /// backend cannot provide one.
    fn egress_listener(&mut self) -> Option<std::os::fd::OwnedFd> {
        None
    }
}
