//! Parent side of a live sandbox: `clone` of init at start, then one command per exec over
//! the control channel, with its I/O and deadline, or one long-running process ([`Live::spawn`])
//! whose pipes go to the caller.
//!
//! Guarantees: [`start`] returns only once init has set up every layer (or reports the
//! failed step); the sandbox then lives until the [`Live`] is dropped, which SIGKILLs init
//! before returning (as init exits the kernel kills everything in the pid namespace, and
//! the mounts, `/tmp` included, go away with the last process); the background worker
//! then reaps init and removes the cgroup. Per exec: stdin is fed and closed,
//! stdout and stderr are read concurrently (one `poll` loop, no threads) keeping at most
//! `output_limit` bytes each and counting the rest; at the deadline init is asked to kill
//! the command's tree and the result is [`ExitStatus::TimedOut`]; if init does not answer
//! within [`KILL_GRACE`], init itself is SIGKILLed and the instance is dead (later execs
//! fail with a clear error). Does not bound the time spent draining pipes after the command
//! ended beyond the same grace period.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use rustix::pipe::{PipeFlags, pipe_with};

use super::command::CommandPlan;
use super::control::{self, Op, Reply};
use super::init::{self, ChildContext};
use super::namespaces::{self, Forked};
use super::report::Report;
use super::{Prepared, idmap};
use crate::{ExecOutput, ExecRequest, ExitStatus, Layer, SandboxError};

/// How long init may take to kill a command's tree (or the parent to drain pipes after
/// the command ended) before init itself is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long init may take to set up the sandbox at start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What came back from one exec, before interpretation.
pub(crate) struct Outcome {
    pub output: ExecOutput,
    pub report: Option<Report>,
}

/// Why [`start`] failed.
pub(crate) enum StartError {
    /// Init reported a failed setup step.
    Step(Report),
    Other(SandboxError),
}

impl From<SandboxError> for StartError {
    fn from(e: SandboxError) -> Self {
        StartError::Other(e)
    }
}

/// A running sandbox: its init and the control channel to it.
pub(crate) struct Live {
    /// Init's pid (in our namespace). Unreaped until drop, so it cannot be recycled.
    pid: libc::pid_t,
    ctl: OwnedFd,
    listener: Option<OwnedFd>,
    /// Set when the instance can no longer run commands, with the reason.
    dead: Option<String>,
    /// The sandbox's cgroup; removed (after `drop` killed init) when this is dropped.
    _cgroup: Option<super::cgroup::Cgroup>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    pipe_with(PipeFlags::CLOEXEC).map_err(|e| SandboxError::Io(e.into()))
}

fn setup_err(layer: Layer, detail: String) -> SandboxError {
    SandboxError::Setup { layer, detail }
}

/// SIGKILL `pid` (best effort; used on error paths and at the deadline). Reap with [`reap`].
fn kill(pid: libc::pid_t) {
    // SAFETY: kill with integer arguments; `pid` is our unreaped child, so it cannot have
    // been recycled for another process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Wait for our child `pid` to end and reap it; its wait status, `None` on error.
pub(super) fn reap(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if rc == pid {
            return Some(status);
        }
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), SandboxError> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| SandboxError::Io(e.into()))?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| SandboxError::Io(e.into()))
}

/// Wait up to `timeout` for `fd` to become readable (a timeout too large to represent
/// waits without limit). False on timeout.
fn wait_readable(fd: &OwnedFd, timeout: Duration) -> Result<bool, SandboxError> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_millis().clamp(0, i32::MAX as u128) as libc::c_int
            }
            None => -1,
        };
        // SAFETY: `pfd` is one live pollfd struct.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(SandboxError::Io(e));
        }
    }
}

/// Create the sandbox described by `prepared`: clone init into new namespaces, map ids,
/// and wait until init has set up every layer.
pub(crate) fn start(prepared: &Prepared, egress_port: Option<u16>) -> Result<Live, StartError> {
    let (ctl, child_ctl) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SandboxError::Io(e.into()))?;
    let mut scratch = init::Scratch::new();
    // On cgroup v1, init is forked by a thread already inside a pooled cgroup (no attach
    // on this path), into the network namespace it made; otherwise forked here and
    // attached below.
    let slot = prepared
        .cgroup
        .key()
        .and_then(|key| super::worker::take_armed(&key, prepared.pooling));
    let ctx = ChildContext {
        mounts: &prepared.mounts,
        rlimits: &prepared.rlimits,
        hostname: super::HOSTNAME.as_bytes(),
        last_cap: prepared.last_cap,
        egress_port,
        ctl: child_ctl.as_raw_fd(),
        net_ready: slot.as_ref().is_some_and(super::worker::Armed::net_ready),
    };
    let armed = slot.map(|a| a.fork(&ctx, &mut scratch));
    let (forked, cgroup) = match armed {
        Some((Ok(pid), cg)) => (Ok(Forked::Parent(pid)), Some(cg)),
        Some((Err(e), cg)) => {
            super::worker::dispose(0, Some(cg));
            (Err(e), None)
        }
        None => (namespaces::fork_into(namespaces::NAMESPACES), None),
    };
    let pid = match forked {
        Ok(Forked::Child) => init::run(&ctx, &mut scratch),
        Ok(Forked::Parent(pid)) => pid,
        Err(e) => {
            return Err(setup_err(
                Layer::UserNamespace,
                format!(
                    "clone with new user/mount/pid/net/ipc/uts/cgroup namespaces failed: {e} \
                     (are unprivileged user namespaces enabled? see \
                     /proc/sys/kernel/unprivileged_userns_clone, user.max_user_namespaces and, on \
                     Ubuntu, kernel.apparmor_restrict_unprivileged_userns)"
                ),
            )
            .into());
        }
    };
    drop(child_ctl);
    // From here on, dropping `live` kills and reaps init.
    let mut live = Live {
        pid,
        ctl,
        listener: None,
        dead: None,
        _cgroup: cgroup,
    };

    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    if let Err(detail) = idmap::write_maps(pid, uid, gid) {
        return Err(setup_err(Layer::IdMapping, detail).into());
    }
    // Into the cgroup before init is released: everything it starts inherits it.
    if live._cgroup.is_none() {
        live._cgroup = prepared
            .cgroup
            .attach(pid, prepared.pooling)
            .map_err(|d| setup_err(Layer::Rlimits, format!("cgroup: {d}")))?;
    }
    if let Err(e) = control::send(live.ctl.as_raw_fd(), &[Op::Go as u8], &[]) {
        let e = io::Error::from_raw_os_error(e);
        return Err(setup_err(
            Layer::UserNamespace,
            format!("waking the sandbox init: {e}"),
        )
        .into());
    }
    if !wait_readable(&live.ctl, START_TIMEOUT)? {
        return Err(SandboxError::Io(io::Error::other(format!(
            "the sandbox init did not finish setting up within {START_TIMEOUT:?}; it was killed"
        )))
        .into());
    }
    match control::recv_reply(&live.ctl) {
        Ok(Some((Reply::Ready, listener))) => {
            live.listener = listener;
            Ok(live)
        }
        Ok(Some((Reply::Failed(report), _))) => Err(StartError::Step(report)),
        Ok(Some((Reply::Status { .. } | Reply::Started, _))) | Err(_) | Ok(None) => {
            let status = live.kill_and_reap();
            Err(SandboxError::Io(io::Error::other(format!(
                "the sandbox init ended during setup without reporting why (wait status \
                 {status:?})"
            )))
            .into())
        }
    }
}

impl Live {
    /// The egress listener created at start, once.
    pub(crate) fn take_listener(&mut self) -> Option<OwnedFd> {
        self.listener.take()
    }

    fn kill_and_reap(&mut self) -> Option<libc::c_int> {
        if self.pid <= 0 {
            return None;
        }
        kill(self.pid);
        let status = reap(self.pid);
        self.pid = 0;
        status
    }

    /// Kill init: the instance can no longer run commands, for `reason`.
    fn die(&mut self, reason: String) {
        self.kill_and_reap();
        self.dead.get_or_insert(reason);
    }

    /// Run `cmd` in this sandbox.
    pub(crate) fn exec(
        &mut self,
        cmd: &CommandPlan,
        req: &ExecRequest,
    ) -> Result<Outcome, SandboxError> {
        if let Some(reason) = &self.dead {
            return Err(SandboxError::Io(io::Error::other(format!(
                "this sandbox instance is no longer usable ({reason}); start a new one"
            ))));
        }
        let msg = control::encode_exec(cmd)?;
        let started = Instant::now();
        // None: a timeout too large to represent, i.e. no deadline.
        let deadline = started.checked_add(req.timeout);
        let (stdin_r, stdin_w) = pipe()?;
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let fds = [&stdin_r, &stdout_w, &stderr_w].map(AsRawFd::as_raw_fd);
        if let Err(e) = control::send(self.ctl.as_raw_fd(), &msg, &fds) {
            let e = io::Error::from_raw_os_error(e);
            self.die(format!("sending a request to the sandbox init failed: {e}"));
            return Err(SandboxError::Io(io::Error::other(format!(
                "sending the command to the sandbox init failed: {e}; the instance is closed, \
                 start a new one"
            ))));
        }
        // Keep only the parent's ends: the command's EOF is its last holder going away.
        drop((stdin_r, stdout_w, stderr_w));

        let result = self.io_loop(deadline, req, stdin_w, stdout_r, stderr_r);
        let (status, stdout, stderr, report) = match result {
            Ok(r) => r,
            Err(e) => {
                // Never leave a command running that we no longer watch.
                self.die(format!("{e}"));
                return Err(e);
            }
        };
        let status = match status {
            Some(s) => s,
            None if report.is_some() => ExitStatus::Exited(127),
            None => {
                let reason = self
                    .dead
                    .clone()
                    .unwrap_or_else(|| "init ended without reporting the command's status".into());
                self.die(reason.clone());
                return Err(SandboxError::Io(io::Error::other(format!(
                    "the sandbox lost the command's status: {reason}; the instance is closed, \
                     start a new one"
                ))));
            }
        };
        Ok(Outcome {
            output: ExecOutput {
                status,
                stdout: stdout.buf,
                stderr: stderr.buf,
                stdout_dropped: stdout.dropped,
                stderr_dropped: stderr.dropped,
                duration: started.elapsed(),
            },
            report,
        })
    }
}

/// The caller's ends of a spawned process's pipes.
pub(crate) struct SpawnedIo {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Live {
    /// Start `cmd` as a long-running process: returns once it passed `execve` (or with the
    /// report of the step that stopped it), leaving its pipes to the caller. The instance
    /// then serves only this process: its status comes from [`Live::wait_status`].
    pub(crate) fn spawn(
        &mut self,
        cmd: &CommandPlan,
    ) -> Result<Result<SpawnedIo, Report>, SandboxError> {
        if let Some(reason) = &self.dead {
            return Err(SandboxError::Io(io::Error::other(format!(
                "this sandbox instance is no longer usable ({reason}); start a new one"
            ))));
        }
        let msg = control::encode_request(cmd, Op::Spawn)?;
        let (stdin_r, stdin_w) = pipe()?;
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let fds = [&stdin_r, &stdout_w, &stderr_w].map(AsRawFd::as_raw_fd);
        if let Err(e) = control::send(self.ctl.as_raw_fd(), &msg, &fds) {
            let e = io::Error::from_raw_os_error(e);
            self.die(format!("sending a request to the sandbox init failed: {e}"));
            return Err(SandboxError::Io(io::Error::other(format!(
                "sending the command to the sandbox init failed: {e}"
            ))));
        }
        drop((stdin_r, stdout_w, stderr_w));
        // The command's setup before `execve` is short; a stuck init is killed.
        if !wait_readable(&self.ctl, START_TIMEOUT)? {
            self.die("init did not start the command".into());
            return Err(SandboxError::Io(io::Error::other(format!(
                "the sandbox did not start the command within {START_TIMEOUT:?}; it was killed"
            ))));
        }
        match control::recv_reply(&self.ctl) {
            Ok(Some((Reply::Started, _))) => Ok(Ok(SpawnedIo {
                stdin: stdin_w,
                stdout: stdout_r,
                stderr: stderr_r,
            })),
            Ok(Some((Reply::Failed(report), _))) => Ok(Err(report)),
            other => {
                let why = match other {
                    Err(e) => format!(
                        "reading init's reply failed: {}",
                        io::Error::from_raw_os_error(e)
                    ),
                    Ok(None) => "init exited".to_owned(),
                    Ok(Some(_)) => "init answered out of protocol".to_owned(),
                };
                self.die(why.clone());
                Err(SandboxError::Io(io::Error::other(format!(
                    "the sandbox could not start the command: {why}"
                ))))
            }
        }
    }

    /// Wait up to `timeout` for the spawned process's status (init sends it once the
    /// process exited and everything else in the sandbox is gone). `None`: still running.
    pub(crate) fn wait_status(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>, SandboxError> {
        if let Some(reason) = &self.dead {
            return Err(SandboxError::Io(io::Error::other(format!(
                "the sandbox lost the process ({reason})"
            ))));
        }
        if !wait_readable(&self.ctl, timeout)? {
            return Ok(None);
        }
        match control::recv_reply(&self.ctl) {
            Ok(Some((Reply::Status { status, .. }, _))) => Ok(Some(decode_status(status))),
            other => {
                let why = match other {
                    Err(e) => format!(
                        "reading init's reply failed: {}",
                        io::Error::from_raw_os_error(e)
                    ),
                    Ok(None) => "init exited".to_owned(),
                    Ok(Some(_)) => "init answered out of protocol".to_owned(),
                };
                self.die(why.clone());
                Err(SandboxError::Io(io::Error::other(format!(
                    "the sandbox lost the process's status: {why}"
                ))))
            }
        }
    }

    /// SIGKILL init and reap it: every process in the sandbox is gone when this returns.
    pub(crate) fn kill_now(&mut self) {
        self.die("the process was killed".into());
    }
}

impl Drop for Live {
    /// SIGKILLs init here, on the caller's thread; reaping it (which waits for the kernel
    /// to tear the namespaces down) and removing the cgroup are left to the background
    /// worker, off the caller's critical path.
    fn drop(&mut self) {
        let pid = std::mem::replace(&mut self.pid, 0);
        if pid > 0 {
            kill(pid);
        }
        super::worker::dispose(pid, self._cgroup.take());
    }
}

/// One captured output stream.
struct Capture {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    dropped: u64,
    limit: usize,
}

impl Capture {
    fn new(fd: OwnedFd, limit: usize) -> Capture {
        Capture {
            fd: Some(fd),
            buf: Vec::new(),
            dropped: 0,
            limit,
        }
    }

    /// Read what is available; close on EOF or error.
    fn pump(&mut self, scratch: &mut [u8]) {
        let Some(fd) = &self.fd else { return };
        match rustix::io::read(fd, &mut *scratch) {
            Ok(0) => self.fd = None,
            Ok(n) => {
                let chunk = scratch.get(..n).unwrap_or(&[]);
                let room = self.limit.saturating_sub(self.buf.len()).min(chunk.len());
                self.buf.extend_from_slice(chunk.get(..room).unwrap_or(&[]));
                self.dropped += (chunk.len() - room) as u64;
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => self.fd = None,
        }
    }
}

type Collected = (Option<ExitStatus>, Capture, Capture, Option<Report>);

impl Live {
    fn io_loop(
        &mut self,
        deadline: Option<Instant>,
        req: &ExecRequest,
        stdin_w: OwnedFd,
        stdout_r: OwnedFd,
        stderr_r: OwnedFd,
    ) -> Result<Collected, SandboxError> {
        for fd in [&stdin_w, &stdout_r, &stderr_r] {
            set_nonblocking(fd)?;
        }
        // Closing our end at once when there is nothing to feed: the command reads EOF.
        let mut stdin = if req.stdin.is_empty() {
            drop(stdin_w);
            None
        } else {
            Some(stdin_w)
        };
        let mut stdin_off = 0usize;
        let mut out = Capture::new(stdout_r, req.output_limit);
        let mut err = Capture::new(stderr_r, req.output_limit);
        let mut reply: Option<Reply> = None;
        let mut killed_at: Option<Instant> = None;
        let mut replied_at: Option<Instant> = None;
        let mut scratch = vec![0u8; 64 * 1024];

        loop {
            if reply.is_some() && out.fd.is_none() && err.fd.is_none() {
                break;
            }
            let now = Instant::now();
            let wait = if let Some(t) = replied_at.or(killed_at) {
                let left = (t + KILL_GRACE).saturating_duration_since(now);
                if left.is_zero() {
                    if reply.is_none() {
                        self.die("init did not kill the command at the deadline".into());
                    }
                    break;
                }
                left
            } else {
                let left = deadline.map_or(Duration::from_secs(3600), |d| {
                    d.saturating_duration_since(now)
                });
                if left.is_zero() {
                    if control::send(self.ctl.as_raw_fd(), &[Op::Kill as u8], &[]).is_err() {
                        self.die("init could not be told to kill the command".into());
                        break;
                    }
                    killed_at = Some(now);
                    stdin = None;
                    continue;
                }
                left
            };
            let ctl_fd = (reply.is_none() && self.dead.is_none()).then(|| self.ctl.as_raw_fd());
            let mut fds = [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; 4];
            for (slot, (fd, events)) in fds.iter_mut().zip([
                (stdin.as_ref().map(AsRawFd::as_raw_fd), libc::POLLOUT),
                (out.fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN),
                (err.fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN),
                (ctl_fd, libc::POLLIN),
            ]) {
                slot.fd = fd.unwrap_or(-1);
                slot.events = events;
            }
            let timeout_ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: `fds` is a live array of 4 pollfd structs; negative fds are ignored.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(SandboxError::Io(e));
            }
            let ready = |i: usize| fds.get(i).is_some_and(|f| f.revents != 0);
            if ready(0)
                && let Some(fd) = &stdin
            {
                let rest = req.stdin.get(stdin_off..).unwrap_or(&[]);
                match rustix::io::write(fd, rest) {
                    Ok(n) => stdin_off += n,
                    Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                    Err(_) => stdin_off = req.stdin.len(),
                }
                if stdin_off >= req.stdin.len() {
                    stdin = None;
                }
            }
            if ready(1) {
                out.pump(&mut scratch);
            }
            if ready(2) {
                err.pump(&mut scratch);
            }
            if ready(3) {
                match control::recv_reply(&self.ctl) {
                    Ok(Some((r, _))) => {
                        reply = Some(r);
                        replied_at = Some(Instant::now());
                        stdin = None;
                    }
                    Ok(None) => {
                        self.die("init exited".into());
                        break;
                    }
                    Err(e) => {
                        let e = io::Error::from_raw_os_error(e);
                        self.die(format!("reading init's reply failed: {e}"));
                        break;
                    }
                }
            }
        }

        let (exit, report) = match reply {
            Some(Reply::Failed(r)) => (None, Some(r)),
            _ if killed_at.is_some() => (Some(ExitStatus::TimedOut), None),
            Some(Reply::Status { status, .. }) => (Some(decode_status(status)), None),
            Some(Reply::Ready | Reply::Started) | None => (None, None),
        };
        Ok((exit, out, err, report))
    }
}

fn decode_status(status: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    }
}
