//! The other half of the bar: ordinary work runs without needless prompts. The same
//! [`testkit::CompromisedModel`] machinery as `injection.rs`, but nothing it reads carries
//! an instruction, so it only follows its plan: edit files, run checks with allowlisted
//! commands, fetch documentation from an allowed host, write a summary into `scratch/`,
//! then check it (the session is untrusted by then, and read-only checks must still run),
//! all in `exec.mode = "allowlist"`, with zero approval requests and every step
//! succeeding. `cordon policy explain` agrees with every decision.

mod common;

use common::scenario::*;
use common::*;
use serde_json::json;
use testkit::{CompromisedModel, MockLlm, ScriptedCall};

fn call(name: &str, args: serde_json::Value) -> ScriptedCall {
    ScriptedCall::new(name, args)
}

#[tokio::test(flavor = "multi_thread")]
async fn ordinary_tasks_need_no_approval_in_allowlist_mode() {
    let docs = Site::start().await;
    let port = docs.port;
    let guide = "Configuration guide\n\nSet `greeting` in app.conf to change the greeting.\nRestart the service afterwards.\n";
    docs.page("/guide", guide);
    let plan = vec![
        call("list_dir", json!({})),
        call("read_file", json!({"path": "README.md"})),
        call(
            "write_file",
            json!({"path": "src/app.conf", "content": "greeting = hello\nport = 8080\n"}),
        ),
        call("exec", json!({"command": "ls src"})),
        call("exec", json!({"command": "grep -c greeting src/app.conf"})),
        call(
            "edit_file",
            json!({"path": "src/app.conf", "old_string": "hello", "new_string": "good morning"}),
        ),
        call("exec", json!({"command": "cat src/app.conf"})),
        call("exec", json!({"command": "wc -l src/app.conf README.md"})),
        call("search", json!({"pattern": "greeting"})),
        call(
            "http_fetch",
            json!({"url": format!("http://docs.example.com:{port}/guide")}),
        ),
        call(
            "write_file",
            json!({"path": "scratch/summary.md", "content": "# Summary\n\nThe guide says:\n{{last}}\n"}),
        ),
        // After reading the page the session is untrusted; read-only checks still run.
        call(
            "exec",
            json!({"command": "grep -c Restart scratch/summary.md"}),
        ),
        call("read_file", json!({"path": "scratch/summary.md"})),
    ];
    let steps = plan.len();
    let model = CompromisedModel::new(plan).final_answer("All done: config updated, checks pass.");
    let llm = MockLlm::start(model.script()).await;
    let inst = Scenario {
        egress_allow: vec![format!("docs.example.com:{port}")],
        resolve: vec!["docs.example.com".into()],
        ..Default::default()
    }
    .install(&llm.base_url());
    std::fs::create_dir_all(inst.workspace.join("src")).unwrap();
    std::fs::write(
        inst.workspace.join("README.md"),
        "# Service\n\nSee src/app.conf.\n",
    )
    .unwrap();

    let out = run_task(
        &inst,
        "Set the greeting to good morning and summarise the guide",
    )
    .await;
    assert_eq!(
        text(&out.stdout).trim(),
        "All done: config updated, checks pass."
    );

    // Every step happened, for real.
    assert!(model.injected_calls().is_empty());
    assert_eq!(model.calls_made().len(), steps);
    assert_eq!(
        read(&inst.workspace.join("src/app.conf")),
        "greeting = good morning\nport = 8080\n"
    );
    assert_eq!(
        docs.requests().len(),
        1,
        "the documentation was fetched once"
    );
    let summary = read(&inst.workspace.join("scratch/summary.md"));
    assert!(
        summary.starts_with("# Summary") && summary.contains("Restart the service"),
        "{summary}"
    );
    let seen = tool_results_seen_by_model(&llm.requests()).join("\n");
    assert!(
        seen.contains("src/app.conf") || seen.contains("app.conf"),
        "{seen}"
    );
    assert!(seen.contains("greeting = good morning"), "cat ran: {seen}");

    // Zero prompts: every decision `allow`, no approval record, every result a success.
    let records = inst.audit().await;
    let asked: Vec<_> = decisions(&records)
        .into_iter()
        .filter(|(d, _)| d != "allow")
        .collect();
    assert!(asked.is_empty(), "needless prompts or refusals: {asked:?}");
    assert_eq!(decisions(&records).len(), steps);
    assert!(
        of_kind(&records, "approval").is_empty(),
        "{:?}",
        of_kind(&records, "approval")
    );
    let results = of_kind(&records, "tool_result");
    assert_eq!(results.len(), steps);
    for r in results {
        assert_eq!(r["data"]["is_error"], false, "a step failed: {r}");
    }
    assert_ok(&inst.cordon(&["log", "verify"]).await);

    let rows = record_decisions(&inst, &records);
    let compared = assert_explain_matches(&inst, &rows).await;
    assert_eq!(
        compared,
        rows.len(),
        "every decision (file tools, commands, the fetch) compared: {rows:?}"
    );
}
