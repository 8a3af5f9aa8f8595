//! The workspace overlay (native backend): each command sees `/workspace` as a fresh
//! overlayfs whose changes land in the caller's upper directory, never in the workspace.
//!
//! How: while the host root is still attached, the mount plan binds the directory holding
//! `upper` and `work` at `/workspace` (read-write, nosuid, nodev), and init opens both
//! (`O_PATH`); then it binds the real workspace **read-only** over it at `/workspace` and
//! opens that too ([`hold`]). Those three descriptors are init's only way to the layers:
//! the read-only bind covers the directory bind, and before each command init mounts the
//! overlay over both ([`mount`]: `lowerdir`/`upperdir`/`workdir` given as init's
//! `/proc/self/fd/N`, `userxattr`, `redirect_dir=nofollow`, `metacopy=off`, `index=off`,
//! `uuid=off`, `volatile`, nosuid, nodev).
//! Once the command and everything it started are gone (init killed and reaped them), its
//! changes are complete in `upper`; init unmounts the overlay ([`unmount`]) and then
//! answers, so when `exec` returns nothing is mounted over the layers: the caller may
//! read, apply and empty `upper` and change the workspace, and the next command gets a new
//! overlay over the workspace as it is then. Setup mounts and unmounts one overlay: a
//! kernel or filesystem that cannot do it stops `start` with the layer named.
//!
//! Guarantees: a command's changes to `/workspace` (writes, deletes as whiteouts, renames,
//! mode changes, new directories) are in `upper` when `exec` returns, and the workspace
//! itself is not written (its bind is read-only under the overlay, and overlayfs writes
//! only its upper layer). Nothing inside reaches the workspace, `upper` or `work` by
//! another path: they are covered mounts, init's descriptors are not in the command's
//! table (close-on-exec) and init is not dumpable (no `/proc/1/fd`, `/proc/1/root`), the
//! command has no capability to unmount or move mounts and its seccomp filter denies
//! `mount`/`umount2` (init's own filter lets init do them; each command adds a filter
//! denying them, see `seccomp`). The overlay is in a user namespace, so it must use
//! `userxattr`: whiteouts are character devices 0:0 and opaque directories carry
//! `user.overlay.opaque`; copied-up files may carry `user.overlay.origin` and the upper
//! root `user.overlay.impure` (bookkeeping, not changes).
//!
//! Does not: make upper durable (`volatile`: the overlay skips every sync of the upper
//! filesystem, the command's `fsync` included; after a host crash, discard upper); show
//! other processes' later changes to the workspace during a command (the
//! overlay's view is undefined if the workspace changes while a command runs; the caller
//! must not); keep a long-running process's changes apart from each other (they reach
//! `upper` as they happen, and the overlay goes when the process ends); support renaming
//! a directory that came from the workspace (`userxattr` implies no redirects: `rename`
//! fails with `EXDEV` and tools such as `mv` copy, then delete).
//!
//! Init never allocates: the mount options are written into a stack buffer.

use std::ffi::CStr;
use std::sync::atomic::{AtomicI32, Ordering};

use super::report::errno;

/// Mount point of the overlay inside (after the pivot).
const TARGET: &CStr = c"/workspace";

/// One of the overlay's three layers, as init holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Lower = 0,
    Upper = 1,
    Work = 2,
}

/// Init's `O_PATH` descriptors on the layers (-1 until [`hold`]). Init's memory only: the
/// parent never applies a mount plan.
static LAYERS: [AtomicI32; 3] = [AtomicI32::new(-1), AtomicI32::new(-1), AtomicI32::new(-1)];

/// Init side, during the mount plan: keep a descriptor on `path` for `slot`, close-on-exec
/// and above the standard descriptors.
pub(crate) fn hold(slot: Slot, path: &CStr) -> Result<(), i32> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fcntl on the descriptor just opened, integer arguments only.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    let e = errno();
    // SAFETY: closing the descriptor opened above; `high` (if any) is a separate copy.
    unsafe { libc::close(fd) };
    if high < 0 {
        return Err(e);
    }
    LAYERS[slot as usize].store(high, Ordering::SeqCst);
    Ok(())
}

/// A fixed buffer filled without allocating.
struct Buf {
    bytes: [u8; 256],
    len: usize,
}

impl Buf {
    fn push(&mut self, s: &[u8]) -> Result<(), i32> {
        let end = self.len + s.len();
        let dst = self
            .bytes
            .get_mut(self.len..end)
            .ok_or(libc::ENAMETOOLONG)?;
        dst.copy_from_slice(s);
        self.len = end;
        Ok(())
    }

    fn push_fd(&mut self, key: &[u8], fd: i32) -> Result<(), i32> {
        if fd < 0 {
            return Err(libc::EBADF); // the plan did not open this layer
        }
        self.push(key)?;
        self.push(b"=/proc/self/fd/")?;
        let mut digits = [0u8; 10];
        let mut n = fd as u32;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }
}

/// The overlay's option string, NUL-terminated, in `buf`.
fn options(buf: &mut Buf) -> Result<&CStr, i32> {
    let fd = |slot: Slot| LAYERS[slot as usize].load(Ordering::SeqCst);
    buf.push_fd(b"lowerdir", fd(Slot::Lower))?;
    buf.push_fd(b",upperdir", fd(Slot::Upper))?;
    buf.push_fd(b",workdir", fd(Slot::Work))?;
    // userxattr: the only xattr namespace a user namespace may write. No index (it would
    // pin upper and work to this mount) and no uuid written into upper. volatile: no
    // syncs of the upper filesystem (a copy-up would fsync each file, and the unmount
    // would sync the whole filesystem holding upper): upper is a scratch layer, made
    // durable (or not) by whoever applies it. No redirects (renaming a directory from
    // the workspace fails with EXDEV, so tools copy it) and no metacopy: every entry of
    // upper is whole (`userxattr` forces both; said here so that no module default can
    // change them).
    buf.push(b",userxattr,redirect_dir=nofollow,metacopy=off,index=off,uuid=off,volatile\0")?;
    CStr::from_bytes_with_nul(&buf.bytes[..buf.len]).map_err(|_| libc::EINVAL)
}

/// Markers a `volatile` overlay leaves in `work` (a file in two directories), deepest
/// first. The kernel
/// refuses to mount over them (they flag a volatile overlay that may not have been
/// unmounted cleanly); every overlay here was, or belongs to a sandbox that is gone, and
/// upper is emptied between commands.
const VOLATILE_MARKERS: [(&CStr, libc::c_int); 3] = [
    (c"work/incompat/volatile/dirty", 0),
    (c"work/incompat/volatile", libc::AT_REMOVEDIR),
    (c"work/incompat", libc::AT_REMOVEDIR),
];

/// Remove the previous overlay's volatile markers from `work`.
fn clear_volatile_markers() -> Result<(), i32> {
    let work = LAYERS[Slot::Work as usize].load(Ordering::SeqCst);
    if work < 0 {
        return Err(libc::EBADF);
    }
    for (marker, flags) in VOLATILE_MARKERS {
        // SAFETY: `work` is init's descriptor on the work directory; `marker` is a
        // NUL-terminated static relative path.
        let rc = unsafe { libc::unlinkat(work, marker.as_ptr(), flags) };
        if rc != 0 && errno() != libc::ENOENT {
            return Err(errno());
        }
    }
    Ok(())
}

/// Init side, before a command: a new overlay at `/workspace` over the held layers.
pub(crate) fn mount() -> Result<(), i32> {
    clear_volatile_markers()?;
    let mut buf = Buf {
        bytes: [0; 256],
        len: 0,
    };
    let data = options(&mut buf)?;
    // SAFETY: every pointer is a NUL-terminated string borrowed for the call.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            TARGET.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    // Overlayfs mounts read-only, with only a kernel log line, when it cannot use the
    // work directory: a command would then fail on every write. Refuse that instead.
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `TARGET` is NUL-terminated and `st` is a valid statvfs for libc to fill (no
    // allocation: glibc takes the flags from statfs(2)).
    let rc = unsafe { libc::statvfs(TARGET.as_ptr(), &mut st) };
    let e = errno();
    if rc != 0 || st.f_flag & libc::ST_RDONLY != 0 {
        unmount()?;
        return Err(if rc != 0 { e } else { libc::EROFS });
    }
    Ok(())
}

/// Parent side, before `start`: the filesystem of `work` (and so of `upper`) must take
/// `user.` extended attributes, which the overlay writes for opaque directories; without
/// them it would mount but lose the difference between a directory replaced and one
/// merged. Sets and removes `user.cordon.probe` on `work`.
pub(crate) fn check_user_xattrs(work: &std::path::Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(work.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", work.display()))?;
    let name = c"user.cordon.probe";
    // SAFETY: both strings are NUL-terminated; the value is a live 1-byte buffer.
    let rc = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "the filesystem of {} cannot hold the overlay's upper layer: setting a user. \
             extended attribute failed ({e}); put upper and work on ext4, xfs, btrfs or (Linux \
             >= 6.6) tmpfs",
            work.display()
        ));
    }
    // SAFETY: as above.
    unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) };
    Ok(())
}

/// Init side, once every process of the command is gone: remove the overlay. Detached
/// lazily, so it cannot fail for being busy; nothing is left that could use it.
pub(crate) fn unmount() -> Result<(), i32> {
    // SAFETY: `TARGET` is a NUL-terminated static string.
    let rc = unsafe { libc::umount2(TARGET.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

/// `(major, minor)` of a kernel release such as `6.18.44-generic`.
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(Some(major)), Some(Some(minor))) => Some((major, minor)),
        _ => None,
    }
}

/// Whether this kernel can mount overlayfs in a user namespace with `userxattr` (Linux
/// 5.11) and has overlayfs (built in, loaded, or as a module to load); `Err` says why not.
pub(crate) fn kernel_support() -> Result<(), String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| format!("cannot read the kernel version: {e}"))?;
    let release = release.trim();
    let Some(version) = major_minor(release) else {
        return Err(format!("cannot parse the kernel version {release:?}"));
    };
    if version < (5, 11) {
        return Err(format!(
            "Linux {release} cannot mount overlayfs in a user namespace (needs 5.11)"
        ));
    }
    let listed = std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| {
        f.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    });
    let module = std::path::Path::new("/lib/modules")
        .join(release)
        .join("kernel/fs/overlayfs");
    if !listed && !module.exists() {
        return Err("this kernel has no overlayfs (not in /proc/filesystems, no module)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_each_held_layer_by_descriptor() {
        for (slot, fd) in [(Slot::Lower, 7), (Slot::Upper, 12), (Slot::Work, 1023)] {
            LAYERS[slot as usize].store(fd, Ordering::SeqCst);
        }
        let mut buf = Buf {
            bytes: [0; 256],
            len: 0,
        };
        let s = options(&mut buf).unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            s,
            "lowerdir=/proc/self/fd/7,upperdir=/proc/self/fd/12,workdir=/proc/self/fd/1023,\
             userxattr,redirect_dir=nofollow,metacopy=off,index=off,uuid=off,volatile"
        );
        LAYERS[Slot::Work as usize].store(-1, Ordering::SeqCst);
        let mut buf = Buf {
            bytes: [0; 256],
            len: 0,
        };
        assert_eq!(options(&mut buf), Err(libc::EBADF));
        for l in &LAYERS {
            l.store(-1, Ordering::SeqCst);
        }
    }

    #[test]
    fn kernel_releases_parse_to_major_and_minor() {
        assert_eq!(major_minor("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(major_minor("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(major_minor("5.11"), Some((5, 11)));
        assert!(major_minor("5.10.0").unwrap() < (5, 11));
        assert_eq!(major_minor("linux"), None);
        assert_eq!(major_minor("6"), None);
    }
}
