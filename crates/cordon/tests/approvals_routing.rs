//! `approvals.answered_by = "approvers"` (tiers team and enterprise): the person running
//! the agent cannot answer its requests — not at the chat prompt, not with `cordon
//! approvals` or `cordon memory` — and an approver token through the gateway can.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script};

fn routed(inst: &Install, timeout_secs: u64) {
    let mut text = read(&inst.config);
    text.push_str(&format!(
        "\n[approvals]\ntimeout_secs = {timeout_secs}\nanswered_by = \"approvers\"\n"
    ));
    std::fs::write(&inst.config, text).unwrap();
}

fn touch_then_done() -> Script {
    Script::new(vec![
        tool("exec", json!({ "command": "touch approved.txt" })),
        Reply::Text("done".into()),
    ])
}

async fn pending(inst: &Install) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let out = inst.cordon(&["approvals", "list", "--json"]).await;
        assert_ok(&out);
        let list: Vec<Value> = serde_json::from_str(&text(&out.stdout)).unwrap();
        if !list.is_empty() {
            return list;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "nothing pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_approver_token_answers_and_the_local_cli_cannot() {
    let llm = MockLlm::start(touch_then_done()).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    routed(&inst, 60);
    let run = inst
        .command()
        .args(["run", "make the file"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = pending(&inst).await[0]["id"].as_str().unwrap().to_string();

    // The machine's own CLI is refused, and says where the answer comes from.
    for verb in ["approve", "deny"] {
        let out = inst.cordon(&["approvals", verb, &id]).await;
        assert!(!out.status.success(), "`approvals {verb}` answered");
        assert!(
            text(&out.stderr).contains("approver token"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(pending(&inst).await[0]["status"], "pending");

    // An approver through the gateway answers it; the waiting run goes on.
    let approver = gateway_token(&inst, "approver").await;
    let (mut gw, url) = serve_gateway(&inst, &["--bind", "127.0.0.1:0"]).await;
    let r = reqwest::Client::new()
        .post(format!("{url}/api/approvals/{id}"))
        .bearer_auth(&approver)
        .json(&json!({ "answer": "once" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let out = tokio::time::timeout(Duration::from_secs(60), run.wait_with_output())
        .await
        .expect("the run did not finish")
        .unwrap();
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("approver token"),
        "{}",
        text(&out.stderr)
    );
    assert!(inst.workspace.join("approved.txt").exists());
    let records = inst.audit().await;
    let answered = of_kind(&records, "approval")
        .into_iter()
        .find(|r| r["data"]["state"] == "answered")
        .expect("an answered record");
    assert!(
        answered["data"]["by"]
            .as_str()
            .unwrap()
            .starts_with("gateway token "),
        "{answered}"
    );
    gw.kill().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_terminal_shows_the_request_but_cannot_answer_it() {
    let llm = MockLlm::start(touch_then_done()).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    routed(&inst, 2);
    // "y" would approve in an ordinary chat; here it must not.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        inst.cordon_stdin(&["chat", "--new"], "please make the file\ny\n"),
    )
    .await
    .expect("chat did not finish");
    let err = text(&out.stderr);
    assert!(err.contains("approver token"), "{err}");
    assert!(
        !err.contains("allow? [y]es"),
        "the terminal offered to answer: {err}"
    );
    assert!(!inst.workspace.join("approved.txt").exists());
    let records = inst.audit().await;
    assert!(
        of_kind(&records, "approval")
            .iter()
            .any(|r| r["data"]["state"] == "expired"),
        "the request did not expire unanswered"
    );
}
