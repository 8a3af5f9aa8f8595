//! Sessions and their items (`sessions` and `items` tables): what `cordon chat` resumes.
//!
//! Guarantees: items of a session get `seq` 1, 2, 3, … with no gap or repeat, even with
//! several writers (the count is read and written in one `BEGIN IMMEDIATE` transaction
//! on SQLite, under a lock on the session's row on PostgreSQL), and load back in that
//! order; an item for an unknown session is refused. Items are opaque JSON here: the
//! `agent` crate defines them.

use postgres::IsolationLevel;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::backend::{Sql, row, statements};
use crate::error::StoreError;
use crate::pg::{Postgres, pg};
use crate::sqlite::{Sqlite, sql};
use crate::store::{Store, now, to_u64};

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

impl Store {
    /// Start a new, empty session for `agent`.
    pub fn create_session(&self, agent: &str) -> Result<SessionRecord, StoreError> {
        let now = now()?;
        let record = SessionRecord {
            id: ulid::Ulid::new().to_string(),
            agent: agent.to_string(),
            created_at: now.clone(),
            updated_at: now,
            items: 0,
        };
        self.backend()?.insert_session(&record)?;
        Ok(record)
    }

    /// The session of `agent` that was used most recently.
    pub fn latest_session(&self, agent: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .backend()?
            .latest_session(agent)?
            .map(SessionRow::decode))
    }

    pub fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.backend()?.get_session(id)?.map(SessionRow::decode))
    }

    /// Sessions, most recently used first; all agents when `agent` is `None`.
    pub fn list_sessions(&self, agent: Option<&str>) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = self.backend()?.list_sessions(agent)?;
        Ok(rows.into_iter().map(SessionRow::decode).collect())
    }

    /// Append one item to `session`; returns its `seq` (from 1).
    pub fn append_item(&self, session: &str, item: &serde_json::Value) -> Result<u64, StoreError> {
        let item = serde_json::to_string(item).map_err(StoreError::Encode)?;
        let seq = self.backend()?.append_item(session, item, now()?)?;
        Ok(to_u64(seq))
    }

    /// Every item of `session`, in append order. An unknown session is an error.
    pub fn load_items(&self, session: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        self.backend()?
            .load_items(session)?
            .into_iter()
            .map(|row| {
                serde_json::from_str(&row.item).map_err(|source| StoreError::BadItem {
                    session: session.to_string(),
                    seq: to_u64(row.seq),
                    source,
                })
            })
            .collect()
    }
}

/// The storage steps of this area.
pub(crate) trait Sessions {
    fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError>;
    fn latest_session(&self, agent: &str) -> Result<Option<SessionRow>, StoreError>;
    fn get_session(&self, id: &str) -> Result<Option<SessionRow>, StoreError>;
    fn list_sessions(&self, agent: Option<&str>) -> Result<Vec<SessionRow>, StoreError>;
    /// Append `item` (JSON text) as the session's next item, in one transaction that
    /// excludes other appenders; its `seq`. [`StoreError::NoSession`] if unknown.
    fn append_item(&self, session: &str, item: String, now: String) -> Result<i64, StoreError>;
    /// The session's items in `seq` order, read from one snapshot.
    /// [`StoreError::NoSession`] if unknown.
    fn load_items(&self, session: &str) -> Result<Vec<ItemRow>, StoreError>;
}

row! {
    /// A `sessions` row.
    pub(crate) struct SessionRow {
        id: String,
        agent: String,
        created_at: String,
        updated_at: String,
        items: i64,
    }
}

impl SessionRow {
    fn decode(self) -> SessionRecord {
        SessionRecord {
            id: self.id,
            agent: self.agent,
            created_at: self.created_at,
            updated_at: self.updated_at,
            items: to_u64(self.items),
        }
    }
}

row! {
    /// An `items` row, without its session.
    pub(crate) struct ItemRow {
        seq: i64,
        item: String,
    }
}

// The statements, SQLite's and PostgreSQL's side by side.
statements! {
    const INSERT: Sql = Sql {
        sqlite: "INSERT INTO sessions (id, agent, created_at, updated_at, items) \
                 VALUES (?1, ?2, ?3, ?4, 0)",
        postgres: "INSERT INTO sessions (id, agent, created_at, updated_at, items) \
                   VALUES ($1, $2, $3, $4, 0)",
    };

    const LATEST: Sql = Sql {
        sqlite: "SELECT id, agent, created_at, updated_at, items FROM sessions \
                 WHERE agent = ?1 ORDER BY updated_at DESC, id DESC LIMIT 1",
        postgres: "SELECT id, agent, created_at, updated_at, items FROM sessions \
                   WHERE agent = $1 ORDER BY updated_at DESC, id DESC LIMIT 1",
    };

    const GET: Sql = Sql {
        sqlite: "SELECT id, agent, created_at, updated_at, items FROM sessions WHERE id = ?1",
        postgres: "SELECT id, agent, created_at, updated_at, items FROM sessions WHERE id = $1",
    };

    const LIST: Sql = Sql {
        sqlite: "SELECT id, agent, created_at, updated_at, items FROM sessions \
                 WHERE ?1 IS NULL OR agent = ?1 ORDER BY updated_at DESC, id DESC",
        postgres: "SELECT id, agent, created_at, updated_at, items FROM sessions \
                   WHERE $1::text IS NULL OR agent = $1::text ORDER BY updated_at DESC, id DESC",
    };

    /// The item count, under the write lock (SQLite) or the row's lock (PostgreSQL): a
    /// waiting appender reads the count its predecessor committed.
    const COUNT_FOR_UPDATE: Sql = Sql {
        sqlite: "SELECT items FROM sessions WHERE id = ?1",
        postgres: "SELECT items FROM sessions WHERE id = $1 FOR UPDATE",
    };

    const INSERT_ITEM: Sql = Sql {
        sqlite: "INSERT INTO items (session, seq, item) VALUES (?1, ?2, ?3)",
        postgres: "INSERT INTO items (session, seq, item) VALUES ($1, $2, $3)",
    };

    const SET_COUNT: Sql = Sql {
        sqlite: "UPDATE sessions SET items = ?2, updated_at = ?3 WHERE id = ?1",
        postgres: "UPDATE sessions SET items = $2, updated_at = $3 WHERE id = $1",
    };

    const EXISTS: Sql = Sql {
        sqlite: "SELECT 1 FROM sessions WHERE id = ?1",
        postgres: "SELECT 1 FROM sessions WHERE id = $1",
    };

    const ITEMS: Sql = Sql {
        sqlite: "SELECT seq, item FROM items WHERE session = ?1 ORDER BY seq",
        postgres: "SELECT seq, item FROM items WHERE session = $1 ORDER BY seq",
    };
}

impl Sessions for Sqlite {
    fn insert_session(&self, r: &SessionRecord) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                INSERT.sqlite,
                params![r.id, r.agent, r.created_at, r.updated_at],
            )
            .map_err(sql("create session"))?;
        Ok(())
    }

    fn latest_session(&self, agent: &str) -> Result<Option<SessionRow>, StoreError> {
        self.conn()?
            .query_row(LATEST.sqlite, [agent], SessionRow::from_sqlite)
            .optional()
            .map_err(sql("find latest session"))
    }

    fn get_session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        self.conn()?
            .query_row(GET.sqlite, [id], SessionRow::from_sqlite)
            .optional()
            .map_err(sql("read session"))
    }

    fn list_sessions(&self, agent: Option<&str>) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(LIST.sqlite).map_err(sql("list sessions"))?;
        let rows = stmt
            .query_map([agent], SessionRow::from_sqlite)
            .map_err(sql("list sessions"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list sessions"))
    }

    fn append_item(&self, session: &str, item: String, now: String) -> Result<i64, StoreError> {
        let tx = self.begin("begin append")?;
        let count: Option<i64> = tx
            .query_row(COUNT_FOR_UPDATE.sqlite, [session], |r| r.get(0))
            .optional()
            .map_err(sql("append item"))?;
        let Some(count) = count else {
            return Err(StoreError::NoSession {
                id: session.to_string(),
            });
        };
        let seq = count + 1;
        tx.execute(INSERT_ITEM.sqlite, params![session, seq, item])
            .map_err(sql("append item"))?;
        tx.execute(SET_COUNT.sqlite, params![session, seq, now])
            .map_err(sql("append item"))?;
        tx.commit("commit append")?;
        Ok(seq)
    }

    fn load_items(&self, session: &str) -> Result<Vec<ItemRow>, StoreError> {
        // No transaction: a commit by another handle between the two reads can only
        // add items after the ones read.
        let conn = self.conn()?;
        let exists: Option<i64> = conn
            .query_row(EXISTS.sqlite, [session], |r| r.get(0))
            .optional()
            .map_err(sql("load items"))?;
        if exists.is_none() {
            return Err(StoreError::NoSession {
                id: session.to_string(),
            });
        }
        let mut stmt = conn.prepare(ITEMS.sqlite).map_err(sql("load items"))?;
        let rows = stmt
            .query_map([session], ItemRow::from_sqlite)
            .map_err(sql("load items"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("load items"))
    }
}

impl Sessions for Postgres {
    fn insert_session(&self, r: &SessionRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.run(move |c| {
            c.execute(
                INSERT.postgres,
                &[&r.id, &r.agent, &r.created_at, &r.updated_at],
            )
            .map_err(pg("create session"))?;
            Ok(())
        })
    }

    fn latest_session(&self, agent: &str) -> Result<Option<SessionRow>, StoreError> {
        let agent = agent.to_string();
        self.run(move |c| {
            c.query_opt(LATEST.postgres, &[&agent])
                .and_then(|r| r.as_ref().map(SessionRow::from_postgres).transpose())
                .map_err(pg("find latest session"))
        })
    }

    fn get_session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_opt(GET.postgres, &[&id])
                .and_then(|r| r.as_ref().map(SessionRow::from_postgres).transpose())
                .map_err(pg("read session"))
        })
    }

    fn list_sessions(&self, agent: Option<&str>) -> Result<Vec<SessionRow>, StoreError> {
        let agent = agent.map(str::to_string);
        self.run(move |c| {
            c.query(LIST.postgres, &[&agent])
                .and_then(|rows| rows.iter().map(SessionRow::from_postgres).collect())
                .map_err(pg("list sessions"))
        })
    }

    fn append_item(&self, session: &str, item: String, now: String) -> Result<i64, StoreError> {
        let session = session.to_string();
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin append"))?;
            let Some(row) = tx
                .query_opt(COUNT_FOR_UPDATE.postgres, &[&session])
                .map_err(pg("append item"))?
            else {
                return Err(StoreError::NoSession { id: session });
            };
            let seq = row.try_get::<_, i64>(0).map_err(pg("append item"))? + 1;
            tx.execute(INSERT_ITEM.postgres, &[&session, &seq, &item])
                .map_err(pg("append item"))?;
            tx.execute(SET_COUNT.postgres, &[&session, &seq, &now])
                .map_err(pg("append item"))?;
            tx.commit().map_err(pg("commit append"))?;
            Ok(seq)
        })
    }

    fn load_items(&self, session: &str) -> Result<Vec<ItemRow>, StoreError> {
        let session = session.to_string();
        self.run(move |c| {
            let mut tx = c
                .build_transaction()
                .read_only(true)
                .isolation_level(IsolationLevel::RepeatableRead)
                .start()
                .map_err(pg("load items"))?;
            if tx
                .query_opt(EXISTS.postgres, &[&session])
                .map_err(pg("load items"))?
                .is_none()
            {
                return Err(StoreError::NoSession { id: session });
            }
            let rows = tx
                .query(ITEMS.postgres, &[&session])
                .and_then(|rows| rows.iter().map(ItemRow::from_postgres).collect())
                .map_err(pg("load items"))?;
            tx.commit().map_err(pg("load items"))?;
            Ok(rows)
        })
    }
}
