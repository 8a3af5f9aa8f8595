//! Cross-cutting HTTP behaviour, as middleware applied to every route and the fallback.
//!
//! Guarantees: every response carries `X-Request-Id` (a fresh ULID; a client-sent id is
//! ignored) and the security headers of [`SECURITY_HEADERS`] (plus HSTS under TLS);
//! every error response (4xx/5xx, including 404, 405, 408, 413 and extractor rejections)
//! has the body `{"error": "...", "request_id": "..."}`; on a loopback bind a request
//! whose `Host` is not a loopback name or an allowed origin's host is refused (DNS
//! rebinding); a state-changing request whose `Origin` is neither the gateway's own nor
//! an allowed origin, or which a browser labels `Sec-Fetch-Site: cross-site`, is refused.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::client::PeerAddr;
use crate::server::AppState;

/// Headers set on every response.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    ("cache-control", "no-store"),
];

/// The request's id, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An error answer. Its JSON body is written by [`envelope`], which knows the request id.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Debug, Clone)]
struct ErrorMessage(String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("gateway: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the gateway log has the details",
        )
    }
}

/// A store error as the HTTP answer a client can act on; anything else is a 500.
impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        use store::StoreError as E;
        let status = match &e {
            E::NoApproval { .. } | E::NoGrant { .. } => StatusCode::NOT_FOUND,
            E::AlreadyAnswered { .. } | E::ApprovalExpired { .. } | E::AlreadyRevoked { .. } => {
                StatusCode::CONFLICT
            }
            E::BadScope { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::GatewayError> for ApiError {
    fn from(e: crate::GatewayError) -> ApiError {
        match e {
            crate::GatewayError::Store(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<audit::AuditError> for ApiError {
    fn from(e: audit::AuditError) -> ApiError {
        ApiError::internal(e)
    }
}

/// Run store or audit work (blocking I/O) off the async workers. A panic in `f` is a
/// 500, and so is any error the client cannot act on (see the `From` impls above).
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r.extensions_mut().insert(ErrorMessage(self.message));
        r
    }
}

/// Outermost layer: request id, security headers, JSON error bodies.
pub async fn envelope(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = ulid::Ulid::new().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut res = next.run(req).await;
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        let message = match res.extensions().get::<ErrorMessage>() {
            Some(ErrorMessage(m)) => m.clone(),
            None => {
                let body = std::mem::replace(res.body_mut(), Body::empty());
                let text = axum::body::to_bytes(body, 4096)
                    .await
                    .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                    .unwrap_or_default();
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_lowercase()
                } else {
                    text
                }
            }
        };
        tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), "{message}");
        let body = json!({ "error": message, "request_id": id }).to_string();
        *res.body_mut() = Body::from(body);
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.remove(header::CONTENT_LENGTH);
    }
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    if state.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// The host part of a `Host` header value (`[::1]:7777` -> `[::1]`, `a:1` -> `a`).
fn host_name(value: &str) -> &str {
    if value.starts_with('[') {
        return value.split_inclusive(']').next().unwrap_or(value);
    }
    value.rsplit_once(':').map_or(value, |(h, _)| h)
}

/// A loopback address or `localhost`, or a `*.localhost` name (which browsers resolve
/// to loopback themselves).
fn is_loopback_name(host: &str) -> bool {
    config::is_loopback_host(host) || host.to_ascii_lowercase().ends_with(".localhost")
}

/// Refuse foreign `Host` names on a loopback bind, and cross-site state changes.
pub async fn guard_origin(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "the request has no usable Host header; send `Host: NAME[:PORT]` naming this \
                 gateway",
            )
        })?;
    if state.loopback {
        let name = host_name(&host);
        let allowed = is_loopback_name(name)
            || state
                .allowed_origins
                .iter()
                .any(|o| host_name(o.split_once("://").map_or(o.as_str(), |(_, h)| h)) == name);
        if !allowed {
            return Err(ApiError::forbidden(format!(
                "host `{name}` is not served here: this gateway only answers to loopback names \
                 (add the origin to [gateway] allowed_origins to use another name)"
            )));
        }
    }
    // HTTPS to the client: our own TLS, or a trusted proxy's (X-Forwarded-Proto).
    let https = state.tls
        || req
            .extensions()
            .get::<axum::extract::ConnectInfo<PeerAddr>>()
            .is_some_and(|c| state.proxies.forwarded_https(c.0.0, headers));
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
        {
            return Err(ApiError::forbidden("cross-site request refused"));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            check_origin(&state.allowed_origins, https, &host, origin)?;
        }
    }
    let mut req = req;
    req.extensions_mut().insert(Https(https));
    req.extensions_mut().insert(RequestHost(host));
    Ok(next.run(req).await)
}

/// Whether the client reached the gateway over HTTPS (in request extensions).
#[derive(Debug, Clone, Copy)]
pub struct Https(pub bool);

/// The request's non-empty `Host` (or URI authority), as [`guard_origin`] checked it (in
/// request extensions), so later origin checks compare against the same name.
#[derive(Debug, Clone)]
pub struct RequestHost(pub String);

/// `origin` must be the gateway's own (`http(s)://` + the request's `Host`) or one of
/// `allowed` (`[gateway] allowed_origins`, lowercase). An Origin that is not text, or an
/// empty `host`, is refused rather than compared.
pub(crate) fn check_origin(
    allowed: &[String],
    https: bool,
    host: &str,
    origin: &HeaderValue,
) -> Result<(), ApiError> {
    let Ok(origin) = origin.to_str() else {
        return Err(ApiError::forbidden(
            "the Origin header is not valid text; send the origin this page was loaded from",
        ));
    };
    if host.is_empty() {
        return Err(ApiError::forbidden(
            "cannot check the Origin: the request names no Host",
        ));
    }
    let origin = origin.to_ascii_lowercase();
    let scheme = if https { "https" } else { "http" };
    let own = format!("{scheme}://{}", host.to_ascii_lowercase());
    if origin != own && !allowed.contains(&origin) {
        return Err(ApiError::forbidden(format!(
            "origin `{origin}` may not send requests here (only {own} and \
             [gateway] allowed_origins)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("127.0.0.1:7777"), "127.0.0.1");
        assert_eq!(host_name("[::1]:7777"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
        assert!(is_loopback_name("[::1]"));
        assert!(is_loopback_name("127.0.0.2"));
        assert!(is_loopback_name("LOCALHOST"));
        assert!(!is_loopback_name("evil.example"));
        assert!(!is_loopback_name("127.0.0.1.evil.example"));
        assert!(!is_loopback_name("localhost.evil.example"));
    }

    #[test]
    fn origins_are_checked_against_the_host_and_the_allowed_list() {
        let allowed = vec!["https://cordon.example.com".to_string()];
        let check = |https, host: &str, origin: &[u8]| {
            check_origin(
                &allowed,
                https,
                host,
                &HeaderValue::from_bytes(origin).unwrap(),
            )
        };
        assert!(check(false, "127.0.0.1:7777", b"http://127.0.0.1:7777").is_ok());
        assert!(check(false, "LOCALHOST:1", b"http://localhost:1").is_ok());
        assert!(check(false, "127.0.0.1:7777", b"https://cordon.example.com").is_ok());
        assert!(check(false, "127.0.0.1:7777", b"https://127.0.0.1:7777").is_err());
        assert!(check(true, "127.0.0.1:7777", b"http://127.0.0.1:7777").is_err());
        assert!(check(false, "127.0.0.1:7777", b"http://evil.example").is_err());
        assert!(check(false, "127.0.0.1:7777", b"null").is_err());
        // Unknown is not allowed: no host to compare with, or an Origin that is not text.
        assert!(check(false, "", b"http://").is_err());
        let e = check(false, "127.0.0.1:7777", b"http://\xff").unwrap_err();
        assert!(e.message.contains("not valid text"), "{}", e.message);
    }
}
