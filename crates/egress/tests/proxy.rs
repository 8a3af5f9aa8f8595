//! The proxy through real clients against real loopback servers.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use egress::{EgressPolicy, Lookup, ProxyConfig, Resolve};
use support::*;

const PH: &str = "CORDON_PLACEHOLDER_GH_TOKEN_7f3a";
const REAL: &str = "ghp_RealSecretValue0123456789";

fn creds(bound: &[&str]) -> Vec<(String, String, secrets::Secret, Vec<config::HostPattern>)> {
    vec![(
        "GH_TOKEN".to_string(),
        PH.to_string(),
        secrets::Secret::from(REAL),
        bound.iter().map(|b| pat(b)).collect(),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_works_over_http_and_connect() {
    let web = http_server().await;
    let (tls, test_ca) = tls_server(&["secure.test"]).await;
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1"), ("secure.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        extra_roots: vec![test_ca.clone()],
        ..ProxyConfig::default()
    };
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        vec![
            pat(&format!("api.test:{}", web.port())),
            pat(&format!("secure.test:{}", tls.port())),
        ],
    );
    let h = start(cfg, policy).await;

    let r = h
        .client()
        .get(format!("http://api.test:{}/hello?x=1", web.port()))
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("connection", "x-private")
        .header("x-private", "hop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("GET /hello?x=1\n"), "{body}");
    assert!(
        body.contains(&format!("host: api.test:{}", web.port())),
        "{body}"
    );
    assert!(
        !body.contains("proxy-authorization"),
        "Proxy-* stripped: {body}"
    );
    assert!(
        !body.contains("x-private"),
        "Connection-named header stripped: {body}"
    );

    // A spoofed Host header cannot redirect the request: it is rebuilt from the target.
    let resp = raw(
        h.handle.local_addr(),
        &format!(
            "GET http://api.test:{}/spoof HTTP/1.1\r\nhost: internal.test\r\nconnection: close\r\n\r\n",
            web.port()
        ),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains(&format!("host: api.test:{}", web.port())),
        "{resp}"
    );
    assert!(!resp.contains("internal.test"), "{resp}");

    // HTTPS without bound credentials: an opaque tunnel; the client verifies the real
    // server's certificate (test CA) end to end.
    let direct_trust = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(h.proxy_url()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_der(test_ca.as_ref()).unwrap())
        .build()
        .unwrap();
    let r = direct_trust
        .get(format!("https://secure.test:{}/tunnel", tls.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("GET /tunnel"));

    // Redirects are the client's business: the proxy hands back the 3xx.
    let r = h
        .client()
        .get(format!("http://api.test:{}/redirect", web.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(web.count(), 3, "the redirect target was not fetched");

    let audit = h.audit_text();
    assert!(audit.contains("\"decision\":\"allow\""), "{audit}");
    assert!(
        h.records().iter().any(|r| r.data["kind"] == "http-response"
            && r.data["status"] == 200
            && r.data["bytes_down"].as_u64().unwrap() > 40),
        "{audit}"
    );
    assert!(audit.contains("\"kind\":\"connect\""), "{audit}");
    assert!(audit.contains("\"address\":\"127.0.0.1:"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_unlisted_targets_are_refused_and_recorded() {
    let web = http_server().await;
    let p = web.port();
    let cfg = ProxyConfig {
        resolve: names(&[
            ("api.test", "127.0.0.1"),
            ("unlisted.test", "127.0.0.1"),
            ("internal.test", "10.0.0.5"),
            ("metadata.test", "169.254.169.254"),
            ("mapped.test", "::ffff:127.0.0.1"),
        ]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        [
            "api.test",
            "internal.test",
            "metadata.test",
            "mapped.test",
            "169.254.169.254",
            "10.1.2.3",
        ]
        .iter()
        .map(|n| pat(&format!("{n}:{p}")))
        .chain([pat("internal.test"), pat("169.254.169.254")])
        .collect(),
    );
    let h = start(cfg, policy).await;
    let c = h.client();

    let cases = [
        (
            format!("http://unlisted.test:{p}/"),
            "not on the egress allowlist",
        ),
        (
            format!("http://10.1.2.3:{p}/"),
            "IP literal 10.1.2.3 refused",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "IP literal 169.254.169.254",
        ),
        (format!("http://internal.test:{p}/"), "resolves to 10.0.0.5"),
        ("https://internal.test/".to_string(), "resolves to 10.0.0.5"),
        (
            format!("http://metadata.test:{p}/"),
            "169.254.169.254, link-local",
        ),
        (format!("http://mapped.test:{p}/"), "IPv4-mapped"),
    ];
    for (url, why) in &cases {
        match c.get(url).send().await {
            Ok(r) => {
                assert_eq!(r.status(), 403, "{url}");
                let body = r.text().await.unwrap();
                assert!(body.contains(why), "{url}: {body}");
            }
            // CONNECT refusals surface as a client error carrying no body.
            Err(e) => assert!(url.starts_with("https"), "{url}: {e}"),
        }
    }
    // An IPv4-mapped literal of loopback, sent raw.
    let resp = raw(
        h.handle.local_addr(),
        &format!(
            "GET http://[::ffff:127.0.0.1]:{p}/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(
        resp.contains("IP literal ::ffff:127.0.0.1 refused"),
        "{resp}"
    );
    let resp = raw(
        h.handle.local_addr(),
        &format!(
            "CONNECT mapped.test:{p} HTTP/1.1\r\nhost: mapped.test:{p}\r\nconnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");

    assert_eq!(web.count(), 0, "no refused request reached the server");
    let denies = h
        .records()
        .into_iter()
        .filter(|r| r.kind == audit::EventKind::Egress && r.data["decision"] == "deny")
        .count();
    assert_eq!(denies, cases.len() + 2, "{}", h.audit_text());
    assert!(h.audit_text().contains("SSRF guard"));

    // The same decision without connecting, for `cordon egress test`.
    let policy = EgressPolicy::new("coder", "s1", vec![pat("internal.test")]);
    let v = h.proxy.check(&policy, "https://internal.test/x").await;
    assert!(!v.allowed);
    assert_eq!(v.addresses, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
    let v = h.proxy.check(&policy, "internal.test:8080").await;
    assert!(
        !v.allowed && v.reason.contains("not on the egress allowlist"),
        "{v:?}"
    );
}

/// Answers from a list, one per call, then repeats the last: a DNS rebinding double.
struct Rebinding {
    answers: Vec<IpAddr>,
    calls: AtomicUsize,
}

impl Resolve for Rebinding {
    fn lookup<'a>(&'a self, _host: &'a str, _port: u16) -> Lookup<'a> {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        let ip = self.answers[i.min(self.answers.len() - 1)];
        Box::pin(async move { Ok(vec![ip]) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_cannot_change_the_dialled_address() {
    let web = http_server().await;
    let p = web.port();
    for (answers, expect_ok) in [
        // Vetted answer is the server; a second lookup would give an internal address.
        (vec!["127.0.0.1", "10.0.0.5"], true),
        // Vetted answer is internal; a second lookup would give the reachable server.
        (vec!["10.0.0.5", "127.0.0.1"], false),
    ] {
        let resolver = Arc::new(Rebinding {
            answers: answers.iter().map(|a| a.parse().unwrap()).collect(),
            calls: AtomicUsize::new(0),
        });
        let cfg = ProxyConfig {
            resolver: resolver.clone(),
            allow_ranges: loopback_only(),
            ..ProxyConfig::default()
        };
        let h = start(
            cfg,
            EgressPolicy::new("a", "s", vec![pat(&format!("rebind.test:{p}"))]),
        )
        .await;
        let before = web.count();
        let r = h
            .client()
            .get(format!("http://rebind.test:{p}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resolver.calls.load(Ordering::SeqCst),
            1,
            "resolved exactly once"
        );
        if expect_ok {
            assert_eq!(r.status(), 200);
            assert_eq!(web.count(), before + 1);
        } else {
            assert_eq!(r.status(), 403);
            assert!(r.text().await.unwrap().contains("10.0.0.5"));
            assert_eq!(web.count(), before, "server never reached");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_is_injected_over_plain_http_only_for_the_bound_host() {
    let web = http_server().await;
    let other = http_server().await;
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1"), ("other.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let api = format!("api.test:{}", web.port());
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        vec![pat(&api), pat(&format!("other.test:{}", other.port()))],
    )
    .with_credentials(&creds(&[&api]));
    let h = start(cfg, policy).await;
    let c = h.client();

    let r = c
        .post(format!("http://{api}/repos"))
        .header("authorization", format!("Bearer {PH}"))
        .body(format!("{{\"token\":\"{PH}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = web.all_seen();
    assert!(
        seen.contains(&format!("authorization: Bearer {REAL}")),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("{{\"token\":\"{REAL}\"}}")),
        "{seen}"
    );
    assert!(!seen.contains(PH), "{seen}");

    // The same placeholder to another allowed host: blocked, alerted, nothing arrives.
    let r = c
        .get(format!("http://other.test:{}/steal", other.port()))
        .header("x-api-key", PH)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not bound to"));
    assert_eq!(other.count(), 0);

    // The real value itself, raw in a body or base64 in a header, even to the bound host.
    let r = c
        .post(format!("http://{api}/exfil"))
        .body(format!("leak={REAL}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("real value of credential(s) GH_TOKEN")
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(REAL);
    let r = c
        .get(format!("http://other.test:{}/b64", other.port()))
        .header("x-data", b64)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(other.count(), 0);
    assert_eq!(web.count(), 1, "only the legitimate request arrived");

    let records = h.records();
    let alerts: Vec<_> = records
        .iter()
        .filter(|r| r.kind == audit::EventKind::Alert)
        .collect();
    assert_eq!(alerts.len(), 3, "{}", h.audit_text());
    assert!(
        records
            .iter()
            .any(|r| r.data["credentials"] == serde_json::json!(["GH_TOKEN"])
                && r.data["decision"] == "allow")
    );
    // The file itself (records() synced it), not a parse of it: the check cannot pass
    // on an empty or misnamed file.
    let raw_log = std::fs::read_to_string(h.log.dir().join(audit::LOG_FILE)).unwrap();
    assert!(raw_log.contains("GH_TOKEN"), "the log names the credential");
    assert!(
        !raw_log.contains(REAL),
        "the audit log never holds the value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_is_injected_over_https_by_terminating_only_bound_hosts() {
    let (tls, test_ca) = tls_server(&["secure.test", "plain-tls.test"]).await;
    let cfg = ProxyConfig {
        resolve: names(&[
            ("secure.test", "127.0.0.1"),
            ("plain-tls.test", "127.0.0.1"),
        ]),
        allow_ranges: loopback_only(),
        extra_roots: vec![test_ca],
        ..ProxyConfig::default()
    };
    let bound = format!("secure.test:{}", tls.port());
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        vec![pat(&bound), pat(&format!("plain-tls.test:{}", tls.port()))],
    )
    .with_credentials(&creds(&[&bound]));
    let h = start(cfg, policy).await;

    // The client trusts only the Cordon CA (plus public roots): it can talk to the
    // bound host only because the proxy terminates TLS there.
    let r = h
        .client()
        .get(format!("https://{bound}/user"))
        .header("authorization", format!("token {PH}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = tls.all_seen();
    assert!(
        seen.contains(&format!("authorization: token {REAL}")),
        "{seen}"
    );
    assert!(!seen.contains(PH));

    // A host without bound credentials stays an opaque tunnel: the Cordon CA is not
    // used, so a client trusting only the Cordon CA fails the real server's certificate.
    let err = h
        .client()
        .get(format!("https://plain-tls.test:{}/", tls.port()))
        .send()
        .await;
    assert!(err.is_err(), "tunnel must not be terminated: {err:?}");
    assert_eq!(tls.count(), 1);

    let audit = h.audit_text();
    assert!(audit.contains("connect-terminated"), "{audit}");
    assert!(audit.contains("\"kind\":\"https\""), "{audit}");
    assert!(!audit.contains(REAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificate_is_verified_when_terminating() {
    // The upstream's CA is NOT in extra_roots: the proxy must refuse to forward.
    let (tls, _unused_ca) = tls_server(&["secure.test"]).await;
    let cfg = ProxyConfig {
        resolve: names(&[("secure.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let bound = format!("secure.test:{}", tls.port());
    let policy =
        EgressPolicy::new("coder", "s1", vec![pat(&bound)]).with_credentials(&creds(&[&bound]));
    let h = start(cfg, policy).await;
    let r = h
        .client()
        .get(format!("https://{bound}/user"))
        .header("authorization", format!("token {PH}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("TLS"));
    assert_eq!(
        tls.count(),
        0,
        "the credential never reached an unverified server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_byte_limits_hold() {
    let web = http_server().await;
    let p = web.port();
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        max_connections: 2,
        max_bytes: 256 * 1024,
        ..ProxyConfig::default()
    };
    let h = start(
        cfg,
        EgressPolicy::new("a", "s", vec![pat(&format!("api.test:{p}"))]),
    )
    .await;

    // Two connections held open, the third refused.
    let held1 = tokio::net::TcpStream::connect(h.handle.local_addr())
        .await
        .unwrap();
    let held2 = tokio::net::TcpStream::connect(h.handle.local_addr())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let resp = raw(h.handle.local_addr(), "").await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("connection limit of 2"), "{resp}");
    drop((held1, held2));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // A 1 MiB download exceeds the 256 KiB budget: cut off.
    let r = h
        .client()
        .get(format!("http://api.test:{p}/big"))
        .send()
        .await;
    let got = match r {
        Ok(r) => r.bytes().await.map(|b| b.len()).unwrap_or(0),
        Err(_) => 0,
    };
    assert!(got < 1 << 20, "download must be cut off, got {got} bytes");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // And the budget is spent: the next request is refused too.
    let r = h
        .client()
        .get(format!("http://api.test:{p}/small"))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().status() != 200);
    let audit = h.audit_text();
    assert!(audit.contains("connection limit of 2"), "{audit}");
    assert!(audit.contains("byte limit of 262144 bytes"), "{audit}");
}

/// A TCP server that sends `n` bytes to each connection, then closes.
async fn source(n: usize) -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = s.write_all(&vec![b'z'; n]).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// CONNECT through the proxy and read everything the tunnel yields.
async fn through_tunnel(proxy: std::net::SocketAddr, target: &str) -> (String, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read_exact(&mut b).await.is_err() {
            break;
        }
        head.push(b[0]);
    }
    let mut body = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut body)).await;
    (String::from_utf8_lossy(&head).into_owned(), body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tunnels_are_counted_and_cut_at_the_byte_limit() {
    let small = source(10_000).await;
    let large = source(4 << 20).await;
    let cfg = ProxyConfig {
        resolve: names(&[("src.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        max_bytes: 1 << 20,
        ..ProxyConfig::default()
    };
    let policy = EgressPolicy::new(
        "a",
        "s",
        vec![
            pat(&format!("src.test:{}", small.port())),
            pat(&format!("src.test:{}", large.port())),
        ],
    );
    let h = start(cfg, policy).await;
    let (head, n) =
        through_tunnel(h.handle.local_addr(), &format!("src.test:{}", small.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(n, 10_000, "a tunnel under the limit delivers everything");
    let (head, n) =
        through_tunnel(h.handle.local_addr(), &format!("src.test:{}", large.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        n < 1 << 20,
        "4 MiB through a 1 MiB budget must be cut, got {n}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let records = h.records();
    let ends: Vec<_> = records
        .iter()
        .filter(|r| r.data["kind"] == "connection")
        .collect();
    assert!(
        ends.iter().any(
            |r| r.data["decision"] == "end" && r.data["bytes_down"].as_u64().unwrap() >= 10_000
        ),
        "{}",
        h.audit_text()
    );
    assert!(
        ends.iter().any(|r| r.data["decision"] == "limit"),
        "{}",
        h.audit_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_ca_persists_and_a_reloaded_ca_issues_leaves_clients_trust() {
    use std::os::unix::fs::PermissionsExt;
    let (tls, test_ca) = tls_server(&["secure.test"]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let first = egress::CertificateAuthority::load_or_create(&ca_dir).unwrap();
    let mode = std::fs::metadata(ca_dir.join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "CA key must be private");
    let trusted_pem = first.ca_pem().to_string();
    drop(first);

    // A restarted process reloads the same CA; clients keep trusting the stored ca.pem.
    let reloaded = egress::CertificateAuthority::load_or_create(&ca_dir).unwrap();
    assert_eq!(reloaded.ca_pem(), trusted_pem);
    let log = Arc::new(audit::Log::open(&dir.path().join("audit")).unwrap());
    let cfg = ProxyConfig {
        resolve: names(&[("secure.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        extra_roots: vec![test_ca],
        ..ProxyConfig::default()
    };
    let proxy = egress::Proxy::new(cfg, reloaded, log).unwrap();
    let bound = format!("secure.test:{}", tls.port());
    let policy = EgressPolicy::new("a", "s", vec![pat(&bound)]).with_credentials(&creds(&[&bound]));
    let handle = proxy
        .serve(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), policy)
        .unwrap();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", handle.local_addr())).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(trusted_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://{bound}/"))
        .header("authorization", PH)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(tls.all_seen().contains(REAL));

    // Half a CA is an error that says what to do, never a silent new CA.
    std::fs::remove_file(ca_dir.join("ca.pem")).unwrap();
    let err = egress::CertificateAuthority::load_or_create(&ca_dir).unwrap_err();
    assert!(err.to_string().contains("found only one of"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_connection_over_an_in_process_pipe_applies_the_same_policy() {
    use http_body_util::{BodyExt, Empty};
    let web = http_server().await;
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1"), ("internal.test", "10.0.0.5")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let api = format!("api.test:{}", web.port());
    let h = start(cfg, EgressPolicy::new("x", "y", vec![])).await;
    let policy = Arc::new(EgressPolicy::new(
        "fetch",
        "s2",
        vec![pat(&api), pat("internal.test")],
    ));
    for (url, status) in [
        (format!("http://{api}/via-duplex"), 200),
        ("http://internal.test/".to_string(), 403),
    ] {
        let (client_io, proxy_io) = tokio::io::duplex(64 * 1024);
        let proxy = h.proxy.clone();
        let p = policy.clone();
        tokio::spawn(async move { proxy.serve_connection(proxy_io, p).await });
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
            hyper_util::rt::TokioIo::new(client_io),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(&url).body(Empty::new()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), status, "{url}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if status == 200 {
            assert!(String::from_utf8_lossy(&body).starts_with("GET /via-duplex"));
        }
    }
    assert_eq!(web.count(), 1);
    assert!(h.audit_text().contains("\"session\":\"s2\""));
}

#[test]
fn proxy_config_comes_from_the_egress_section() {
    let mut c = config::GatewayEgressConfig {
        allow_ranges: vec!["10.0.0.0/24".into(), "192.168.1.7".into()],
        max_mb: 2,
        ..Default::default()
    };
    let p = ProxyConfig::from_config(&c).unwrap();
    assert_eq!(p.allow_ranges.len(), 2);
    assert!(p.allow_ranges[1].contains(&"192.168.1.7".parse::<IpAddr>().unwrap()));
    assert_eq!(p.max_bytes, 2 * 1024 * 1024);
    c.resolve
        .insert("Mirror.Internal.".into(), "10.0.0.5".parse().unwrap());
    let p = ProxyConfig::from_config(&c).unwrap();
    assert!(p.resolve.contains_key("mirror.internal"));
    c.allow_ranges = vec!["10.0.0.0/99".into()];
    let err = ProxyConfig::from_config(&c).unwrap_err().to_string();
    assert!(err.contains("egress.allow_ranges[0]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_placeholders_are_injected_for_their_hosts_only() {
    let web = http_server().await;
    let other = http_server().await;
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1"), ("other.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let api = format!("api.test:{}", web.port());
    let mut set = secrets::PlaceholderSet::new();
    let ph = set
        .insert(
            "OPENAI_KEY",
            secrets::Secret::new("sk-vaultvalue-ABCDEF123456".into()),
            vec![pat(&api)],
        )
        .unwrap();
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        vec![pat(&api), pat(&format!("other.test:{}", other.port()))],
    )
    .with_credentials(&set);
    let h = start(cfg, policy).await;
    let c = h.client();
    let r = c
        .get(format!("http://{api}/v1/models"))
        .header("authorization", format!("Bearer {}", ph.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(web.all_seen().contains("Bearer sk-vaultvalue-ABCDEF123456"));
    let r = c
        .get(format!("http://other.test:{}/", other.port()))
        .header("authorization", format!("Bearer {}", ph.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(other.count(), 0);
    assert!(
        h.records()
            .iter()
            .any(|r| r.kind == audit::EventKind::Alert)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_secrets_are_blocked_without_credentials_and_upstream_failure_is_502() {
    let web = http_server().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1"), ("down.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        vec![
            pat(&format!("api.test:{}", web.port())),
            pat(&format!("down.test:{closed}")),
        ],
    )
    .with_watched_secrets(vec![("DB_PASSWORD".into(), "hunter2-but-longer".into())]);
    let h = start(cfg, policy).await;
    let c = h.client();
    let r = c
        .post(format!("http://api.test:{}/paste", web.port()))
        .body("dump: hunter2-but-longer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("DB_PASSWORD"));
    assert_eq!(web.count(), 0);
    let r = c
        .get(format!("http://down.test:{closed}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("could not connect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_cannot_go_in_a_path_is_refused_and_recorded() {
    let web = http_server().await;
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let api = format!("api.test:{}", web.port());
    // A space is fine in a header but not in a request path.
    let spaced: Vec<(String, String, secrets::Secret, Vec<config::HostPattern>)> = vec![(
        "SPACED".to_string(),
        PH.to_string(),
        secrets::Secret::from("has a space inside"),
        vec![pat(&api)],
    )];
    let policy = EgressPolicy::new("coder", "s1", vec![pat(&api)]).with_credentials(&spaced);
    let h = start(cfg, policy).await;

    let r = h
        .client()
        .get(format!("http://{api}/q?key={PH}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("placeholder injection"));
    assert_eq!(web.count(), 0, "nothing reached the server");
    let denied = h
        .records()
        .into_iter()
        .filter(|r| r.data["decision"] == "deny" && r.data["kind"] == "http")
        .count();
    assert_eq!(denied, 1, "{}", h.audit_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tunnels_share_one_byte_budget() {
    let large = source(4 << 20).await;
    let cfg = ProxyConfig {
        resolve: names(&[("src.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        max_bytes: 1 << 20,
        ..ProxyConfig::default()
    };
    let target = format!("src.test:{}", large.port());
    let h = start(cfg, EgressPolicy::new("a", "s", vec![pat(&target)])).await;
    let addr = h.handle.local_addr();
    // Six tunnels at once, each offered 4 MiB: together they may not pass 1 MiB.
    let tunnels: Vec<_> = (0..6)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { through_tunnel(addr, &target).await })
        })
        .collect();
    let (mut total, mut opened) = (0, 0);
    for t in tunnels {
        // A tunnel that starts after the budget is spent is cut before its 200.
        let (head, n) = t.await.unwrap();
        opened += usize::from(head.starts_with("HTTP/1.1 200"));
        total += n;
    }
    assert!(opened > 0 && total > 0, "the tunnels carried data");
    assert!(
        total <= 1 << 20,
        "six tunnels together went past the 1 MiB budget: {total} bytes"
    );
}

/// A gate in the style of the runtime's taint rule: only hosts already contacted pass.
struct OnlyContacted {
    contacted: std::sync::Mutex<Vec<String>>,
    asked: AtomicUsize,
}

impl egress::ConnectGate for OnlyContacted {
    fn admit(&self, host: &str, _port: u16, kind: &str) -> Result<(), String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.contacted.lock().unwrap().iter().any(|h| h == host) {
            Ok(())
        } else {
            Err(format!(
                "session is untrusted-tainted and has not contacted {host} ({kind})"
            ))
        }
    }
    fn contacted(&self, host: &str) {
        let mut c = self.contacted.lock().unwrap();
        if !c.iter().any(|h| h == host) {
            c.push(host.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_gate_refuses_allowlisted_hosts_it_does_not_admit_and_is_told_of_contacts() {
    let web = http_server().await;
    let p = web.port();
    let cfg = ProxyConfig {
        resolve: names(&[("docs.test", "127.0.0.1"), ("leak.docs.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let gate = Arc::new(OnlyContacted {
        contacted: std::sync::Mutex::new(vec!["docs.test".into()]),
        asked: AtomicUsize::new(0),
    });
    let policy = EgressPolicy::new(
        "coder",
        "s1",
        vec![
            pat(&format!("*.docs.test:{p}")),
            pat(&format!("docs.test:{p}")),
        ],
    )
    .with_gate(gate.clone());
    let h = start(cfg, policy).await;
    let c = h.client();
    // Allowlisted and admitted.
    let r = c
        .get(format!("http://docs.test:{p}/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Allowlisted (wildcard) but not admitted: refused before any connection, over
    // plain HTTP and over CONNECT.
    let r = c
        .get(format!("http://leak.docs.test:{p}/x?d=secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("untrusted-tainted"));
    let resp = raw(
        h.handle.local_addr(),
        &format!("CONNECT leak.docs.test:{p} HTTP/1.1\r\nhost: leak.docs.test:{p}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(
        !web.all_seen().contains("/x?d=secret"),
        "nothing reached the server"
    );
    assert_eq!(web.count(), 1);
    assert_eq!(gate.asked.load(Ordering::SeqCst), 3);
    let audit = h.audit_text();
    assert!(
        audit.contains("has not contacted leak.docs.test (http)"),
        "{audit}"
    );
    assert!(
        audit.contains("has not contacted leak.docs.test (connect)"),
        "{audit}"
    );
    // Not on the allowlist: the gate is not even asked.
    let r = c.get("http://other.test/").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(gate.asked.load(Ordering::SeqCst), 3);
    // The admitted host was reported as contacted exactly once.
    assert_eq!(
        *gate.contacted.lock().unwrap(),
        vec!["docs.test".to_string()]
    );
}

/// A listener on the host's loopback (an HTTP MCP server's): only a client that sends
/// the start's proxy token is served; any other local process is closed unanswered,
/// also one that sends a wrong token or none, and nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_listener_serves_only_its_token() {
    let web = http_server().await;
    let cfg = ProxyConfig {
        resolve: names(&[("api.test", "127.0.0.1")]),
        allow_ranges: loopback_only(),
        ..ProxyConfig::default()
    };
    let api = format!("api.test:{}", web.port());
    let h = start(cfg, EgressPolicy::new("x", "y", vec![])).await;
    let policy = EgressPolicy::new("mcp", "mcp:remote", vec![pat(&api)]);
    let handle = h
        .proxy
        .serve_authenticated(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            policy,
            "s3cret-token",
        )
        .unwrap();
    let client = |proxy: reqwest::Proxy| reqwest::Client::builder().proxy(proxy).build().unwrap();
    let at = format!("http://{}", handle.local_addr());
    let url = format!("http://{api}/hello");
    for proxy in [
        reqwest::Proxy::all(&at).unwrap(),
        reqwest::Proxy::all(&at)
            .unwrap()
            .basic_auth("cordon", "wrong"),
        reqwest::Proxy::all(&at)
            .unwrap()
            .basic_auth("someone", "s3cret-token"),
    ] {
        let r = client(proxy).get(&url).send().await;
        assert!(r.is_err(), "served without the token: {r:?}");
    }
    assert_eq!(web.count(), 0, "nothing reached the upstream");
    let ok = client(
        reqwest::Proxy::all(&at)
            .unwrap()
            .basic_auth("cordon", "s3cret-token"),
    )
    .get(&url)
    .send()
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(web.count(), 1);
    assert!(
        !web.all_seen()
            .to_lowercase()
            .contains("proxy-authorization"),
        "the token is not forwarded: {}",
        web.all_seen()
    );
}
