//! The web UI: static assets embedded in the binary (no CDN, no build step).

use std::sync::Arc;

use axum::Router;

use crate::server::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
}
