//! The SQLite backend: one connection to `state_dir/cordon.db` behind a mutex.
//!
//! Guarantees: the file is created 0600 and runs in WAL mode; every write that reads
//! before it writes is one `BEGIN IMMEDIATE` transaction ([`Sqlite::begin`]), which
//! takes the database's write lock up front, so two handles (threads or processes)
//! never both read the same count; the schema is versioned by `PRAGMA user_version`,
//! and a file from a newer Cordon, or one that is not a Cordon database, is refused
//! rather than modified.

use std::ops::Deref;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::schema;
use crate::store::to_u64;

/// How long a write waits for another handle's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { action, source }
}

pub(crate) struct Sqlite {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Sqlite {
    /// Open (creating if needed, mode 0600) and migrate the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Sqlite, StoreError> {
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
        let db = Sqlite {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        db.migrate()?;
        Ok(db)
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// `BEGIN IMMEDIATE`: the write lock, held until [`Tx::commit`]; dropping the
    /// transaction uncommitted rolls it back. `action` names a failure to begin.
    pub(crate) fn begin(&self, action: &'static str) -> Result<Tx<'_>, StoreError> {
        let conn = self.conn()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql(action))?;
        Ok(Tx { conn })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = self.conn()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(open_err)?;
        let tx = Tx { conn };
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > schema::SQLITE_VERSION {
            return Err(StoreError::SchemaTooNew {
                database: path.display().to_string(),
                found: version,
                supported: schema::SQLITE_VERSION,
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
        for (from, migration) in schema::SQLITE
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
        tx.commit("migrate schema")
    }
}

impl Backend for Sqlite {
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// A `BEGIN IMMEDIATE` transaction holding the connection; see [`Sqlite::begin`].
/// (Written by hand rather than `rusqlite::Transaction`, which would borrow the
/// connection from the mutex guard it is stored next to.)
pub(crate) struct Tx<'a> {
    conn: MutexGuard<'a, Connection>,
}

impl Tx<'_> {
    pub(crate) fn commit(self, action: &'static str) -> Result<(), StoreError> {
        // On failure the drop below rolls back.
        self.conn.execute_batch("COMMIT").map_err(sql(action))
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            // Nothing to report to: the next BEGIN fails visibly if this did not work.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
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
