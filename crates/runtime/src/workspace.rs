//! Workspace confinement: every file operation a tool performs stays beneath the agent's
//! workspace root.
//!
//! Guarantees:
//! - model paths are parsed first ([`Workspace::resolve`]): relative paths, or absolute
//!   paths under `/workspace/` (the path the sandbox shows), mapped to relative; any
//!   other absolute path, any `..` component and any NUL byte is refused;
//! - every open, mkdir, rename, stat and directory listing is done relative to a
//!   directory fd of the root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`,
//!   so no `..`, absolute or magic link and no symlink — including one a sandboxed
//!   `exec` created a moment ago — can make the kernel resolve outside the root;
//! - writes never follow symlinks: parent directories are walked one component at a
//!   time with `RESOLVE_NO_SYMLINKS`, the file is written to a fresh temporary file
//!   (`O_CREAT | O_EXCL | O_NOFOLLOW`) in the same directory and renamed over the target;
//!   a final component that is a symlink is refused;
//! - reads open only regular files (never FIFOs or devices, opened non-blocking).
//!
//! Not guaranteed: symlinks that stay inside the workspace are followed for reads (that
//! is harmless); hard links to files outside the workspace created by someone with access
//! to the host directory are not detected (the sandbox cannot create them: the workspace
//! is its only writable mount besides `/tmp`); the root itself is trusted as given.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Where the workspace appears inside the sandbox; absolute model paths under it are
/// accepted and mapped to workspace-relative paths.
const SANDBOX_ROOT: &str = "/workspace";

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("cannot open workspace root {}: {source}; create it (e.g. `cordon init`) or fix agents.NAME.workspace", root.display())]
    OpenRoot {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "path `{path}` is outside the workspace: {why}; use a path relative to the workspace (or under /workspace/)"
    )]
    Outside { path: String, why: &'static str },
    #[error(
        "path `{path}` goes through a symbolic link, which is refused for writes; write to the real path instead"
    )]
    Symlink { path: String },
    #[error("`{path}` does not exist in the workspace")]
    NotFound { path: String },
    #[error("`{path}` is not a regular file")]
    NotAFile { path: String },
    #[error("`{path}` is not a directory")]
    NotADirectory { path: String },
    #[error("`{path}` is {size} bytes, more than the {limit} bytes this tool handles")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("cannot {op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// A path the model gave, parsed and checked lexically: relative to the workspace root,
/// no `..`, no empty or `.` components. The kernel still re-checks at every use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePath {
    components: Vec<String>,
}

impl WorkspacePath {
    /// Whether this is the workspace root itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The relative path (`.` for the root).
    pub fn as_str(&self) -> String {
        if self.components.is_empty() {
            ".".into()
        } else {
            self.components.join("/")
        }
    }

    fn split_last(&self) -> Option<(&[String], &str)> {
        let (last, parents) = self.components.split_last()?;
        Some((parents, last.as_str()))
    }
}

impl std::fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Kind of a directory entry (never followed through symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
}

/// A listing, sorted by name, holding at most the requested number of entries.
#[derive(Debug, Clone)]
pub struct Listing {
    pub entries: Vec<DirEntry>,
    /// Entries in the directory, including those not returned.
    pub total: usize,
}

/// Bounds of a [`Workspace::walk`].
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// Files larger than this are skipped.
    pub max_file_size: u64,
    /// Stop after visiting this many files.
    pub max_files: usize,
    /// Do not descend deeper than this.
    pub max_depth: usize,
}

/// What a walk skipped or cut short.
#[derive(Debug, Clone, Default)]
pub struct WalkSummary {
    pub files_visited: usize,
    pub skipped_symlinks: usize,
    pub skipped_large: usize,
    pub skipped_unreadable: usize,
    /// The walk stopped at a limit or because the visitor asked to.
    pub stopped_early: bool,
}

/// The agent's workspace, opened once; all operations go through its root fd.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    dir: OwnedFd,
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

fn io(op: &'static str, path: &WorkspacePath, e: Errno) -> WorkspaceError {
    WorkspaceError::Io {
        op,
        path: path.as_str(),
        source: e.into(),
    }
}

/// Map errors of a resolution beneath the root to precise refusals.
fn resolve_error(op: &'static str, path: &WorkspacePath, e: Errno) -> WorkspaceError {
    let p = path.as_str();
    match e {
        Errno::XDEV => WorkspaceError::Outside {
            path: p,
            why: "it resolves outside the workspace through a symbolic link",
        },
        Errno::LOOP => WorkspaceError::Symlink { path: p },
        Errno::NOENT => WorkspaceError::NotFound { path: p },
        Errno::NOTDIR => WorkspaceError::NotADirectory { path: p },
        other => io(op, path, other),
    }
}

/// `openat2`, retried on `EAGAIN` (the kernel asks for a retry when a concurrent rename
/// raced the lookup).
fn openat2_retry<Fd: AsFd>(
    dir: Fd,
    name: &OsStr,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir.as_fd(), name, flags, mode, resolve) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

impl Workspace {
    /// Open the workspace root directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Workspace, WorkspaceError> {
        let root = root.as_ref().to_path_buf();
        let dir = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| WorkspaceError::OpenRoot {
            root: root.clone(),
            source: e.into(),
        })?;
        // Fail at startup, not at the first tool call, on a kernel without openat2.
        openat2_retry(
            &dir,
            OsStr::new("."),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            beneath(),
        )
        .map_err(|e| WorkspaceError::OpenRoot {
            root: root.clone(),
            source: std::io::Error::other(format!(
                "openat2 with RESOLVE_BENEATH is unavailable ({e}); Linux 5.6 or newer is required"
            )),
        })?;
        Ok(Workspace { root, dir })
    }

    /// The host directory of the workspace.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Parse a model path. Empty and `.` mean the root.
    pub fn resolve(&self, path: &str) -> Result<WorkspacePath, WorkspaceError> {
        let outside = |why| WorkspaceError::Outside {
            path: path.to_string(),
            why,
        };
        if path.contains('\0') {
            return Err(outside("it contains a NUL byte"));
        }
        let rel = if let Some(rest) = path.strip_prefix('/') {
            match rest.strip_prefix(&SANDBOX_ROOT[1..]) {
                Some(tail) if tail.is_empty() || tail.starts_with('/') => tail,
                _ => return Err(outside("absolute paths are allowed only under /workspace/")),
            }
        } else {
            path
        };
        let mut components = Vec::new();
        for c in rel.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(outside("`..` components are not allowed")),
                c => components.push(c.to_string()),
            }
        }
        Ok(WorkspacePath { components })
    }

    /// Open an existing path beneath the root (symlinks inside the workspace followed).
    fn open_beneath(
        &self,
        op: &'static str,
        path: &WorkspacePath,
        flags: OFlags,
    ) -> Result<OwnedFd, WorkspaceError> {
        let rel = path.as_str();
        openat2_retry(
            &self.dir,
            OsStr::new(&rel),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            beneath(),
        )
        .map_err(|e| resolve_error(op, path, e))
    }

    /// Open a regular file beneath the root for reading; returns it and its size.
    fn open_regular(&self, path: &WorkspacePath) -> Result<(File, u64), WorkspaceError> {
        let fd = self.open_beneath(
            "read",
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        )?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io("read", path, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(WorkspaceError::NotAFile {
                path: path.as_str(),
            });
        }
        Ok((File::from(fd), u64::try_from(st.st_size).unwrap_or(0)))
    }

    /// Read a whole regular file of at most `limit` bytes; a larger file (even one that
    /// grew while being read) is an error, never silently cut.
    pub fn read(&self, path: &WorkspacePath, limit: u64) -> Result<Vec<u8>, WorkspaceError> {
        let (file, size) = self.open_regular(path)?;
        let too_large = |size| WorkspaceError::TooLarge {
            path: path.as_str(),
            size,
            limit,
        };
        if size > limit {
            return Err(too_large(size));
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|source| WorkspaceError::Io {
                op: "read",
                path: path.as_str(),
                source,
            })?;
        if buf.len() as u64 > limit {
            return Err(too_large(buf.len() as u64));
        }
        Ok(buf)
    }

    /// Read at most the first `limit` bytes of a regular file; also returns its size.
    pub fn read_prefix(
        &self,
        path: &WorkspacePath,
        limit: u64,
    ) -> Result<(Vec<u8>, u64), WorkspaceError> {
        let (file, size) = self.open_regular(path)?;
        let mut buf = Vec::with_capacity(usize::try_from(size.min(limit)).unwrap_or(0));
        file.take(limit)
            .read_to_end(&mut buf)
            .map_err(|source| WorkspaceError::Io {
                op: "read",
                path: path.as_str(),
                source,
            })?;
        Ok((buf, size))
    }

    /// Open the directory `components` beneath the root without following any symlink,
    /// creating missing directories when `create` is set.
    fn walk_dirs(
        &self,
        path: &WorkspacePath,
        components: &[String],
        create: bool,
    ) -> Result<OwnedFd, WorkspaceError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve = beneath() | ResolveFlags::NO_SYMLINKS;
        let mut cur = openat2_retry(&self.dir, OsStr::new("."), flags, Mode::empty(), resolve)
            .map_err(|e| resolve_error("open", path, e))?;
        for c in components {
            let name = OsStr::new(c);
            let next = match openat2_retry(&cur, name, flags, Mode::empty(), resolve) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io("create directory for", path, e)),
                    }
                    openat2_retry(&cur, name, flags, Mode::empty(), resolve)
                }
                other => other,
            };
            cur = next.map_err(|e| {
                // O_NOFOLLOW | O_DIRECTORY on a symlink fails with ENOTDIR; say what it is.
                let is_link = rustix::fs::statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                match e {
                    _ if is_link => WorkspaceError::Symlink {
                        path: path.as_str(),
                    },
                    Errno::LOOP | Errno::XDEV => WorkspaceError::Symlink {
                        path: path.as_str(),
                    },
                    e => resolve_error("open", path, e),
                }
            })?;
        }
        Ok(cur)
    }

    /// Atomically create or replace a regular file: missing parent directories are
    /// created; the content goes to a temporary file in the same directory, is synced,
    /// and renamed over the target. Symlinks anywhere on the path are refused.
    pub fn write(&self, path: &WorkspacePath, content: &[u8]) -> Result<(), WorkspaceError> {
        let Some((parents, name)) = path.split_last() else {
            return Err(WorkspaceError::NotAFile {
                path: path.as_str(),
            });
        };
        let parent = self.walk_dirs(path, parents, true)?;
        let mut mode = Mode::from_raw_mode(0o644);
        match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => mode = Mode::from_raw_mode(st.st_mode & 0o777),
                FileType::Symlink => {
                    return Err(WorkspaceError::Symlink {
                        path: path.as_str(),
                    });
                }
                _ => {
                    return Err(WorkspaceError::NotAFile {
                        path: path.as_str(),
                    });
                }
            },
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io("stat", path, e)),
        }
        let (tmp_name, tmp) = self.create_temp(&parent, name, mode, path)?;
        let result = (|| {
            let mut f = File::from(tmp);
            f.write_all(content)?;
            f.sync_all()
        })();
        if let Err(source) = result {
            let _ = rustix::fs::unlinkat(&parent, &tmp_name, AtFlags::empty());
            return Err(WorkspaceError::Io {
                op: "write",
                path: path.as_str(),
                source,
            });
        }
        // rename() replaces the directory entry itself: if a symlink was swapped in at
        // `name` meanwhile, the symlink is replaced, its target is never written.
        if let Err(e) = rustix::fs::renameat(&parent, &tmp_name, &parent, name) {
            let _ = rustix::fs::unlinkat(&parent, &tmp_name, AtFlags::empty());
            return Err(match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => WorkspaceError::NotAFile {
                    path: path.as_str(),
                },
                e => io("replace", path, e),
            });
        }
        Ok(())
    }

    fn create_temp(
        &self,
        parent: &OwnedFd,
        name: &str,
        mode: Mode,
        path: &WorkspacePath,
    ) -> Result<(String, OwnedFd), WorkspaceError> {
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // Keep the temporary name within NAME_MAX (255) whatever the target's length.
        let mut stem = name.to_string();
        let mut cut = stem.len().min(120);
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
        for attempt in 0..16u32 {
            let tmp_name = format!(".{stem}.cordon-tmp-{pid}-{nanos:x}-{attempt}");
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match openat2_retry(
                parent,
                OsStr::new(&tmp_name),
                flags,
                mode,
                beneath() | ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => return Ok((tmp_name, fd)),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io("create a temporary file for", path, e)),
            }
        }
        Err(WorkspaceError::Io {
            op: "create a temporary file for",
            path: path.as_str(),
            source: std::io::Error::other("too many name collisions"),
        })
    }

    /// List a directory: at most `max` entries, sorted by name. Entries are stat'ed
    /// without following symlinks.
    pub fn list(&self, path: &WorkspacePath, max: usize) -> Result<Listing, WorkspaceError> {
        let fd = self.open_beneath("list", path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut entries = Vec::new();
        let mut total = 0;
        let mut names = read_names(&fd).map_err(|e| io("list", path, e))?;
        names.sort();
        for name in names {
            total += 1;
            if entries.len() >= max {
                continue;
            }
            let (kind, size) =
                match rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => (kind_of(st.st_mode), u64::try_from(st.st_size).unwrap_or(0)),
                    Err(_) => (EntryKind::Other, 0),
                };
            entries.push(DirEntry { name, kind, size });
        }
        Ok(Listing { entries, total })
    }

    /// Visit every regular file beneath `path` (itself a file or directory), depth
    /// first in name order. Symlinks are never followed; files over the size limit are
    /// skipped. The visitor gets the workspace-relative path and the content, and
    /// returns `false` to stop.
    pub fn walk(
        &self,
        path: &WorkspacePath,
        limits: WalkLimits,
        visit: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<WalkSummary, WorkspaceError> {
        let mut summary = WalkSummary::default();
        let fd = self.open_beneath(
            "search",
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        )?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io("search", path, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let prefix = if path.is_root() {
                    String::new()
                } else {
                    format!("{path}/")
                };
                walk_dir(&fd, &prefix, 0, limits, &mut summary, visit);
            }
            FileType::RegularFile => {
                if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limits.max_file_size {
                    summary.skipped_large += 1;
                } else {
                    let mut buf = Vec::new();
                    match File::from(fd)
                        .take(limits.max_file_size)
                        .read_to_end(&mut buf)
                    {
                        Ok(_) => {
                            summary.files_visited += 1;
                            if !visit(&path.as_str(), &buf) {
                                summary.stopped_early = true;
                            }
                        }
                        Err(_) => summary.skipped_unreadable += 1,
                    }
                }
            }
            _ => {
                return Err(WorkspaceError::NotAFile {
                    path: path.as_str(),
                });
            }
        }
        Ok(summary)
    }
}

fn kind_of(mode: u32) -> EntryKind {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// Names in a directory, without `.` and `..`. Names that are not UTF-8 are skipped
/// (the model could not name them anyway).
fn read_names(dir: &OwnedFd) -> Result<Vec<String>, Errno> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        if let Ok(s) = std::str::from_utf8(bytes) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// Returns `false` when the walk must stop.
fn walk_dir(
    dir: &OwnedFd,
    prefix: &str,
    depth: usize,
    limits: WalkLimits,
    summary: &mut WalkSummary,
    visit: &mut dyn FnMut(&str, &[u8]) -> bool,
) -> bool {
    let Ok(mut names) = read_names(dir) else {
        summary.skipped_unreadable += 1;
        return true;
    };
    names.sort();
    for name in names {
        if summary.files_visited >= limits.max_files {
            summary.stopped_early = true;
            return false;
        }
        let resolve = beneath() | ResolveFlags::NO_SYMLINKS;
        let Ok(st) = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            summary.skipped_unreadable += 1;
            continue;
        };
        let rel = format!("{prefix}{name}");
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => summary.skipped_symlinks += 1,
            FileType::Directory => {
                if name == ".git" || depth + 1 > limits.max_depth {
                    continue;
                }
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                match openat2_retry(dir, OsStr::new(&name), flags, Mode::empty(), resolve) {
                    Ok(sub) => {
                        if !walk_dir(&sub, &format!("{rel}/"), depth + 1, limits, summary, visit) {
                            return false;
                        }
                    }
                    Err(Errno::LOOP) | Err(Errno::XDEV) => summary.skipped_symlinks += 1,
                    Err(_) => summary.skipped_unreadable += 1,
                }
            }
            FileType::RegularFile => {
                if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limits.max_file_size {
                    summary.skipped_large += 1;
                    continue;
                }
                let flags = OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC;
                let fd = match openat2_retry(dir, OsStr::new(&name), flags, Mode::empty(), resolve)
                {
                    Ok(fd) => fd,
                    Err(Errno::LOOP) | Err(Errno::XDEV) => {
                        summary.skipped_symlinks += 1;
                        continue;
                    }
                    Err(_) => {
                        summary.skipped_unreadable += 1;
                        continue;
                    }
                };
                // Re-check on the opened fd: the entry may have been swapped since statat.
                match rustix::fs::fstat(&fd) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                    _ => {
                        summary.skipped_unreadable += 1;
                        continue;
                    }
                }
                let mut buf = Vec::new();
                if File::from(fd)
                    .take(limits.max_file_size)
                    .read_to_end(&mut buf)
                    .is_err()
                {
                    summary.skipped_unreadable += 1;
                    continue;
                }
                summary.files_visited += 1;
                if !visit(&rel, &buf) {
                    summary.stopped_early = true;
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        (dir, ws)
    }

    #[test]
    fn resolve_maps_sandbox_paths_and_refuses_escapes() {
        let (_d, w) = ws();
        assert_eq!(w.resolve("a/./b//c").unwrap().as_str(), "a/b/c");
        assert_eq!(w.resolve("/workspace/a/b").unwrap().as_str(), "a/b");
        assert!(w.resolve("/workspace").unwrap().is_root());
        assert!(w.resolve("").unwrap().is_root());
        assert!(w.resolve("./").unwrap().is_root());
        for bad in [
            "../x",
            "a/../../x",
            "a/..",
            "/etc/passwd",
            "/workspace/../etc",
            "/workspaces/x",
            "/",
            "a\0b",
        ] {
            let e = w.resolve(bad).unwrap_err();
            assert!(matches!(e, WorkspaceError::Outside { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("outside the workspace"), "{e}");
        }
    }

    #[test]
    fn open_refuses_a_missing_root() {
        let dir = tempfile::tempdir().unwrap();
        let e = Workspace::open(dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("cannot open workspace root"), "{e}");
    }

    #[test]
    fn read_limit_and_kinds() {
        let (d, w) = ws();
        std::fs::write(d.path().join("f"), "0123456789").unwrap();
        let p = w.resolve("f").unwrap();
        assert_eq!(w.read(&p, 10).unwrap(), b"0123456789");
        assert!(matches!(
            w.read(&p, 9),
            Err(WorkspaceError::TooLarge { size: 10, .. })
        ));
        assert!(matches!(
            w.read(&w.resolve(".").unwrap(), 10),
            Err(WorkspaceError::NotAFile { .. })
        ));
        assert!(matches!(
            w.read(&w.resolve("g").unwrap(), 10),
            Err(WorkspaceError::NotFound { .. })
        ));
    }

    #[test]
    fn write_preserves_mode_and_creates_parents() {
        use std::os::unix::fs::PermissionsExt;
        let (d, w) = ws();
        let f = d.path().join("run.sh");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o750)).unwrap();
        w.write(&w.resolve("run.sh").unwrap(), b"new").unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o750
        );
        w.write(&w.resolve("x/y/z.txt").unwrap(), b"z").unwrap();
        let long = "n".repeat(250);
        w.write(&w.resolve(&long).unwrap(), b"long").unwrap();
        assert_eq!(std::fs::read(d.path().join(&long)).unwrap(), b"long");
        assert_eq!(std::fs::read(d.path().join("x/y/z.txt")).unwrap(), b"z");
        // A file in the way of a directory.
        let e = w
            .write(&w.resolve("run.sh/inner").unwrap(), b"z")
            .unwrap_err();
        assert!(matches!(e, WorkspaceError::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn list_is_sorted_bounded_and_does_not_follow_links() {
        let (d, w) = ws();
        for n in ["c", "a", "b"] {
            std::fs::write(d.path().join(n), n).unwrap();
        }
        std::os::unix::fs::symlink("/etc", d.path().join("l")).unwrap();
        let all = w.list(&w.resolve(".").unwrap(), 10).unwrap();
        let names: Vec<&str> = all.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "l"]);
        assert_eq!(all.entries[3].kind, EntryKind::Symlink);
        let two = w.list(&w.resolve(".").unwrap(), 2).unwrap();
        assert_eq!(two.entries.len(), 2);
        assert_eq!(two.total, 4);
    }
}
