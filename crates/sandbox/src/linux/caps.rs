//! Capabilities and `no_new_privs` of the sandboxed command.
//!
//! Guarantees: before `execve` the bounding and ambient sets are emptied, `no_new_privs`
//! is set, and the effective, permitted and inheritable sets are cleared; since the command
//! runs as uid 1000 (not 0) in its user namespace, `execve` grants nothing back, even for
//! setuid or file-capability binaries. Does not filter syscalls (that is seccomp's job).

use super::report::errno;

/// Child side: drop capabilities `0..=last_cap` from the bounding set.
pub(crate) fn drop_bounding_set(last_cap: u32) -> Result<(), (u32, i32)> {
    // Init empties the set once for all its commands (they inherit it); then the command
    // has nothing left to drop. Init and command share memory (`CLONE_VM`).
    if BOUNDING_EMPTY.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    for cap in 0..=last_cap {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err((cap, errno()));
        }
    }
    Ok(())
}

static BOUNDING_EMPTY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Init side: empty the bounding set once; the commands it starts inherit the empty set.
/// Init keeps its effective capabilities (it never execs), so this takes nothing it needs.
pub(crate) fn drop_bounding_set_for_commands(last_cap: u32) -> Result<(), (u32, i32)> {
    drop_bounding_set(last_cap)?;
    BOUNDING_EMPTY.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// Child side: empty the ambient set.
pub(crate) fn clear_ambient() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// Child side: set `no_new_privs`.
pub(crate) fn set_no_new_privs() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Child side: clear the effective, permitted and inheritable sets (last privileged step).
pub(crate) fn clear_all() -> Result<(), i32> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a v3 header and two CapData structs, both valid for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// Parent side: the highest capability number this kernel knows.
pub(crate) fn last_cap() -> Result<u32, String> {
    let path = "/proc/sys/kernel/cap_last_cap";
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("parsing {path} ({:?}): {e}", text.trim()))
}
