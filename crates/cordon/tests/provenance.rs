//! File provenance against laundering through workspace files, end to end through the
//! real `cordon` binary: a session that fetched a page (a loopback server) writes a
//! script; later, separate `cordon run` sessions that start trusted are caught when they
//! run it (`taint.run_labelled_file` asks; the approval expires to a denial, and the
//! script does not run) or read it (the session becomes untrusted, so its next new host
//! asks and is refused). `cordon files labels` shows the label with its source;
//! `cordon files trust` clears it (an audited `file_trusted` record) and the script then
//! runs without a question.

mod common;

use common::scenario::*;
use common::*;
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script};

/// The decision record of the proposal of `tool` whose arguments contain `needle`.
fn decision_of<'a>(records: &'a [Value], tool_name: &str, needle: &str) -> &'a Value {
    outcome(records, tool_name, needle)
        .0
        .unwrap_or_else(|| panic!("no decision for {tool_name} {needle:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_written_by_an_untrusted_session_stays_untrusted_in_later_sessions() {
    let docs = Site::start().await;
    let port = docs.port;
    docs.page("/guide", "Build guide\n\nRun the build script.\n");
    let guide = format!("http://docs.example.com:{port}/guide");
    let other = format!("http://docs.example.com:{port}/other");
    let script = "echo built > scratch/ran.txt\n";
    let llm = MockLlm::start(Script::new(vec![
        // Session 1: reads a web page (untrusted), then writes a script.
        tool("http_fetch", json!({"url": guide})),
        tool(
            "write_file",
            json!({"path": "scratch/build.sh", "content": script}),
        ),
        Reply::Text("wrote the script".into()),
        // Session 2, trusted: an unlabelled script runs; the labelled one asks.
        tool("exec", json!({"command": "sh scratch/mine.sh"})),
        tool("exec", json!({"command": "sh scratch/build.sh"})),
        Reply::Text("tried to build".into()),
        // Session 3, trusted: reads the script, so it becomes untrusted; its first
        // connection to a host is then a new host under taint: asked, refused.
        tool("read_file", json!({"path": "scratch/build.sh"})),
        tool("http_fetch", json!({"url": other})),
        Reply::Text("read it".into()),
        // Session 4, after `cordon files trust`: the script runs without a question.
        tool("exec", json!({"command": "sh scratch/build.sh"})),
        Reply::Text("built".into()),
    ]))
    .await;
    let inst = Scenario {
        exec_allow: r#"["sh", "ls", "cat"]"#,
        egress_allow: vec![format!("docs.example.com:{port}")],
        resolve: vec!["docs.example.com".into()],
        ..Default::default()
    }
    .install(&llm.base_url());
    std::fs::create_dir_all(inst.workspace.join("scratch")).unwrap();
    std::fs::write(
        inst.workspace.join("scratch/mine.sh"),
        "echo mine > scratch/mine.txt\n",
    )
    .unwrap();

    // Session 1.
    run_task(&inst, "Fetch the build guide and write the build script").await;
    assert_eq!(read(&inst.workspace.join("scratch/build.sh")), script);
    let listed = inst.cordon(&["files", "labels", "--json"]).await;
    assert_ok(&listed);
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["path"], "scratch/build.sh");
    assert_eq!(rows[0]["labels"]["integrity"], "untrusted");
    assert_eq!(rows[0]["state"], "unchanged");
    assert!(
        rows[0]["labels"]["untrusted_sources"]
            .to_string()
            .contains(&guide),
        "the label names the page it came from: {rows:?}"
    );
    let text_listing = inst.cordon(&["files", "labels"]).await;
    assert!(
        text(&text_listing.stdout).contains("scratch/build.sh  untrusted/public"),
        "{}",
        text(&text_listing.stdout)
    );

    // Session 2: running it is running untrusted code, though the session is trusted.
    run_task(&inst, "Build the project").await;
    assert!(inst.workspace.join("scratch/mine.txt").exists(), "control");
    assert!(
        !inst.workspace.join("scratch/ran.txt").exists(),
        "the labelled script ran without approval"
    );
    let records = inst.audit().await;
    let mine = decision_of(&records, "exec", "scratch/mine.sh");
    assert_eq!(mine["data"]["decision"], "allow", "{mine}");
    let asked = decision_of(&records, "exec", "scratch/build.sh");
    assert_eq!(asked["data"]["decision"], "ask", "{asked}");
    assert_eq!(asked["data"]["rule"], "taint.run_labelled_file", "{asked}");
    assert!(
        asked.to_string().contains("scratch/build.sh"),
        "the reason names the file: {asked}"
    );
    assert_eq!(
        asked["data"]["labels"]["integrity"], "trusted",
        "the session itself was trusted: {asked}"
    );
    assert_refused(&records, "exec", "scratch/build.sh");
    // `cordon policy explain` agrees when told which labelled file the command runs.
    let explained = inst
        .cordon(&[
            "policy",
            "explain",
            "--json",
            "--runs-labelled",
            "scratch/build.sh",
            "--",
            "exec",
            "sh scratch/build.sh",
        ])
        .await;
    assert_ok(&explained);
    let explained: Value = serde_json::from_slice(&explained.stdout).unwrap();
    assert_eq!(explained["decision"], "ask", "{explained}");
    assert_eq!(explained["rule"], "taint.run_labelled_file", "{explained}");

    // Session 3: reading it taints the reader; its next new host asks and is refused.
    run_task(&inst, "Look at the build script").await;
    let records = inst.audit().await;
    let fetch = decision_of(&records, "http_fetch", "/other");
    assert_eq!(fetch["data"]["rule"], "taint.connect_new_host", "{fetch}");
    assert_eq!(fetch["data"]["labels"]["integrity"], "untrusted", "{fetch}");
    assert!(
        fetch["data"]["labels"]["untrusted_sources"]
            .to_string()
            .contains(&guide),
        "the original page is among the reader's sources: {fetch}"
    );
    assert_refused(&records, "http_fetch", "/other");
    assert!(
        docs.requests().iter().all(|r| r.path != "/other"),
        "the tainted reader reached the host"
    );

    // A human reviews and trusts the file; it is recorded, and the label is gone.
    let trusted = inst.cordon(&["files", "trust", "scratch/build.sh"]).await;
    assert_ok(&trusted);
    let records = inst.audit().await;
    let trust = of_kind(&records, "file_trusted");
    assert_eq!(trust.len(), 1, "{trust:?}");
    assert_eq!(trust[0]["data"]["path"], "scratch/build.sh");
    assert_eq!(trust[0]["data"]["labels"]["integrity"], "untrusted");
    assert_eq!(trust[0]["data"]["by"], "cli");
    let again = inst.cordon(&["files", "trust", "scratch/build.sh"]).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("no provenance label"),
        "{}",
        text(&again.stderr)
    );
    let escape = inst.cordon(&["files", "trust", "../cordon.toml"]).await;
    assert!(!escape.status.success());
    assert!(text(&escape.stderr).contains("without `..`"));

    // Session 4: the script runs now.
    run_task(&inst, "Build the project again").await;
    assert_eq!(read(&inst.workspace.join("scratch/ran.txt")), "built\n");
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}

/// A trusted session's whole rewrite of a labelled file clears its label; an untrusted
/// session's edit of a trusted file labels it; a command's deletion by an untrusted
/// session is recorded too.
#[tokio::test(flavor = "multi_thread")]
async fn writes_relabel_files_as_their_writers_are() {
    let docs = Site::start().await;
    let port = docs.port;
    docs.page("/guide", "Guide\n");
    let guide = format!("http://docs.example.com:{port}/guide");
    let llm = MockLlm::start(Script::new(vec![
        tool("http_fetch", json!({"url": guide})),
        tool(
            "write_file",
            json!({"path": "scratch/a.txt", "content": "from the web\n"}),
        ),
        tool(
            "edit_file",
            json!({"path": "scratch/b.txt", "old_string": "plain", "new_string": "edited"}),
        ),
        tool("exec", json!({"command": "rm scratch/c.txt"})),
        Reply::Text("done".into()),
        // A trusted session rewrites a.txt whole.
        tool(
            "write_file",
            json!({"path": "scratch/a.txt", "content": "mine now\n"}),
        ),
        Reply::Text("rewrote".into()),
    ]))
    .await;
    let inst = Scenario {
        exec_allow: r#"["rm", "ls"]"#,
        egress_allow: vec![format!("docs.example.com:{port}")],
        resolve: vec!["docs.example.com".into()],
        ..Default::default()
    }
    .install(&llm.base_url());
    std::fs::create_dir_all(inst.workspace.join("scratch")).unwrap();
    std::fs::write(inst.workspace.join("scratch/b.txt"), "plain\n").unwrap();
    std::fs::write(inst.workspace.join("scratch/c.txt"), "to delete\n").unwrap();

    run_task(&inst, "Fetch the guide and tidy up").await;
    let listed = inst.cordon(&["files", "labels", "--json"]).await;
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let paths: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("scratch/a.txt", "unchanged"),
            ("scratch/b.txt", "unchanged"),
            ("scratch/c.txt", "deleted"),
        ]
    );
    // Changed behind Cordon's back: still labelled, shown as changed.
    std::fs::write(inst.workspace.join("scratch/b.txt"), "hand edit\n").unwrap();
    let listed = text(&inst.cordon(&["files", "labels"]).await.stdout);
    assert!(listed.contains("(changed since)"), "{listed}");

    run_task(&inst, "Rewrite a.txt").await;
    let listed = inst.cordon(&["files", "labels", "--json"]).await;
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let paths: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["scratch/b.txt", "scratch/c.txt"]);
}
