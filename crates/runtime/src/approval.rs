//! Asking a human. The runtime never decides an `Ask` by itself: it asks through
//! [`StoredApprovals`], which stores the request (SQLite, shared by every process on the
//! state directory) and waits for the first answer from the interactive front (an
//! [`Approver`]: `cordon chat`'s terminal), from another process writing to the store
//! (`cordon approvals approve ID`, later the web UI), or the timeout — which denies.
//!
//! Guarantees: a request is stored and audited (`approval` record, `"state":
//! "requested"`) before anyone is asked, and one that cannot be stored or audited is
//! denied without asking; an answer is written atomically, so when two fronts answer,
//! the first one written wins and both sides act on it; a `Session` / `Agent` answer's
//! grant is created in the same transaction and covers only what was asked (exact
//! fingerprint, an explicitly chosen argv prefix of a single simple command, or the exact
//! host); agent grants last at most `grant_max_days`; answers this type writes and
//! expiries are audited (answers written by other processes are audited by them).
//! [`NoHumanApprover`] answers [`ApprovalAnswer::Unavailable`], and the request keeps
//! waiting for another process until the timeout.
//!
//! Does not: decide whether to ask (the guard does), or canonicalise actions and compute
//! fingerprints (the guard's canonical action does; a caller passes `argv: None` for
//! anything but a single simple command, so prefix grants never reach across `;` or
//! pipes).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use audit::event::ApprovalExpired;
use serde::Serialize;
use store::{
    Answer, AnswerReach, ApprovalRecord, ApprovalStatus, GrantQuery, GrantRecord, NewApproval,
    Store, StoreError,
};

pub use store::{ApprovalKind, GrantScope};

/// How often a waiting request looks for an answer written by another process.
const POLL: Duration = Duration::from_millis(200);

/// How long a submitted request (a memory change, which nobody waits for) stays
/// answerable: a year, not `approvals.timeout_secs`, so that it waits for a human's
/// answer instead of being denied by a timeout nobody sees; after a year it expires
/// (denied, discarded) so the queue cannot grow forever.
pub const MEMORY_REVIEW: Duration = Duration::from_secs(365 * 86_400);

/// What a human is asked to approve.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApprovalRequest {
    /// The stored request's id; set by [`StoredApprovals::ask`] before the front sees it.
    pub id: Option<String>,
    pub session: String,
    pub agent: String,
    pub kind: ApprovalKind,
    pub tool: String,
    /// The canonical action as it will be executed, e.g. `exec: rm -rf build`.
    pub action: String,
    /// The canonical action's fingerprint: a changed argv, path or host is a new action.
    pub fingerprint: String,
    /// The canonical argv when the action is one simple command (exec), else `None`.
    pub argv: Option<Vec<String>>,
    /// The host of a connection.
    pub host: Option<String>,
    /// The parsed arguments.
    pub arguments: serde_json::Value,
    /// Why approval is needed.
    pub reason: String,
    /// Id of the policy that asked, e.g. `taint.connect_new_host`.
    pub rule: String,
    /// The session labels it was decided with (`guard::Labels` as JSON).
    pub labels: serde_json::Value,
    /// Where the untrusted content in the session came from.
    pub untrusted_sources: Vec<String>,
    /// What to apply once accepted (memory_write: file and entry).
    pub payload: Option<serde_json::Value>,
    /// For a sub-agent's request: the top-level session it descends from (where a
    /// front shows it).
    pub root_session: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "answer", content = "detail")]
pub enum ApprovalAnswer {
    /// Run this action this one time.
    Once,
    /// Run this exact action without asking again for the rest of the session.
    Session,
    /// Run actions in `scope` without asking, in every session of this agent, for `days`
    /// days (capped at `approvals.grant_max_days`).
    Agent { days: u64, scope: GrantScope },
    /// Do not run it.
    Deny,
    /// Nobody answered before the timeout; a denial.
    Expired,
    /// Nobody can answer here; treated as a denial.
    Unavailable(String),
}

impl ApprovalAnswer {
    /// May the action run?
    pub fn approves(&self) -> bool {
        matches!(
            self,
            ApprovalAnswer::Once | ApprovalAnswer::Session | ApprovalAnswer::Agent { .. }
        )
    }
}

#[async_trait]
pub trait Approver: Send + Sync {
    /// Ask; the future may be dropped when the request is answered elsewhere or expires.
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer;

    /// The request was settled without this front (another process answered, or it
    /// expired) while it was asking; `by` says who.
    fn settled_elsewhere(&self, _req: &ApprovalRequest, _answer: &ApprovalAnswer, _by: &str) {}
}

/// For non-interactive runs: nobody is here (the request still waits for an answer from
/// another process, see [`StoredApprovals::ask`]).
pub struct NoHumanApprover;

#[async_trait]
impl Approver for NoHumanApprover {
    async fn ask(&self, _req: &ApprovalRequest) -> ApprovalAnswer {
        ApprovalAnswer::Unavailable(
            "approval required but this is a non-interactive run (`cordon run`); answer it \
             with `cordon approvals approve ID`, use `cordon chat`, or allow it in the \
             agent's config"
                .into(),
        )
    }
}

/// Approval requests and grants in the store, answered by whoever answers first.
pub struct StoredApprovals {
    store: Arc<Store>,
    audit: Arc<audit::Log>,
    timeout: Duration,
    grant_max_days: u64,
}

impl StoredApprovals {
    /// `timeout`: `approvals.timeout_secs`; `grant_max_days`: `approvals.grant_max_days`.
    pub fn new(
        store: Arc<Store>,
        audit: Arc<audit::Log>,
        timeout: Duration,
        grant_max_days: u64,
    ) -> StoredApprovals {
        StoredApprovals {
            store,
            audit,
            timeout,
            grant_max_days: grant_max_days.max(1),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// An active grant (session grant of `req.session`, or agent grant) of the same agent,
    /// kind and tool that covers the action: same fingerprint, an argv prefix of
    /// `req.argv`, or `req.host`. An error means "no grant known": the caller asks (or
    /// denies), never runs.
    pub fn find_grant(&self, req: &ApprovalRequest) -> Result<Option<GrantRecord>, StoreError> {
        self.store.find_grant(&GrantQuery {
            agent: &req.agent,
            session: &req.session,
            kind: req.kind,
            tool: &req.tool,
            fingerprint: &req.fingerprint,
            argv: req.argv.as_deref(),
            host: req.host.as_deref(),
        })
    }

    /// Store and audit `req`, then wait for the first answer: `front`'s (an
    /// [`ApprovalAnswer::Unavailable`] from it is not an answer: the wait goes on), one
    /// written by another process, or the timeout ([`ApprovalAnswer::Expired`]). Never
    /// approves anything that was not approved by a human through the store.
    pub async fn ask(&self, req: &ApprovalRequest, front: &dyn Approver) -> ApprovalAnswer {
        let record = match self.request(req, self.timeout) {
            Ok(r) => r,
            Err(why) => return ApprovalAnswer::Unavailable(why),
        };
        let id = record.id.clone();
        let mut shown = req.clone();
        shown.id = Some(id.clone());
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut front_answer = std::pin::pin!(front.ask(&shown));
        let mut front_waiting = true;
        loop {
            tokio::select! {
                answer = &mut front_answer, if front_waiting => {
                    front_waiting = false;
                    if matches!(answer, ApprovalAnswer::Unavailable(_)) {
                        continue;
                    }
                    return self.answer_from_front(&shown, &id, answer, front);
                }
                _ = tokio::time::sleep(POLL) => {
                    match self.store.get_approval(&id) {
                        Ok(Some(r)) if r.status != ApprovalStatus::Pending => {
                            let answer = self.settled(&r);
                            if front_waiting {
                                front.settled_elsewhere(&shown, &answer, by(&r));
                            }
                            return answer;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("approval {id}: cannot read its state: {e}"),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let answer = self.expire(&shown, &id);
                    if front_waiting {
                        front.settled_elsewhere(&shown, &answer, "timeout");
                    }
                    return answer;
                }
            }
        }
    }

    /// Store and audit a request that nobody waits for (memory_write): returns its id at
    /// once. It stays pending for [`MEMORY_REVIEW`]; whoever answers it applies it (see
    /// [`crate::memory::answer_change`]).
    pub fn submit(&self, req: &ApprovalRequest) -> Result<String, String> {
        self.request(req, MEMORY_REVIEW).map(|r| r.id)
    }

    /// The request `id` once it is no longer pending (approved, denied or expired — an
    /// overdue one is marked expired here), `None` while it waits.
    pub fn answered(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let Some(record) = self.store.get_approval(id)? else {
            return Err(StoreError::NoApproval { id: id.to_string() });
        };
        if record.status != ApprovalStatus::Pending {
            return Ok(Some(record));
        }
        let expired = self.store.expire_overdue()?;
        if expired.iter().any(|e| e == id) {
            self.audit_or_warn(crate::record::approval_expired(
                &self.audit,
                Some(&record.session),
                ApprovalExpired {
                    approval_id: id.to_string(),
                    by: None,
                    action: None,
                    answer: None,
                },
            ));
            return self.store.get_approval(id);
        }
        Ok(None)
    }

    fn request(&self, req: &ApprovalRequest, timeout: Duration) -> Result<ApprovalRecord, String> {
        let record = self
            .store
            .create_approval(&NewApproval {
                agent: req.agent.clone(),
                session: req.session.clone(),
                kind: req.kind,
                tool: req.tool.clone(),
                action: req.action.clone(),
                fingerprint: req.fingerprint.clone(),
                argv: req.argv.clone(),
                host: req.host.clone(),
                arguments: req.arguments.clone(),
                reason: req.reason.clone(),
                rule: req.rule.clone(),
                labels: req.labels.clone(),
                untrusted_sources: req.untrusted_sources.clone(),
                payload: req.payload.clone(),
                timeout,
            })
            .map_err(|e| format!("the approval request cannot be stored: {e}"))?;
        let audited = crate::record::approval_requested(&self.audit, &record);
        if let Err(e) = audited {
            // Nobody may approve what the log does not show was asked.
            let _ = self.store.expire_approval(&record.id);
            return Err(format!(
                "the audit log cannot record the approval request: {e}"
            ));
        }
        Ok(record)
    }

    fn answer_from_front(
        &self,
        req: &ApprovalRequest,
        id: &str,
        answer: ApprovalAnswer,
        front: &dyn Approver,
    ) -> ApprovalAnswer {
        let stored = match &answer {
            ApprovalAnswer::Once => Answer::Once,
            ApprovalAnswer::Session => Answer::Session,
            ApprovalAnswer::Agent { days, scope } => Answer::Agent {
                days: (*days).clamp(1, self.grant_max_days),
                scope: scope.clone(),
            },
            ApprovalAnswer::Deny => Answer::Deny,
            ApprovalAnswer::Expired | ApprovalAnswer::Unavailable(_) => {
                return self.expire(req, id);
            }
        };
        match self.store.answer_approval(id, &stored, "terminal") {
            Ok(done) => {
                self.audit_answer(&done.approval, done.grant.as_ref());
                self.settled(&done.approval)
            }
            Err(e) => {
                // Someone else answered first (or it expired, or the store failed): the
                // stored state decides, never the late answer.
                tracing::info!("approval {id}: answer from the terminal not written: {e}");
                match self.store.get_approval(id) {
                    Ok(Some(r)) if r.status != ApprovalStatus::Pending => {
                        let settled = self.settled(&r);
                        front.settled_elsewhere(req, &settled, by(&r));
                        settled
                    }
                    _ => self.expire(req, id),
                }
            }
        }
    }

    /// The timeout: mark it expired unless someone answered meanwhile (then that wins).
    fn expire(&self, req: &ApprovalRequest, id: &str) -> ApprovalAnswer {
        match self.store.expire_approval(id) {
            Ok(r) => {
                if r.status == ApprovalStatus::Expired {
                    self.audit_or_warn(crate::record::approval_expired(
                        &self.audit,
                        Some(&req.session),
                        ApprovalExpired {
                            approval_id: id.to_string(),
                            by: None,
                            action: Some(req.action.clone()),
                            answer: serde_json::to_value(ApprovalAnswer::Expired).ok(),
                        },
                    ));
                }
                self.settled(&r)
            }
            Err(e) => {
                ApprovalAnswer::Unavailable(format!("approval {id}: cannot record its expiry: {e}"))
            }
        }
    }

    /// The answer a stored, settled request stands for.
    fn settled(&self, r: &ApprovalRecord) -> ApprovalAnswer {
        match (r.status, r.answer) {
            (ApprovalStatus::Approved, Some(AnswerReach::Once)) => ApprovalAnswer::Once,
            (ApprovalStatus::Approved, Some(AnswerReach::Session)) => ApprovalAnswer::Session,
            (ApprovalStatus::Approved, Some(AnswerReach::Agent)) => {
                let grant = r
                    .grant_id
                    .as_deref()
                    .and_then(|g| self.store.get_grant(g).ok().flatten());
                match grant {
                    Some(g) => ApprovalAnswer::Agent {
                        days: g.lifetime_days().unwrap_or(0),
                        scope: g.scope,
                    },
                    None => ApprovalAnswer::Once,
                }
            }
            (ApprovalStatus::Approved, None) => ApprovalAnswer::Once,
            (ApprovalStatus::Denied, _) => ApprovalAnswer::Deny,
            (ApprovalStatus::Expired, _) | (ApprovalStatus::Pending, _) => ApprovalAnswer::Expired,
        }
    }

    fn audit_answer(&self, r: &ApprovalRecord, grant: Option<&GrantRecord>) {
        self.audit_or_warn(crate::record::approval_answered(&self.audit, r, None));
        if let Some(g) = grant {
            self.audit_or_warn(crate::record::grant_changed(&self.audit, g, None));
        }
    }

    fn audit_or_warn(&self, written: Result<(), audit::AuditError>) {
        if let Err(e) = written {
            // The caller records the outcome again (with the call id) and refuses to run
            // the action if that fails too.
            tracing::error!("audit log cannot record an approval state: {e}");
        }
    }
}

fn by(r: &ApprovalRecord) -> &str {
    r.answered_by.as_deref().unwrap_or("another process")
}

/// Why an answer was not given (or, for [`AnswerError::Audit`], given but not recorded).
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Unknown, already answered or expired request, or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A memory change that cannot be applied (it stays pending) or is not one.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// The answer was written but its audit record was not.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// Answer the pending request `id` (not a memory change) for every interface — the CLI
/// and the gateway — the same way: the store's atomic answer (the first answer written
/// wins), then an `approval` record of the answer and one of the grant it created.
pub fn answer_request(
    store: &Store,
    audit: &audit::Log,
    id: &str,
    answer: &Answer,
    by: &str,
) -> Result<store::Answered, AnswerError> {
    let done = store.answer_approval(id, answer, by)?;
    crate::record::approval_answered(audit, &done.approval, None)?;
    if let Some(g) = &done.grant {
        crate::record::grant_changed(audit, g, None)?;
    }
    Ok(done)
}

/// Expire every request whose waiting process is gone (so nothing stays answerable past
/// its deadline), each recorded as `expired` by `timeout`. For every interface alike.
pub fn expire_overdue(store: &Store, audit: &audit::Log) -> Result<Vec<String>, AnswerError> {
    let expired = store.expire_overdue()?;
    for id in &expired {
        let session = store.get_approval(id)?.map(|r| r.session);
        let expired = ApprovalExpired {
            approval_id: id.clone(),
            by: Some("timeout".into()),
            action: None,
            answer: None,
        };
        crate::record::approval_expired(audit, session.as_deref(), expired)?;
    }
    Ok(expired)
}

/// Revoke grant `id` and record it; `by` names who revoked it when the interface knows.
pub fn revoke_grant(
    store: &Store,
    audit: &audit::Log,
    id: &str,
    by: Option<&str>,
) -> Result<GrantRecord, AnswerError> {
    let grant = store.revoke_grant(id)?;
    crate::record::grant_changed(audit, &grant, by)?;
    Ok(grant)
}

/// Answer the pending memory change `id`: approving appends it to its agent's memory
/// (under `state_dir`) with the writer's labels, in the answer's transaction; denying
/// discards it. Then an `approval` record naming the file and the entry written.
pub fn answer_memory_change(
    store: &Store,
    audit: &audit::Log,
    state_dir: &std::path::Path,
    id: &str,
    approve: bool,
    by: &str,
) -> Result<crate::memory::ChangeAnswered, AnswerError> {
    let done = crate::memory::answer_change(store, id, approve, by, |agent| {
        crate::memory::MemoryStore::for_agent(state_dir, agent)
    })?;
    crate::record::approval_answered(
        audit,
        &done.approval,
        Some((done.change.file.as_str(), done.entry.as_deref())),
    )?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use std::sync::Mutex;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        audit_dir: std::path::PathBuf,
        approvals: StoredApprovals,
        /// Another process's handle on the same database.
        other: Store,
    }

    fn fixture(timeout: Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cordon.db");
        let audit_dir = dir.path().join("audit");
        let audit = Arc::new(audit::Log::open(&audit_dir).unwrap());
        let approvals =
            StoredApprovals::new(Arc::new(Store::open(&db).unwrap()), audit, timeout, 10);
        Fixture {
            other: Store::open(&db).unwrap(),
            _dir: dir,
            audit_dir,
            approvals,
        }
    }

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            session: "S1".into(),
            agent: "dev".into(),
            tool: "exec".into(),
            action: "exec: git push origin main".into(),
            fingerprint: "fp1".into(),
            argv: Some(vec![
                "git".into(),
                "push".into(),
                "origin".into(),
                "main".into(),
            ]),
            reason: "network command in an untrusted session".into(),
            rule: "taint.exec_network".into(),
            labels: json!({"integrity": "untrusted"}),
            untrusted_sources: vec!["http_fetch https://evil.test/".into()],
            ..Default::default()
        }
    }

    /// Answers after `delay` (never, if `None`), recording what it was shown and told.
    struct Front {
        answer: Option<(Duration, ApprovalAnswer)>,
        shown: Mutex<Vec<ApprovalRequest>>,
        told: Mutex<Vec<(ApprovalAnswer, String)>>,
    }

    fn front(answer: Option<(Duration, ApprovalAnswer)>) -> Front {
        Front {
            answer,
            shown: Mutex::new(Vec::new()),
            told: Mutex::new(Vec::new()),
        }
    }

    #[async_trait]
    impl Approver for Front {
        async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer {
            self.shown.lock().unwrap().push(req.clone());
            match &self.answer {
                Some((delay, a)) => {
                    tokio::time::sleep(*delay).await;
                    a.clone()
                }
                None => std::future::pending().await,
            }
        }

        fn settled_elsewhere(&self, _req: &ApprovalRequest, answer: &ApprovalAnswer, by: &str) {
            self.told
                .lock()
                .unwrap()
                .push((answer.clone(), by.to_string()));
        }
    }

    fn states(f: &Fixture) -> Vec<String> {
        audit::read(&f.audit_dir)
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == audit::EventKind::Approval)
            .map(|r| r.data["state"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[tokio::test]
    async fn the_front_answers_and_its_session_grant_covers_the_same_action_only() {
        let f = fixture(Duration::from_secs(10));
        let t = front(Some((Duration::ZERO, ApprovalAnswer::Session)));
        let answer = f.approvals.ask(&request(), &t).await;
        assert_eq!(answer, ApprovalAnswer::Session);
        let shown = t.shown.lock().unwrap().clone();
        let id = shown[0].id.clone().expect("the front is shown the id");
        let stored = f.other.get_approval(&id).unwrap().unwrap();
        assert_eq!(stored.status, ApprovalStatus::Approved);
        assert_eq!(stored.answered_by.as_deref(), Some("terminal"));
        assert_eq!(states(&f), ["requested", "answered", "granted"]);
        assert!(f.approvals.find_grant(&request()).unwrap().is_some());
        let mut other_session = request();
        other_session.session = "S2".into();
        assert!(f.approvals.find_grant(&other_session).unwrap().is_none());
        let mut changed = request();
        changed.fingerprint = "fp2".into();
        assert!(f.approvals.find_grant(&changed).unwrap().is_none());
    }

    #[tokio::test]
    async fn an_answer_from_another_process_wins_while_the_front_waits() {
        let f = fixture(Duration::from_secs(10));
        let t = front(None);
        let req = request();
        let ask = f.approvals.ask(&req, &t);
        let answer_elsewhere = async {
            let id = loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let pending = f.other.list_approvals(&Default::default()).unwrap();
                if let Some(r) = pending.first() {
                    break r.id.clone();
                }
            };
            f.other.answer_approval(&id, &Answer::Deny, "cli").unwrap();
        };
        let (answer, ()) = tokio::join!(ask, answer_elsewhere);
        assert_eq!(answer, ApprovalAnswer::Deny);
        assert_eq!(
            t.told.lock().unwrap().clone(),
            [(ApprovalAnswer::Deny, "cli".to_string())]
        );
    }

    #[tokio::test]
    async fn a_late_front_answer_loses_to_the_stored_one() {
        let f = fixture(Duration::from_secs(10));
        // The terminal says yes after 600 ms; the CLI said no at once.
        let t = front(Some((Duration::from_millis(600), ApprovalAnswer::Once)));
        let req = request();
        let ask = f.approvals.ask(&req, &t);
        let deny = async {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if let Some(r) = f.other.list_approvals(&Default::default()).unwrap().first() {
                    f.other
                        .answer_approval(&r.id, &Answer::Deny, "cli")
                        .unwrap();
                    break;
                }
            }
        };
        let (answer, ()) = tokio::join!(ask, deny);
        assert_eq!(answer, ApprovalAnswer::Deny);
    }

    #[tokio::test]
    async fn nobody_here_keeps_waiting_then_expires_as_a_denial() {
        let f = fixture(Duration::from_millis(500));
        let start = std::time::Instant::now();
        let answer = f.approvals.ask(&request(), &NoHumanApprover).await;
        assert_eq!(answer, ApprovalAnswer::Expired);
        assert!(!answer.approves());
        assert!(start.elapsed() >= Duration::from_millis(500), "waited");
        let all = f.other.list_approvals(&Default::default()).unwrap();
        assert_eq!(all[0].status, ApprovalStatus::Expired);
        assert_eq!(states(&f), ["requested", "expired"]);
        // Too late now.
        assert!(matches!(
            f.other.answer_approval(&all[0].id, &Answer::Once, "cli"),
            Err(StoreError::ApprovalExpired { .. })
        ));
    }

    #[tokio::test]
    async fn an_agent_answer_is_capped_at_grant_max_days() {
        let f = fixture(Duration::from_secs(10));
        let t = front(Some((
            Duration::ZERO,
            ApprovalAnswer::Agent {
                days: 365,
                scope: GrantScope::Prefix(vec!["git".into(), "push".into()]),
            },
        )));
        let answer = f.approvals.ask(&request(), &t).await;
        assert_eq!(
            answer,
            ApprovalAnswer::Agent {
                days: 10,
                scope: GrantScope::Prefix(vec!["git".into(), "push".into()]),
            }
        );
        let mut later = request();
        later.session = "S9".into();
        later.fingerprint = "other".into();
        later.argv = Some(vec!["git".into(), "push".into(), "--force".into()]);
        assert!(f.approvals.find_grant(&later).unwrap().is_some());
        later.argv = None;
        assert!(
            f.approvals.find_grant(&later).unwrap().is_none(),
            "compound"
        );
    }

    #[tokio::test]
    async fn a_submitted_request_is_answered_later_by_someone_else() {
        let f = fixture(Duration::from_secs(10));
        let mut req = request();
        req.kind = ApprovalKind::MemoryWrite;
        req.payload = Some(json!({"file": "MEMORY.md", "entry": "remember"}));
        // Submitted with a timeout of 10 s, it still waits far longer for a human.
        let id = f.approvals.submit(&req).unwrap();
        let stored = f.other.get_approval(&id).unwrap().unwrap();
        let year = time::OffsetDateTime::now_utc() + time::Duration::days(364);
        assert!(
            stored.expires_at > year.year().to_string(),
            "{}",
            stored.expires_at
        );
        assert!(f.approvals.answered(&id).unwrap().is_none(), "pending");
        assert_eq!(states(&f), ["requested"]);
        f.other
            .answer_approval_applying(&id, &Answer::Once, "cli", |_| Ok::<(), String>(()))
            .unwrap()
            .unwrap();
        let done = f.approvals.answered(&id).unwrap().unwrap();
        assert_eq!(done.status, ApprovalStatus::Approved);
        assert_eq!(done.payload.unwrap()["entry"], "remember");
        assert!(matches!(
            f.approvals.answered("01NOPE"),
            Err(StoreError::NoApproval { .. })
        ));
    }
}
