//! The proxy: accepts on a sandbox's listener, serves HTTP/1.1 forward-proxy requests
//! and `CONNECT`, decides each target, and records every decision.
//!
//! Guarantees: deny by default; the policy comes from the listener (or the caller of
//! [`Proxy::serve_connection`]), never from the request; every request and tunnel gets
//! an `Egress` audit record (and refused leaks an `Alert`) before anything is sent
//! upstream, and if the audit log cannot be written the request is refused. Limits on
//! concurrent connections and total bytes hold per policy across all its connections.
//!
//! Does not guarantee: inspection of opaque tunnels (HTTPS to hosts without bound
//! credentials): only their destination and byte counts are controlled.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use audit::Event;
use audit::event::{Egress, ProxyEgress};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};

use crate::EgressError;
use crate::ca::CertificateAuthority;
use crate::decision::{Verdict, connection_record};
use crate::forward::Upstream;
use crate::meter::{ConnBytes, Metered};
use crate::policy::{EgressPolicy, Usage};
use crate::resolve::{Resolve, SystemResolver};
use crate::splice;

pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Copy buffer of opaque tunnels: large, so bulk transfers cost few syscalls.
const TUNNEL_BUF: usize = 256 * 1024;

/// Process-wide proxy settings.
pub struct ProxyConfig {
    /// Static name → address answers, consulted before `resolver`.
    pub resolve: BTreeMap<String, IpAddr>,
    pub resolver: Arc<dyn Resolve>,
    /// Ranges exempt from the SSRF guard (and where IP literals are accepted).
    pub allow_ranges: Vec<IpNet>,
    /// Concurrent connections per policy (sandbox).
    pub max_connections: usize,
    /// Total bytes, both directions, per policy.
    pub max_bytes: u64,
    /// Largest request body the proxy buffers to scan and inject (larger: 413).
    pub max_request_body: usize,
    /// Extra trust anchors for upstream TLS, besides the webpki roots (tests).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            resolve: BTreeMap::new(),
            resolver: Arc::new(SystemResolver),
            allow_ranges: Vec::new(),
            max_connections: 64,
            max_bytes: 1 << 30,
            max_request_body: 16 << 20,
            extra_roots: Vec::new(),
        }
    }
}

impl ProxyConfig {
    /// From the validated `[egress]` section of `cordon.toml`.
    pub fn from_config(c: &config::GatewayEgressConfig) -> Result<ProxyConfig, EgressError> {
        let mut allow_ranges = Vec::new();
        for (i, raw) in c.allow_ranges.iter().enumerate() {
            let net = raw
                .parse::<IpNet>()
                .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    EgressError::Config(format!(
                        "egress.allow_ranges[{i}] = `{raw}` is not a CIDR (e.g. `10.0.0.0/24`)"
                    ))
                })?;
            allow_ranges.push(net);
        }
        let mut extra_roots = Vec::new();
        for (i, path) in c.upstream_ca_files.iter().enumerate() {
            let at = || format!("egress.upstream_ca_files[{i}] = `{}`", path.display());
            let pem = std::fs::read(path)
                .map_err(|e| EgressError::Config(format!("{}: cannot read: {e}", at())))?;
            let certs: Vec<CertificateDer<'static>> =
                rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        EgressError::Config(format!("{}: not PEM certificates: {e}", at()))
                    })?;
            if certs.is_empty() {
                return Err(EgressError::Config(format!(
                    "{}: contains no certificate",
                    at()
                )));
            }
            extra_roots.extend(certs);
        }
        Ok(ProxyConfig {
            extra_roots,
            // Keys as the decision looks them up: lower case, no trailing dot.
            resolve: c
                .resolve
                .iter()
                .map(|(k, v)| (crate::decision::normalise_host(k), *v))
                .collect(),
            allow_ranges,
            max_connections: usize::try_from(c.max_connections).unwrap_or(usize::MAX),
            max_bytes: c.max_mb.saturating_mul(1024 * 1024),
            ..ProxyConfig::default()
        })
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("resolve", &self.resolve)
            .field("allow_ranges", &self.allow_ranges)
            .field("max_connections", &self.max_connections)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// One per Cordon process, shared as `Arc<Proxy>`.
pub struct Proxy {
    pub(crate) cfg: ProxyConfig,
    pub(crate) ca: CertificateAuthority,
    audit: Arc<audit::Log>,
    pub(crate) tls_client: Arc<ClientConfig>,
}

/// Stops accepting and aborts every connection of the listener when dropped.
#[derive(Debug)]
pub struct ServeHandle {
    task: JoinHandle<()>,
    addr: SocketAddr,
}

impl ServeHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub fn new(
        cfg: ProxyConfig,
        ca: CertificateAuthority,
        audit: Arc<audit::Log>,
    ) -> Result<Arc<Proxy>, EgressError> {
        if cfg.max_connections == 0 {
            return Err(EgressError::Config(
                "max_connections is 0: no connection could ever be served".into(),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for (i, root) in cfg.extra_roots.iter().enumerate() {
            roots
                .add(root.clone())
                .map_err(|e| EgressError::Config(format!("extra_roots[{i}]: {e}")))?;
        }
        let mut tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| EgressError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Proxy {
            cfg,
            ca,
            audit,
            tls_client: Arc::new(tls),
        }))
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// Serve connections arriving on a listener that belongs to one sandbox. Must be
    /// called inside a tokio runtime.
    pub fn serve(
        self: &Arc<Self>,
        listener: std::net::TcpListener,
        policy: EgressPolicy,
    ) -> Result<ServeHandle, EgressError> {
        self.accept_loop(listener, policy, None)
    }

    /// As [`Proxy::serve`], for a listener on the host's own loopback, where any local
    /// process could connect: a connection is served only if its first request head
    /// carries `Proxy-Authorization: Basic` of `cordon:TOKEN` (what a client configured
    /// with that proxy user sends with each request and `CONNECT`); any other is closed
    /// unanswered. The header is never forwarded (it is a `Proxy-*` header).
    pub fn serve_authenticated(
        self: &Arc<Self>,
        listener: std::net::TcpListener,
        policy: EgressPolicy,
        token: &str,
    ) -> Result<ServeHandle, EgressError> {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("cordon:{token}"))
        );
        self.accept_loop(listener, policy, Some(Arc::new(expected)))
    }

    fn accept_loop(
        self: &Arc<Self>,
        listener: std::net::TcpListener,
        policy: EgressPolicy,
        credential: Option<Arc<String>>,
    ) -> Result<ServeHandle, EgressError> {
        let lerr = |action| move |source| EgressError::Listener { action, source };
        listener
            .set_nonblocking(true)
            .map_err(lerr("set non-blocking"))?;
        let addr = listener.local_addr().map_err(lerr("local_addr"))?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(lerr("register with tokio"))?;
        let policy = Arc::new(policy);
        let proxy = self.clone();
        let task = tokio::spawn(async move {
            // Owned here so aborting this task aborts every connection too.
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let (proxy, policy) = (proxy.clone(), policy.clone());
                        let credential = credential.clone();
                        conns.spawn(async move {
                            if let Some(expected) = credential
                                && !carries_credential(&stream, &expected).await
                            {
                                return;
                            }
                            proxy.serve_connection(stream, policy).await
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Ok(ServeHandle { task, addr })
    }

    /// Serve one already-accepted connection under `policy`.
    pub async fn serve_connection<S>(self: &Arc<Self>, mut io: S, policy: Arc<EgressPolicy>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let open = policy.usage.connections.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot(policy.usage.clone());
        if open > self.cfg.max_connections {
            let reason = format!(
                "connection limit of {} concurrent connections for this sandbox reached",
                self.cfg.max_connections
            );
            self.audit_event(
                &policy,
                Egress::Proxy(ProxyEgress {
                    reason: reason.clone(),
                    ..connection_record(&policy, "connection", "deny")
                }),
            );
            let body = format!("{reason}\n");
            let head = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = io.write_all(head.as_bytes()).await;
            let _ = io.write_all(body.as_bytes()).await;
            let _ = io.shutdown().await;
            drop(slot);
            return;
        }
        let bytes = Arc::new(ConnBytes::default());
        let io = Metered::new(io, policy.usage.clone(), bytes.clone(), self.cfg.max_bytes);
        let conn = Arc::new(Conn {
            proxy: self.clone(),
            policy,
            bytes,
            _slot: slot,
            upstream: tokio::sync::Mutex::new(None),
        });
        let svc = service_fn(move |req| {
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(conn.handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            // A client that stalls mid-headers loses its connection slot.
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(crate::proxy::HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades()
            .await;
    }

    /// Append an audit record (an alert is synced at once); false when the log could
    /// not take it. Callers that can still refuse do; the failure is reported either way
    /// (a record that cannot be represented has left an `error` record in the log).
    pub(crate) fn audit_event(&self, policy: &EgressPolicy, event: impl Into<Event>) -> bool {
        let event = event.into();
        let kind = event.kind();
        let res = if kind == audit::EventKind::Alert {
            self.audit.record_event(Some(&policy.session), event)
        } else {
            self.audit.append_event(Some(&policy.session), event)
        };
        match res {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    session = %policy.session,
                    "egress: the audit log did not take a `{kind}` record: {e}"
                );
                false
            }
        }
    }

    /// Connect to the first vetted address that answers.
    pub(crate) async fn dial(&self, v: &Verdict) -> Result<(TcpStream, SocketAddr), String> {
        let mut last = String::from("no address");
        for ip in &v.addresses {
            let addr = SocketAddr::new(*ip, v.port);
            match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, addr));
                }
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: timed out after {DIAL_TIMEOUT:?}"),
            }
        }
        Err(format!("could not connect to {}: {last}", v.host))
    }
}

/// One connection slot of a policy, released on drop.
struct Slot(Arc<Usage>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// State of one client connection (shared with its tunnel task, if any).
pub(crate) struct Conn {
    pub(crate) proxy: Arc<Proxy>,
    pub(crate) policy: Arc<EgressPolicy>,
    bytes: Arc<ConnBytes>,
    _slot: Slot,
    /// Plain-HTTP upstream kept alive across this connection's requests.
    pub(crate) upstream: tokio::sync::Mutex<Option<Arc<Upstream>>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let limit = self.bytes.limit_hit.load(Ordering::Relaxed);
        let reason = if limit {
            format!(
                "egress byte limit of {} bytes for this sandbox reached; connection closed",
                self.proxy.cfg.max_bytes
            )
        } else {
            "closed".to_string()
        };
        let decision = if limit { "limit" } else { "end" };
        self.proxy.audit_event(
            &self.policy,
            Egress::Proxy(ProxyEgress {
                reason,
                bytes_up: Some(self.bytes.up.load(Ordering::Relaxed)),
                bytes_down: Some(self.bytes.down.load(Ordering::Relaxed)),
                ..connection_record(&self.policy, "connection", decision)
            }),
        );
    }
}

/// A plain-text response the client can read.
pub(crate) fn text(status: StatusCode, reason: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{reason}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-cordon-egress",
        hyper::header::HeaderValue::from_static("refused"),
    );
    r
}

impl Conn {
    async fn handle(self: &Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Body> {
        if req.method() == Method::CONNECT {
            self.connect(req).await
        } else {
            self.forward_plain(req).await
        }
    }

    /// Refuse with an audit record, appended before the client hears (durable at the
    /// log's next sync; alerts are synced at once).
    pub(crate) fn refuse(&self, v: &Verdict, kind: &str, status: StatusCode) -> Response<Body> {
        self.proxy
            .audit_event(&self.policy, Egress::Proxy(v.record(&self.policy, kind)));
        text(status, &format!("cordon egress: {}", v.reason))
    }

    async fn connect(self: &Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let Some((host, port)) = req
            .uri()
            .authority()
            .and_then(|a| a.port_u16().map(|p| (a.host().to_string(), p)))
        else {
            return text(
                StatusCode::BAD_REQUEST,
                "cordon egress: CONNECT needs `host:port`",
            );
        };
        let v = self
            .proxy
            .decide(&self.policy, &host, port, "connect")
            .await;
        if !v.allowed {
            return self.refuse(&v, "connect", StatusCode::FORBIDDEN);
        }
        let (tcp, addr) = match self.proxy.dial(&v).await {
            Ok(x) => x,
            Err(e) => {
                let mut failed = v.clone();
                failed.reason = e;
                return self.refuse(&failed, "connect", StatusCode::BAD_GATEWAY);
            }
        };
        let terminate = self.policy.injects_for(&v.host, v.port);
        let kind = if terminate {
            "connect-terminated"
        } else {
            "connect"
        };
        let record = ProxyEgress {
            address: Some(addr.to_string()),
            ..v.record(&self.policy, kind)
        };
        if !self.proxy.audit_event(&self.policy, Egress::Proxy(record)) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "cordon egress: the audit log cannot be written; refusing",
            );
        }
        let conn = self.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            if terminate {
                conn.terminate(TokioIo::new(upgraded), tcp, addr, v).await;
            } else {
                tunnel(upgraded, tcp).await;
            }
        });
        Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
    }
}

/// An opaque tunnel: zero-copy between the sockets when the client side is a plain TCP
/// stream (connections from [`Proxy::serve`]), buffered copy otherwise.
async fn tunnel(upgraded: hyper::upgrade::Upgraded, mut tcp: TcpStream) {
    match upgraded.downcast::<TokioIo<Metered<TcpStream>>>() {
        Ok(parts) => {
            let (client, usage, conn, max_bytes) = parts.io.into_inner().into_parts();
            // Bytes the client sent right after its CONNECT (already counted).
            if !parts.read_buf.is_empty() && tcp.write_all(&parts.read_buf).await.is_err() {
                return;
            }
            let budget = splice::Budget {
                usage,
                conn,
                max_bytes,
            };
            splice::relay(&client, &tcp, &budget).await;
        }
        Err(upgraded) => {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut tcp,
                TUNNEL_BUF,
                TUNNEL_BUF,
            )
            .await;
        }
    }
}

/// Longest request head [`carries_credential`] looks through.
const MAX_AUTH_HEAD: usize = 16 << 10;
/// Time a client has to send its first request head.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the first request head on `stream` (peeked, not consumed) has a
/// `Proxy-Authorization` header equal to `expected`. Compared through SHA-256 digests,
/// so the time taken tells nothing about the token.
async fn carries_credential(stream: &TcpStream, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let mut buf = vec![0u8; MAX_AUTH_HEAD];
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let head = loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break &buf[..end];
        }
        if n == buf.len() || tokio::time::Instant::now() >= deadline {
            return false;
        }
        // `peek` returns at once while any byte waits; give the rest time to arrive.
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let want = Sha256::digest(expected.as_bytes());
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
        .any(|(_, value)| Sha256::digest(value.trim().as_bytes()) == want)
}
