//! [`Store`]: the database behind one [`Backend`] (SQLite, the embedded default, or
//! PostgreSQL), chosen once by [`Store::open`] or [`Store::connect`], shared as
//! `Arc<Store>`. Its methods live with their area (`sessions`, `events`, `tokens`,
//! `approvals`) and delegate to the backend without asking which one it is.
//!
//! A process that may never need the store (`cordon sandbox exec`: its approver never
//! asks) opens it with [`Store::open_on_first_use`] / [`Store::connect_on_first_use`]:
//! the database is opened (created, migrated; connected) by the first method that needs
//! it, with the same checks and errors as an eager open. Until then nothing is created,
//! and a process that needs nothing touches nothing. An open that fails is an error of
//! that call, and is tried again by the next one: a store is never replaced by a default.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use time::OffsetDateTime;
use time::macros::format_description;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::pg::{Postgres, Target};
use crate::sqlite::Sqlite;

/// The session database. `Send + Sync`.
pub struct Store {
    backend: Slot,
}

/// The backend, open already or opened at its first use.
enum Slot {
    Open(Box<dyn Backend>),
    OnFirstUse(Deferred),
}

/// A backend to be opened by the first call that needs one.
struct Deferred {
    how: Opener,
    cell: OnceLock<Box<dyn Backend>>,
    /// Held while opening, so two threads never open (create, migrate) it twice.
    opening: Mutex<()>,
}

/// What [`Deferred`] opens.
enum Opener {
    Sqlite(PathBuf),
    /// Boxed: a parsed PostgreSQL configuration is large, a path is not.
    Postgres(Box<Target>),
}

impl Deferred {
    fn get(&self) -> Result<&dyn Backend, StoreError> {
        if let Some(backend) = self.cell.get() {
            return Ok(backend.as_ref());
        }
        let _opening = self.opening.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(backend) = self.cell.get() {
            return Ok(backend.as_ref());
        }
        let backend: Box<dyn Backend> = match &self.how {
            Opener::Sqlite(path) => Box::new(Sqlite::open(path)?),
            Opener::Postgres(target) => Box::new(Postgres::connect_to(target)?),
        };
        Ok(self.cell.get_or_init(|| backend).as_ref())
    }
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
            backend: Slot::Open(Box::new(Sqlite::open(path)?)),
        })
    }

    /// [`Store::open`] at the first call that uses the database; nothing is created or
    /// read before. That call returns the error an eager open would have (and the next
    /// call tries again).
    pub fn open_on_first_use(path: &Path) -> Store {
        Store::deferred(Opener::Sqlite(path.to_path_buf()))
    }

    /// Connect to (and migrate) the PostgreSQL database at `url`
    /// (`postgres://USER@HOST[:PORT]/DB`, or `postgres:///DB?host=/socket/dir`), with
    /// `password` if the server asks for one. Only Unix sockets and loopback hosts are
    /// accepted: the connection is not encrypted.
    pub fn connect(url: &str, password: Option<&str>) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Slot::Open(Box::new(Postgres::connect(url, password)?)),
        })
    }

    /// [`Store::connect`] at the first call that uses the database. The URL is checked
    /// now (a bad one is an error here); the connection and migration wait.
    pub fn connect_on_first_use(url: &str, password: Option<&str>) -> Result<Store, StoreError> {
        Ok(Store::deferred(Opener::Postgres(Box::new(Target::parse(
            url, password,
        )?))))
    }

    fn deferred(how: Opener) -> Store {
        Store {
            backend: Slot::OnFirstUse(Deferred {
                how,
                cell: OnceLock::new(),
                opening: Mutex::new(()),
            }),
        }
    }

    /// The open backend; on the first use of a store opened on first use, opened now.
    pub(crate) fn backend(&self) -> Result<&dyn Backend, StoreError> {
        match &self.backend {
            Slot::Open(backend) => Ok(backend.as_ref()),
            Slot::OnFirstUse(deferred) => deferred.get(),
        }
    }

    /// Whether the database has been opened: always, unless opened on first use and not
    /// used yet.
    pub fn is_open(&self) -> bool {
        match &self.backend {
            Slot::Open(_) => true,
            Slot::OnFirstUse(deferred) => deferred.cell.get().is_some(),
        }
    }

    /// The database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Slot::Open(backend) => backend.path(),
            Slot::OnFirstUse(Deferred {
                how: Opener::Sqlite(path),
                ..
            }) => Some(path),
            Slot::OnFirstUse(_) => None,
        }
    }

    /// Where the data lives, for messages: the file, or the PostgreSQL target without
    /// password.
    pub fn location(&self) -> String {
        match &self.backend {
            Slot::Open(backend) => backend.location(),
            Slot::OnFirstUse(Deferred { how, .. }) => match how {
                Opener::Sqlite(path) => path.display().to_string(),
                Opener::Postgres(target) => target.name.clone(),
            },
        }
    }
}
