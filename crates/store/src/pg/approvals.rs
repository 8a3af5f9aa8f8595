//! Approvals and grants on PostgreSQL: the queries of [`crate::approvals`], with the
//! row lock (`FOR UPDATE`) standing in for SQLite's `BEGIN IMMEDIATE`.

use postgres::types::ToSql;

use super::{Db, Tx, pg};
use crate::approvals::{
    APPROVAL_COLUMNS, AnswerTx, ApprovalFilter, ApprovalRecord, ApprovalStatus, GRANT_COLUMNS,
    GrantQuery, GrantRecord, GrantScope, approval_row, encode, grant_row,
};
use crate::error::StoreError;

fn read_approval(r: &postgres::Row) -> Result<ApprovalRecord, StoreError> {
    let row = (|| -> Result<_, postgres::Error> { Ok(approval_row!(r, try_get)) })()
        .map_err(pg("read approval"))?;
    row.decode()
}

fn read_grant(r: &postgres::Row) -> Result<GrantRecord, StoreError> {
    let row = (|| -> Result<_, postgres::Error> { Ok(grant_row!(r, try_get)) })()
        .map_err(pg("read grant"))?;
    row.decode()
}

fn params(values: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn get_approval(
    c: &mut impl postgres::GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<ApprovalRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    c.query_opt(
        &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1{lock}"),
        &[&id],
    )
    .map_err(pg("read approval"))?
    .as_ref()
    .map(read_approval)
    .transpose()
}

fn get_grant(
    c: &mut impl postgres::GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<GrantRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    c.query_opt(
        &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1{lock}"),
        &[&id],
    )
    .map_err(pg("read grant"))?
    .as_ref()
    .map(read_grant)
    .transpose()
}

impl Db {
    /// Insert a pending approval: `values` are the first 17 of [`APPROVAL_COLUMNS`].
    pub(crate) fn create_approval(&self, values: Vec<Option<String>>) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
                     $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'pending', NULL, NULL, \
                     NULL, NULL)"
                ),
                &params(&values),
            )
            .map_err(pg("create approval"))?;
            Ok(())
        })
    }

    pub(crate) fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |c| get_approval(c, &id, false))
    }

    pub(crate) fn list_approvals(
        &self,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let values = vec![
            filter.status.map(|s| ApprovalStatus::as_str(s).to_string()),
            filter.agent.clone(),
            filter.session.clone(),
        ];
        self.run(move |c| {
            c.query(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals \
                     WHERE ($1::text IS NULL OR status = $1::text) \
                     AND ($2::text IS NULL OR agent = $2::text) \
                     AND ($3::text IS NULL OR session = $3::text) ORDER BY created_at, n"
                ),
                &params(&values),
            )
            .map_err(pg("list approvals"))?
            .iter()
            .map(read_approval)
            .collect()
        })
    }

    pub(crate) fn expire_approval(
        &self,
        id: &str,
        now: String,
    ) -> Result<ApprovalRecord, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                 answered_at = $2 WHERE id = $1 AND status = 'pending'",
                &[&id, &now],
            )
            .map_err(pg("expire approval"))?;
            get_approval(c, &id, false)?.ok_or(StoreError::NoApproval { id })
        })
    }

    pub(crate) fn expire_due(&self, now: String) -> Result<Vec<String>, StoreError> {
        self.run(move |c| {
            let mut ids: Vec<String> = c
                .query(
                    "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                     answered_at = $1 WHERE status = 'pending' AND expires_at <= $1 RETURNING id",
                    &[&now],
                )
                .map_err(pg("expire approvals"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            ids.sort();
            Ok(ids)
        })
    }

    pub(crate) fn list_grants(
        &self,
        agent: Option<&str>,
        include_inactive: bool,
        now: String,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let agent = agent.map(str::to_string);
        self.run(move |c| {
            c.query(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE ($1::text IS NULL OR agent = $1::text) \
                     AND ($2 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3))) \
                     ORDER BY created_at, n"
                ),
                &[&agent, &include_inactive, &now],
            )
            .map_err(pg("list grants"))?
            .iter()
            .map(read_grant)
            .collect()
        })
    }

    pub(crate) fn get_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |c| get_grant(c, &id, false))
    }

    pub(crate) fn revoke_grant(&self, id: &str, now: String) -> Result<GrantRecord, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin revoke"))?;
            let Some(grant) = get_grant(&mut tx, &id, true)? else {
                return Err(StoreError::NoGrant { id });
            };
            if let Some(at) = grant.revoked_at {
                return Err(StoreError::AlreadyRevoked { id, at });
            }
            tx.execute(
                "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )
            .map_err(pg("revoke grant"))?;
            let grant = get_grant(&mut tx, &id, false)?.ok_or(StoreError::NoGrant { id })?;
            tx.commit().map_err(pg("commit revoke"))?;
            Ok(grant)
        })
    }

    /// Active grants of the query's agent, kind, tool and session, oldest first; the
    /// caller checks which covers the action.
    pub(crate) fn active_grants_for(
        &self,
        q: &GrantQuery<'_>,
        now: String,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let values = vec![
            Some(q.agent.to_string()),
            Some(q.kind.as_str().to_string()),
            Some(q.tool.to_string()),
            Some(q.session.to_string()),
            Some(now),
        ];
        self.run(move |c| {
            c.query(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE agent = $1 AND kind = $2 \
                     AND tool = $3 AND (session IS NULL OR session = $4) AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $5) ORDER BY created_at, n"
                ),
                &params(&values),
            )
            .map_err(pg("find grant"))?
            .iter()
            .map(read_grant)
            .collect()
        })
    }
}

impl AnswerTx for Tx<'_> {
    fn approval(&mut self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |c| get_approval(c, &id, true))
    }

    fn expire(&mut self, id: &str, now: &str) -> Result<(), StoreError> {
        let (id, now) = (id.to_string(), now.to_string());
        self.run(move |c| {
            c.execute(
                "UPDATE approvals SET status = 'expired', answered_by = 'timeout', \
                 answered_at = $2 WHERE id = $1 AND status = 'pending'",
                &[&id, &now],
            )
            .map_err(pg("expire approval"))?;
            Ok(())
        })
    }

    fn insert_grant(&mut self, g: &GrantRecord) -> Result<(), StoreError> {
        let (prefix, host) = match &g.scope {
            GrantScope::Exact => (None, None),
            GrantScope::Prefix(p) => (Some(encode(p)?), None),
            GrantScope::Host(h) => (None, Some(h.clone())),
        };
        let values = vec![
            Some(g.id.clone()),
            Some(g.created_at.clone()),
            g.expires_at.clone(),
            Some(g.agent.clone()),
            g.session.clone(),
            Some(g.kind.as_str().to_string()),
            Some(g.tool.clone()),
            Some(g.scope.name().to_string()),
            g.fingerprint.clone(),
            prefix,
            host,
            Some(g.action.clone()),
            Some(g.source.clone()),
            Some(g.granted_by.clone()),
        ];
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $10, $11, $12, $13, $14, NULL)"
                ),
                &params(&values),
            )
            .map_err(pg("create grant"))?;
            Ok(())
        })
    }

    fn mark_answered(&mut self, values: [Option<String>; 6]) -> Result<u64, StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE approvals SET status = $2, answer = $3, grant_id = $4, answered_by = $5, \
                 answered_at = $6 WHERE id = $1 AND status = 'pending' AND expires_at > $6",
                &params(&values),
            )
            .map_err(pg("answer approval"))
        })
    }

    fn commit(self) -> Result<(), StoreError> {
        Tx::commit(self)
    }
}
