//! A small pool of pre-created user+net namespace pairs, made off the critical path.
//!
//! Creating a network namespace (and the user namespace owning it, with its id maps) is the
//! costliest part of `clone` for a fresh sandbox. A background thread keeps [`POOL_SIZE`]
//! pairs ready: it clones a short-lived holder process into a new user and network
//! namespace, writes the holder's id maps (inner 1000 -> the caller), opens
//! `/proc/HOLDER/ns/{user,net}` (an open namespace file keeps the namespace alive), then
//! kills and reaps the holder. [`take`] hands one pair to one sandbox, whose init `setns`es
//! into it and creates its other namespaces itself.
//!
//! Guarantees: a pair is handed out at most once and never returned to the pool, so no two
//! sandboxes ever share a namespace; nothing ever ran inside a pooled namespace but the
//! holder, which only waited to be killed (no process of its own, `lo` still down, no
//! sockets). A pair is only used by a caller with the same effective uid/gid it was mapped
//! for. When the pool is empty (first start, or starts faster than the refill) the caller
//! creates the namespaces directly: the pool only ever saves time. Does not bound the
//! kernel memory of [`POOL_SIZE`] idle namespace pairs per process.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, Once};

use super::idmap;
use super::namespaces::{Forked, fork_into};

/// Namespace pairs kept ready.
const POOL_SIZE: usize = 2;

/// One unused user namespace and the network namespace it owns.
pub(crate) struct Namespaces {
    pub user: OwnedFd,
    pub net: OwnedFd,
    uid: u32,
    gid: u32,
}

struct Pool {
    ready: Mutex<Vec<Namespaces>>,
    wanted: Condvar,
}

static POOL: Pool = Pool {
    ready: Mutex::new(Vec::new()),
    wanted: Condvar::new(),
};
static REFILL: Once = Once::new();

/// A pooled pair made for the caller's current effective uid/gid, if one is ready. Starts
/// the refill thread on first use.
pub(crate) fn take() -> Option<Namespaces> {
    REFILL.call_once(|| {
        // No pool without the thread: every start then creates its namespaces directly.
        let _ = std::thread::Builder::new()
            .name("cordon-ns-pool".into())
            .spawn(refill);
    });
    let (uid, gid) = ids();
    let mut ready = POOL.ready.lock().ok()?;
    // Stale pairs (made before the caller's ids changed) are dropped, never used.
    ready.retain(|ns| (ns.uid, ns.gid) == (uid, gid));
    let ns = ready.pop();
    POOL.wanted.notify_one();
    ns
}

fn ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

fn refill() {
    loop {
        {
            let Ok(mut ready) = POOL.ready.lock() else {
                return;
            };
            while ready.len() >= POOL_SIZE {
                ready = match POOL.wanted.wait(ready) {
                    Ok(r) => r,
                    Err(_) => return,
                };
            }
        }
        // Made without holding the lock: `take` never waits for a clone.
        match create() {
            Some(ns) => match POOL.ready.lock() {
                Ok(mut ready) => ready.push(ns),
                Err(_) => return,
            },
            // Namespaces cannot be made here (e.g. no unprivileged userns): stop trying;
            // the direct path reports the reason with each start.
            None => return,
        }
    }
}

/// Make one pair with a holder process; `None` if any step fails.
fn create() -> Option<Namespaces> {
    let (uid, gid) = ids();
    let pid = match fork_into(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) {
        Ok(Forked::Child) => hold(),
        Ok(Forked::Parent(pid)) => pid,
        Err(_) => return None,
    };
    let open = |ns: &str| {
        File::open(format!("/proc/{pid}/ns/{ns}"))
            .ok()
            .map(OwnedFd::from)
    };
    let made = idmap::write_maps(pid, uid, gid)
        .ok()
        .and_then(|()| Some((open("user")?, open("net")?)));
    // SAFETY: kill with integer arguments; `pid` is our unreaped child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    while unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
    let (user, net) = made?;
    Some(Namespaces {
        user,
        net,
        uid,
        gid,
    })
}

/// The holder: drop every inherited descriptor and wait to be killed. No allocation.
fn hold() -> ! {
    // SAFETY: close_range with integer arguments closes this copy's descriptors only.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    // Inherited handlers must never run here: block every signal (SIGKILL still ends it).
    // SAFETY: sigset_t is plain old data filled by sigfillset; the mask call only reads it.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    loop {
        // SAFETY: pause takes no arguments; SIGKILL ends it.
        unsafe { libc::pause() };
    }
}
