//! `skills.lock`, beside the config: TOML, sorted, stable, meant to be committed. Per
//! skill: name, source, version, the canonical tree hash, the scan verdict, the approved
//! capabilities, the agents it is enabled for and the approved `requires.env` mapping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::Capabilities;

/// The lock file's name, in the config file's directory.
pub const FILE: &str = "skills.lock";

/// One installed skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    pub name: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Canonical tree hash ([`crate::Tree::sha256`]).
    pub sha256: String,
    /// `clean`, `info`, `low`, `medium` or `high` (never `critical`).
    pub verdict: String,
    /// A human accepted high findings (`--accept-risk`).
    #[serde(default)]
    pub accepted_risk: bool,
    /// Agents it is enabled for; empty means every agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// RFC 3339 time of the install or last update.
    pub installed_at: String,
    pub capabilities: Capabilities,
    /// `requires.env` name -> vault secret name, as approved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Locked {
    /// Whether it is enabled for `agent`.
    pub fn enabled_for(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|a| a == agent)
    }
}

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Format version, 1.
    pub version: u32,
    #[serde(default, rename = "skill")]
    pub skills: Vec<Locked>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Lock {
    /// The lock file for `config_file`.
    pub fn path_for(config_file: &Path) -> PathBuf {
        config_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(FILE)
    }

    /// Read `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock, LockError> {
        let _ = path;
        unimplemented!("helper: lock")
    }

    /// Write atomically (sorted by name).
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let _ = path;
        unimplemented!("helper: lock")
    }

    pub fn get(&self, name: &str) -> Option<&Locked> {
        self.skills.iter().find(|s| s.name == name)
    }

    /// Insert or replace by name.
    pub fn put(&mut self, skill: Locked) {
        self.skills.retain(|s| s.name != skill.name);
        self.skills.push(skill);
        self.skills.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn remove(&mut self, name: &str) -> Option<Locked> {
        let i = self.skills.iter().position(|s| s.name == name)?;
        Some(self.skills.remove(i))
    }
}
