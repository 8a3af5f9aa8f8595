//! The journal's cap, in an untrusted session: a file tool's change that fits is
//! journaled and runs without asking; one that does not fit is not checkpointed, so it
//! asks (and with nobody to answer, is refused, the file untouched); a command's change
//! set that turns out not to fit asks a human after the command ran: refused, it is
//! discarded whole, the workspace untouched; approved, it is applied and journaled.

mod common;

use audit::EventKind;
use common::{Harness, SESSION, Setup};
use cordon_runtime::ApprovalAnswer;
use serde_json::json;

/// 1 MiB cap; the session has read untrusted content.
fn capped() -> Harness {
    capped_answering(Vec::new())
}

/// [`capped`], with a human who gives `answers`.
fn capped_answering(answers: Vec<ApprovalAnswer>) -> Harness {
    let h = Harness::new(Setup {
        native_sandbox: true,
        exec_mode: "auto",
        checkpoints: true,
        extra_toml: "\n[checkpoints]\nmax_mb = 1\n",
        approver: answers,
        ..Setup::default()
    });
    h.rt.join_labels(
        SESSION,
        &guard::Labels::untrusted("http_fetch https://evil.example/"),
    );
    h
}

#[tokio::test]
async fn a_file_change_over_the_cap_asks_and_one_within_it_does_not() {
    let h = capped();
    let (id, obs) = h
        .call(
            "write_file",
            json!({"path": "small.txt", "content": "fits\n"}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    let decision = h.one(&id, EventKind::Decision);
    assert_eq!(decision.data["decision"], "allow", "{:?}", decision.data);
    assert_eq!(decision.data["checkpointed"], true);

    let big = "x".repeat(2 << 20);
    let (id, obs) = h
        .call("write_file", json!({"path": "big.txt", "content": big}))
        .await;
    h.assert_refused(&id, &obs, "approval required");
    let decision = h.one(&id, EventKind::Decision);
    assert_eq!(decision.data["decision"], "ask", "{:?}", decision.data);
    assert_eq!(decision.data["rule"], "taint.write_outside_scratch");
    assert!(decision.data.get("checkpointed").is_none());
    assert!(!h.ws.join("big.txt").exists());
    assert_eq!(
        std::fs::read_to_string(h.ws.join("small.txt")).unwrap(),
        "fits\n"
    );
}

/// Runs a command that changes `keep.txt` and writes 3 MB, over the 1 MiB cap.
async fn over_cap_command(h: &Harness) -> (String, cordon_runtime::Observation) {
    std::fs::write(h.ws.join("keep.txt"), "before\n").unwrap();
    h.call(
        "exec",
        json!({"command": "sh -c 'echo after > keep.txt; head -c 3000000 /dev/zero > big.bin'"}),
    )
    .await
}

/// The over-cap question a human was asked, and its `approval` record.
fn asked_over_cap(h: &Harness, id: &str) -> audit::Record {
    let asked = h.approver.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "one question: {asked:?}");
    assert_eq!(asked[0].rule, "checkpoint.over_cap");
    assert!(
        asked[0].reason.contains("max_mb = 1") && asked[0].reason.contains("could not be undone"),
        "{}",
        asked[0].reason
    );
    let decided = h
        .records_of(id)
        .into_iter()
        .filter(|r| r.kind == EventKind::Approval)
        .find(|r| r.data["rule"] == "checkpoint.over_cap")
        .expect("the answer is recorded");
    // The command itself was allowed because its changes would be journaled.
    let decision = h.one(id, EventKind::Decision);
    assert_eq!(decision.data["decision"], "allow");
    assert_eq!(decision.data["checkpointed"], true);
    decided
}

#[tokio::test]
async fn a_command_whose_changes_do_not_fit_asks_and_a_refusal_discards_them_whole() {
    let h = capped_answering(vec![ApprovalAnswer::Deny]);
    let (id, obs) = over_cap_command(&h).await;
    assert!(obs.is_error, "{}", obs.content);
    assert!(
        obs.content.contains("were discarded")
            && obs.content.contains("max_mb")
            && obs.content.contains("the human refused"),
        "says why and which key: {}",
        obs.content
    );
    asked_over_cap(&h, &id);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("keep.txt")).unwrap(),
        "before\n"
    );
    assert!(!h.ws.join("big.bin").exists());
    assert!(
        h.records_of(&id)
            .iter()
            .all(|r| r.kind != EventKind::Checkpoint),
        "nothing journaled"
    );
    // The next command starts from the real workspace: nothing of the discarded set
    // is left in the overlay.
    let (_, obs) = h.call("exec", json!({"command": "cat keep.txt"})).await;
    assert!(obs.content.contains("before"), "{}", obs.content);
    assert!(!obs.content.contains("after"), "{}", obs.content);
}

#[tokio::test]
async fn an_approved_change_set_over_the_cap_is_applied_and_journaled() {
    let h = capped_answering(vec![ApprovalAnswer::Once]);
    let (id, obs) = over_cap_command(&h).await;
    assert!(!obs.is_error, "{}", obs.content);
    asked_over_cap(&h, &id);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("keep.txt")).unwrap(),
        "after\n"
    );
    assert_eq!(
        std::fs::metadata(h.ws.join("big.bin")).unwrap().len(),
        3_000_000
    );
    let record = h.one(&id, EventKind::Checkpoint);
    let paths: Vec<&str> = record.data["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["big.bin", "keep.txt"], "{:?}", record.data);
}
