//! `GET /api/pairing` and `POST /api/pairing/{code}` over a real socket against a real
//! SQLite store: read lists, operator decides; a code decides once; an expired or
//! unknown code decides nothing; a browser session needs the CSRF token; each decision
//! is a `channel`/`pairing` audit record naming the token.

use std::sync::Arc;
use std::time::Duration;

use cordon_gateway::{Gateway, GatewayOptions, TokenScope};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::{NewPairing, PairingRequest};

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<store::Store>,
    audit: Arc<audit::Log>,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    http: reqwest::Client,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         [agents.default]\nworkspace = \"{}\"\n[gateway]\nbind = \"127.0.0.1:0\"\n",
        dir.path().join("ws").display()
    );
    let config = Arc::new(config::load_str(&text, &dir.path().join("cordon.toml")).unwrap());
    let store = Arc::new(store::Store::open(&dir.path().join("cordon.db")).unwrap());
    let audit = Arc::new(audit::Log::open(&dir.path().join("audit")).unwrap());
    let g = Gateway::bind(GatewayOptions {
        config,
        store: store.clone(),
        audit: audit.clone(),
        bind: None,
        state_dir: dir.path().to_path_buf(),
        skills_lock: std::path::PathBuf::from("/nonexistent/skills.lock"),
        agents: None,
        channels: Vec::new(),
        hook_secrets: Default::default(),
    })
    .await
    .expect("bind");
    let url = g.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(g.serve(async move {
        let _ = rx.await;
    }));
    Harness {
        _dir: dir,
        store,
        audit,
        url,
        _stop: tx,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    /// A token of `scope` and its id.
    fn token(&self, scope: TokenScope) -> (String, String) {
        let t = cordon_gateway::token::create(
            &self.store,
            &self.audit,
            "test",
            scope,
            time::Duration::days(1),
            "test",
        )
        .unwrap();
        (t.token.expose().to_string(), t.record.id)
    }

    /// Issue `code` to `sender` as the inbound gate would.
    fn issue(&self, channel: &str, sender: &str, code: &str, ttl: Duration) {
        let asked = self
            .store
            .request_pairing(&NewPairing {
                channel,
                sender,
                sender_name: Some("Someone"),
                code,
                ttl,
                max_pending: 3,
            })
            .unwrap();
        assert!(matches!(asked, PairingRequest::Issued(_)), "{asked:?}");
    }

    async fn list(&self, token: &str, query: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}/api/pairing{query}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn decide(&self, token: &str, code: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/api/pairing/{code}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// `(decision, sender, role, by)` of every pairing audit record.
    fn decisions(&self) -> Vec<(String, String, Option<String>, String)> {
        audit::read(self.audit.dir())
            .unwrap()
            .into_iter()
            .filter(|r| r.kind.as_str() == "channel" && r.data["action"] == "pairing")
            .map(|r| {
                let d = &r.data;
                (
                    d["decision"].as_str().unwrap().to_string(),
                    d["sender"].as_str().unwrap().to_string(),
                    d["role"].as_str().map(str::to_string),
                    d["by"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn read_lists_operator_decides_once_and_each_decision_is_audited() {
    let h = start().await;
    let hour = Duration::from_secs(3600);
    h.issue("telegram", "1001", "ABCD2345", hour);
    h.issue("telegram", "1002", "WXYZ6789", hour);
    h.issue("slack", "U0OLD", "EXPD3333", Duration::ZERO);
    let (read, _) = h.token(TokenScope::Read);
    let (approver, _) = h.token(TokenScope::Approver);
    let (operator, operator_id) = h.token(TokenScope::Operator);

    let (s, b) = h.list(&read, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let all = b["pairings"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    let expired = |code: &str| {
        all.iter()
            .find(|p| p["code"] == code)
            .map(|p| p["expired"].clone())
    };
    assert_eq!(expired("ABCD2345"), Some(json!(false)));
    assert_eq!(expired("EXPD3333"), Some(json!(true)));
    let (_, b) = h.list(&read, "?channel=slack").await;
    assert_eq!(b["pairings"].as_array().unwrap().len(), 1);
    let (s, _) = h.list(&read, "?channel=irc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Read and approver tokens cannot admit anyone.
    for t in [&read, &approver] {
        let (s, b) = h
            .decide(t, "ABCD2345", json!({ "decision": "approve" }))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    }
    for bad in [
        json!({ "decision": "maybe" }),
        json!({ "decision": "approve", "role": "root" }),
        json!({ "decision": "deny", "role": "user" }),
    ] {
        let (s, b) = h.decide(&operator, "ABCD2345", bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
    }
    assert!(
        h.decisions().is_empty(),
        "a refused request decided something"
    );

    let (s, b) = h
        .decide(
            &operator,
            "abcd2345",
            json!({ "decision": "approve", "role": "approver" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["pairing"]["status"], "approved");
    assert_eq!(b["pairing"]["role"], "approver");
    let (s, b) = h
        .decide(&operator, "ABCD2345", json!({ "decision": "deny" }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a code decides once: {b}");
    assert!(b["error"].as_str().unwrap().contains("ABCD2345"), "{b}");
    let (s, b) = h
        .decide(&operator, "WXYZ6789", json!({ "decision": "deny" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h
        .decide(&operator, "EXPD3333", json!({ "decision": "approve" }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["error"].as_str().unwrap().contains("expired"), "{b}");
    let (s, _) = h
        .decide(&operator, "NOPE9999", json!({ "decision": "approve" }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let by = format!("gateway token {operator_id}");
    assert_eq!(
        h.decisions(),
        [
            (
                "approved".into(),
                "1001".into(),
                Some("approver".into()),
                by.clone()
            ),
            ("denied".into(), "1002".into(), None, by),
        ]
    );
    assert_eq!(
        h.store.pairing("slack", "U0OLD").unwrap().unwrap().status,
        store::PairingStatus::Pending,
        "an expired code decided something"
    );
}

#[tokio::test]
async fn a_browser_session_decides_only_with_the_csrf_token() {
    let h = start().await;
    h.issue(
        "matrix",
        "@bob:example.org",
        "BBBB2222",
        Duration::from_secs(3600),
    );
    let (operator, _) = h.token(TokenScope::Operator);
    let login = h
        .http
        .post(format!("{}/api/login", h.url))
        .json(&json!({ "token": operator }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/api/pairing/BBBB2222", h.url);
    let body = json!({ "decision": "approve", "role": "owner" });
    for attempt in [
        h.http.post(&url).header("cookie", &cookie).json(&body),
        h.http
            .post(&url)
            .header("cookie", &cookie)
            .header("x-csrf-token", "guess")
            .json(&body),
        h.http
            .post(&url)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("origin", "https://evil.example")
            .json(&body),
    ] {
        let r = attempt.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert!(h.decisions().is_empty());
    let r = h
        .http
        .post(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h.decisions().len(), 1);
    assert_eq!(h.decisions()[0].2.as_deref(), Some("owner"));
}
