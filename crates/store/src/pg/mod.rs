//! The PostgreSQL backend: the same tables, answers and guarantees as SQLite, for
//! deployments where several Cordon processes or hosts share one store.
//!
//! Guarantees: the connection runs on its own thread ([`actor`]), so the store may be
//! called from async code; where SQLite takes `BEGIN IMMEDIATE`, PostgreSQL takes a row
//! lock (`SELECT … FOR UPDATE` on the session, approval or grant) in a READ COMMITTED
//! transaction, so `seq`s have no gap or repeat under concurrent writers and of two
//! concurrent answers exactly one wins; migrations run under a transaction-scoped
//! advisory lock, a database whose `cordon_schema` version is newer than this build is
//! refused, and a database with tables but no `cordon_schema` is never migrated. This
//! module connects, migrates and runs; the statements live with their area, next to
//! SQLite's.
//!
//! Does not: speak TLS. The URL must name a Unix socket directory or a loopback host
//! (`localhost`, `127.0.0.1`, `::1`); anything else is refused before connecting,
//! because conversation content and token hashes would cross the network in clear text.

mod actor;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use postgres::Client;
use postgres::config::Host;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::schema;
use crate::store::to_u64;

use actor::Actor;

/// A PostgreSQL error as a store error. A lost connection stays lost (the client does
/// not reconnect), so it gets its own error that says to restart.
pub(crate) fn pg(action: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |source| {
        let lost = source.is_closed()
            || source.code() == Some(&postgres::error::SqlState::ADMIN_SHUTDOWN)
            || std::error::Error::source(&source).is_some_and(|s| s.is::<std::io::Error>());
        if lost {
            StoreError::ConnectionLost { action }
        } else {
            StoreError::Postgres { action, source }
        }
    }
}

/// One PostgreSQL connection (on its own thread) behind a mutex.
pub(crate) struct Postgres {
    target: String,
    actor: Mutex<Actor>,
}

/// A PostgreSQL database to connect to: its URL parsed and checked ([`Target::parse`]),
/// not yet connected.
pub(crate) struct Target {
    config: postgres::Config,
    /// The target without any password, for messages.
    pub(crate) name: String,
}

impl Target {
    /// `url` with `password`, refused if this backend cannot use it safely.
    pub(crate) fn parse(url: &str, password: Option<&str>) -> Result<Target, StoreError> {
        let (config, name) = parse_url(url, password)?;
        Ok(Target { config, name })
    }
}

/// Parse `url`, refuse what this backend cannot do safely, and describe the target
/// without any password.
fn parse_url(url: &str, password: Option<&str>) -> Result<(postgres::Config, String), StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let mut config = postgres::Config::from_str(url).map_err(|e| StoreError::BadUrl {
        // It may hold a password: do not echo it.
        url: "(not shown)".into(),
        reason: format!("not a PostgreSQL URL: {e}"),
    })?;
    if config.get_password().is_some() {
        return Err(StoreError::BadUrl {
            url: "(not shown)".into(),
            reason: "it contains a password; put the password in the environment variable \
                     named by `[store] password_env` instead"
                .into(),
        });
    }
    if config.get_hosts().is_empty() {
        return Err(bad(
            "it names no host; use `postgres://USER@127.0.0.1/DB` or a Unix socket \
             directory, `postgres:///DB?host=/run/postgresql`"
                .into(),
        ));
    }
    for host in config.get_hosts() {
        if let Host::Tcp(name) = host
            && !is_loopback(name)
        {
            return Err(bad(format!(
                "host `{name}` is not loopback; TLS to PostgreSQL is not implemented, so only \
                 a Unix socket or localhost/127.0.0.1/::1 is accepted"
            )));
        }
    }
    for addr in config.get_hostaddrs() {
        if !addr.is_loopback() {
            return Err(bad(format!(
                "hostaddr `{addr}` is not loopback; TLS to PostgreSQL is not implemented"
            )));
        }
    }
    if let Some(p) = password {
        config.password(p);
    }
    config.application_name("cordon");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    let target = format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or("(os user)"),
        hosts.join(","),
        config.get_dbname().unwrap_or("(default)")
    );
    Ok((config, target))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Postgres {
    pub(crate) fn connect(url: &str, password: Option<&str>) -> Result<Postgres, StoreError> {
        let target = Target::parse(url, password)?;
        Postgres::connect_to(&target)
    }

    /// Connect to (and migrate) a target already checked by [`Target::parse`].
    pub(crate) fn connect_to(target: &Target) -> Result<Postgres, StoreError> {
        let actor = Actor::spawn(target.config.clone(), &target.name)?;
        let db = Postgres {
            target: target.name.clone(),
            actor: Mutex::new(actor),
        };
        db.migrate()?;
        Ok(db)
    }

    fn actor(&self) -> Result<MutexGuard<'_, Actor>, StoreError> {
        self.actor.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Run `f` on the connection; its own errors come back as they are.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.actor()?.run(f)?
    }

    /// Begin a transaction that spans several calls (an answer whose `apply` runs in
    /// the caller's thread); it rolls back when dropped uncommitted.
    pub(crate) fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let actor = self.actor()?;
        actor.run(|c| c.batch_execute("BEGIN").map_err(pg("begin transaction")))??;
        Ok(Tx { actor, open: true })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let target = self.target.clone();
        self.run(move |c| {
            let not_cordon = |reason: String| StoreError::NotCordon {
                target: target.clone(),
                reason,
            };
            let mut tx = c.transaction().map_err(pg("begin migration"))?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&schema::MIGRATION_LOCK],
            )
            .map_err(pg("lock for migration"))?;
            let table_count = |tx: &mut postgres::Transaction<'_>, name: Option<&str>| {
                tx.query_one(
                    "SELECT count(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() \
                     AND ($1::text IS NULL OR table_name = $1::text)",
                    &[&name],
                )
                .map(|r| r.get::<_, i64>(0))
                .map_err(pg("read schema"))
            };
            if table_count(&mut tx, Some("cordon_schema"))? == 0 {
                // Never migrate someone else's database.
                if table_count(&mut tx, None)? != 0 {
                    return Err(not_cordon(
                        "it has tables but no `cordon_schema` table".into(),
                    ));
                }
                tx.batch_execute(
                    "CREATE TABLE cordon_schema (version BIGINT NOT NULL); \
                     INSERT INTO cordon_schema (version) VALUES (0);",
                )
                .map_err(pg("create schema version"))?;
            }
            let versions: Vec<i64> = tx
                .query("SELECT version FROM cordon_schema", &[])
                .map_err(pg("read schema version"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let &[version] = versions.as_slice() else {
                return Err(not_cordon(format!(
                    "`cordon_schema` has {} rows instead of one",
                    versions.len()
                )));
            };
            if version > schema::POSTGRES_VERSION {
                return Err(StoreError::SchemaTooNew {
                    database: target.clone(),
                    found: version,
                    supported: schema::POSTGRES_VERSION,
                });
            }
            if version < 0 {
                return Err(not_cordon(format!("negative schema version {version}")));
            }
            for (from, migration) in schema::POSTGRES
                .iter()
                .enumerate()
                .skip(to_u64(version) as usize)
            {
                tx.batch_execute(migration).map_err(pg("migrate schema"))?;
                tx.execute(
                    "UPDATE cordon_schema SET version = $1",
                    &[&(from as i64 + 1)],
                )
                .map_err(pg("migrate schema"))?;
            }
            for table in schema::TABLES {
                if table_count(&mut tx, Some(table))? != 1 {
                    return Err(not_cordon(format!("table `{table}` is missing")));
                }
            }
            tx.commit().map_err(pg("commit migration"))
        })
    }
}

impl Backend for Postgres {
    fn path(&self) -> Option<&Path> {
        None
    }

    fn location(&self) -> String {
        self.target.clone()
    }
}

/// A transaction held open across several calls; see [`Postgres::begin`].
pub(crate) struct Tx<'a> {
    actor: MutexGuard<'a, Actor>,
    open: bool,
}

impl Tx<'_> {
    pub(crate) fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.actor.run(f)?
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.actor
            .run(|c| c.batch_execute("COMMIT").map_err(pg("commit")))?
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to: a failed rollback leaves the connection to reset it.
            let _ = self.actor.run(|c| c.batch_execute("ROLLBACK"));
        }
    }
}
