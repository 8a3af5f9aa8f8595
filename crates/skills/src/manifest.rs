//! `SKILL.md`: YAML frontmatter between `---` lines, then Markdown instructions.
//!
//! Fields read (OpenClaw and AgentSkills): `name`, `description`, `version` (or
//! `metadata.version`), `metadata.openclaw.requires.{bins,env,config}`,
//! `metadata.openclaw.os`, `metadata.openclaw.install`; unknown fields are kept, never an
//! error, so existing skills load unchanged. Cordon's own block, `metadata.cordon`,
//! declares capabilities ([`Capabilities`]); a skill that declares nothing gets no
//! network, no secrets and read-only workspace access.
//!
//! Errors name `file:line:column`.

use serde::{Deserialize, Serialize};

/// What a skill may do when its scripts run. Declared in `metadata.cordon`, approved by
/// a human at install, stored in `skills.lock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Host patterns (`api.example.com`, `*.example.com`, `host:port`) its scripts may
    /// reach through the egress proxy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
    /// Vault secret names its scripts get as placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Programs its instructions and scripts use (`python3`, `curl`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bins: Vec<String>,
    /// Workspace access of its scripts.
    #[serde(default)]
    pub workspace: WorkspaceAccess,
}

/// A skill script's access to the agent's workspace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceAccess {
    None,
    #[default]
    Read,
    Write,
}

impl WorkspaceAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceAccess::None => "none",
            WorkspaceAccess::Read => "read",
            WorkspaceAccess::Write => "write",
        }
    }
}

/// A parsed `SKILL.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub version: Option<String>,
    /// `metadata.openclaw.requires.bins` (and `anyBins`).
    pub requires_bins: Vec<String>,
    /// `metadata.openclaw.requires.env`: environment variable names the skill expects;
    /// each is given a vault secret only when the operator maps it at install.
    pub requires_env: Vec<String>,
    /// `metadata.openclaw.requires.config`.
    pub requires_config: Vec<String>,
    /// `metadata.openclaw.os` (empty: any).
    pub os: Vec<String>,
    /// `metadata.cordon`, or the defaults when absent.
    pub capabilities: Capabilities,
    /// Whether `metadata.cordon` was present.
    pub declares: bool,
    /// The Markdown after the frontmatter.
    pub body: String,
    /// 1-based line of `SKILL.md` where `body` starts.
    pub body_line: usize,
}

/// A `SKILL.md` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ManifestError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The file name of a skill's manifest, at the tree's root.
pub const FILE: &str = "SKILL.md";

/// Parse `text`, the contents of `file` (named in errors).
pub fn parse(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let _ = (file, text);
    unimplemented!("helper: manifest parsing")
}
