//! `cordon run` completes a multi-step task against the scripted LLM, through every
//! boundary, with both protocols and both transfer modes.

mod common;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

fn todo_script() -> Script {
    Script::new(vec![
        tool(
            "write_file",
            json!({"path": "notes/todo.txt", "content": "buy milk\nbuy eggs\n"}),
        ),
        tool("read_file", json!({"path": "notes/todo.txt"})),
        tool(
            "edit_file",
            json!({"path": "notes/todo.txt", "old_string": "eggs", "new_string": "bread"}),
        ),
        tool("read_file", json!({"path": "/workspace/notes/todo.txt"})),
        Reply::Text("The list now has milk and bread.".into()),
    ])
}

async fn run_todo(provider: &str, stream: bool) {
    let llm = MockLlm::start(todo_script()).await;
    let extra = format!("max_retries = 0\nstream = {stream}");
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            extra_model: &extra,
            ..Default::default()
        },
    );
    if provider == "anthropic" {
        let cfg = read(&inst.config).replace("provider = \"openai\"", "provider = \"anthropic\"");
        std::fs::write(&inst.config, cfg).unwrap();
    }
    let out = inst.cordon(&["run", "make", "a", "todo", "list"]).await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "The list now has milk and bread.");
    assert_eq!(
        read(&inst.workspace.join("notes/todo.txt")),
        "buy milk\nbuy bread\n"
    );

    // The model saw each tool's real result.
    let requests = llm.requests();
    assert_eq!(requests.len(), 5, "one model request per step");
    let second = requests[2].to_string();
    assert!(
        second.contains("buy milk\\nbuy eggs"),
        "read_file result reached the model: {second}"
    );
    assert!(requests[0].to_string().contains("make a todo list"));

    // Everything is in the audit log, and the log verifies.
    let records = inst.audit().await;
    for kind in [
        "config_loaded",
        "session_start",
        "user_message",
        "model_output",
        "tool_proposed",
        "decision",
        "tool_result",
    ] {
        assert!(!of_kind(&records, kind).is_empty(), "no {kind} record");
    }
    assert_eq!(of_kind(&records, "tool_result").len(), 4);
    assert!(decisions(&records).iter().all(|(d, _)| d == "allow"));
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_streaming() {
    run_todo("openai", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_non_streaming() {
    run_todo("openai", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_streaming() {
    run_todo("anthropic", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_non_streaming() {
    run_todo("anthropic", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_in_auto_mode_runs_in_the_workspace() {
    let llm = MockLlm::start(Script::new(vec![
        tool(
            "exec",
            json!({"command": "echo hello > greeting.txt && pwd && id -u"}),
        ),
        Reply::Text("done".into()),
    ]))
    .await;
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            exec_mode: "auto",
            ..Default::default()
        },
    );
    assert_ok(&inst.cordon(&["run", "greet"]).await);
    assert_eq!(read(&inst.workspace.join("greeting.txt")), "hello\n");
    let seen = tool_results_seen_by_model(&llm.requests()).join("\n");
    assert!(
        seen.contains("/workspace"),
        "command ran in /workspace: {seen}"
    );
    assert!(
        seen.contains("1000"),
        "command ran as the sandbox user: {seen}"
    );
}
