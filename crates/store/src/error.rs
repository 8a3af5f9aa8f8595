//! Errors of the session store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create session database {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot open session database {}: {source}; if the file is damaged, move it aside \
         (Cordon starts a new one) and keep the copy for inspection",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "session database {database} has schema version {found}, but this Cordon knows \
         versions up to {supported}; it was written by a newer Cordon, upgrade Cordon to use it"
    )]
    SchemaTooNew {
        /// The file, or the PostgreSQL database (without password).
        database: String,
        found: i64,
        supported: i64,
    },
    #[error(
        "session database {} is not a valid Cordon database ({reason}); move it aside and \
         Cordon starts a new one",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("session database: {action}: {source}")]
    Sqlite {
        action: &'static str,
        source: rusqlite::Error,
    },
    #[error("[store] url `{url}` cannot be used: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "cannot connect to the PostgreSQL session database {target}: {source}; check that \
         the server is running, `[store] url` and the password in `[store] password_env`"
    )]
    Connect {
        /// Where it was connecting to, without password.
        target: String,
        source: postgres::Error,
    },
    #[error(
        "PostgreSQL database {target} is not a valid Cordon database ({reason}); point \
         `[store] url` at an empty database or one Cordon created"
    )]
    NotCordon { target: String, reason: String },
    #[error("session database (PostgreSQL): {action}: {source}")]
    Postgres {
        action: &'static str,
        source: postgres::Error,
    },
    #[error(
        "session database (PostgreSQL): {action}: the connection to the server was lost and \
         Cordon does not reconnect; restart Cordon once the server is reachable again"
    )]
    ConnectionLost { action: &'static str },
    #[error("session database (PostgreSQL): the connection thread stopped; restart Cordon")]
    Disconnected,
    #[error("no session `{id}`; list sessions with `cordon sessions`")]
    NoSession { id: String },
    #[error("session `{session}` item #{seq} is not valid JSON: {source}")]
    BadItem {
        session: String,
        seq: u64,
        source: serde_json::Error,
    },
    #[error("cannot encode session item as JSON: {0}")]
    Encode(serde_json::Error),
    #[error("no approval `{id}`; list pending ones with `cordon approvals list`")]
    NoApproval { id: String },
    #[error(
        "approval `{id}` was already answered: {status} by {by}; nothing changed \
         (see it with `cordon approvals list --all`)"
    )]
    AlreadyAnswered {
        id: String,
        status: String,
        by: String,
    },
    #[error("approval `{id}` expired at {expires_at} and was denied; the agent has to ask again")]
    ApprovalExpired { id: String, expires_at: String },
    #[error("approval `{id}`: cannot grant that scope: {reason}")]
    BadScope { id: String, reason: String },
    #[error("no grant `{id}`; list them with `cordon approvals grants --all`")]
    NoGrant { id: String },
    #[error("grant `{id}` was already revoked at {at}")]
    AlreadyRevoked { id: String, at: String },
    #[error(
        "no label recorded for `{path}` in workspace {workspace}; list labelled files with \
         `cordon files labels`"
    )]
    NoFileLabel { workspace: String, path: String },
    #[error(
        "no pending pairing has code `{code}` (it was never issued, was already decided, or \
         expired after an hour); see `cordon pairing list`"
    )]
    NoPairing { code: String },
    #[error("{table} row `{id}` is damaged: {reason}")]
    BadRow {
        table: &'static str,
        id: String,
        reason: String,
    },
    #[error("cannot format the current time: {0}")]
    Clock(#[from] time::error::Format),
    #[error("session database handle is unusable: a thread panicked while using it")]
    Poisoned,
}
