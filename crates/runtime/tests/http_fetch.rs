//! `http_fetch` against a real HTTP server on loopback: allowed host works, other hosts
//! are denied before any connection, redirects are followed by hand and each hop goes
//! through the guard.

mod common;

use std::sync::{Arc, Mutex};

use audit::EventKind;
use common::{Harness, Setup};
use cordon_runtime::Integrity;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 server; records the request line of each request it receives.
async fn server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
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
                log.lock().unwrap().push(line.clone());
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
                    "/big" => ("200 OK", String::new(), "x".repeat(600 * 1024)),
                    _ => ("404 Not Found", String::new(), "no".into()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{content}",
                    content.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
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
        obs.content.ends_with("hello from loopback"),
        "{}",
        obs.content
    );
    assert_eq!(obs.provenance.integrity, Integrity::Untrusted);
    assert_eq!(obs.provenance.source, format!("tool:http_fetch {url}"));
    let d = h.one(&id, EventKind::Decision);
    assert_eq!(d.data["decision"], "allow");
    assert_eq!(d.data["action"], format!("http_fetch: GET {url}"));
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
    assert!(obs.content.ends_with("got: ping"), "{}", obs.content);
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
        &format!("http_fetch denied: egress.allow does not match localhost:{port}"),
    );
    assert_eq!(h.one(&id, EventKind::Decision).data["decision"], "deny");
    assert_eq!(obs.provenance.integrity, Integrity::Untrusted);
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
    assert!(obs.content.ends_with("hello from loopback"));
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
    h.assert_refused(&id, &obs, &format!("redirect to http://localhost:{port}/hello denied: egress.allow does not match localhost:{port}"));
    let decisions: Vec<_> = h
        .records_of(&id)
        .into_iter()
        .filter(|r| r.kind == EventKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[1].data["decision"], "deny");
    assert_eq!(decisions[1].data["redirect"], true);
    // Only the first hop reached the server.
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec!["GET /to-evil HTTP/1.1".to_string()]
    );

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
