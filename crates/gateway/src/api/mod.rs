//! The HTTP API, one router module per area. Each area states the minimum scope of its
//! routes where it builds them, through [`crate::auth::require`].
//!
//! Areas: [`health`] (no auth), [`login`] (login, logout, whoami), [`status`],
//! [`sessions`] (agents, sessions, messages, events, the WebSocket stream),
//! [`changes`] (a session's journaled workspace changes and their undo),
//! [`approvals`] (approvals and grants), [`pairing`] (chat senders waiting to be
//! admitted), [`audit`] (audit log, configuration),
//! [`tokens`] (admin), and the [`openapi`] document of all of them.

pub mod approvals;
pub mod audit;
pub mod changes;
pub mod health;
pub mod login;
pub mod openapi;
pub mod pairing;
pub mod sessions;
pub mod skills;
pub mod status;
pub mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use store::TokenScope;

use crate::auth::require;
use crate::server::AppState;

/// `router` with every route requiring at least `scope`.
pub(crate) fn scoped(
    state: &Arc<AppState>,
    scope: TokenScope,
    router: Router<Arc<AppState>>,
) -> Router<Arc<AppState>> {
    router.route_layer(from_fn_with_state((state.clone(), scope), require))
}

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .merge(health::router())
        .merge(login::router(state))
        .merge(status::router(state))
        .merge(tokens::router(state))
        .merge(sessions::router(state))
        .merge(changes::router(state))
        .merge(approvals::router(state))
        .merge(pairing::router(state))
        .merge(audit::router(state))
        .merge(skills::router(state))
        .merge(openapi::router(state))
        .merge(crate::hooks::router())
        .merge(crate::ui::router())
}
