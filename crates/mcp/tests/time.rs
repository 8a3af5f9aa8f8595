//! Against `mcp-server-time` (PyPI), over stdio.

mod support;

use std::time::Duration;

use cordon_mcp::{Limits, vet};
use serde_json::json;

const CALL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn gets_the_current_time_in_a_timezone() {
    if !support::installed("mcp-server-time", "pip install mcp-server-time") {
        return;
    }
    let (_child, s) = support::start("time", "mcp-server-time", &[], Limits::default()).await;
    assert_eq!(s.info().name, "mcp-time");
    let tools = s.list_tools().await.expect("list");
    let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"get_current_time"), "{names:?}");
    assert!(
        vet("time", &tools, &Default::default())
            .iter()
            .all(|v| v.report.passes())
    );
    let out = s
        .call_tool(
            "get_current_time",
            json!({"timezone": "Europe/Berlin"}),
            CALL,
        )
        .await
        .expect("time");
    assert!(!out.is_error, "{}", out.text);
    let v: serde_json::Value = serde_json::from_str(&out.text).expect("JSON text");
    assert_eq!(v["timezone"], "Europe/Berlin");
    assert!(v["datetime"].as_str().is_some_and(|d| d.len() >= 19), "{v}");

    // A timezone that does not exist: the tool's own error, kept as one.
    let out = s
        .call_tool(
            "get_current_time",
            json!({"timezone": "Mars/Olympus"}),
            CALL,
        )
        .await
        .expect("answered");
    assert!(out.is_error, "{}", out.text);
    assert!(out.text.contains("Mars/Olympus"), "{}", out.text);
    s.close().await;
}
