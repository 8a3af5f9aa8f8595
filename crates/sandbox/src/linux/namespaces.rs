//! Creating the sandbox's namespaces with one `clone`.
//!
//! Guarantees: the child starts in new user, mount, pid, net, ipc, uts and cgroup
//! namespaces at once, as pid 1 of its pid namespace, so it is the namespace's init and its
//! death kills every process left inside. Does not guarantee anything about what the
//! child may do before its ids are mapped: the parent writes the maps (see `idmap`).

use std::io;

/// Every namespace the sandbox unshares.
pub(crate) const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

/// Which side of a fork-like clone we are on.
pub(crate) enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// Fork-like raw `clone(2)` with `extra_flags` (namespaces or 0); SIGCHLD on exit.
///
/// The raw syscall bypasses libc's `fork` (no atfork handlers, no lock juggling). In the
/// child only async-signal-safe, non-allocating code may run until `execve` or `_exit`:
/// other threads of the parent may have held the allocator's or libc's locks.
pub(crate) fn fork_into(extra_flags: libc::c_int) -> io::Result<Forked> {
    let flags = (extra_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: clone without CLONE_VM and with a null stack behaves like fork: the child gets
    // a copy of the address space and continues on a copy of this stack. Callers uphold the
    // no-allocation rule for the child (documented above); the other arguments are unused.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}
