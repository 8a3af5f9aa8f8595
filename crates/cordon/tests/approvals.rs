//! Approvals kept in the store: a `cordon run` (or chat) waits on a request that
//! `cordon approvals` answers from another process; timeouts deny; grants are scoped,
//! listed and revocable; everything is in the audit log.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::scenario::{Scenario, Site, run_task};
use common::*;
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script};

fn with_approvals(inst: &Install, timeout_secs: u64) {
    let mut text = read(&inst.config);
    text.push_str(&format!(
        "\n[approvals]\ntimeout_secs = {timeout_secs}\ngrant_max_days = 10\n"
    ));
    std::fs::write(&inst.config, text).unwrap();
}

fn spawn_run(inst: &Install, task: &str) -> tokio::process::Child {
    inst.command()
        .args(["run", task])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn list(inst: &Install, all: bool) -> Vec<Value> {
    let mut args = vec!["approvals", "list", "--json"];
    if all {
        args.push("--all");
    }
    let out = inst.cordon(&args).await;
    assert_ok(&out);
    serde_json::from_str(&text(&out.stdout)).unwrap()
}

/// Wait until `n` requests are pending; returns them.
async fn wait_pending(inst: &Install, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let pending = list(inst, false).await;
        if pending.len() >= n {
            return pending;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {n} pending approvals after 30s: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Approval records with this state.
fn approval_states<'a>(records: &'a [Value], state: &str) -> Vec<&'a Value> {
    of_kind(records, "approval")
        .into_iter()
        .filter(|r| r["data"]["state"] == state)
        .collect()
}

fn exec_then(text: &str, command: &str) -> Vec<Reply> {
    vec![
        tool("exec", json!({ "command": command })),
        Reply::Text(text.into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_waits_for_an_approval_given_from_another_process() {
    let llm = MockLlm::start(Script::new(exec_then("done", "touch approved.txt"))).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 60);
    let run = spawn_run(&inst, "make the file");
    let pending = wait_pending(&inst, 1).await;
    let req = &pending[0];
    assert_eq!(req["status"], "pending");
    assert_eq!(req["agent"], "default");
    assert_eq!(req["tool"], "exec");
    assert!(
        req["action"]
            .as_str()
            .unwrap()
            .contains("touch approved.txt"),
        "{req}"
    );
    assert_eq!(req["argv"], json!(["touch", "approved.txt"]));
    let id = req["id"].as_str().unwrap().to_string();
    // Still waiting: nothing ran yet.
    assert!(!inst.workspace.join("approved.txt").exists());
    let text_list = inst.cordon(&["approvals", "list"]).await;
    assert_ok(&text_list);
    let shown = text(&text_list.stdout);
    assert!(
        shown.contains(&id) && shown.contains("touch approved.txt") && shown.contains("why:"),
        "{shown}"
    );

    let out = inst.cordon(&["approvals", "approve", &id]).await;
    assert_ok(&out);
    assert!(text(&out.stdout).contains(&id));
    let out = run.wait_with_output().await.unwrap();
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "done");
    // The waiting run told its user what waits and how to answer it.
    let told = text(&out.stderr);
    assert!(
        told.contains(&format!("approval needed [{id}]"))
            && told.contains(&format!("cordon approvals approve {id}")),
        "{told}"
    );
    assert!(
        inst.workspace.join("approved.txt").exists(),
        "the action ran"
    );

    // Answering twice is refused, naming the id.
    let again = inst.cordon(&["approvals", "deny", &id]).await;
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(
        err.contains(&id) && err.contains("already answered"),
        "{err}"
    );
    let unknown = inst
        .cordon(&["approvals", "approve", "01NOSUCHAPPROVAL"])
        .await;
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("01NOSUCHAPPROVAL"));

    let records = inst.audit().await;
    let requested = approval_states(&records, "requested");
    assert_eq!(requested.len(), 1, "{requested:?}");
    assert_eq!(requested[0]["data"]["approval_id"], id.as_str());
    let answered = approval_states(&records, "answered");
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["data"]["by"], "cli");
    assert_eq!(answered[0]["data"]["status"], "approved");
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_from_another_process_fails_the_action() {
    let llm = MockLlm::start(Script::new(exec_then("gave up", "touch denied.txt"))).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 60);
    let run = spawn_run(&inst, "make the file");
    let id = wait_pending(&inst, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ok(&inst.cordon(&["approvals", "deny", &id]).await);
    let out = run.wait_with_output().await.unwrap();
    assert_ok(&out);
    assert!(!inst.workspace.join("denied.txt").exists());
    let results = tool_results_seen_by_model(&llm.requests());
    assert!(
        results.iter().any(|r| r.contains("refused")),
        "the model was told: {results:?}"
    );
    let all = list(&inst, true).await;
    assert_eq!(all[0]["status"], "denied");
    let records = inst.audit().await;
    assert_eq!(approval_states(&records, "answered").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_request_expires_and_is_denied() {
    let llm = MockLlm::start(Script::new(exec_then("timed out", "touch late.txt"))).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 2);
    let start = Instant::now();
    let out = inst.cordon(&["run", "make the file"]).await;
    assert_ok(&out);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert!(!inst.workspace.join("late.txt").exists());
    let all = list(&inst, true).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"], "expired");
    let id = all[0]["id"].as_str().unwrap();
    // A late answer changes nothing and says why.
    let late = inst.cordon(&["approvals", "approve", id]).await;
    assert!(!late.status.success());
    let err = text(&late.stderr);
    assert!(err.contains(id) && err.contains("expired"), "{err}");
    let records = inst.audit().await;
    assert_eq!(approval_states(&records, "expired").len(), 1);
    let results = tool_results_seen_by_model(&llm.requests());
    assert!(
        results.iter().any(|r| r.contains("expired")),
        "the model was told: {results:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_grant_does_not_leak_into_another_session() {
    let mut replies = vec![
        // Run 1: the same command twice: asked once, then covered by the session grant.
        tool("exec", json!({"command": "touch s.txt"})),
        tool("exec", json!({"command": "touch s.txt"})),
        Reply::Text("one".into()),
    ];
    // Run 2, a new session: asked again.
    replies.extend(exec_then("two", "touch s.txt"));
    let llm = MockLlm::start(Script::new(replies)).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 60);
    let run = spawn_run(&inst, "first");
    let id = wait_pending(&inst, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ok(
        &inst
            .cordon(&["approvals", "approve", &id, "--session"])
            .await,
    );
    assert_ok(&run.wait_with_output().await.unwrap());
    assert_eq!(list(&inst, true).await.len(), 1, "the repeat was not asked");

    let run = spawn_run(&inst, "second");
    let pending = wait_pending(&inst, 1).await;
    assert_ne!(pending[0]["session"], list(&inst, true).await[0]["session"]);
    let id2 = pending[0]["id"].as_str().unwrap().to_string();
    assert_ok(&inst.cordon(&["approvals", "deny", &id2]).await);
    assert_ok(&run.wait_with_output().await.unwrap());

    let records = inst.audit().await;
    assert_eq!(approval_states(&records, "requested").len(), 2);
    let granted = approval_states(&records, "granted");
    assert_eq!(granted.len(), 1);
    assert!(granted[0]["data"]["session"].is_string(), "a session grant");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_grant_is_listed_covers_later_sessions_and_revoke_asks_again() {
    let mut replies = exec_then("one", "touch a.txt");
    replies.extend(exec_then("two", "touch a.txt"));
    replies.extend(exec_then("three", "touch a.txt"));
    let llm = MockLlm::start(Script::new(replies)).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 60);
    let run = spawn_run(&inst, "first");
    let id = wait_pending(&inst, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Longer than approvals.grant_max_days: refused.
    let too_long = inst
        .cordon(&["approvals", "approve", &id, "--agent", "--days", "11"])
        .await;
    assert!(!too_long.status.success());
    assert!(text(&too_long.stderr).contains("grant_max_days"));
    assert_ok(
        &inst
            .cordon(&["approvals", "approve", &id, "--agent", "--days", "5"])
            .await,
    );
    assert_ok(&run.wait_with_output().await.unwrap());

    let out = inst.cordon(&["approvals", "grants", "--json"]).await;
    assert_ok(&out);
    let grants: Vec<Value> = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert!(grants[0]["session"].is_null(), "an agent grant");
    let grant_id = grants[0]["id"].as_str().unwrap().to_string();

    // A new session: covered, nobody is asked.
    std::fs::remove_file(inst.workspace.join("a.txt")).unwrap();
    let out = inst.cordon(&["run", "second"]).await;
    assert_ok(&out);
    assert!(inst.workspace.join("a.txt").exists());
    assert_eq!(list(&inst, true).await.len(), 1);

    let out = inst.cordon(&["approvals", "revoke", &grant_id]).await;
    assert_ok(&out);
    let out = inst.cordon(&["approvals", "grants"]).await;
    assert!(text(&out.stdout).contains("no active grants"));
    // The revocation is recorded with who revoked it (here the CLI, which also granted).
    let records = inst.audit().await;
    let revoked = of_kind(&records, "approval")
        .into_iter()
        .find(|r| r["data"]["state"] == "revoked" && r["data"]["grant_id"] == grant_id.as_str())
        .expect("a revoked record for the grant");
    assert_eq!(revoked["data"]["by"], "cli", "{revoked}");

    let run = spawn_run(&inst, "third");
    let id3 = wait_pending(&inst, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ok(&inst.cordon(&["approvals", "deny", &id3]).await);
    assert_ok(&run.wait_with_output().await.unwrap());

    let records = inst.audit().await;
    assert_eq!(approval_states(&records, "requested").len(), 2);
    assert_eq!(approval_states(&records, "answered").len(), 2);
    assert_eq!(approval_states(&records, "granted").len(), 1);
    let revoked = approval_states(&records, "revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["grant_id"], grant_id.as_str());
    // The covered run's decision names the grant.
    assert!(
        of_kind(&records, "decision")
            .iter()
            .any(|d| d["data"]["grant_id"] == grant_id.as_str()),
        "decision record names the grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_grant_covers_only_single_commands_with_that_prefix() {
    let mut replies = exec_then("one", "touch p1.txt");
    // Covered: same leading word.
    replies.extend(exec_then("two", "touch p2.txt"));
    // Not covered: a second command smuggled after `;`.
    replies.extend(exec_then("three", "touch p3.txt; rm -f p1.txt"));
    let llm = MockLlm::start(Script::new(replies)).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 60);
    let run = spawn_run(&inst, "first");
    let id = wait_pending(&inst, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A prefix that is not the asked command's is refused.
    let wrong = inst
        .cordon(&["approvals", "approve", &id, "--agent", "--prefix", "rm"])
        .await;
    assert!(!wrong.status.success());
    assert!(text(&wrong.stderr).contains(&id));
    assert_ok(
        &inst
            .cordon(&["approvals", "approve", &id, "--agent", "--prefix", "touch"])
            .await,
    );
    assert_ok(&run.wait_with_output().await.unwrap());
    assert_ok(&inst.cordon(&["run", "second"]).await);
    assert!(inst.workspace.join("p2.txt").exists());

    let run = spawn_run(&inst, "third");
    let pending = wait_pending(&inst, 1).await;
    assert!(
        pending[0]["action"]
            .as_str()
            .unwrap()
            .contains("rm -f p1.txt")
    );
    assert!(pending[0]["argv"].is_null(), "compound command has no argv");
    assert_ok(
        &inst
            .cordon(&["approvals", "deny", pending[0]["id"].as_str().unwrap()])
            .await,
    );
    assert_ok(&run.wait_with_output().await.unwrap());
    assert!(inst.workspace.join("p1.txt").exists(), "rm never ran");
    assert!(!inst.workspace.join("p3.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_is_unblocked_by_an_answer_from_another_terminal() {
    use tokio::io::AsyncWriteExt;
    let llm = MockLlm::start(Script::new(exec_then("chat done", "touch chat.txt"))).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    with_approvals(&inst, 60);
    let mut chat = inst
        .command()
        .arg("chat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    stdin.write_all(b"make the file\n").await.unwrap();
    let id = wait_pending(&inst, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Nobody types at the chat; the answer comes from here.
    assert_ok(&inst.cordon(&["approvals", "approve", &id]).await);
    let start = Instant::now();
    while !inst.workspace.join("chat.txt").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chat still blocked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stdin.write_all(b"/exit\n").await.unwrap();
    drop(stdin);
    let out = chat.wait_with_output().await.unwrap();
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&id), "the prompt shows the id: {stderr}");
    assert!(stderr.contains("approved by cli"), "{stderr}");
    assert!(text(&out.stdout).contains("chat done"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_change_waits_past_the_timeout_and_a_failed_write_leaves_it_pending() {
    let docs = Site::start().await;
    docs.page("/note", "The build server is build.internal.");
    let url = format!("http://docs.test:{}/note", docs.port);
    let llm = MockLlm::start(Script::new(vec![
        tool("http_fetch", json!({ "url": url })),
        tool(
            "memory_write",
            json!({"content": "build server: build.internal"}),
        ),
        Reply::Text("noted".into()),
    ]))
    .await;
    let inst = Scenario {
        tools: r#"["read_file", "http_fetch", "memory_write"]"#,
        egress_allow: vec![format!("docs.test:{}", docs.port)],
        resolve: vec!["docs.test".into()],
        approval_timeout_secs: 1,
        ..Default::default()
    }
    .install(&llm.base_url());
    let out = run_task(&inst, "note the build server").await;
    assert_ok(&out);
    // Nobody waits for it, and approvals.timeout_secs does not deny it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pending = list(&inst, false).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let req = &pending[0];
    assert_eq!(req["kind"], "memory_write");
    assert_eq!(req["tool"], "memory_write");
    assert_eq!(req["payload"]["text"], "build server: build.internal");
    assert_eq!(req["payload"]["labels"]["integrity"], "untrusted");
    assert!(req["rule"].as_str().unwrap().contains("memory"), "{req}");
    let id = req["id"].as_str().unwrap().to_string();

    // The memory file cannot be written: the approval fails, says so, stays pending.
    let memory = inst.state.join("agents/default/memory");
    std::fs::create_dir_all(memory.join("MEMORY.md")).unwrap();
    let out = inst.cordon(&["approvals", "approve", &id]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&id) && err.contains("not applied"), "{err}");
    assert_eq!(list(&inst, false).await.len(), 1, "still pending");

    std::fs::remove_dir(memory.join("MEMORY.md")).unwrap();
    let out = inst.cordon(&["approvals", "approve", &id]).await;
    assert_ok(&out);
    assert!(text(&out.stdout).contains("added to MEMORY.md"));
    let written = read(&memory.join("MEMORY.md"));
    assert_eq!(written.matches("build server: build.internal").count(), 1);
    assert!(written.contains(&format!("id={id} ")), "{written}");
    let all = list(&inst, true).await;
    assert_eq!(all[0]["status"], "approved");

    let records = inst.audit().await;
    assert_eq!(approval_states(&records, "requested").len(), 1);
    let answered = approval_states(&records, "answered");
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["data"]["entry"], id.as_str());
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}
