//! A client of a running gateway, through the same API as the web UI (`docs/api.md`):
//! the JSON calls ([`Client::call`]) and a session's WebSocket event stream
//! ([`EventStream`]). `cordon chat --remote` is its terminal presentation.
//!
//! Guarantees:
//! - The gateway's URL ([`GatewayUrl::parse`]) never carries the token: a URL with a user
//!   name, password, query or fragment is refused before anything is sent, and the URL's
//!   text is never echoed in an error (it may hold a token).
//! - The token is sent only as `Authorization: Bearer` (marked sensitive), only to the
//!   URL's host and port: over TLS ([`tls_config`]: the webpki roots, plus a given CA), or
//!   over plain HTTP only to a loopback address (`127.0.0.1`, `[::1]`, or `localhost`
//!   resolving only to loopback, and then to exactly those addresses:
//!   [`GatewayUrl::resolve`]). No proxy is used and no redirect followed.
//! - The WebSocket upgrade sends the gateway's own `Origin` (the URL's scheme and
//!   authority, which is also the `Host` sent).
//! - A stream that drops is reopened from the last event it delivered, so no event is
//!   missed or delivered twice ([`EventStream::next`]).
//!
//! Does not: pin the gateway's certificate (any certificate a trusted CA issued for the
//! name is accepted), keep anything on disk, or read the token (the caller does).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderValue, InvalidHeaderValue, ORIGIN};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::events::SessionEvent;

/// The environment variable a client reads the token from (named in errors).
pub const TOKEN_ENV: &str = "CORDON_TOKEN";
/// The gateway pings every 20 s; this much silence means the connection is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(60);
/// Attempts to reopen a dropped stream (about 30 s in all with the backoff).
const RECONNECT_ATTEMPTS: u32 = 15;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest event message accepted (a tool result is capped well below this).
const MAX_EVENT_BYTES: usize = 8 << 20;

const NEVER_IN_URL: &str = "the token is read from $CORDON_TOKEN or asked for, never taken \
                            from the URL (a URL ends up in shell history and logs)";

/// Why the client cannot go on. The messages are user-facing: what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "--remote: not a URL ({0}); give the gateway's address, e.g. \
         https://cordon.example:7777 or http://127.0.0.1:7777"
    )]
    NotAUrl(url::ParseError),
    #[error(
        "--remote: scheme `{0}` is not supported: use https://HOST[:PORT], or \
         http://127.0.0.1:PORT for a gateway on this machine"
    )]
    Scheme(String),
    #[error("--remote: the URL carries a user name or password; remove it: {NEVER_IN_URL}")]
    Credentials,
    #[error("--remote: the URL has a query (`?…`); remove it: {NEVER_IN_URL}")]
    Query,
    #[error("--remote: the URL has a fragment (`#…`); remove it")]
    Fragment,
    #[error("--remote: the URL has no host; e.g. https://cordon.example:7777")]
    NoHost,
    /// Plain HTTP to a host that is not (or does not resolve only to) loopback.
    #[error(
        "refusing plain http:// to {0}: it is not this machine, and the token would \
         cross the network unencrypted. Use https:// (serve with [gateway] tls_cert \
         and tls_key), or a tunnel: `ssh -L 7777:127.0.0.1:7777 HOST`, then \
         --remote http://127.0.0.1:7777"
    )]
    PlainHttp(String),
    #[error("--remote: cannot resolve {host}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--remote: {0} has no address")]
    NoAddress(String),
    #[error("--ca {path}: cannot read PEM certificates: {error}")]
    CaUnreadable {
        path: String,
        error: rustls_pki_types::pem::Error,
    },
    #[error("--ca {0}: no `BEGIN CERTIFICATE` block in the file")]
    CaEmpty(String),
    #[error("--ca {path}: not a usable CA certificate: {error}")]
    CaUnusable { path: String, error: rustls::Error },
    #[error("TLS setup")]
    Tls(#[source] rustls::Error),
    #[error("the token is not a valid header value")]
    TokenHeader(#[source] InvalidHeaderValue),
    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// 401: nothing with this token can work.
    #[error(
        "{doing}: the gateway refused the token ({failure}). It is unknown, expired or \
         revoked: create one on the gateway's host with `cordon token create --scope \
         operator` and put it in ${TOKEN_ENV}"
    )]
    TokenRefused { doing: String, failure: Failure },
    /// 403 naming the token's scope.
    #[error(
        "{doing}: refused ({failure}). Talking to an agent needs a token with the \
         `operator` scope (`cordon token create --scope operator`)"
    )]
    Scope { doing: String, failure: Failure },
    #[error("{doing}: refused ({failure})")]
    Forbidden { doing: String, failure: Failure },
    #[error("{doing}: {failure}")]
    Failed { doing: String, failure: Failure },
    #[error("cannot open the event stream: {0}")]
    StreamUnavailable(String),
    #[error(
        "the event stream of session {session} could not be reopened ({last}); the turn \
         may still be running on the gateway"
    )]
    StreamLost { session: String, last: String },
}

// ---------------------------------------------------------------------------------------
// The URL.

/// The gateway's base URL, checked: http(s), no credentials, no query, no fragment.
#[derive(Debug, Clone)]
pub struct GatewayUrl {
    tls: bool,
    /// As in the URL: a name, an IPv4 address or `[v6]`.
    host: String,
    port: u16,
    /// `host`, or `host:port` when the port is not the scheme's default: the `Host`
    /// header both clients send, so that `scheme://authority` is the gateway's own origin.
    authority: String,
    /// A path the gateway is mounted under (behind a reverse proxy); usually empty.
    prefix: String,
}

impl GatewayUrl {
    pub fn parse(text: &str) -> Result<GatewayUrl, RemoteError> {
        // The text itself is not echoed in errors: it may hold a token.
        let url = Url::parse(text.trim()).map_err(RemoteError::NotAUrl)?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(RemoteError::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RemoteError::Credentials);
        }
        if url.query().is_some() {
            return Err(RemoteError::Query);
        }
        if url.fragment().is_some() {
            return Err(RemoteError::Fragment);
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(RemoteError::NoHost);
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(GatewayUrl {
            tls,
            host: host.to_string(),
            port,
            authority,
            prefix: url.path().trim_end_matches('/').to_string(),
        })
    }

    /// `https://`: the token travels over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// `https://host:port`, what the WebSocket upgrade sends as `Origin`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }

    /// The URL of an API path (`/api/…`).
    pub fn http(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin(), self.prefix)
    }

    /// The WebSocket URL of an API path.
    pub fn ws(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}{path}", self.authority, self.prefix)
    }

    /// The host without IPv6 brackets.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The addresses to connect to. Plain HTTP only to loopback: the token would
    /// otherwise cross the network in clear.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, RemoteError> {
        let host = self.bare_host();
        let literal = host.parse::<IpAddr>().ok();
        let refuse = || RemoteError::PlainHttp(self.host.clone());
        if !self.tls {
            // `*.localhost` names are let through here; what they resolve to is checked
            // below.
            if !(config::is_loopback_host(host) || host.ends_with(".localhost")) {
                return Err(refuse());
            }
        }
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, self.port)],
            None => tokio::net::lookup_host((host, self.port))
                .await
                .map_err(|source| RemoteError::Resolve {
                    host: host.to_string(),
                    source,
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(RemoteError::NoAddress(host.to_string()));
        }
        if !self.tls && addrs.iter().any(|a| !a.ip().to_canonical().is_loopback()) {
            return Err(refuse());
        }
        Ok(addrs)
    }
}

/// The webpki roots, plus the certificates of `ca` (PEM).
pub fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, RemoteError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let shown = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|error| RemoteError::CaUnreadable {
                path: shown.clone(),
                error,
            })?;
        if certs.is_empty() {
            return Err(RemoteError::CaEmpty(shown));
        }
        for cert in certs {
            roots.add(cert).map_err(|error| RemoteError::CaUnusable {
                path: shown.clone(),
                error,
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(RemoteError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

// ---------------------------------------------------------------------------------------
// The JSON API.

/// The gateway's JSON API, with one token.
pub struct Client {
    http: reqwest::Client,
    url: GatewayUrl,
    addrs: Vec<SocketAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `Bearer cdn_…`, marked sensitive (never shown in debug output).
    bearer: HeaderValue,
}

/// A session as `GET /api/sessions/{id}` and `POST /api/sessions` describe it.
#[derive(Debug, Deserialize)]
pub struct Session {
    pub id: String,
    pub agent: String,
    #[serde(default)]
    pub labels: Value,
}

/// `GET /api/sessions/{id}`.
#[derive(Debug, Deserialize)]
pub struct SessionView {
    pub session: Session,
    #[serde(default)]
    pub items: Vec<Value>,
}

/// `POST /api/sessions/{id}/messages`: the `seq` of the turn's first event.
#[derive(Debug, Deserialize)]
pub struct Accepted {
    pub seq: u64,
}

/// A request the gateway did not answer with success.
#[derive(Debug)]
pub enum Failure {
    Refused {
        status: StatusCode,
        error: String,
        request_id: Option<String>,
    },
    Unreachable(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused {
                status,
                error,
                request_id,
            } => {
                write!(f, "{} {error}", status.as_u16())?;
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                Ok(())
            }
            Failure::Unreachable(why) => write!(f, "{why}"),
        }
    }
}

impl Failure {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Refused { status, .. } => Some(*status),
            Failure::Unreachable(_) => None,
        }
    }

    /// Nothing further can work: the token, its scope or the session is refused.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND)
        )
    }

    /// A user-facing error: what failed (`doing`), the gateway's reason, what to do.
    pub fn explain(self, doing: &str) -> RemoteError {
        let doing = doing.to_string();
        match self.status() {
            Some(StatusCode::UNAUTHORIZED) => RemoteError::TokenRefused {
                doing,
                failure: self,
            },
            Some(StatusCode::FORBIDDEN) if self.to_string().contains("scope") => {
                RemoteError::Scope {
                    doing,
                    failure: self,
                }
            }
            Some(StatusCode::FORBIDDEN) => RemoteError::Forbidden {
                doing,
                failure: self,
            },
            _ => RemoteError::Failed {
                doing,
                failure: self,
            },
        }
    }
}

impl Client {
    /// A client of the gateway at `url`, connecting only to `addrs` (from
    /// [`GatewayUrl::resolve`]), over TLS with `tls` when the URL is `https://`.
    pub fn new(
        url: GatewayUrl,
        addrs: Vec<SocketAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
        token: &str,
    ) -> Result<Client, RemoteError> {
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(RemoteError::TokenHeader)?;
        bearer.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(HTTP_TIMEOUT)
            .user_agent(concat!("cordon/", env!("CARGO_PKG_VERSION")));
        if url.bare_host().parse::<IpAddr>().is_err() {
            // Connect to the addresses checked above, not to a second lookup's.
            builder = builder.resolve_to_addrs(url.bare_host(), &addrs);
        }
        if let Some(tls) = &tls {
            builder = builder.use_preconfigured_tls((**tls).clone());
        }
        let http = builder.build().map_err(RemoteError::HttpClient)?;
        Ok(Client {
            http,
            url,
            addrs,
            tls,
            bearer,
        })
    }

    pub fn url(&self) -> &GatewayUrl {
        &self.url
    }

    /// One API call; the answer's JSON as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Failure> {
        let mut req = self
            .http
            .request(method, self.url.http(path))
            .header(AUTHORIZATION, self.bearer.clone());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("{}: {}", self.url.origin(), chain(&e))))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::Unreachable(format!("reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Unreachable(format!(
                "the gateway's answer to {path} is not what docs/api.md describes: {e}"
            ))
        })
    }

    /// `POST /api/sessions`: a new session with `agent`.
    pub async fn create_session(&self, agent: &str) -> Result<Session, RemoteError> {
        self.call(
            Method::POST,
            "/api/sessions",
            Some(json!({ "agent": agent })),
        )
        .await
        .map_err(|f| f.explain(&format!("cannot start a session with agent `{agent}`")))
    }
}

/// An error with its causes (reqwest's own message says only "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The gateway's `{error, request_id}` (or whatever body came instead).
fn refusal(status: StatusCode, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("").to_string()
            } else {
                text.chars().take(300).collect()
            }
        });
    let request_id = parsed.and_then(|v| v["request_id"].as_str().map(str::to_string));
    Failure::Refused {
        status,
        error,
        request_id,
    }
}

// ---------------------------------------------------------------------------------------
// The event stream.

#[derive(Deserialize)]
struct Envelope {
    seq: u64,
    kind: String,
    #[serde(default)]
    data: Value,
}

/// What happened to a stream that its reader may want to show; the stream goes on.
#[derive(Debug)]
pub enum StreamNotice {
    /// A message that is not an event envelope as documented.
    NotJson(String),
    /// An event of a known kind whose data does not parse.
    BadEvent {
        seq: u64,
        kind: String,
        error: String,
    },
    /// The connection dropped; it is being reopened after event `after`.
    Lost {
        why: String,
        after: u64,
    },
    Reopened,
}

impl fmt::Display for StreamNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamNotice::NotJson(e) => {
                write!(f, "skipped an event that is not JSON as documented: {e}")
            }
            StreamNotice::BadEvent { seq, kind, error } => {
                write!(f, "skipped event {seq} `{kind}`: {error}")
            }
            StreamNotice::Lost { why, after } => {
                write!(f, "event stream lost: {why}; reopening from event {after}")
            }
            StreamNotice::Reopened => write!(f, "event stream reopened"),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// `GET /api/sessions/{id}/stream?after=N`, reopened from the last event delivered when
/// it drops.
pub struct EventStream<'a> {
    client: &'a Client,
    session: String,
    after: u64,
    socket: Option<Socket>,
    notify: fn(&StreamNotice),
}

/// Why a stream could not be opened.
enum OpenError {
    /// The gateway answered the upgrade with a 4xx: retrying cannot help.
    Refused(RemoteError),
    Failed(String),
}

impl<'a> EventStream<'a> {
    /// The events of `session` after event `after`; `notify` is told what the stream
    /// skips and when it reconnects.
    pub async fn open(
        client: &'a Client,
        session: &str,
        after: u64,
        notify: fn(&StreamNotice),
    ) -> Result<EventStream<'a>, RemoteError> {
        let mut stream = EventStream {
            client,
            session: session.to_string(),
            after,
            socket: None,
            notify,
        };
        stream.socket = Some(match stream.connect().await {
            Ok(s) => s,
            Err(OpenError::Refused(e)) => return Err(e),
            Err(OpenError::Failed(why)) => return Err(RemoteError::StreamUnavailable(why)),
        });
        Ok(stream)
    }

    /// The next event after the last one returned, with its `seq`.
    pub async fn next(&mut self) -> Result<(u64, SessionEvent), RemoteError> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                self.reconnect().await?;
                continue;
            };
            let why = match tokio::time::timeout(STREAM_SILENCE, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let env: Envelope = match serde_json::from_str(&text) {
                        Ok(e) => e,
                        Err(e) => {
                            (self.notify)(&StreamNotice::NotJson(e.to_string()));
                            continue;
                        }
                    };
                    // A repeat would mean a gateway bug; delivering it twice would be ours.
                    if env.seq <= self.after {
                        continue;
                    }
                    self.after = env.seq;
                    match SessionEvent::from_parts(&env.kind, env.data) {
                        Ok(event) => return Ok((env.seq, event)),
                        Err(e) => {
                            (self.notify)(&StreamNotice::BadEvent {
                                seq: env.seq,
                                kind: env.kind,
                                error: e.to_string(),
                            });
                            continue;
                        }
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => match frame {
                    Some(f) if !f.reason.is_empty() => {
                        format!("the gateway closed it ({})", f.reason)
                    }
                    _ => "the gateway closed it".to_string(),
                },
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => e.to_string(),
                Ok(None) => "the connection ended".to_string(),
                Err(_) => format!("nothing received for {} s", STREAM_SILENCE.as_secs()),
            };
            self.socket = None;
            (self.notify)(&StreamNotice::Lost {
                why,
                after: self.after,
            });
        }
    }

    async fn reconnect(&mut self) -> Result<(), RemoteError> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for _ in 0..RECONNECT_ATTEMPTS {
            tokio::time::sleep(delay).await;
            match self.connect().await {
                Ok(socket) => {
                    self.socket = Some(socket);
                    (self.notify)(&StreamNotice::Reopened);
                    return Ok(());
                }
                Err(OpenError::Refused(e)) => return Err(e),
                Err(OpenError::Failed(why)) => last = why,
            }
            delay = (delay * 2).min(Duration::from_secs(3));
        }
        Err(RemoteError::StreamLost {
            session: self.session.clone(),
            last,
        })
    }

    async fn connect(&self) -> Result<Socket, OpenError> {
        let client = self.client;
        let path = format!("/api/sessions/{}/stream?after={}", self.session, self.after);
        let failed = |what: &str, e: &dyn fmt::Display| OpenError::Failed(format!("{what}: {e}"));
        let mut req = client
            .url
            .ws(&path)
            .into_client_request()
            .map_err(|e| failed("bad stream URL", &e))?;
        // `Host` is the URL's authority, so this is the gateway's own origin.
        let origin =
            HeaderValue::from_str(&client.url.origin()).map_err(|e| failed("bad origin", &e))?;
        req.headers_mut().insert(ORIGIN, origin);
        req.headers_mut()
            .insert(AUTHORIZATION, client.bearer.clone());

        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&client.addrs[..]),
        )
        .await
        .map_err(|_| OpenError::Failed(format!("{}: connect timed out", client.url.origin())))?
        .map_err(|e| failed(&client.url.origin(), &e))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &client.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name =
                    rustls_pki_types::ServerName::try_from(client.url.bare_host().to_string())
                        .map_err(|e| failed("TLS server name", &e))?;
                let conn = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| failed("TLS", &e))?;
                Box::new(conn)
            }
        };
        let config = WebSocketConfig::default().max_message_size(Some(MAX_EVENT_BYTES));
        let handshake = tokio_tungstenite::client_async_with_config(req, io, Some(config));
        match tokio::time::timeout(HTTP_TIMEOUT, handshake).await {
            Err(_) => Err(OpenError::Failed("the WebSocket upgrade timed out".into())),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status();
                let failure = refusal(status, resp.body().as_deref().unwrap_or_default());
                if status.is_client_error() {
                    Err(OpenError::Refused(
                        failure.explain("the gateway refused the event stream"),
                    ))
                } else {
                    Err(OpenError::Failed(failure.to_string()))
                }
            }
            Ok(Err(e)) => Err(failed("WebSocket upgrade", &e)),
        }
    }

    /// A polite close; the turn is over, so failures do not matter.
    pub async fn close(mut self) {
        if let Some(socket) = self.socket.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_secrets_or_other_schemes_are_refused_without_echoing_them() {
        for (url, says) in [
            ("http://127.0.0.1:7777/?token=cdn_SECRET", "query"),
            ("https://cordon.example/#cdn_SECRET", "fragment"),
            ("https://me:cdn_SECRET@cordon.example", "password"),
            ("ftp://cordon.example", "scheme `ftp`"),
            ("ws://127.0.0.1:7777", "scheme `ws`"),
        ] {
            let err = GatewayUrl::parse(url).err().unwrap().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("SECRET"), "{url}: {err}");
        }
    }

    #[test]
    fn origin_matches_the_host_header() {
        let u = GatewayUrl::parse("https://Cordon.Example:443/").unwrap();
        assert_eq!(u.origin(), "https://cordon.example");
        assert_eq!(u.ws("/api/x"), "wss://cordon.example/api/x");
        let u = GatewayUrl::parse("http://[::1]:7777/cordon/").unwrap();
        assert_eq!(u.origin(), "http://[::1]:7777");
        assert_eq!(u.http("/api/x"), "http://[::1]:7777/cordon/api/x");
        assert_eq!(u.bare_host(), "::1");
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        for ok in ["http://127.0.0.1:1", "http://[::1]:1", "http://127.0.0.2:1"] {
            let addrs = GatewayUrl::parse(ok).unwrap().resolve().await.unwrap();
            assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{ok}");
        }
        for bad in [
            "http://192.0.2.1:7777",
            "http://cordon.example:7777",
            "http://127.0.0.1.nip.io:7777",
            "http://[::ffff:10.0.0.1]:7777",
        ] {
            let err = GatewayUrl::parse(bad)
                .unwrap()
                .resolve()
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("refusing plain http://"), "{bad}: {err}");
        }
    }

    #[test]
    fn refusals_say_what_to_do_and_which_are_fatal() {
        let refused = |code: u16, error: &str| Failure::Refused {
            status: StatusCode::from_u16(code).unwrap(),
            error: error.to_string(),
            request_id: Some("r1".to_string()),
        };
        let f = refused(401, "unknown token");
        assert!(f.is_fatal());
        let msg = f.explain("cannot send").to_string();
        assert!(
            msg.starts_with(
                "cannot send: the gateway refused the token (401 unknown token (request id r1))"
            ),
            "{msg}"
        );
        assert!(msg.contains("$CORDON_TOKEN"), "{msg}");
        let msg = refused(403, "token scope read is below operator")
            .explain("x")
            .to_string();
        assert!(msg.contains("`operator` scope"), "{msg}");
        let msg = refused(403, "foreign origin").explain("x").to_string();
        assert_eq!(msg, "x: refused (403 foreign origin (request id r1))");
        assert!(refused(404, "no such session").is_fatal());
        let busy = refused(409, "a turn is running");
        assert!(!busy.is_fatal());
        assert_eq!(
            busy.explain("x").to_string(),
            "x: 409 a turn is running (request id r1)"
        );
        assert!(!Failure::Unreachable("down".into()).is_fatal());
    }

    #[test]
    fn a_refusal_without_json_keeps_the_body_or_the_reason() {
        let f = refusal(StatusCode::BAD_GATEWAY, b"  upstream down \n");
        assert_eq!(f.to_string(), "502 upstream down");
        let f = refusal(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(f.to_string(), "503 Service Unavailable");
        let f = refusal(
            StatusCode::FORBIDDEN,
            br#"{"error":"foreign origin","request_id":"abc"}"#,
        );
        assert_eq!(f.to_string(), "403 foreign origin (request id abc)");
    }
}
