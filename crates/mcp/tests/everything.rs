//! Against the reference server `@modelcontextprotocol/server-everything` (npm), over
//! stdio: listing, plain calls, a long-running tool with progress, an image described
//! rather than dumped, a timeout that cancels, and what the scanner makes of a benign
//! server's descriptions.

mod support;

use std::time::Duration;

use cordon_mcp::{ErrorKind, Limits, Pins, Status, compare, vet};
use serde_json::json;

const PROGRAM: &str = "mcp-server-everything";
const HOW: &str = "npm install -g @modelcontextprotocol/server-everything";
const CALL: Duration = Duration::from_secs(30);

async fn start() -> Option<(tokio::process::Child, cordon_mcp::Session)> {
    if !support::installed(PROGRAM, HOW) {
        return None;
    }
    Some(support::start("everything", PROGRAM, &["stdio"], Limits::default()).await)
}

#[tokio::test]
async fn lists_and_calls_echo_and_sum() {
    let Some((_child, s)) = start().await else {
        return;
    };
    assert_eq!(s.info().name, "mcp-servers/everything");
    assert!(!s.info().version.is_empty());
    let tools = s.list_tools().await.expect("list");
    let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    for want in [
        "echo",
        "get-sum",
        "get-tiny-image",
        "trigger-long-running-operation",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let out = s
        .call_tool("echo", json!({"message": "hello from cordon"}), CALL)
        .await
        .expect("echo");
    assert!(out.text.contains("hello from cordon"), "{}", out.text);
    assert!(!out.is_error);
    let out = s
        .call_tool("get-sum", json!({"a": 2, "b": 40}), CALL)
        .await
        .expect("sum");
    assert!(out.text.contains("42"), "{}", out.text);

    // Every tool approved, then compared again: all approved.
    let mut pins = Pins::default();
    for t in &tools {
        pins.approve("everything", t);
    }
    let again = s.list_tools().await.expect("list again");
    assert!(
        compare(&again, pins.server("everything"))
            .iter()
            .all(|c| c.status == Status::Approved)
    );
    s.close().await;
}

#[tokio::test]
async fn a_long_running_tool_reports_progress() {
    let Some((_child, s)) = start().await else {
        return;
    };
    let out = s
        .call_tool(
            "trigger-long-running-operation",
            json!({"duration": 1, "steps": 4}),
            CALL,
        )
        .await
        .expect("long-running");
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(out.progress, 4, "{out:?}");
    assert!(out.duration >= Duration::from_millis(900), "{out:?}");
}

#[tokio::test]
async fn a_long_running_tool_past_its_timeout_is_cancelled_and_the_session_goes_on() {
    let Some((_child, s)) = start().await else {
        return;
    };
    let err = s
        .call_tool(
            "trigger-long-running-operation",
            json!({"duration": 20, "steps": 20}),
            Duration::from_millis(500),
        )
        .await
        .expect_err("timeout");
    assert!(matches!(err.kind, ErrorKind::Timeout(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("MCP server `everything`, tool `trigger-long-running-operation`"),
        "{text}"
    );
    let out = s
        .call_tool("echo", json!({"message": "still here"}), CALL)
        .await
        .expect("echo");
    assert!(out.text.contains("still here"));
}

#[tokio::test]
async fn an_image_is_described_not_dumped() {
    let Some((_child, s)) = start().await else {
        return;
    };
    let out = s
        .call_tool("get-tiny-image", json!({}), CALL)
        .await
        .expect("image");
    let image = out
        .blocks
        .iter()
        .find(|b| b.kind == "image")
        .unwrap_or_else(|| panic!("no image in {out:?}"));
    assert_eq!(image.mime_type.as_deref(), Some("image/png"));
    assert!(image.bytes > 100, "{image:?}");
    assert!(
        out.text
            .contains(&format!("[image: image/png, {} bytes]", image.bytes)),
        "{}",
        out.text
    );
    // No base64 in what the agent gets.
    assert!(!out.text.contains("iVBORw0KGgo"), "{}", out.text);
    assert!(out.text.len() < 2000, "{}", out.text);
}

#[tokio::test]
async fn the_reference_servers_descriptions_raise_nothing_critical() {
    let Some((_child, s)) = start().await else {
        return;
    };
    let tools = s.list_tools().await.expect("list");
    for v in vet("everything", &tools, &Default::default()) {
        assert!(v.report.passes(), "{}: {:?}", v.tool, v.report.findings);
    }
}
