//! Schema migrations, keyed by `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Migrations only ever
//! get appended; a released one is never edited.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: sessions and their items.
    "CREATE TABLE sessions (
        id TEXT PRIMARY KEY NOT NULL,
        agent TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        items INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX sessions_agent_updated ON sessions (agent, updated_at);
    CREATE TABLE items (
        session TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        item TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    ) STRICT, WITHOUT ROWID;",
    // 1 -> 2: approval requests and the grants their answers created.
    "CREATE TABLE approvals (
        id TEXT PRIMARY KEY NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        agent TEXT NOT NULL,
        session TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('action', 'memory_write')),
        tool TEXT NOT NULL,
        action TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        argv TEXT,
        host TEXT,
        arguments TEXT NOT NULL,
        reason TEXT NOT NULL,
        rule TEXT NOT NULL,
        labels TEXT NOT NULL,
        untrusted_sources TEXT NOT NULL,
        payload TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
        answer TEXT CHECK (answer IN ('once', 'session', 'agent')),
        grant_id TEXT,
        answered_by TEXT,
        answered_at TEXT
    ) STRICT;
    CREATE INDEX approvals_status_expires ON approvals (status, expires_at);
    CREATE TABLE grants (
        id TEXT PRIMARY KEY NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        agent TEXT NOT NULL,
        session TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('action', 'memory_write')),
        tool TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('exact', 'prefix', 'host')),
        fingerprint TEXT,
        argv_prefix TEXT,
        host TEXT,
        action TEXT NOT NULL,
        source TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        revoked_at TEXT
    ) STRICT;
    CREATE INDEX grants_lookup ON grants (agent, kind, tool);",
    // 2 -> 3: gateway API tokens (SHA-256 hashes only).
    "CREATE TABLE tokens (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'approver', 'operator', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT,
        last_used_at TEXT
    ) STRICT;",
    // 3 -> 4: each session's event log (what the gateway streams), replayable by seq.
    "CREATE TABLE events (
        session TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    ) STRICT, WITHOUT ROWID;",
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Tables every current database must have.
pub(crate) const TABLES: &[&str] = &[
    "sessions",
    "items",
    "approvals",
    "grants",
    "tokens",
    "events",
];
