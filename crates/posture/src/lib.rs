//! `cordon audit`: a deployment looked at the way an attacker would look at it.
//!
//! Each part is a pure function of what it is given so that tests can feed it
//! deliberately bad deployments:
//! - [`config_checks`]: the config file's text, read leniently as TOML so that a config
//!   Cordon would refuse to load (`egress.allow = ["*"]`) still gets its findings, plus
//!   the tier it declares;
//! - [`host`]: the running host — which addresses a port really listens on
//!   (`/proc/net/tcp*`), whether we run as root, modes of the config, state, vault and
//!   audit files, and whether the cloud metadata address answers;
//! - [`tokens`] and [`state`]: gateway tokens worth rotating, a damaged audit log, secrets
//!   bound too widely, from what the caller read out of the store, log and vault;
//! - [`MetadataTarget`]: where the metadata probes go, and how a sandboxed probe is read;
//! - [`mcp`]: MCP servers — egress that admits any host, trusted and remote servers,
//!   secrets they cannot use, tools never approved and pins left for removed servers;
//! - [`blast`]: what a fully compromised agent could reach, computed from the effective
//!   policy (the guard decides sample actions), not guessed from the config.
//!
//! Every finding has a stable id (`gateway.bind_public_without_tls`), a severity, the
//! evidence it was based on and a remedy. `cordon audit` exits 1 when any finding is
//! critical.

pub mod blast;
pub mod config_checks;
pub mod host;
pub mod mcp;
mod metadata;
pub mod skills;
pub mod state;
pub mod tokens;

pub use metadata::{
    CurlExit, METADATA, METADATA_PROBE_ENV, MetadataTarget, MetadataTargetError, Probe, ProbePath,
    curl_missing, read_probe, sandbox_probe_finding, sandbox_unavailable,
};

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warn,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id, `area.what`.
    pub id: &'static str,
    pub severity: Severity,
    /// One line: what is wrong.
    pub title: String,
    /// What it was based on (a config key and value, a file and its mode, an address).
    pub evidence: String,
    /// How to fix it.
    pub remedy: String,
}

impl Finding {
    pub fn new(
        id: &'static str,
        severity: Severity,
        title: impl Into<String>,
        evidence: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding {
            id,
            severity,
            title: title.into(),
            evidence: evidence.into(),
            remedy: remedy.into(),
        }
    }

    /// A check that could not run (`audit.not_checked`): the audit says so instead of
    /// reporting nothing, since "nothing found" would read as "checked and clean".
    pub fn not_checked(
        what: impl std::fmt::Display,
        why: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding::new(
            "audit.not_checked",
            Severity::Warn,
            format!("{what} could not be checked"),
            why,
            remedy,
        )
    }
}

/// Findings sorted worst first, then by id.
pub fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    findings
}
