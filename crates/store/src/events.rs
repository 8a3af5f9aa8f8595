//! Each session's event log (`events` table): what the gateway streams to clients
//! (turn started, text pieces, tool calls and results, approvals, turn finished).
//!
//! Guarantees: a session's events get `seq` 1, 2, 3, … with no gap or repeat, even with
//! several writers (the next `seq` is read and written in one `BEGIN IMMEDIATE`
//! transaction on SQLite, under a lock on the session's row on PostgreSQL); [`Store::events_after`] returns them in `seq` order, so a client that
//! remembers the last `seq` it saw can resume without missing or repeating anything.
//! An event for an unknown session is refused.
//!
//! Does not: interpret `kind` or `data` (the gateway defines them), or replace the audit
//! log (events are for display; the tamper-evident record is the audit log).

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::store::{Store, sql, timestamp};

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
        if let Some(db) = self.pg() {
            return db.append_event(session, kind, data);
        }
        let text = serde_json::to_string(&data).map_err(StoreError::Encode)?;
        let at = timestamp(time::OffsetDateTime::now_utc())?;
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin event append"))?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM sessions WHERE id = ?1", [session], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("append event"))?;
        if exists.is_none() {
            return Err(StoreError::NoSession {
                id: session.to_string(),
            });
        }
        let last: i64 = tx
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM events WHERE session = ?1",
                [session],
                |r| r.get(0),
            )
            .map_err(sql("append event"))?;
        let seq = last + 1;
        tx.execute(
            "INSERT INTO events (session, seq, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![session, seq, at, kind, text],
        )
        .map_err(sql("append event"))?;
        tx.commit().map_err(sql("commit event append"))?;
        Ok(EventRecord {
            seq: u64::try_from(seq).unwrap_or(0),
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
        if let Some(db) = self.pg() {
            return db.events_after(session, after, limit);
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT seq, at, kind, data FROM events WHERE session = ?1 AND seq > ?2 \
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(sql("read events"))?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![session, after, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(sql("read events"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, kind, data) = row.map_err(sql("read events"))?;
            let data = serde_json::from_str(&data).map_err(|source| StoreError::BadItem {
                session: session.to_string(),
                seq: u64::try_from(seq).unwrap_or(0),
                source,
            })?;
            out.push(EventRecord {
                seq: u64::try_from(seq).unwrap_or(0),
                at,
                kind,
                data,
            });
        }
        Ok(out)
    }
}
