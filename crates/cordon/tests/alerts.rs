//! `[alerts]` end to end, with a real `cordon serve` and a local webhook: a login burst
//! reaches the webhook as exactly that alert record, with the bearer token and a chat
//! `text`; an outage is retried by the running gateway and, across restarts, by the
//! next process or `cordon log export`, without loss or duplicates; records that are not
//! alerts are never sent; the webhook URL's path (the credential of a Slack or Mattermost
//! webhook) is written nowhere.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{AgentSetup, Install, text};
use serde_json::Value;

/// The path part of the webhook URL, standing in for a Slack webhook's secret.
const SECRET_PATH: &str = "services/T0/B0/webhook-secret-part";

#[derive(Default)]
struct Webhook {
    /// Raw bodies accepted, in order.
    bodies: Vec<String>,
    auth: Vec<String>,
    content_types: Vec<String>,
    /// Answer 503 while set (and count the attempts).
    down: bool,
    refused: usize,
}

async fn webhook() -> (String, Arc<Mutex<Webhook>>) {
    let state: Arc<Mutex<Webhook>> = Arc::default();
    let s = state.clone();
    let app = Router::new().route(
        &format!("/{SECRET_PATH}"),
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let mut w = s.lock().unwrap();
                if w.down {
                    w.refused += 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                w.auth.push(header("authorization"));
                w.content_types.push(header("content-type"));
                w.bodies.push(String::from_utf8(body.to_vec()).unwrap());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/{SECRET_PATH}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn install(url: &str) -> Install {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    cfg.push_str(&format!(
        "\n[alerts]\nwebhook_url = \"{url}\"\ntoken_env = \"ALERTS_TOKEN\"\nformat = \"json\"\n"
    ));
    std::fs::write(&inst.config, cfg).unwrap();
    inst
}

/// `cordon serve` with the webhook's token, its stderr (warnings) in `stderr_file`; the
/// gateway's URL.
async fn serve(inst: &Install, stderr_file: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let err = std::fs::File::create(inst.dir.path().join(stderr_file)).unwrap();
    let mut child = inst
        .command()
        .env("ALERTS_TOKEN", "alert-secret")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("serve printed nothing")
        .unwrap()
        .expect("serve exited");
    let url = first
        .strip_prefix("cordon gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// `max_failures` (the default, 10) wrong tokens from `from`: the last one starts a
/// lockout, which the gateway records as a `login_burst` alert.
async fn login_burst(gateway: &str, from: &str) {
    let from: IpAddr = from.parse().unwrap();
    let http = reqwest::Client::builder()
        .local_address(from)
        .no_proxy()
        .build()
        .unwrap();
    for _ in 0..10 {
        let res = http
            .post(format!("{gateway}/api/login"))
            .json(&serde_json::json!({"token": format!("cdn_{}", "x".repeat(43))}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = http
        .post(format!("{gateway}/api/login"))
        .json(&serde_json::json!({"token": "cdn_wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "{from} was not locked out");
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stored alert records, as their exact lines.
fn stored_alerts(inst: &Install) -> Vec<String> {
    std::fs::read_to_string(inst.audit_file())
        .unwrap()
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["kind"] == "alert")
        .map(str::to_string)
        .collect()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn login_bursts_reach_the_webhook_once_each_through_outages_and_restarts() {
    let (url, hook) = webhook().await;
    let inst = install(&url);
    let (mut s1, gw) = serve(&inst, "serve-1.err").await;

    // 1. A real attack: ten wrong tokens from one address.
    login_burst(&gw, "127.0.0.1").await;
    until("the first alert", || hook.lock().unwrap().bodies.len() == 1).await;
    let alerts = stored_alerts(&inst);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    {
        let w = hook.lock().unwrap();
        assert_eq!(w.auth, ["Bearer alert-secret"]);
        assert_eq!(w.content_types, ["application/json"]);
        let body: Value = serde_json::from_str(&w.bodies[0]).unwrap();
        // The record exactly as stored (hash included), and a one-line summary.
        assert!(w.bodies[0].contains(&alerts[0]), "{}", w.bodies[0]);
        assert_eq!(body["record"]["kind"], "alert");
        assert_eq!(body["record"]["data"]["alert"], "login_burst");
        assert_eq!(body["record"]["data"]["client"], "127.0.0.1");
        let summary = body["text"].as_str().unwrap();
        assert!(
            summary.contains("login_burst") && summary.contains("`127.0.0.1`"),
            "{summary}"
        );
        assert!(!summary.contains('\n'));
    }

    // 2. The webhook goes down: the next alert is retried, then delivered once it is
    // back, by the same running gateway.
    hook.lock().unwrap().down = true;
    login_burst(&gw, "127.0.0.2").await;
    until("two refused attempts", || hook.lock().unwrap().refused >= 2).await;
    assert_eq!(hook.lock().unwrap().bodies.len(), 1);
    hook.lock().unwrap().down = false;
    until("the second alert", || {
        hook.lock().unwrap().bodies.len() == 2
    })
    .await;

    // 3. Down again, and the gateway restarts during the outage: the new process
    // retries; after it is killed, `cordon log export` delivers what is still pending.
    hook.lock().unwrap().down = true;
    s1.kill().await.unwrap();
    let (mut s2, gw) = serve(&inst, "serve-2.err").await;
    let refused = hook.lock().unwrap().refused;
    login_burst(&gw, "127.0.0.3").await;
    until("retries by the restarted gateway", || {
        hook.lock().unwrap().refused >= refused + 2
    })
    .await;
    s2.kill().await.unwrap();
    assert_eq!(hook.lock().unwrap().bodies.len(), 2, "delivered while down");
    hook.lock().unwrap().down = false;
    let out = inst
        .command()
        .env("ALERTS_TOKEN", "alert-secret")
        .args(["log", "export"])
        .output()
        .await
        .unwrap();
    common::assert_ok(&out);
    assert!(
        text(&out.stdout).contains("sent 1 records to http://127.0.0.1:"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(hook.lock().unwrap().bodies.len(), 3);

    // 4. Another restart resends nothing.
    let (mut s3, _) = serve(&inst, "serve-3.err").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    s3.kill().await.unwrap();

    // Exactly the alerts of the log, in order, each once — and nothing else.
    let alerts = stored_alerts(&inst);
    assert_eq!(alerts.len(), 3, "an alert about alert delivery? {alerts:?}");
    let (bodies, auth) = {
        let w = hook.lock().unwrap();
        (w.bodies.clone(), w.auth.clone())
    };
    assert_eq!(bodies.len(), 3, "a duplicate or a non-alert was sent");
    let mut clients = Vec::new();
    for (body, stored) in bodies.iter().zip(&alerts) {
        let body: Value = serde_json::from_str(body).unwrap();
        let stored: Value = serde_json::from_str(stored).unwrap();
        assert_eq!(body["record"], stored);
        clients.push(stored["data"]["client"].as_str().unwrap().to_string());
    }
    assert_eq!(clients, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    assert!(auth.iter().all(|a| a == "Bearer alert-secret"));

    // The failures were logged and recorded (as errors, not alerts).
    let warned = std::fs::read_to_string(inst.dir.path().join("serve-1.err")).unwrap();
    assert!(
        warned.contains("delivery to the alert webhook failed") && warned.contains("503"),
        "{warned}"
    );
    let records = inst.audit().await;
    let errors: Vec<&Value> = common::of_kind(&records, "error")
        .into_iter()
        .filter(|r| r["data"]["stage"] == "alert_delivery")
        .collect();
    assert!(errors.len() >= 2, "{errors:?}");

    // The webhook's secret path is in the config only: not in the audit log, the
    // cursor, any state file, or a warning.
    for file in files_under(&inst.state)
        .into_iter()
        .chain(["serve-1.err", "serve-2.err", "serve-3.err"].map(|f| inst.dir.path().join(f)))
    {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("webhook-secret-part"),
            "{} holds the webhook URL",
            file.display()
        );
    }
    assert!(inst.state.join("alerts-delivery.json").exists());

    // Without its token, serving refuses to start (rather than post unauthenticated).
    let out = inst
        .command()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ALERTS_TOKEN"),
        "{}",
        text(&out.stderr)
    );
}
