//! `GET /api/skills` (read): the installed skills with their pinned hash, scan verdict,
//! approved capabilities and whether their trees still match the pin.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use store::TokenScope;

use crate::layers::{ApiError, blocking};
use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Read,
        Router::new().route("/api/skills", get(list)),
    )
}

#[utoipa::path(get, path = "/api/skills", tag = "status",
    responses((status = 200, description = "`{skills: [{name, version, source, sha256, verdict, accepted_risk, agents, capabilities, env, installed_at, intact, drift}]}`; `intact` is false (and `drift` says why) when the installed tree no longer matches its pin")))]
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let lock_path = state.skills_lock.clone();
    let store = skills::Store::new(&state.state_dir);
    let skills = blocking(move || -> Result<Vec<Value>, ApiError> {
        let lock = skills::Lock::load(&lock_path).map_err(ApiError::internal)?;
        Ok(lock
            .skills
            .iter()
            .map(|s| {
                let drift = store
                    .load(&s.sha256)
                    .err()
                    .map(|d| runtime::skills::drift_reason(&d));
                json!({
                    "name": s.name,
                    "version": s.version,
                    "source": s.source,
                    "sha256": s.sha256,
                    "verdict": s.verdict,
                    "accepted_risk": s.accepted_risk,
                    "agents": s.agents,
                    "capabilities": s.capabilities,
                    "env": s.env,
                    "installed_at": s.installed_at,
                    "intact": drift.is_none(),
                    "drift": drift,
                })
            })
            .collect())
    })
    .await?;
    Ok(Json(json!({ "skills": skills })))
}
