//! `exec` through `Runtime::perform` with the real native sandbox: output and status come
//! back, the deadline is reported, output is cut at the limit, the environment is the
//! fixed minimal one, and a symlink an exec plants is still refused by the file tools.

mod common;

use audit::EventKind;
use common::{Harness, Setup};
use serde_json::json;

fn native() -> Harness {
    Harness::new(Setup {
        exec_mode: "auto",
        native_sandbox: true,
        ..Setup::default()
    })
}

#[tokio::test]
async fn exec_runs_in_the_sandbox_and_reports_status() {
    let h = native();
    let (id, obs) = h
        .call(
            "exec",
            json!({"command": "echo out; echo err >&2; pwd; exit 3"}),
        )
        .await;
    assert!(
        obs.is_error,
        "non-zero exit is an error observation: {}",
        obs.content
    );
    assert!(obs.content.starts_with("exit code 3\n"), "{}", obs.content);
    assert!(
        obs.content.contains("--- stdout ---\nout\n/workspace\n"),
        "{}",
        obs.content
    );
    assert!(
        obs.content.contains("--- stderr ---\nerr\n"),
        "{}",
        obs.content
    );
    let r = h.one(&id, EventKind::ToolResult);
    assert_eq!(r.data["status"]["exit_code"], 3);
    assert_eq!(h.one(&id, EventKind::SandboxExec).data["backend"], "native");
    assert_eq!(h.one(&id, EventKind::Decision).data["decision"], "allow");
}

#[tokio::test]
async fn exec_sees_the_workspace_and_only_the_fixed_environment() {
    let h = native();
    let (_, obs) = h
        .call(
            "write_file",
            json!({"path": "in.txt", "content": "from tool"}),
        )
        .await;
    assert!(!obs.is_error);
    let (_, obs) = h
        .call(
            "exec",
            json!({"command": "cat /workspace/in.txt; echo; env | sort; echo made > out.txt"}),
        )
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(obs.content.contains("from tool"), "{}", obs.content);
    assert!(obs.content.contains("HOME=/workspace"));
    assert!(obs.content.contains("PATH=/usr/local/bin:/usr/bin:/bin"));
    assert!(
        !obs.content.contains("CARGO_MANIFEST_DIR"),
        "host environment leaked: {}",
        obs.content
    );
    // The host (this test process) does have it, so the check above means something.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    assert_eq!(
        std::fs::read_to_string(h.ws.join("out.txt")).unwrap(),
        "made\n"
    );
}

#[tokio::test]
async fn deadline_and_output_limit_are_reported() {
    let h = native();
    let (id, obs) = h
        .call(
            "exec",
            json!({"command": "head -c 10000 /dev/zero | tr '\\0' a"}),
        )
        .await;
    assert!(
        obs.content.contains("[stdout truncated:"),
        "{}",
        obs.content
    );
    assert_eq!(h.one(&id, EventKind::ToolResult).data["truncated"], true);
    let (id, obs) = h.call("exec", json!({"command": "sleep 30"})).await;
    assert!(obs.is_error);
    assert!(
        obs.content.contains("killed at the deadline"),
        "{}",
        obs.content
    );
    assert!(obs.content.contains("10s deadline"), "{}", obs.content);
    assert_eq!(
        h.one(&id, EventKind::ToolResult).data["status"]["timeout"],
        true
    );
}

#[tokio::test]
async fn symlinks_planted_by_exec_do_not_escape_file_tools() {
    let h = native();
    let (_, obs) = h
        .call("exec", json!({"command": "ln -s /etc/passwd pw && ln -s / root && ln -s ../../ up && mkdir d && echo ok"}))
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    for (tool, args, needle) in [
        ("read_file", json!({"path": "pw"}), "outside the workspace"),
        (
            "read_file",
            json!({"path": "root/etc/shadow"}),
            "outside the workspace",
        ),
        (
            "read_file",
            json!({"path": "up/etc/passwd"}),
            "outside the workspace",
        ),
        (
            "write_file",
            json!({"path": "pw", "content": "x"}),
            "symbolic link",
        ),
        (
            "write_file",
            json!({"path": "root/tmp/cordon-escape", "content": "x"}),
            "symbolic link",
        ),
        ("list_dir", json!({"path": "root"}), "outside the workspace"),
        (
            "search",
            json!({"pattern": "root", "path": "up"}),
            "outside the workspace",
        ),
    ] {
        let (id, obs) = h.call(tool, args).await;
        h.assert_refused(&id, &obs, needle);
    }
    assert!(!std::path::Path::new("/tmp/cordon-escape").exists());
    // Swap a directory for a symlink from inside the sandbox, then write through it.
    let (_, obs) = h
        .call("exec", json!({"command": "rmdir d && ln -s /tmp d"}))
        .await;
    assert!(!obs.is_error, "{}", obs.content);
    let (id, obs) = h
        .call(
            "write_file",
            json!({"path": "d/cordon-escape2", "content": "x"}),
        )
        .await;
    h.assert_refused(&id, &obs, "symbolic link");
    assert!(!std::path::Path::new("/tmp/cordon-escape2").exists());
}
