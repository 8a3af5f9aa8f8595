//! The scanner: reads every file of a skill (instructions and scripts in any language)
//! and reports what a reviewer would flag. Deterministic and offline.

use serde::Serialize;

use crate::manifest::Capabilities;
use crate::tree::Tree;

/// How bad a finding is. `Critical` can never be installed; `High` needs a human's
/// `--accept-risk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One thing the scanner flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id of the rule, e.g. `exec.pipe_to_shell`.
    pub id: &'static str,
    pub severity: Severity,
    /// Path within the skill.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The offending text (shortened, control and invisible characters escaped).
    pub evidence: String,
    /// Why it matters, for the human deciding.
    pub why: &'static str,
}

/// Everything found in one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The verdict word stored in the lock: `clean` or the worst severity.
    pub fn verdict(&self) -> &'static str {
        self.worst().map_or("clean", Severity::as_str)
    }

    /// Nothing high or critical.
    pub fn passes(&self) -> bool {
        self.worst().is_none_or(|s| s < Severity::High)
    }
}

/// Scan `tree`, whose manifest declares `declared` (hosts not among them count as
/// undeclared).
pub fn scan(tree: &Tree, declared: &Capabilities) -> Report {
    let _ = (tree, declared);
    unimplemented!("helper: scanner")
}
