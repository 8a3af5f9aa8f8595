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

use std::path::Path;

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
    pub fn read_dir(root: &Path) -> Result<Tree, TreeError> {
        let _ = root;
        unimplemented!("helper: tree reading")
    }

    /// Read a `.zip` or `.tar.gz`/`.tgz` archive (`name` picks the format and is named in
    /// errors). A single top-level folder holding `SKILL.md` is stripped.
    pub fn read_archive(name: &str, bytes: &[u8]) -> Result<Tree, TreeError> {
        let _ = (name, bytes);
        unimplemented!("helper: archives")
    }

    /// Build a tree from files (tests, benches). Paths are checked as for archives.
    pub fn from_files(files: Vec<TreeFile>) -> Result<Tree, TreeError> {
        let _ = files;
        unimplemented!("helper: tree")
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
        unimplemented!("helper: canonical hash")
    }

    /// Paths added, removed and changed from `old` to `self`.
    pub fn diff(&self, old: &Tree) -> TreeDiff {
        let _ = old;
        unimplemented!("helper: diff")
    }
}

/// What changed between two trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}
