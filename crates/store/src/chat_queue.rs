//! Each chat conversation's queue of accepted messages (`chat_queue`), kept so that no
//! message the gate let in is lost when `cordon serve` stops.
//!
//! Guarantees: accepted turns are written in the same transaction that saves the
//! channel's cursor ([`Store::accept_chat_turns`]), so after a crash either both the
//! rows and the cursor past their updates are there, or neither is (and the platform
//! delivers the updates again); a conversation never holds more than `cap` open rows;
//! rows of a conversation are taken oldest first ([`Store::start_chat_turn`]), each
//! take counting an attempt, in one transaction; a row is closed once
//! ([`Store::finish_chat_turn`]). Closed rows are forgotten a day later.
//!
//! Does not: decide what a turn is (the row's `turn` is opaque JSON written by the
//! channels crate), or stop two processes taking rows of one conversation at once (one
//! `cordon serve` polls a channel; the platforms refuse a second poller).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::backend::{Sql, row, statements};
use crate::channels::SET_CURSOR;
use crate::error::StoreError;
use crate::pg::{Postgres, pg};
use crate::sqlite::{Sqlite, sql};
use crate::store::{Store, now, timestamp, to_u64};

/// How long a closed row is kept (for people inspecting the store).
const KEEP_CLOSED: time::Duration = time::Duration::DAY;

/// How a queued turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatTurnOutcome {
    /// The turn ran and its answer was sent (or its sending recorded as failed).
    Answered,
    /// The turn could not run or failed; the error is kept.
    Failed,
    /// The process stopped during its turn more than once: not run again.
    Abandoned,
}

impl ChatTurnOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatTurnOutcome::Answered => "answered",
            ChatTurnOutcome::Failed => "failed",
            ChatTurnOutcome::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Option<ChatTurnOutcome> {
        match s {
            "answered" => Some(ChatTurnOutcome::Answered),
            "failed" => Some(ChatTurnOutcome::Failed),
            "abandoned" => Some(ChatTurnOutcome::Abandoned),
            _ => None,
        }
    }
}

/// A turn to queue.
pub struct NewChatTurn<'a> {
    pub conversation: &'a str,
    /// The platform's id of the update it came from.
    pub event_id: &'a str,
    pub turn: &'a Value,
}

/// A queued turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedChatTurn {
    /// Increasing in the order turns were queued.
    pub id: i64,
    pub channel: String,
    pub conversation: String,
    pub event_id: String,
    pub turn: Value,
    pub queued_at: String,
    /// When it was last taken to run.
    pub started_at: Option<String>,
    /// How many times it was taken to run (this one included, for a row just taken).
    pub attempts: u64,
    pub outcome: Option<ChatTurnOutcome>,
    pub error: Option<String>,
}

impl Store {
    /// In one transaction: queue each of `turns` unless its conversation already holds
    /// `cap` open rows, and save `cursor` as the channel's (when given). For each turn,
    /// its id, or `None` when refused for the cap.
    pub fn accept_chat_turns(
        &self,
        channel: &str,
        turns: &[NewChatTurn<'_>],
        cap: u64,
        cursor: Option<&str>,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let now_t = time::OffsetDateTime::now_utc();
        let batch = Batch {
            channel: channel.to_string(),
            turns: turns
                .iter()
                .map(|t| {
                    Ok(NewRow {
                        conversation: t.conversation.to_string(),
                        event_id: t.event_id.to_string(),
                        turn: serde_json::to_string(t.turn).map_err(StoreError::Encode)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            cap: i64::try_from(cap).unwrap_or(i64::MAX),
            cursor: cursor.map(str::to_string),
            now: timestamp(now_t)?,
            forget_before: timestamp(now_t - KEEP_CLOSED)?,
        };
        self.backend()?.accept(batch)
    }

    /// The open (not closed) rows of `channel`, oldest first.
    pub fn open_chat_turns(&self, channel: &str) -> Result<Vec<QueuedChatTurn>, StoreError> {
        self.backend()?
            .open_rows(channel)?
            .into_iter()
            .map(QueueRow::decode)
            .collect()
    }

    /// Take the oldest open row of `conversation` to run (its attempts counted), if any.
    pub fn start_chat_turn(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<QueuedChatTurn>, StoreError> {
        self.backend()?
            .take(channel, conversation, &now()?)?
            .map(QueueRow::decode)
            .transpose()
    }

    /// Close row `id` with `outcome` (and the error, for a failure); `false` when it was
    /// closed already or is not there.
    pub fn finish_chat_turn(
        &self,
        id: i64,
        outcome: ChatTurnOutcome,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.backend()?
            .close(id, &now()?, outcome.as_str(), error.map(str::to_string))
    }
}

/// What [`Store::accept_chat_turns`] hands the backend.
pub(crate) struct Batch {
    channel: String,
    turns: Vec<NewRow>,
    cap: i64,
    cursor: Option<String>,
    now: String,
    forget_before: String,
}

struct NewRow {
    conversation: String,
    event_id: String,
    turn: String,
}

/// The storage steps of this area.
pub(crate) trait ChatQueue {
    /// In one transaction: forget rows closed before `forget_before`; insert each turn
    /// whose conversation holds fewer than `cap` open rows; save the cursor.
    fn accept(&self, batch: Batch) -> Result<Vec<Option<i64>>, StoreError>;
    fn open_rows(&self, channel: &str) -> Result<Vec<QueueRow>, StoreError>;
    /// In one transaction: the oldest open row of the conversation, its attempts
    /// counted and `started_at` set.
    fn take(
        &self,
        channel: &str,
        conversation: &str,
        now: &str,
    ) -> Result<Option<QueueRow>, StoreError>;
    fn close(
        &self,
        id: i64,
        now: &str,
        outcome: &str,
        error: Option<String>,
    ) -> Result<bool, StoreError>;
}

row! {
    /// A `chat_queue` row.
    #[derive(Debug, Clone)]
    pub(crate) struct QueueRow {
        id: i64,
        channel: String,
        conversation: String,
        event_id: String,
        turn: String,
        queued_at: String,
        started_at: Option<String>,
        attempts: i64,
        outcome: Option<String>,
        error: Option<String>,
    }
}

impl QueueRow {
    fn decode(self) -> Result<QueuedChatTurn, StoreError> {
        let bad = |reason: String| StoreError::BadRow {
            table: "chat_queue",
            id: self.id.to_string(),
            reason,
        };
        let turn = serde_json::from_str(&self.turn).map_err(|e| bad(format!("turn: {e}")))?;
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(o) => {
                Some(ChatTurnOutcome::parse(o).ok_or_else(|| bad(format!("outcome `{o}`")))?)
            }
        };
        Ok(QueuedChatTurn {
            id: self.id,
            channel: self.channel,
            conversation: self.conversation,
            event_id: self.event_id,
            turn,
            queued_at: self.queued_at,
            started_at: self.started_at,
            attempts: to_u64(self.attempts),
            outcome,
            error: self.error,
        })
    }
}

statements! {
    const FORGET_CLOSED: Sql = Sql {
        sqlite: "DELETE FROM chat_queue WHERE channel = ?1 AND done_at IS NOT NULL AND done_at < ?2",
        postgres: "DELETE FROM chat_queue WHERE channel = $1 AND done_at IS NOT NULL AND done_at < $2",
    };

    const COUNT_OPEN: Sql = Sql {
        sqlite: "SELECT count(*) FROM chat_queue WHERE channel = ?1 AND conversation = ?2 \
                 AND done_at IS NULL",
        postgres: "SELECT count(*)::bigint FROM chat_queue WHERE channel = $1 AND conversation = $2 \
                   AND done_at IS NULL",
    };

    const INSERT: Sql = Sql {
        sqlite: "INSERT INTO chat_queue (channel, conversation, event_id, turn, queued_at, attempts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0) RETURNING id",
        postgres: "INSERT INTO chat_queue (channel, conversation, event_id, turn, queued_at, attempts) \
                   VALUES ($1, $2, $3, $4, $5, 0) RETURNING id",
    };

    const OPEN_ROWS: Sql = Sql {
        sqlite: "SELECT id, channel, conversation, event_id, turn, queued_at, started_at, attempts, \
                 outcome, error FROM chat_queue WHERE channel = ?1 AND done_at IS NULL ORDER BY id",
        postgres: "SELECT id, channel, conversation, event_id, turn, queued_at, started_at, attempts, \
                   outcome, error FROM chat_queue WHERE channel = $1 AND done_at IS NULL ORDER BY id",
    };

    const OLDEST_OPEN: Sql = Sql {
        sqlite: "SELECT id FROM chat_queue WHERE channel = ?1 AND conversation = ?2 \
                 AND done_at IS NULL ORDER BY id LIMIT 1",
        postgres: "SELECT id FROM chat_queue WHERE channel = $1 AND conversation = $2 \
                   AND done_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE",
    };

    const START: Sql = Sql {
        sqlite: "UPDATE chat_queue SET started_at = ?2, attempts = attempts + 1 WHERE id = ?1 \
                 RETURNING id, channel, conversation, event_id, turn, queued_at, started_at, \
                 attempts, outcome, error",
        postgres: "UPDATE chat_queue SET started_at = $2, attempts = attempts + 1 WHERE id = $1 \
                   RETURNING id, channel, conversation, event_id, turn, queued_at, started_at, \
                   attempts, outcome, error",
    };

    const CLOSE: Sql = Sql {
        sqlite: "UPDATE chat_queue SET done_at = ?2, outcome = ?3, error = ?4 \
                 WHERE id = ?1 AND done_at IS NULL",
        postgres: "UPDATE chat_queue SET done_at = $2, outcome = $3, error = $4 \
                   WHERE id = $1 AND done_at IS NULL",
    };
}

impl ChatQueue for Sqlite {
    fn accept(&self, b: Batch) -> Result<Vec<Option<i64>>, StoreError> {
        let tx = self.begin("begin queueing chat turns")?;
        tx.execute(FORGET_CLOSED.sqlite, [&b.channel, &b.forget_before])
            .map_err(sql("forget closed chat turns"))?;
        let mut ids = Vec::with_capacity(b.turns.len());
        for t in &b.turns {
            let open: i64 = tx
                .query_row(COUNT_OPEN.sqlite, [&b.channel, &t.conversation], |r| {
                    r.get(0)
                })
                .map_err(sql("count queued chat turns"))?;
            if open >= b.cap {
                ids.push(None);
                continue;
            }
            let id: i64 = tx
                .query_row(
                    INSERT.sqlite,
                    params![b.channel, t.conversation, t.event_id, t.turn, b.now],
                    |r| r.get(0),
                )
                .map_err(sql("queue chat turn"))?;
            ids.push(Some(id));
        }
        if let Some(cursor) = &b.cursor {
            tx.execute(SET_CURSOR.sqlite, [&b.channel, cursor])
                .map_err(sql("record channel cursor"))?;
        }
        tx.commit("commit queued chat turns")?;
        Ok(ids)
    }

    fn open_rows(&self, channel: &str) -> Result<Vec<QueueRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(OPEN_ROWS.sqlite)
            .map_err(sql("list queued chat turns"))?;
        let rows = stmt
            .query_map([channel], QueueRow::from_sqlite)
            .map_err(sql("list queued chat turns"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list queued chat turns"))
    }

    fn take(
        &self,
        channel: &str,
        conversation: &str,
        now: &str,
    ) -> Result<Option<QueueRow>, StoreError> {
        let tx = self.begin("begin taking a chat turn")?;
        let Some(id) = tx
            .query_row(OLDEST_OPEN.sqlite, [channel, conversation], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(sql("find queued chat turn"))?
        else {
            return Ok(None);
        };
        let row = tx
            .query_row(START.sqlite, params![id, now], QueueRow::from_sqlite)
            .map_err(sql("start queued chat turn"))?;
        tx.commit("commit taking a chat turn")?;
        Ok(Some(row))
    }

    fn close(
        &self,
        id: i64,
        now: &str,
        outcome: &str,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        self.conn()?
            .execute(CLOSE.sqlite, params![id, now, outcome, error])
            .map(|n| n == 1)
            .map_err(sql("close queued chat turn"))
    }
}

impl ChatQueue for Postgres {
    fn accept(&self, b: Batch) -> Result<Vec<Option<i64>>, StoreError> {
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin queueing chat turns"))?;
            // Serialise writers of one channel's queue: the counts below must see every row.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("chat_queue:{}", b.channel)],
            )
            .map_err(pg("lock chat queue"))?;
            tx.execute(FORGET_CLOSED.postgres, &[&b.channel, &b.forget_before])
                .map_err(pg("forget closed chat turns"))?;
            let mut ids = Vec::with_capacity(b.turns.len());
            for t in &b.turns {
                let open: i64 = tx
                    .query_one(COUNT_OPEN.postgres, &[&b.channel, &t.conversation])
                    .map(|r| r.get(0))
                    .map_err(pg("count queued chat turns"))?;
                if open >= b.cap {
                    ids.push(None);
                    continue;
                }
                let id: i64 = tx
                    .query_one(
                        INSERT.postgres,
                        &[&b.channel, &t.conversation, &t.event_id, &t.turn, &b.now],
                    )
                    .map(|r| r.get(0))
                    .map_err(pg("queue chat turn"))?;
                ids.push(Some(id));
            }
            if let Some(cursor) = &b.cursor {
                tx.execute(SET_CURSOR.postgres, &[&b.channel, cursor])
                    .map_err(pg("record channel cursor"))?;
            }
            tx.commit().map_err(pg("commit queued chat turns"))?;
            Ok(ids)
        })
    }

    fn open_rows(&self, channel: &str) -> Result<Vec<QueueRow>, StoreError> {
        let channel = channel.to_string();
        self.run(move |c| {
            c.query(OPEN_ROWS.postgres, &[&channel])
                .and_then(|rows| rows.iter().map(QueueRow::from_postgres).collect())
                .map_err(pg("list queued chat turns"))
        })
    }

    fn take(
        &self,
        channel: &str,
        conversation: &str,
        now: &str,
    ) -> Result<Option<QueueRow>, StoreError> {
        let args = [channel, conversation, now].map(str::to_string);
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin taking a chat turn"))?;
            let Some(id) = tx
                .query_opt(OLDEST_OPEN.postgres, &[&args[0], &args[1]])
                .map(|r| r.map(|r| r.get::<_, i64>(0)))
                .map_err(pg("find queued chat turn"))?
            else {
                return Ok(None);
            };
            let row = tx
                .query_one(START.postgres, &[&id, &args[2]])
                .and_then(|r| QueueRow::from_postgres(&r))
                .map_err(pg("start queued chat turn"))?;
            tx.commit().map_err(pg("commit taking a chat turn"))?;
            Ok(Some(row))
        })
    }

    fn close(
        &self,
        id: i64,
        now: &str,
        outcome: &str,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        let (now, outcome) = (now.to_string(), outcome.to_string());
        self.run(move |c| {
            c.execute(CLOSE.postgres, &[&id, &now, &outcome, &error])
                .map(|n| n == 1)
                .map_err(pg("close queued chat turn"))
        })
    }
}
