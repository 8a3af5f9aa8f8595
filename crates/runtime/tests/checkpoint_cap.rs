//! The journal's cap, in an untrusted session: a file tool's change that fits is
//! journaled and runs without asking; one that does not fit is not checkpointed, so it
//! asks (and with nobody to answer, is refused, the file untouched); a command's change
//! set that turns out not to fit is discarded whole, the workspace untouched.

mod common;

use audit::EventKind;
use common::{Harness, SESSION, Setup};
use serde_json::json;

/// 1 MiB cap; the session has read untrusted content.
fn capped() -> Harness {
    let h = Harness::new(Setup {
        native_sandbox: true,
        exec_mode: "auto",
        checkpoints: true,
        extra_toml: "\n[checkpoints]\nmax_mb = 1\n",
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

#[tokio::test]
async fn a_command_whose_changes_do_not_fit_is_discarded_whole() {
    let h = capped();
    std::fs::write(h.ws.join("keep.txt"), "before\n").unwrap();
    let (id, obs) = h
        .call(
            "exec",
            json!({"command": "sh -c 'echo after > keep.txt; head -c 3000000 /dev/zero > big.bin'"}),
        )
        .await;
    assert!(obs.is_error, "{}", obs.content);
    assert!(
        obs.content.contains("were discarded") && obs.content.contains("max_mb"),
        "says why and which key: {}",
        obs.content
    );
    let decision = h.one(&id, EventKind::Decision);
    assert_eq!(decision.data["decision"], "allow");
    assert_eq!(decision.data["checkpointed"], true);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("keep.txt")).unwrap(),
        "before\n"
    );
    assert!(!h.ws.join("big.bin").exists());
    // The next command starts from the real workspace: nothing of the discarded set
    // is left in the overlay.
    let (_, obs) = h.call("exec", json!({"command": "cat keep.txt"})).await;
    assert!(obs.content.contains("before"), "{}", obs.content);
    assert!(!obs.content.contains("after"), "{}", obs.content);
}
