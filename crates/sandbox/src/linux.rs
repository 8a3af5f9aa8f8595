//! The native Linux backend: namespaces, a pivoted read-only root, rlimits, no privileges.
//!
//! One module per isolation concern, in the order the child applies them:
//! [`namespaces`] (one `clone` into new user/mount/pid/net/ipc/uts/cgroup namespaces),
//! [`idmap`] (inner 1000 -> caller), `hostname`, [`net`] (`lo` up), [`mounts`] (the root),
//! then in the command's process [`rlimits`], [`caps`] and `execve` ([`command`]).
//! [`init`] is the child code, [`spawn`] the parent side, [`report`] the failure channel.
//!
//! Guarantees: see the crate docs and each module; every step either succeeds or the
//! command does not run and [`SandboxError::Setup`] names the layer. Not yet provided:
//! seccomp, Landlock, cgroup limits, egress proxy forwarding.
//!
//! v1 runs a fresh sandbox for every [`Instance::exec`]; the profile-dependent plan (mount
//! steps, rlimits, C strings) is prepared once in [`Sandbox::start`].

mod caps;
mod command;
mod idmap;
mod init;
mod mounts;
mod namespaces;
mod net;
mod report;
mod rlimits;
mod spawn;

use std::path::PathBuf;

use crate::{ExecOutput, ExecRequest, Instance, Layer, Profile, Sandbox, SandboxError};

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
/// [`Instance::exec`] runs each request in a fresh sandbox and blocks until the command and
/// everything it started are gone. A program that cannot be executed (not found in the
/// profile's `PATH`, not executable, bad working directory) is returned as
/// [`SandboxError::Exec`], never as an exit status; a layer that cannot be set up is
/// [`SandboxError::Setup`] and the command does not run. See the crate's README for the
/// full list of what the command can and cannot see.
#[derive(Debug, Default, Clone, Copy)]
pub struct NativeSandbox {
    _private: (),
}

impl NativeSandbox {
    pub fn new() -> NativeSandbox {
        NativeSandbox { _private: () }
    }
}

/// Everything prepared from a profile, reused by every exec.
pub(crate) struct Prepared {
    mounts: MountPlan,
    rlimits: Rlimits,
    last_cap: u32,
    env: Vec<(String, String)>,
    workspace: PathBuf,
}

impl Sandbox for NativeSandbox {
    fn backend(&self) -> &'static str {
        "native"
    }

    fn explain(&self, _profile: &Profile) -> crate::Explanation {
        // Placeholder until the explain report lands (issue 3).
        crate::Explanation {
            backend: "native".into(),
            layers: Vec::new(),
            mounts: Vec::new(),
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
            limits: Vec::new(),
            network: "loopback only".into(),
            warnings: Vec::new(),
        }
    }

    fn start(&self, profile: &Profile) -> Result<Box<dyn Instance>, SandboxError> {
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
        let last_cap = caps::last_cap().map_err(|detail| SandboxError::Setup {
            layer: Layer::Capabilities,
            detail,
        })?;
        let prepared = Prepared {
            mounts: MountPlan::build(
                &workspace,
                profile.workspace_writable,
                profile.limits.tmp_size,
            )?,
            rlimits: Rlimits::new(&profile.limits),
            last_cap,
            env: profile.env.clone(),
            workspace,
        };
        Ok(Box::new(NativeInstance { prepared }))
    }
}

/// A started native sandbox (v1: each exec builds a fresh one from the prepared plan).
struct NativeInstance {
    prepared: Prepared,
}

impl Instance for NativeInstance {
    /// Runs `req` in a fresh sandbox. A program that cannot be executed (not found, not
    /// executable) is returned as [`SandboxError::Exec`], never as an exit status.
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        let cmd = CommandPlan::new(req, &self.prepared.env)?;
        let outcome = spawn::run(&self.prepared, &cmd, req)?;
        match outcome.report {
            None => Ok(outcome.output),
            Some(report) => Err(self.explain(report, &cmd)),
        }
    }
}

impl NativeInstance {
    fn explain(&self, r: Report, cmd: &CommandPlan) -> SandboxError {
        let os = std::io::Error::from_raw_os_error(r.errno);
        let setup = |layer: Layer, what: String| SandboxError::Setup {
            layer,
            detail: format!("{what}: {os}"),
        };
        match r.stage {
            Stage::InitPrctl => setup(
                Layer::PidNamespace,
                match r.index {
                    0 => "setting init's parent-death signal",
                    1 => "making init non-dumpable",
                    _ => "starting a new session for init",
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
                program: cmd.program.clone(),
                detail: format!(
                    "working directory {}: {os}; use a directory that exists inside the sandbox \
                     (the workspace is {} -> {})",
                    cmd.cwd.to_string_lossy(),
                    self.prepared.workspace.display(),
                    crate::WORKSPACE_MOUNT
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
            Stage::Exec => {
                let detail = match r.errno {
                    libc::ENOENT if cmd.candidates.len() > 1 => {
                        let path = self.path();
                        format!("not found in PATH ({path}) inside the sandbox")
                    }
                    libc::ENOENT => "no such file inside the sandbox".to_owned(),
                    libc::EACCES => format!("permission denied ({os}); is it executable?"),
                    _ => os.to_string(),
                };
                SandboxError::Exec {
                    program: cmd.program.clone(),
                    detail,
                }
            }
        }
    }

    fn path(&self) -> &str {
        self.prepared
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(command::DEFAULT_PATH, |(_, v)| v.as_str())
    }
}
