//! A session's journaled workspace changes: list them with their diffs (read) and undo
//! them (approver), through [`runtime::changes`] — the functions `cordon changes` and
//! `cordon undo` use.
//!
//! Guarantees: an undo restores only paths that still hold what the session left there
//! (a path changed since is reported in `left_alone`, never clobbered); it is refused
//! with `409` while a turn of that session runs (its changes are still being made); each
//! undo is audited as `checkpoint` `undone` naming the token (`by: "gateway token ID"`).
//! Undo needs the approver scope: it is the after-the-fact review of changes that no
//! longer ask because they can be undone.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use runtime::changes::{self, ChangesError};
use serde::Deserialize;
use serde_json::{Value, json};
use store::TokenScope;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::layers::{ApiError, blocking};
use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Read,
        Router::new().route("/api/sessions/{id}/changes", get(list)),
    )
    .merge(super::scoped(
        state,
        TokenScope::Approver,
        Router::new().route("/api/sessions/{id}/undo", post(undo)),
    ))
}

fn changes_error(e: ChangesError) -> ApiError {
    match e {
        ChangesError::BadSession { .. } => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        ChangesError::NoChanges(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        ChangesError::BadCall(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        ChangesError::Audit(e) => e.into(),
        ChangesError::Journal { .. } | ChangesError::Checkpoint(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// Each path the session changed (net of all its calls, paths back where they began
/// left out): `{session, agent, changes: [{path, kind: added|changed|deleted, calls,
/// diff}]}`. A known session that changed nothing has `agent: null` and no changes.
#[utoipa::path(get, path = "/api/sessions/{id}/changes", tag = "sessions",
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, description = "`{session, agent, changes: [Change]}`"),
              (status = 404, description = "no such session")))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || -> Result<Json<Value>, ApiError> {
        let (journal, sid) = match changes::find(&state.config, &state.state_dir, &id) {
            Ok(found) => found,
            Err(ChangesError::NoChanges(_)) => {
                return match state.store.get_session(&id)? {
                    Some(_) => Ok(Json(json!({ "session": id, "agent": null, "changes": [] }))),
                    None => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no session `{id}`"),
                    )),
                };
            }
            Err(e) => return Err(changes_error(e)),
        };
        let files = changes::file_changes(&journal, &sid).map_err(changes_error)?;
        Ok(Json(
            json!({ "session": id, "agent": journal.agent, "changes": files }),
        ))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UndoBody {
    /// Undo only this tool call's changes (a call id from `calls`).
    call: Option<String>,
}

/// Undo the session's changes (or one call's): `{session, call?, restored, unchanged,
/// left_alone, failed, complete}`.
#[utoipa::path(post, path = "/api/sessions/{id}/undo", tag = "sessions",
    params(("id" = String, Path, description = "session id")), request_body = UndoBody,
    responses((status = 200, description = "`Undone`: what was restored and what was left alone"),
              (status = 404, description = "the session changed nothing that was journaled"),
              (status = 409, description = "a turn of the session is running"),
              (status = 422, description = "no such call in the session")))]
pub(crate) async fn undo(
    State(state): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<Json<UndoBody>>,
) -> Result<Json<Value>, ApiError> {
    let by = format!("gateway token {}", p.token_id);
    let call = body.and_then(|Json(b)| b.call);
    if state.hub.is_running(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a turn of session `{id}` is running; undo once it ends"),
        ));
    }
    blocking(move || {
        let done = changes::undo(
            &state.config,
            &state.state_dir,
            &state.audit,
            &id,
            call.as_deref(),
            &by,
        )
        .map_err(changes_error)?;
        Ok::<_, ApiError>(Json(json!(done)))
    })
    .await
}
