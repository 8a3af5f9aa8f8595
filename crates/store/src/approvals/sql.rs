//! The storage of approvals and grants: rows, every statement in both dialects side by
//! side, and the two implementations. SQLite holds an answered request against other
//! answers with `BEGIN IMMEDIATE`; PostgreSQL with a row lock (`SELECT … FOR UPDATE`)
//! in a transaction that spans the caller's `apply`.

use rusqlite::{OptionalExtension, params};

use super::{
    AnswerReach, ApprovalFilter, ApprovalKind, ApprovalRecord, ApprovalStatus, GrantQuery,
    GrantRecord, GrantScope,
};
use crate::backend::{Sql, row, statements};
use crate::error::StoreError;
use crate::pg::{self, Postgres, pg};
use crate::sqlite::{self, Sqlite, sql};

/// The storage steps of this area. Rows come back undecoded (the caller decodes),
/// except where the transaction itself decides on the decoded state.
pub(crate) trait Approvals {
    fn insert_approval(&self, row: ApprovalRow) -> Result<(), StoreError>;
    fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError>;
    /// Matching `filter`, oldest first.
    fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError>;
    /// The transaction of one answer, holding the request against other answers.
    fn begin_answer(&self) -> Result<Box<dyn AnswerTx + '_>, StoreError>;
    /// Mark it expired if pending; the row as it then stands.
    fn expire_approval(&self, id: &str, now: String) -> Result<Option<ApprovalRow>, StoreError>;
    /// Mark every pending request due at `now` expired; their ids, in no order.
    fn expire_due(&self, now: String) -> Result<Vec<String>, StoreError>;
    fn list_grants(
        &self,
        agent: Option<&str>,
        include_inactive: bool,
        now: String,
    ) -> Result<Vec<GrantRow>, StoreError>;
    fn get_grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError>;
    /// Revoke it in one transaction: [`StoreError::NoGrant`], or
    /// [`StoreError::AlreadyRevoked`] when it was.
    fn revoke_grant(&self, id: &str, now: String) -> Result<GrantRecord, StoreError>;
    /// Active grants of the query's agent, kind, tool and session, oldest first; the
    /// caller checks which covers the action.
    fn active_grants(&self, q: &GrantQuery<'_>, now: String) -> Result<Vec<GrantRow>, StoreError>;
}

/// The steps of an answer, inside one transaction that holds the approval against
/// other answers until it commits or is dropped (rolled back).
pub(crate) trait AnswerTx {
    /// The approval, locked.
    fn approval(&mut self, id: &str) -> Result<Option<ApprovalRow>, StoreError>;
    /// Mark it expired (if still pending).
    fn expire(&mut self, id: &str, now: &str) -> Result<(), StoreError>;
    fn insert_grant(&mut self, g: GrantRow) -> Result<(), StoreError>;
    /// Write the answer if still pending and unexpired; the rows changed.
    fn mark_answered(&mut self, a: AnswerUpdate) -> Result<u64, StoreError>;
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// The answer columns of an `approvals` row.
pub(crate) struct AnswerUpdate {
    pub(crate) id: String,
    pub(crate) status: &'static str,
    pub(crate) answer: Option<&'static str>,
    pub(crate) grant_id: Option<String>,
    pub(crate) answered_by: String,
    pub(crate) answered_at: String,
}

row! {
    /// An `approvals` row as stored: enums as their names, lists and objects as JSON.
    pub(crate) struct ApprovalRow {
        id: String,
        created_at: String,
        expires_at: String,
        agent: String,
        session: String,
        kind: String,
        tool: String,
        action: String,
        fingerprint: String,
        argv: Option<String>,
        host: Option<String>,
        arguments: String,
        reason: String,
        rule: String,
        labels: String,
        untrusted_sources: String,
        payload: Option<String>,
        status: String,
        answer: Option<String>,
        grant_id: Option<String>,
        answered_by: Option<String>,
        answered_at: Option<String>,
    }
}

row! {
    /// A `grants` row as stored: the scope as its name plus `argv_prefix` (JSON) or
    /// `host`.
    pub(crate) struct GrantRow {
        id: String,
        created_at: String,
        expires_at: Option<String>,
        agent: String,
        session: Option<String>,
        kind: String,
        tool: String,
        scope: String,
        fingerprint: Option<String>,
        argv_prefix: Option<String>,
        host: Option<String>,
        action: String,
        source: String,
        granted_by: String,
        revoked_at: Option<String>,
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::Encode)
}

impl ApprovalRow {
    pub(crate) fn encode(r: &ApprovalRecord) -> Result<ApprovalRow, StoreError> {
        Ok(ApprovalRow {
            id: r.id.clone(),
            created_at: r.created_at.clone(),
            expires_at: r.expires_at.clone(),
            agent: r.agent.clone(),
            session: r.session.clone(),
            kind: r.kind.as_str().to_string(),
            tool: r.tool.clone(),
            action: r.action.clone(),
            fingerprint: r.fingerprint.clone(),
            argv: r.argv.as_ref().map(encode).transpose()?,
            host: r.host.clone(),
            arguments: encode(&r.arguments)?,
            reason: r.reason.clone(),
            rule: r.rule.clone(),
            labels: encode(&r.labels)?,
            untrusted_sources: encode(&r.untrusted_sources)?,
            payload: r.payload.as_ref().map(encode).transpose()?,
            status: r.status.as_str().to_string(),
            answer: r.answer.map(|a| a.as_str().to_string()),
            grant_id: r.grant_id.clone(),
            answered_by: r.answered_by.clone(),
            answered_at: r.answered_at.clone(),
        })
    }
}

impl GrantRow {
    pub(crate) fn encode(g: &GrantRecord) -> Result<GrantRow, StoreError> {
        let (argv_prefix, host) = match &g.scope {
            GrantScope::Exact => (None, None),
            GrantScope::Prefix(p) => (Some(encode(p)?), None),
            GrantScope::Host(h) => (None, Some(h.clone())),
        };
        Ok(GrantRow {
            id: g.id.clone(),
            created_at: g.created_at.clone(),
            expires_at: g.expires_at.clone(),
            agent: g.agent.clone(),
            session: g.session.clone(),
            kind: g.kind.as_str().to_string(),
            tool: g.tool.clone(),
            scope: g.scope.name().to_string(),
            fingerprint: g.fingerprint.clone(),
            argv_prefix,
            host,
            action: g.action.clone(),
            source: g.source.clone(),
            granted_by: g.granted_by.clone(),
            revoked_at: g.revoked_at.clone(),
        })
    }
}

fn json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: &str,
    column: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::BadRow {
        table,
        id: id.to_string(),
        reason: format!("column `{column}` is not the expected JSON: {e}"),
    })
}

fn bad_enum(table: &'static str, id: &str, column: &str, value: &str) -> StoreError {
    StoreError::BadRow {
        table,
        id: id.to_string(),
        reason: format!("column `{column}` has unknown value `{value}`"),
    }
}

impl ApprovalRow {
    pub(crate) fn decode(self) -> Result<ApprovalRecord, StoreError> {
        let ApprovalRow {
            id,
            kind,
            argv,
            arguments,
            labels,
            untrusted_sources,
            payload,
            status,
            answer,
            ..
        } = &self;
        let t = "approvals";
        Ok(ApprovalRecord {
            kind: ApprovalKind::parse(kind).ok_or_else(|| bad_enum(t, id, "kind", kind))?,
            argv: argv.as_ref().map(|a| json(t, id, "argv", a)).transpose()?,
            arguments: json(t, id, "arguments", arguments)?,
            labels: json(t, id, "labels", labels)?,
            untrusted_sources: json(t, id, "untrusted_sources", untrusted_sources)?,
            payload: payload
                .as_ref()
                .map(|p| json(t, id, "payload", p))
                .transpose()?,
            status: ApprovalStatus::parse(status)
                .ok_or_else(|| bad_enum(t, id, "status", status))?,
            answer: answer
                .as_ref()
                .map(|a| AnswerReach::parse(a).ok_or_else(|| bad_enum(t, id, "answer", a)))
                .transpose()?,
            id: self.id,
            created_at: self.created_at,
            expires_at: self.expires_at,
            agent: self.agent,
            session: self.session,
            tool: self.tool,
            action: self.action,
            fingerprint: self.fingerprint,
            host: self.host,
            reason: self.reason,
            rule: self.rule,
            grant_id: self.grant_id,
            answered_by: self.answered_by,
            answered_at: self.answered_at,
        })
    }
}

impl GrantRow {
    pub(crate) fn decode(self) -> Result<GrantRecord, StoreError> {
        let t = "grants";
        let id = self.id;
        let scope = match (self.scope.as_str(), self.argv_prefix, self.host) {
            ("exact", _, _) => GrantScope::Exact,
            ("prefix", Some(p), _) => GrantScope::Prefix(json(t, &id, "argv_prefix", &p)?),
            ("host", _, Some(h)) => GrantScope::Host(h),
            (other, _, _) => return Err(bad_enum(t, &id, "scope", other)),
        };
        Ok(GrantRecord {
            kind: ApprovalKind::parse(&self.kind)
                .ok_or_else(|| bad_enum(t, &id, "kind", &self.kind))?,
            id,
            scope,
            created_at: self.created_at,
            expires_at: self.expires_at,
            agent: self.agent,
            session: self.session,
            tool: self.tool,
            fingerprint: self.fingerprint,
            action: self.action,
            source: self.source,
            granted_by: self.granted_by,
            revoked_at: self.revoked_at,
        })
    }
}

// The statements, SQLite's and PostgreSQL's side by side.

macro_rules! approval_columns {
    () => {
        "id, created_at, expires_at, agent, session, kind, tool, action, fingerprint, argv, \
         host, arguments, reason, rule, labels, untrusted_sources, payload, status, answer, \
         grant_id, answered_by, answered_at"
    };
}

macro_rules! grant_columns {
    () => {
        "id, created_at, expires_at, agent, session, kind, tool, scope, fingerprint, \
         argv_prefix, host, action, source, granted_by, revoked_at"
    };
}

statements! {
    const INSERT_APPROVAL: Sql = Sql {
        sqlite: concat!(
            "INSERT INTO approvals (",
            approval_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19, ?20, ?21, ?22)"
        ),
        postgres: concat!(
            "INSERT INTO approvals (",
            approval_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22)"
        ),
    };

    const GET_APPROVAL: Sql = Sql {
        sqlite: concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE id = ?1"
        ),
        postgres: concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE id = $1"
        ),
    };

    /// The request an answer decides on, held against other answers until the answer's
    /// transaction ends (SQLite: by its `BEGIN IMMEDIATE`).
    const LOCK_APPROVAL: Sql = Sql {
        sqlite: concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE id = ?1"
        ),
        postgres: concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE id = $1 FOR UPDATE"
        ),
    };

    const LIST_APPROVALS: Sql = Sql {
        sqlite: concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR agent = ?2) \
             AND (?3 IS NULL OR session = ?3) ORDER BY created_at, rowid"
        ),
        postgres: concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE ($1::text IS NULL OR status = $1::text) \
             AND ($2::text IS NULL OR agent = $2::text) \
             AND ($3::text IS NULL OR session = $3::text) ORDER BY created_at, n"
        ),
    };

    const EXPIRE: Sql = Sql {
        sqlite: "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                 answered_at = ?2 WHERE id = ?1 AND status = 'pending'",
        postgres: "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                   answered_at = $2 WHERE id = $1 AND status = 'pending'",
    };

    const EXPIRE_DUE: Sql = Sql {
        sqlite: "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                 answered_at = ?1 WHERE status = 'pending' AND expires_at <= ?1 RETURNING id",
        postgres: "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                   answered_at = $1 WHERE status = 'pending' AND expires_at <= $1 RETURNING id",
    };

    /// Decides the race between answers: only a pending, unexpired request changes.
    const MARK_ANSWERED: Sql = Sql {
        sqlite: "UPDATE approvals SET status = ?2, answer = ?3, grant_id = ?4, answered_by = ?5, \
                 answered_at = ?6 WHERE id = ?1 AND status = 'pending' AND expires_at > ?6",
        postgres: "UPDATE approvals SET status = $2, answer = $3, grant_id = $4, answered_by = $5, \
                   answered_at = $6 WHERE id = $1 AND status = 'pending' AND expires_at > $6",
    };

    const INSERT_GRANT: Sql = Sql {
        sqlite: concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        postgres: concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ),
    };

    const GET_GRANT: Sql = Sql {
        sqlite: concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = ?1"),
        postgres: concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"),
    };

    /// The grant a revocation decides on, held until it commits.
    const LOCK_GRANT: Sql = Sql {
        sqlite: concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = ?1"),
        postgres: concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE id = $1 FOR UPDATE"
        ),
    };

    const LIST_GRANTS: Sql = Sql {
        sqlite: concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE (?1 IS NULL OR agent = ?1) \
             AND (?2 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?3))) \
             ORDER BY created_at, rowid"
        ),
        postgres: concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE ($1::text IS NULL OR agent = $1::text) \
             AND ($2 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3))) \
             ORDER BY created_at, n"
        ),
    };

    const REVOKE_GRANT: Sql = Sql {
        sqlite: "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        postgres: "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    };

    const ACTIVE_GRANTS: Sql = Sql {
        sqlite: concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE agent = ?1 AND kind = ?2 AND tool = ?3 \
             AND (session IS NULL OR session = ?4) AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?5) ORDER BY created_at, rowid"
        ),
        postgres: concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE agent = $1 AND kind = $2 AND tool = $3 \
             AND (session IS NULL OR session = $4) AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $5) ORDER BY created_at, n"
        ),
    };
}

// SQLite.

fn sqlite_approval(
    conn: &rusqlite::Connection,
    sql_text: &str,
    id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    conn.query_row(sql_text, [id], ApprovalRow::from_sqlite)
        .optional()
        .map_err(sql("read approval"))
}

fn sqlite_grant(
    conn: &rusqlite::Connection,
    sql_text: &str,
    id: &str,
) -> Result<Option<GrantRow>, StoreError> {
    conn.query_row(sql_text, [id], GrantRow::from_sqlite)
        .optional()
        .map_err(sql("read grant"))
}

impl Approvals for Sqlite {
    fn insert_approval(&self, r: ApprovalRow) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                INSERT_APPROVAL.sqlite,
                params![
                    r.id,
                    r.created_at,
                    r.expires_at,
                    r.agent,
                    r.session,
                    r.kind,
                    r.tool,
                    r.action,
                    r.fingerprint,
                    r.argv,
                    r.host,
                    r.arguments,
                    r.reason,
                    r.rule,
                    r.labels,
                    r.untrusted_sources,
                    r.payload,
                    r.status,
                    r.answer,
                    r.grant_id,
                    r.answered_by,
                    r.answered_at,
                ],
            )
            .map_err(sql("create approval"))?;
        Ok(())
    }

    fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        sqlite_approval(&*self.conn()?, GET_APPROVAL.sqlite, id)
    }

    fn list_approvals(&self, f: &ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(LIST_APPROVALS.sqlite)
            .map_err(sql("list approvals"))?;
        let rows = stmt
            .query_map(
                params![f.status.map(ApprovalStatus::as_str), f.agent, f.session],
                ApprovalRow::from_sqlite,
            )
            .map_err(sql("list approvals"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list approvals"))
    }

    fn begin_answer(&self) -> Result<Box<dyn AnswerTx + '_>, StoreError> {
        Ok(Box::new(self.begin("begin answer")?))
    }

    fn expire_approval(&self, id: &str, now: String) -> Result<Option<ApprovalRow>, StoreError> {
        let conn = self.conn()?;
        conn.execute(EXPIRE.sqlite, params![id, now])
            .map_err(sql("expire approval"))?;
        sqlite_approval(&conn, GET_APPROVAL.sqlite, id)
    }

    fn expire_due(&self, now: String) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(EXPIRE_DUE.sqlite)
            .map_err(sql("expire approvals"))?;
        let rows = stmt
            .query_map([now], |r| r.get::<_, String>(0))
            .map_err(sql("expire approvals"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("expire approvals"))
    }

    fn list_grants(
        &self,
        agent: Option<&str>,
        include_inactive: bool,
        now: String,
    ) -> Result<Vec<GrantRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(LIST_GRANTS.sqlite)
            .map_err(sql("list grants"))?;
        let rows = stmt
            .query_map(params![agent, include_inactive, now], GrantRow::from_sqlite)
            .map_err(sql("list grants"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list grants"))
    }

    fn get_grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        sqlite_grant(&*self.conn()?, GET_GRANT.sqlite, id)
    }

    fn revoke_grant(&self, id: &str, now: String) -> Result<GrantRecord, StoreError> {
        let tx = self.begin("begin revoke")?;
        let Some(grant) = sqlite_grant(&tx, LOCK_GRANT.sqlite, id)? else {
            return Err(StoreError::NoGrant { id: id.to_string() });
        };
        if let Some(at) = grant.decode()?.revoked_at {
            return Err(StoreError::AlreadyRevoked {
                id: id.to_string(),
                at,
            });
        }
        tx.execute(REVOKE_GRANT.sqlite, params![id, now])
            .map_err(sql("revoke grant"))?;
        let grant = sqlite_grant(&tx, GET_GRANT.sqlite, id)?
            .ok_or_else(|| StoreError::NoGrant { id: id.to_string() })?
            .decode()?;
        tx.commit("commit revoke")?;
        Ok(grant)
    }

    fn active_grants(&self, q: &GrantQuery<'_>, now: String) -> Result<Vec<GrantRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(ACTIVE_GRANTS.sqlite)
            .map_err(sql("find grant"))?;
        let rows = stmt
            .query_map(
                params![q.agent, q.kind.as_str(), q.tool, q.session, now],
                GrantRow::from_sqlite,
            )
            .map_err(sql("find grant"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("find grant"))
    }
}

impl AnswerTx for sqlite::Tx<'_> {
    fn approval(&mut self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        sqlite_approval(self, LOCK_APPROVAL.sqlite, id)
    }

    fn expire(&mut self, id: &str, now: &str) -> Result<(), StoreError> {
        self.execute(EXPIRE.sqlite, params![id, now])
            .map_err(sql("expire approval"))?;
        Ok(())
    }

    fn insert_grant(&mut self, g: GrantRow) -> Result<(), StoreError> {
        self.execute(
            INSERT_GRANT.sqlite,
            params![
                g.id,
                g.created_at,
                g.expires_at,
                g.agent,
                g.session,
                g.kind,
                g.tool,
                g.scope,
                g.fingerprint,
                g.argv_prefix,
                g.host,
                g.action,
                g.source,
                g.granted_by,
                g.revoked_at,
            ],
        )
        .map_err(sql("create grant"))?;
        Ok(())
    }

    fn mark_answered(&mut self, a: AnswerUpdate) -> Result<u64, StoreError> {
        let changed = self
            .execute(
                MARK_ANSWERED.sqlite,
                params![
                    a.id,
                    a.status,
                    a.answer,
                    a.grant_id,
                    a.answered_by,
                    a.answered_at
                ],
            )
            .map_err(sql("answer approval"))?;
        Ok(changed as u64)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        sqlite::Tx::commit(*self, "commit answer")
    }
}

// PostgreSQL.

fn pg_approval(
    c: &mut impl postgres::GenericClient,
    sql_text: &str,
    id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    c.query_opt(sql_text, &[&id])
        .and_then(|r| r.as_ref().map(ApprovalRow::from_postgres).transpose())
        .map_err(pg("read approval"))
}

fn pg_grant(
    c: &mut impl postgres::GenericClient,
    sql_text: &str,
    id: &str,
) -> Result<Option<GrantRow>, StoreError> {
    c.query_opt(sql_text, &[&id])
        .and_then(|r| r.as_ref().map(GrantRow::from_postgres).transpose())
        .map_err(pg("read grant"))
}

impl Approvals for Postgres {
    fn insert_approval(&self, r: ApprovalRow) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                INSERT_APPROVAL.postgres,
                &[
                    &r.id,
                    &r.created_at,
                    &r.expires_at,
                    &r.agent,
                    &r.session,
                    &r.kind,
                    &r.tool,
                    &r.action,
                    &r.fingerprint,
                    &r.argv,
                    &r.host,
                    &r.arguments,
                    &r.reason,
                    &r.rule,
                    &r.labels,
                    &r.untrusted_sources,
                    &r.payload,
                    &r.status,
                    &r.answer,
                    &r.grant_id,
                    &r.answered_by,
                    &r.answered_at,
                ],
            )
            .map_err(pg("create approval"))?;
            Ok(())
        })
    }

    fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let id = id.to_string();
        self.run(move |c| pg_approval(c, GET_APPROVAL.postgres, &id))
    }

    fn list_approvals(&self, f: &ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError> {
        let status = f.status.map(ApprovalStatus::as_str);
        let (agent, session) = (f.agent.clone(), f.session.clone());
        self.run(move |c| {
            c.query(LIST_APPROVALS.postgres, &[&status, &agent, &session])
                .and_then(|rows| rows.iter().map(ApprovalRow::from_postgres).collect())
                .map_err(pg("list approvals"))
        })
    }

    fn begin_answer(&self) -> Result<Box<dyn AnswerTx + '_>, StoreError> {
        Ok(Box::new(self.begin()?))
    }

    fn expire_approval(&self, id: &str, now: String) -> Result<Option<ApprovalRow>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute(EXPIRE.postgres, &[&id, &now])
                .map_err(pg("expire approval"))?;
            pg_approval(c, GET_APPROVAL.postgres, &id)
        })
    }

    fn expire_due(&self, now: String) -> Result<Vec<String>, StoreError> {
        self.run(move |c| {
            c.query(EXPIRE_DUE.postgres, &[&now])
                .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
                .map_err(pg("expire approvals"))
        })
    }

    fn list_grants(
        &self,
        agent: Option<&str>,
        include_inactive: bool,
        now: String,
    ) -> Result<Vec<GrantRow>, StoreError> {
        let agent = agent.map(str::to_string);
        self.run(move |c| {
            c.query(LIST_GRANTS.postgres, &[&agent, &include_inactive, &now])
                .and_then(|rows| rows.iter().map(GrantRow::from_postgres).collect())
                .map_err(pg("list grants"))
        })
    }

    fn get_grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        let id = id.to_string();
        self.run(move |c| pg_grant(c, GET_GRANT.postgres, &id))
    }

    fn revoke_grant(&self, id: &str, now: String) -> Result<GrantRecord, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin revoke"))?;
            let Some(grant) = pg_grant(&mut tx, LOCK_GRANT.postgres, &id)? else {
                return Err(StoreError::NoGrant { id });
            };
            if let Some(at) = grant.decode()?.revoked_at {
                return Err(StoreError::AlreadyRevoked { id, at });
            }
            tx.execute(REVOKE_GRANT.postgres, &[&id, &now])
                .map_err(pg("revoke grant"))?;
            let grant = pg_grant(&mut tx, GET_GRANT.postgres, &id)?
                .ok_or(StoreError::NoGrant { id })?
                .decode()?;
            tx.commit().map_err(pg("commit revoke"))?;
            Ok(grant)
        })
    }

    fn active_grants(&self, q: &GrantQuery<'_>, now: String) -> Result<Vec<GrantRow>, StoreError> {
        let (agent, kind, tool, session) = (
            q.agent.to_string(),
            q.kind.as_str(),
            q.tool.to_string(),
            q.session.to_string(),
        );
        self.run(move |c| {
            c.query(
                ACTIVE_GRANTS.postgres,
                &[&agent, &kind, &tool, &session, &now],
            )
            .and_then(|rows| rows.iter().map(GrantRow::from_postgres).collect())
            .map_err(pg("find grant"))
        })
    }
}

impl AnswerTx for pg::Tx<'_> {
    fn approval(&mut self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let id = id.to_string();
        self.run(move |c| pg_approval(c, LOCK_APPROVAL.postgres, &id))
    }

    fn expire(&mut self, id: &str, now: &str) -> Result<(), StoreError> {
        let (id, now) = (id.to_string(), now.to_string());
        self.run(move |c| {
            c.execute(EXPIRE.postgres, &[&id, &now])
                .map_err(pg("expire approval"))?;
            Ok(())
        })
    }

    fn insert_grant(&mut self, g: GrantRow) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                INSERT_GRANT.postgres,
                &[
                    &g.id,
                    &g.created_at,
                    &g.expires_at,
                    &g.agent,
                    &g.session,
                    &g.kind,
                    &g.tool,
                    &g.scope,
                    &g.fingerprint,
                    &g.argv_prefix,
                    &g.host,
                    &g.action,
                    &g.source,
                    &g.granted_by,
                    &g.revoked_at,
                ],
            )
            .map_err(pg("create grant"))?;
            Ok(())
        })
    }

    fn mark_answered(&mut self, a: AnswerUpdate) -> Result<u64, StoreError> {
        self.run(move |c| {
            c.execute(
                MARK_ANSWERED.postgres,
                &[
                    &a.id,
                    &a.status,
                    &a.answer,
                    &a.grant_id,
                    &a.answered_by,
                    &a.answered_at,
                ],
            )
            .map_err(pg("answer approval"))
        })
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        pg::Tx::commit(*self)
    }
}
