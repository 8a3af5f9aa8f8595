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
