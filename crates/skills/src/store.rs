//! The installed trees: `STATE/skills/SHA256/`, written once, read-only (files 0444 or
//! 0555, directories 0555), keyed by the canonical hash. Installing writes into a
//! temporary directory beside it and renames it into place, so a failure leaves nothing
//! half-installed. Every load re-reads the tree and re-verifies its hash.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::tree::{Tree, TreeError, TreeFile};

/// The store under a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An installed tree that no longer hashes to its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub expected: String,
    /// `None` when the tree is missing or unreadable (see `reason`).
    pub actual: Option<String>,
    /// Files added, removed or changed, when the tree could be read.
    pub files: Vec<String>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("skill tree {expected} has drifted: {reason}")]
    Drifted { expected: String, reason: String },
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store {
            root: state_dir.join("skills"),
        }
    }

    /// `STATE/skills`: every installed tree is a folder in it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the tree of `sha256` is (or would be) installed.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(sha256)
    }

    /// Install `tree` (idempotent: an existing verified copy is kept; one that has
    /// drifted is replaced by this verified tree). Returns its path.
    ///
    /// Written into a temporary folder beside the target, made read-only, synced, then
    /// renamed into place; the per-file list (`SHA256.files`) is written last. Any
    /// failure removes what was written: nothing half-installed remains.
    pub fn install(&self, tree: &Tree) -> Result<PathBuf, StoreError> {
        let sha = tree.sha256();
        let dest = self.path(&sha);
        let list = self.file_list_path(&sha);
        if dest.exists() || list.exists() {
            if self.load(&sha).is_ok() {
                return Ok(dest);
            }
            self.remove(&sha)?;
        }
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        let staging = tempfile::Builder::new()
            .prefix(".install-")
            .tempdir_in(&self.root)
            .map_err(|e| io_err(&self.root, e))?;
        let staged = staging.path().to_path_buf();
        // TempDir cannot delete a read-only tree: on failure it is made writable first.
        let result = write_tree(&staged, tree)
            .and_then(|()| std::fs::rename(&staged, &dest).map_err(|e| io_err(&dest, e)));
        if let Err(e) = result {
            let _ = make_writable(&staged);
            drop(staging);
            // Another install of the same tree may have won the race: that copy is as good.
            if self.load(&sha).is_ok() {
                return Ok(dest);
            }
            return Err(e);
        }
        // The folder now has its final name; the TempDir must not delete it.
        let _ = staging.keep();
        let listed = config::atomic_write(&list, file_list(tree).as_bytes(), 0o444)
            .map_err(|e| StoreError::Io {
                path: e.path.clone(),
                source: std::io::Error::new(e.source.kind(), format!("{}: {}", e.step, e.source)),
            })
            .and_then(|()| sync_dir(&self.root));
        if let Err(e) = listed {
            let _ = self.remove(&sha);
            return Err(e);
        }
        Ok(dest)
    }

    /// Read the installed tree of `sha256` and check it still hashes to it. On a
    /// mismatch, the files added, removed or changed since install are named (from the
    /// per-file list written at install).
    pub fn load(&self, sha256: &str) -> Result<Tree, Drift> {
        let drift = |actual: Option<String>, files: Vec<String>, reason: String| Drift {
            expected: sha256.to_string(),
            actual,
            files,
            reason,
        };
        if !is_sha256(sha256) {
            return Err(drift(
                None,
                Vec::new(),
                format!("`{sha256}` is not a tree hash (64 lower-case hex digits)"),
            ));
        }
        let dir = self.path(sha256);
        let tree = match Tree::read_dir(&dir) {
            Ok(t) => t,
            Err(TreeError::Io { path, source })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(drift(None, Vec::new(), format!("{path} is missing")));
            }
            Err(TreeError::Refused { path, reason }) => {
                return Err(drift(None, vec![path.clone()], format!("{path}: {reason}")));
            }
            Err(e) => return Err(drift(None, Vec::new(), e.to_string())),
        };
        let actual = tree.sha256();
        if actual == sha256 {
            return Ok(tree);
        }
        let (files, reason) = match std::fs::read_to_string(self.file_list_path(sha256)) {
            Ok(text) => describe_drift(&parse_file_list(&text), &tree),
            Err(e) => (
                Vec::new(),
                format!(
                    "its files changed (which ones is unknown: {}: {e})",
                    self.file_list_path(sha256).display()
                ),
            ),
        };
        Err(drift(Some(actual), files, reason))
    }

    /// Remove the tree of `sha256` (made writable first) and its file list. Missing is
    /// not an error.
    pub fn remove(&self, sha256: &str) -> Result<(), StoreError> {
        if !is_sha256(sha256) {
            return Err(StoreError::Io {
                path: self.root.join(sha256),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a tree hash (64 lower-case hex digits)",
                ),
            });
        }
        let dir = self.path(sha256);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {
                make_writable(&dir)?;
                std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            }
            Ok(_) => std::fs::remove_file(&dir).map_err(|e| io_err(&dir, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&dir, e)),
        }
        let list = self.file_list_path(sha256);
        match std::fs::remove_file(&list) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&list, e)),
        }
        if self.root.exists() {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// `STATE/skills/SHA256.files`: each file's path, mode and SHA-256 at install.
    fn file_list_path(&self, sha256: &str) -> PathBuf {
        self.root.join(format!("{sha256}.files"))
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_hash(f: &TreeFile) -> String {
    hex::encode(Sha256::digest(&f.contents))
}

fn mode_of(f: &TreeFile) -> &'static str {
    if f.executable { "755" } else { "644" }
}

/// One line per file: `SHA256 MODE PATH` (paths have no newlines: control characters are
/// refused in trees).
fn file_list(tree: &Tree) -> String {
    let mut out = String::from("# cordon skill tree: sha256 mode path\n");
    for f in tree.files() {
        out.push_str(&format!("{} {} {}\n", file_hash(f), mode_of(f), f.path));
    }
    out
}

fn parse_file_list(text: &str) -> BTreeMap<String, (String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (hash, rest) = l.split_once(' ')?;
            let (mode, path) = rest.split_once(' ')?;
            Some((path.to_string(), (hash.to_string(), mode.to_string())))
        })
        .collect()
}

fn describe_drift(
    installed: &BTreeMap<String, (String, String)>,
    now: &Tree,
) -> (Vec<String>, String) {
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for f in now.files() {
        match installed.get(&f.path) {
            None => added.push(f.path.clone()),
            Some((hash, mode)) if *hash != file_hash(f) || mode != mode_of(f) => {
                changed.push(f.path.clone())
            }
            Some(_) => {}
        }
    }
    for path in installed.keys() {
        if now.get(path).is_none() {
            removed.push(path.clone());
        }
    }
    let mut parts = Vec::new();
    for (what, list) in [
        ("changed", &changed),
        ("added", &added),
        ("removed", &removed),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what}: {}", list.join(", ")));
        }
    }
    let reason = if parts.is_empty() {
        "its files changed since install".to_string()
    } else {
        format!("files changed since install ({})", parts.join("; "))
    };
    let mut files: Vec<String> = changed.into_iter().chain(added).chain(removed).collect();
    files.sort();
    (files, reason)
}

/// Write every file of `tree` under `dir`, read-only, synced; then folders read-only.
fn write_tree(dir: &Path, tree: &Tree) -> Result<(), StoreError> {
    let mut dirs = BTreeSet::new();
    for f in tree.files() {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent()
            && parent != dir
        {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            let mut p = parent;
            while p != dir {
                dirs.insert(p.to_path_buf());
                match p.parent() {
                    Some(up) => p = up,
                    None => break,
                }
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        file.write_all(&f.contents).map_err(|e| io_err(&path, e))?;
        let mode = if f.executable { 0o555 } else { 0o444 };
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_err(&path, e))?;
        file.sync_all().map_err(|e| io_err(&path, e))?;
    }
    // Deepest first, so a folder is synced after what it holds.
    for d in dirs.iter().rev() {
        sync_dir(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555))
            .map_err(|e| io_err(d, e))?;
    }
    sync_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| io_err(dir, e))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Give the owner write access to every folder under `dir` (never following a symlink),
/// so it can be deleted.
fn make_writable(dir: &Path) -> Result<(), StoreError> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io_err(&d, e))?;
        for entry in std::fs::read_dir(&d).map_err(|e| io_err(&d, e))? {
            let entry = entry.map_err(|e| io_err(&d, e))?;
            if entry
                .file_type()
                .map_err(|e| io_err(&entry.path(), e))?
                .is_dir()
            {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}
