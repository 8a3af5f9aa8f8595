//! `GET /api/status` (read): version, tier, agents, and how the gateway is exposed.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use store::TokenScope;

use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Read,
        Router::new().route("/api/status", get(status)),
    )
}

#[utoipa::path(get, path = "/api/status", tag = "status",
    responses((status = 200, description = "`{version, tier, agents, tls, loopback_only, uptime_secs}`")))]
pub(crate) async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "tier": state.config.tier,
        "agents": state.config.agents.keys().collect::<Vec<_>>(),
        "tls": state.tls,
        "loopback_only": state.loopback,
        "uptime_secs": state.started.elapsed().as_secs(),
    }))
}
