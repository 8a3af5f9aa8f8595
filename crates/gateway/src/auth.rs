//! Who is asking: a bearer token or a browser session, and whether their scope suffices.
//!
//! Guarantees: a request to a protected route reaches its handler only with a
//! [`Principal`] whose token is usable *now* (a session dies with its token's revocation
//! or expiry); an `Authorization` header that is present but wrong is a 401 even if a
//! valid cookie is also sent; a state-changing request authenticated by cookie must carry
//! the session's CSRF token in `X-CSRF-Token` (compared in constant time) or gets 403;
//! a scope below the route's minimum gets 403. Nothing here reads the URL query.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use store::TokenScope;
use subtle::ConstantTimeEq;

use crate::layers::{ApiError, blocking};
use crate::server::AppState;
use crate::token;

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Bearer,
    /// A browser session; `csrf` is its CSRF token.
    Session {
        csrf: String,
    },
}

/// An authenticated caller, in request extensions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub scope: TokenScope,
    pub via: Via,
}

/// The header a cookie-authenticated state-changing request must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session cookie's value among the request's cookies.
pub fn session_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Resolve the caller of `headers`, or the 401 to answer.
pub async fn principal(state: &Arc<AppState>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer TOKEN`"))?;
        let st = state.clone();
        let verified = blocking(move || token::verify(&st.store, &presented)).await?;
        let Some(v) = verified else {
            return Err(ApiError::unauthorized(
                "the token is not valid (unknown, revoked or expired)",
            ));
        };
        state.note_use(&v.token_id);
        return Ok(Principal {
            token_id: v.token_id,
            scope: v.scope,
            via: Via::Bearer,
        });
    }
    if let Some(cookie) = session_cookie(headers, &state.cookie_name) {
        let Some(session) = state.sessions.touch(cookie, Instant::now()) else {
            return Err(ApiError::unauthorized(
                "the session has ended; log in again",
            ));
        };
        let st = state.clone();
        let id = session.token_id.clone();
        let scope = blocking(move || token::still_valid(&st.store, &id)).await?;
        let Some(scope) = scope else {
            state.sessions.remove(cookie);
            return Err(ApiError::unauthorized(
                "the session's token was revoked or expired; log in again",
            ));
        };
        state.note_use(&session.token_id);
        return Ok(Principal {
            token_id: session.token_id,
            scope: scope.min(session.scope),
            via: Via::Session { csrf: session.csrf },
        });
    }
    Err(ApiError::unauthorized(
        "authentication required: send `Authorization: Bearer TOKEN` or log in",
    ))
}

/// Middleware: authenticate, enforce CSRF for cookie-authenticated state changes, and
/// require at least the scope given as state.
pub async fn require(
    State((state, min)): State<(Arc<AppState>, TokenScope)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let p = principal(&state, req.headers()).await?;
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let (true, Via::Session { csrf }) = (changes_state, &p.via) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(csrf.as_bytes())) {
            return Err(ApiError::forbidden(format!(
                "missing or wrong CSRF token: a browser session must send it in the \
                 {CSRF_HEADER} header (from the login or /api/whoami answer)"
            )));
        }
    }
    if p.scope < min {
        return Err(ApiError::forbidden(format!(
            "this needs the `{min}` scope; this token has `{}`",
            p.scope
        )));
    }
    req.extensions_mut().insert(p);
    Ok(next.run(req).await)
}
