//! Supervising one host child process: stdin fed, stdout/stderr captured with a cap, a
//! wall-clock deadline, and the child's whole process group killed when it ends.
//!
//! Guarantees: the child runs in its own process group (pgid = its pid); at the deadline
//! and when the child exits, `SIGKILL` goes to that group while the child is still an
//! unreaped zombie, so the pgid cannot have been reused by an unrelated process. At most
//! `output_limit` bytes of each stream are kept; the rest is read and counted.
//!
//! Not guaranteed: a process that leaves the group (`setsid`, `setpgid`) escapes the
//! kill. If such a process keeps the output pipes open, capture stops after a short
//! grace period and what was read so far is returned.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{ExecOutput, ExitStatus, SandboxError};

/// How long output is still collected after the process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Interval between checks of the child's state.
const POLL: Duration = Duration::from_millis(5);

/// One stream's capture: the first `limit` bytes, and a count of the rest.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    dropped: u64,
}

/// Why [`run`] could not start the child.
pub(crate) struct SpawnFailure {
    pub error: std::io::Error,
}

/// Runs `cmd` (stdio is replaced by pipes) to completion or to `timeout`.
pub(crate) fn run(
    mut cmd: Command,
    stdin: &[u8],
    timeout: Duration,
    output_limit: usize,
) -> Result<Result<ExecOutput, SpawnFailure>, SandboxError> {
    let started = Instant::now();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(error) => return Ok(Err(SpawnFailure { error })),
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    let mut captures = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ] {
        let cap = Arc::new(Mutex::new(Capture::default()));
        if let Some(s) = stream {
            readers += 1;
            spawn_reader(s, Arc::clone(&cap), output_limit, done_tx.clone());
        }
        captures.push(cap);
    }
    drop(done_tx);
    if let Some(mut pipe) = child.stdin.take() {
        let bytes = stdin.to_vec();
        // A command that never reads stdin must not block us: write from a thread, and
        // ignore EPIPE (the command closed its end).
        if !bytes.is_empty() {
            thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
    }

    // A deadline too far to represent (`Duration::MAX`) is no deadline.
    let deadline = started.checked_add(timeout);
    let timed_out = loop {
        if exited_unreaped(&child)? {
            break false;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break true;
        }
        thread::sleep(POLL);
    };
    // The leader is alive or a zombie we have not reaped: -pid still names its group.
    kill_group(&child);
    let raw = child.wait()?;

    let drain_until = Instant::now() + DRAIN_GRACE;
    for _ in 0..readers {
        let left = drain_until.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let take = |i: usize| {
        let mut c = captures[i].lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut c.kept), c.dropped)
    };
    let (stdout, stdout_dropped) = take(0);
    let (stderr, stderr_dropped) = take(1);
    let status = if timed_out {
        ExitStatus::TimedOut
    } else if let Some(code) = raw.code() {
        ExitStatus::Exited(code)
    } else {
        ExitStatus::Signaled(raw.signal().unwrap_or(0))
    };
    Ok(Ok(ExecOutput {
        status,
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
        duration: started.elapsed(),
    }))
}

fn spawn_reader(
    mut stream: Box<dyn Read + Send>,
    cap: Arc<Mutex<Capture>>,
    limit: usize,
    done: mpsc::Sender<()>,
) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut c = cap.lock().unwrap_or_else(|p| p.into_inner());
                    let room = limit.saturating_sub(c.kept.len()).min(n);
                    c.kept.extend_from_slice(&buf[..room]);
                    c.dropped += (n - room) as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
}

/// Whether the child has exited, without reaping it (so its pid stays reserved).
pub(crate) fn exited_unreaped(child: &Child) -> Result<bool, SandboxError> {
    let pid = child.id() as libc::id_t;
    // SAFETY: a zeroed siginfo_t is a valid value for waitid to overwrite.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child
        // reapable by `Child::wait`, so std's bookkeeping stays correct.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: waitid succeeded, so `info` holds a SIGCHLD siginfo (or zeroes).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(SandboxError::Io(err));
        }
    }
}

fn kill_group(child: &Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain syscall; the target group is the child's own (it is unreaped, so
    // its pid, which is the pgid, cannot name another group). ESRCH is harmless.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}
