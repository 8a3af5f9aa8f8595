//! `backend = "none"` only with the explicit acknowledgement, loudly, and recorded at
//! every use; container backends fail closed when no engine answers.

mod common;

use common::*;

fn set_sandbox(inst: &Install, table: &str) {
    let cfg = format!("{}\n[sandbox]\n{table}\n", read(&inst.config));
    std::fs::write(&inst.config, cfg).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn none_is_refused_without_the_acknowledgement() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    set_sandbox(&inst, "backend = \"none\"");
    let out = inst.cordon(&["sandbox", "exec", "--", "true"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("i_understand_this_disables_isolation") && err.contains("sandbox.backend"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn none_runs_on_the_host_loudly_and_is_recorded_each_time() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    set_sandbox(
        &inst,
        "backend = \"none\"\ni_understand_this_disables_isolation = true",
    );
    for _ in 0..2 {
        let out = inst
            .cordon(&["sandbox", "exec", "--", "/bin/sh", "-c", "pwd"])
            .await;
        assert_ok(&out);
        assert!(
            text(&out.stderr).contains("WARNING"),
            "{}",
            text(&out.stderr)
        );
        // Not a sandbox: the real workspace path, not /workspace.
        assert_eq!(
            text(&out.stdout).trim(),
            inst.workspace.canonicalize().unwrap().display().to_string()
        );
    }
    let explain = inst.cordon(&["sandbox", "explain", "--json"]).await;
    assert_ok(&explain);
    let e: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    assert_eq!(e["backend"], "none");
    assert!(
        e["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["active"] == false)
    );
    assert!(!e["warnings"].as_array().unwrap().is_empty());
    let records = inst.audit().await;
    let runs = of_kind(&records, "sandbox_exec");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["data"]["backend"] == "none"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_backend_without_an_engine_fails_closed() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    set_sandbox(&inst, "backend = \"podman\"");
    let marker = inst.workspace.join("ran");
    let out = inst
        .cordon(&[
            "sandbox",
            "exec",
            "--",
            "/bin/sh",
            "-c",
            &format!("touch {}", marker.display()),
        ])
        .await;
    if out.status.success() {
        eprintln!("skipped: a podman engine answers on this machine");
        return;
    }
    assert_eq!(out.status.code(), Some(125), "setup failure exit code");
    assert!(
        text(&out.stderr).contains("podman"),
        "{}",
        text(&out.stderr)
    );
    assert!(!marker.exists(), "the command never ran on the host");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_reports_the_native_layers_and_what_is_visible() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let out = inst.cordon(&["sandbox", "explain", "--json"]).await;
    assert_ok(&out);
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["backend"], "native");
    assert_eq!(e["uid"], 1000);
    let layers = e["layers"].as_array().unwrap();
    let active = |name: &str| {
        layers
            .iter()
            .any(|l| l["layer"].as_str().unwrap_or("").contains(name) && l["active"] == true)
    };
    for layer in ["seccomp", "landlock", "user", "network"] {
        assert!(active(layer), "{layer} is not reported active: {layers:?}");
    }
    let mounts = e["mounts"].as_array().unwrap();
    let ws = mounts
        .iter()
        .find(|m| m["path"] == "/workspace")
        .expect("/workspace listed");
    assert_eq!(ws["access"], "read_write");
    for hidden in ["/home", "/root", "/var", "/sys"] {
        assert!(
            mounts.iter().all(|m| m["path"] != hidden),
            "{hidden} must not be visible"
        );
    }
    // The text form names the same things for a person.
    let text_out = inst.cordon(&["sandbox", "explain"]).await;
    assert_ok(&text_out);
    let t = text(&text_out.stdout);
    assert!(
        t.contains("/workspace") && t.contains("seccomp") && t.contains("uid 1000"),
        "{t}"
    );
}
