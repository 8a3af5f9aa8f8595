//! Token administration over the API (admin): `GET /api/tokens` lists them (never the
//! tokens or their hashes), `POST /api/tokens/{id}/revoke` revokes one (audited).
//! Creating tokens stays on the command line, so a token is only ever shown in a terminal.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use store::{Revoked, TokenScope};

use crate::auth::Principal;
use crate::layers::{ApiError, blocking};
use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Admin,
        Router::new()
            .route("/api/tokens", get(list))
            .route("/api/tokens/{id}/revoke", post(revoke)),
    )
}

#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, description = "`{tokens: [Token]}` (never the tokens or their hashes)")))]
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let tokens = blocking(move || state.store.list_tokens(true)).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[utoipa::path(post, path = "/api/tokens/{id}/revoke", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, description = "`{revoked}`"), (status = 404, description = "no such token"),
              (status = 409, description = "already revoked")))]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let by = format!("gateway token {}", p.token_id);
    let outcome =
        blocking(move || crate::token::revoke(&state.store, &state.audit, &id, &by)).await?;
    match outcome {
        Revoked::Now(r) => Ok(Json(json!({ "revoked": r }))),
        Revoked::AlreadyRevoked(r) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("token {} was already revoked", r.id),
        )),
        Revoked::NotFound => Err(ApiError::new(StatusCode::NOT_FOUND, "no such token")),
    }
}
