//! The PostgreSQL backend: the same tables, answers and guarantees as SQLite, for
//! deployments where several Cordon processes or hosts share one store.
//!
//! Guarantees: the connection runs on its own thread ([`actor`]), so the store may be
//! called from async code; where SQLite takes `BEGIN IMMEDIATE`, PostgreSQL takes a row
//! lock (`SELECT … FOR UPDATE` on the session, approval or grant) in a READ COMMITTED
//! transaction, so `seq`s have no gap or repeat under concurrent writers and of two
//! concurrent answers exactly one wins; migrations run under a transaction-scoped
//! advisory lock, a database whose `cordon_schema` version is newer than this build is
//! refused, and a database with tables but no `cordon_schema` is never migrated.
//!
//! Does not: speak TLS. The URL must name a Unix socket directory or a loopback host
//! (`localhost`, `127.0.0.1`, `::1`); anything else is refused before connecting,
//! because conversation content and token hashes would cross the network in clear text.

mod actor;
pub(crate) mod approvals;
mod schema;

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use postgres::Client;
use postgres::config::Host;
use postgres::types::ToSql;

use crate::error::StoreError;
use crate::events::EventRecord;
use crate::store::{SessionRecord, now, timestamp, to_u64};
use crate::tokens::{ActiveToken, TokenRecord, TokenScope, parse_scope};

pub(crate) use actor::Actor;

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
pub(crate) struct Db {
    target: String,
    actor: Mutex<Actor>,
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

impl Db {
    pub(crate) fn connect(url: &str, password: Option<&str>) -> Result<Db, StoreError> {
        let (config, target) = parse_url(url, password)?;
        let actor = Actor::spawn(config, &target)?;
        let db = Db {
            target,
            actor: Mutex::new(actor),
        };
        db.migrate()?;
        Ok(db)
    }

    /// The database, for messages (no password).
    pub(crate) fn target(&self) -> &str {
        &self.target
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
            if version > schema::VERSION {
                return Err(StoreError::SchemaTooNew {
                    database: target.clone(),
                    found: version,
                    supported: schema::VERSION,
                });
            }
            if version < 0 {
                return Err(not_cordon(format!("negative schema version {version}")));
            }
            for (from, migration) in schema::MIGRATIONS
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
            for table in crate::schema::TABLES {
                if table_count(&mut tx, Some(table))? != 1 {
                    return Err(not_cordon(format!("table `{table}` is missing")));
                }
            }
            tx.commit().map_err(pg("commit migration"))
        })
    }

    pub(crate) fn create_session(&self, agent: &str) -> Result<SessionRecord, StoreError> {
        let now = now()?;
        let record = SessionRecord {
            id: ulid::Ulid::new().to_string(),
            agent: agent.to_string(),
            created_at: now.clone(),
            updated_at: now,
            items: 0,
        };
        let r = record.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO sessions (id, agent, created_at, updated_at, items) \
                 VALUES ($1, $2, $3, $4, 0)",
                &[&r.id, &r.agent, &r.created_at, &r.updated_at],
            )
            .map_err(pg("create session"))
        })?;
        Ok(record)
    }

    fn sessions(
        &self,
        action: &'static str,
        sql: &'static str,
        arg: Option<String>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.run(move |c| {
            let rows = c.query(sql, &[&arg]).map_err(pg(action))?;
            Ok(rows
                .iter()
                .map(|r| SessionRecord {
                    id: r.get(0),
                    agent: r.get(1),
                    created_at: r.get(2),
                    updated_at: r.get(3),
                    items: to_u64(r.get(4)),
                })
                .collect())
        })
    }

    pub(crate) fn latest_session(&self, agent: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .sessions(
                "find latest session",
                "SELECT id, agent, created_at, updated_at, items FROM sessions \
                 WHERE agent = $1 ORDER BY updated_at DESC, id DESC LIMIT 1",
                Some(agent.to_string()),
            )?
            .pop())
    }

    pub(crate) fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .sessions(
                "read session",
                "SELECT id, agent, created_at, updated_at, items FROM sessions WHERE id = $1",
                Some(id.to_string()),
            )?
            .pop())
    }

    pub(crate) fn list_sessions(
        &self,
        agent: Option<&str>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.sessions(
            "list sessions",
            "SELECT id, agent, created_at, updated_at, items FROM sessions \
             WHERE $1::text IS NULL OR agent = $1::text ORDER BY updated_at DESC, id DESC",
            agent.map(str::to_string),
        )
    }

    pub(crate) fn append_item(
        &self,
        session: &str,
        item: &serde_json::Value,
    ) -> Result<u64, StoreError> {
        let text = serde_json::to_string(item).map_err(StoreError::Encode)?;
        let now = now()?;
        let session = session.to_string();
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin append"))?;
            // The row lock serialises appends to one session: a waiting writer reads
            // the count its predecessor committed.
            let Some(row) = tx
                .query_opt(
                    "SELECT items FROM sessions WHERE id = $1 FOR UPDATE",
                    &[&session],
                )
                .map_err(pg("append item"))?
            else {
                return Err(StoreError::NoSession { id: session });
            };
            let seq = row.get::<_, i64>(0) + 1;
            tx.execute(
                "INSERT INTO items (session, seq, item) VALUES ($1, $2, $3)",
                &[&session, &seq, &text],
            )
            .map_err(pg("append item"))?;
            tx.execute(
                "UPDATE sessions SET items = $2, updated_at = $3 WHERE id = $1",
                &[&session, &seq, &now],
            )
            .map_err(pg("append item"))?;
            tx.commit().map_err(pg("commit append"))?;
            Ok(to_u64(seq))
        })
    }

    pub(crate) fn load_items(&self, session: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let session = session.to_string();
        self.run(move |c| {
            let mut tx = c
                .build_transaction()
                .read_only(true)
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()
                .map_err(pg("load items"))?;
            if tx
                .query_opt("SELECT 1 FROM sessions WHERE id = $1", &[&session])
                .map_err(pg("load items"))?
                .is_none()
            {
                return Err(StoreError::NoSession { id: session });
            }
            let rows = tx
                .query(
                    "SELECT seq, item FROM items WHERE session = $1 ORDER BY seq",
                    &[&session],
                )
                .map_err(pg("load items"))?;
            tx.commit().map_err(pg("load items"))?;
            rows.iter()
                .map(|r| {
                    let seq: i64 = r.get(0);
                    let text: String = r.get(1);
                    serde_json::from_str(&text).map_err(|source| StoreError::BadItem {
                        session: session.clone(),
                        seq: to_u64(seq),
                        source,
                    })
                })
                .collect()
        })
    }

    pub(crate) fn append_event(
        &self,
        session: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<EventRecord, StoreError> {
        let text = serde_json::to_string(&data).map_err(StoreError::Encode)?;
        let at = timestamp(time::OffsetDateTime::now_utc())?;
        let (session, kind_owned, at_owned) = (session.to_string(), kind.to_string(), at.clone());
        let seq = self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin event append"))?;
            // Locking the session row serialises its writers; the next statement then
            // sees the event the previous holder committed.
            if tx
                .query_opt(
                    "SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE",
                    &[&session],
                )
                .map_err(pg("append event"))?
                .is_none()
            {
                return Err(StoreError::NoSession { id: session });
            }
            let last: i64 = tx
                .query_one(
                    "SELECT coalesce(max(seq), 0)::bigint FROM events WHERE session = $1",
                    &[&session],
                )
                .map_err(pg("append event"))?
                .get(0);
            let seq = last + 1;
            tx.execute(
                "INSERT INTO events (session, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
                &[&session, &seq, &at_owned, &kind_owned, &text],
            )
            .map_err(pg("append event"))?;
            tx.commit().map_err(pg("commit event append"))?;
            Ok(seq)
        })?;
        Ok(EventRecord {
            seq: to_u64(seq),
            at,
            kind: kind.to_string(),
            data,
        })
    }

    pub(crate) fn events_after(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let session = session.to_string();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let rows = c
                .query(
                    "SELECT seq, at, kind, data FROM events WHERE session = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                    &[&session, &after, &limit],
                )
                .map_err(pg("read events"))?;
            rows.iter()
                .map(|r| {
                    let seq = to_u64(r.get(0));
                    let data: String = r.get(3);
                    Ok(EventRecord {
                        seq,
                        at: r.get(1),
                        kind: r.get(2),
                        data: serde_json::from_str(&data).map_err(|source| {
                            StoreError::BadItem {
                                session: session.clone(),
                                seq,
                                source,
                            }
                        })?,
                    })
                })
                .collect()
        })
    }

    pub(crate) fn create_token(&self, record: TokenRecord, hash: &str) -> Result<(), StoreError> {
        let hash = hash.to_string();
        self.run(move |c| {
            c.execute(
                "INSERT INTO tokens (id, name, scope, hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &record.id,
                    &record.name,
                    &record.scope.as_str(),
                    &hash,
                    &record.created_at,
                    &record.expires_at,
                ],
            )
            .map_err(pg("create token"))?;
            Ok(())
        })
    }

    fn tokens(
        &self,
        action: &'static str,
        sql: String,
        args: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.run(move |c| {
            let params: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = c.query(&sql, &params).map_err(pg(action))?;
            rows.iter()
                .map(|r| {
                    let id: String = r.get(0);
                    let scope: String = r.get(2);
                    Ok(TokenRecord {
                        scope: parse_scope(&id, &scope)?,
                        id,
                        name: r.get(1),
                        created_at: r.get(3),
                        expires_at: r.get(4),
                        revoked_at: r.get(5),
                        last_used_at: r.get(6),
                    })
                })
                .collect()
        })
    }

    pub(crate) fn list_tokens(
        &self,
        all: bool,
        now: String,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.tokens(
            "list tokens",
            format!(
                "SELECT {} FROM tokens WHERE $1 OR (revoked_at IS NULL AND expires_at > $2) \
                 ORDER BY created_at DESC, id DESC",
                crate::tokens::COLUMNS
            ),
            vec![Box::new(all), Box::new(now)],
        )
    }

    pub(crate) fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self
            .tokens(
                "read token",
                format!(
                    "SELECT {} FROM tokens WHERE id = $1",
                    crate::tokens::COLUMNS
                ),
                vec![Box::new(id.to_string())],
            )?
            .pop())
    }

    pub(crate) fn active_tokens(&self, now: String) -> Result<Vec<ActiveToken>, StoreError> {
        self.run(move |c| {
            let rows = c
                .query(
                    "SELECT id, scope, hash, expires_at FROM tokens \
                     WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY id",
                    &[&now],
                )
                .map_err(pg("list active tokens"))?;
            rows.iter()
                .map(|r| {
                    let id: String = r.get(0);
                    let scope: String = r.get(1);
                    let scope: TokenScope = parse_scope(&id, &scope)?;
                    Ok(ActiveToken {
                        scope,
                        id,
                        hash: r.get(2),
                        expires_at: r.get(3),
                    })
                })
                .collect()
        })
    }

    /// Rows changed by one statement.
    pub(crate) fn execute(
        &self,
        action: &'static str,
        sql: &'static str,
        args: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.run(move |c| {
            let params: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            c.execute(sql, &params).map_err(pg(action))
        })
    }
}

/// A transaction held open across several calls; see [`Db::begin`].
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
