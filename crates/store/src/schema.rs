//! Schema migrations of both backends, one list each, side by side.
//!
//! `SQLITE[i]` (keyed by `PRAGMA user_version`) and `POSTGRES[i]` (keyed by the one row
//! of `cordon_schema`) take the schema from version `i` to `i + 1`; the two lists are
//! independent (PostgreSQL started with everything SQLite's versions 1-4 have).
//! Migrations only ever get appended; a released one is never edited. On PostgreSQL,
//! text that is compared or sorted (ids, timestamps) is `COLLATE "C"`, so it orders
//! bytewise as on SQLite whatever the database's locale, and `approvals` and `grants`
//! have an identity column `n` that orders ties as SQLite's `rowid` does.

/// SQLite's migrations.
pub(crate) const SQLITE: &[&str] = &[
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
    // 4 -> 5: file provenance: the label of the session that last wrote each file.
    "CREATE TABLE file_labels (
        workspace TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT,
        labels TEXT NOT NULL,
        session TEXT NOT NULL,
        written_at TEXT NOT NULL,
        PRIMARY KEY (workspace, path)
    ) STRICT, WITHOUT ROWID;",
    // 5 -> 6: chat channels' pairings, cursors and conversations; webhook replay guard.
    "CREATE TABLE pairings (
        channel TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_name TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
        role TEXT CHECK (role IN ('owner', 'approver', 'user')),
        code TEXT,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        decided_at TEXT,
        decided_by TEXT,
        PRIMARY KEY (channel, sender)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX pairings_code ON pairings (code);
    CREATE TABLE channel_cursors (
        channel TEXT PRIMARY KEY NOT NULL,
        cursor TEXT NOT NULL
    ) STRICT;
    CREATE TABLE channel_conversations (
        channel TEXT NOT NULL,
        conversation TEXT NOT NULL,
        session TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (channel, conversation)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE webhook_deliveries (
        hook TEXT NOT NULL,
        signature TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (hook, signature)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);",
    // 6 -> 7: each chat conversation's queue of accepted messages, and the chat messages
    // approval requests were posted on, kept across restarts.
    "CREATE TABLE chat_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        conversation TEXT NOT NULL,
        event_id TEXT NOT NULL,
        turn TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        started_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        done_at TEXT,
        outcome TEXT CHECK (outcome IN ('answered', 'failed', 'abandoned')),
        error TEXT
    ) STRICT;
    CREATE INDEX chat_queue_open ON chat_queue (channel, conversation, done_at, id);
    CREATE TABLE chat_approval_messages (
        approval TEXT NOT NULL,
        channel TEXT NOT NULL,
        conversation TEXT NOT NULL,
        message_id TEXT NOT NULL,
        posted_at TEXT NOT NULL,
        PRIMARY KEY (approval, channel)
    ) STRICT, WITHOUT ROWID;",
];

/// The SQLite schema version this build writes.
pub(crate) const SQLITE_VERSION: i64 = SQLITE.len() as i64;

/// Tables every current database must have.
pub(crate) const TABLES: &[&str] = &[
    "sessions",
    "items",
    "approvals",
    "grants",
    "tokens",
    "events",
    "file_labels",
    "pairings",
    "channel_cursors",
    "channel_conversations",
    "webhook_deliveries",
    "chat_queue",
    "chat_approval_messages",
];

/// PostgreSQL's migrations.
pub(crate) const POSTGRES: &[&str] = &[
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
    // 1 -> 2: file provenance (SQLite's 4 -> 5).
    r#"CREATE TABLE file_labels (
        workspace TEXT COLLATE "C" NOT NULL,
        path TEXT COLLATE "C" NOT NULL,
        sha256 TEXT,
        labels TEXT NOT NULL,
        session TEXT NOT NULL,
        written_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (workspace, path)
    );"#,
    // 2 -> 3: chat channels and the webhook replay guard (SQLite's 5 -> 6).
    r#"CREATE TABLE pairings (
        channel TEXT COLLATE "C" NOT NULL,
        sender TEXT COLLATE "C" NOT NULL,
        sender_name TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
        role TEXT CHECK (role IN ('owner', 'approver', 'user')),
        code TEXT COLLATE "C",
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C",
        decided_at TEXT COLLATE "C",
        decided_by TEXT,
        PRIMARY KEY (channel, sender)
    );
    CREATE INDEX pairings_code ON pairings (code);
    CREATE TABLE channel_cursors (
        channel TEXT COLLATE "C" PRIMARY KEY,
        cursor TEXT NOT NULL
    );
    CREATE TABLE channel_conversations (
        channel TEXT COLLATE "C" NOT NULL,
        conversation TEXT COLLATE "C" NOT NULL,
        session TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (channel, conversation)
    );
    CREATE TABLE webhook_deliveries (
        hook TEXT COLLATE "C" NOT NULL,
        signature TEXT COLLATE "C" NOT NULL,
        received_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (hook, signature)
    );
    CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);"#,
    // 3 -> 4: chat conversations' queues and approval messages (SQLite's 6 -> 7).
    r#"CREATE TABLE chat_queue (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        channel TEXT COLLATE "C" NOT NULL,
        conversation TEXT COLLATE "C" NOT NULL,
        event_id TEXT NOT NULL,
        turn TEXT NOT NULL,
        queued_at TEXT COLLATE "C" NOT NULL,
        started_at TEXT COLLATE "C",
        attempts BIGINT NOT NULL DEFAULT 0,
        done_at TEXT COLLATE "C",
        outcome TEXT CHECK (outcome IN ('answered', 'failed', 'abandoned')),
        error TEXT
    );
    CREATE INDEX chat_queue_open ON chat_queue (channel, conversation, done_at, id);
    CREATE TABLE chat_approval_messages (
        approval TEXT COLLATE "C" NOT NULL,
        channel TEXT COLLATE "C" NOT NULL,
        conversation TEXT COLLATE "C" NOT NULL,
        message_id TEXT NOT NULL,
        posted_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (approval, channel)
    );"#,
];

/// The PostgreSQL schema version this build writes.
pub(crate) const POSTGRES_VERSION: i64 = POSTGRES.len() as i64;

/// Serialises migrations of concurrent first connections (`pg_advisory_xact_lock`).
pub(crate) const MIGRATION_LOCK: i64 = 0x636f_7264_6f6e; // "cordon"
