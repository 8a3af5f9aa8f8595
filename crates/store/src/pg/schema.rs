//! PostgreSQL schema migrations, keyed by the one row of `cordon_schema`.
//!
//! Their own list, independent of SQLite's: `MIGRATIONS[i]` takes the schema from
//! version `i` to `i + 1`. Migrations only ever get appended; a released one is never
//! edited. Text that is compared or sorted (ids, timestamps) is `COLLATE "C"`, so it
//! orders bytewise as on SQLite whatever the database's locale.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: everything SQLite's versions 1-4 have.
    r#"CREATE TABLE sessions (
        id TEXT COLLATE "C" PRIMARY KEY,
        agent TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL,
        items BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_agent_updated ON sessions (agent, updated_at);
    CREATE TABLE items (
        session TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        item TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    );
    CREATE TABLE approvals (
        n BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id TEXT COLLATE "C" PRIMARY KEY,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
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
        answered_at TEXT COLLATE "C"
    );
    CREATE INDEX approvals_status_expires ON approvals (status, expires_at);
    CREATE TABLE grants (
        n BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id TEXT COLLATE "C" PRIMARY KEY,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C",
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
        revoked_at TEXT COLLATE "C"
    );
    CREATE INDEX grants_lookup ON grants (agent, kind, tool);
    CREATE TABLE tokens (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'approver', 'operator', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        revoked_at TEXT COLLATE "C",
        last_used_at TEXT COLLATE "C"
    );
    CREATE TABLE events (
        session TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        at TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    );"#,
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Serialises migrations of concurrent first connections (`pg_advisory_xact_lock`).
pub(crate) const MIGRATION_LOCK: i64 = 0x636f_7264_6f6e; // "cordon"
