//! [`Store`]: the database behind one [`Backend`] (SQLite, the embedded default, or
//! PostgreSQL), chosen once by [`Store::open`] or [`Store::connect`], shared as
//! `Arc<Store>`. Its methods live with their area (`sessions`, `events`, `tokens`,
//! `approvals`) and delegate to the backend without asking which one it is.

use std::path::Path;

use time::OffsetDateTime;
use time::macros::format_description;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::pg::Postgres;
use crate::sqlite::Sqlite;

/// The session database. `Send + Sync`.
pub struct Store {
    pub(crate) backend: Box<dyn Backend>,
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
        Ok(Store {
            backend: Box::new(Sqlite::open(path)?),
        })
    }

    /// Connect to (and migrate) the PostgreSQL database at `url`
    /// (`postgres://USER@HOST[:PORT]/DB`, or `postgres:///DB?host=/socket/dir`), with
    /// `password` if the server asks for one. Only Unix sockets and loopback hosts are
    /// accepted: the connection is not encrypted.
    pub fn connect(url: &str, password: Option<&str>) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Box::new(Postgres::connect(url, password)?),
        })
    }

    /// The database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        self.backend.path()
    }

    /// Where the data lives, for messages: the file, or the PostgreSQL target without
    /// password.
    pub fn location(&self) -> String {
        self.backend.location()
    }
}
