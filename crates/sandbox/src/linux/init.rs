//! The sandbox's pid 1 and the commands it starts, all running between `clone` and `execve`.
//!
//! Guarantees: every setup step runs before the first command and any failure is reported
//! to the parent (stage + errno) over the control channel and stops everything: no command
//! ever runs after a failed step. Init then serves exec requests one at a time (see
//! [`control`]): it forks the command as a child, waits for it (or for the parent's
//! "kill" at the deadline), then SIGKILLs every other process in the pid namespace
//! (`kill(-1)` from pid 1 spares only init) and reaps them all before replying with the
//! command's wait status, so no process of one call survives into the next. A spawn request
//! (a long-running process) is the same, except that init also answers "started" as soon
//! as the command passed `execve`. When the
//! parent closes the channel (the instance is dropped, or the parent died) init kills
//! everything and exits, which ends the namespaces. Init starts a new session, so the
//! sandbox has no controlling terminal.
//!
//! Nothing here allocates or takes a lock: the parent is multi-threaded and only this
//! thread was copied. Everything used is prepared by the parent before `clone` (including
//! init's fixed-size request buffers and the command's clone stack, see [`Scratch`]).

use std::cell::Cell;
use std::os::fd::RawFd;

use super::control::{self, EXEC_FDS, MAX_MESSAGE, Op, Parsed, Reply};
use super::mounts::MountPlan;
use super::report::{Report, Stage, errno};
use super::rlimits::Rlimits;
use super::{caps, idmap, landlock, net, overlay, seccomp};

/// Everything init needs, borrowed from memory prepared before `clone`.
pub(crate) struct ChildContext<'a> {
    pub mounts: &'a MountPlan,
    pub rlimits: &'a Rlimits,
    pub hostname: &'a [u8],
    pub last_cap: u32,
    /// Port of the egress listener to create on the sandbox's 127.0.0.1, if any.
    pub egress_port: Option<u16>,
    /// Init's end of the control socketpair; init closes every other inherited descriptor.
    pub ctl: RawFd,
    /// Init was forked into a network namespace made in advance (by the armed thread, see
    /// `worker`) whose `lo` is already up: init does not touch it.
    pub net_ready: bool,
}

/// The descriptors received with one exec request.
#[derive(Clone, Copy)]
struct CommandFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
}

/// Where the command's process leaves the reason it stopped before `execve`: a cell in
/// init's memory, which it shares until then (CLONE_VM | CLONE_VFORK), read by init once
/// the clone returns. A successful `execve` leaves it empty.
#[derive(Clone, Copy)]
struct Sink<'a>(&'a Cell<Option<Report>>);

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor number we own in this (copied) process.
    unsafe { libc::close(fd) };
}

/// Report a failed init step on the control channel and exit.
fn fail(ctl: RawFd, stage: Stage, index: u32, errno: i32) -> ! {
    let reply = Reply::Failed(Report {
        stage,
        index,
        errno,
    });
    let _ = control::send(ctl, &reply.encode(), &[]);
    exit(1)
}

/// Record a failed step of the command's process for init and exit.
fn fail_command(sink: Sink<'_>, stage: Stage, index: u32, errno: i32) -> ! {
    sink.0.set(Some(Report {
        stage,
        index,
        errno,
    }));
    exit(127)
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
    }
    set_mask(&[]);
}

/// Set this thread's signal mask to exactly `blocked`.
fn set_mask(blocked: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data initialised by sigemptyset; the calls take a
    // live set and integer arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in blocked {
            libc::sigaddset(&mut set, *sig);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        set
    }
}

/// Close every inherited descriptor except `keep`. Init lives as long as the instance, so
/// without this it would hold copies of whatever the multi-threaded parent had open at
/// `clone` time: other sandboxes' pipes (delaying their EOF), files being written (ETXTBSY).
fn close_all_but(keep: RawFd) {
    if let Ok(fd) = libc::c_uint::try_from(keep) {
        if fd > 0 {
            // SAFETY: close_range with integer arguments; closes only descriptors we own.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    0 as libc::c_uint,
                    fd - 1,
                    0 as libc::c_uint,
                )
            };
        }
        // SAFETY: as above.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                fd.saturating_add(1),
                libc::c_uint::MAX,
                0 as libc::c_uint,
            )
        };
    }
}

/// Init's working memory, allocated by the parent before `clone` (init gets its own copy):
/// init runs on a copy of the caller's thread stack, which may have little room left, and
/// must not allocate.
pub(crate) struct Scratch {
    /// One received request.
    buf: [u8; MAX_MESSAGE],
    /// The parsed request, pointing into `buf`.
    parsed: Parsed,
    /// Stack of the command's process between `clone` and `execve`.
    stack: CommandStack,
}

#[repr(C, align(16))]
struct CommandStack([u8; COMMAND_STACK]);

impl Scratch {
    /// Zeroed, on the heap (never built on the caller's stack).
    pub(crate) fn new() -> Box<Scratch> {
        // SAFETY: all-zero bytes are a valid Scratch: byte arrays, null pointers, zero
        // counts.
        unsafe { Box::<Scratch>::new_zeroed().assume_init() }
    }
}

/// Entry point of the cloned child (pid 1 of the new pid namespace).
pub(crate) fn run(ctx: &ChildContext<'_>, scratch: &mut Scratch) -> ! {
    let ctl = ctx.ctl;
    close_all_but(ctl);
    reset_signals();
    // A new session without a controlling terminal: otherwise the command could open the
    // user's terminal through /dev/tty and inject input with TIOCSTI (CVE-2017-5226).
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        fail(ctl, Stage::InitPrctl, 2, errno());
    }
    // No parent-death signal: it fires when the *thread* that cloned init exits (a tokio
    // blocking thread, for instance), not the process. Parent death closes the control
    // channel instead, and init ends everything when it reads EOF there.
    //
    // Wait until the parent has written our uid/gid maps.
    let mut go = [0u8; 1];
    match control::recv(ctl, &mut go, &mut []) {
        Ok(1) if go[0] == Op::Go as u8 => {}
        _ => exit(1), // the parent gave up; it reports why
    }
    // Init keeps full capabilities in the sandbox's user namespace; the command must never
    // reach it through ptrace or /proc/1 (the maps are written, so the parent no longer
    // needs /proc/PID either). The command's own exec makes it dumpable again.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) } != 0 {
        fail(ctl, Stage::InitPrctl, 1, errno());
    }

    // SAFETY: the name is a live buffer of the given length.
    if unsafe { libc::sethostname(ctx.hostname.as_ptr().cast(), ctx.hostname.len()) } != 0 {
        fail(ctl, Stage::Hostname, 0, errno());
    }
    if !ctx.net_ready
        && let Err(e) = net::bring_up_loopback()
    {
        fail(ctl, Stage::Loopback, 0, e);
    }
    if let Err((i, e)) = ctx.mounts.apply() {
        fail(ctl, Stage::Mount, i, e);
    }
    // Work every command would repeat, done once: the Landlock ruleset and the empty
    // bounding set. The command still applies both (restrict_self; its set is empty).
    // With the workspace overlay, the ruleset is built per command instead: its
    // /workspace rule must name that command's overlay (Landlock skips the mount points
    // beneath a mount, so a rule on the covered workspace bind would never match).
    if !ctx.mounts.overlay()
        && let Err((i, e)) = landlock::prepare(ctx.mounts.workspace_writable())
    {
        fail(ctl, Stage::Landlock, i, e);
    }
    if let Err((cap, e)) = caps::drop_bounding_set_for_commands(ctx.last_cap) {
        fail(ctl, Stage::CapBound, cap, e);
    }
    // The workspace overlay (mounted per command): fail here if it cannot be mounted at
    // all.
    if ctx.mounts.overlay() {
        if let Err(e) = overlay::mount() {
            fail(ctl, Stage::Overlay, 0, e);
        }
        unmount_or_exit();
    }
    let listener = match ctx.egress_port.map(net::egress_listener) {
        None => None,
        Some(Ok(fd)) => Some(fd),
        Some(Err((i, e))) => fail(ctl, Stage::Egress, i, e),
    };
    // SIGCHLD is read from a signalfd, so that one poll waits for both the command and the
    // parent's messages.
    let mask = set_mask(&[libc::SIGCHLD]);
    // SAFETY: `mask` is a live, initialised sigset.
    let sigfd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if sigfd < 0 {
        fail(ctl, Stage::InitPrctl, 3, errno());
    }
    if let Err(e) = seccomp::install_for_commands(ctx.mounts.overlay()) {
        fail(ctl, Stage::Seccomp, 0, e);
    }
    let ready = Reply::Ready.encode();
    let sent = match listener {
        Some(fd) => control::send(ctl, &ready, &[fd]),
        None => control::send(ctl, &ready, &[]),
    };
    if sent.is_err() {
        exit(1);
    }
    if let Some(fd) = listener {
        close(fd);
    }
    serve(ctx, sigfd, scratch)
}

/// Init's main loop: one exec request at a time, until the parent closes the channel.
fn serve(ctx: &ChildContext<'_>, sigfd: RawFd, scratch: &mut Scratch) -> ! {
    let ctl = ctx.ctl;
    let Scratch { buf, parsed, stack } = scratch;
    loop {
        let mut fds = [-1 as RawFd; EXEC_FDS];
        let n = match control::recv(ctl, buf, &mut fds) {
            Ok(0) => exit(0),
            Ok(n) => n,
            Err(libc::EMSGSIZE) => 0, // bad request: answered below
            Err(_) => exit(0),
        };
        let msg = buf.get(..n).unwrap_or(&[]);
        if msg.first() == Some(&(Op::Kill as u8)) {
            // A kill that crossed the previous command's status: nothing runs now.
            fds.into_iter().filter(|fd| *fd >= 0).for_each(close);
            continue;
        }
        let [stdin, stdout, stderr] = fds;
        let mut mounted = false;
        let reply = if fds.iter().any(|fd| *fd < 0) || parsed.parse(msg).is_none() {
            Reply::Failed(Report {
                stage: Stage::Request,
                index: 0,
                errno: libc::EPROTO,
            })
        } else {
            let cfds = CommandFds {
                stdin,
                stdout,
                stderr,
            };
            if ctx.mounts.overlay() {
                with_overlay(ctx, &mut mounted, || {
                    run_command(ctx, sigfd, msg, parsed, cfds, stack, &mut fds)
                })
            } else {
                run_command(ctx, sigfd, msg, parsed, cfds, stack, &mut fds)
            }
        };
        fds.into_iter().filter(|fd| *fd >= 0).for_each(close);
        // Every process of the command is gone: its changes are complete in upper. The
        // overlay goes before the answer, so the caller may change both layers at once.
        if mounted {
            unmount_or_exit();
        }
        if control::send(ctl, &reply.encode(), &[]).is_err() {
            kill_all(-1, &mut None);
            exit(0);
        }
    }
}

/// Remove the overlay of the command that just ended. If that fails, init exits without
/// answering (the caller gets an error, and the instance is closed): the caller must not
/// touch mounted layers, and no command may see another's overlay.
fn unmount_or_exit() {
    if overlay::unmount().is_err() {
        kill_all(-1, &mut None);
        exit(1);
    }
}

/// Run `command` with a new overlay at `/workspace` and a Landlock ruleset naming it
/// (released once the command ended). `mounted` is set when the overlay was mounted (the
/// caller unmounts it before answering). An overlay that cannot be mounted is reported
/// and nothing runs.
fn with_overlay(
    ctx: &ChildContext<'_>,
    mounted: &mut bool,
    command: impl FnOnce() -> Reply,
) -> Reply {
    let failed = |stage, index, errno| {
        Reply::Failed(Report {
            stage,
            index,
            errno,
        })
    };
    if let Err(errno) = overlay::mount() {
        // Nothing was mounted: unmounting would uncover the layers.
        return failed(Stage::Overlay, 1, errno);
    }
    *mounted = true;
    let reply = match landlock::prepare(ctx.mounts.workspace_writable()) {
        Err((i, errno)) => failed(Stage::Landlock, i, errno),
        Ok(()) => command(),
    };
    landlock::release();
    reply
}

/// Start the parsed request's command and wait until it and everything it started are
/// gone. `fds` (init's copies of its pipes) are closed once the command holds them.
fn run_command(
    ctx: &ChildContext<'_>,
    sigfd: RawFd,
    msg: &[u8],
    parsed: &Parsed,
    cfds: CommandFds,
    stack: &mut CommandStack,
    fds: &mut [RawFd; EXEC_FDS],
) -> Reply {
    let ctl = ctx.ctl;
    match spawn_command(ctx, parsed, cfds, stack) {
        Ok((pid, failure)) => {
            // Only the command may hold its pipes: their EOF tells the parent it is gone.
            fds.iter().copied().for_each(close);
            *fds = [-1; EXEC_FDS];
            // A long-running process: the parent learns now that it runs.
            if failure.is_none()
                && msg.first() == Some(&(Op::Spawn as u8))
                && control::send(ctl, &Reply::Started.encode(), &[]).is_err()
            {
                kill_all(-1, &mut None);
                exit(0);
            }
            let (killed, status) = wait_command(ctl, sigfd, pid);
            match failure {
                Some(report) => Reply::Failed(report),
                None => Reply::Status { killed, status },
            }
        }
        Err(errno) => Reply::Failed(Report {
            stage: Stage::Fork,
            index: 0,
            errno,
        }),
    }
}

/// Stack of the command's process between `clone` and `execve` (it runs on init's memory).
const COMMAND_STACK: usize = 64 * 1024;

/// What the command's process needs, on init's stack while init is suspended.
struct Spawn<'a, 'b> {
    ctx: &'a ChildContext<'b>,
    req: &'a Parsed,
    fds: CommandFds,
    failure: Cell<Option<Report>>,
}

extern "C" fn command_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Spawn` that `spawn_command` keeps alive on init's stack: with
    // CLONE_VFORK init stays suspended until this process execs or exits.
    let spawn = unsafe { &*arg.cast::<Spawn<'_, '_>>() };
    command(spawn.ctx, spawn.req, spawn.fds, Sink(&spawn.failure))
}

/// Start the command's process with `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does:
/// no copy of init's page tables, and init resumes once the command has exec'd (or
/// failed). The child runs on its own stack in init's scratch memory, touches only that
/// stack, its own descriptor table (not shared) and the failure cell, and ends in `execve`
/// or `_exit`. Returns the pid and, if it stopped before `execve`, why.
fn spawn_command(
    ctx: &ChildContext<'_>,
    req: &Parsed,
    fds: CommandFds,
    stack: &mut CommandStack,
) -> Result<(libc::pid_t, Option<Report>), i32> {
    let spawn = Spawn {
        ctx,
        req,
        fds,
        failure: Cell::new(None),
    };
    // SAFETY: the stack grows down from one past the end of `stack`, 16-byte aligned; it
    // and `spawn` outlive the child's use of them because CLONE_VFORK suspends init until
    // the child execs or exits. The child never returns from `command_entry`.
    let pid = unsafe {
        libc::clone(
            command_entry,
            stack.0.as_mut_ptr().add(COMMAND_STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw const spawn).cast_mut().cast(),
        )
    };
    if pid < 0 {
        Err(errno())
    } else {
        Ok((pid, spawn.failure.get()))
    }
}

/// Wait until the command `pid` exits or the parent sends [`Op::Kill`]; then kill and reap
/// everything else. Returns (killed by request, the command's wait status). If the parent
/// goes away meanwhile, kills everything and exits.
fn wait_command(ctl: RawFd, sigfd: RawFd, pid: libc::pid_t) -> (bool, libc::c_int) {
    let mut status: Option<libc::c_int> = None;
    let mut killed = false;
    loop {
        reap_ready(pid, &mut status);
        if status.is_some() {
            break;
        }
        let mut fds = [
            libc::pollfd {
                fd: ctl,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a live array of two pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            kill_all(pid, &mut status);
            exit(1);
        }
        if fds[0].revents != 0 {
            let mut msg = [0u8; 16];
            match control::recv(ctl, &mut msg, &mut []) {
                Ok(0) => {
                    kill_all(pid, &mut status);
                    exit(0);
                }
                Ok(_) if msg[0] == Op::Kill as u8 => {
                    killed = true;
                    break;
                }
                Ok(_) | Err(libc::EMSGSIZE) => {} // out of protocol: ignored
                Err(_) => {
                    kill_all(pid, &mut status);
                    exit(0);
                }
            }
        }
        if fds[1].revents != 0 {
            drain(sigfd);
        }
    }
    kill_all(pid, &mut status);
    drain(sigfd);
    // Killed before it could be reaped on its own: it died of SIGKILL.
    (killed, status.unwrap_or(libc::SIGKILL))
}

/// Reap every child that has already exited, noting `pid`'s status.
fn reap_ready(pid: libc::pid_t, status: &mut Option<libc::c_int>) {
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: `st` is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL) };
        if r == pid {
            *status = Some(st);
        }
        if r <= 0 {
            return;
        }
    }
}

/// SIGKILL every process in the pid namespace but init, and reap them all, noting `pid`'s
/// status. Signalling again after each reap covers processes forked while the first
/// signal was being delivered.
fn kill_all(pid: libc::pid_t, status: &mut Option<libc::c_int>) {
    loop {
        // SAFETY: kill with integer arguments; -1 from pid 1 of a pid namespace means every
        // process of the namespace except init itself.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        let mut st: libc::c_int = 0;
        // SAFETY: `st` is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::__WALL) };
        if r == pid && status.is_none() {
            *status = Some(st);
        }
        if r < 0 && errno() != libc::EINTR {
            return; // ECHILD: the namespace holds only init
        }
    }
}

/// Empty the signalfd (its readiness only means "some child changed state").
fn drain(sigfd: RawFd) {
    let mut info = [0u8; 128 * 4];
    // SAFETY: reading into a live stack buffer of the given length.
    while unsafe { libc::read(sigfd, info.as_mut_ptr().cast(), info.len()) } > 0 {}
}

/// Duplicate `fd` to a number >= 3, close-on-exec, so that installing stdio cannot clobber
/// it even when the parent runs with 0, 1 or 2 closed (a daemon).
fn lift(fd: RawFd) -> Result<RawFd, i32> {
    // SAFETY: fcntl on a descriptor number with integer arguments only.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 { Err(errno()) } else { Ok(new) }
}

/// The command's process (a child of init): stdio, cwd, limits, privileges, then `execve`.
fn command(ctx: &ChildContext<'_>, req: &Parsed, fds: CommandFds, report: Sink<'_>) -> ! {
    // Init blocks SIGCHLD for its signalfd; the mask survives execve.
    set_mask(&[]);
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
            Err(e) => fail_command(report, Stage::Stdio, target, e),
        };
    }
    for (target, fd) in (0..).zip(lifted) {
        // Lifted copies are all >= 3 and distinct, so this never overwrites one of them.
        // SAFETY: dup2 on descriptor numbers; the result is checked.
        if unsafe { libc::dup2(fd, target) } < 0 {
            fail_command(report, Stage::Stdio, target as u32, errno());
        }
    }
    // SAFETY: `cwd` points at a NUL-terminated string in the received request.
    if unsafe { libc::chdir(req.cwd) } != 0 {
        fail_command(report, Stage::Chdir, 0, errno());
    }
    if let Err((i, e)) = ctx.rlimits.apply() {
        fail_command(report, Stage::Rlimit, i, e);
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
        fail_command(report, Stage::CloseFds, 0, errno());
    }
    if let Err(e) = idmap::become_sandbox_user() {
        fail_command(report, Stage::SetIds, 0, e);
    }
    if let Err((cap, e)) = caps::drop_bounding_set(ctx.last_cap) {
        fail_command(report, Stage::CapBound, cap, e);
    }
    if let Err(e) = caps::clear_ambient() {
        fail_command(report, Stage::Ambient, 0, e);
    }
    if let Err(e) = caps::set_no_new_privs() {
        fail_command(report, Stage::NoNewPrivs, 0, e);
    }
    if let Err(e) = caps::clear_all() {
        fail_command(report, Stage::Capset, 0, e);
    }
    // Last, in this order: Landlock needs no_new_privs; seccomp denies nothing left to do.
    if let Err((i, e)) = landlock::restrict(ctx.mounts.workspace_writable()) {
        fail_command(report, Stage::Landlock, i, e);
    }
    if let Err(e) = seccomp::install() {
        fail_command(report, Stage::Seccomp, 0, e);
    }
    let e = req.exec();
    fail_command(report, Stage::Exec, 0, e)
}
