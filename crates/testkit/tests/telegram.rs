//! FakeTelegram checked over raw HTTP/1.1 on loopback: the request shapes a Bot API
//! client may use (JSON, form, query string) and the answers Telegram gives.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cordon_testkit::FakeTelegram;
use cordon_testkit::telegram::TgUser;
use serde_json::{Value, json};

const TOKEN: &str = "5000:secret";

/// Send one request and return (status, JSON body).
fn request(base: &str, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn call(tg: &FakeTelegram, path: &str, ct: &str, body: &str) -> (u16, Value) {
    let (base, path, ct, body) = (
        tg.base_url(),
        path.to_string(),
        ct.to_string(),
        body.to_string(),
    );
    tokio::task::spawn_blocking(move || request(&base, "POST", &path, &ct, &body))
        .await
        .unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[tokio::test(flavor = "multi_thread")]
async fn form_bodies_query_strings_and_json_are_all_read() {
    let tg = FakeTelegram::start(TOKEN).await;
    let alice = TgUser::new(77, "Alice");
    tg.message(&alice).text("hi").push();

    let (status, me) = call(&tg, "/bot5000:secret/GETME?x=1", FORM, "").await;
    assert_eq!(status, 200);
    assert_eq!(me["result"]["id"], 5000);
    assert_eq!(me["result"]["username"], "cordon_test_bot");

    // A form body with reply_markup as a JSON string, as Telegram accepts it.
    let markup = r#"{"inline_keyboard":[[{"text":"Yes","callback_data":"y"}]]}"#;
    let body =
        serde_urlencoded::to_string([("chat_id", "77"), ("text", "ok?"), ("reply_markup", markup)])
            .unwrap();
    let (status, sent) = call(&tg, "/bot5000:secret/sendMessage", FORM, &body).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(
        sent["result"]["reply_markup"]["inline_keyboard"][0][0]["text"],
        "Yes"
    );
    let calls = tg.sent();
    assert_eq!(calls[0].buttons[0][0].callback_data, "y");
    assert!(!calls[0].link_preview_disabled);

    // The same as JSON, and a query-string chat id.
    let (status, _) = call(
        &tg,
        "/bot5000:secret/sendMessage?chat_id=77",
        JSON,
        r#"{"text": "two", "link_preview_options": {"is_disabled": true}}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(tg.sent()[1].link_preview_disabled);
    assert_eq!(tg.requests("sendmessage"), 2);
    assert_eq!(tg.requests("getMe"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_telegrams_shape() {
    let tg = FakeTelegram::start(TOKEN).await;
    let (status, e) = call(&tg, "/bot5000:other/getMe", JSON, "{}").await;
    assert_eq!(status, 401);
    assert_eq!(
        e,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let (status, e) = call(&tg, "/bot5000:secret/noSuchMethod", JSON, "{}").await;
    assert_eq!((status, e["error_code"].clone()), (404, json!(404)));
    let (status, _) = call(&tg, "/elsewhere", JSON, "{}").await;
    assert_eq!(status, 404);
    let (status, e) = call(
        &tg,
        "/bot5000:secret/sendMessage",
        JSON,
        "{\"chat_id\": 1, \"text\": \"x\"}",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(e["description"], "Bad Request: chat not found");
    let (status, e) = call(&tg, "/bot5000:secret/getMe", JSON, "not json").await;
    assert_eq!(status, 400, "{e}");

    tg.rate_limit_next(11);
    let (status, e) = call(&tg, "/bot5000:secret/getMe", JSON, "{}").await;
    assert_eq!(status, 429);
    assert_eq!(e["parameters"]["retry_after"], 11);
    // Only the next one.
    assert_eq!(call(&tg, "/bot5000:secret/getMe", JSON, "{}").await.0, 200);

    tg.set_down(true);
    assert_eq!(call(&tg, "/bot5000:secret/getMe", JSON, "{}").await.0, 502);
    assert_eq!(call(&tg, "/file/bot5000:secret/x", JSON, "").await.0, 502);
    tg.set_down(false);
    assert_eq!(call(&tg, "/bot5000:secret/getMe", JSON, "{}").await.0, 200);
    // Every request counted, whatever its outcome.
    assert_eq!(tg.requests("getme"), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_confirm_and_allowed_updates_persist() {
    let tg = FakeTelegram::start(TOKEN).await;
    let alice = TgUser::new(77, "Alice");
    let a = tg.message(&alice).text("a").push();
    tg.push_update("poll_answer", json!({"poll_id": "p", "option_ids": [0]}));
    let c = tg.message(&alice).text("c").push();
    let ids = |v: &Value| -> Vec<i64> {
        v["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["update_id"].as_i64().unwrap())
            .collect()
    };
    let path = "/bot5000:secret/getUpdates";
    // Default: everything but the three kinds Telegram leaves out.
    let (_, v) = call(&tg, path, JSON, "{}").await;
    assert_eq!(ids(&v).len(), 3);
    // Asking for messages only, and the choice is remembered.
    let (_, v) = call(&tg, path, JSON, r#"{"allowed_updates": ["message"]}"#).await;
    assert_eq!(ids(&v), [a, c]);
    let (_, v) = call(&tg, path, JSON, "{}").await;
    assert_eq!(ids(&v), [a, c]);
    // An offset confirms what is below it, for good.
    let (_, v) = call(&tg, path, JSON, &format!("{{\"offset\": {c}}}")).await;
    assert_eq!(ids(&v), [c]);
    let (_, v) = call(&tg, path, JSON, "{\"offset\": 0}").await;
    assert_eq!(ids(&v), [c]);
    assert_eq!(tg.pending_updates(), 1);
    // A long poll that sees nothing answers an empty list when its time is up.
    let (_, v) = call(&tg, path, FORM, &format!("offset={}&timeout=1", c + 1)).await;
    assert_eq!(ids(&v), Vec::<i64>::new());
    assert_eq!(tg.pending_updates(), 0);
}
