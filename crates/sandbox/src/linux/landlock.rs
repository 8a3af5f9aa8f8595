//! Landlock: a second, kernel-enforced layer over the mount plan for the command.
//!
//! Guarantees: when the kernel has Landlock (any ABI), the command's process is restricted,
//! after the mounts are final and before `execve`, to: read and execute beneath `/usr`,
//! `/etc`, `/bin`, `/sbin`, `/lib*` and `/skills` (those present; never write beneath
//! `/skills`, the read-only skill trees); read beneath `/proc` and `/dev`; read and
//! write the device nodes `null`, `zero`, `full`, `random`, `urandom`, `tty`; every
//! filesystem right the ABI has (except creating device nodes) beneath `/tmp`, `/dev/shm`
//! and `/workspace` (read and execute only when the workspace is read-only). Anything else,
//! including a path that a mount mistake would expose, is denied with `EACCES`. The
//! restriction is inherited by everything the command starts and cannot be lifted. A kernel
//! without Landlock leaves this layer inactive (reported by `explain`); a kernel with
//! Landlock that refuses the ruleset stops the run (fail closed).
//!
//! Does not restrict the network: the sandbox's network namespace holds only `lo`, and
//! Landlock's TCP rules are by port only, so they would add nothing but break loopback use
//! inside. Does not restrict `stat`, `chdir` or directory traversal (Landlock does not).
//! Listing `/` itself is refused (no rule grants it): a program that walks down from `/`
//! with `readdir` fails there (the MCP filesystem server given `/` cannot create files).
//!
//! The child opens the paths with `O_PATH` and fills stack structs: no allocation.

use std::ffi::CStr;
use std::sync::atomic::{AtomicI32, Ordering};

use super::report::errno;

const CREATE_RULESET_VERSION: libc::c_uint = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_BLOCK: u64 = 1 << 11;
/// ABI 1: EXECUTE ..= MAKE_SYM.
const ABI1_ALL: u64 = (1 << 13) - 1;
const REFER: u64 = 1 << 13; // ABI 2
const TRUNCATE: u64 = 1 << 14; // ABI 3
const IOCTL_DEV: u64 = 1 << 15; // ABI 5
/// Rights that apply to a file (not a directory); a rule on a file may only use these.
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

/// `struct landlock_ruleset_attr` (ABI 6 size; older kernels accept the zeroed tail).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's uapi header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    ReadExecute,
    Read,
    /// Read and write a device node.
    Device,
    ReadWrite,
    /// `ReadWrite` or `ReadExecute`, following the profile.
    Workspace,
}

/// Every rule, in order. Paths missing inside the sandbox are skipped.
pub(crate) const RULES: &[(&CStr, Grant)] = &[
    (c"/usr", Grant::ReadExecute),
    (c"/etc", Grant::ReadExecute),
    (c"/bin", Grant::ReadExecute),
    (c"/sbin", Grant::ReadExecute),
    (c"/lib", Grant::ReadExecute),
    (c"/lib32", Grant::ReadExecute),
    (c"/lib64", Grant::ReadExecute),
    (c"/libx32", Grant::ReadExecute),
    (c"/proc", Grant::Read),
    (c"/dev", Grant::Read),
    (c"/dev/null", Grant::Device),
    (c"/dev/zero", Grant::Device),
    (c"/dev/full", Grant::Device),
    (c"/dev/random", Grant::Device),
    (c"/dev/urandom", Grant::Device),
    (c"/dev/tty", Grant::Device),
    (c"/tmp", Grant::ReadWrite),
    (c"/dev/shm", Grant::ReadWrite),
    (c"/workspace", Grant::Workspace),
    (c"/skills", Grant::ReadExecute),
];

/// The Landlock ABI version of the running kernel, or `None` without Landlock (not built
/// in, or disabled at boot). The same probe runs in `explain` and in the child.
pub(crate) fn abi() -> Option<u32> {
    // SAFETY: the documented version query: NULL attributes, size 0, the VERSION flag.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(rc).ok().filter(|v| *v >= 1)
}

/// Every filesystem right the ABI knows.
pub(crate) fn handled(abi: u32) -> u64 {
    let mut all = ABI1_ALL;
    if abi >= 2 {
        all |= REFER;
    }
    if abi >= 3 {
        all |= TRUNCATE;
    }
    if abi >= 5 {
        all |= IOCTL_DEV;
    }
    all
}

/// The rights `grant` gives under `abi`.
pub(crate) fn rights(grant: Grant, workspace_writable: bool, abi: u32) -> u64 {
    let all = handled(abi);
    let rx = EXECUTE | READ_FILE | READ_DIR;
    let rw = all & !(MAKE_CHAR | MAKE_BLOCK);
    let bits = match grant {
        Grant::ReadExecute => rx,
        Grant::Read => READ_FILE | READ_DIR,
        Grant::Device => (READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV) & FILE_RIGHTS,
        Grant::ReadWrite => rw,
        Grant::Workspace if workspace_writable => rw,
        Grant::Workspace => rx,
    };
    bits & all
}

/// Whether `grant` lets the command write.
pub(crate) fn grants_write(grant: Grant, workspace_writable: bool) -> bool {
    rights(grant, workspace_writable, u32::MAX) & WRITE_FILE != 0
}

fn close(fd: libc::c_long) {
    // SAFETY: closing a descriptor this function opened.
    unsafe { libc::close(fd as libc::c_int) };
}

/// The ruleset init built once for all its commands: a descriptor, [`NO_LANDLOCK`], or
/// [`NOT_PREPARED`]. Init and its commands share memory (`CLONE_VM`), so the command reads
/// what init stored; the descriptor is in the command's copy of init's descriptor table
/// and is closed by its `execve` (close-on-exec).
static RULESET: AtomicI32 = AtomicI32::new(NOT_PREPARED);
const NOT_PREPARED: i32 = -1;
const NO_LANDLOCK: i32 = -2;

/// Init side, once the mounts are final: build the ruleset its commands will enforce.
/// Building it once instead of per command saves ~40 syscalls on every call; with the
/// workspace overlay it is built per command (see `init`) and [`release`]d after.
pub(crate) fn prepare(workspace_writable: bool) -> Result<(), (u32, i32)> {
    let Some(fd) = build(workspace_writable)? else {
        RULESET.store(NO_LANDLOCK, Ordering::SeqCst);
        return Ok(());
    };
    // Init has closed 0-2, so the ruleset may have landed there; the command's stdio is
    // dup2'ed onto 0-2, so keep the ruleset above them.
    // SAFETY: fcntl on our own descriptor with integer arguments only.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    let e = errno();
    close(fd.into());
    if high < 0 {
        return Err((RULES.len() as u32, e));
    }
    RULESET.store(high, Ordering::SeqCst);
    Ok(())
}

/// Init side, once a command has started (it holds its own copy of the descriptor):
/// close the ruleset of [`prepare`], so the next command gets a new one.
pub(crate) fn release() {
    let fd = RULESET.swap(NOT_PREPARED, Ordering::SeqCst);
    if fd >= 0 {
        close(fd.into());
    }
}

/// Child side: restrict the calling process with init's prepared ruleset, or build one
/// now if init did not. `Ok(false)` when the kernel has no Landlock; on failure the index
/// in [`RULES`] (or `RULES.len()` for the ruleset itself) and errno.
pub(crate) fn restrict(workspace_writable: bool) -> Result<bool, (u32, i32)> {
    let whole = RULES.len() as u32;
    let (ruleset, owned) = match RULESET.load(Ordering::SeqCst) {
        NO_LANDLOCK => return Ok(false),
        NOT_PREPARED => match build(workspace_writable)? {
            Some(fd) => (fd, true),
            None => return Ok(false),
        },
        fd => (fd, false),
    };
    // SAFETY: restrict_self on a ruleset descriptor with no flags; `no_new_privs` is set.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            ruleset as libc::c_int,
            0 as libc::c_uint,
        )
    };
    let e = errno();
    if owned {
        close(ruleset.into());
    }
    if rc != 0 {
        return Err((whole, e));
    }
    Ok(true)
}

/// Create the ruleset matching the mounts. `Ok(None)` when the kernel has no Landlock.
fn build(workspace_writable: bool) -> Result<Option<i32>, (u32, i32)> {
    let Some(abi) = abi() else {
        return Ok(None);
    };
    let whole = RULES.len() as u32;
    let attr = RulesetAttr {
        handled_access_fs: handled(abi),
        handled_access_net: 0,
        scoped: 0,
    };
    // SAFETY: `attr` is a live, initialised ruleset attribute of the given size.
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0 as libc::c_uint,
        )
    };
    if ruleset < 0 {
        return Err((whole, errno()));
    }
    for (i, (path, grant)) in RULES.iter().enumerate() {
        // SAFETY: `path` is a NUL-terminated static string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = errno();
            if e == libc::ENOENT {
                continue; // e.g. /lib32 on a host without it
            }
            close(ruleset);
            return Err((i as u32, e));
        }
        let mut allowed = rights(*grant, workspace_writable, abi);
        // SAFETY: fstat on the descriptor just opened, into a zeroed stack struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `st` is a valid out-pointer.
        if unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            allowed &= FILE_RIGHTS;
        }
        let rule = PathBeneathAttr {
            allowed_access: allowed,
            parent_fd: fd,
        };
        // SAFETY: `rule` is a live path-beneath attribute; `ruleset` and `fd` are ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset as libc::c_int,
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0 as libc::c_uint,
            )
        };
        let e = errno();
        close(fd.into());
        if rc != 0 {
            close(ruleset);
            return Err((i as u32, e));
        }
    }
    Ok(Some(ruleset as i32))
}

/// Description of rule `index` for error messages.
pub(crate) fn describe(index: u32) -> String {
    match RULES.get(index as usize) {
        Some((path, grant)) => format!(
            "adding the Landlock rule {grant:?} beneath {}",
            path.to_string_lossy()
        ),
        None => "creating or enforcing the Landlock ruleset".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_never_exceed_what_the_abi_handles() {
        for abi in 1..=7 {
            for (_, g) in RULES {
                for ws in [false, true] {
                    let r = rights(*g, ws, abi);
                    assert_eq!(r & !handled(abi), 0, "{g:?} abi {abi}");
                    assert_eq!(r & (MAKE_CHAR | MAKE_BLOCK), 0);
                }
            }
        }
        assert!(grants_write(Grant::Workspace, true));
        assert!(!grants_write(Grant::Workspace, false));
        assert!(!grants_write(Grant::Read, true));
        assert!(!grants_write(Grant::ReadExecute, true));
        let skills = RULES.iter().find(|(p, _)| *p == c"/skills").map(|r| r.1);
        assert_eq!(skills, Some(Grant::ReadExecute));
    }
}
