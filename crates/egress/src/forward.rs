//! Forwarding one HTTP request upstream: hop-by-hop and `Proxy-*` headers stripped,
//! outbound leak scan, placeholder injection for bound hosts, no redirect following.
//!
//! Guarantees: the request line and `Host` are rebuilt from the vetted target (a client
//! `Host` header cannot redirect the request); a credential's real value is written
//! only into requests to hosts it is bound to; a request carrying a placeholder to
//! another host, or a real credential value (raw or encoded, as the
//! [`secrets::Redactor`] knows them) anywhere, is refused with 403 and an `Alert`.
//! Does not guarantee: scanning of bodies larger than `max_request_body` (refused
//! with 413 instead), nor of responses.

use std::net::SocketAddr;
use std::sync::Arc;

use audit::event::{Alert, CredentialAlert, Egress, ProxyEgress};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::decision::Verdict;
use crate::proxy::{Body, Conn, text};

/// One upstream HTTP/1.1 connection to a vetted address, redialled (same address,
/// never re-resolved) when the server closes it.
pub(crate) struct Upstream {
    host: String,
    addr: SocketAddr,
    tls: bool,
    sender: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
    first: std::sync::Mutex<Option<TcpStream>>,
}

impl Upstream {
    pub(crate) fn new(host: &str, addr: SocketAddr, tls: bool, first: Option<TcpStream>) -> Self {
        Upstream {
            host: host.to_string(),
            addr,
            tls,
            sender: tokio::sync::Mutex::new(None),
            first: std::sync::Mutex::new(first),
        }
    }

    async fn open(&self, conn: &Conn) -> Result<SendRequest<Full<Bytes>>, String> {
        let pre = self.first.lock().ok().and_then(|mut f| f.take());
        let tcp = match pre {
            Some(t) => t,
            None => {
                let t = TcpStream::connect(self.addr).await.map_err(|e| {
                    format!("could not connect to {} ({}): {e}", self.host, self.addr)
                })?;
                let _ = t.set_nodelay(true);
                t
            }
        };
        if self.tls {
            let name = ServerName::try_from(self.host.clone())
                .map_err(|e| format!("`{}` is not a valid TLS server name: {e}", self.host))?;
            let tls = TlsConnector::from(conn.proxy.tls_client.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS to {} ({}) failed: {e}", self.host, self.addr))?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }

    async fn send(
        &self,
        conn: &Conn,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        let mut slot = self.sender.lock().await;
        let reusable = match slot.as_mut() {
            Some(s) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            *slot = Some(self.open(conn).await?);
        }
        let Some(sender) = slot.as_mut() else {
            return Err("no upstream connection".into());
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("upstream {}: {e}", self.host))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("upstream {} ({}) failed: {e}", self.host, self.addr))
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake with upstream failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Headers that describe one hop, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy {
        headers.remove(n);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

impl Conn {
    /// An absolute-form request (`GET http://host/path`).
    pub(crate) async fn forward_plain(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Response<Body> {
        let uri = req.uri();
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "cordon egress: scheme `{other}` is not proxied in absolute form; use CONNECT for https"
                    ),
                );
            }
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "cordon egress: this is an egress proxy; send absolute-form requests \
                     (`GET http://host/path`) or `CONNECT host:port`",
                );
            }
        }
        let Some(host) = uri.host().map(str::to_string) else {
            return text(StatusCode::BAD_REQUEST, "cordon egress: URL has no host");
        };
        let port = uri.port_u16().unwrap_or(80);
        let v = self.proxy.decide(&self.policy, &host, port, "http").await;
        if !v.allowed {
            return self.refuse(&v, "http", StatusCode::FORBIDDEN);
        }
        let upstream = {
            let mut cur = self.upstream.lock().await;
            match cur.as_ref() {
                Some(u)
                    if u.host == v.host
                        && v.addresses.contains(&u.addr.ip())
                        && u.addr.port() == port =>
                {
                    u.clone()
                }
                _ => {
                    let Some(ip) = v.addresses.first() else {
                        return self.refuse(&v, "http", StatusCode::BAD_GATEWAY);
                    };
                    let u = Arc::new(Upstream::new(
                        &v.host,
                        SocketAddr::new(*ip, port),
                        false,
                        None,
                    ));
                    *cur = Some(u.clone());
                    u
                }
            }
        };
        self.forward(req, &v, &upstream, "http").await
    }

    /// Terminate the client's TLS with a leaf from the install CA and forward each
    /// request over verified TLS to the vetted address.
    pub(crate) async fn terminate<C>(
        self: Arc<Self>,
        client: C,
        tcp: TcpStream,
        addr: SocketAddr,
        v: Verdict,
    ) where
        C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let cfg = match self.proxy.ca.server_config(&v.host) {
            Ok(c) => c,
            Err(e) => {
                let mut failed = v.clone();
                failed.reason = e.to_string();
                self.refuse(&failed, "connect-terminated", StatusCode::BAD_GATEWAY);
                return;
            }
        };
        let Ok(tls) = TlsAcceptor::from(cfg).accept(client).await else {
            return;
        };
        let upstream = Arc::new(Upstream::new(&v.host, addr, true, Some(tcp)));
        let v = Arc::new(v);
        let conn = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let (conn, upstream, v) = (conn.clone(), upstream.clone(), v.clone());
            async move {
                Ok::<_, std::convert::Infallible>(conn.forward(req, &v, &upstream, "https").await)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            // A client that stalls mid-headers loses its connection slot.
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(crate::proxy::HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    }

    /// Scan, inject and send one request to the vetted target.
    async fn forward(
        &self,
        req: Request<hyper::body::Incoming>,
        v: &Verdict,
        upstream: &Upstream,
        scheme: &str,
    ) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let method = parts.method.to_string();
        let body = match Limited::new(body, self.proxy.cfg.max_request_body)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                let mut r = v.clone();
                r.allowed = false;
                r.reason = format!(
                    "request body refused ({e}); the proxy scans bodies up to {} bytes",
                    self.proxy.cfg.max_request_body
                );
                return self.refuse(&r, scheme, StatusCode::PAYLOAD_TOO_LARGE);
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        parts.headers.remove(header::CONTENT_LENGTH);
        let mut path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().as_bytes().to_vec())
            .unwrap_or_else(|| b"/".to_vec());
        let mut body = body;
        let mut injected: Vec<String> = Vec::new();

        if self.policy.inspects() {
            // Everything the proxy sends, for the scans.
            let mut seen = path.clone();
            seen.push(b'\n');
            for (k, val) in parts.headers.iter() {
                seen.extend_from_slice(k.as_str().as_bytes());
                seen.extend_from_slice(b": ");
                seen.extend_from_slice(val.as_bytes());
                seen.push(b'\n');
            }
            seen.extend_from_slice(&body);

            let leaked = self.policy.leaked(&seen);
            if !leaked.is_empty() {
                let reason = format!(
                    "request blocked: it contains the real value of credential(s) {}; tools \
                     must send the placeholder, which the proxy replaces for the hosts the \
                     credential is bound to",
                    leaked.join(", ")
                );
                return self.alert(v, scheme, &method, reason, leaked);
            }
            for c in self.policy.credentials() {
                if !contains(&seen, c.placeholder.as_bytes()) {
                    continue;
                }
                if !c.bound_to(&v.host, v.port) {
                    let reason = format!(
                        "request blocked: the placeholder of credential `{}` was sent to {}:{}, \
                         which it is not bound to",
                        c.name, v.host, v.port
                    );
                    return self.alert(v, scheme, &method, reason, vec![c.name.clone()]);
                }
                let (ph, val) = (c.placeholder.as_bytes(), c.value.expose_bytes());
                if contains(&path, ph) {
                    path = replace_all(&path, ph, val);
                }
                for value in parts.headers.values_mut() {
                    if contains(value.as_bytes(), ph) {
                        let new = replace_all(value.as_bytes(), ph, val);
                        match HeaderValue::from_bytes(&new) {
                            Ok(h) => *value = h,
                            Err(_) => {
                                let mut r = v.clone();
                                r.allowed = false;
                                r.reason = format!(
                                    "credential `{}` cannot be placed in a header (not a valid header value)",
                                    c.name
                                );
                                return self.refuse(&r, scheme, StatusCode::BAD_REQUEST);
                            }
                        }
                    }
                }
                if contains(&body, ph) {
                    body = Bytes::from(replace_all(&body, ph, val));
                }
                injected.push(c.name.clone());
            }
        }

        let uri = match Uri::try_from(path) {
            Ok(u) => u,
            Err(e) => {
                // Reachable when an injected value is not valid in a path: recorded.
                let mut r = v.clone();
                r.allowed = false;
                r.reason = format!(
                    "the request path is not valid after placeholder injection ({e}); send \
                     the credential in a header or the body instead"
                );
                return self.refuse(&r, scheme, StatusCode::BAD_REQUEST);
            }
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let host_header = match (v.host.contains(':'), v.port == default_port) {
            (true, true) => format!("[{}]", v.host),
            (true, false) => format!("[{}]:{}", v.host, v.port),
            (false, true) => v.host.clone(),
            (false, false) => format!("{}:{}", v.host, v.port),
        };
        let Ok(host_value) = HeaderValue::from_str(&host_header) else {
            return text(StatusCode::BAD_REQUEST, "cordon egress: bad host");
        };
        parts.headers.insert(header::HOST, host_value);
        parts.uri = uri;
        parts.version = hyper::Version::HTTP_11;
        let bytes_up = body.len();
        let out = Request::from_parts(parts, Full::new(body));

        let record = ProxyEgress {
            method: Some(method.clone()),
            address: Some(upstream.addr.to_string()),
            credentials: Some(injected),
            bytes_up: Some(bytes_up as u64),
            ..v.record(&self.policy, scheme)
        };
        if !self.proxy.audit_event(&self.policy, Egress::Proxy(record)) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "cordon egress: the audit log cannot be written; refusing",
            );
        }
        match upstream.send(self, out).await {
            Ok(resp) => {
                let (mut p, b) = resp.into_parts();
                strip_hop_by_hop(&mut p.headers);
                let done = ProxyEgress {
                    method: Some(method),
                    status: Some(p.status.as_u16()),
                    bytes_up: Some(bytes_up as u64),
                    ..v.record(&self.policy, format!("{scheme}-response"))
                };
                let body = Counted {
                    inner: b,
                    bytes: 0,
                    finish: Some((self.proxy.clone(), self.policy.clone(), done)),
                };
                Response::from_parts(p, body.boxed())
            }
            Err(e) => {
                let mut r = (*v).clone();
                r.reason = e;
                self.refuse(&r, scheme, StatusCode::BAD_GATEWAY)
            }
        }
    }

    fn alert(
        &self,
        v: &Verdict,
        scheme: &str,
        method: &str,
        reason: String,
        credentials: Vec<String>,
    ) -> Response<Body> {
        let mut r = v.clone();
        r.allowed = false;
        r.reason = reason;
        let alert = CredentialAlert {
            agent: self.policy.agent.clone(),
            session: self.policy.session.clone(),
            kind: scheme.to_string(),
            host: r.host.clone(),
            port: r.port,
            addresses: r.addresses.iter().map(ToString::to_string).collect(),
            decision: "deny".into(),
            reason: r.reason.clone(),
            method: method.to_string(),
            credentials,
        };
        self.proxy
            .audit_event(&self.policy, Alert::Credential(alert));
        self.refuse(&r, scheme, StatusCode::FORBIDDEN)
    }
}

/// A response body that counts what it delivers and records the total (an `Egress`
/// record of kind `*-response`) when the client is done with it.
struct Counted {
    inner: hyper::body::Incoming,
    bytes: u64,
    finish: Option<(Arc<crate::Proxy>, Arc<crate::EgressPolicy>, ProxyEgress)>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let res = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &res
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some((proxy, policy, mut record)) = self.finish.take() {
            record.bytes_down = Some(self.bytes);
            proxy.audit_event(&policy, Egress::Proxy(record));
        }
    }
}
