//! Happy paths of the workspace file tools through `Runtime::perform`, with their audit
//! trail, and redaction of a secret read back from a file.

mod common;

use audit::EventKind;
use common::{Harness, Setup};
use cordon_runtime::Integrity;
use serde_json::json;

#[tokio::test]
async fn write_read_edit_list_search() {
    let h = Harness::new(Setup::default());

    let (id, obs) = h
        .call(
            "write_file",
            json!({"path": "src/deep/a.txt", "content": "alpha\nbeta\ngamma\n"}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("src/deep/a.txt")).unwrap(),
        "alpha\nbeta\ngamma\n"
    );
    let d = h.one(&id, EventKind::Decision);
    assert_eq!(d.data["decision"], "allow");
    assert_eq!(d.data["call_id"], id);
    assert_eq!(d.data["action"], "write_file: src/deep/a.txt");
    let p = h.one(&id, EventKind::ToolProposed);
    assert_eq!(p.data["arguments"]["path"], "src/deep/a.txt");
    let r = h.one(&id, EventKind::ToolResult);
    assert_eq!(r.data["is_error"], false);
    assert_eq!(r.data["tool"], "write_file");
    assert_eq!(obs.provenance.integrity, Integrity::Trusted);
    assert_eq!(obs.provenance.source, "tool:write_file");

    // Absolute /workspace/ paths map to the workspace.
    let (id, obs) = h
        .call("read_file", json!({"path": "/workspace/src/deep/a.txt"}))
        .await;
    assert!(!obs.is_error);
    assert_eq!(obs.content, "alpha\nbeta\ngamma\n");
    let r = h.one(&id, EventKind::ToolResult);
    assert_eq!(r.data["bytes"], obs.content.len());
    use sha2::Digest;
    assert_eq!(
        r.data["sha256"],
        hex::encode(sha2::Sha256::digest(obs.content.as_bytes()))
    );

    let (_, obs) = h
        .call(
            "read_file",
            json!({"path": "src/deep/a.txt", "offset": 2, "limit": 1}),
        )
        .await;
    assert_eq!(obs.content, "beta\n");

    let (_, obs) = h
        .call(
            "edit_file",
            json!({"path": "src/deep/a.txt", "old_string": "beta", "new_string": "BETA"}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("src/deep/a.txt")).unwrap(),
        "alpha\nBETA\ngamma\n"
    );

    let (_, obs) = h.call("list_dir", json!({"path": "src/deep"})).await;
    assert!(!obs.is_error);
    assert!(
        obs.content.contains("file") && obs.content.contains("a.txt"),
        "{}",
        obs.content
    );
    let (_, obs) = h.call("list_dir", json!({})).await;
    assert!(obs.content.contains("src/"), "{}", obs.content);

    let (_, obs) = h.call("search", json!({"pattern": "^g.m+a$"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(obs.content.trim(), "src/deep/a.txt:3: gamma");
}

#[tokio::test]
async fn edit_failures_are_clear_and_leave_the_file() {
    let h = Harness::new(Setup::default());
    std::fs::write(h.ws.join("f.txt"), "x x x").unwrap();
    let (_, obs) = h
        .call(
            "edit_file",
            json!({"path": "f.txt", "old_string": "x", "new_string": "y"}),
        )
        .await;
    assert!(obs.is_error);
    assert!(obs.content.contains("occurs 3 times"), "{}", obs.content);
    let (_, obs) = h
        .call(
            "edit_file",
            json!({"path": "f.txt", "old_string": "zz", "new_string": "y"}),
        )
        .await;
    assert!(obs.is_error);
    assert!(obs.content.contains("not found"), "{}", obs.content);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("f.txt")).unwrap(),
        "x x x"
    );
    let (_, obs) = h
        .call(
            "edit_file",
            json!({"path": "f.txt", "old_string": "x", "new_string": "y", "replace_all": true}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(obs.content.contains("3 replacements"));
    assert_eq!(
        std::fs::read_to_string(h.ws.join("f.txt")).unwrap(),
        "y y y"
    );
}

#[tokio::test]
async fn read_reports_lossy_utf8_and_missing_files() {
    let h = Harness::new(Setup::default());
    std::fs::write(h.ws.join("bin.dat"), b"ok\xff\xfe\n").unwrap();
    let (_, obs) = h.call("read_file", json!({"path": "bin.dat"})).await;
    assert!(!obs.is_error);
    assert!(obs.content.contains("not valid UTF-8"), "{}", obs.content);
    let (_, obs) = h.call("read_file", json!({"path": "nope.txt"})).await;
    assert!(obs.is_error);
    assert!(obs.content.contains("does not exist"), "{}", obs.content);
}

#[tokio::test]
async fn large_read_is_truncated_and_says_so() {
    let h = Harness::new(Setup::default());
    let line = "0123456789".repeat(10) + "\n";
    std::fs::write(h.ws.join("big.txt"), line.repeat(5000)).unwrap();
    let (id, obs) = h.call("read_file", json!({"path": "big.txt"})).await;
    assert!(!obs.is_error);
    assert!(obs.content.len() < 300 * 1024);
    assert!(
        obs.content.contains("truncated at"),
        "{}",
        &obs.content[obs.content.len() - 200..]
    );
    assert_eq!(h.one(&id, EventKind::ToolResult).data["truncated"], true);
}

#[tokio::test]
async fn write_is_atomic_and_leaves_no_temp_files() {
    let h = Harness::new(Setup::default());
    std::fs::write(h.ws.join("keep.txt"), "old").unwrap();
    let (_, obs) = h
        .call("write_file", json!({"path": "keep.txt", "content": "new"}))
        .await;
    assert!(!obs.is_error);
    assert_eq!(
        std::fs::read_to_string(h.ws.join("keep.txt")).unwrap(),
        "new"
    );
    let names: Vec<String> = std::fs::read_dir(&h.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["keep.txt".to_string()]);
    // A directory cannot be replaced by a file.
    std::fs::create_dir(h.ws.join("d")).unwrap();
    let (_, obs) = h
        .call("write_file", json!({"path": "d", "content": "x"}))
        .await;
    assert!(obs.is_error);
    assert!(h.ws.join("d").is_dir());
}

#[tokio::test]
async fn secret_in_a_file_is_redacted() {
    let secret = "sk-test-0123456789abcdef";
    let h = Harness::new(Setup {
        secrets: vec![("MODEL_KEY".into(), secret.into())],
        ..Setup::default()
    });
    std::fs::write(h.ws.join(".env"), format!("KEY={secret}\n")).unwrap();
    let (id, obs) = h.call("read_file", json!({"path": ".env"})).await;
    assert!(!obs.is_error);
    assert_eq!(obs.content, "KEY=[REDACTED:MODEL_KEY]\n");
    let r = h.one(&id, EventKind::ToolResult);
    assert_eq!(r.data["redacted"], json!(["MODEL_KEY"]));
    // The search tool is redacted too, and the secret never reaches the audit log.
    let (_, obs) = h.call("search", json!({"pattern": "KEY="})).await;
    assert!(
        obs.content.contains("[REDACTED:MODEL_KEY]"),
        "{}",
        obs.content
    );
    assert!(!obs.content.contains(secret));
    let (id, _) = h
        .call("write_file", json!({"path": "x", "content": secret}))
        .await;
    let p = h.one(&id, EventKind::ToolProposed);
    assert_eq!(p.data["arguments"]["content"], "[REDACTED:MODEL_KEY]");
    let log = std::fs::read_to_string(h.audit_dir.join(audit::LOG_FILE)).unwrap();
    assert!(!log.contains(secret), "secret leaked into the audit log");
    assert_eq!(
        h.rt.redact(&format!("say {secret}")),
        "say [REDACTED:MODEL_KEY]"
    );
}

#[tokio::test]
async fn huge_files_can_be_read_in_parts() {
    let h = Harness::new(Setup::default());
    let mut text = String::new();
    for i in 1..=20_000 {
        text.push_str(&format!("{i:06} {}\n", "y".repeat(1000)));
    }
    std::fs::write(h.ws.join("huge.log"), &text).unwrap();
    let (id, obs) = h
        .call(
            "read_file",
            json!({"path": "huge.log", "offset": 300, "limit": 2}),
        )
        .await;
    assert!(!obs.is_error, "{}", &obs.content[..200]);
    assert!(
        obs.content.starts_with("000300 y"),
        "{}",
        &obs.content[..50]
    );
    assert!(obs.content.contains("\n000301 y"));
    assert!(!obs.content.contains("000302"));
    assert!(
        obs.content.contains("only its first 16777216 bytes"),
        "{}",
        obs.content.len()
    );
    assert_eq!(h.one(&id, EventKind::ToolResult).data["truncated"], true);
    // edit_file needs the whole file and refuses clearly instead of cutting it.
    let (id, obs) = h
        .call(
            "edit_file",
            json!({"path": "huge.log", "old_string": "000001", "new_string": "x"}),
        )
        .await;
    h.assert_refused(&id, &obs, "more than the 16777216 bytes");
    assert_eq!(
        std::fs::metadata(h.ws.join("huge.log")).unwrap().len(),
        text.len() as u64
    );
}
