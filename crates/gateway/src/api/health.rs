//! `GET /healthz` (the process answers) and `GET /readyz` (the store and audit log are
//! usable). No authentication; they reveal nothing but up/down.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::layers::ApiError;
use crate::server::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[utoipa::path(get, path = "/healthz", tag = "status", security(),
    responses((status = 200, description = "`{status: \"ok\"}`")))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "status", security(),
    responses((status = 200, description = "`{status: \"ready\"}`"),
              (status = 503, description = "the store is not readable")))]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let st = state.clone();
    let ok = tokio::task::spawn_blocking(move || st.store.get_token("").is_ok())
        .await
        .unwrap_or(false);
    if !ok {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not readable",
        ));
    }
    Ok(Json(json!({ "status": "ready" })))
}
