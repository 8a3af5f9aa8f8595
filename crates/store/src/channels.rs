//! What chat channels and webhooks keep: pairings (`pairings`: who may talk to an agent
//! through a channel, with which role), each channel's update cursor (`channel_cursors`),
//! which session answers each conversation (`channel_conversations`), the message each
//! approval request was posted on (`chat_approval_messages`, so it is edited once
//! settled even by a later process), and the webhook signatures seen recently
//! (`webhook_deliveries`, the replay guard).
//!
//! Guarantees: a pairing code is issued, looked up and decided in one transaction, so two
//! processes never issue more than `max_pending` codes per channel, a code decides exactly
//! one pending pairing once, and an expired code decides nothing. A webhook signature is
//! checked and recorded in one transaction, so a replayed delivery is refused even when
//! the copies arrive at the same time or after a restart.
//!
//! Does not: decide who may pair or what a role allows (the channels crate), or keep the
//! code of a decided pairing (it is cleared when decided).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::backend::{Sql, row, statements};
use crate::error::StoreError;
use crate::pg::{Postgres, pg};
use crate::sqlite::{Sqlite, sql};
use crate::store::{Store, now, timestamp};

/// Where a pairing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PairingStatus {
    /// A code was issued; nobody has decided.
    Pending,
    Approved,
    Denied,
}

impl PairingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingStatus::Pending => "pending",
            PairingStatus::Approved => "approved",
            PairingStatus::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Option<PairingStatus> {
        match s {
            "pending" => Some(PairingStatus::Pending),
            "approved" => Some(PairingStatus::Approved),
            "denied" => Some(PairingStatus::Denied),
            _ => None,
        }
    }
}

/// One sender of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairingRecord {
    pub channel: String,
    /// The platform's immutable user id.
    pub sender: String,
    /// The name the platform showed when the code was issued (for people only).
    pub sender_name: Option<String>,
    pub status: PairingStatus,
    /// `owner`, `approver` or `user` once approved.
    pub role: Option<String>,
    /// The one-time code while pending.
    pub code: Option<String>,
    pub created_at: String,
    /// When a pending code stops deciding anything.
    pub expires_at: Option<String>,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
}

impl PairingRecord {
    /// A pending pairing whose code has expired.
    pub fn is_expired(&self, now: &str) -> bool {
        self.status == PairingStatus::Pending && self.expires_at.as_deref().is_none_or(|e| e <= now)
    }

    /// A pending pairing whose code has expired by now.
    pub fn is_expired_now(&self) -> bool {
        now().is_ok_and(|n| self.is_expired(&n))
    }
}

/// What asking for a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingRequest {
    /// A new code was issued (or an expired one replaced).
    Issued(PairingRecord),
    /// The sender already has a pending, unexpired code: the same one.
    Pending(PairingRecord),
    /// The sender was already decided (approved or denied).
    Decided(PairingRecord),
    /// The channel has `max_pending` unexpired codes already; none issued.
    TooMany,
}

/// A new pairing code to issue.
pub struct NewPairing<'a> {
    pub channel: &'a str,
    pub sender: &'a str,
    pub sender_name: Option<&'a str>,
    pub code: &'a str,
    pub ttl: std::time::Duration,
    pub max_pending: u32,
}

impl Store {
    /// Issue `new.code` to a sender of a channel unless it is decided, already has an
    /// unexpired code, or the channel has `max_pending` unexpired codes (one transaction).
    pub fn request_pairing(&self, new: &NewPairing<'_>) -> Result<PairingRequest, StoreError> {
        let now_t = time::OffsetDateTime::now_utc();
        let now = timestamp(now_t)?;
        let ttl = time::Duration::try_from(new.ttl).unwrap_or(time::Duration::HOUR);
        let row = PairingRow {
            channel: new.channel.to_string(),
            sender: new.sender.to_string(),
            sender_name: new.sender_name.map(str::to_string),
            status: PairingStatus::Pending.as_str().to_string(),
            role: None,
            code: Some(new.code.to_string()),
            created_at: now.clone(),
            expires_at: Some(timestamp(now_t + ttl)?),
            decided_at: None,
            decided_by: None,
        };
        let outcome = self
            .backend()?
            .request_pairing(&row, &now, i64::from(new.max_pending))?;
        Ok(match outcome {
            RequestOutcome::Issued => PairingRequest::Issued(row.decode()?),
            RequestOutcome::Existing(r) => {
                let r = (*r).decode()?;
                if r.status == PairingStatus::Pending {
                    PairingRequest::Pending(r)
                } else {
                    PairingRequest::Decided(r)
                }
            }
            RequestOutcome::TooMany => PairingRequest::TooMany,
        })
    }

    /// The pairing of `sender` on `channel`, if any.
    pub fn pairing(
        &self,
        channel: &str,
        sender: &str,
    ) -> Result<Option<PairingRecord>, StoreError> {
        self.backend()?
            .pairing(channel, sender)?
            .map(PairingRow::decode)
            .transpose()
    }

    /// Every pairing (of `channel`, when given), oldest first.
    pub fn pairings(&self, channel: Option<&str>) -> Result<Vec<PairingRecord>, StoreError> {
        self.backend()?
            .pairings(channel)?
            .into_iter()
            .map(PairingRow::decode)
            .collect()
    }

    /// Decide the pending, unexpired pairing holding `code`: approve it with `role`
    /// (`Some`), or deny it (`None`). [`StoreError::NoPairing`] when no pending pairing
    /// holds that code (never issued, already decided, or expired).
    pub fn decide_pairing(
        &self,
        code: &str,
        role: Option<&str>,
        by: &str,
    ) -> Result<PairingRecord, StoreError> {
        let now = now()?;
        let status = if role.is_some() {
            PairingStatus::Approved
        } else {
            PairingStatus::Denied
        };
        let decided = Decided {
            status: status.as_str(),
            role: role.map(str::to_string),
            at: now.clone(),
            by: by.to_string(),
        };
        match self.backend()?.decide_pairing(code, &now, &decided)? {
            Some(row) => row.decode(),
            None => Err(StoreError::NoPairing {
                code: code.to_string(),
            }),
        }
    }

    /// Remove a sender's pairing (they must pair again); returns what was removed.
    pub fn remove_pairing(
        &self,
        channel: &str,
        sender: &str,
    ) -> Result<Option<PairingRecord>, StoreError> {
        self.backend()?
            .delete_pairing(channel, sender)?
            .map(PairingRow::decode)
            .transpose()
    }

    /// The cursor a channel stopped at (Telegram's update offset, Matrix's `since`).
    pub fn channel_cursor(&self, channel: &str) -> Result<Option<String>, StoreError> {
        self.backend()?.cursor(channel)
    }

    pub fn set_channel_cursor(&self, channel: &str, cursor: &str) -> Result<(), StoreError> {
        self.backend()?.set_cursor(channel, cursor)
    }

    /// The session answering `conversation` of `channel`, if one was started.
    pub fn conversation_session(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        self.backend()?.conversation_session(channel, conversation)
    }

    /// Make `session` the one answering `conversation` of `channel`.
    pub fn set_conversation_session(
        &self,
        channel: &str,
        conversation: &str,
        session: &str,
    ) -> Result<(), StoreError> {
        self.backend()?
            .set_conversation_session(channel, conversation, session, &now()?)
    }

    /// Record that webhook `hook` received a delivery signed `signature`, forgetting
    /// signatures older than `keep`; `false` when that signature was seen before (a
    /// replay), in which case nothing is recorded.
    pub fn note_webhook_delivery(
        &self,
        hook: &str,
        signature: &str,
        keep: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now_t = time::OffsetDateTime::now_utc();
        let keep = time::Duration::try_from(keep).unwrap_or(time::Duration::HOUR);
        let oldest = timestamp(now_t - keep)?;
        self.backend()?
            .note_delivery(hook, signature, &timestamp(now_t)?, &oldest)
    }
}

/// The chat message an approval request was posted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalMessage {
    pub approval: String,
    pub channel: String,
    pub conversation: String,
    /// The platform's id of the message (its buttons are on it).
    pub message_id: String,
}

impl Store {
    /// Remember that approval `m.approval` was posted on `m.message_id`.
    pub fn note_approval_message(&self, m: &ApprovalMessage) -> Result<(), StoreError> {
        self.backend()?.note_approval_message(m, &now()?)
    }

    /// The message approval `approval` was posted on in `channel`, while not forgotten.
    pub fn approval_message(
        &self,
        approval: &str,
        channel: &str,
    ) -> Result<Option<ApprovalMessage>, StoreError> {
        self.backend()?.approval_message(approval, channel)
    }

    /// Every remembered approval message of `channel`, oldest first.
    pub fn approval_messages(&self, channel: &str) -> Result<Vec<ApprovalMessage>, StoreError> {
        self.backend()?.approval_messages(channel)
    }

    /// Forget the message of `approval` in `channel`; `true` for the one caller that
    /// removed it (and so edits it), `false` if it was not there.
    pub fn forget_approval_message(
        &self,
        approval: &str,
        channel: &str,
    ) -> Result<bool, StoreError> {
        self.backend()?.forget_approval_message(approval, channel)
    }
}

/// What the backend did with a pairing request.
pub(crate) enum RequestOutcome {
    Issued,
    Existing(Box<PairingRow>),
    TooMany,
}

/// A decision to write.
pub(crate) struct Decided {
    status: &'static str,
    role: Option<String>,
    at: String,
    by: String,
}

/// The storage steps of this area.
pub(crate) trait Channels {
    /// In one transaction: the sender's row if decided or pending and unexpired; else
    /// `TooMany` if the channel has `max_pending` unexpired pending rows; else write `row`.
    fn request_pairing(
        &self,
        row: &PairingRow,
        now: &str,
        max_pending: i64,
    ) -> Result<RequestOutcome, StoreError>;
    fn pairing(&self, channel: &str, sender: &str) -> Result<Option<PairingRow>, StoreError>;
    fn pairings(&self, channel: Option<&str>) -> Result<Vec<PairingRow>, StoreError>;
    /// In one transaction: the pending row holding `code` and unexpired at `now`, updated
    /// with the decision (its code cleared).
    fn decide_pairing(
        &self,
        code: &str,
        now: &str,
        decided: &Decided,
    ) -> Result<Option<PairingRow>, StoreError>;
    fn delete_pairing(&self, channel: &str, sender: &str)
    -> Result<Option<PairingRow>, StoreError>;
    fn cursor(&self, channel: &str) -> Result<Option<String>, StoreError>;
    fn set_cursor(&self, channel: &str, cursor: &str) -> Result<(), StoreError>;
    fn conversation_session(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<String>, StoreError>;
    fn set_conversation_session(
        &self,
        channel: &str,
        conversation: &str,
        session: &str,
        now: &str,
    ) -> Result<(), StoreError>;
    fn note_approval_message(&self, m: &ApprovalMessage, now: &str) -> Result<(), StoreError>;
    fn approval_message(
        &self,
        approval: &str,
        channel: &str,
    ) -> Result<Option<ApprovalMessage>, StoreError>;
    fn approval_messages(&self, channel: &str) -> Result<Vec<ApprovalMessage>, StoreError>;
    fn forget_approval_message(&self, approval: &str, channel: &str) -> Result<bool, StoreError>;
    /// In one transaction: forget rows older than `oldest`; `false` if (hook, signature)
    /// is still there, else insert it and `true`.
    fn note_delivery(
        &self,
        hook: &str,
        signature: &str,
        now: &str,
        oldest: &str,
    ) -> Result<bool, StoreError>;
}

row! {
    /// A `pairings` row.
    #[derive(Debug, Clone)]
    pub(crate) struct PairingRow {
        channel: String,
        sender: String,
        sender_name: Option<String>,
        status: String,
        role: Option<String>,
        code: Option<String>,
        created_at: String,
        expires_at: Option<String>,
        decided_at: Option<String>,
        decided_by: Option<String>,
    }
}

impl PairingRow {
    fn decode(self) -> Result<PairingRecord, StoreError> {
        let status = PairingStatus::parse(&self.status).ok_or_else(|| StoreError::BadRow {
            table: "pairings",
            id: format!("{}:{}", self.channel, self.sender),
            reason: format!("status `{}`", self.status),
        })?;
        Ok(PairingRecord {
            channel: self.channel,
            sender: self.sender,
            sender_name: self.sender_name,
            status,
            role: self.role,
            code: self.code,
            created_at: self.created_at,
            expires_at: self.expires_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
        })
    }
}

row! {
    /// A `chat_approval_messages` row (without its `posted_at`).
    #[derive(Debug, Clone)]
    pub(crate) struct ApprovalMessageRow {
        approval: String,
        channel: String,
        conversation: String,
        message_id: String,
    }
}

impl ApprovalMessageRow {
    fn decode(self) -> ApprovalMessage {
        ApprovalMessage {
            approval: self.approval,
            channel: self.channel,
            conversation: self.conversation,
            message_id: self.message_id,
        }
    }
}

// The statements, SQLite's and PostgreSQL's side by side.
statements! {
    const PAIRING_FOR_UPDATE: Sql = Sql {
        sqlite: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                 decided_at, decided_by FROM pairings WHERE channel = ?1 AND sender = ?2",
        postgres: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                   decided_at, decided_by FROM pairings WHERE channel = $1 AND sender = $2 FOR UPDATE",
    };

    const PAIRING: Sql = Sql {
        sqlite: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                 decided_at, decided_by FROM pairings WHERE channel = ?1 AND sender = ?2",
        postgres: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                   decided_at, decided_by FROM pairings WHERE channel = $1 AND sender = $2",
    };

    const PAIRINGS: Sql = Sql {
        sqlite: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                 decided_at, decided_by FROM pairings WHERE (?1 IS NULL OR channel = ?1) \
                 ORDER BY created_at, channel, sender",
        postgres: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                   decided_at, decided_by FROM pairings WHERE ($1::text IS NULL OR channel = $1::text) \
                   ORDER BY created_at, channel, sender",
    };

    const COUNT_PENDING: Sql = Sql {
        sqlite: "SELECT count(*) FROM pairings WHERE channel = ?1 AND status = 'pending' \
                 AND expires_at > ?2",
        postgres: "SELECT count(*)::bigint FROM pairings WHERE channel = $1 AND status = 'pending' \
                   AND expires_at > $2",
    };

    const UPSERT_PENDING: Sql = Sql {
        sqlite: "INSERT INTO pairings (channel, sender, sender_name, status, role, code, created_at, \
                 expires_at, decided_at, decided_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (channel, sender) DO UPDATE SET sender_name = excluded.sender_name, \
                 status = excluded.status, role = excluded.role, code = excluded.code, \
                 created_at = excluded.created_at, expires_at = excluded.expires_at, \
                 decided_at = excluded.decided_at, decided_by = excluded.decided_by",
        postgres: "INSERT INTO pairings (channel, sender, sender_name, status, role, code, created_at, \
                   expires_at, decided_at, decided_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                   ON CONFLICT (channel, sender) DO UPDATE SET sender_name = excluded.sender_name, \
                   status = excluded.status, role = excluded.role, code = excluded.code, \
                   created_at = excluded.created_at, expires_at = excluded.expires_at, \
                   decided_at = excluded.decided_at, decided_by = excluded.decided_by",
    };

    const BY_CODE_FOR_UPDATE: Sql = Sql {
        sqlite: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                 decided_at, decided_by FROM pairings WHERE code = ?1 AND status = 'pending' \
                 AND expires_at > ?2",
        postgres: "SELECT channel, sender, sender_name, status, role, code, created_at, expires_at, \
                   decided_at, decided_by FROM pairings WHERE code = $1 AND status = 'pending' \
                   AND expires_at > $2 FOR UPDATE",
    };

    const DECIDE: Sql = Sql {
        sqlite: "UPDATE pairings SET status = ?3, role = ?4, code = NULL, expires_at = NULL, \
                 decided_at = ?5, decided_by = ?6 WHERE channel = ?1 AND sender = ?2",
        postgres: "UPDATE pairings SET status = $3, role = $4, code = NULL, expires_at = NULL, \
                   decided_at = $5, decided_by = $6 WHERE channel = $1 AND sender = $2",
    };

    const DELETE_PAIRING: Sql = Sql {
        sqlite: "DELETE FROM pairings WHERE channel = ?1 AND sender = ?2",
        postgres: "DELETE FROM pairings WHERE channel = $1 AND sender = $2",
    };

    const CURSOR: Sql = Sql {
        sqlite: "SELECT cursor FROM channel_cursors WHERE channel = ?1",
        postgres: "SELECT cursor FROM channel_cursors WHERE channel = $1",
    };

    /// Also written with the queued turns of its updates (`chat_queue.rs`).
    pub(crate) const SET_CURSOR: Sql = Sql {
        sqlite: "INSERT INTO channel_cursors (channel, cursor) VALUES (?1, ?2) \
                 ON CONFLICT (channel) DO UPDATE SET cursor = excluded.cursor",
        postgres: "INSERT INTO channel_cursors (channel, cursor) VALUES ($1, $2) \
                   ON CONFLICT (channel) DO UPDATE SET cursor = excluded.cursor",
    };

    const CONVERSATION: Sql = Sql {
        sqlite: "SELECT session FROM channel_conversations WHERE channel = ?1 AND conversation = ?2",
        postgres: "SELECT session FROM channel_conversations WHERE channel = $1 AND conversation = $2",
    };

    const SET_CONVERSATION: Sql = Sql {
        sqlite: "INSERT INTO channel_conversations (channel, conversation, session, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel, conversation) DO UPDATE SET \
                 session = excluded.session, updated_at = excluded.updated_at",
        postgres: "INSERT INTO channel_conversations (channel, conversation, session, updated_at) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (channel, conversation) DO UPDATE SET \
                   session = excluded.session, updated_at = excluded.updated_at",
    };

    const NOTE_APPROVAL_MESSAGE: Sql = Sql {
        sqlite: "INSERT INTO chat_approval_messages (approval, channel, conversation, message_id, \
                 posted_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (approval, channel) DO UPDATE \
                 SET conversation = excluded.conversation, message_id = excluded.message_id, \
                 posted_at = excluded.posted_at",
        postgres: "INSERT INTO chat_approval_messages (approval, channel, conversation, message_id, \
                   posted_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (approval, channel) DO UPDATE \
                   SET conversation = excluded.conversation, message_id = excluded.message_id, \
                   posted_at = excluded.posted_at",
    };

    const APPROVAL_MESSAGE: Sql = Sql {
        sqlite: "SELECT approval, channel, conversation, message_id FROM chat_approval_messages \
                 WHERE approval = ?1 AND channel = ?2",
        postgres: "SELECT approval, channel, conversation, message_id FROM chat_approval_messages \
                   WHERE approval = $1 AND channel = $2",
    };

    const APPROVAL_MESSAGES: Sql = Sql {
        sqlite: "SELECT approval, channel, conversation, message_id FROM chat_approval_messages \
                 WHERE channel = ?1 ORDER BY posted_at, approval",
        postgres: "SELECT approval, channel, conversation, message_id FROM chat_approval_messages \
                   WHERE channel = $1 ORDER BY posted_at, approval",
    };

    const FORGET_APPROVAL_MESSAGE: Sql = Sql {
        sqlite: "DELETE FROM chat_approval_messages WHERE approval = ?1 AND channel = ?2",
        postgres: "DELETE FROM chat_approval_messages WHERE approval = $1 AND channel = $2",
    };

    const PRUNE_DELIVERIES: Sql = Sql {
        sqlite: "DELETE FROM webhook_deliveries WHERE received_at < ?1",
        postgres: "DELETE FROM webhook_deliveries WHERE received_at < $1",
    };

    const INSERT_DELIVERY: Sql = Sql {
        sqlite: "INSERT INTO webhook_deliveries (hook, signature, received_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (hook, signature) DO NOTHING",
        postgres: "INSERT INTO webhook_deliveries (hook, signature, received_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (hook, signature) DO NOTHING",
    };
}

impl Channels for Sqlite {
    fn request_pairing(
        &self,
        row: &PairingRow,
        now: &str,
        max_pending: i64,
    ) -> Result<RequestOutcome, StoreError> {
        let tx = self.begin("begin pairing request")?;
        let existing = tx
            .query_row(
                PAIRING_FOR_UPDATE.sqlite,
                [&row.channel, &row.sender],
                PairingRow::from_sqlite,
            )
            .optional()
            .map_err(sql("read pairing"))?;
        if let Some(e) = existing
            && (e.status != "pending" || e.expires_at.as_deref().is_some_and(|x| x > now))
        {
            return Ok(RequestOutcome::Existing(Box::new(e)));
        }
        let pending: i64 = tx
            .query_row(COUNT_PENDING.sqlite, [&row.channel, now], |r| r.get(0))
            .map_err(sql("count pairings"))?;
        if pending >= max_pending {
            return Ok(RequestOutcome::TooMany);
        }
        tx.execute(
            UPSERT_PENDING.sqlite,
            params![
                row.channel,
                row.sender,
                row.sender_name,
                row.status,
                row.role,
                row.code,
                row.created_at,
                row.expires_at,
                row.decided_at,
                row.decided_by
            ],
        )
        .map_err(sql("record pairing"))?;
        tx.commit("commit pairing request")?;
        Ok(RequestOutcome::Issued)
    }

    fn pairing(&self, channel: &str, sender: &str) -> Result<Option<PairingRow>, StoreError> {
        self.conn()?
            .query_row(PAIRING.sqlite, [channel, sender], PairingRow::from_sqlite)
            .optional()
            .map_err(sql("read pairing"))
    }

    fn pairings(&self, channel: Option<&str>) -> Result<Vec<PairingRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(PAIRINGS.sqlite)
            .map_err(sql("list pairings"))?;
        let rows = stmt
            .query_map(params![channel], PairingRow::from_sqlite)
            .map_err(sql("list pairings"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list pairings"))
    }

    fn decide_pairing(
        &self,
        code: &str,
        now: &str,
        d: &Decided,
    ) -> Result<Option<PairingRow>, StoreError> {
        let tx = self.begin("begin pairing decision")?;
        let Some(row) = tx
            .query_row(
                BY_CODE_FOR_UPDATE.sqlite,
                [code, now],
                PairingRow::from_sqlite,
            )
            .optional()
            .map_err(sql("find pairing code"))?
        else {
            return Ok(None);
        };
        tx.execute(
            DECIDE.sqlite,
            params![row.channel, row.sender, d.status, d.role, d.at, d.by],
        )
        .map_err(sql("decide pairing"))?;
        let updated = tx
            .query_row(
                PAIRING.sqlite,
                [&row.channel, &row.sender],
                PairingRow::from_sqlite,
            )
            .map_err(sql("read pairing"))?;
        tx.commit("commit pairing decision")?;
        Ok(Some(updated))
    }

    fn delete_pairing(
        &self,
        channel: &str,
        sender: &str,
    ) -> Result<Option<PairingRow>, StoreError> {
        let tx = self.begin("begin pairing removal")?;
        let row = tx
            .query_row(
                PAIRING_FOR_UPDATE.sqlite,
                [channel, sender],
                PairingRow::from_sqlite,
            )
            .optional()
            .map_err(sql("read pairing"))?;
        if row.is_some() {
            tx.execute(DELETE_PAIRING.sqlite, [channel, sender])
                .map_err(sql("remove pairing"))?;
        }
        tx.commit("commit pairing removal")?;
        Ok(row)
    }

    fn cursor(&self, channel: &str) -> Result<Option<String>, StoreError> {
        self.conn()?
            .query_row(CURSOR.sqlite, [channel], |r| r.get(0))
            .optional()
            .map_err(sql("read channel cursor"))
    }

    fn set_cursor(&self, channel: &str, cursor: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute(SET_CURSOR.sqlite, [channel, cursor])
            .map(drop)
            .map_err(sql("record channel cursor"))
    }

    fn conversation_session(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        self.conn()?
            .query_row(CONVERSATION.sqlite, [channel, conversation], |r| r.get(0))
            .optional()
            .map_err(sql("read conversation"))
    }

    fn set_conversation_session(
        &self,
        channel: &str,
        conversation: &str,
        session: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                SET_CONVERSATION.sqlite,
                [channel, conversation, session, now],
            )
            .map(drop)
            .map_err(sql("record conversation"))
    }

    fn note_approval_message(&self, m: &ApprovalMessage, now: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                NOTE_APPROVAL_MESSAGE.sqlite,
                [&m.approval, &m.channel, &m.conversation, &m.message_id, now],
            )
            .map(drop)
            .map_err(sql("record approval message"))
    }

    fn approval_message(
        &self,
        approval: &str,
        channel: &str,
    ) -> Result<Option<ApprovalMessage>, StoreError> {
        self.conn()?
            .query_row(
                APPROVAL_MESSAGE.sqlite,
                [approval, channel],
                ApprovalMessageRow::from_sqlite,
            )
            .optional()
            .map(|r| r.map(ApprovalMessageRow::decode))
            .map_err(sql("read approval message"))
    }

    fn approval_messages(&self, channel: &str) -> Result<Vec<ApprovalMessage>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(APPROVAL_MESSAGES.sqlite)
            .map_err(sql("list approval messages"))?;
        let rows = stmt
            .query_map([channel], ApprovalMessageRow::from_sqlite)
            .map_err(sql("list approval messages"))?;
        rows.map(|r| r.map(ApprovalMessageRow::decode))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("list approval messages"))
    }

    fn forget_approval_message(&self, approval: &str, channel: &str) -> Result<bool, StoreError> {
        self.conn()?
            .execute(FORGET_APPROVAL_MESSAGE.sqlite, [approval, channel])
            .map(|n| n == 1)
            .map_err(sql("forget approval message"))
    }

    fn note_delivery(
        &self,
        hook: &str,
        signature: &str,
        now: &str,
        oldest: &str,
    ) -> Result<bool, StoreError> {
        let tx = self.begin("begin webhook delivery")?;
        tx.execute(PRUNE_DELIVERIES.sqlite, [oldest])
            .map_err(sql("forget old webhook deliveries"))?;
        let inserted = tx
            .execute(INSERT_DELIVERY.sqlite, [hook, signature, now])
            .map_err(sql("record webhook delivery"))?;
        tx.commit("commit webhook delivery")?;
        Ok(inserted == 1)
    }
}

impl Channels for Postgres {
    fn request_pairing(
        &self,
        row: &PairingRow,
        now: &str,
        max_pending: i64,
    ) -> Result<RequestOutcome, StoreError> {
        let (row, now) = (row.clone(), now.to_string());
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin pairing request"))?;
            let existing = tx
                .query_opt(PAIRING_FOR_UPDATE.postgres, &[&row.channel, &row.sender])
                .and_then(|r| r.as_ref().map(PairingRow::from_postgres).transpose())
                .map_err(pg("read pairing"))?;
            if let Some(e) = existing
                && (e.status != "pending"
                    || e.expires_at.as_deref().is_some_and(|x| x > now.as_str()))
            {
                return Ok(RequestOutcome::Existing(Box::new(e)));
            }
            // Serialise issuers of one channel: the count below must see every pending row.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("pairing:{}", row.channel)],
            )
            .map_err(pg("lock channel pairings"))?;
            let pending: i64 = tx
                .query_one(COUNT_PENDING.postgres, &[&row.channel, &now])
                .map(|r| r.get(0))
                .map_err(pg("count pairings"))?;
            if pending >= max_pending {
                return Ok(RequestOutcome::TooMany);
            }
            tx.execute(
                UPSERT_PENDING.postgres,
                &[
                    &row.channel,
                    &row.sender,
                    &row.sender_name,
                    &row.status,
                    &row.role,
                    &row.code,
                    &row.created_at,
                    &row.expires_at,
                    &row.decided_at,
                    &row.decided_by,
                ],
            )
            .map_err(pg("record pairing"))?;
            tx.commit().map_err(pg("commit pairing request"))?;
            Ok(RequestOutcome::Issued)
        })
    }

    fn pairing(&self, channel: &str, sender: &str) -> Result<Option<PairingRow>, StoreError> {
        let (channel, sender) = (channel.to_string(), sender.to_string());
        self.run(move |c| {
            c.query_opt(PAIRING.postgres, &[&channel, &sender])
                .and_then(|r| r.as_ref().map(PairingRow::from_postgres).transpose())
                .map_err(pg("read pairing"))
        })
    }

    fn pairings(&self, channel: Option<&str>) -> Result<Vec<PairingRow>, StoreError> {
        let channel = channel.map(str::to_string);
        self.run(move |c| {
            c.query(PAIRINGS.postgres, &[&channel])
                .and_then(|rows| rows.iter().map(PairingRow::from_postgres).collect())
                .map_err(pg("list pairings"))
        })
    }

    fn decide_pairing(
        &self,
        code: &str,
        now: &str,
        d: &Decided,
    ) -> Result<Option<PairingRow>, StoreError> {
        let (code, now) = (code.to_string(), now.to_string());
        let (status, role, at, by) = (d.status, d.role.clone(), d.at.clone(), d.by.clone());
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin pairing decision"))?;
            let Some(row) = tx
                .query_opt(BY_CODE_FOR_UPDATE.postgres, &[&code, &now])
                .and_then(|r| r.as_ref().map(PairingRow::from_postgres).transpose())
                .map_err(pg("find pairing code"))?
            else {
                return Ok(None);
            };
            tx.execute(
                DECIDE.postgres,
                &[&row.channel, &row.sender, &status, &role, &at, &by],
            )
            .map_err(pg("decide pairing"))?;
            let updated = tx
                .query_one(PAIRING.postgres, &[&row.channel, &row.sender])
                .and_then(|r| PairingRow::from_postgres(&r))
                .map_err(pg("read pairing"))?;
            tx.commit().map_err(pg("commit pairing decision"))?;
            Ok(Some(updated))
        })
    }

    fn delete_pairing(
        &self,
        channel: &str,
        sender: &str,
    ) -> Result<Option<PairingRow>, StoreError> {
        let (channel, sender) = (channel.to_string(), sender.to_string());
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin pairing removal"))?;
            let row = tx
                .query_opt(PAIRING_FOR_UPDATE.postgres, &[&channel, &sender])
                .and_then(|r| r.as_ref().map(PairingRow::from_postgres).transpose())
                .map_err(pg("read pairing"))?;
            if row.is_some() {
                tx.execute(DELETE_PAIRING.postgres, &[&channel, &sender])
                    .map_err(pg("remove pairing"))?;
            }
            tx.commit().map_err(pg("commit pairing removal"))?;
            Ok(row)
        })
    }

    fn cursor(&self, channel: &str) -> Result<Option<String>, StoreError> {
        let channel = channel.to_string();
        self.run(move |c| {
            c.query_opt(CURSOR.postgres, &[&channel])
                .map(|r| r.map(|r| r.get(0)))
                .map_err(pg("read channel cursor"))
        })
    }

    fn set_cursor(&self, channel: &str, cursor: &str) -> Result<(), StoreError> {
        let (channel, cursor) = (channel.to_string(), cursor.to_string());
        self.run(move |c| {
            c.execute(SET_CURSOR.postgres, &[&channel, &cursor])
                .map(drop)
                .map_err(pg("record channel cursor"))
        })
    }

    fn conversation_session(
        &self,
        channel: &str,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        let (channel, conversation) = (channel.to_string(), conversation.to_string());
        self.run(move |c| {
            c.query_opt(CONVERSATION.postgres, &[&channel, &conversation])
                .map(|r| r.map(|r| r.get(0)))
                .map_err(pg("read conversation"))
        })
    }

    fn set_conversation_session(
        &self,
        channel: &str,
        conversation: &str,
        session: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let args = [channel, conversation, session, now].map(str::to_string);
        self.run(move |c| {
            c.execute(
                SET_CONVERSATION.postgres,
                &[&args[0], &args[1], &args[2], &args[3]],
            )
            .map(drop)
            .map_err(pg("record conversation"))
        })
    }

    fn note_approval_message(&self, m: &ApprovalMessage, now: &str) -> Result<(), StoreError> {
        let args = [&m.approval, &m.channel, &m.conversation, &m.message_id].map(String::clone);
        let now = now.to_string();
        self.run(move |c| {
            c.execute(
                NOTE_APPROVAL_MESSAGE.postgres,
                &[&args[0], &args[1], &args[2], &args[3], &now],
            )
            .map(drop)
            .map_err(pg("record approval message"))
        })
    }

    fn approval_message(
        &self,
        approval: &str,
        channel: &str,
    ) -> Result<Option<ApprovalMessage>, StoreError> {
        let (approval, channel) = (approval.to_string(), channel.to_string());
        self.run(move |c| {
            c.query_opt(APPROVAL_MESSAGE.postgres, &[&approval, &channel])
                .and_then(|r| {
                    r.as_ref()
                        .map(|r| {
                            ApprovalMessageRow::from_postgres(r).map(ApprovalMessageRow::decode)
                        })
                        .transpose()
                })
                .map_err(pg("read approval message"))
        })
    }

    fn approval_messages(&self, channel: &str) -> Result<Vec<ApprovalMessage>, StoreError> {
        let channel = channel.to_string();
        self.run(move |c| {
            c.query(APPROVAL_MESSAGES.postgres, &[&channel])
                .and_then(|rows| {
                    rows.iter()
                        .map(|r| {
                            ApprovalMessageRow::from_postgres(r).map(ApprovalMessageRow::decode)
                        })
                        .collect()
                })
                .map_err(pg("list approval messages"))
        })
    }

    fn forget_approval_message(&self, approval: &str, channel: &str) -> Result<bool, StoreError> {
        let (approval, channel) = (approval.to_string(), channel.to_string());
        self.run(move |c| {
            c.execute(FORGET_APPROVAL_MESSAGE.postgres, &[&approval, &channel])
                .map(|n| n == 1)
                .map_err(pg("forget approval message"))
        })
    }

    fn note_delivery(
        &self,
        hook: &str,
        signature: &str,
        now: &str,
        oldest: &str,
    ) -> Result<bool, StoreError> {
        let args = [hook, signature, now, oldest].map(str::to_string);
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin webhook delivery"))?;
            tx.execute(PRUNE_DELIVERIES.postgres, &[&args[3]])
                .map_err(pg("forget old webhook deliveries"))?;
            let inserted = tx
                .execute(INSERT_DELIVERY.postgres, &[&args[0], &args[1], &args[2]])
                .map_err(pg("record webhook delivery"))?;
            tx.commit().map_err(pg("commit webhook delivery"))?;
            Ok(inserted == 1)
        })
    }
}
