//! `cordon chat`: approvals asked inline on the terminal, "yes for this session", resume.

mod common;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

#[tokio::test(flavor = "multi_thread")]
async fn approvals_inline_and_session_grants() {
    let llm = MockLlm::start(Script::new(vec![
        // Turn 1: the same command twice (asked once, then covered by the session grant),
        // then a different command (asked again, and refused).
        tool("exec", json!({"command": "echo one >> log.txt"})),
        tool("exec", json!({"command": "echo one >> log.txt"})),
        tool("exec", json!({"command": "touch other.txt"})),
        Reply::Text("turn one done".into()),
        // Turn 2.
        Reply::Text("turn two done".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    // Answers: `s` (session) for the first question, `n` for the other command.
    let out = inst
        .cordon_stdin(&["chat"], "append to the log\ns\nn\nand again\n/exit\n")
        .await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stdout.contains("turn one done") && stdout.contains("turn two done"),
        "{stdout}"
    );
    assert_eq!(stderr.matches("approval needed").count(), 2, "{stderr}");
    assert!(stderr.contains("echo one >> log.txt") && stderr.contains("touch other.txt"));
    assert_eq!(read(&inst.workspace.join("log.txt")), "one\none\n");
    assert!(!inst.workspace.join("other.txt").exists());

    let records = inst.audit().await;
    let answers: Vec<String> = of_kind(&records, "approval")
        .iter()
        .filter(|r| r["data"]["state"] == "decided")
        .map(|r| r["data"].to_string())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(
        answers[0].contains("session") && answers[1].contains("deny"),
        "{answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_resumes_the_last_session_and_new_starts_fresh() {
    let llm = MockLlm::start(Script::new(vec![
        Reply::Text("first".into()),
        Reply::Text("second".into()),
        Reply::Text("third".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    assert_ok(
        &inst
            .cordon_stdin(&["chat"], "remember the word PAPAYA\n")
            .await,
    );
    let out = inst.cordon_stdin(&["chat"], "what was the word?\n").await;
    assert_ok(&out);
    assert!(text(&out.stderr).contains("resuming session"));
    // The resumed conversation carried the first turn to the model.
    let requests = llm.requests();
    assert!(
        requests[1].to_string().contains("PAPAYA"),
        "history was resumed"
    );
    let out = inst.cordon_stdin(&["chat", "--new"], "hello\n").await;
    assert_ok(&out);
    assert!(
        !llm.requests()[2].to_string().contains("PAPAYA"),
        "--new starts clean"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_works_while_a_chat_is_open() {
    use tokio::io::AsyncWriteExt;
    let llm = MockLlm::start(Script::new(vec![
        Reply::Text("from chat".into()),
        Reply::Text("from run".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let mut chat = inst
        .command()
        .arg("chat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    // Wait until the chat turn reached the model, then run a task beside it.
    for _ in 0..100 {
        if !llm.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = inst.cordon(&["run", "beside the chat"]).await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "from run");
    drop(stdin);
    let chat_out = chat.wait_with_output().await.unwrap();
    assert_ok(&chat_out);
    assert_ok(&inst.cordon(&["log", "verify"]).await);
    let records = inst.audit().await;
    assert_eq!(
        of_kind(&records, "session_start").len(),
        2,
        "both sessions recorded"
    );
}
