//! Approval requests and the grants their answers create (`approvals` and `grants`
//! tables), shared by every process on the database (`cordon chat` asking in one
//! terminal, `cordon approvals approve` answering in another).
//!
//! Guarantees: an approval is answered at most once — the answer is written by one
//! transaction that holds the request against other answers (SQLite's `BEGIN
//! IMMEDIATE`, PostgreSQL's `SELECT … FOR UPDATE`) and whose `UPDATE … WHERE status =
//! 'pending' AND expires_at > now` decides the race, so of two concurrent answers
//! exactly one wins and the other gets [`StoreError::AlreadyAnswered`]; an answer after `expires_at` is refused and the
//! request is marked expired. A grant is created in the same transaction as the answer
//! that made it, and only for the action that was asked: an argv-prefix grant must be a
//! non-empty prefix of the asked command's argv, a host grant must name the asked host.
//! A grant covers an action only for the same agent, kind and tool, while unrevoked and
//! unexpired, and (session grants) in the same session. A memory change (kind
//! `memory_write`) is approved only by [`Store::answer_approval_applying`], whose `apply`
//! (writing the change) runs inside the answer's transaction, and never creates a grant.
//!
//! Does not: decide what is asked (the guard does), compute fingerprints (the guard's
//! canonical action does), or check that `argv` is a single simple command (the caller
//! passes `None` for anything else, so prefix grants never match it).

use std::time::Duration;

pub(crate) mod sql;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::store::{Store, timestamp};

pub(crate) use sql::Approvals;
use sql::{AnswerTx, AnswerUpdate, ApprovalRow, GrantRow};

/// What an approval is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// A tool action the runtime holds until it is answered.
    #[default]
    Action,
    /// A memory change from an untrusted session, applied only once accepted.
    MemoryWrite,
}

impl ApprovalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Action => "action",
            ApprovalKind::MemoryWrite => "memory_write",
        }
    }

    fn parse(s: &str) -> Option<ApprovalKind> {
        match s {
            "action" => Some(ApprovalKind::Action),
            "memory_write" => Some(ApprovalKind::MemoryWrite),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Nobody answered in time: a denial.
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<ApprovalStatus> {
        match s {
            "pending" => Some(ApprovalStatus::Pending),
            "approved" => Some(ApprovalStatus::Approved),
            "denied" => Some(ApprovalStatus::Denied),
            "expired" => Some(ApprovalStatus::Expired),
            _ => None,
        }
    }
}

/// How far an approving answer reaches (the `answer` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerReach {
    Once,
    Session,
    Agent,
}

impl AnswerReach {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerReach::Once => "once",
            AnswerReach::Session => "session",
            AnswerReach::Agent => "agent",
        }
    }

    fn parse(s: &str) -> Option<AnswerReach> {
        match s {
            "once" => Some(AnswerReach::Once),
            "session" => Some(AnswerReach::Session),
            "agent" => Some(AnswerReach::Agent),
            _ => None,
        }
    }
}

/// Which later actions a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "value")]
pub enum GrantScope {
    /// The same canonical action (same fingerprint).
    Exact,
    /// A single simple command whose argv starts with these words.
    Prefix(Vec<String>),
    /// A connection to exactly this host.
    Host(String),
}

impl GrantScope {
    pub fn name(&self) -> &'static str {
        match self {
            GrantScope::Exact => "exact",
            GrantScope::Prefix(_) => "prefix",
            GrantScope::Host(_) => "host",
        }
    }
}

/// A human's answer to one approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer")]
pub enum Answer {
    Once,
    /// A grant for the asked action, for the rest of the asking session.
    Session,
    /// A grant for every session of the agent, for `days` days.
    Agent {
        days: u64,
        scope: GrantScope,
    },
    Deny,
}

/// A request to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApproval {
    pub agent: String,
    pub session: String,
    pub kind: ApprovalKind,
    pub tool: String,
    /// The canonical action text, e.g. `exec: git push origin main`.
    pub action: String,
    pub fingerprint: String,
    /// The canonical argv of a single simple command (exec), for prefix grants.
    pub argv: Option<Vec<String>>,
    /// The host of a connection, for host grants.
    pub host: Option<String>,
    pub arguments: Value,
    pub reason: String,
    /// Id of the deciding policy.
    pub rule: String,
    pub labels: Value,
    pub untrusted_sources: Vec<String>,
    /// What to apply once accepted (memory_write: file and entry).
    pub payload: Option<Value>,
    /// How long it stays answerable.
    pub timeout: Duration,
}

/// A stored request and, once answered, its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// A ULID.
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
    pub agent: String,
    pub session: String,
    pub kind: ApprovalKind,
    pub tool: String,
    pub action: String,
    pub fingerprint: String,
    pub argv: Option<Vec<String>>,
    pub host: Option<String>,
    pub arguments: Value,
    pub reason: String,
    pub rule: String,
    pub labels: Value,
    pub untrusted_sources: Vec<String>,
    pub payload: Option<Value>,
    pub status: ApprovalStatus,
    pub answer: Option<AnswerReach>,
    pub grant_id: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at: Option<String>,
}

/// A standing permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub id: String,
    pub created_at: String,
    /// `None`: until revoked (session grants end with their session).
    pub expires_at: Option<String>,
    pub agent: String,
    /// `None`: every session of the agent.
    pub session: Option<String>,
    pub kind: ApprovalKind,
    pub tool: String,
    pub scope: GrantScope,
    pub fingerprint: Option<String>,
    /// The canonical action of the approval that created it.
    pub action: String,
    /// Id of that approval.
    pub source: String,
    pub granted_by: String,
    pub revoked_at: Option<String>,
}

impl GrantRecord {
    /// Whole days between creation and expiry (rounded up); `None` for grants without
    /// an expiry or with unreadable timestamps.
    pub fn lifetime_days(&self) -> Option<u64> {
        let created = parse_timestamp(&self.created_at)?;
        let expires = parse_timestamp(self.expires_at.as_deref()?)?;
        let secs = u64::try_from((expires - created).whole_seconds()).ok()?;
        Some(secs.div_ceil(86_400))
    }

    /// Does this grant's scope cover the action? (Agent, session, kind, tool, expiry
    /// and revocation are checked by [`Store::find_grant`].)
    pub fn covers(&self, fingerprint: &str, argv: Option<&[String]>, host: Option<&str>) -> bool {
        match &self.scope {
            GrantScope::Exact => self.fingerprint.as_deref() == Some(fingerprint),
            GrantScope::Prefix(prefix) => {
                !prefix.is_empty() && argv.is_some_and(|a| a.starts_with(prefix))
            }
            GrantScope::Host(h) => host.is_some_and(|x| x.eq_ignore_ascii_case(h)),
        }
    }
}

/// The result of a successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub approval: ApprovalRecord,
    /// The grant a `Session` / `Agent` answer created.
    pub grant: Option<GrantRecord>,
}

/// Which approvals to list; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    pub agent: Option<String>,
    pub session: Option<String>,
}

/// The action a grant is looked up for.
#[derive(Debug, Clone, Copy)]
pub struct GrantQuery<'a> {
    pub agent: &'a str,
    pub session: &'a str,
    pub kind: ApprovalKind,
    pub tool: &'a str,
    pub fingerprint: &'a str,
    /// `None` unless the action is a single simple command.
    pub argv: Option<&'a [String]>,
    pub host: Option<&'a str>,
}

/// The `apply` of an answer that applies nothing.
type NoApply = fn(&ApprovalRecord) -> Result<(), std::convert::Infallible>;

fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::PrimitiveDateTime::parse(s, fmt)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

fn add(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    let d = time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
    now.checked_add(d)
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

impl Store {
    /// Store a pending request; it expires `req.timeout` from now.
    pub fn create_approval(&self, req: &NewApproval) -> Result<ApprovalRecord, StoreError> {
        let now = OffsetDateTime::now_utc();
        let record = ApprovalRecord {
            id: ulid::Ulid::new().to_string(),
            created_at: timestamp(now)?,
            expires_at: timestamp(add(now, req.timeout))?,
            agent: req.agent.clone(),
            session: req.session.clone(),
            kind: req.kind,
            tool: req.tool.clone(),
            action: req.action.clone(),
            fingerprint: req.fingerprint.clone(),
            argv: req.argv.clone(),
            host: req.host.as_ref().map(|h| h.to_ascii_lowercase()),
            arguments: req.arguments.clone(),
            reason: req.reason.clone(),
            rule: req.rule.clone(),
            labels: req.labels.clone(),
            untrusted_sources: req.untrusted_sources.clone(),
            payload: req.payload.clone(),
            status: ApprovalStatus::Pending,
            answer: None,
            grant_id: None,
            answered_by: None,
            answered_at: None,
        };
        self.backend()?
            .insert_approval(ApprovalRow::encode(&record)?)?;
        Ok(record)
    }

    pub fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        self.backend()?
            .get_approval(id)?
            .map(ApprovalRow::decode)
            .transpose()
    }

    /// Approvals matching `filter`, oldest first.
    pub fn list_approvals(
        &self,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = self.backend()?.list_approvals(filter)?;
        rows.into_iter().map(ApprovalRow::decode).collect()
    }

    /// Answer a pending approval, atomically: of concurrent answers (from any process)
    /// exactly one wins; the others get [`StoreError::AlreadyAnswered`]. A `Session` or
    /// `Agent` answer creates its grant in the same transaction. `by` says who answered
    /// (e.g. `terminal`, `cli`). A memory change cannot be approved here (it would be
    /// marked approved without being written): use
    /// [`Store::answer_approval_applying`].
    pub fn answer_approval(
        &self,
        id: &str,
        answer: &Answer,
        by: &str,
    ) -> Result<Answered, StoreError> {
        match self.answer(id, answer, by, None::<NoApply>)? {
            Ok(done) => Ok(done),
            Err(never) => match never {},
        }
    }

    /// [`Store::answer_approval`] for a request that carries something to apply (a memory
    /// change): an approving answer runs `apply` inside the answer's transaction, after
    /// the request was found pending and unexpired and before it is marked approved. If
    /// `apply` fails, nothing is written and its error comes back as the inner `Err`:
    /// the request stays pending. `apply` is not run for a denial. Should the commit fail
    /// after `apply` succeeded, the request stays pending too, so `apply` must be
    /// idempotent (a retried answer runs it again).
    pub fn answer_approval_applying<E>(
        &self,
        id: &str,
        answer: &Answer,
        by: &str,
        apply: impl FnOnce(&ApprovalRecord) -> Result<(), E>,
    ) -> Result<Result<Answered, E>, StoreError> {
        self.answer(id, answer, by, Some(apply))
    }

    fn answer<E>(
        &self,
        id: &str,
        answer: &Answer,
        by: &str,
        apply: Option<impl FnOnce(&ApprovalRecord) -> Result<(), E>>,
    ) -> Result<Result<Answered, E>, StoreError> {
        let now_t = OffsetDateTime::now_utc();
        let tx = self.backend()?.begin_answer()?;
        answer_in(tx, id, answer, by, apply, now_t)
    }

    /// Mark `id` expired if it is still pending (whatever its `expires_at`: the waiting
    /// runtime's own clock ran out). Returns the record as it now stands: if another
    /// process answered first, that answer is what comes back.
    pub fn expire_approval(&self, id: &str) -> Result<ApprovalRecord, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        self.backend()?
            .expire_approval(id, now)?
            .ok_or_else(|| StoreError::NoApproval { id: id.to_string() })?
            .decode()
    }

    /// Mark every pending approval whose `expires_at` is not after `now` expired; returns
    /// their ids.
    pub fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let mut ids = self.backend()?.expire_due(timestamp(now)?)?;
        ids.sort();
        Ok(ids)
    }

    /// [`Store::expire_due`] now.
    pub fn expire_overdue(&self) -> Result<Vec<String>, StoreError> {
        self.expire_due(OffsetDateTime::now_utc())
    }

    /// Grants of `agent` (all agents when `None`), oldest first. Without
    /// `include_inactive`, only those neither revoked nor expired.
    pub fn list_grants(
        &self,
        agent: Option<&str>,
        include_inactive: bool,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        let rows = self.backend()?.list_grants(agent, include_inactive, now)?;
        rows.into_iter().map(GrantRow::decode).collect()
    }

    pub fn get_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.backend()?
            .get_grant(id)?
            .map(GrantRow::decode)
            .transpose()
    }

    /// Revoke a grant; it covers nothing from now on.
    pub fn revoke_grant(&self, id: &str) -> Result<GrantRecord, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        self.backend()?.revoke_grant(id, now)
    }

    /// The oldest active grant that covers the action, if any.
    pub fn find_grant(&self, q: &GrantQuery<'_>) -> Result<Option<GrantRecord>, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        // Oldest first, decoded in order up to the first that covers.
        for row in self.backend()?.active_grants(q, now)? {
            let grant = row.decode()?;
            if grant.covers(q.fingerprint, q.argv, q.host) {
                return Ok(Some(grant));
            }
        }
        Ok(None)
    }
}

/// The rules of an answer, written once: run inside the backend's answer transaction
/// ([`AnswerTx`]), which holds the request until it commits or is dropped.
fn answer_in<E>(
    mut tx: Box<dyn AnswerTx + '_>,
    id: &str,
    answer: &Answer,
    by: &str,
    apply: Option<impl FnOnce(&ApprovalRecord) -> Result<(), E>>,
    now_t: OffsetDateTime,
) -> Result<Result<Answered, E>, StoreError> {
    let now = timestamp(now_t)?;
    let Some(current) = tx.approval(id)?.map(ApprovalRow::decode).transpose()? else {
        return Err(StoreError::NoApproval { id: id.to_string() });
    };
    match current.status {
        ApprovalStatus::Pending => {}
        ApprovalStatus::Expired => {
            return Err(StoreError::ApprovalExpired {
                id: id.to_string(),
                expires_at: current.expires_at,
            });
        }
        status => {
            return Err(StoreError::AlreadyAnswered {
                id: id.to_string(),
                status: status.as_str().to_string(),
                by: current.answered_by.unwrap_or_else(|| "?".into()),
            });
        }
    }
    // An expiry that does not parse counts as passed: never approve on a bad clock.
    if parse_timestamp(&current.expires_at).is_none_or(|e| e <= now_t) {
        tx.expire(id, &now)?;
        tx.commit()?;
        return Err(StoreError::ApprovalExpired {
            id: id.to_string(),
            expires_at: current.expires_at,
        });
    }
    if current.kind == ApprovalKind::MemoryWrite {
        match answer {
            Answer::Session | Answer::Agent { .. } => {
                return Err(StoreError::BadScope {
                    id: id.to_string(),
                    reason: "a memory change is approved once, on its own; it creates no \
                             session or agent grant"
                        .into(),
                });
            }
            Answer::Once if apply.is_none() => {
                return Err(StoreError::BadScope {
                    id: id.to_string(),
                    reason: format!(
                        "a memory change is approved only together with writing it: \
                         answer it with `cordon approvals approve {id}`"
                    ),
                });
            }
            Answer::Once | Answer::Deny => {}
        }
    }
    let (status, reach, grant) = match answer {
        Answer::Once => (ApprovalStatus::Approved, Some(AnswerReach::Once), None),
        Answer::Deny => (ApprovalStatus::Denied, None, None),
        Answer::Session => {
            let grant = grant_for(
                &current,
                &now,
                None,
                Some(&current.session),
                &GrantScope::Exact,
                by,
            )?;
            (
                ApprovalStatus::Approved,
                Some(AnswerReach::Session),
                Some(grant),
            )
        }
        Answer::Agent { days, scope } => {
            if *days == 0 {
                return Err(StoreError::BadScope {
                    id: id.to_string(),
                    reason: "an agent grant must last at least one day".into(),
                });
            }
            let expires = timestamp(add(now_t, Duration::from_secs(days.saturating_mul(86_400))))?;
            let grant = grant_for(&current, &now, Some(expires), None, scope, by)?;
            (
                ApprovalStatus::Approved,
                Some(AnswerReach::Agent),
                Some(grant),
            )
        }
    };
    if let Some(g) = &grant {
        tx.insert_grant(GrantRow::encode(g)?)?;
    }
    if status == ApprovalStatus::Approved
        && let Some(apply) = apply
        && let Err(e) = apply(&current)
    {
        // Dropping the transaction rolls it back: still pending.
        return Ok(Err(e));
    }
    let changed = tx.mark_answered(AnswerUpdate {
        id: id.to_string(),
        status: status.as_str(),
        answer: reach.map(AnswerReach::as_str),
        grant_id: grant.as_ref().map(|g| g.id.clone()),
        answered_by: by.to_string(),
        answered_at: now.clone(),
    })?;
    if changed != 1 {
        // Unreachable under the lock, but never report a lost race as a win.
        return Err(StoreError::AlreadyAnswered {
            id: id.to_string(),
            status: "answered".into(),
            by: "another process".into(),
        });
    }
    let approval = tx
        .approval(id)?
        .ok_or_else(|| StoreError::NoApproval { id: id.to_string() })?
        .decode()?;
    tx.commit()?;
    Ok(Ok(Answered { approval, grant }))
}

/// The grant an answer to `approval` creates, after checking that `scope` covers the
/// asked action (a human approving `rm -rf build` cannot thereby grant `curl`).
fn grant_for(
    approval: &ApprovalRecord,
    now: &str,
    expires_at: Option<String>,
    session: Option<&String>,
    scope: &GrantScope,
    by: &str,
) -> Result<GrantRecord, StoreError> {
    let bad = |reason: String| StoreError::BadScope {
        id: approval.id.clone(),
        reason,
    };
    let scope = match scope {
        GrantScope::Exact => GrantScope::Exact,
        GrantScope::Prefix(prefix) => {
            let Some(argv) = &approval.argv else {
                return Err(bad(format!(
                    "`{}` is not a single simple command, so it has no argv prefix to grant; \
                     grant the exact action instead",
                    approval.action
                )));
            };
            if prefix.is_empty() || !argv.starts_with(prefix) {
                return Err(bad(format!(
                    "{prefix:?} is not a non-empty prefix of the asked command {argv:?}"
                )));
            }
            GrantScope::Prefix(prefix.clone())
        }
        GrantScope::Host(host) => {
            if !approval
                .host
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(host))
            {
                return Err(bad(format!(
                    "host `{host}` is not the asked action's host ({})",
                    approval.host.as_deref().unwrap_or("none")
                )));
            }
            GrantScope::Host(host.to_ascii_lowercase())
        }
    };
    Ok(GrantRecord {
        id: ulid::Ulid::new().to_string(),
        created_at: now.to_string(),
        expires_at,
        agent: approval.agent.clone(),
        session: session.cloned(),
        kind: approval.kind,
        tool: approval.tool.clone(),
        fingerprint: matches!(scope, GrantScope::Exact).then(|| approval.fingerprint.clone()),
        scope,
        action: approval.action.clone(),
        source: approval.id.clone(),
        granted_by: by.to_string(),
        revoked_at: None,
    })
}
