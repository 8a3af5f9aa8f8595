//! A skill's files, read safely into memory, and the canonical hash of them.
//!
//! Refused with a clear reason, before anything is written anywhere: symlinks (any: a
//! skill tree has only regular files and directories), hard links (a regular file with
//! more than one link, on disk), device files, FIFOs and sockets, archive entries that
//! escape the root (`..`, absolute paths), non-UTF-8 or otherwise unsafe names, more
//! than [`MAX_FILES`] files or [`MAX_BYTES`] bytes in all. A tree must have a `SKILL.md`
//! at its root.
//!
//! The canonical hash ([`Tree::sha256`]) is SHA-256 over the sorted paths, each with its
//! mode (`644` or `755`: only the executable bit counts) and its contents, framed so no
//! two different trees hash alike.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

mod archive;

/// At most this many files in a skill.
pub const MAX_FILES: usize = 2_000;
/// At most this many bytes of file contents in a skill (20 MB).
pub const MAX_BYTES: u64 = 20 * 1024 * 1024;

/// One regular file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative path with `/` separators, no `.` or `..` components.
    pub path: String,
    /// Whether any executable bit is set.
    pub executable: bool,
    pub contents: Vec<u8>,
}

/// A skill's files, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    files: Vec<TreeFile>,
}

/// Why a tree was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Tree {
    /// Read the directory `root` (not following symlinks anywhere).
    ///
    /// Stops as soon as a limit is passed: sizes are checked from the metadata before a
    /// file is read, and no file is read past what the limit still allows.
    pub fn read_dir(root: &Path) -> Result<Tree, TreeError> {
        let meta = fs::symlink_metadata(root).map_err(|e| io_err(root, e))?;
        if meta.file_type().is_symlink() {
            return Err(refused(
                &root.display().to_string(),
                "is a symlink: give the skill's real folder".into(),
            ));
        }
        if !meta.is_dir() {
            return Err(refused(
                &root.display().to_string(),
                "is not a folder".into(),
            ));
        }
        let mut files = Vec::new();
        let mut total = 0u64;
        // (directory on disk, its path relative to root)
        let mut pending = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel_dir)) = pending.pop() {
            let entries = fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&dir, e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    let shown = join(&rel_dir, &name.to_string_lossy());
                    return Err(refused(&shown, "name is not valid UTF-8".into()));
                };
                let rel = join(&rel_dir, name);
                // Not followed: the type of the entry itself.
                let kind = entry.file_type().map_err(|e| io_err(&entry.path(), e))?;
                if kind.is_symlink() {
                    return Err(refused(
                        &rel,
                        "is a symlink (a skill has only regular files and folders)".into(),
                    ));
                }
                if kind.is_dir() {
                    check_path(&rel)?;
                    pending.push((entry.path(), rel));
                    continue;
                }
                if !kind.is_file() {
                    return Err(refused(&rel, format!("is a {}", special_kind(kind))));
                }
                check_path(&rel)?;
                if files.len() == MAX_FILES {
                    return Err(refused(
                        ".",
                        format!("more than the {MAX_FILES} files a skill may have"),
                    ));
                }
                let file = read_regular(&entry.path(), &rel, MAX_BYTES - total)?;
                total += file.contents.len() as u64;
                files.push(file);
            }
        }
        Tree::from_files(files)
    }

    /// Read a `.zip` or `.tar.gz`/`.tgz` archive (`name` picks the format and is named in
    /// errors; a name with neither suffix is recognised by its first bytes). A single
    /// top-level folder holding `SKILL.md` is stripped. Everything stays in memory.
    pub fn read_archive(name: &str, bytes: &[u8]) -> Result<Tree, TreeError> {
        let lower = name.to_ascii_lowercase();
        let files = if lower.ends_with(".zip") {
            archive::read_zip(name, bytes)?
        } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            archive::read_tar_gz(name, bytes)?
        } else if bytes.starts_with(b"PK\x03\x04") {
            archive::read_zip(name, bytes)?
        } else if bytes.starts_with(&[0x1f, 0x8b]) {
            archive::read_tar_gz(name, bytes)?
        } else {
            return Err(refused(name, "not a .zip, .tar.gz or .tgz archive".into()));
        };
        Tree::from_files(strip_top_folder(files))
    }

    /// Build a tree from files (tests, benches). Paths are checked as for archives.
    pub fn from_files(mut files: Vec<TreeFile>) -> Result<Tree, TreeError> {
        let mut total = 0u64;
        for f in &files {
            check_path(&f.path)?;
            total += f.contents.len() as u64;
        }
        if files.len() > MAX_FILES {
            return Err(refused(
                ".",
                format!(
                    "{} files, more than the {MAX_FILES} a skill may have",
                    files.len()
                ),
            ));
        }
        if total > MAX_BYTES {
            return Err(refused(
                ".",
                format!("{total} bytes, more than the {MAX_BYTES} a skill may have"),
            ));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = files.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(refused(&w[0].path, "appears twice".into()));
        }
        // A file may not also be a directory of another (`a` and `a/b`).
        for w in files.windows(2) {
            if w[1].path.starts_with(&w[0].path) && w[1].path[w[0].path.len()..].starts_with('/') {
                return Err(refused(&w[0].path, "is both a file and a directory".into()));
            }
        }
        if !files.iter().any(|f| f.path == crate::manifest::FILE) {
            return Err(refused(
                crate::manifest::FILE,
                "missing: a skill has a SKILL.md at its root".into(),
            ));
        }
        Ok(Tree { files })
    }

    pub fn files(&self) -> &[TreeFile] {
        &self.files
    }

    pub fn get(&self, path: &str) -> Option<&TreeFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Total bytes of contents.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.contents.len() as u64).sum()
    }

    /// The canonical hash, lower-case hex.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"cordon-skill-tree-v1\0");
        h.update((self.files.len() as u64).to_be_bytes());
        for f in &self.files {
            // Length-prefixed fields: no two different trees frame to the same bytes.
            h.update((f.path.len() as u64).to_be_bytes());
            h.update(f.path.as_bytes());
            h.update(if f.executable { b"755" } else { b"644" });
            h.update((f.contents.len() as u64).to_be_bytes());
            h.update(&f.contents);
        }
        hex::encode(h.finalize())
    }

    /// Paths added, removed and changed from `old` to `self`.
    pub fn diff(&self, old: &Tree) -> TreeDiff {
        let mut d = TreeDiff::default();
        for f in &self.files {
            match old.get(&f.path) {
                None => d.added.push(f.path.clone()),
                Some(o) if o != f => d.changed.push(f.path.clone()),
                Some(_) => {}
            }
        }
        for o in &old.files {
            if self.get(&o.path).is_none() {
                d.removed.push(o.path.clone());
            }
        }
        d
    }
}

/// What changed between two trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl TreeDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Open `path` without following a symlink and read it, refusing hard links and
/// anything larger than `budget` bytes (what the tree's limit still allows).
fn read_regular(path: &Path, rel: &str, budget: u64) -> Result<TreeFile, TreeError> {
    // O_NOFOLLOW: a file swapped for a symlink after the directory was listed is refused
    // by open() itself; O_NONBLOCK: a file swapped for a FIFO does not hang the read.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                refused(
                    rel,
                    "is a symlink (a skill has only regular files and folders)".into(),
                )
            } else {
                io_err(path, e)
            }
        })?;
    // The checks are made on the opened file, not on the name that was listed.
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.is_file() {
        return Err(refused(
            rel,
            format!("is a {}", special_kind(meta.file_type())),
        ));
    }
    if meta.nlink() > 1 {
        return Err(refused(
            rel,
            format!(
                "is a hard link ({} names for one file): it may be shared with a file outside the skill",
                meta.nlink()
            ),
        ));
    }
    if meta.len() > budget {
        return Err(too_big(rel));
    }
    let mut contents = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed: a file that grew after the check is seen, not read whole.
    (&mut file)
        .take(budget + 1)
        .read_to_end(&mut contents)
        .map_err(|e| io_err(path, e))?;
    if contents.len() as u64 > budget {
        return Err(too_big(rel));
    }
    Ok(TreeFile {
        path: rel.to_string(),
        executable: meta.permissions().mode() & 0o111 != 0,
        contents,
    })
}

fn too_big(path: &str) -> TreeError {
    refused(
        path,
        format!("the skill would hold more than the {MAX_BYTES} bytes a skill may have"),
    )
}

fn special_kind(kind: fs::FileType) -> &'static str {
    if kind.is_block_device() {
        "block device (a skill has only regular files and folders)"
    } else if kind.is_char_device() {
        "character device (a skill has only regular files and folders)"
    } else if kind.is_fifo() {
        "FIFO (a skill has only regular files and folders)"
    } else if kind.is_socket() {
        "socket (a skill has only regular files and folders)"
    } else {
        "special file (a skill has only regular files and folders)"
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn io_err(path: &Path, source: std::io::Error) -> TreeError {
    TreeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// When nothing but one folder is at the top and that folder holds `SKILL.md` (the way
/// archives of a folder are usually made), its contents are the skill.
fn strip_top_folder(files: Vec<TreeFile>) -> Vec<TreeFile> {
    if files.iter().any(|f| f.path == crate::manifest::FILE) {
        return files;
    }
    let Some(top) = files
        .first()
        .and_then(|f| f.path.split_once('/'))
        .map(|(top, _)| format!("{top}/"))
    else {
        return files;
    };
    let all_inside = files.iter().all(|f| f.path.starts_with(&top));
    let has_manifest = files
        .iter()
        .any(|f| f.path.strip_prefix(&top) == Some(crate::manifest::FILE));
    if !all_inside || !has_manifest {
        return files;
    }
    files
        .into_iter()
        .map(|mut f| {
            f.path = f.path[top.len()..].to_string();
            f
        })
        .collect()
}

fn refused(path: &str, reason: String) -> TreeError {
    TreeError::Refused {
        path: path.to_string(),
        reason,
    }
}

/// A relative path of plain components: no `.`/`..`, no leading `/`, no empty parts,
/// no backslashes or control characters (which could hide what a name is).
pub(crate) fn check_path(path: &str) -> Result<(), TreeError> {
    let bad = |why: &str| Err(refused(path, why.to_string()));
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("absolute path (would land outside the skill)");
    }
    if path.contains('\\') {
        return bad("backslash in a path");
    }
    if path.chars().any(char::is_control) {
        return bad("control character in a name");
    }
    for part in path.split('/') {
        match part {
            "" => return bad("empty path component"),
            "." => return bad("`.` component"),
            ".." => return bad("`..` component (would escape the skill)"),
            _ => {}
        }
    }
    Ok(())
}
