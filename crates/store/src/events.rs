//! Each session's event log (`events` table): what the gateway streams to clients
//! (turn started, text pieces, tool calls and results, approvals, turn finished).
//!
//! Guarantees: a session's events get `seq` 1, 2, 3, … with no gap or repeat, even with
//! several writers (the next `seq` is read and written in one `BEGIN IMMEDIATE`
//! transaction on SQLite, under a lock on the session's row on PostgreSQL);
//! [`Store::events_after`] returns them in `seq` order, so a client that remembers the
//! last `seq` it saw can resume without missing or repeating anything. An event for an
//! unknown session is refused.
//!
//! Does not: interpret `kind` or `data` (the gateway defines them), or replace the audit
//! log (events are for display; the tamper-evident record is the audit log).

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::backend::{Sql, row, statements};
use crate::error::StoreError;
use crate::pg::{Postgres, pg};
use crate::sqlite::{Sqlite, sql};
use crate::store::{Store, now, to_u64};

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    /// RFC 3339 UTC with microseconds.
    pub at: String,
    pub kind: String,
    pub data: serde_json::Value,
}

impl Store {
    /// Append an event to `session`'s log; returns it with its `seq`.
    pub fn append_event(
        &self,
        session: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<EventRecord, StoreError> {
        let text = serde_json::to_string(&data).map_err(StoreError::Encode)?;
        let at = now()?;
        let seq = self.backend()?.append_event(NewEvent {
            session: session.to_string(),
            at: at.clone(),
            kind: kind.to_string(),
            data: text,
        })?;
        Ok(EventRecord {
            seq: to_u64(seq),
            at,
            kind: kind.to_string(),
            data,
        })
    }

    /// Up to `limit` events of `session` with `seq > after`, in order.
    pub fn events_after(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.backend()?
            .events_after(session, after, limit)?
            .into_iter()
            .map(|row| {
                let seq = to_u64(row.seq);
                let data =
                    serde_json::from_str(&row.data).map_err(|source| StoreError::BadItem {
                        session: session.to_string(),
                        seq,
                        source,
                    })?;
                Ok(EventRecord {
                    seq,
                    at: row.at,
                    kind: row.kind,
                    data,
                })
            })
            .collect()
    }
}

/// An event to append (its `data` already JSON text).
pub(crate) struct NewEvent {
    session: String,
    at: String,
    kind: String,
    data: String,
}

/// The storage steps of this area.
pub(crate) trait Events {
    /// Append as the session's next event, in one transaction that excludes other
    /// appenders; its `seq`. [`StoreError::NoSession`] if the session is unknown.
    fn append_event(&self, event: NewEvent) -> Result<i64, StoreError>;
    fn events_after(
        &self,
        session: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError>;
}

row! {
    /// An `events` row, without its session.
    pub(crate) struct EventRow {
        seq: i64,
        at: String,
        kind: String,
        data: String,
    }
}

// The statements, SQLite's and PostgreSQL's side by side.
statements! {
    /// The session, under the write lock (SQLite) or its row's lock (PostgreSQL), which
    /// serialises the session's writers: the next statement sees the event the previous
    /// holder committed.
    const SESSION_FOR_UPDATE: Sql = Sql {
        sqlite: "SELECT 1 FROM sessions WHERE id = ?1",
        postgres: "SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE",
    };

    const LAST_SEQ: Sql = Sql {
        sqlite: "SELECT coalesce(max(seq), 0) FROM events WHERE session = ?1",
        postgres: "SELECT coalesce(max(seq), 0)::bigint FROM events WHERE session = $1",
    };

    const INSERT: Sql = Sql {
        sqlite: "INSERT INTO events (session, seq, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        postgres: "INSERT INTO events (session, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
    };

    const AFTER: Sql = Sql {
        sqlite: "SELECT seq, at, kind, data FROM events WHERE session = ?1 AND seq > ?2 \
                 ORDER BY seq LIMIT ?3",
        postgres: "SELECT seq, at, kind, data FROM events WHERE session = $1 AND seq > $2 \
                   ORDER BY seq LIMIT $3",
    };
}

impl Events for Sqlite {
    fn append_event(&self, e: NewEvent) -> Result<i64, StoreError> {
        let tx = self.begin("begin event append")?;
        let exists: Option<i64> = tx
            .query_row(SESSION_FOR_UPDATE.sqlite, [&e.session], |r| r.get(0))
            .optional()
            .map_err(sql("append event"))?;
        if exists.is_none() {
            return Err(StoreError::NoSession { id: e.session });
        }
        let last: i64 = tx
            .query_row(LAST_SEQ.sqlite, [&e.session], |r| r.get(0))
            .map_err(sql("append event"))?;
        let seq = last + 1;
        tx.execute(INSERT.sqlite, params![e.session, seq, e.at, e.kind, e.data])
            .map_err(sql("append event"))?;
        tx.commit("commit event append")?;
        Ok(seq)
    }

    fn events_after(
        &self,
        session: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(AFTER.sqlite).map_err(sql("read events"))?;
        let rows = stmt
            .query_map(params![session, after, limit], EventRow::from_sqlite)
            .map_err(sql("read events"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("read events"))
    }
}

impl Events for Postgres {
    fn append_event(&self, e: NewEvent) -> Result<i64, StoreError> {
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin event append"))?;
            if tx
                .query_opt(SESSION_FOR_UPDATE.postgres, &[&e.session])
                .map_err(pg("append event"))?
                .is_none()
            {
                return Err(StoreError::NoSession { id: e.session });
            }
            let last: i64 = tx
                .query_one(LAST_SEQ.postgres, &[&e.session])
                .and_then(|r| r.try_get(0))
                .map_err(pg("append event"))?;
            let seq = last + 1;
            tx.execute(
                INSERT.postgres,
                &[&e.session, &seq, &e.at, &e.kind, &e.data],
            )
            .map_err(pg("append event"))?;
            tx.commit().map_err(pg("commit event append"))?;
            Ok(seq)
        })
    }

    fn events_after(
        &self,
        session: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let session = session.to_string();
        self.run(move |c| {
            c.query(AFTER.postgres, &[&session, &after, &limit])
                .and_then(|rows| rows.iter().map(EventRow::from_postgres).collect())
                .map_err(pg("read events"))
        })
    }
}
