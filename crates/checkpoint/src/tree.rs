//! A directory tree reached only beneath its root and never through a symlink.
//!
//! Every operation opens the parent directory with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` from a descriptor of the root, then acts
//! on the last component with an `*at` call that does not follow it (`O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`, `unlinkat`, `renameat`, `symlinkat`). A symlink anywhere in a
//! path — planted by a command, or swapped in while Cordon works — makes the operation
//! fail; it is never followed out of the tree. Files are replaced atomically (a temporary
//! file in the same directory renamed over the name; with [`Durable::Yes`] the file is
//! fsynced before the rename and the directory after it).
//!
//! Not guaranteed: anything about a root path that is itself a symlink (the caller's
//! path is trusted and opened as given), or mounts beneath the root.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::{Error, RelPath, State};

/// Whether a write is on disk when it returns (fsynced), or left to the kernel's
/// writeback like the writes of the command whose changes are being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durable {
    Yes,
    No,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What a path holds, with a regular file's bytes.
pub(crate) struct Observed {
    pub state: State,
    pub content: Option<Vec<u8>>,
}

/// An entry's kind as `lstat` sees it, for walking a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    /// A character device 0:0: an overlay whiteout.
    Whiteout,
    /// A FIFO, socket, or any other device.
    Special,
}

/// A directory tree opened at its root (see the module doc).
pub struct Tree {
    root: OwnedFd,
    shown: PathBuf,
}

impl Tree {
    /// Open the directory at `path` as a tree root.
    pub fn open(path: &Path) -> Result<Tree, Error> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open the directory", path.display(), e))?;
        Ok(Tree {
            root,
            shown: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shown
    }

    fn shown(&self, rel: &str) -> String {
        self.shown.join(rel).display().to_string()
    }

    fn dir(&self, rel: &str) -> Result<OwnedFd, Errno> {
        rustix::fs::openat2(
            &self.root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
    }

    fn parent(&self, rel: &RelPath) -> Result<OwnedFd, Error> {
        self.dir(rel.parent())
            .map_err(|e| Error::io("open the directory of", self.shown(rel.as_str()), e))
    }

    /// `lstat` of `rel`; `None` when it does not exist, also when a directory on the way
    /// does not or is a symlink (never followed, so nothing lies beneath it).
    pub(crate) fn lstat(&self, rel: &RelPath) -> Result<Option<Stat>, Error> {
        let dir = match self.dir(rel.parent()) {
            Ok(d) => d,
            // Beneath a file or a symlink: no such entry in a tree that follows no links.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    "open the directory of",
                    self.shown(rel.as_str()),
                    e,
                ));
            }
        };
        match rustix::fs::statat(&dir, rel.name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("stat", self.shown(rel.as_str()), e)),
        }
    }

    /// An error when a directory on the way to `rel` is a symlink or not a directory
    /// (a missing one is fine: the path is simply absent).
    pub(crate) fn check_parents(&self, rel: &RelPath) -> Result<(), Error> {
        match self.dir(rel.parent()) {
            Ok(_) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(
                "open the directory of",
                self.shown(rel.as_str()),
                e,
            )),
        }
    }

    pub(crate) fn kind(st: &Stat) -> Kind {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::CharacterDevice if st.st_rdev == 0 => Kind::Whiteout,
            _ => Kind::Special,
        }
    }

    /// The state of `rel`, reading a regular file's bytes. A FIFO, socket or device is
    /// `Error::Unsupported`.
    pub(crate) fn observe(&self, rel: &RelPath) -> Result<Observed, Error> {
        let Some(st) = self.lstat(rel)? else {
            return Ok(Observed {
                state: State::Absent,
                content: None,
            });
        };
        let mode = st.st_mode & 0o7777;
        match Tree::kind(&st) {
            Kind::Dir => Ok(Observed {
                state: State::Dir { mode },
                content: None,
            }),
            Kind::Symlink => Ok(Observed {
                state: State::Symlink {
                    target: self.read_link(rel)?,
                },
                content: None,
            }),
            Kind::File => {
                let (mode, bytes) = self.read_file(rel)?;
                Ok(Observed {
                    state: State::File {
                        sha256: sha256(&bytes),
                        mode,
                        size: bytes.len() as u64,
                    },
                    content: Some(bytes),
                })
            }
            Kind::Whiteout | Kind::Special => Err(Error::Unsupported {
                path: self.shown(rel.as_str()),
                what: "a device, FIFO or socket",
            }),
        }
    }

    /// A regular file's mode and bytes; anything else at `rel` is an error.
    pub(crate) fn read_file(&self, rel: &RelPath) -> Result<(u32, Vec<u8>), Error> {
        let dir = self.parent(rel)?;
        let shown = || self.shown(rel.as_str());
        // O_NONBLOCK: a FIFO swapped in must not hang the open; it is refused below.
        let fd = rustix::fs::openat(
            &dir,
            rel.name(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", shown(), e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat", shown(), e))?;
        if Tree::kind(&st) != Kind::File {
            return Err(Error::Unsupported {
                path: shown(),
                what: "not a regular file",
            });
        }
        let mut bytes = Vec::with_capacity(st.st_size.max(0) as usize);
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Io {
                op: "read",
                path: shown(),
                source: e,
            })?;
        Ok((st.st_mode & 0o7777, bytes))
    }

    pub(crate) fn read_link(&self, rel: &RelPath) -> Result<String, Error> {
        let dir = self.parent(rel)?;
        let target = rustix::fs::readlinkat(&dir, rel.name(), Vec::new())
            .map_err(|e| Error::io("read the symlink", self.shown(rel.as_str()), e))?;
        target.into_string().map_err(|_| Error::Unsupported {
            path: self.shown(rel.as_str()),
            what: "a symlink whose target is not UTF-8",
        })
    }

    /// The names of the extended attributes on `rel` (not followed).
    pub(crate) fn xattr_names(&self, rel: &RelPath) -> Result<Vec<String>, Error> {
        let dir = self.parent(rel)?;
        let at = proc_path(&dir, rel.name());
        let mut buf = vec![0u8; 1024];
        loop {
            match rustix::fs::llistxattr(at.as_str(), &mut buf[..]) {
                Ok(n) => {
                    return Ok(buf[..n]
                        .split(|b| *b == 0)
                        .filter(|n| !n.is_empty())
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .collect());
                }
                Err(Errno::NOTSUP) => return Ok(Vec::new()),
                Err(Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
                Err(e) => {
                    return Err(Error::io(
                        "list extended attributes of",
                        self.shown(rel.as_str()),
                        e,
                    ));
                }
            }
        }
    }

    /// The value of extended attribute `name` on `rel` (not followed), `None` if unset.
    pub(crate) fn xattr(&self, rel: &RelPath, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let dir = self.parent(rel)?;
        let at = proc_path(&dir, rel.name());
        let mut buf = [0u8; 64];
        match rustix::fs::lgetxattr(at.as_str(), name, &mut buf[..]) {
            Ok(n) => Ok(Some(buf[..n].to_vec())),
            Err(Errno::NODATA | Errno::NOTSUP) => Ok(None),
            // A value longer than any overlay marker: present, and not "y".
            Err(Errno::RANGE) => Ok(Some(buf.to_vec())),
            Err(e) => Err(Error::io(
                "read extended attributes of",
                self.shown(rel.as_str()),
                e,
            )),
        }
    }

    /// The names in directory `rel` (the root for `None`), sorted.
    pub(crate) fn list(&self, rel: Option<&RelPath>) -> Result<Vec<Vec<u8>>, Error> {
        let at = rel.map_or(".", RelPath::as_str);
        let fd = self
            .dir(at)
            .map_err(|e| Error::io("open the directory", self.shown(at), e))?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| Error::io("list", self.shown(at), e))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| Error::io("list", self.shown(at), e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort();
        Ok(names)
    }

    /// A listed name as a path, or why it cannot be one.
    pub(crate) fn child(&self, parent: Option<&RelPath>, name: &[u8]) -> Result<RelPath, Error> {
        let Ok(s) = std::str::from_utf8(name) else {
            let at = parent.map_or(String::new(), |p| format!("{p}/"));
            return Err(Error::Unsupported {
                path: self.shown(&format!(
                    "{at}{}",
                    OsStr::from_bytes(name).to_string_lossy()
                )),
                what: "a name that is not UTF-8",
            });
        };
        RelPath::child(parent, s)
    }

    /// Replace (or create) `rel` with a regular file holding `bytes`, mode `mode` exactly.
    pub(crate) fn write_file(
        &self,
        rel: &RelPath,
        bytes: &[u8],
        mode: u32,
        durable: Durable,
    ) -> Result<(), Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self.parent(rel)?;
        let shown = self.shown(rel.as_str());
        let (tmp, fd) = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = format!(".cordon-checkpoint.{}.{n}.tmp", std::process::id());
            match writable(&dir, || {
                rustix::fs::openat(
                    &dir,
                    tmp.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
            }) {
                Ok(fd) => break (tmp, fd),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::io("create a temporary file for", shown, e)),
            }
        };
        let written = (|| {
            let mut file = File::from(fd);
            file.write_all(bytes)
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            // After creation: the mode given to open() is filtered by the umask.
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
            if durable == Durable::Yes {
                rustix::fs::fsync(&file)?;
            }
            drop(file);
            match durable {
                Durable::Yes => {
                    writable(&dir, || {
                        rustix::fs::renameat(&dir, tmp.as_str(), &dir, rel.name())
                    })?;
                    rustix::fs::fsync(&dir)
                }
                Durable::No => replace(&dir, &tmp, rel.name()),
            }
        })();
        if let Err(e) = written {
            let _ = writable(&dir, || {
                rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty())
            });
            return Err(Error::io("write", shown, e));
        }
        Ok(())
    }

    /// Create directory `rel` with mode `mode` exactly.
    pub(crate) fn mkdir(&self, rel: &RelPath, mode: u32, durable: Durable) -> Result<(), Error> {
        let dir = self.parent(rel)?;
        writable(&dir, || {
            rustix::fs::mkdirat(&dir, rel.name(), Mode::from_raw_mode(0o700))
        })
        .map_err(|e| Error::io("create the directory", self.shown(rel.as_str()), e))?;
        self.chmod_dir(rel, mode)?;
        if durable == Durable::No {
            return Ok(());
        }
        rustix::fs::fsync(&dir)
            .map_err(|e| Error::io("sync the directory of", self.shown(rel.as_str()), e))
    }

    /// Set the mode of directory `rel` (not followed if it is a symlink; also when the
    /// directory's own mode denies opening it).
    pub(crate) fn chmod_dir(&self, rel: &RelPath, mode: u32) -> Result<(), Error> {
        let parent = self.parent(rel)?;
        chmod_dir_at(parent.as_fd(), rel.name(), mode)
            .map_err(|e| Error::io("set the mode of", self.shown(rel.as_str()), e))
    }

    pub(crate) fn symlink(&self, rel: &RelPath, target: &str) -> Result<(), Error> {
        let dir = self.parent(rel)?;
        writable(&dir, || rustix::fs::symlinkat(target, &dir, rel.name()))
            .map_err(|e| Error::io("create the symlink", self.shown(rel.as_str()), e))
    }

    /// Remove the file, symlink or (empty, when `dir`) directory at `rel`.
    pub(crate) fn remove(&self, rel: &RelPath, dir: bool) -> Result<(), Error> {
        let parent = self.parent(rel)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        writable(&parent, || rustix::fs::unlinkat(&parent, rel.name(), flags))
            .map_err(|e| Error::io("remove", self.shown(rel.as_str()), e))
    }

    /// Remove everything inside the root (not the root itself), never following a symlink.
    pub(crate) fn clear(&self) -> Result<(), Error> {
        for name in self.list(None)? {
            self.remove_tree(self.root.as_fd(), &name, &self.shown.clone())?;
        }
        Ok(())
    }

    fn remove_tree(
        &self,
        dir: std::os::fd::BorrowedFd<'_>,
        name: &[u8],
        at: &Path,
    ) -> Result<(), Error> {
        let path = at.join(OsStr::from_bytes(name));
        let shown = || path.display().to_string();
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("stat", shown(), e))?;
        if Tree::kind(&st) == Kind::Dir {
            // A command may have left a directory it cannot be listed through (mode 000).
            if st.st_mode & 0o700 != 0o700 {
                chmod_dir_at(dir, name, 0o700)
                    .map_err(|e| Error::io("set the mode of", shown(), e))?;
            }
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open the directory", shown(), e))?;
            let mut names = Vec::new();
            let mut listing =
                rustix::fs::Dir::read_from(&sub).map_err(|e| Error::io("list", shown(), e))?;
            while let Some(entry) = listing.read() {
                let entry = entry.map_err(|e| Error::io("list", shown(), e))?;
                let n = entry.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            for n in names {
                self.remove_tree(sub.as_fd(), &n, &path)?;
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        } else {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())
        }
        .map_err(|e| Error::io("remove", shown(), e))
    }
}

/// Run `op` on directory `dir`; if the directory's own mode denies it (a read-only
/// directory the journal must still put entries in or take them out of), run it once more
/// with the owner's write and search bits added, then put the mode back.
fn writable<T>(dir: &OwnedFd, mut op: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    match op() {
        Err(Errno::ACCESS) => {
            let mode = rustix::fs::fstat(dir)?.st_mode & 0o7777;
            if mode & 0o300 == 0o300 {
                return Err(Errno::ACCESS);
            }
            rustix::fs::fchmod(dir, Mode::from_raw_mode(mode | 0o300))?;
            let result = op();
            rustix::fs::fchmod(dir, Mode::from_raw_mode(mode))?;
            result
        }
        other => other,
    }
}

/// Put the written file `tmp` at `name` in `dir`, atomically. An existing entry is
/// swapped out (`RENAME_EXCHANGE`) and then unlinked rather than renamed over: on ext4 a
/// rename over an existing file starts writing the new file's data out at once
/// (`auto_da_alloc`), 5× the cost of the whole replacement here. Where the filesystem
/// cannot exchange, or nothing is at `name`, a plain rename.
fn replace(dir: &OwnedFd, tmp: &str, name: &str) -> Result<(), Errno> {
    let exchanged = writable(dir, || {
        rustix::fs::renameat_with(dir, tmp, dir, name, rustix::fs::RenameFlags::EXCHANGE)
    });
    match exchanged {
        // `tmp` now names what was at `name`: a file or symlink unless it was swapped for a
        // directory since the plan — then swap back and fail.
        Ok(()) => match writable(dir, || rustix::fs::unlinkat(dir, tmp, AtFlags::empty())) {
            Err(e @ (Errno::ISDIR | Errno::PERM)) => {
                let _ = writable(dir, || {
                    rustix::fs::renameat_with(
                        dir,
                        tmp,
                        dir,
                        name,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                });
                Err(e)
            }
            other => other,
        },
        Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            writable(dir, || rustix::fs::renameat(dir, tmp, dir, name))
        }
        Err(e) => Err(e),
    }
}

/// `/proc/self/fd/N/name`: entry `name` of directory `dir`, for the calls that have no
/// `*at` form (extended attributes, chmod through an `O_PATH` descriptor). The magic link
/// resolves to `dir` itself; the last component is not followed by the `l*` calls.
fn proc_path(dir: &OwnedFd, name: &str) -> String {
    format!("/proc/self/fd/{}/{name}", dir.as_raw_fd())
}

/// chmod the directory `name` of `dir`, never following a symlink: an `O_PATH` descriptor
/// of it (needs no permission on the directory itself), changed through `/proc`.
fn chmod_dir_at<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
    mode: u32,
) -> Result<(), Errno> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::chmod(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        Mode::from_raw_mode(mode),
    )
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
