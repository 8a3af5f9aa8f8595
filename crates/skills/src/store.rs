//! The installed trees: `STATE/skills/SHA256/`, written once, read-only (files 0444 or
//! 0555, directories 0555), keyed by the canonical hash. Installing writes into a
//! temporary directory beside it and renames it into place, so a failure leaves nothing
//! half-installed. Every load re-reads the tree and re-verifies its hash.

use std::path::{Path, PathBuf};

use crate::tree::{Tree, TreeError};

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

    /// Where the tree of `sha256` is (or would be) installed.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(sha256)
    }

    /// Install `tree` (idempotent: an existing verified copy is kept). Returns its path.
    pub fn install(&self, tree: &Tree) -> Result<PathBuf, StoreError> {
        let _ = tree;
        unimplemented!("helper: store")
    }

    /// Read the installed tree of `sha256` and check it still hashes to it.
    pub fn load(&self, sha256: &str) -> Result<Tree, Drift> {
        let _ = sha256;
        unimplemented!("helper: store")
    }

    /// Remove the tree of `sha256` (made writable first). Missing is not an error.
    pub fn remove(&self, sha256: &str) -> Result<(), StoreError> {
        let _ = sha256;
        unimplemented!("helper: store")
    }
}
