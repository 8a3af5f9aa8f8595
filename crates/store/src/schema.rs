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
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Tables every current database must have.
pub(crate) const TABLES: &[&str] = &["sessions", "items"];
