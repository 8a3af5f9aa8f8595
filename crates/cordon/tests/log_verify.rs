//! `cordon log verify` detects any edit, deletion, insertion or reordering of the audit
//! log and names the first bad record.

mod common;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

async fn install_with_log() -> Install {
    let llm = MockLlm::start(Script::new(vec![
        tool("write_file", json!({"path": "a.txt", "content": "alpha"})),
        tool("read_file", json!({"path": "a.txt"})),
        Reply::Text("ok".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    assert_ok(&inst.cordon(&["run", "write then read"]).await);
    assert_ok(&inst.cordon(&["log", "verify"]).await);
    inst
}

async fn assert_detected(inst: &Install, original: &[u8], damaged: Vec<u8>, what: &str) {
    std::fs::write(inst.audit_file(), &damaged).unwrap();
    let out = inst.cordon(&["log", "verify"]).await;
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: verify passed on a damaged log"
    );
    assert!(
        err.contains("line"),
        "{what}: the bad record is named: {err}"
    );
    std::fs::write(inst.audit_file(), original).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_tampering_is_detected() {
    let inst = install_with_log().await;
    let original = std::fs::read(inst.audit_file()).unwrap();
    let lines: Vec<&[u8]> = original.split_inclusive(|b| *b == b'\n').collect();
    assert!(lines.len() >= 8, "a real log to tamper with");

    for i in 0..lines.len() {
        // Change one byte in the middle of record i.
        let mut edited: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        let mid = edited[i].len() / 2;
        edited[i][mid] = if edited[i][mid] == b'a' { b'b' } else { b'a' };
        assert_detected(
            &inst,
            &original,
            edited.concat(),
            &format!("edit record {i}"),
        )
        .await;

        // Delete record i.
        let mut deleted: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        deleted.remove(i);
        assert_detected(
            &inst,
            &original,
            deleted.concat(),
            &format!("delete record {i}"),
        )
        .await;

        // Duplicate record i (an insertion).
        let mut inserted: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        inserted.insert(i, lines[i].to_vec());
        assert_detected(
            &inst,
            &original,
            inserted.concat(),
            &format!("insert at {i}"),
        )
        .await;

        // Swap records i and i+1.
        if i + 1 < lines.len() {
            let mut swapped: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
            swapped.swap(i, i + 1);
            assert_detected(
                &inst,
                &original,
                swapped.concat(),
                &format!("swap {i}/{}", i + 1),
            )
            .await;
        }
    }
    // Truncating inside the last record, and cutting a byte range across two records.
    assert_detected(
        &inst,
        &original,
        original[..original.len() - 7].to_vec(),
        "truncate",
    )
    .await;
    let a = lines[0].len() + 5;
    let b = lines[0].len() + lines[1].len() + 9;
    let cut = [&original[..a], &original[b..]].concat();
    assert_detected(&inst, &original, cut, "cut across records").await;
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn log_is_private_and_outside_the_workspace() {
    use std::os::unix::fs::PermissionsExt;
    let inst = install_with_log().await;
    let mode = std::fs::metadata(inst.audit_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let state_mode = std::fs::metadata(&inst.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(state_mode, 0o700);
    assert!(!inst.audit_file().starts_with(&inst.workspace));
}
