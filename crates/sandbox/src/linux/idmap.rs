//! uid/gid mapping of the sandbox's user namespace.
//!
//! Guarantees: inside, the only mapped ids are [`SANDBOX_UID`]/[`SANDBOX_GID`] (1000,
//! "cordon"), mapped to the caller's effective uid/gid; `setgroups` is denied, so the
//! process cannot drop into or add supplementary groups. The parent writes the maps after
//! `clone` (so a later version can map another outer id when privileged). Does not hide
//! that host files owned by the caller appear owned by `cordon` inside.

use std::fs;

/// The uid the command runs as inside the sandbox.
pub const SANDBOX_UID: u32 = 1000;
/// The gid the command runs as inside the sandbox.
pub const SANDBOX_GID: u32 = 1000;

/// Parent side: write `/proc/PID/{setgroups,uid_map,gid_map}` for the child `pid`.
pub(crate) fn write_maps(pid: libc::pid_t, outer_uid: u32, outer_gid: u32) -> Result<(), String> {
    let write = |file: &str, content: String| {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, content.as_bytes()).map_err(|e| format!("writing {path}: {e}"))
    };
    write("setgroups", "deny".to_owned())?;
    write("uid_map", format!("{SANDBOX_UID} {outer_uid} 1\n"))?;
    write("gid_map", format!("{SANDBOX_GID} {outer_gid} 1\n"))
}

/// Child side: make real, effective and saved ids all [`SANDBOX_UID`]/[`SANDBOX_GID`].
///
/// Raw syscalls on purpose: libc's `setresuid` broadcasts to every thread it believes
/// exists, and after `clone` in a multi-threaded parent those threads do not exist.
pub(crate) fn become_sandbox_user() -> Result<(), i32> {
    let (uid, gid) = (SANDBOX_UID as libc::c_ulong, SANDBOX_GID as libc::c_ulong);
    // SAFETY: plain syscalls with integer arguments; they touch no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    if rc != 0 {
        return Err(super::report::errno());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    if rc != 0 {
        return Err(super::report::errno());
    }
    Ok(())
}
