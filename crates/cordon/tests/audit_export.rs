//! `[audit.export]` end to end: `cordon log export` and `cordon serve` ship the exact
//! stored lines to a collector, in order, with the bearer token; an outage moves no
//! cursor and the next shipment resends from the first undelivered record; a rewritten
//! log is refused.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{AgentSetup, Install, text};

#[derive(Default)]
struct Collector {
    lines: Vec<String>,
    auth: Vec<String>,
    /// Answer 500 while set.
    down: bool,
}

async fn collector() -> (String, Arc<Mutex<Collector>>) {
    let state: Arc<Mutex<Collector>> = Arc::default();
    let s = state.clone();
    let app = Router::new().route(
        "/ingest",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let mut c = s.lock().unwrap();
                if c.down {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                c.auth.push(
                    headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                );
                let text = String::from_utf8(body.to_vec()).unwrap();
                c.lines.extend(text.lines().map(str::to_string));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn install(url: &str, interval: u64) -> Install {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    cfg.push_str(&format!(
        "\n[audit.export]\nurl = \"{url}\"\ntoken_env = \"AUDIT_TOKEN\"\ninterval_secs = {interval}\nbatch = 2\n"
    ));
    std::fs::write(&inst.config, cfg).unwrap();
    inst
}

async fn export(inst: &Install) -> std::process::Output {
    inst.command()
        .args(["log", "export"])
        .env("AUDIT_TOKEN", "collector-secret")
        .output()
        .await
        .unwrap()
}

fn stored_lines(inst: &Install) -> Vec<String> {
    std::fs::read_to_string(inst.audit_file())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_ships_exact_lines_in_order_and_survives_an_outage() {
    let (url, col) = collector().await;
    let inst = install(&url, 60);
    let out = export(&inst).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("to {url}")),
        "{}",
        text(&out.stdout)
    );
    // Everything stored so far arrived, byte for byte, in order, with the token.
    let shipped = col.lock().unwrap().lines.clone();
    let stored = stored_lines(&inst);
    assert_eq!(shipped, stored[..shipped.len()].to_vec());
    assert!(!shipped.is_empty());
    assert!(
        col.lock()
            .unwrap()
            .auth
            .iter()
            .all(|a| a == "Bearer collector-secret")
    );

    // The collector goes down: the export fails, nothing is lost.
    col.lock().unwrap().down = true;
    let out = export(&inst).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("500"), "{}", text(&out.stderr));
    col.lock().unwrap().down = false;
    let out = export(&inst).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shipped = col.lock().unwrap().lines.clone();
    let stored = stored_lines(&inst);
    assert_eq!(
        shipped,
        stored[..shipped.len()].to_vec(),
        "a gap or a repeat"
    );
    let seqs: Vec<u64> = shipped
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // Without its token the export refuses to run at all.
    let out = inst.cordon(&["log", "export"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("AUDIT_TOKEN"),
        "{}",
        text(&out.stderr)
    );

    // A log replaced behind the exporter's back is not shipped as if it continued.
    std::fs::remove_dir_all(inst.state.join("audit")).unwrap();
    let out = export(&inst).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("replaced or rewritten"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_ships_new_records_continuously() {
    let (url, col) = collector().await;
    let inst = install(&url, 1);
    let mut cmd = inst.command();
    cmd.env("AUDIT_TOKEN", "collector-secret");
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A token created while serving is audited, and shipped within a few intervals.
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::gateway_token(&inst, "read").await;
    let start = std::time::Instant::now();
    loop {
        let shipped = col.lock().unwrap().lines.clone();
        if shipped.iter().any(|l| l.contains("token_created")) {
            assert_eq!(shipped, stored_lines(&inst)[..shipped.len()].to_vec());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not shipped: {shipped:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().await.ok();

    // Serving refuses to start without the collector's token.
    let out = inst
        .command()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("AUDIT_TOKEN"),
        "{}",
        text(&out.stderr)
    );
}
