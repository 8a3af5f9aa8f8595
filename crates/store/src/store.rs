//! [`Store`]: one database connection behind a mutex, shared as `Arc<Store>`: SQLite
//! (the embedded default) or PostgreSQL (see [`crate::pg`]).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::StoreError;
use crate::pg;
use crate::schema;

/// How long a write waits for another handle's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One session, without its items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// A ULID: sortable by creation time.
    pub id: String,
    pub agent: String,
    /// RFC 3339 UTC with microseconds (fixed width, so it sorts as text).
    pub created_at: String,
    pub updated_at: String,
    /// Number of items appended so far.
    pub items: u64,
}

/// The session database. `Send + Sync`.
pub struct Store {
    pub(crate) backend: Backend,
}

/// Where the data lives. Every public method works the same on both.
pub(crate) enum Backend {
    Sqlite {
        path: PathBuf,
        conn: Mutex<Connection>,
    },
    Postgres(pg::Db),
}

pub(crate) fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { action, source }
}

pub(crate) fn now() -> Result<String, StoreError> {
    timestamp(OffsetDateTime::now_utc())
}

/// `t` in the store's fixed-width UTC form, which sorts as text.
pub(crate) fn timestamp(t: OffsetDateTime) -> Result<String, StoreError> {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    Ok(t.to_offset(time::UtcOffset::UTC).format(fmt)?)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Open (creating if needed, mode 0600) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let create = |source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(create)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(create)?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(create)?;
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // The first real read: a file that is not SQLite fails here.
        let mode = wal_mode(&conn).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("cannot switch to WAL journal mode (got `{mode}`)"),
            });
        }
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(open_err)?;
        let store = Store {
            backend: Backend::Sqlite {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            },
        };
        store.migrate(path)?;
        Ok(store)
    }

    /// Connect to (and migrate) the PostgreSQL database at `url`
    /// (`postgres://USER@HOST[:PORT]/DB`, or `postgres:///DB?host=/socket/dir`), with
    /// `password` if the server asks for one. Only Unix sockets and loopback hosts are
    /// accepted: the connection is not encrypted.
    pub fn connect(url: &str, password: Option<&str>) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(pg::Db::connect(url, password)?),
        })
    }

    /// The database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the data lives, for messages: the file, or the PostgreSQL target without
    /// password.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite { path, .. } => path.display().to_string(),
            Backend::Postgres(db) => db.target().to_string(),
        }
    }

    /// The PostgreSQL backend, when that is the one in use.
    pub(crate) fn pg(&self) -> Option<&pg::Db> {
        match &self.backend {
            Backend::Postgres(db) => Some(db),
            Backend::Sqlite { .. } => None,
        }
    }

    fn migrate(&self, path: &Path) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let path = path.to_path_buf();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_err)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > schema::VERSION {
            return Err(StoreError::SchemaTooNew {
                database: path.display().to_string(),
                found: version,
                supported: schema::VERSION,
            });
        }
        if version < 0 {
            return Err(StoreError::Corrupt {
                path: path.clone(),
                reason: format!("negative schema version {version}"),
            });
        }
        if version == 0 {
            // A version-0 file must be empty: never migrate someone else's database.
            let tables: i64 = tx
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(open_err)?;
            if tables != 0 {
                return Err(StoreError::Corrupt {
                    path: path.clone(),
                    reason: "it has tables but no Cordon schema version".into(),
                });
            }
        }
        for (from, migration) in schema::MIGRATIONS
            .iter()
            .enumerate()
            .skip(to_u64(version) as usize)
        {
            tx.execute_batch(migration).map_err(sql("migrate schema"))?;
            tx.pragma_update(None, "user_version", from as i64 + 1)
                .map_err(sql("migrate schema"))?;
        }
        for table in schema::TABLES {
            let found: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .map_err(open_err)?;
            if found != 1 {
                return Err(StoreError::Corrupt {
                    path: path.clone(),
                    reason: format!("table `{table}` is missing"),
                });
            }
        }
        tx.commit().map_err(sql("migrate schema"))
    }

    /// The SQLite connection. Every public method first hands PostgreSQL to [`pg`], so
    /// reaching this with PostgreSQL is a bug, reported as an error rather than a panic.
    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => conn.lock().map_err(|_| StoreError::Poisoned),
            Backend::Postgres(_) => Err(StoreError::Disconnected),
        }
    }

    /// Start a new, empty session for `agent`.
    pub fn create_session(&self, agent: &str) -> Result<SessionRecord, StoreError> {
        if let Some(db) = self.pg() {
            return db.create_session(agent);
        }
        let now = now()?;
        let record = SessionRecord {
            id: ulid::Ulid::new().to_string(),
            agent: agent.to_string(),
            created_at: now.clone(),
            updated_at: now,
            items: 0,
        };
        self.conn()?
            .execute(
                "INSERT INTO sessions (id, agent, created_at, updated_at, items) \
                 VALUES (?1, ?2, ?3, ?4, 0)",
                params![
                    record.id,
                    record.agent,
                    record.created_at,
                    record.updated_at
                ],
            )
            .map_err(sql("create session"))?;
        Ok(record)
    }

    /// The session of `agent` that was used most recently.
    pub fn latest_session(&self, agent: &str) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(db) = self.pg() {
            return db.latest_session(agent);
        }
        self.conn()?
            .query_row(
                "SELECT id, agent, created_at, updated_at, items FROM sessions \
                 WHERE agent = ?1 ORDER BY updated_at DESC, id DESC LIMIT 1",
                [agent],
                row_to_session,
            )
            .optional()
            .map_err(sql("find latest session"))
    }

    pub fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(db) = self.pg() {
            return db.get_session(id);
        }
        self.conn()?
            .query_row(
                "SELECT id, agent, created_at, updated_at, items FROM sessions WHERE id = ?1",
                [id],
                row_to_session,
            )
            .optional()
            .map_err(sql("read session"))
    }

    /// Sessions, most recently used first; all agents when `agent` is `None`.
    pub fn list_sessions(&self, agent: Option<&str>) -> Result<Vec<SessionRecord>, StoreError> {
        if let Some(db) = self.pg() {
            return db.list_sessions(agent);
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT id, agent, created_at, updated_at, items FROM sessions \
                 WHERE ?1 IS NULL OR agent = ?1 ORDER BY updated_at DESC, id DESC",
            )
            .map_err(sql("list sessions"))?;
        let rows = stmt
            .query_map([agent], row_to_session)
            .map_err(sql("list sessions"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list sessions"))
    }

    /// Append one item to `session`; returns its `seq` (from 1).
    pub fn append_item(&self, session: &str, item: &serde_json::Value) -> Result<u64, StoreError> {
        if let Some(db) = self.pg() {
            return db.append_item(session, item);
        }
        let text = serde_json::to_string(item).map_err(StoreError::Encode)?;
        let now = now()?;
        let mut conn = self.conn()?;
        // IMMEDIATE takes the write lock up front: two handles never both read the same
        // count and collide on `seq`.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin append"))?;
        let count: Option<i64> = tx
            .query_row("SELECT items FROM sessions WHERE id = ?1", [session], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("append item"))?;
        let Some(count) = count else {
            return Err(StoreError::NoSession {
                id: session.to_string(),
            });
        };
        let seq = count + 1;
        tx.execute(
            "INSERT INTO items (session, seq, item) VALUES (?1, ?2, ?3)",
            params![session, seq, text],
        )
        .map_err(sql("append item"))?;
        tx.execute(
            "UPDATE sessions SET items = ?2, updated_at = ?3 WHERE id = ?1",
            params![session, seq, now],
        )
        .map_err(sql("append item"))?;
        tx.commit().map_err(sql("commit append"))?;
        Ok(to_u64(seq))
    }

    /// Every item of `session`, in append order. An unknown session is an error.
    pub fn load_items(&self, session: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        if let Some(db) = self.pg() {
            return db.load_items(session);
        }
        let conn = self.conn()?;
        let exists: Option<i64> = conn
            .query_row("SELECT 1 FROM sessions WHERE id = ?1", [session], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("load items"))?;
        if exists.is_none() {
            return Err(StoreError::NoSession {
                id: session.to_string(),
            });
        }
        let mut stmt = conn
            .prepare("SELECT seq, item FROM items WHERE session = ?1 ORDER BY seq")
            .map_err(sql("load items"))?;
        let rows = stmt
            .query_map([session], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql("load items"))?;
        let mut items = Vec::new();
        for row in rows {
            let (seq, text) = row.map_err(sql("load items"))?;
            let item = serde_json::from_str(&text).map_err(|source| StoreError::BadItem {
                session: session.to_string(),
                seq: to_u64(seq),
                source,
            })?;
            items.push(item);
        }
        Ok(items)
    }
}

/// Switch to WAL. Changing the journal mode does not wait on SQLite's busy handler, so
/// when another process is opening (or converting) the same new file at this moment the
/// switch is retried until [`BUSY_TIMEOUT`].
fn wal_mode(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn row_to_session(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.get(0)?,
        agent: r.get(1)?,
        created_at: r.get(2)?,
        updated_at: r.get(3)?,
        items: to_u64(r.get::<_, i64>(4)?),
    })
}
