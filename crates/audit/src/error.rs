//! Errors of the audit log.

use std::path::PathBuf;

use crate::record::EventKind;

/// The first bad record found by [`crate::verify`]. `line` is 1-based; `line` past the
/// last line means records are missing at the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log {} line {line} (record #{}): {reason}", path.display(), seq.map_or_else(|| "?".to_string(), |s| s.to_string()))]
pub struct VerifyError {
    pub path: PathBuf,
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error(
        "{0}; refusing to append to a damaged audit log: keep it as evidence, move the \
         directory aside and start a new log"
    )]
    Broken(VerifyError),
    #[error(
        "audit log {}: an earlier write failed ({reason}); no further records are accepted \
         from this handle, reopen the log to check it",
        path.display()
    )]
    Failed { path: PathBuf, reason: String },
    #[error(
        "a `{kind}` record was not appended: its data does not survive a JSON round trip \
         unchanged ({reason})"
    )]
    Unrepresentable { kind: EventKind, reason: String },
    #[error("a `{kind}` record was not appended: its data cannot be serialised ({reason})")]
    Serialize { kind: EventKind, reason: String },
    #[error("cannot format the current time as RFC 3339: {0}")]
    Clock(#[from] time::error::Format),
}
