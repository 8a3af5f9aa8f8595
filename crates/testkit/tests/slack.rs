//! FakeSlack speaks Slack's protocol on its own terms, checked with a plain HTTP client
//! and a plain WebSocket (not Cordon's Slack client).

use std::time::Duration;

use cordon_testkit::FakeSlack;
use cordon_testkit::slack::{SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SLACK_BOT_USER};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn call(fake: &FakeSlack, method: &str, token: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().post(format!("{}{method}", fake.api_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn socket_url(fake: &FakeSlack) -> String {
    let v = call(fake, "apps.connections.open", Some(SLACK_APP_TOKEN)).await;
    v["url"].as_str().unwrap().to_string()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn frame(ws: &mut Ws) -> Value {
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("no error");
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn each_token_opens_only_its_own_methods() {
    let fake = FakeSlack::start().await;
    let ok = call(&fake, "auth.test", Some(SLACK_BOT_TOKEN)).await;
    assert_eq!(ok["user_id"], SLACK_BOT_USER);
    let cases = [
        ("auth.test", None, "not_authed"),
        ("auth.test", Some("xoxb-guess"), "invalid_auth"),
        ("auth.test", Some(SLACK_APP_TOKEN), "not_allowed_token_type"),
        (
            "apps.connections.open",
            Some(SLACK_BOT_TOKEN),
            "not_allowed_token_type",
        ),
    ];
    for (method, token, error) in cases {
        let v = call(&fake, method, token).await;
        assert_eq!(
            v,
            json!({"ok": false, "error": error}),
            "{method} {token:?}"
        );
    }
    assert_eq!(fake.calls("auth.test"), 4);
}

#[tokio::test]
async fn a_ticket_opens_one_socket() {
    let fake = FakeSlack::start().await;
    let url = socket_url(&fake).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(frame(&mut ws).await["type"], "hello");
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
}

#[tokio::test]
async fn unacknowledged_envelopes_come_again_with_retry_attempt() {
    let fake = FakeSlack::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(socket_url(&fake).await)
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await["type"], "hello");
    let acked = fake.push_dm("UALICE", "acked");
    let dropped = fake.push_dm("UALICE", "not acked");
    assert_eq!(
        frame(&mut ws).await["envelope_id"],
        acked.envelope_id.as_str()
    );
    let second = frame(&mut ws).await;
    assert_eq!(second["envelope_id"], dropped.envelope_id.as_str());
    assert_eq!(second["retry_attempt"], 0);
    let ack = json!({"envelope_id": acked.envelope_id}).to_string();
    ws.send(Message::Text(ack.into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.acked(), vec![acked.envelope_id.clone()]);
    fake.drop_socket();
    drop(ws);

    let (mut ws, _) = tokio_tungstenite::connect_async(socket_url(&fake).await)
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await["type"], "hello");
    let again = frame(&mut ws).await;
    assert_eq!(again["envelope_id"], dropped.envelope_id.as_str());
    assert_eq!(again["retry_attempt"], 1);
    assert_eq!(again["payload"]["event"]["text"], "not acked");
}

#[tokio::test]
async fn disconnect_is_announced_and_429_says_when() {
    let fake = FakeSlack::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(socket_url(&fake).await)
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await["type"], "hello");
    fake.disconnect("refresh_requested");
    let bye = frame(&mut ws).await;
    assert_eq!(bye["type"], "disconnect");
    assert_eq!(bye["reason"], "refresh_requested");

    fake.rate_limit_next(9);
    let resp = reqwest::Client::new()
        .post(format!("{}auth.test", fake.api_url()))
        .bearer_auth(SLACK_BOT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "9");
}
