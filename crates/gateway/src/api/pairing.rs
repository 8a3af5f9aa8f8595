//! Pairing of chat senders: list (read), approve or deny a pending code (operator).
//!
//! Guarantees: a decision goes through `channels::pairing::decide`, as `cordon pairing`
//! does: the store decides a pending, unexpired code once (a second answer, from here or
//! the CLI, gets `404`; an expired code `409`), and the decision is audited naming the
//! token that made it (`by: "gateway token ID"`). Operator, not approver: admitting a
//! sender lets them talk to an agent, which is what an operator token does.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use channels::pairing::{self, PairingDecision, PairingError};
use config::{ChannelKind, ChannelRole};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::layers::{ApiError, blocking};
use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        store::TokenScope::Read,
        Router::new().route("/api/pairing", get(list)),
    )
    .merge(super::scoped(
        state,
        store::TokenScope::Operator,
        Router::new().route("/api/pairing/{code}", post(decide)),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this channel (`telegram`, `slack`, `matrix`).
    channel: Option<String>,
}

/// Every pairing, oldest first: pending ones with their code and expiry (`expired` once
/// the code decides nothing), approved ones with their role, denied ones.
#[utoipa::path(get, path = "/api/pairing", tag = "pairing",
    params(("channel" = Option<String>, Query, description = "only this channel")),
    responses((status = 200, description = "`{pairings: [Pairing]}`"),
              (status = 400, description = "not a channel")))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let channel = match q.channel.as_deref() {
        None => None,
        Some(name) => Some(ChannelKind::parse(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{name}` is not a channel; use telegram, slack or matrix"),
            )
        })?),
    };
    let records = blocking(move || state.store.pairings(channel.map(ChannelKind::as_str))).await?;
    let pairings: Vec<Value> = records
        .iter()
        .map(|p| {
            let mut v = json!(p);
            v["expired"] = json!(p.is_expired_now());
            v
        })
        .collect();
    Ok(Json(json!({ "pairings": pairings })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideBody {
    /// `approve` or `deny`.
    decision: String,
    /// With `approve`: `user` (default), `approver` or `owner`.
    role: Option<String>,
}

fn parse_decision(body: &DecideBody) -> Result<PairingDecision, String> {
    match (body.decision.as_str(), body.role.as_deref()) {
        ("approve", None) => Ok(PairingDecision::Approve(ChannelRole::User)),
        ("approve", Some(r)) => ChannelRole::parse(r)
            .map(PairingDecision::Approve)
            .ok_or_else(|| format!("`role` `{r}`: use user, approver or owner")),
        ("deny", None) => Ok(PairingDecision::Deny),
        ("deny", Some(_)) => Err("`role` only goes with `\"decision\": \"approve\"`".into()),
        (other, _) => Err(format!("`decision` `{other}`: use approve or deny")),
    }
}

/// Approve (with a role) or deny the sender holding a pending code.
#[utoipa::path(post, path = "/api/pairing/{code}", tag = "pairing",
    params(("code" = String, Path, description = "the code the sender was given")),
    request_body = DecideBody,
    responses((status = 200, description = "`{pairing}`: the decided pairing"),
              (status = 404, description = "no pending pairing holds the code"),
              (status = 409, description = "the code expired"),
              (status = 422, description = "a decision or role that is not one")))]
pub(crate) async fn decide(
    State(state): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(code): Path<String>,
    Json(body): Json<DecideBody>,
) -> Result<Json<Value>, ApiError> {
    let decision =
        parse_decision(&body).map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m))?;
    let by = format!("gateway token {}", p.token_id);
    blocking(move || {
        let record = pairing::decide(&state.store, &state.audit, &code, decision, &by)
            .map_err(pairing_error)?;
        Ok::<_, ApiError>(Json(json!({ "pairing": record })))
    })
    .await
}

fn pairing_error(e: PairingError) -> ApiError {
    match e {
        PairingError::UnknownCode { .. } | PairingError::NoSuchPairing { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        PairingError::Expired { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        PairingError::Store(e) => e.into(),
        PairingError::Audit(e) => e.into(),
    }
}
