//! Real loopback servers (plain HTTP and TLS with its own test CA) and a proxy wired to
//! reach them by name.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use egress::{CertificateAuthority, EgressPolicy, Proxy, ProxyConfig, ServeHandle};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// Every request a test server received, as text: "METHOD PATH\nname: value\n...\n\nbody".
pub type Seen = Arc<Mutex<Vec<String>>>;

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Seen,
}

impl Upstream {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn all_seen(&self) -> String {
        self.seen.lock().unwrap().join("\n----\n")
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn echo(req: Request<hyper::body::Incoming>, seen: Seen) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut text = format!("{} {}\n", parts.method, parts.uri);
    for (k, v) in &parts.headers {
        text.push_str(&format!(
            "{}: {}\n",
            k,
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&body));
    seen.lock().unwrap().push(text.clone());
    match parts.uri.path() {
        "/big" => Response::new(Full::new(Bytes::from(vec![b'x'; 1 << 20]))),
        "/redirect" => Response::builder()
            .status(302)
            .header("location", "http://elsewhere.test/")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        _ => Response::new(Full::new(Bytes::from(text))),
    }
}

/// A plain HTTP echo server on 127.0.0.1.
pub async fn http_server() -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |r| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(echo(r, s).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Upstream { addr, seen }
}

/// A TLS echo server on 127.0.0.1 with a certificate for `names` from its own CA.
/// Returns the server and that CA (trust it via `extra_roots`).
pub async fn tls_server(names: &[&str]) -> (Upstream, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let (s, acceptor) = (s.clone(), acceptor.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |r| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(echo(r, s).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (Upstream { addr, seen }, ca_cert.der().clone())
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub log: Arc<audit::Log>,
    pub proxy: Arc<Proxy>,
    pub handle: ServeHandle,
}

impl Harness {
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.handle.local_addr())
    }

    /// A reqwest client through the proxy that trusts the Cordon CA (and nothing else
    /// beyond the webpki roots).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(self.proxy_url()).unwrap())
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.proxy.ca().ca_pem().as_bytes()).unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// All audit records so far.
    pub fn records(&self) -> Vec<audit::Record> {
        self.log.sync().unwrap();
        audit::read(self.log.dir()).unwrap()
    }

    pub fn audit_text(&self) -> String {
        self.records()
            .iter()
            .map(|r| format!("{:?} {}", r.kind, r.data))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Names every test server is reached by.
pub fn names(pairs: &[(&str, &str)]) -> BTreeMap<String, IpAddr> {
    pairs
        .iter()
        .map(|(n, ip)| (n.to_string(), ip.parse().unwrap()))
        .collect()
}

pub fn loopback_only() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.1/32".parse().unwrap()]
}

pub async fn start(cfg: ProxyConfig, policy: EgressPolicy) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(audit::Log::open(&dir.path().join("audit")).unwrap());
    let ca = CertificateAuthority::load_or_create(&dir.path().join("ca")).unwrap();
    let proxy = Proxy::new(cfg, ca, log.clone()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle = proxy.serve(listener, policy).unwrap();
    Harness {
        dir,
        log,
        proxy,
        handle,
    }
}

pub fn pat(s: &str) -> config::HostPattern {
    config::HostPattern::parse(s).unwrap()
}

/// Send raw bytes to the proxy and read the whole answer (the request should ask the
/// proxy to close).
pub async fn raw(proxy: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
