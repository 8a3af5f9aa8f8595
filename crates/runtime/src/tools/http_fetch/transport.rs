//! The transport of `http_fetch`: HTTP(S) through the egress proxy, exactly as a sandboxed program's
//! traffic goes — the one outbound boundary.
//!
//! Each request opens an in-memory connection (`tokio::io::duplex`) to
//! [`egress::Proxy::serve_connection`] under the session's [`egress::EgressPolicy`]:
//! `http://` is sent in absolute form, `https://` as `CONNECT host:port` followed by TLS
//! inside the tunnel (trusting the webpki roots plus the proxy's CA, which signs the
//! leaf when the proxy terminates TLS to inject a bound credential).
//!
//! Guarantees: only `http`/`https` URLs; no direct socket is ever opened here, so the
//! proxy's allowlist, SSRF guard (addresses resolved once and vetted), credential
//! injection for bound hosts only, outbound leak blocking, limits and `Egress` audit
//! records apply to every hop; a proxy refusal becomes an error naming its reason.
//! Redirects are never followed implicitly — each hop (at most [`MAX_REDIRECTS`]) is
//! handed to the caller's check (the guard) before it is requested, and credential
//! headers are dropped when a redirect changes origin. The body is read up to
//! [`MAX_BODY`] bytes and the cut is reported; each request (head and body) has a
//! total deadline of [`TIMEOUT`].
//!
//! Not guaranteed: the content of opaque tunnels (HTTPS to hosts without bound
//! credentials) is verified by TLS against public roots only, not inspected. A
//! plain-HTTP server can imitate the proxy's refusal mark (`x-cordon-egress`) and so
//! have its text reported as a refusal; that text is still labelled untrusted.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::{HttpFetchArgs, Method};
use crate::tools::ToolOutput;

pub(crate) const MAX_REDIRECTS: usize = 5;
pub(crate) const MAX_BODY: usize = 512 << 10;
/// Total time for one request: connection, response head and body.
const TIMEOUT: Duration = Duration::from_secs(30);
/// In-memory pipe between the fetch and the proxy.
const DUPLEX_BUF: usize = 64 << 10;
/// Largest refusal text taken from the proxy.
const MAX_REASON: usize = 4 << 10;

/// Headers the model may not set (also any `Proxy-*` header).
const FORBIDDEN_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "keep-alive",
];
/// Headers dropped when a redirect leaves the original origin.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];
/// Set by the proxy on the responses it makes itself (refusals, upstream failures).
const PROXY_MARK: &str = "x-cordon-egress";

/// One request target, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub port: u16,
}

/// Parse and check a URL: http/https with a host.
pub(crate) fn target(raw: &str) -> Result<Target, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("`{raw}` is not a valid URL: {e}"))?;
    target_of(url)
}

fn target_of(url: reqwest::Url) -> Result<Target, String> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "only http:// and https:// URLs can be fetched, not `{url}`"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("URL `{url}` has no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("URL `{url}` has no port"))?;
    Ok(Target { url, host, port })
}

impl Target {
    fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The host without IPv6 brackets (as TLS and the proxy's policy name it).
    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// `host:port` as `CONNECT` names it (IPv6 literals keep their brackets).
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `Host` header: the port only when it is not the scheme's default.
    fn host_header(&self) -> String {
        match self.url.port() {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// Absolute form without the fragment (what a client sends to a forward proxy).
    fn absolute(&self) -> String {
        let mut url = self.url.clone();
        url.set_fragment(None);
        url.to_string()
    }

    /// Origin form: path and query.
    fn origin_form(&self) -> String {
        let mut s = self.url.path().to_string();
        if let Some(q) = self.url.query() {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

/// TLS settings for fetches: the public webpki roots plus the egress proxy's CA (which
/// signs the certificate the proxy presents when it terminates TLS to inject a bound
/// credential). HTTP/1.1 only.
pub(crate) fn tls_config(proxy_ca: &CertificateDer<'static>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
        .add(proxy_ca.clone())
        .map_err(|e| format!("the egress proxy's CA certificate is not usable: {e}"))?;
    let mut tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// Check the model's headers before anything is sent.
pub(crate) fn check_headers(args: &HttpFetchArgs) -> Result<(), String> {
    for (k, v) in args.headers.iter().flatten() {
        let lower = k.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(format!(
                "invalid arguments for http_fetch: header `{k}` is set by the runtime and may not be given"
            ));
        }
        HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            format!("invalid arguments for http_fetch: `{k}` is not a valid header name")
        })?;
        HeaderValue::from_str(v).map_err(|_| {
            format!("invalid arguments for http_fetch: the value of header `{k}` is not valid")
        })?;
    }
    if args.body.is_some() && args.method.unwrap_or(Method::Get) == Method::Get {
        return Err("invalid arguments for http_fetch: a body needs method POST".into());
    }
    Ok(())
}

/// The way out for one session's fetches: the proxy, the session's policy, and the TLS
/// settings from [`tls_config`].
pub(crate) struct Via<'a> {
    pub proxy: &'a Arc<egress::Proxy>,
    pub policy: Arc<egress::EgressPolicy>,
    pub tls: &'a Arc<ClientConfig>,
}

/// The outcome of a fetch: the output, and the final URL.
pub(crate) struct Fetched {
    pub output: ToolOutput,
    pub final_url: String,
}

/// What one request came back with.
enum Exchange {
    Redirect {
        status: StatusCode,
        location: String,
    },
    Done(Fetched),
}

/// Perform the request through the proxy, following redirects by hand. `check_hop` is
/// called for every redirect target before it is requested; an `Err` stops the fetch
/// with that message.
pub(crate) async fn fetch(
    via: &Via<'_>,
    args: &HttpFetchArgs,
    first: Target,
    check_hop: &mut (dyn FnMut(&Target, Method) -> Result<(), String> + Send),
) -> Result<Fetched, String> {
    let mut method = args.method.unwrap_or(Method::Get);
    let mut body = args.body.clone();
    let mut headers: Vec<(String, String)> = args
        .headers
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let origin = first.url.origin();
    let mut current = first;
    let mut hops = 0;
    loop {
        let once = exchange(via, &current, method, &headers, body.as_deref());
        let (status, location) = match tokio::time::timeout(TIMEOUT, once).await {
            Err(_) => {
                return Err(format!(
                    "http_fetch to {} timed out after {}s",
                    current.url,
                    TIMEOUT.as_secs()
                ));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Exchange::Done(fetched))) => return Ok(fetched),
            Ok(Ok(Exchange::Redirect { status, location })) => (status, location),
        };
        hops += 1;
        if hops > MAX_REDIRECTS {
            return Err(format!(
                "http_fetch stopped: more than {MAX_REDIRECTS} redirects (last at {})",
                current.url
            ));
        }
        let next = current
            .url
            .join(&location)
            .map_err(|e| {
                format!(
                    "redirect from {} to `{location}` is not a valid URL: {e}",
                    current.url
                )
            })
            .and_then(target_of)?;
        // 303, and 301/302 after POST, turn into GET without a body (as browsers do).
        if status.as_u16() == 303
            || (method == Method::Post && matches!(status.as_u16(), 301 | 302))
        {
            method = Method::Get;
            body = None;
        }
        if next.url.origin() != origin {
            headers.retain(|(k, _)| !CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str()));
        }
        check_hop(&next, method)?;
        current = next;
    }
}

/// One request and its response, over a fresh connection to the proxy.
async fn exchange(
    via: &Via<'_>,
    at: &Target,
    method: Method,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Exchange, String> {
    let mut tasks = Tasks::default();
    let mut sender = connect(via, at, &mut tasks).await?;
    let uri = if at.is_https() {
        at.origin_form()
    } else {
        at.absolute()
    };
    let mut req = Request::builder()
        .method(match method {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
        })
        .uri(uri)
        .header(hyper::header::HOST, at.host_header());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let body = Bytes::from(body.unwrap_or_default().to_string());
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("http_fetch to {}: cannot build the request: {e}", at.url))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| describe(at, "failed", &e))?;
    // Inside an opaque tunnel only the server speaks: a mark there is not the proxy's.
    let proxy_speaks = !at.is_https() || via.policy.injects_for(at.bare_host(), at.port);
    if proxy_speaks
        && resp
            .headers()
            .get(PROXY_MARK)
            .is_some_and(|v| v.as_bytes() == b"refused")
    {
        return Err(refusal(at, resp).await);
    }
    let status = resp.status();
    if status.is_redirection()
        && let Some(loc) = resp.headers().get(hyper::header::LOCATION)
    {
        let location = loc.to_str().map_err(|_| {
            format!(
                "redirect from {} has a Location header that is not text",
                at.url
            )
        })?;
        return Ok(Exchange::Redirect {
            status,
            location: location.to_string(),
        });
    }
    read_response(resp, at).await.map(Exchange::Done)
}

/// Open a connection to the proxy for `at`: plain for `http://`, a `CONNECT` tunnel
/// with TLS inside for `https://`.
async fn connect(
    via: &Via<'_>,
    at: &Target,
    tasks: &mut Tasks,
) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let (ours, theirs) = tokio::io::duplex(DUPLEX_BUF);
    let (proxy, policy) = (via.proxy.clone(), via.policy.clone());
    tasks.0.push(tokio::spawn(async move {
        proxy.serve_connection(theirs, policy).await
    }));
    if !at.is_https() {
        return handshake(ours, at, tasks).await;
    }
    let (mut sender, conn) = http1::handshake(TokioIo::new(ours))
        .await
        .map_err(|e| describe(at, "failed", &e))?;
    tasks.0.push(tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    }));
    let authority = at.authority();
    let req = Request::connect(authority.as_str())
        .header(hyper::header::HOST, authority.as_str())
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("http_fetch to {}: cannot build CONNECT: {e}", at.url))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| describe(at, "failed", &e))?;
    if resp.status() != StatusCode::OK {
        return Err(refusal(at, resp).await);
    }
    let upgraded = hyper::upgrade::on(resp)
        .await
        .map_err(|e| describe(at, "failed", &e))?;
    let name = ServerName::try_from(at.bare_host())
        .map_err(|e| {
            format!(
                "http_fetch to {}: `{}` is not a TLS server name: {e}",
                at.url, at.host
            )
        })?
        .to_owned();
    let tls = tokio_rustls::TlsConnector::from(via.tls.clone())
        .connect(name, TokioIo::new(upgraded))
        .await
        .map_err(|e| {
            format!(
                "http_fetch to {} failed: TLS with {} failed: {e}",
                at.url, at.host
            )
        })?;
    handshake(tls, at, tasks).await
}

async fn handshake<S>(
    io: S,
    at: &Target,
    tasks: &mut Tasks,
) -> Result<http1::SendRequest<Full<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| describe(at, "failed", &e))?;
    tasks.0.push(tokio::spawn(async move {
        let _ = conn.await;
    }));
    Ok(sender)
}

/// The connection tasks of one exchange; aborted when it ends, however it ends.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The proxy's own answer (refusal or upstream failure) as an error for the model.
async fn refusal(at: &Target, resp: Response<hyper::body::Incoming>) -> String {
    let status = resp.status();
    let text = match read_body(resp, MAX_REASON).await {
        Ok((b, _)) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(e) => e,
    };
    let reason = text.strip_prefix("cordon egress: ").unwrap_or(&text);
    let what = if status == StatusCode::FORBIDDEN {
        "refused by the egress proxy"
    } else {
        "failed at the egress proxy"
    };
    format!(
        "http_fetch to {} {what} ({} {}): {reason}",
        at.url,
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

/// Read a body up to `max` bytes; true when it was cut.
async fn read_body(
    resp: Response<hyper::body::Incoming>,
    max: usize,
) -> Result<(Vec<u8>, bool), String> {
    let mut incoming = resp.into_body();
    let mut body: Vec<u8> = Vec::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| format!("reading the response body failed: {e}"))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

async fn read_response(
    resp: Response<hyper::body::Incoming>,
    at: &Target,
) -> Result<Fetched, String> {
    let status = resp.status();
    let mut text = format!(
        "HTTP {} {}\nURL: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        at.url
    );
    for (k, v) in resp.headers() {
        let _ = writeln!(text, "{k}: {}", String::from_utf8_lossy(v.as_bytes()));
    }
    text.push('\n');
    let (body, cut) = read_body(resp, MAX_BODY)
        .await
        .map_err(|e| format!("http_fetch to {} failed: {e}", at.url))?;
    text.push_str(&String::from_utf8_lossy(&body));
    if cut {
        let _ = write!(text, "\n[body cut at {MAX_BODY} bytes]");
    }
    Ok(Fetched {
        output: ToolOutput {
            content: text,
            is_error: !status.is_success(),
            status: Some(serde_json::json!({ "http_status": status.as_u16() })),
            truncated: cut,
        },
        final_url: at.url.to_string(),
    })
}

fn describe(at: &Target, what: &str, e: &hyper::Error) -> String {
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let _ = write!(detail, ": {s}");
        src = s.source();
    }
    format!("http_fetch to {} {what}: {detail}", at.url)
}

/// Replace `${NAME}` and `$NAME` (for the agent's secrets only) in header values and the
/// body with the session's placeholders. The model never needs, and never sees, a real
/// value; the egress proxy injects it only for the secret's bound hosts.
pub(crate) fn expand_secret_refs(
    mut args: HttpFetchArgs,
    placeholders: &[(String, String)],
) -> HttpFetchArgs {
    let expand = |text: &str| {
        let mut out = text.to_string();
        // Longest names first, so `$TOKEN_2` is not taken for `$TOKEN` followed by `_2`.
        let mut sorted: Vec<&(String, String)> = placeholders.iter().collect();
        sorted.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        for (name, placeholder) in sorted {
            out = out.replace(&format!("${{{name}}}"), placeholder);
            let bare = format!("${name}");
            let mut result = String::with_capacity(out.len());
            let mut rest = out.as_str();
            while let Some(i) = rest.find(&bare) {
                let after = &rest[i + bare.len()..];
                let continues = after
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                result.push_str(&rest[..i]);
                result.push_str(if continues { &bare } else { placeholder });
                rest = after;
            }
            result.push_str(rest);
            out = result;
        }
        out
    };
    if let Some(headers) = args.headers.as_mut() {
        for value in headers.values_mut() {
            *value = expand(value);
        }
    }
    if let Some(body) = args.body.as_mut() {
        *body = expand(body);
    }
    args
}
