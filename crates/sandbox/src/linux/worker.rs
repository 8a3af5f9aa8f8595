//! The one background thread of the native backend: reaps dropped sandboxes, removes their
//! cgroups, and keeps a small pool of pre-created cgroups ready for the next `start`; on
//! cgroup v1 it also keeps one "armed" thread: a short-lived thread that moved itself
//! into a pooled cgroup (`tasks`, which skips the global lock `cgroup.procs` takes) and
//! into a new network namespace with `lo` up, and forks the next sandbox's init from
//! there, then exits. Refills start [`REFILL_DELAY`] after the last `start` took from the
//! pool, so they do not compete with that sandbox's own setup.
//!
//! Guarantees: one long-lived thread per process (started on first use), never one per
//! sandbox. Every init handed to [`dispose`] has already been SIGKILLed by the caller; the
//! worker reaps it (no zombie stays) and then kills whatever is left in its cgroup and
//! removes the cgroup directories. A pooled cgroup is handed out by [`take_cgroup`] exactly
//! once (it leaves the pool when taken and is removed after its sandbox ends), so no two
//! sandboxes ever share one; the pool only holds cgroups for the limit set last asked for
//! (a different set is a miss: the caller creates its cgroup inline and the pool switches
//! to the new set, removing the old entries). The armed thread forks exactly one init and
//! its network namespace is never shared either. At process exit (`atexit`, i.e. a return from
//! `main` or `std::process::exit`) pending reaps are finished and pooled directories are
//! removed, waiting at most about a second for the worker.
//!
//! A process that starts one sandbox and pools nothing ([`Pooling::Off`], `cordon sandbox
//! exec`) may have that start's thread armed ahead ([`arm_ahead`], from
//! `Sandbox::prepare`) on a thread of its own while it does its other setup; the start
//! takes it if it was armed for the same limits, and one never taken is disarmed at exit.
//!
//! Does not guarantee that the pool is ready: a `start` that finds it empty (a process's
//! first, two starts within the refill delay, another limit set) arms a thread inline,
//! and where no thread can move itself (an unprivileged caller, cgroup v2) creates its
//! cgroup and namespaces inline and attaches init, as before. Does not guarantee cleanup when the process
//! is killed or aborts: pooled directories are
//! then left behind as empty cgroups with limits and no tasks (harmless); their names
//! `sandbox-<owner pid>-<n>` identify the dead owner and the next Cordon process removes
//! them when its pool first fills. If the thread cannot be started, everything is done
//! inline on the caller's thread (the behaviour before this module existed).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::Pooling;
use super::cgroup::{self, Cgroup, PoolKey};
use super::init::{self, ChildContext};
use super::namespaces::{self, Forked};

/// Pre-created cgroups kept ready per process.
pub(crate) const POOL_SIZE: usize = 2;
/// Refills wait this long after the last `start` took from the pool, so that they do not
/// compete for the CPU with that sandbox's own setup and first command (measured: fresh
/// start+exec+drop 2.8-3.1 ms with the delay vs 3.2-5.1 ms without, same machine, runs
/// alternating).
const REFILL_DELAY: Duration = Duration::from_millis(4);
/// How long the exit handler waits for the worker to finish its current job.
const EXIT_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Killed inits to reap, each with its cgroup to remove afterwards.
    reap: VecDeque<(libc::pid_t, Option<Cgroup>)>,
    /// The limit set the pool is filled for.
    key: Option<PoolKey>,
    ready: Vec<Cgroup>,
    /// A thread already inside a pooled cgroup for `key`, waiting to fork one init.
    armed: Option<Armed>,
    /// A thread being armed ahead of a [`Pooling::Off`] start ([`arm_ahead`]).
    ahead: Option<Ahead>,
    /// Pooled cgroups of an older limit set: to remove.
    stale: Vec<Cgroup>,
    /// Creating a cgroup for `key` failed: stop refilling until the key changes.
    refill_failed: bool,
    /// Arming a thread for `key` failed: stop trying until the key changes.
    arm_failed: bool,
    /// Dead owners' leftovers were swept (once per process).
    swept: bool,
    /// A job is being done outside the lock.
    busy: bool,
    /// When a `start` last took from the pool.
    last_take: Option<Instant>,
    /// The process is exiting: take no more jobs.
    exiting: bool,
}

struct Worker {
    state: Mutex<State>,
    wake: Condvar,
    idle: Condvar,
}

static WORKER: Worker = Worker {
    state: Mutex::new(State {
        reap: VecDeque::new(),
        key: None,
        ready: Vec::new(),
        armed: None,
        ahead: None,
        stale: Vec::new(),
        refill_failed: false,
        arm_failed: false,
        swept: false,
        busy: false,
        last_take: None,
        exiting: false,
    }),
    wake: Condvar::new(),
    idle: Condvar::new(),
};

/// Whether the thread runs (started on first call).
static STARTED: OnceLock<bool> = OnceLock::new();

fn lock() -> MutexGuard<'static, State> {
    // A panic while holding the lock leaves consistent data (plain pushes and pops).
    WORKER.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn started() -> bool {
    *STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("cordon-sandbox-reaper".into())
            .spawn(run)
            .is_ok();
        if spawned {
            // SAFETY: registers a plain `extern "C" fn()` with no captured state.
            unsafe { libc::atexit(at_exit) };
        }
        spawned
    })
}

/// Hand a dropped sandbox to the worker: `pid` (0: none) was SIGKILLed by the caller and
/// is reaped here; then `cgroup` is emptied and removed. Inline if there is no worker.
pub(crate) fn dispose(pid: libc::pid_t, cgroup: Option<Cgroup>) {
    if pid <= 0 && cgroup.is_none() {
        return;
    }
    if started() {
        let mut s = lock();
        if !s.exiting {
            s.reap.push_back((pid, cgroup));
            drop(s);
            WORKER.wake.notify_one();
            return;
        }
    }
    finish(pid, cgroup);
}

/// A pre-created cgroup with exactly `key`'s limits, removed from the pool (never handed
/// out twice), or `None` (pool empty or filled for other limits, or [`Pooling::Off`]:
/// create one inline).
pub(crate) fn take_cgroup(key: &PoolKey, pooling: Pooling) -> Option<Cgroup> {
    if pooling == Pooling::Off || !started() {
        return None;
    }
    let mut s = lock();
    if s.exiting {
        return None;
    }
    switch_key(&mut s, key);
    let taken = s.ready.pop();
    s.last_take = Some(Instant::now());
    drop(s);
    WORKER.wake.notify_one();
    taken
}

/// Make `key` the pool's limit set; entries for another set become stale.
fn switch_key(s: &mut State, key: &PoolKey) {
    if s.key.as_ref() == Some(key) {
        return;
    }
    let old = std::mem::take(&mut s.ready);
    s.stale.extend(old);
    if let Some(a) = s.armed.take() {
        s.stale.push(a.disarm());
    }
    s.key = Some(key.clone());
    s.refill_failed = false;
    s.arm_failed = false;
}

/// A request to an armed thread.
enum Request {
    /// Fork the sandbox's init: addresses of its `ChildContext` and `Scratch`, which the
    /// requester keeps alive (it blocks until the reply).
    Fork { ctx: usize, scratch: usize },
    /// Exit without forking.
    Quit,
}

/// A thread that moved itself into a pooled cgroup and waits to fork one init from there,
/// so that init starts inside the cgroup without the `cgroup.procs` write (which on cgroup
/// v1 takes a global lock that waits for an RCU grace period: ~10-19 ms after idle time).
pub(crate) struct Armed {
    cgroup: Cgroup,
    /// The thread made a network namespace with `lo` up: init is forked into it.
    net_ready: bool,
    requests: mpsc::Sender<Request>,
    replies: mpsc::Receiver<std::io::Result<libc::pid_t>>,
    thread: std::thread::JoinHandle<()>,
}

impl Armed {
    /// Create a cgroup for `key` (or use `pooled`) and a thread inside it.
    fn new(key: &PoolKey, pooled: Option<Cgroup>) -> Result<Armed, Option<Cgroup>> {
        let cgroup = match pooled {
            Some(cg) => cg,
            None => cgroup::create(key).map_err(|_| None)?,
        };
        let tasks: Vec<std::path::PathBuf> =
            cgroup.dirs().iter().map(|d| d.join("tasks")).collect();
        let (requests, rx) = mpsc::channel();
        let (reply_tx, replies) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("cordon-sandbox-armed".into())
            .spawn(move || armed_thread(&tasks, &ready_tx, &rx, &reply_tx));
        let Ok(thread) = spawned else {
            return Err(Some(cgroup));
        };
        let Ok(Some(net_ready)) = ready_rx.recv() else {
            let _ = thread.join();
            return Err(Some(cgroup));
        };
        Ok(Armed {
            cgroup,
            net_ready,
            requests,
            replies,
            thread,
        })
    }

    /// Let the thread exit without forking; the cgroup is returned for removal.
    fn disarm(self) -> Cgroup {
        let _ = self.requests.send(Request::Quit);
        let _ = self.thread.join();
        self.cgroup
    }
}

fn armed_thread(
    tasks: &[std::path::PathBuf],
    ready: &mpsc::Sender<Option<bool>>,
    requests: &mpsc::Receiver<Request>,
    replies: &mpsc::Sender<std::io::Result<libc::pid_t>>,
) {
    // "0" in a v1 `tasks` file moves only the writing thread, and the kernel skips the
    // global threadgroup lock for it. A thread that moved only partly exits below, which
    // takes it out of every cgroup.
    let moved = tasks.iter().all(|t| std::fs::write(t, "0").is_ok());
    if !moved {
        let _ = ready.send(None);
        return;
    }
    let net_ready = new_network_namespace();
    let _ = ready.send(Some(net_ready));
    let Ok(Request::Fork { ctx, scratch }) = requests.recv() else {
        return;
    };
    let flags = if net_ready {
        namespaces::NAMESPACES & !libc::CLONE_NEWNET
    } else {
        namespaces::NAMESPACES
    };
    let result = match namespaces::fork_into(flags) {
        Ok(Forked::Child) => {
            // SAFETY: the requester passed the addresses of a live `ChildContext` and a
            // `Scratch` it owns exclusively, and blocks until our reply: they are valid
            // at the fork, and this child has its own copy of the address space.
            let (ctx, scratch) = unsafe {
                (
                    &*(ctx as *const ChildContext<'_>),
                    &mut *(scratch as *mut init::Scratch),
                )
            };
            init::run(ctx, scratch)
        }
        Ok(Forked::Parent(pid)) => Ok(pid),
        Err(e) => Err(e),
    };
    let _ = replies.send(result);
    // Returning ends the thread, which leaves the sandbox's cgroup.
}

/// Move this thread (only) into a new network namespace and bring its `lo` up, so that
/// creating it (~0.5 ms, the costliest namespace) is off the `start` path. The namespace
/// is owned by the host's user namespace, not the sandbox's: nothing inside has
/// capabilities over it (no interface, route or firewall change, which the sandbox
/// could do in its own one); unprivileged ports start at 0 in it, as in a namespace the
/// sandbox owns, so init can still bind any egress port. False: not made (or only
/// partly: the thread is then in an unusable namespace, which is fine since it forks
/// with `CLONE_NEWNET` as usual and then exits).
fn new_network_namespace() -> bool {
    // SAFETY: unshare takes an integer flag; it affects only the calling thread's
    // namespaces (this thread exits after its one fork).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return false;
    }
    // /proc/sys/net shows the writing thread's network namespace.
    super::net::bring_up_loopback().is_ok()
        && std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0").is_ok()
}

/// An armed thread being made for a start that has not come yet. The thread making it
/// ends with the key it armed for (`None`: no usable hierarchy) and the armed thread
/// (`None`: arming failed, or no thread can move itself on this hierarchy).
struct Ahead {
    arming: std::thread::JoinHandle<(Option<PoolKey>, Option<Armed>)>,
}

impl Ahead {
    /// Wait until the thread is armed (or failed).
    fn finish(self) -> (Option<PoolKey>, Option<Armed>) {
        self.arming.join().unwrap_or((None, None))
    }
}

/// For the one start of a [`Pooling::Off`] process (`cordon sandbox exec`): compile the
/// seccomp filter and arm a thread for `limits` on a thread of its own now, while the
/// caller does its other setup; [`take_armed`] takes it. At most one is made per call
/// that finds none pending; one never taken is disarmed and its cgroup removed at exit.
/// Nothing on cgroup v2, without a usable hierarchy, or where the worker cannot run: the
/// start then does what it always did.
pub(crate) fn arm_ahead(limits: crate::Limits) {
    if !started() {
        return;
    }
    let mut s = lock();
    if s.exiting || s.ahead.is_some() {
        return;
    }
    // The filter first: the start needs it before anything else this thread makes. The
    // hierarchy is probed here too (a statfs of each controller).
    let spawned = std::thread::Builder::new()
        .name("cordon-sandbox-ahead".into())
        .spawn(move || {
            // Errors are met again, and reported, by the start.
            let _ = super::seccomp::prepare();
            let key = cgroup::CgroupPlan::new(&limits).key();
            let armed = key
                .as_ref()
                .filter(|k| k.per_thread())
                .and_then(|k| arm_inline(k, None));
            (key, armed)
        });
    if let Ok(arming) = spawned {
        s.ahead = Some(Ahead { arming });
    }
}

/// The armed thread for `key`, removed from the pool (its cgroup is never handed out
/// again), or one armed here when none is ready (a process's first start, as every
/// short-lived `cordon sandbox exec` is, or two starts within the refill delay): even
/// then init starts inside its cgroup without the `cgroup.procs` write, which took 9-15
/// ms of a one-shot process's start. With [`Pooling::Off`] always armed here, and the
/// pool is neither used nor refilled. `None`: arming failed or is known to fail for
/// `key`; fork inline and attach instead.
pub(crate) fn take_armed(key: &PoolKey, pooling: Pooling) -> Option<Armed> {
    if !started() {
        return None;
    }
    let mut s = lock();
    if s.exiting {
        return None;
    }
    if pooling == Pooling::Off {
        let ahead = s.ahead.take();
        drop(s);
        if let Some(ahead) = ahead {
            match ahead.finish() {
                // Armed (or tried and failed, which trying again would repeat) for these
                // limits.
                (Some(k), armed) if k == *key => return armed,
                (_, Some(other)) => dispose(0, Some(other.disarm())),
                (_, None) => {}
            }
        }
        // Where no thread can move itself (v2), arming would only make a cgroup to drop.
        return key.per_thread().then(|| arm_inline(key, None)).flatten();
    }
    switch_key(&mut s, key);
    let armed = s.armed.take();
    let arm_here = armed.is_none() && !s.arm_failed;
    let pooled = if arm_here { s.ready.pop() } else { None };
    s.last_take = Some(Instant::now());
    drop(s);
    WORKER.wake.notify_one();
    if !arm_here {
        return armed;
    }
    arm_inline(key, pooled)
}

/// Arm a thread on the caller's behalf, in `pooled` or a new cgroup for `key`.
fn arm_inline(key: &PoolKey, pooled: Option<Cgroup>) -> Option<Armed> {
    match Armed::new(key, pooled) {
        Ok(armed) => Some(armed),
        Err(cgroup) => {
            // Not a pool entry any more: removed like a dropped sandbox's.
            if cgroup.is_some() {
                dispose(0, cgroup);
            }
            None
        }
    }
}

impl Armed {
    pub(crate) fn net_ready(&self) -> bool {
        self.net_ready
    }

    /// Fork the sandbox's init from this thread, inside its cgroup (and, if
    /// [`Armed::net_ready`], its network namespace: `ctx.net_ready` must say so).
    pub(crate) fn fork(
        self,
        ctx: &ChildContext<'_>,
        scratch: &mut init::Scratch,
    ) -> (std::io::Result<libc::pid_t>, Cgroup) {
        let armed = self;
        let request = Request::Fork {
            ctx: ctx as *const ChildContext<'_> as usize,
            scratch: scratch as *mut init::Scratch as usize,
        };
        let result = match armed.requests.send(request) {
            Ok(()) => armed.replies.recv().unwrap_or_else(|_| {
                Err(std::io::Error::other(
                    "the armed thread ended without forking",
                ))
            }),
            Err(_) => Err(std::io::Error::other("the armed thread is gone")),
        };
        // The thread exits on its own; not joined (that would wait on the critical path).
        drop(armed.thread);
        (result, armed.cgroup)
    }
}

fn finish(pid: libc::pid_t, cgroup: Option<Cgroup>) {
    if pid > 0 {
        super::spawn::reap(pid);
    }
    drop(cgroup);
}

enum Job {
    Reap(libc::pid_t, Option<Cgroup>),
    Remove(Cgroup),
    Create(PoolKey, bool),
    Arm(PoolKey, Option<Cgroup>),
}

fn refill_key(s: &State) -> Option<PoolKey> {
    s.key.clone().filter(|_| !s.refill_failed)
}

/// How long refills must still wait (see [`REFILL_DELAY`]); zero when they may run.
fn refill_wait(s: &State) -> Duration {
    s.last_take
        .map_or(Duration::ZERO, |t| REFILL_DELAY.saturating_sub(t.elapsed()))
}

fn next_job(s: &mut State) -> Option<Job> {
    if !refill_wait(s).is_zero() {
        // Reaping only waits for the kernel; it does not compete for the CPU.
        if let Some((pid, cg)) = s.reap.pop_front() {
            return Some(Job::Reap(pid, cg));
        }
        return None;
    }
    let refill = match &s.key {
        Some(k) if !s.refill_failed && s.ready.len() < POOL_SIZE => Some(k.clone()),
        _ => None,
    };
    // An armed thread first, then a pooled cgroup: the next `start` is waiting for them.
    if s.armed.is_none()
        && !s.arm_failed
        && let Some(k) = refill_key(s).filter(PoolKey::per_thread)
    {
        let pooled = s.ready.pop();
        return Some(Job::Arm(k.clone(), pooled));
    }
    if s.ready.is_empty()
        && let Some(k) = &refill
    {
        return Some(Job::Create(
            k.clone(),
            !std::mem::replace(&mut s.swept, true),
        ));
    }
    if let Some((pid, cg)) = s.reap.pop_front() {
        return Some(Job::Reap(pid, cg));
    }
    if let Some(cg) = s.stale.pop() {
        return Some(Job::Remove(cg));
    }
    refill.map(|k| Job::Create(k, !std::mem::replace(&mut s.swept, true)))
}

fn run() {
    loop {
        let job = {
            let mut s = lock();
            loop {
                if !s.exiting
                    && let Some(job) = next_job(&mut s)
                {
                    s.busy = true;
                    break job;
                }
                let wait = refill_wait(&s);
                s = if wait.is_zero() {
                    WORKER.wake.wait(s).unwrap_or_else(|p| p.into_inner())
                } else {
                    match WORKER.wake.wait_timeout(s, wait) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    }
                };
            }
        };
        match job {
            Job::Reap(pid, cg) => finish(pid, cg),
            Job::Remove(cg) => drop(cg),
            Job::Arm(key, pooled) => {
                let armed = Armed::new(&key, pooled);
                let mut s = lock();
                match armed {
                    Ok(a) if s.key.as_ref() == Some(&key) && !s.exiting && s.armed.is_none() => {
                        s.armed = Some(a);
                    }
                    Ok(a) => {
                        drop(s);
                        let cg = a.disarm();
                        s = lock();
                        s.stale.push(cg);
                    }
                    Err(cg) => {
                        s.arm_failed = true;
                        s.stale.extend(cg);
                    }
                }
            }
            Job::Create(key, sweep) => {
                if sweep {
                    cgroup::sweep_dead_owners(&key);
                }
                let made = cgroup::create(&key);
                let mut s = lock();
                match made {
                    Ok(cg) if s.key.as_ref() == Some(&key) && !s.exiting => s.ready.push(cg),
                    Ok(cg) => s.stale.push(cg),
                    Err(_) => s.refill_failed = true,
                }
            }
        }
        let mut s = lock();
        s.busy = false;
        drop(s);
        WORKER.idle.notify_all();
    }
}

/// Process exit: stop the worker, finish pending reaps and remove pooled cgroups.
extern "C" fn at_exit() {
    let Some(mut s) = try_lock_for(EXIT_WAIT) else {
        return;
    };
    s.exiting = true;
    let until = Instant::now() + EXIT_WAIT;
    while s.busy {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s = match WORKER.idle.wait_timeout(s, left) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
    let reap = std::mem::take(&mut s.reap);
    let mut pooled = std::mem::take(&mut s.ready);
    pooled.append(&mut s.stale);
    let armed = s.armed.take();
    let ahead = s.ahead.take();
    drop(s);
    pooled.extend(armed.map(Armed::disarm));
    // Never taken: the start did not come (an error before it, or no start at all).
    if let Some((_, Some(a))) = ahead.map(Ahead::finish) {
        pooled.push(a.disarm());
    }
    for (pid, cg) in reap {
        finish(pid, cg);
    }
    drop(pooled);
}

fn try_lock_for(wait: Duration) -> Option<MutexGuard<'static, State>> {
    let until = Instant::now() + wait;
    loop {
        match WORKER.state.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}
