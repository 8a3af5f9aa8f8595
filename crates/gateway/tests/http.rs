//! The gateway over real sockets with a real HTTP client: every protection is attacked
//! and the attack must fail (and, where promised, be recorded).

use std::net::SocketAddr;
use std::sync::Arc;

use cordon_gateway::layers::SECURITY_HEADERS;
use cordon_gateway::{Gateway, GatewayError, GatewayOptions, TokenScope};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use time::Duration;

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<store::Store>,
    audit: Arc<audit::Log>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    http: reqwest::Client,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn config(dir: &std::path::Path, gateway: &str) -> Arc<config::Config> {
    let text = format!(
        "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         [agents.default]\nworkspace = \"{}\"\n[gateway]\n{gateway}\n",
        dir.join("ws").display()
    );
    Arc::new(config::load_str(&text, &dir.join("cordon.toml")).expect("config"))
}

struct Env {
    dir: tempfile::TempDir,
    store: Arc<store::Store>,
    audit: Arc<audit::Log>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store::Store::open(&dir.path().join("cordon.db")).unwrap());
    let audit = Arc::new(audit::Log::open(&dir.path().join("audit")).unwrap());
    Env { dir, store, audit }
}

fn token(env_store: &store::Store, audit: &audit::Log, scope: TokenScope) -> String {
    cordon_gateway::token::create(env_store, audit, "test", scope, Duration::days(1), "test")
        .unwrap()
        .token
        .expose()
        .to_string()
}

async fn bind(e: &Env, gateway: &str) -> Result<Gateway, GatewayError> {
    Gateway::bind(GatewayOptions {
        config: config(e.dir.path(), gateway),
        store: e.store.clone(),
        audit: e.audit.clone(),
        bind: None,
        state_dir: e.dir.path().to_path_buf(),
        skills_lock: std::path::PathBuf::from("/nonexistent/skills.lock"),
        agents: None,
        channels: Vec::new(),
        hook_secrets: Default::default(),
    })
    .await
}

async fn start_with(e: Env, gateway: &str, http: reqwest::Client) -> Harness {
    let g = bind(&e, gateway).await.expect("bind");
    let url = g.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(g.serve(async move {
        let _ = rx.await;
    }));
    Harness {
        _dir: e.dir,
        store: e.store,
        audit: e.audit,
        url,
        stop: Some(tx),
        http,
    }
}

async fn start(gateway: &str) -> Harness {
    start_with(
        env(),
        &format!("bind = \"127.0.0.1:0\"\n{gateway}"),
        reqwest::Client::new(),
    )
    .await
}

impl Harness {
    fn token(&self, scope: TokenScope) -> String {
        token(&self.store, &self.audit, scope)
    }
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url))
    }
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url))
    }
    async fn login(&self, token: &str) -> reqwest::Response {
        self.post("/api/login")
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap()
    }
}

/// Every security header is present; an error body is `{error, request_id}` matching
/// the `X-Request-Id` header.
async fn check_envelope(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let headers: HeaderMap = r.headers().clone();
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            headers.get(*name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{name} on a {status} response"
        );
    }
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_string();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(body["request_id"], id, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    (status, body)
}

fn set_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_string()
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn unauthenticated_calls_are_401_with_json_errors() {
    let h = start("").await;
    for path in ["/api/status", "/api/whoami", "/api/tokens"] {
        let r = h.get(path).send().await.unwrap();
        let (status, body) = check_envelope(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let r = h.post("/api/logout").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A wrong token in the header is 401 too, and so is a malformed header.
    let r = h
        .get("/api/status")
        .bearer_auth("cdn_notatoken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = h
        .get("/api/status")
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_needs_no_auth_and_status_needs_read() {
    let h = start("").await;
    let (s, b) = check_envelope(h.get("/healthz").send().await.unwrap()).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, b) = check_envelope(h.get("/readyz").send().await.unwrap()).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));
    let read = h.token(TokenScope::Read);
    let r = h
        .get("/api/status")
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let (s, b) = check_envelope(r).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["agents"], json!(["default"]));
    assert_eq!(b["tls"], false);
    let r = h
        .get("/api/whoami")
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["scope"].as_str(), b["via"].as_str()),
        (Some("read"), Some("bearer"))
    );
}

#[tokio::test]
async fn scopes_are_enforced() {
    let h = start("").await;
    let admin = h.token(TokenScope::Admin);
    let victim = cordon_gateway::token::create(
        &h.store,
        &h.audit,
        "victim",
        TokenScope::Operator,
        Duration::days(1),
        "test",
    )
    .unwrap();
    for scope in [TokenScope::Read, TokenScope::Approver, TokenScope::Operator] {
        let t = h.token(scope);
        let r = h.get("/api/tokens").bearer_auth(&t).send().await.unwrap();
        let (s, b) = check_envelope(r).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scope}: {b}");
        assert!(b["error"].as_str().unwrap().contains("admin"), "{b}");
        let r = h
            .post(&format!("/api/tokens/{}/revoke", victim.record.id))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert!(
        cordon_gateway::token::verify(&h.store, victim.token.expose())
            .unwrap()
            .is_some()
    );
    let r = h
        .get("/api/tokens")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(victim.token.expose()),
        "token listed in clear"
    );
    assert!(!text.contains(&cordon_gateway::token::hash(victim.token.expose())));
    let r = h
        .post(&format!("/api/tokens/{}/revoke", victim.record.id))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = h
        .get("/api/status")
        .bearer_auth(victim.token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revoked_and_expired_tokens_fail_for_bearer_and_session() {
    let h = start("").await;
    let t = cordon_gateway::token::create(
        &h.store,
        &h.audit,
        "x",
        TokenScope::Operator,
        Duration::days(1),
        "test",
    )
    .unwrap();
    let login = h.login(t.token.expose()).await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = cookie_pair(&set_cookie(&login));
    let r = h
        .get("/api/whoami")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    cordon_gateway::token::revoke(&h.store, &h.audit, &t.record.id, "test").unwrap();
    let r = h
        .get("/api/status")
        .bearer_auth(t.token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The session dies with its token.
    let r = h
        .get("/api/whoami")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.login(t.token.expose()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let expired = "cdn_an-expired-token-stored-directly-0000000000000";
    h.store
        .create_token(&store::NewToken {
            name: "old".into(),
            scope: TokenScope::Admin,
            hash: cordon_gateway::token::hash(expired),
            expires_at: time::OffsetDateTime::now_utc() - Duration::seconds(1),
        })
        .unwrap();
    let r = h
        .get("/api/status")
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.login(expired).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_state_changes_need_csrf() {
    let h = start("").await;
    let admin = h.token(TokenScope::Admin);
    let login = h.login(&admin).await;
    assert_eq!(login.status(), StatusCode::OK);
    let sc = set_cookie(&login);
    let attrs: Vec<String> = sc
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attrs[0].starts_with("cordon_session="), "{sc}");
    for want in ["httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing in {sc}");
    }
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "Secure without TLS: {sc}"
    );
    assert!(attrs.iter().any(|a| a.starts_with("max-age=")), "{sc}");
    assert!(!sc.contains(&admin), "token in the cookie");
    let body: Value = login.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let cookie = cookie_pair(&sc);

    // whoami hands the CSRF token back to the same-origin UI.
    let r = h
        .get("/api/whoami")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["via"].as_str(), b["csrf_token"].as_str()),
        (Some("session"), Some(csrf.as_str()))
    );
    // A wrong Authorization header is not rescued by a valid cookie.
    let r = h
        .get("/api/whoami")
        .header("cookie", &cookie)
        .bearer_auth("cdn_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let victim = cordon_gateway::token::create(
        &h.store,
        &h.audit,
        "victim",
        TokenScope::Read,
        Duration::days(1),
        "test",
    )
    .unwrap();
    let revoke = format!("/api/tokens/{}/revoke", victim.record.id);
    // A cross-site form post rides on the cookie but has no CSRF token.
    for attempt in [
        h.post(&revoke).header("cookie", &cookie),
        h.post(&revoke)
            .header("cookie", &cookie)
            .header("x-csrf-token", "guess"),
        h.post(&revoke)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("origin", "https://evil.example"),
        h.post(&revoke)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("sec-fetch-site", "cross-site"),
        h.post("/api/logout").header("cookie", &cookie),
    ] {
        let (s, b) = check_envelope(attempt.send().await.unwrap()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    }
    assert!(
        cordon_gateway::token::verify(&h.store, victim.token.expose())
            .unwrap()
            .is_some()
    );
    // Same origin with the token works.
    let own = h.url.clone();
    let r = h
        .post(&revoke)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        cordon_gateway::token::verify(&h.store, victim.token.expose())
            .unwrap()
            .is_none()
    );
    // Logout ends the session and clears the cookie.
    let r = h
        .post("/api/logout")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(&r).contains("Max-Age=0"));
    let r = h
        .get("/api/whoami")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cross_site_login_is_refused() {
    let h = start("").await;
    let t = h.token(TokenScope::Read);
    let r = h
        .post("/api/login")
        .header("origin", "http://evil.example")
        .json(&json!({ "token": t }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    // A form login from the same origin works.
    let r = h
        .post("/api/login")
        .header("origin", &h.url)
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn foreign_host_names_are_refused_on_loopback() {
    let h = start("").await;
    let t = h.token(TokenScope::Read);
    // DNS rebinding: evil.example resolves to 127.0.0.1; the browser sends its name.
    let r = h
        .get("/api/status")
        .header("host", "evil.example:7777")
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let (s, b) = check_envelope(r).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let r = h
        .get("/healthz")
        .header("host", "localhost:7777")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn url_parameters_change_nothing_and_leak_nothing() {
    let h = start("").await;
    let t = h.token(TokenScope::Admin);
    for q in [
        format!("?token={t}"),
        format!("?access_token={t}"),
        format!("?auth={t}&gatewayUrl=ws://evil.example:1"),
    ] {
        let r = h.get(&format!("/api/whoami{q}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{q}");
        let r = h
            .post(&format!("/api/login{q}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("set-cookie").is_none(), "{q}");
        assert!(r.status().is_client_error(), "{q}");
    }
    // With a valid header the parameters are ignored, not reflected.
    let read = h.token(TokenScope::Read);
    let r = h
        .get("/api/whoami?gatewayUrl=http://evil.example&token=cdn_other")
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("\"read\""), "{text}");
    assert!(
        !text.contains("evil.example") && !text.contains("cdn_"),
        "{text}"
    );
    // The UI page is the same bytes whatever the URL says.
    let plain = h.get("/").send().await.unwrap().text().await.unwrap();
    let r = h
        .get("/?gatewayUrl=http://evil.example&token=cdn_other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), plain);
    assert!(!plain.contains("evil.example"));
}

#[tokio::test]
async fn every_response_has_the_security_headers() {
    let h = start("").await;
    let cases = [
        h.get("/healthz"),
        h.get("/nope"),
        h.get("/api/status"),
        h.get("/api/login"),
        h.post("/api/login")
            .header("content-type", "application/json")
            .body(vec![b'a'; 200 * 1024]),
        h.post("/api/login").body("token=x"),
        h.post("/api/login").header("origin", "http://evil.example"),
    ];
    let mut statuses = Vec::new();
    for c in cases {
        let (s, _) = check_envelope(c.send().await.unwrap()).await;
        statuses.push(s.as_u16());
    }
    assert_eq!(statuses, [200, 404, 401, 405, 413, 415, 403]);
}

#[tokio::test]
async fn a_login_burst_locks_out_that_address_only_and_is_an_alert() {
    let e = env();
    let h = start_with(
        e,
        "bind = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
        reqwest::Client::new(),
    )
    .await;
    let good = h.token(TokenScope::Operator);
    let attacker = "198.51.100.7";
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = h
            .post("/api/login")
            .header("x-forwarded-for", attacker)
            .json(&json!({ "token": format!("cdn_wrong{i}") }))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().get("retry-after").is_some());
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429; 10]);
    // Locked out even with the right token.
    let r = h
        .post("/api/login")
        .header("x-forwarded-for", attacker)
        .json(&json!({ "token": good }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address still logs in.
    let r = h
        .post("/api/login")
        .header("x-forwarded-for", "198.51.100.8")
        .json(&json!({ "token": good }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let records = audit::read(h.audit.dir()).unwrap();
    let alerts: Vec<_> = records
        .iter()
        .filter(|r| r.kind == audit::EventKind::Alert && r.data["alert"] == "login_burst")
        .collect();
    assert_eq!(alerts.len(), 1, "one alert per lockout");
    assert_eq!(alerts[0].data["client"], attacker);
    let denied = records
        .iter()
        .filter(|r| r.data["action"] == "gateway_login" && r.data["decision"] == "deny")
        .count();
    assert_eq!(denied, 10);
    let text = std::fs::read_to_string(h.audit.dir().join(audit::LOG_FILE)).unwrap();
    assert!(!text.contains(&good), "a token reached the audit log");
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_do_not_escape_a_lockout() {
    let h = start("login_max_failures = 3").await;
    for i in 0..3 {
        let r = h
            .post("/api/login")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({ "token": "cdn_wrong" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = h
        .post("/api/login")
        .header("x-forwarded-for", "203.0.113.99")
        .json(&json!({ "token": "cdn_wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn network_bind_without_tls_or_token_is_refused_and_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path());
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let cases = [
        (
            String::new(),
            false,
            vec!["tls_cert", "cordon token create"],
        ),
        (String::new(), true, vec!["tls_cert"]),
        (tls.clone(), false, vec!["cordon token create"]),
    ];
    for (extra, with_token, says) in cases {
        let e = env();
        if with_token {
            token(&e.store, &e.audit, TokenScope::Read);
        }
        let port = free_port();
        let err = bind(&e, &format!("bind = \"0.0.0.0:{port}\"\n{extra}"))
            .await
            .err()
            .expect("refused");
        let shown = err.to_string();
        assert!(
            matches!(err, GatewayError::PublicBindRefused { .. }),
            "{shown}"
        );
        for s in says {
            assert!(shown.contains(s), "{shown} lacks {s}");
        }
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "something listens"
        );
    }
    // A revoked token does not count.
    let e = env();
    let t = cordon_gateway::token::create(
        &e.store,
        &e.audit,
        "x",
        TokenScope::Admin,
        Duration::days(1),
        "t",
    )
    .unwrap();
    cordon_gateway::token::revoke(&e.store, &e.audit, &t.record.id, "t").unwrap();
    let err = bind(&e, &format!("bind = \"0.0.0.0:0\"\n{tls}"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("cordon token create"), "{err}");
}

fn write_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test]
async fn tls_on_all_interfaces_with_a_token_serves_https() {
    let e = env();
    let (cert, key) = write_cert(e.dir.path());
    let admin = token(&e.store, &e.audit, TokenScope::Admin);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let gateway = format!(
        "bind = \"0.0.0.0:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let h = start_with(e, &gateway, http).await;
    assert!(h.url.starts_with("https://localhost:"), "{}", h.url);
    let r = h.get("/healthz").send().await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_some());
    let (s, _) = check_envelope(r).await;
    assert_eq!(s, StatusCode::OK);
    let login = h.login(&admin).await;
    assert_eq!(login.status(), StatusCode::OK);
    let sc = set_cookie(&login);
    assert!(sc.starts_with("__Host-cordon_session="), "{sc}");
    assert!(sc.split(';').any(|a| a.trim() == "Secure"), "{sc}");
    let r = h
        .get("/api/status")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["tls"].as_bool(), b["loopback_only"].as_bool()),
        (Some(true), Some(false))
    );
    // An empty Host is refused, not compared: else `Origin: https://` would pass as ours.
    let r = h
        .post("/api/logout")
        .header("host", "")
        .header("origin", "https://")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (s, b) = check_envelope(r).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = h.url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
}

#[tokio::test]
async fn slow_and_silent_clients_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start("").await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let started = std::time::Instant::now();
    // One sends half a request head and stalls; one sends nothing at all.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for conn in [&mut slow, &mut silent] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            conn.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "connection still open after 20 s");
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
    // The server still answers others.
    assert_eq!(
        h.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn forwarded_https_is_believed_only_from_a_trusted_proxy() {
    async fn login_over(h: &Harness, token: &str) -> (StatusCode, String) {
        let r = h
            .post("/api/login")
            .header("x-forwarded-proto", "https")
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status(), cookie)
    }
    let https_origin = |h: &Harness| h.url.replacen("http://", "https://", 1);

    // Behind a trusted TLS-terminating proxy: the cookie is Secure, and the browser's
    // https:// Origin is the gateway's own.
    let h = start("trusted_proxies = [\"127.0.0.1/32\"]").await;
    let t = h.token(TokenScope::Operator);
    let (status, cookie) = login_over(&h, &t).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookie.contains("; Secure"), "{cookie}");
    let r = h
        .post("/api/logout")
        .bearer_auth(&t)
        .header("x-forwarded-proto", "https")
        .header("origin", https_origin(&h))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // From an untrusted peer the header is a claim, not a fact.
    let h = start("").await;
    let t = h.token(TokenScope::Operator);
    let (_, cookie) = login_over(&h, &t).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    let r = h
        .post("/api/logout")
        .bearer_auth(&t)
        .header("x-forwarded-proto", "https")
        .header("origin", https_origin(&h))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
