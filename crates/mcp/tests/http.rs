//! Against `@modelcontextprotocol/server-everything` in streamable-HTTP mode on a
//! loopback port, through a reqwest client the test builds (as Cordon will build one
//! that goes through its egress proxy).

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cordon_mcp::{ErrorKind, Limits, Session};
use serde_json::json;
use tokio::process::Command;

const CALL: Duration = Duration::from_secs(30);

fn client() -> cordon_mcp::reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    cordon_mcp::reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_streamable_http_server_through_the_callers_client() {
    if !support::installed(
        "mcp-server-everything",
        "npm install -g @modelcontextprotocol/server-everything",
    ) {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _child = Command::new("mcp-server-everything")
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    let s = Session::connect_http("everything-http", &url, client(), Limits::default())
        .await
        .expect("connect");
    assert_eq!(s.info().name, "mcp-servers/everything");
    let tools = s.list_tools().await.expect("list");
    assert!(tools.iter().any(|t| t.name == "echo"));
    let out = s
        .call_tool("echo", json!({"message": "over http"}), CALL)
        .await
        .expect("echo");
    assert!(out.text.contains("over http"), "{}", out.text);
    let out = s
        .call_tool(
            "trigger-long-running-operation",
            json!({"duration": 1, "steps": 3}),
            CALL,
        )
        .await
        .expect("progress");
    assert_eq!(out.progress, 3, "{out:?}");
    let err = s
        .call_tool(
            "trigger-long-running-operation",
            json!({"duration": 20, "steps": 20}),
            Duration::from_millis(300),
        )
        .await
        .expect_err("timeout");
    assert!(matches!(err.kind, ErrorKind::Timeout(_)), "{err}");
    s.close().await;
}

#[tokio::test]
async fn nothing_listening_is_a_clear_initialize_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let limits = Limits {
        init_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let url = format!("http://127.0.0.1:{port}/mcp");
    let err = Session::connect_http("nowhere", &url, client(), limits)
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(text.starts_with("MCP server `nowhere`"), "{text}");
    assert!(err.kind.is_fatal(), "{text}");
    assert!(
        text.contains("send initialize request") && text.contains(&url),
        "{text}"
    );
}
