//! The sandbox's pid 1 and the command it starts, both running between `clone` and `execve`.
//!
//! Guarantees: every setup step runs before the command and any failure is reported to the
//! parent (stage + errno) and stops everything: the command never runs after a failed step.
//! Init forks the command as pid 2, reaps every process, and when the command exits sends
//! its wait status to the parent and exits, which makes the kernel kill whatever is left
//! in the pid namespace. If the parent dies, init gets SIGKILL (parent-death signal).
//! Init starts a new session, so the sandbox has no controlling terminal.
//!
//! Nothing here allocates or takes a lock: the parent is multi-threaded and only this
//! thread was copied. Everything used is prepared by the parent before `clone`.

use std::os::fd::RawFd;

use super::command::CommandPlan;
use super::mounts::MountPlan;
use super::namespaces::{Forked, fork_into};
use super::report::{Report, Stage, errno};
use super::rlimits::Rlimits;
use super::{caps, idmap, net};

/// The child's ends of the pipes; init closes every other descriptor it inherited.
#[derive(Clone, Copy)]
pub(crate) struct ChildFds {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub report: RawFd,
    pub status: RawFd,
    pub sync: RawFd,
}

/// Everything the child needs, borrowed from memory prepared before `clone`.
pub(crate) struct ChildContext<'a> {
    pub mounts: &'a MountPlan,
    pub command: &'a CommandPlan,
    pub rlimits: &'a Rlimits,
    pub hostname: &'a [u8],
    pub last_cap: u32,
    pub fds: ChildFds,
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor number we own in this (copied) process.
    unsafe { libc::close(fd) };
}

fn fail(fd: RawFd, stage: Stage, index: u32, errno: i32) -> ! {
    Report {
        stage,
        index,
        errno,
    }
    .send(fd);
    exit(1)
}

/// Default signal dispositions and an empty mask. Handlers survive `clone` (only `execve`
/// resets them): the parent's handlers (e.g. tokio's SIGCHLD) must not run in init, and an
/// ignored SIGPIPE must not be inherited by the command.
fn reset_signals() {
    // SAFETY: setting dispositions to SIG_DFL and clearing this thread's mask; an invalid
    // or reserved signal number only makes the call fail, which is ignored on purpose.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Close every inherited descriptor except `keep`. Init lives as long as the command, so
/// without this it would hold copies of whatever the multi-threaded parent had open at
/// `clone` time: other sandboxes' pipes (delaying their EOF), files being written (ETXTBSY).
fn close_all_but(keep: &[RawFd; 6]) {
    let mut sorted = *keep;
    sorted.sort_unstable(); // in place on the stack: no allocation
    let mut next: libc::c_uint = 0;
    for fd in sorted {
        let Ok(fd) = libc::c_uint::try_from(fd) else {
            continue;
        };
        if fd > next {
            // SAFETY: close_range with integer arguments; closes only descriptors we own.
            unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0 as libc::c_uint) };
        }
        next = next.max(fd.saturating_add(1));
    }
    // SAFETY: as above.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            next,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
}

/// Entry point of the cloned child (pid 1 of the new pid namespace).
pub(crate) fn run(ctx: &ChildContext<'_>) -> ! {
    let fds = ctx.fds;
    close_all_but(&[
        fds.stdin, fds.stdout, fds.stderr, fds.report, fds.status, fds.sync,
    ]);
    reset_signals();
    // A new session without a controlling terminal: otherwise the command could open the
    // user's terminal through /dev/tty and inject input with TIOCSTI (CVE-2017-5226).
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        fail(fds.report, Stage::InitPrctl, 2, errno());
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
    {
        fail(fds.report, Stage::InitPrctl, 0, errno());
    }
    // Wait until the parent has written our uid/gid maps.
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reading at most one byte into a live one-byte buffer.
        let n = unsafe { libc::read(fds.sync, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        exit(1); // the parent gave up; it reports why
    }
    close(fds.sync);
    // Init keeps full capabilities in the sandbox's user namespace; the command must never
    // reach it through ptrace or /proc/1 (the maps are written, so the parent no longer
    // needs /proc/PID either). The command's own exec makes it dumpable again.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) } != 0 {
        fail(fds.report, Stage::InitPrctl, 1, errno());
    }

    // SAFETY: the name is a live buffer of the given length.
    if unsafe { libc::sethostname(ctx.hostname.as_ptr().cast(), ctx.hostname.len()) } != 0 {
        fail(fds.report, Stage::Hostname, 0, errno());
    }
    if let Err(e) = net::bring_up_loopback() {
        fail(fds.report, Stage::Loopback, 0, e);
    }
    if let Err((i, e)) = ctx.mounts.apply() {
        fail(fds.report, Stage::Mount, i, e);
    }

    let pid = match fork_into(0) {
        Ok(Forked::Child) => command(ctx),
        Ok(Forked::Parent(pid)) => pid,
        Err(e) => fail(fds.report, Stage::Fork, 0, e.raw_os_error().unwrap_or(0)),
    };
    for fd in [fds.stdin, fds.stdout, fds.stderr, fds.report] {
        close(fd);
    }
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer for the call.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == pid {
            let bytes = status.to_ne_bytes();
            // SAFETY: writing a live 4-byte stack buffer.
            unsafe { libc::write(fds.status, bytes.as_ptr().cast(), bytes.len()) };
            exit(0);
        }
        if reaped < 0 && errno() != libc::EINTR {
            exit(1);
        }
    }
}

/// Duplicate `fd` to a number >= 3, close-on-exec, so that installing stdio cannot clobber
/// it even when the parent runs with 0, 1 or 2 closed (a daemon).
fn lift(fd: RawFd) -> Result<RawFd, i32> {
    // SAFETY: fcntl on a descriptor number with integer arguments only.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 { Err(errno()) } else { Ok(new) }
}

/// The command's process (pid 2): stdio, cwd, limits, privileges, then `execve`.
fn command(ctx: &ChildContext<'_>) -> ! {
    let fds = ctx.fds;
    let report = match lift(fds.report) {
        Ok(fd) => fd,
        Err(e) => fail(fds.report, Stage::Stdio, 3, e),
    };
    // Lift all three before installing any: installing stdin on 0 must not clobber a
    // stdout pipe that happened to be descriptor 0.
    let mut lifted = [0 as RawFd; 3];
    for (slot, (fd, target)) in
        lifted
            .iter_mut()
            .zip([(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)])
    {
        *slot = match lift(fd) {
            Ok(fd) => fd,
            Err(e) => fail(report, Stage::Stdio, target, e),
        };
    }
    for (target, fd) in (0..).zip(lifted) {
        // Lifted copies are all >= 3 and distinct, so this never overwrites one of them.
        // SAFETY: dup2 on descriptor numbers; the result is checked.
        if unsafe { libc::dup2(fd, target) } < 0 {
            fail(report, Stage::Stdio, target as u32, errno());
        }
    }
    // SAFETY: `cwd` is NUL-terminated and owned by the prepared command.
    if unsafe { libc::chdir(ctx.command.cwd.as_ptr()) } != 0 {
        fail(report, Stage::Chdir, 0, errno());
    }
    if let Err((i, e)) = ctx.rlimits.apply() {
        fail(report, Stage::Rlimit, i, e);
    }
    // Nothing the parent's other threads opened may leak into the command.
    // SAFETY: close_range with integer arguments only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        fail(report, Stage::CloseFds, 0, errno());
    }
    if let Err(e) = idmap::become_sandbox_user() {
        fail(report, Stage::SetIds, 0, e);
    }
    if let Err((cap, e)) = caps::drop_bounding_set(ctx.last_cap) {
        fail(report, Stage::CapBound, cap, e);
    }
    if let Err(e) = caps::clear_ambient() {
        fail(report, Stage::Ambient, 0, e);
    }
    if let Err(e) = caps::set_no_new_privs() {
        fail(report, Stage::NoNewPrivs, 0, e);
    }
    if let Err(e) = caps::clear_all() {
        fail(report, Stage::Capset, 0, e);
    }
    let e = ctx.command.exec();
    Report {
        stage: Stage::Exec,
        index: 0,
        errno: e,
    }
    .send(report);
    exit(127)
}
