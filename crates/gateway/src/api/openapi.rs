//! The OpenAPI document of the gateway, generated from the handlers' annotations, served
//! at `GET /api/openapi.json` (read) and checked in as `docs/openapi.json` (a test keeps
//! the two equal; regenerate with `UPDATE_DOCS=1 cargo test -p cordon-gateway --test
//! openapi`).

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use store::TokenScope;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{approvals, audit, changes, health, login, pairing, sessions, skills, status, tokens};
use crate::server::AppState;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `cordon token create --scope read|approver|operator|admin`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "cordon_session",
                "The browser session from POST /api/login (`__Host-cordon_session` under \
                 TLS); state-changing requests also need the X-CSRF-Token header",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cordon gateway",
        description = "Sessions, events, approvals, grants and the audit log of a Cordon \
                       gateway. Scopes: read < approver < operator < admin. Errors are \
                       `{error, request_id}`. See docs/api.md for the event kinds.",
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    paths(
        health::healthz, health::readyz, status::status,
        login::login, login::logout, login::whoami,
        sessions::agents, sessions::list, sessions::create, sessions::read, sessions::send,
        sessions::events, sessions::stream, changes::list, changes::undo,
        approvals::list, approvals::answer, approvals::grants, approvals::revoke,
        pairing::list, pairing::decide,
        audit::query, audit::verify, audit::config, skills::list,
        tokens::list, tokens::revoke,
    ),
    tags(
        (name = "sessions", description = "agents, sessions, messages and their events"),
        (name = "approvals", description = "approval requests and grants"),
        (name = "pairing", description = "chat senders waiting to be admitted, and decided ones"),
        (name = "audit", description = "the tamper-evident audit log"),
        (name = "auth", description = "browser sessions"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "status", description = "health, readiness, status, configuration"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Read,
        Router::new().route("/api/openapi.json", get(serve)),
    )
}

async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}
