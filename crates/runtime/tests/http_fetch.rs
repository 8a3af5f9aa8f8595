//! `http_fetch` against a real HTTP server on loopback: allowed host works, other hosts
//! are denied before any connection, redirects are followed by hand and each hop goes
//! through the guard.

mod common;

use std::sync::{Arc, Mutex};

use audit::EventKind;
use common::{Harness, SESSION, Setup};
use config::HostPattern;
use cordon_runtime::{AgentSecret, Integrity};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 server; records the request head of each request it receives.
async fn server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_one(sock, port, log.clone()));
        }
    });
    (port, seen)
}

/// The same server over TLS, with a leaf for `docs.test` and `plain.test` signed by a
/// fresh CA; returns the port, the request log and the CA certificate.
async fn tls_server() -> (u16, Arc<Mutex<Vec<String>>>, CertificateDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "http_fetch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["docs.test".into(), "plain.test".into()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(sock).await {
                    serve_one(tls, port, log).await;
                }
            });
        }
    });
    (port, seen, ca_cert.der().clone())
}

/// Answer one request on `sock`; the head is pushed to `log`.
async fn serve_one<S>(mut sock: S, port: u16, log: Arc<Mutex<Vec<String>>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let line = head.lines().next().unwrap_or("").to_string();
    log.lock().unwrap().push(head.clone());
    let path = line.split(' ').nth(1).unwrap_or("/");
    let (status, extra, content) = match path {
        "/hello" => ("200 OK", String::new(), "hello from loopback".to_string()),
        "/echo" => ("200 OK", String::new(), format!("got: {body}")),
        "/to-hello" => ("302 Found", "Location: /hello\r\n".into(), String::new()),
        "/to-evil" => (
            "302 Found",
            format!("Location: http://localhost:{port}/hello\r\n"),
            String::new(),
        ),
        "/loop" => ("302 Found", "Location: /loop\r\n".into(), String::new()),
        "/to-inside" => (
            "302 Found",
            format!("Location: http://inside.test:{port}/hello\r\n"),
            String::new(),
        ),
        "/big" => ("200 OK", String::new(), "x".repeat(600 * 1024)),
        _ => ("404 Not Found", String::new(), "no".into()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{content}",
        content.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
}

/// Request lines of what a server received.
fn lines(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| h.lines().next().unwrap_or("").to_string())
        .collect()
}

async fn harness() -> (Harness, u16, Arc<Mutex<Vec<String>>>) {
    let (port, seen) = server().await;
    let h = Harness::new(Setup {
        egress_allow: format!(r#"["127.0.0.1:{port}"]"#),
        ..Setup::default()
    });
    (h, port, seen)
}

#[tokio::test]
async fn fetch_from_an_allowed_loopback_server() {
    let (h, port, seen) = harness().await;
    let url = format!("http://127.0.0.1:{port}/hello");
    let (id, obs) = h.call("http_fetch", json!({"url": url})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(obs.content.starts_with("HTTP 200 OK"), "{}", obs.content);
    assert!(
        obs.content
            .contains("\nhello from loopback\n<</untrusted nonce="),
        "{}",
        obs.content
    );
    assert_eq!(obs.provenance.integrity, Integrity::Untrusted);
    assert_eq!(obs.provenance.source, format!("tool:http_fetch {url}"));
    let d = h.one(&id, EventKind::Decision);
    assert_eq!(d.data["decision"], "allow");
    assert_eq!(d.data["action"], format!("connect: GET {url}"));
    assert_eq!(d.data["action_kind"], "connect");
    let r = h.one(&id, EventKind::ToolResult);
    assert_eq!(r.data["status"]["http_status"], 200);
    // The runtime's record of the call, and the proxy's record of the request it let out.
    let egress: Vec<_> = h
        .records_of(&id)
        .into_iter()
        .filter(|r| r.kind == EventKind::Egress)
        .collect();
    assert!(
        egress
            .iter()
            .any(|r| r.data["call_id"] == id.as_str() && r.data["url"] == url),
        "{egress:#?}"
    );
    assert!(
        egress
            .iter()
            .any(|r| r.data["kind"] == "http" && r.data["decision"] == "allow"),
        "no proxy record: {egress:#?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    let (_, obs) = h
        .call("http_fetch", json!({"url": format!("http://127.0.0.1:{port}/echo"), "method": "POST", "body": "ping"}))
        .await;
    assert!(
        obs.content.contains("\ngot: ping\n<</untrusted nonce="),
        "{}",
        obs.content
    );
}

#[tokio::test]
async fn fetch_to_a_host_not_allowed_is_denied_before_connecting() {
    let (h, port, seen) = harness().await;
    // Same server, but reached by a name that is not in egress.allow.
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://localhost:{port}/hello")}),
        )
        .await;
    h.assert_refused(
        &id,
        &obs,
        &format!("http_fetch denied: no policy permits connect: egress.allow does not match localhost:{port}"),
    );
    assert_eq!(h.one(&id, EventKind::Decision).data["decision"], "deny");
    // Refused before anything was sent: the text is Cordon's, the session stays clean.
    assert_eq!(obs.provenance.integrity, Integrity::Trusted);
    assert!(!h.rt.session_labels(SESSION).is_tainted());
    // Right host, other port.
    let (id, obs) = h
        .call("http_fetch", json!({"url": "http://127.0.0.1:1/hello"}))
        .await;
    h.assert_refused(&id, &obs, "egress.allow does not match 127.0.0.1:1");
    assert!(seen.lock().unwrap().is_empty(), "the server was contacted");
    assert!(
        h.approver.asked.lock().unwrap().is_empty(),
        "egress denial must not ask"
    );
}

#[tokio::test]
async fn redirects_are_checked_hop_by_hop() {
    let (h, port, seen) = harness().await;
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://127.0.0.1:{port}/to-hello")}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(
        obs.content
            .contains("\nhello from loopback\n<</untrusted nonce=")
    );
    let decisions: Vec<_> = h
        .records_of(&id)
        .into_iter()
        .filter(|r| r.kind == EventKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[1].data["redirect"], true);
    assert_eq!(decisions[1].data["decision"], "allow");
    assert_eq!(
        obs.provenance.source,
        format!("tool:http_fetch http://127.0.0.1:{port}/hello")
    );

    seen.lock().unwrap().clear();
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://127.0.0.1:{port}/to-evil")}),
        )
        .await;
    h.assert_refused(&id, &obs, &format!("redirect to http://localhost:{port}/hello denied: no policy permits connect: egress.allow does not match localhost:{port}"));
    let decisions: Vec<_> = h
        .records_of(&id)
        .into_iter()
        .filter(|r| r.kind == EventKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[1].data["decision"], "deny");
    assert_eq!(decisions[1].data["redirect"], true);
    // Only the first hop reached the server.
    assert_eq!(lines(&seen), vec!["GET /to-evil HTTP/1.1".to_string()]);

    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://127.0.0.1:{port}/loop")}),
        )
        .await;
    h.assert_refused(&id, &obs, "more than 5 redirects");
}

#[tokio::test]
async fn large_bodies_are_cut_and_reported() {
    let (h, port, _) = harness().await;
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://127.0.0.1:{port}/big")}),
        )
        .await;
    assert!(!obs.is_error);
    assert!(obs.content.ends_with("[body cut at 524288 bytes]"));
    assert!(obs.content.len() < 530 * 1024);
    assert_eq!(h.one(&id, EventKind::ToolResult).data["truncated"], true);
}

#[tokio::test]
async fn forbidden_headers_are_refused() {
    let (h, port, seen) = harness().await;
    let (id, obs) = h
        .call("http_fetch", json!({"url": format!("http://127.0.0.1:{port}/hello"), "headers": {"Host": "evil.com"}}))
        .await;
    h.assert_refused(&id, &obs, "header `Host` is set by the runtime");
    assert!(seen.lock().unwrap().is_empty());
}

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The proxy's `egress` records of one call.
fn proxy_records(h: &Harness, id: &str) -> Vec<audit::Record> {
    h.records_of(id)
        .into_iter()
        .filter(|r| r.kind == EventKind::Egress && r.data.get("host").is_some())
        .collect()
}

#[tokio::test]
async fn a_name_resolving_to_an_internal_address_is_refused_by_the_proxy() {
    let (port, seen) = server().await;
    // Both names pass the guard (they are on the agent's allowlist), but resolve to
    // addresses outside the proxy's allow_ranges (127.0.0.1/32 only).
    for (host, ip) in [
        ("metadata.test", "169.254.169.254"),
        ("inside.test", "127.0.0.2"),
    ] {
        // A fresh session each: a failed fetch's text labels the session untrusted, and
        // the second host would then be a new host that asks.
        let h = Harness::new(Setup {
            egress_allow: format!(
                r#"["metadata.test:{port}", "inside.test:{port}", "127.0.0.1:{port}"]"#
            ),
            resolve: vec![
                ("metadata.test", "169.254.169.254".parse().unwrap()),
                ("inside.test", "127.0.0.2".parse().unwrap()),
            ],
            ..Setup::default()
        });
        let url = format!("http://{host}:{port}/hello");
        let (id, obs) = h.call("http_fetch", json!({"url": url})).await;
        assert_eq!(h.one(&id, EventKind::Decision).data["decision"], "allow");
        h.assert_refused(&id, &obs, "refused by the egress proxy (403 Forbidden)");
        assert!(
            obs.content.contains(&format!("{host} resolves to {ip}")),
            "{}",
            obs.content
        );
        assert!(obs.content.contains("SSRF guard"), "{}", obs.content);
        assert_eq!(obs.provenance.integrity, Integrity::Untrusted);
        let recs = proxy_records(&h, &id);
        assert!(
            recs.iter().any(|r| r.data["host"] == host
                && r.data["decision"] == "deny"
                && r.data["kind"] == "http"
                && r.data["reason"].as_str().unwrap().contains("SSRF guard")),
            "no egress deny record for {host}: {recs:#?}"
        );
    }
    assert!(lines(&seen).is_empty(), "the server was contacted");

    // A redirect there passes the guard (the name is allowed) but not the proxy.
    let h = Harness::new(Setup {
        egress_allow: format!(r#"["inside.test:{port}", "127.0.0.1:{port}"]"#),
        resolve: vec![("inside.test", "127.0.0.2".parse().unwrap())],
        ..Setup::default()
    });
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://127.0.0.1:{port}/to-inside")}),
        )
        .await;
    h.assert_refused(&id, &obs, "inside.test resolves to 127.0.0.2");
    let redirect = h
        .records_of(&id)
        .into_iter()
        .find(|r| r.kind == EventKind::Decision && r.data["redirect"] == true)
        .expect("the redirect went through the guard");
    assert_eq!(redirect.data["decision"], "allow");
    assert!(
        proxy_records(&h, &id)
            .iter()
            .any(|r| r.data["host"] == "inside.test" && r.data["decision"] == "deny")
    );
    assert_eq!(lines(&seen), vec!["GET /to-inside HTTP/1.1".to_string()]);
}

#[tokio::test]
async fn an_unreachable_upstream_is_reported_as_a_proxy_failure() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = Harness::new(Setup {
        egress_allow: format!(r#"["gone.test:{closed}"]"#),
        resolve: vec![("gone.test", LOOPBACK)],
        ..Setup::default()
    });
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("http://gone.test:{closed}/x")}),
        )
        .await;
    h.assert_refused(&id, &obs, "failed at the egress proxy (502 Bad Gateway)");
    assert!(obs.content.contains("gone.test"), "{}", obs.content);
}

/// A harness whose agent may use `DOCS_TOKEN`, bound to the TLS server as `docs.test`;
/// `other.test` (the plain server) and `plain.test` (the TLS server) are allowed too.
async fn credential_harness(
    secret: &str,
) -> (
    Harness,
    u16,
    Arc<Mutex<Vec<String>>>,
    u16,
    Arc<Mutex<Vec<String>>>,
) {
    let (tls_port, tls_seen, ca) = tls_server().await;
    let (port, seen) = server().await;
    let h = Harness::new(Setup {
        egress_allow: format!(
            r#"["docs.test:{tls_port}", "plain.test:{tls_port}", "other.test:{port}"]
secrets = ["DOCS_TOKEN"]"#
        ),
        resolve: vec![
            ("docs.test", LOOPBACK),
            ("plain.test", LOOPBACK),
            ("other.test", LOOPBACK),
        ],
        extra_roots: vec![ca],
        agent_secrets: vec![AgentSecret {
            name: "DOCS_TOKEN".into(),
            value: secret.into(),
            hosts: vec![HostPattern::parse(&format!("docs.test:{tls_port}")).unwrap()],
        }],
        secrets: vec![("DOCS_TOKEN".into(), secret.into())],
        ..Setup::default()
    });
    (h, tls_port, tls_seen, port, seen)
}

fn placeholder(h: &Harness) -> String {
    let all = h.rt.placeholders(SESSION).unwrap();
    let (_, ph) = all.iter().find(|(n, _)| n == "DOCS_TOKEN").unwrap();
    ph.clone()
}

#[tokio::test]
async fn https_to_a_bound_host_gets_the_real_credential() {
    let secret = "docs-secret-0123456789abcdef";
    let (h, tls_port, tls_seen, _, _) = credential_harness(secret).await;
    let ph = placeholder(&h);
    assert!(!ph.contains(secret));
    let url = format!("https://docs.test:{tls_port}/hello");
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": url, "headers": {"Authorization": format!("Bearer {ph}")}}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(obs.content.starts_with("HTTP 200 OK"), "{}", obs.content);
    assert!(
        obs.content
            .contains("\nhello from loopback\n<</untrusted nonce="),
        "{}",
        obs.content
    );
    assert_eq!(obs.provenance.source, format!("tool:http_fetch {url}"));
    // The server got the real value (over TLS), never the placeholder.
    let heads = tls_seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:#?}");
    assert!(heads[0].starts_with("GET /hello HTTP/1.1"), "{}", heads[0]);
    assert!(
        heads[0].contains(&format!("Bearer {secret}")),
        "{}",
        heads[0]
    );
    assert!(!heads[0].contains(&ph), "{}", heads[0]);
    // The proxy terminated TLS (it had a credential to inject) and recorded it.
    let recs = proxy_records(&h, &id);
    assert!(
        recs.iter()
            .any(|r| r.data["kind"] == "connect-terminated" && r.data["decision"] == "allow"),
        "{recs:#?}"
    );
    // Nothing of the real value reaches the model or the log.
    assert!(!obs.content.contains(secret));
    let log = serde_json::to_string(&h.records()).unwrap();
    assert!(!log.contains(secret), "the audit log holds the secret");
}

#[tokio::test]
async fn a_placeholder_sent_to_another_allowed_host_is_blocked() {
    let secret = "docs-secret-fedcba9876543210";
    let (h, _, tls_seen, port, seen) = credential_harness(secret).await;
    let ph = placeholder(&h);
    // In a header, and in a body: other.test is allowed, but the secret is not bound
    // to it.
    let attempts = [
        json!({"url": format!("http://other.test:{port}/echo"),
               "headers": {"Authorization": format!("Bearer {ph}")}}),
        json!({"url": format!("http://other.test:{port}/echo"), "method": "POST",
               "body": format!("token={ph}")}),
    ];
    // The guard sees the session's placeholder in the request: a use of DOCS_TOKEN
    // toward a host it is not bound to, denied before anything is sent (the proxy's own
    // placeholder check is tested in the egress crate and in cordon's e2e tests).
    for args in attempts {
        let (id, obs) = h.call("http_fetch", args).await;
        h.assert_refused(&id, &obs, "[rule secret.unbound_host]");
        assert!(obs.content.contains("DOCS_TOKEN"), "{}", obs.content);
        assert!(
            h.has(&id, EventKind::Alert),
            "no alert for the blocked placeholder: {:#?}",
            h.records_of(&id)
        );
    }
    assert!(
        lines(&seen).is_empty(),
        "other.test received: {:?}",
        lines(&seen)
    );
    assert!(tls_seen.lock().unwrap().is_empty());
    let log = serde_json::to_string(&h.records()).unwrap();
    assert!(!log.contains(secret), "the audit log holds the secret");
}

#[tokio::test]
async fn https_to_an_unbound_host_is_verified_end_to_end() {
    // plain.test has no credential: the proxy tunnels opaquely, and the fetch itself
    // verifies the server's certificate. Its CA is only known to the proxy, so the
    // handshake must fail: a tunnel never downgrades to unverified TLS.
    let (h, tls_port, tls_seen, _, _) = credential_harness("unused-secret-value-42").await;
    let (id, obs) = h
        .call(
            "http_fetch",
            json!({"url": format!("https://plain.test:{tls_port}/hello")}),
        )
        .await;
    h.assert_refused(&id, &obs, "TLS with plain.test failed");
    let recs = proxy_records(&h, &id);
    assert!(
        recs.iter()
            .any(|r| r.data["kind"] == "connect" && r.data["host"] == "plain.test"),
        "{recs:#?}"
    );
    assert!(
        tls_seen.lock().unwrap().is_empty(),
        "a request went through"
    );
}
