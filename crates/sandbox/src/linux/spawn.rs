//! Parent side of one sandboxed run: pipes, `clone`, id maps, I/O and the deadline.
//!
//! Guarantees: stdin is fed and closed, stdout and stderr are read concurrently (one `poll`
//! loop, no threads) keeping at most `output_limit` bytes each and counting the rest; at
//! the deadline the sandbox's init is SIGKILLed, which kills the whole process tree, and
//! the result is [`ExitStatus::TimedOut`]. The child is always reaped before returning.
//! Does not bound the time spent draining pipes after a kill beyond a short grace period.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::pipe::{PipeFlags, pipe_with};

use super::command::CommandPlan;
use super::init::{self, ChildContext, ChildFds};
use super::namespaces::{self, Forked};
use super::report::{REPORT_LEN, Report};
use super::{Prepared, idmap};
use crate::{ExecOutput, ExecRequest, ExitStatus, Layer, SandboxError};

/// How long to keep draining pipes after killing init before giving up on them.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// What came back from the child, before interpretation.
pub(crate) struct Outcome {
    pub output: ExecOutput,
    pub report: Option<Report>,
}

struct Pipes {
    stdin: (OwnedFd, OwnedFd),
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    report: (OwnedFd, OwnedFd),
    status: (OwnedFd, OwnedFd),
    sync: (OwnedFd, OwnedFd),
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

fn reap(pid: libc::pid_t) -> Option<libc::c_int> {
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

/// Run `cmd` in a fresh sandbox described by `prepared`.
pub(crate) fn run(
    prepared: &Prepared,
    cmd: &CommandPlan,
    req: &ExecRequest,
) -> Result<Outcome, SandboxError> {
    let started = Instant::now();
    // None: a timeout too large to represent, i.e. no deadline.
    let deadline = started.checked_add(req.timeout);
    let p = Pipes {
        stdin: pipe()?,
        stdout: pipe()?,
        stderr: pipe()?,
        report: pipe()?,
        status: pipe()?,
        sync: pipe()?,
    };
    let ctx = ChildContext {
        mounts: &prepared.mounts,
        command: cmd,
        rlimits: &prepared.rlimits,
        hostname: super::HOSTNAME.as_bytes(),
        last_cap: prepared.last_cap,
        fds: ChildFds {
            stdin: p.stdin.0.as_raw_fd(),
            stdout: p.stdout.1.as_raw_fd(),
            stderr: p.stderr.1.as_raw_fd(),
            report: p.report.1.as_raw_fd(),
            status: p.status.1.as_raw_fd(),
            sync: p.sync.0.as_raw_fd(),
        },
    };
    let pid = match namespaces::fork_into(namespaces::NAMESPACES) {
        Ok(Forked::Child) => init::run(&ctx),
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
            ));
        }
    };
    // Keep only the parent's ends.
    let Pipes {
        stdin,
        stdout,
        stderr,
        report,
        status,
        sync,
    } = p;
    let (stdin_w, stdout_r, stderr_r, report_r, status_r, sync_w) =
        (stdin.1, stdout.0, stderr.0, report.0, status.0, sync.1);
    drop((stdin.0, stdout.1, stderr.1, report.1, status.1, sync.0));

    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    if let Err(detail) = idmap::write_maps(pid, uid, gid) {
        kill(pid);
        reap(pid);
        return Err(setup_err(Layer::IdMapping, detail));
    }
    if let Err(e) = rustix::io::write(&sync_w, &[1]) {
        kill(pid);
        reap(pid);
        return Err(setup_err(
            Layer::UserNamespace,
            format!("waking the sandbox init: {e}"),
        ));
    }
    drop(sync_w);

    let result = io_loop(
        pid, deadline, req, stdin_w, stdout_r, stderr_r, report_r, status_r,
    );
    if result.is_err() {
        kill(pid); // never wait for a command we no longer watch
    }
    let wait = reap(pid);
    let (status, stdout, stderr, report) = result?;
    let status = match status {
        Some(s) => s,
        None if report.is_some() => ExitStatus::Exited(127),
        None => {
            return Err(SandboxError::Io(io::Error::other(format!(
                "the sandbox init ended without reporting the command's status (init wait \
                 status {wait:?})"
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

/// A fixed-size record read from a pipe until it is complete or the pipe closes.
struct Record<const N: usize> {
    fd: Option<OwnedFd>,
    bytes: [u8; N],
    got: usize,
}

impl<const N: usize> Record<N> {
    fn new(fd: OwnedFd) -> Self {
        Record {
            fd: Some(fd),
            bytes: [0; N],
            got: 0,
        }
    }

    fn pump(&mut self) {
        let Some(fd) = &self.fd else { return };
        let rest = self.bytes.get_mut(self.got..).unwrap_or(&mut []);
        match rustix::io::read(fd, rest) {
            Ok(0) => self.fd = None,
            Ok(n) => {
                self.got += n;
                if self.got == N {
                    self.fd = None;
                }
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => self.fd = None,
        }
    }

    fn value(&self) -> Option<[u8; N]> {
        (self.got == N).then_some(self.bytes)
    }
}

type Collected = (Option<ExitStatus>, Capture, Capture, Option<Report>);

#[allow(clippy::too_many_arguments)]
fn io_loop(
    pid: libc::pid_t,
    deadline: Option<Instant>,
    req: &ExecRequest,
    stdin_w: OwnedFd,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    report_r: OwnedFd,
    status_r: OwnedFd,
) -> Result<Collected, SandboxError> {
    for fd in [&stdin_w, &stdout_r, &stderr_r, &report_r, &status_r] {
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
    let mut report = Record::<REPORT_LEN>::new(report_r);
    let mut status = Record::<4>::new(status_r);
    let mut killed_at: Option<Instant> = None;
    let mut scratch = vec![0u8; 64 * 1024];

    loop {
        if out.fd.is_none() && err.fd.is_none() && report.fd.is_none() && status.fd.is_none() {
            break;
        }
        if report.value().is_some() && killed_at.is_none() {
            // A setup step failed: nothing useful can follow.
            kill(pid);
            killed_at = Some(Instant::now());
        }
        let now = Instant::now();
        let wait = match killed_at {
            Some(t) => {
                let left = (t + KILL_GRACE).saturating_duration_since(now);
                if left.is_zero() {
                    break;
                }
                left
            }
            None => {
                let left = deadline.map_or(Duration::from_secs(3600), |d| {
                    d.saturating_duration_since(now)
                });
                if left.is_zero() {
                    kill(pid);
                    killed_at = Some(now);
                    stdin = None;
                    continue;
                }
                left
            }
        };
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(5);
        let mut push = |fd: Option<RawFd>, events: libc::c_short| {
            fds.push(libc::pollfd {
                fd: fd.unwrap_or(-1),
                events,
                revents: 0,
            });
        };
        push(stdin.as_ref().map(AsRawFd::as_raw_fd), libc::POLLOUT);
        push(out.fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        push(err.fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        push(report.fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        push(status.fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        let timeout_ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a live array of fds.len() pollfd structs; negative fds are ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            kill(pid);
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
            report.pump();
        }
        if ready(4) {
            status.pump();
        }
    }

    let report = report.value().and_then(|b| Report::decode(&b));
    let exit = if killed_at.is_some() && report.is_none() {
        Some(ExitStatus::TimedOut)
    } else {
        status
            .value()
            .map(|b| decode_status(libc::c_int::from_ne_bytes(b)))
    };
    Ok((exit, out, err, report))
}

fn decode_status(status: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    }
}
