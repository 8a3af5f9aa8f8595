//! The store's tests run on both backends: each is written once as `fn name(db: &Db)`
//! and [`on_both!`] makes a `sqlite::name` and a `postgres::name` test of it. `Db` is a
//! fresh database: a file in a temporary directory, or a throwaway PostgreSQL cluster
//! (testkit's [`PgCluster`]: real server, Unix socket only, stopped on drop). A missing
//! PostgreSQL makes the `postgres::` tests fail, naming the package to install.
#![allow(dead_code)] // Each test file uses part of it.

use std::path::PathBuf;

use cordon_store::{Store, StoreError};
use testkit::PgCluster;

pub enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgCluster),
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cordon.db");
        Db::Sqlite { _dir: dir, path }
    }

    pub fn postgres() -> Db {
        Db::Postgres(PgCluster::start())
    }

    /// A new handle (its own connection), as another process would have.
    pub fn try_open(&self) -> Result<Store, StoreError> {
        match self {
            Db::Sqlite { path, .. } => Store::open(path),
            Db::Postgres(cluster) => Store::connect(&cluster.url(), None),
        }
    }

    pub fn open(&self) -> Store {
        self.try_open().unwrap()
    }

    /// A handle that opens (connects to, migrates) the database at its first use.
    pub fn on_first_use(&self) -> Store {
        match self {
            Db::Sqlite { path, .. } => Store::open_on_first_use(path),
            Db::Postgres(cluster) => Store::connect_on_first_use(&cluster.url(), None).unwrap(),
        }
    }

    /// Run SQL behind the store's back (ageing or damaging rows as time or an attacker
    /// would); the same text is valid on both.
    pub fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Db::Postgres(cluster) => {
                cluster.psql("cordon", sql);
            }
        }
    }

    /// The one integer `sql` selects.
    pub fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Db::Postgres(cluster) => cluster.psql("cordon", sql).trim().parse().unwrap(),
        }
    }

    /// Pretend a newer Cordon wrote the schema.
    pub fn set_schema_version(&self, version: i64) {
        match self {
            Db::Sqlite { .. } => self.exec(&format!("PRAGMA user_version = {version};")),
            Db::Postgres(_) => self.exec(&format!("UPDATE cordon_schema SET version = {version};")),
        }
    }

    /// How a child process reaches this database: (variable, value).
    pub fn env(&self) -> (&'static str, String) {
        match self {
            Db::Sqlite { path, .. } => ("CORDON_STORE_CHILD_DB", path.display().to_string()),
            Db::Postgres(cluster) => ("CORDON_STORE_CHILD_URL", cluster.url()),
        }
    }
}

/// Open the database a parent test handed down in the environment (see [`Db::env`]).
pub fn open_from_env() -> Option<Store> {
    if let Ok(path) = std::env::var("CORDON_STORE_CHILD_DB") {
        return Some(Store::open(std::path::Path::new(&path)).unwrap());
    }
    let url = std::env::var("CORDON_STORE_CHILD_URL").ok()?;
    Some(Store::connect(&url, None).unwrap())
}

/// `on_both!(a, b)`: tests `sqlite::a`, `postgres::a`, … of `fn a(db: &Db)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&$crate::backend::Db::sqlite())
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(&$crate::backend::Db::postgres())
            })*
        }
    };
}
