//! `POST /api/login` (a token in the body, never the URL -> a session cookie),
//! `POST /api/logout`, `GET /api/whoami`.
//!
//! Guarantees: the token is read only from a JSON (`{"token": …}`) or form (`token=…`)
//! body; each attempt is first checked against the client address's lockout (a locked
//! address gets 429 with `Retry-After`, and its token is not even checked); every failure
//! and success is audited (`decision`, `action = gateway_login`, client address, never the
//! token), and the failure that starts a lockout is an `alert` (`login_burst`). The cookie
//! is `HttpOnly; SameSite=Strict; Path=/`, `Secure` (and `__Host-` named) under TLS, with
//! `Max-Age` = the absolute session lifetime.

use std::sync::Arc;
use std::time::Instant;

use audit::event::{Alert, Decision, LoginAction, LoginBurst, LoginDecision, NamedAlert};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use store::TokenScope;

use crate::auth::{Principal, Via, session_cookie};
use crate::client::PeerAddr;
use crate::layers::{ApiError, Https, blocking};
use crate::server::AppState;

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/login", post(login))
        .merge(super::scoped(
            state,
            TokenScope::Read,
            Router::new()
                .route("/api/logout", post(logout))
                .route("/api/whoami", get(whoami)),
        ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginBody {
    /// A token from `cordon token create` (`cdn_…`).
    token: String,
}

fn read_token(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bad = |what: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}; send {{\"token\": \"cdn_…\"}} as JSON or token=… as a form"),
        )
    };
    let parsed: LoginBody = match ctype.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|_| bad("bad JSON body"))?,
        "application/x-www-form-urlencoded" => {
            serde_urlencoded::from_bytes(body).map_err(|_| bad("no token field in the form"))?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the token as application/json or application/x-www-form-urlencoded",
            ));
        }
    };
    Ok(parsed.token)
}

/// The session cookie; `Secure` whenever the client is on HTTPS (`https` is our TLS or
/// a trusted proxy's, as [`crate::layers::guard_origin`] decided).
fn cookie(
    state: &AppState,
    https: bool,
    value: &str,
    max_age: u64,
) -> Result<HeaderValue, ApiError> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        state.cookie_name
    ))
    .map_err(ApiError::internal)
}

#[utoipa::path(post, path = "/api/login", tag = "auth", security(),
    request_body(content = LoginBody, description = "the token, as JSON or a form; never in the URL"),
    responses((status = 200, description = "`{scope, token_id, csrf_token, session_idle_secs, session_max_secs}` and a session cookie"),
              (status = 401, description = "wrong, revoked or expired token"),
              (status = 429, description = "this client address is locked out")))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Extension(Https(https)): Extension<Https>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let client = state.proxies.client(peer.0, &headers);
    if let Err(wait) = state.limiter.check(client, Instant::now()) {
        let secs = wait.as_secs().max(1).to_string();
        return Ok((
            [(header::RETRY_AFTER, secs.clone())],
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins from this address; try again in {secs} s"),
            ),
        )
            .into_response());
    }
    let presented = read_token(&headers, &body)?;
    let st = state.clone();
    let verified = blocking(move || crate::token::verify(&st.store, &presented)).await?;
    let Some(v) = verified else {
        let burst = state.limiter.failure(client, Instant::now());
        let st = state.clone();
        let max = state.config.gateway.login_max_failures;
        let lockout = state.config.gateway.login_lockout_secs;
        blocking(move || {
            st.audit.append_event(
                None,
                Decision::Login(LoginDecision {
                    action: LoginAction::GatewayLogin,
                    decision: "deny".into(),
                    reason: Some("invalid token".into()),
                    client: client.to_string(),
                    token_id: None,
                    scope: None,
                }),
            )?;
            if let Some(b) = burst {
                st.audit.record_event(
                    None,
                    Alert::Named(NamedAlert::LoginBurst(LoginBurst {
                        client: b.key.to_string(),
                        failures: u64::from(b.failures),
                        max_failures: u64::from(max),
                        lockout_secs: lockout,
                    })),
                )
            } else {
                st.audit.sync()
            }
        })
        .await?;
        return Err(ApiError::unauthorized(
            "the token is not valid (unknown, revoked or expired)",
        ));
    };
    state.limiter.success(client);
    let (value, session) = state
        .sessions
        .create(&v.token_id, v.scope, Instant::now())
        .map_err(ApiError::internal)?;
    let st = state.clone();
    let (id, scope) = (v.token_id.clone(), v.scope);
    blocking(move || {
        st.audit.record_event(
            None,
            Decision::Login(LoginDecision {
                action: LoginAction::GatewayLogin,
                decision: "allow".into(),
                reason: None,
                client: client.to_string(),
                token_id: Some(id),
                scope: Some(scope.as_str().to_string()),
            }),
        )
    })
    .await?;
    state.note_use(&v.token_id);
    let max = state.sessions.max().as_secs();
    let set = cookie(&state, https, &value, max)?;
    let body = Json(json!({
        "scope": v.scope.as_str(),
        "token_id": v.token_id,
        "csrf_token": session.csrf,
        "session_idle_secs": state.config.gateway.session_idle_secs,
        "session_max_secs": max,
    }));
    Ok(([(header::SET_COOKIE, set)], body).into_response())
}

#[utoipa::path(post, path = "/api/logout", tag = "auth",
    responses((status = 200, description = "the session is ended and the cookie cleared")))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(Https(https)): Extension<Https>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(c) = session_cookie(&headers, &state.cookie_name) {
        state.sessions.remove(c);
    }
    let clear = cookie(&state, https, "", 0)?;
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

#[utoipa::path(get, path = "/api/whoami", tag = "auth",
    responses((status = 200, description = "`{token_id, scope, via, csrf_token}` (`csrf_token` is null for a bearer token)")))]
pub(crate) async fn whoami(Extension(p): Extension<Principal>) -> Json<serde_json::Value> {
    let (via, csrf) = match &p.via {
        Via::Bearer => ("bearer", None),
        Via::Session { csrf } => ("session", Some(csrf.clone())),
    };
    Json(json!({
        "token_id": p.token_id,
        "scope": p.scope.as_str(),
        "via": via,
        "csrf_token": csrf,
    }))
}
