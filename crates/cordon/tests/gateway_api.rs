//! The gateway's session API end to end: the real `cordon serve`, a testkit model, real
//! HTTP and WebSocket clients. A turn streams tool calls, an approval is answered over
//! the API, a second session runs while the first waits, a follower reconnecting from a
//! `seq` misses nothing, and every wrong caller is refused.

mod common;

use std::time::Duration;

use common::{AgentSetup, Install, read, tool};
use futures::StreamExt;
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script, ScriptedCall};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Runs `touch approved.txt` when asked to touch, answers after a tool result, and
/// echoes anything else.
fn model() -> Script {
    Script::dynamic(|c| {
        if c.turns.last().is_some_and(|t| t.role == "tool") {
            let result = c.last_tool_result().map(|r| r.content.clone());
            return Reply::Text(format!("done: {}", result.unwrap_or_default()));
        }
        match c.last_user_text() {
            Some(t) if t.contains("touch") => Reply::ToolCalls(vec![ScriptedCall::new(
                "exec",
                json!({ "command": "touch approved.txt" }),
            )]),
            Some(t) => Reply::Text(format!("you said: {t}")),
            None => Reply::Text("hello".into()),
        }
    })
}

struct Gateway {
    child: tokio::process::Child,
    url: String,
}

async fn serve(inst: &Install) -> Gateway {
    let (child, url) = common::serve_gateway(inst, &["--bind", "127.0.0.1:0"]).await;
    Gateway { child, url }
}

async fn token(inst: &Install, scope: &str) -> String {
    common::gateway_token(inst, scope).await
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(gw: &Gateway) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: gw.url.clone(),
        }
    }

    /// A new session of the `default` agent, started with `token`; its id.
    async fn new_session(&self, token: &str) -> String {
        let (status, created) = self
            .call(
                "POST",
                "/api/sessions",
                token,
                Some(json!({"agent": "default"})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_string()
    }

    /// Send `text` to `session` with `token`.
    async fn send(&self, session: &str, token: &str, text: &str) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/api/sessions/{session}/messages"),
            token,
            Some(json!({ "text": text })),
        )
        .await
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let mut req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_request(
    url: &str,
    session: &str,
    after: u64,
    origin: Option<&str>,
    auth: Option<(&str, &str)>,
) -> tungstenite::handshake::client::Request {
    let ws = url.replacen("http://", "ws://", 1);
    let mut req = format!("{ws}/api/sessions/{session}/stream?after={after}")
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    if let Some((name, value)) = auth {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    req
}

async fn follow(url: &str, session: &str, after: u64, token: &str) -> Ws {
    let bearer = format!("Bearer {token}");
    let req = ws_request(
        url,
        session,
        after,
        Some(url),
        Some(("authorization", &bearer)),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade")
        .0
}

/// The next event from the stream (pings are skipped).
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("no event within 30 s")
            .expect("stream ended")
            .expect("stream error");
        if let tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Events until (and including) one of `kind`.
async fn events_until(ws: &mut Ws, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = next_event(ws).await;
        let done = e["kind"] == kind;
        out.push(e);
        if done {
            return out;
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

fn refused_status(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(res) => res.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_streams_waits_for_an_api_approval_and_replays_from_any_seq() {
    let llm = MockLlm::start(model()).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let gw = serve(&inst).await;
    let operator = token(&inst, "operator").await;
    let approver = token(&inst, "approver").await;
    let reader = token(&inst, "read").await;
    let api = Api::new(&gw);

    let (status, agents) = api.call("GET", "/api/agents", &reader, None).await;
    assert_eq!(status, 200);
    assert_eq!(agents["agents"][0]["name"], "default");
    // A read token cannot start sessions; an unknown agent is named.
    let (status, _) = api
        .call(
            "POST",
            "/api/sessions",
            &reader,
            Some(json!({"agent": "default"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, err) = api
        .call(
            "POST",
            "/api/sessions",
            &operator,
            Some(json!({"agent": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("default"), "{err}");
    let (status, err) = api
        .call(
            "POST",
            "/api/sessions",
            &operator,
            Some(json!({"agnet": "default"})),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"].as_str().unwrap().contains("agnet"), "{err}");

    let (status, created) = api
        .call(
            "POST",
            "/api/sessions",
            &operator,
            Some(json!({"agent": "default"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let a = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["labels"]["integrity"], "trusted");

    let mut ws = follow(&gw.url, &a, 0, &reader).await;
    let (status, _) = api.send(&a, &reader, "touch it").await;
    assert_eq!(status, 403, "a read token sent a message");
    let (status, sent) = api.send(&a, &operator, "please touch the file").await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["seq"], 1);

    let first = events_until(&mut ws, "approval_requested").await;
    assert_eq!(
        kinds(&first),
        ["turn_started", "tool_call", "approval_requested"]
    );
    assert_eq!(first[1]["data"]["name"], "exec");
    let asked = &first[2]["data"];
    assert!(
        asked["action"]
            .as_str()
            .unwrap()
            .contains("touch approved.txt"),
        "{asked}"
    );
    let approval = asked["id"].as_str().unwrap().to_string();

    // While A waits for a human, A takes no second message and B runs to the end.
    let (status, busy) = api.send(&a, &operator, "again").await;
    assert_eq!(status, 409, "{busy}");
    let b = api.new_session(&operator).await;
    let mut ws_b = follow(&gw.url, &b, 0, &reader).await;
    api.send(&b, &operator, "hi").await;
    let b_events = events_until(&mut ws_b, "turn_finished").await;
    assert_eq!(b_events.last().unwrap()["data"]["answer"], "you said: hi");
    let streamed: String = b_events
        .iter()
        .filter(|e| e["kind"] == "text_delta")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, "you said: hi");
    assert!(!inst.workspace.join("approved.txt").exists());

    // The pending request is listed; a read token cannot answer it; an approver can,
    // once.
    let (_, pending) = api.call("GET", "/api/approvals", &reader, None).await;
    assert_eq!(pending["approvals"][0]["id"], approval.as_str());
    assert_eq!(pending["approvals"][0]["session"], a.as_str());
    let path = format!("/api/approvals/{approval}");
    let (status, _) = api
        .call("POST", &path, &reader, Some(json!({"answer": "once"})))
        .await;
    assert_eq!(status, 403);
    let (status, err) = api
        .call("POST", &path, &approver, Some(json!({"answer": "always"})))
        .await;
    assert_eq!(status, 422);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("once, session, agent or deny")
    );
    let (status, answered) = api
        .call("POST", &path, &approver, Some(json!({"answer": "once"})))
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["approval"]["status"], "approved");
    let (status, _) = api
        .call("POST", &path, &approver, Some(json!({"answer": "deny"})))
        .await;
    assert_eq!(status, 409, "a second answer was accepted");

    let rest = events_until(&mut ws, "turn_finished").await;
    let rest_kinds = kinds(&rest);
    assert_eq!(rest_kinds[0], "approval_settled", "{rest_kinds:?}");
    assert!(rest_kinds.contains(&"tool_result"), "{rest_kinds:?}");
    let result = rest.iter().find(|e| e["kind"] == "tool_result").unwrap();
    assert_eq!(result["data"]["is_error"], false, "{result}");
    assert!(inst.workspace.join("approved.txt").exists());

    // Every event was seen once, in order, with no gap.
    let all: Vec<Value> = first.iter().chain(rest.iter()).cloned().collect();
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    // A follower reconnecting from seq 2 gets exactly the rest, again.
    drop(ws);
    let mut again = follow(&gw.url, &a, 2, &reader).await;
    let replay = events_until(&mut again, "turn_finished").await;
    assert_eq!(replay, all[2..].to_vec());
    let (_, page) = api
        .call(
            "GET",
            &format!("/api/sessions/{a}/events?after=2&limit=2"),
            &reader,
            None,
        )
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["last_seq"], 4);

    // History and audit.
    let (_, read) = api
        .call("GET", &format!("/api/sessions/{a}"), &reader, None)
        .await;
    let roles: Vec<&str> = read["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    assert_eq!(read["session"]["running"], false);
    let (_, audit) = api
        .call(
            "GET",
            &format!("/api/audit?session={a}&kind=approval"),
            &reader,
            None,
        )
        .await;
    let states: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["data"]["state"].as_str())
        .collect();
    assert!(
        states.contains(&"requested") && states.contains(&"answered"),
        "{states:?}"
    );
    let by = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["data"]["state"] == "answered")
        .unwrap()["data"]["by"]
        .clone();
    assert!(by.as_str().unwrap().starts_with("gateway token "), "{by}");
    let (_, asks) = api
        .call(
            "GET",
            &format!("/api/audit?session={a}&decision=ask"),
            &reader,
            None,
        )
        .await;
    assert_eq!(asks["records"].as_array().unwrap().len(), 1, "{asks}");
    let (status, err) = api.call("GET", "/api/audit?kind=nope", &reader, None).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("decision"), "{err}");
    let (_, verified) = api.call("GET", "/api/audit/verify", &reader, None).await;
    assert_eq!(verified["ok"], true, "{verified}");
    let (_, cfg) = api.call("GET", "/api/config", &reader, None).await;
    assert_eq!(cfg["config"]["agents"]["default"]["exec"]["mode"], "ask");
    drop(gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_refuses_foreign_origins_missing_origins_and_strangers() {
    let llm = MockLlm::start(model()).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let gw = serve(&inst).await;
    let operator = token(&inst, "operator").await;
    let api = Api::new(&gw);
    let s = api.new_session(&operator).await;
    let bearer = format!("Bearer {operator}");
    let auth = Some(("authorization", bearer.as_str()));

    for (origin, auth, want) in [
        (Some("http://evil.example"), auth, 403),
        (Some("null"), auth, 403),
        (None, auth, 403),
        (Some(gw.url.as_str()), None, 401),
        (
            Some(gw.url.as_str()),
            Some(("authorization", "Bearer cdn_wrong")),
            401,
        ),
    ] {
        let req = ws_request(&gw.url, &s, 0, origin, auth);
        let err = tokio_tungstenite::connect_async(req)
            .await
            .err()
            .unwrap_or_else(|| {
                panic!("upgrade with origin {origin:?} and auth {auth:?} was accepted")
            });
        assert_eq!(
            refused_status(err),
            want,
            "origin {origin:?}, auth {auth:?}"
        );
    }
    let req = ws_request(&gw.url, "01NOSUCHSESSION", 0, Some(&gw.url), auth);
    assert_eq!(
        refused_status(tokio_tungstenite::connect_async(req).await.err().unwrap()),
        404
    );

    // A browser session: the cookie from a login, with the gateway's own Origin.
    let login = api
        .http
        .post(format!("{}/api/login", gw.url))
        .json(&json!({ "token": operator }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let req = ws_request(&gw.url, &s, 0, Some(&gw.url), Some(("cookie", &cookie)));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("own origin refused");
    // A cross-site page holding the cookie cannot send a message: no CSRF token.
    let post = |csrf: Option<&str>, origin: &str| {
        let mut r = api
            .http
            .post(format!("{}/api/sessions/{s}/messages", gw.url))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({ "text": "hi" }));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    assert_eq!(post(None, &gw.url).await.unwrap().status(), 403);
    assert_eq!(
        post(Some(&csrf), "http://evil.example")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(post(Some(&csrf), &gw.url).await.unwrap().status(), 202);
    let events = events_until(&mut ws, "turn_finished").await;
    assert_eq!(events.last().unwrap()["data"]["answer"], "you said: hi");
    ws.close(None).await.ok();

    // Bad requests name what is wrong.
    let (status, err) = api.send(&s, &operator, "  ").await;
    assert_eq!(status, 422);
    assert!(err["error"].as_str().unwrap().contains("empty"), "{err}");
    let (status, err) = api
        .call(
            "GET",
            &format!("/api/sessions/{s}/events?after=minus"),
            &operator,
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    for path in [
        "/api/sessions",
        "/api/approvals",
        "/api/grants",
        "/api/audit",
        "/api/config",
        "/api/openapi.json",
    ] {
        let (status, _) = api.call("GET", path, "", None).await;
        assert_eq!(status, 401, "{path} without credentials");
    }
    let (status, doc) = api.call("GET", "/api/openapi.json", &operator, None).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/sessions/{id}/stream"].is_object());
    drop(gw);
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The parent delegates; the sub-agent runs a command that asks a human.
fn delegating_model() -> Script {
    Script::dynamic(|c| {
        let child = c.system_text().contains("You are a sub-agent");
        if c.turns.last().is_some_and(|t| t.role == "tool") {
            return Reply::Text(if child { "child done" } else { "parent done" }.into());
        }
        if child {
            Reply::ToolCalls(vec![ScriptedCall::new(
                "exec",
                json!({ "command": "touch child.txt" }),
            )])
        } else {
            Reply::ToolCalls(vec![ScriptedCall::new(
                "spawn_agent",
                json!({ "task": "make the file", "tools": ["exec"] }),
            )])
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sub_agents_approval_is_shown_in_the_parent_sessions_stream() {
    let llm = MockLlm::start(delegating_model()).await;
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            tools: r#"["read_file", "exec", "spawn_agent"]"#,
            ..AgentSetup::default()
        },
    );
    let gw = serve(&inst).await;
    let operator = token(&inst, "operator").await;
    let api = Api::new(&gw);
    let parent = api.new_session(&operator).await;
    let mut ws = follow(&gw.url, &parent, 0, &operator).await;
    let (status, _) = api.send(&parent, &operator, "delegate it").await;
    assert_eq!(status, 202);
    let asked = events_until(&mut ws, "approval_requested").await;
    let req = &asked.last().unwrap()["data"];
    let child = req["session"].as_str().unwrap();
    assert_ne!(
        child, parent,
        "the request should name the sub-agent's session"
    );
    assert!(
        req["action"].as_str().unwrap().contains("touch child.txt"),
        "{req}"
    );
    let id = req["id"].as_str().unwrap();
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/approvals/{id}"),
            &operator,
            Some(json!({"answer": "once"})),
        )
        .await;
    assert_eq!(status, 200);
    let rest = events_until(&mut ws, "turn_finished").await;
    assert_eq!(rest[0]["kind"], "approval_settled");
    assert_eq!(rest.last().unwrap()["data"]["answer"], "parent done");
    assert!(inst.workspace.join("child.txt").exists());
    drop(gw);
}

/// A session's journaled changes over the API: listed with their diffs (read scope);
/// undone by an approver — not by a reader, not without credentials, not by a page
/// holding the cookie but no CSRF token, not while a turn of the session runs — with
/// the undo audited as made by that token.
#[tokio::test(flavor = "multi_thread")]
async fn changes_are_listed_and_undone_over_the_api_by_an_approver_only() {
    let llm = MockLlm::start(Script::new(vec![
        tool(
            "write_file",
            json!({"path": "old.txt", "content": "after\n"}),
        ),
        tool(
            "write_file",
            json!({"path": "new.txt", "content": "fresh\n"}),
        ),
        Reply::Text("wrote".into()),
        tool("exec", json!({"command": "touch waits.txt"})),
        Reply::Text("denied".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    std::fs::write(inst.workspace.join("old.txt"), "before\n").unwrap();
    let gw = serve(&inst).await;
    let api = Api::new(&gw);
    let operator = token(&inst, "operator").await;
    let approver = token(&inst, "approver").await;
    let reader = token(&inst, "read").await;

    let s = api.new_session(&operator).await;
    let mut ws = follow(&gw.url, &s, 0, &operator).await;
    assert_eq!(api.send(&s, &operator, "write them").await.0, 202);
    events_until(&mut ws, "turn_finished").await;

    let (status, listed) = api
        .call("GET", &format!("/api/sessions/{s}/changes"), &reader, None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["agent"], "default");
    let files = listed["changes"].as_array().unwrap();
    let shown: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["kind"].as_str().unwrap(),
                f["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(shown, ["added new.txt", "changed old.txt"], "{listed}");
    let diff = files[1]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-before") && diff.contains("+after"),
        "{diff}"
    );
    assert_eq!(files[0]["calls"].as_array().unwrap().len(), 1);
    let (status, _) = api
        .call("GET", "/api/sessions/S-nope/changes", &reader, None)
        .await;
    assert_eq!(status, 404);

    // Refused: a reader, no credentials, a cookie without the CSRF token.
    let undo = format!("/api/sessions/{s}/undo");
    assert_eq!(
        api.call("POST", &undo, &reader, Some(json!({}))).await.0,
        403
    );
    assert_eq!(api.call("POST", &undo, "", Some(json!({}))).await.0, 401);
    let login = api
        .http
        .post(format!("{}/api/login", gw.url))
        .json(&json!({ "token": approver }))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let forged = api
        .http
        .post(format!("{}{undo}", gw.url))
        .header("cookie", &cookie)
        .header("origin", &gw.url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        read(&inst.workspace.join("old.txt")),
        "after\n",
        "undone anyway"
    );

    // Not while a turn runs (the second turn waits for an approval).
    assert_eq!(api.send(&s, &operator, "touch it").await.0, 202);
    events_until(&mut ws, "approval_requested").await;
    let (status, err) = api.call("POST", &undo, &approver, None).await;
    assert_eq!(status, 409, "{err}");
    let (_, pending) = api
        .call("GET", &format!("/api/approvals?session={s}"), &reader, None)
        .await;
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/approvals/{id}"),
            &approver,
            Some(json!({"answer": "deny"})),
        )
        .await;
    assert_eq!(status, 200);
    events_until(&mut ws, "turn_finished").await;

    // Bad input names what was wrong; then the undo itself.
    let (status, err) = api
        .call(
            "POST",
            &undo,
            &approver,
            Some(json!({"call": "no-such-call"})),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("no-such-call"),
        "{err}"
    );
    let (status, done) = api.call("POST", &undo, &approver, None).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["restored"], json!(["new.txt", "old.txt"]), "{done}");
    assert_eq!(done["complete"], true);
    assert_eq!(read(&inst.workspace.join("old.txt")), "before\n");
    assert!(!inst.workspace.join("new.txt").exists());
    let (_, after) = api
        .call("GET", &format!("/api/sessions/{s}/changes"), &reader, None)
        .await;
    assert_eq!(after["changes"], json!([]), "{after}");

    let undone: Vec<Value> = inst
        .audit()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "checkpoint" && r["data"]["action"] == "undone")
        .collect();
    assert_eq!(undone.len(), 1, "only the undo that happened: {undone:?}");
    assert_eq!(undone[0]["data"]["undone_session"], s.as_str());
    assert!(
        undone[0]["data"]["by"]
            .as_str()
            .unwrap()
            .starts_with("gateway token "),
        "{}",
        undone[0]
    );
}
