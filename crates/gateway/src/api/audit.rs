//! The audit log (read): query and verify; and the effective configuration (read).
//!
//! Guarantees: records are served exactly as stored (with `seq`, `prev` and `hash`, so
//! a client can check the chain itself); a query reads the log the way `cordon log show`
//! does and fails with an error rather than showing records past damage; `verify` runs
//! the same check as `cordon log verify`. The configuration holds no secret values (they
//! live in the vault), so it is served whole.
//!
//! Does not: index the log (a query scans it: fine for the sizes a single gateway
//! writes, and the reason `limit` is capped).

use std::sync::Arc;

use audit::{EventKind, Filter};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use store::TokenScope;
use utoipa::ToSchema;

use crate::layers::{ApiError, blocking};
use crate::server::AppState;

/// Records one query returns at most.
const MAX_RECORDS: usize = 1000;
/// Records a query returns when it does not say.
const DEFAULT_RECORDS: usize = 200;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Read,
        Router::new()
            .route("/api/audit", get(query))
            .route("/api/audit/verify", get(verify))
            .route("/api/config", get(config)),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Only this session's records.
    session: Option<String>,
    /// Only this kind (e.g. `decision`, `approval`, `alert`).
    kind: Option<String>,
    /// Only `decision` records with this decision: `allow`, `deny` or `ask`.
    decision: Option<String>,
    /// At most this many (default 200, at most 1000).
    limit: Option<usize>,
    /// Only records with a lower `seq` (for paging back).
    before: Option<u64>,
}

/// Audit records, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(("session" = Option<String>, Query, description = "only this session"),
           ("kind" = Option<String>, Query, description = "only this record kind"),
           ("decision" = Option<String>, Query, description = "allow, deny or ask"),
           ("limit" = Option<usize>, Query, description = "at most this many (≤ 1000)"),
           ("before" = Option<u64>, Query, description = "only records with a lower seq")),
    responses((status = 200, description = "`{records: [Record]}`"),
              (status = 400, description = "unknown kind or decision")))]
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let kinds = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        None => Vec::new(),
        Some(k) => vec![EventKind::parse(k).ok_or_else(|| {
            bad(format!(
                "kind `{k}`: use one of {}",
                EventKind::ALL.map(|k| k.as_str()).join(", ")
            ))
        })?],
    };
    let decision = q.decision.clone().filter(|d| !d.is_empty());
    if let Some(d) = &decision
        && !matches!(d.as_str(), "allow" | "deny" | "ask")
    {
        return Err(bad(format!("decision `{d}`: use allow, deny or ask")));
    }
    let limit = q.limit.unwrap_or(DEFAULT_RECORDS).clamp(1, MAX_RECORDS);
    let filter = Filter {
        session: q.session.clone().filter(|s| !s.is_empty()),
        kinds,
    };
    let dir = state.audit.dir().to_path_buf();
    let records = blocking(move || audit::read_filtered(&dir, &filter)).await?;
    let selected: Vec<&audit::Record> = records
        .iter()
        .rev()
        .filter(|r| q.before.is_none_or(|b| r.seq < b))
        .filter(|r| {
            decision.as_ref().is_none_or(|d| {
                r.kind == EventKind::Decision
                    && r.data.get("decision").and_then(Value::as_str) == Some(d.as_str())
            })
        })
        .take(limit)
        .collect();
    Ok(Json(json!({ "records": selected })))
}

/// Verify the whole hash chain against its anchor.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    responses((status = 200, description = "`{ok, records, head, error}`")))]
pub(crate) async fn verify(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let dir = state.audit.dir().to_path_buf();
    let report = blocking(move || Ok::<_, ApiError>(audit::verify(&dir))).await?;
    Ok(Json(match report {
        Ok(r) => json!({ "ok": true, "records": r.records, "head": r.last_hash, "error": null }),
        Err(e) => json!({ "ok": false, "records": null, "head": null, "error": e.to_string() }),
    }))
}

/// The effective configuration and tier (read-only).
#[utoipa::path(get, path = "/api/config", tag = "status",
    responses((status = 200, description = "`{tier, config}`")))]
pub(crate) async fn config(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let config = serde_json::to_value(&*state.config).map_err(ApiError::internal)?;
    Ok(Json(json!({ "tier": state.config.tier, "config": config })))
}
