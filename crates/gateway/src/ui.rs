//! The web UI: static assets embedded in the binary (no CDN, no build step).
//!
//! Guarantees: the assets are fixed bytes compiled in, the same for every request: nothing
//! from the request (query, headers) is reflected into them, so a link such as
//! `/?gatewayUrl=ws://evil&token=…` serves the ordinary page, which never reads its URL.
//! They hold no data, so they need no auth; everything they show comes from the API,
//! which does. They obey the gateway's CSP (`script-src 'self'`, no inline script or
//! style), and the security headers are added by [`crate::layers::envelope`] as on every
//! response.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::AppState;

/// One embedded file and the `Content-Type` it is served with.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

static INDEX: Asset = Asset {
    body: include_bytes!("../ui/index.html"),
    content_type: "text/html; charset=utf-8",
};
static APP_JS: Asset = Asset {
    body: include_bytes!("../ui/app.js"),
    content_type: "text/javascript; charset=utf-8",
};
static APP_CSS: Asset = Asset {
    body: include_bytes!("../ui/app.css"),
    content_type: "text/css; charset=utf-8",
};
static ICON: Asset = Asset {
    body: include_bytes!("../ui/icon.svg"),
    content_type: "image/svg+xml",
};

impl IntoResponse for &'static Asset {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            )],
            self.body,
        )
            .into_response()
    }
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { &INDEX }))
        .route("/ui/app.js", get(|| async { &APP_JS }))
        .route("/ui/app.css", get(|| async { &APP_CSS }))
        .route("/ui/icon.svg", get(|| async { &ICON }))
}
