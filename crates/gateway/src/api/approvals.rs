//! Approvals and grants: list (read), answer and revoke (approver).
//!
//! Guarantees: an answer goes through the store's atomic answer, so of a web answer, a
//! terminal answer and `cordon approvals approve` exactly one wins and the others get
//! `409`; an agent grant lasts 1 to `approvals.grant_max_days` days and is never wider
//! than what was asked (the store checks prefix and host scopes against the request);
//! a memory change is applied to the agent's memory in the answer's transaction and
//! cannot be given a grant; every answer, grant and revocation is audited naming the
//! token that made it (`by: "gateway token ID"`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Answer, ApprovalFilter, ApprovalKind, ApprovalStatus, GrantScope, StoreError};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::layers::{ApiError, blocking};
use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        store::TokenScope::Read,
        Router::new()
            .route("/api/approvals", get(list))
            .route("/api/grants", get(grants)),
    )
    .merge(super::scoped(
        state,
        store::TokenScope::Approver,
        Router::new()
            .route("/api/approvals/{id}", post(answer))
            .route("/api/grants/{id}/revoke", post(revoke)),
    ))
}

/// Expire requests whose waiting process is gone, and audit each (as the CLI does).
fn expire_overdue(state: &AppState) -> Result<(), ApiError> {
    runtime::approval::expire_overdue(&state.store, &state.audit).map_err(answer_error)?;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `pending` (default) or `all`.
    status: Option<String>,
    /// Only this session's requests.
    session: Option<String>,
}

/// Approval requests, newest first.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals",
    params(("status" = Option<String>, Query, description = "`pending` (default) or `all`"),
           ("session" = Option<String>, Query, description = "only this session's requests")),
    responses((status = 200, description = "`{approvals: [Approval]}`")))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("pending") => Some(ApprovalStatus::Pending),
        Some("all") => None,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("status `{other}`: use `pending` or `all`"),
            ));
        }
    };
    let records = blocking(move || {
        expire_overdue(&state)?;
        state
            .store
            .list_approvals(&ApprovalFilter {
                status,
                agent: None,
                session: q.session,
            })
            .map_err(ApiError::from)
    })
    .await?;
    Ok(Json(json!({ "approvals": records })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerBody {
    /// `once`, `session`, `agent` or `deny`.
    answer: String,
    /// For `agent`: days the grant lasts (1 to `approvals.grant_max_days`, default 30 or
    /// the maximum if lower).
    days: Option<u64>,
    /// For `agent`: `exact` (default), `prefix` or `host`.
    scope: Option<String>,
    /// For `scope: "prefix"`: the leading words, e.g. `git push`.
    prefix: Option<String>,
}

/// Days an agent grant lasts when the answer does not say.
const DEFAULT_DAYS: u64 = 30;

fn parse_answer(body: &AnswerBody, max_days: u64, host: Option<&str>) -> Result<Answer, String> {
    let extras = body.days.is_some() || body.scope.is_some() || body.prefix.is_some();
    match body.answer.as_str() {
        "once" | "session" | "deny" if extras => Err(format!(
            "`days`, `scope` and `prefix` only apply to `\"answer\": \"agent\"`, not `{}`",
            body.answer
        )),
        "once" => Ok(Answer::Once),
        "session" => Ok(Answer::Session),
        "deny" => Ok(Answer::Deny),
        "agent" => {
            let days = body.days.unwrap_or(DEFAULT_DAYS.min(max_days));
            if days == 0 || days > max_days {
                return Err(format!(
                    "`days` {days}: an agent grant lasts 1 to {max_days} days \
                     (approvals.grant_max_days)"
                ));
            }
            let scope = match (
                body.scope.as_deref().unwrap_or("exact"),
                body.prefix.as_deref(),
            ) {
                ("exact", None) => GrantScope::Exact,
                ("prefix", Some(p)) => {
                    let words: Vec<String> = p.split_whitespace().map(str::to_string).collect();
                    if words.is_empty() {
                        return Err("`prefix` is empty: give the leading words".into());
                    }
                    GrantScope::Prefix(words)
                }
                ("prefix", None) => {
                    return Err("`scope: \"prefix\"` needs `prefix`, e.g. \"git push\"".into());
                }
                ("host", None) => match host {
                    Some(h) => GrantScope::Host(h.to_string()),
                    None => {
                        return Err(
                            "this request has no host; `scope: \"host\"` does not apply".into()
                        );
                    }
                },
                ("exact" | "host", Some(_)) => {
                    return Err("`prefix` only goes with `scope: \"prefix\"`".into());
                }
                (other, _) => {
                    return Err(format!("`scope` `{other}`: use exact, prefix or host"));
                }
            };
            Ok(Answer::Agent { days, scope })
        }
        other => Err(format!(
            "`answer` `{other}`: use once, session, agent or deny"
        )),
    }
}

/// Answer a pending request. A memory change takes only `once` (apply) or `deny`.
#[utoipa::path(post, path = "/api/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "approval id")), request_body = AnswerBody,
    responses((status = 200, description = "`{approval, grant?, entry?}`"),
              (status = 404, description = "no such approval"),
              (status = 409, description = "already answered or expired"),
              (status = 422, description = "an answer that does not fit the request")))]
pub(crate) async fn answer(
    State(state): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<AnswerBody>,
) -> Result<Json<Value>, ApiError> {
    let by = format!("gateway token {}", p.token_id);
    blocking(move || {
        expire_overdue(&state)?;
        let record = state
            .store
            .get_approval(&id)?
            .ok_or_else(|| StoreError::NoApproval { id: id.clone() })?;
        let unfit = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
        let answer = parse_answer(
            &body,
            state.config.approvals.grant_max_days,
            record.host.as_deref(),
        )
        .map_err(unfit)?;
        if record.kind == ApprovalKind::MemoryWrite {
            let approve = match answer {
                Answer::Once => true,
                Answer::Deny => false,
                _ => {
                    return Err(unfit(format!(
                        "approval `{id}` is a memory change: answer `once` (apply it) or `deny`"
                    )));
                }
            };
            return answer_memory(&state, &id, approve, &by);
        }
        let done = runtime::approval::answer_request(&state.store, &state.audit, &id, &answer, &by)
            .map_err(answer_error)?;
        Ok(Json(
            json!({ "approval": done.approval, "grant": done.grant }),
        ))
    })
    .await
}

fn answer_memory(
    state: &AppState,
    id: &str,
    approve: bool,
    by: &str,
) -> Result<Json<Value>, ApiError> {
    let done = runtime::approval::answer_memory_change(
        &state.store,
        &state.audit,
        &state.state_dir,
        id,
        approve,
        by,
    )
    .map_err(answer_error)?;
    Ok(Json(
        json!({ "approval": done.approval, "entry": done.entry }),
    ))
}

/// A store or audit failure keeps its status; a memory change that cannot be applied is
/// an answer that does not fit (422).
fn answer_error(e: runtime::approval::AnswerError) -> ApiError {
    use runtime::approval::AnswerError;
    use runtime::memory::MemoryError;
    match e {
        AnswerError::Store(e) | AnswerError::Memory(MemoryError::Approvals(e)) => e.into(),
        AnswerError::Audit(e) => e.into(),
        AnswerError::Memory(other) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string())
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantsQuery {
    /// Include revoked and expired grants.
    all: Option<bool>,
}

/// Grants created by answers.
#[utoipa::path(get, path = "/api/grants", tag = "approvals",
    params(("all" = Option<bool>, Query, description = "include revoked and expired grants")),
    responses((status = 200, description = "`{grants: [Grant]}`")))]
pub(crate) async fn grants(
    State(state): State<Arc<AppState>>,
    Query(q): Query<GrantsQuery>,
) -> Result<Json<Value>, ApiError> {
    let grants = blocking(move || state.store.list_grants(None, q.all.unwrap_or(false))).await?;
    Ok(Json(json!({ "grants": grants })))
}

/// Revoke a grant.
#[utoipa::path(post, path = "/api/grants/{id}/revoke", tag = "approvals",
    params(("id" = String, Path, description = "grant id")),
    responses((status = 200, description = "`{grant}`"),
              (status = 404, description = "no such grant"),
              (status = 409, description = "already revoked")))]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let by = format!("gateway token {}", p.token_id);
    blocking(move || {
        let grant = runtime::approval::revoke_grant(&state.store, &state.audit, &id, Some(&by))
            .map_err(answer_error)?;
        Ok::<_, ApiError>(Json(json!({ "grant": grant })))
    })
    .await
}
