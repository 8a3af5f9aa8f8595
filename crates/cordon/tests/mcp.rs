//! An MCP server through the real binary: `@modelcontextprotocol/server-everything`
//! (npm, installed by `.ci/run`) configured as a stdio server, its tools approved with
//! `cordon mcp approve`, and called by the scripted model through `cordon run` — in its
//! own sandbox, decided as `mcp_call`, its results untrusted.

mod common;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

fn server_everything() -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v mcp-server-everything"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "SKIPPED: mcp-server-everything is not installed (`npm install -g \
             @modelcontextprotocol/server-everything`; .ci/run installs it)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_tool_of_a_sandboxed_server_is_called_through_the_runtime() {
    if !server_everything() {
        return;
    }
    let llm = MockLlm::start(Script::new(vec![
        tool(
            "everything__echo",
            json!({"message": "hello through cordon"}),
        ),
        tool("everything__get-env", json!({})),
        // Not approved: not offered, refused.
        tool("everything__get-sum", json!({"a": 1, "b": 2})),
        Reply::Text("done".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let cfg = format!(
        "{}\n[mcp.servers.everything]\ncommand = \"mcp-server-everything\"\n",
        read(&inst.config)
    );
    std::fs::write(&inst.config, cfg).unwrap();
    let host_secret = "host-only-value-98765";

    let out = inst.cordon(&["mcp", "test", "everything"]).await;
    assert_ok(&out);
    assert!(text(&out.stdout).contains("echo"), "{}", text(&out.stdout));
    let out = inst
        .cordon(&["mcp", "approve", "everything", "echo", "get-env"])
        .await;
    assert_ok(&out);
    let lock = read(&inst.config.parent().unwrap().join("mcp.lock"));
    assert!(
        lock.contains("name = \"echo\"") && !lock.contains("get-sum"),
        "{lock}"
    );

    let out = inst
        .command()
        .args(["run", "use", "the", "server"])
        .env("SOME_HOST_SECRET", host_secret)
        .output()
        .await
        .unwrap();
    assert_ok(&out);
    let requests = llm.requests();
    let offered = requests[0].to_string();
    assert!(offered.contains("everything__echo") && !offered.contains("everything__get-sum"));
    let seen = tool_results_seen_by_model(&requests);
    assert!(
        seen.iter().any(|r| r.contains("hello through cordon")),
        "{seen:#?}"
    );
    // The server's environment is the sandbox's: nothing of the host's.
    let env = seen
        .iter()
        .find(|r| r.contains("PATH"))
        .cloned()
        .unwrap_or_default();
    assert!(env.contains("/workspace"), "{env}");
    assert!(!env.contains(host_secret), "{env}");

    let records = inst.audit().await;
    let rules: Vec<String> = of_kind(&records, "decision")
        .into_iter()
        .map(|r| r["data"]["rule"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        rules.iter().filter(|r| *r == "mcp.everything").count() >= 2,
        "{rules:?}"
    );
    let sources: Vec<String> = of_kind(&records, "tool_result")
        .into_iter()
        .map(|r| r["data"].to_string())
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s.contains("mcp:everything/echo") && s.contains("untrusted")),
        "{sources:#?}"
    );
    assert_refused(&records, "everything__get-sum", "everything__get-sum");
}
