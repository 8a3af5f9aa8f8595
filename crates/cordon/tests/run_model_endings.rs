//! `cordon run` against real model servers' answers (`testkit::recordings`): a refusal
//! is an answer that says so and a non-zero exit (and so is an answer the provider's
//! content filter stopped), a cut-off answer says it was cut, a
//! tool call the token limit cut is never run (the model is told, the user too, and the
//! audit log records it), and reasoning stays out of the answer.

mod common;

use std::process::Output;

use common::*;
use testkit::{MockLlm, Reply, Script, recording};

/// An installation against `replies`, streaming, with `provider`.
fn install(llm: &MockLlm, provider: &str) -> Install {
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            extra_model: "max_retries = 0\ntimeout_secs = 20\nstream = true",
            ..Default::default()
        },
    );
    if provider == "anthropic" {
        let cfg = read(&inst.config).replace("provider = \"openai\"", "provider = \"anthropic\"");
        std::fs::write(&inst.config, cfg).unwrap();
    }
    inst
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The `model_output` records' data, in order.
fn model_outputs(records: &[serde_json::Value]) -> Vec<serde_json::Value> {
    of_kind(records, "model_output")
        .into_iter()
        .map(|r| r["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_refused_by_openai_exits_non_zero_with_the_refusal() {
    let llm = MockLlm::start(Script::new(vec![recording("openai-refusal.sse").reply()])).await;
    let inst = install(&llm, "openai");
    let out = inst.cordon(&["run", "do", "something", "bad"]).await;
    assert!(!out.status.success(), "{}", show(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        "[the model refused: I'm sorry, but I can't help with that.]",
        "{}",
        show(&out)
    );
    let outputs = model_outputs(&inst.audit().await);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["ending"], "refused");
    assert_eq!(llm.request_count(), 1, "a refusal ends the turn");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_refused_by_anthropic_exits_non_zero_and_says_so() {
    let llm = MockLlm::start(Script::new(vec![
        recording("anthropic-refusal.sse").reply(),
    ]))
    .await;
    let inst = install(&llm, "anthropic");
    let out = inst.cordon(&["run", "do", "something", "bad"]).await;
    assert!(!out.status.success(), "{}", show(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        "Here is how\n\n[the model refused to answer and gave no reason]",
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_filtered_by_the_provider_exits_non_zero_and_says_so() {
    let llm = MockLlm::start(Script::new(vec![
        recording("azure-content-filter.sse").reply(),
    ]))
    .await;
    let inst = install(&llm, "openai");
    let out = inst.cordon(&["run", "explain", "it"]).await;
    assert!(!out.status.success(), "{}", show(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        "Step one: take the\n\n[the model's provider filtered this answer: its content \
         filter stopped it (finish_reason \"content_filter\"); the rest was not delivered \
         and none of its tool calls ran]",
        "{}",
        show(&out)
    );
    let outputs = model_outputs(&inst.audit().await);
    assert_eq!(outputs[0]["ending"], "filtered");
    assert_eq!(llm.request_count(), 1, "a filtered answer ends the turn");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_cut_off_answer_is_marked_cut() {
    let llm = MockLlm::start(Script::new(vec![recording("openai-length.sse").reply()])).await;
    let inst = install(&llm, "openai");
    let out = inst.cordon(&["run", "plan", "it"]).await;
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout).trim(),
        "Here is the plan:\n1. Read the config\n2. Chec\n\n[the model's answer was cut off: \
         it reached its token limit (model.max_tokens)]"
    );
    assert_eq!(model_outputs(&inst.audit().await)[0]["ending"], "cut_off");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_cut_tool_call_is_never_run_and_model_and_user_are_told() {
    // The model lists the directory (whole) and writes a report (cut mid-JSON), then,
    // told of the cut call, answers.
    let llm = MockLlm::start(Script::new(vec![
        recording("openai-length-tool-call.sse").reply(),
        Reply::Text("I will write the report in parts.".into()),
    ]))
    .await;
    let inst = install(&llm, "openai");
    let out = inst.cordon(&["run", "write", "the", "report"]).await;
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout).trim(),
        "I will write the report in parts.\n\n[the model's call to write_file was cut off at \
         its token limit (model.max_tokens) and was not run]",
        "{}",
        show(&out)
    );
    assert!(
        text(&out.stderr).contains("cut off at the token limit"),
        "the log says so: {}",
        show(&out)
    );
    assert!(
        !inst.workspace.join("report.md").exists(),
        "the cut call ran"
    );

    let records = inst.audit().await;
    let proposed = data_of(&records, "tool_proposed");
    assert_eq!(
        proposed.len(),
        1,
        "only the whole call is proposed: {proposed:?}"
    );
    assert!(proposed[0].contains("list_dir"), "{proposed:?}");
    let outputs = model_outputs(&records);
    assert_eq!(outputs[0]["ending"], "cut_off");
    assert_eq!(outputs[0]["cut_calls"][0]["name"], "write_file");
    assert_eq!(outputs[0]["cut_calls"][0]["id"], "call_Wf3kRy6tHj1uM5Ga");
    assert_eq!(outputs[0]["tool_calls"].as_array().unwrap().len(), 1);

    // The next request tells the model, and carries no trace of the cut call as a call.
    let second = llm.requests()[1].to_string();
    assert!(
        second.contains("reached the token limit while writing the arguments of `write_file`"),
        "{second}"
    );
    assert!(
        !second.contains("call_Wf3kRy6tHj1uM5Ga\",\"type\""),
        "{second}"
    );
    assert!(!second.contains("The first sec"), "{second}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_reasoning_stays_out_of_the_answer() {
    let llm = MockLlm::start(Script::new(vec![
        recording("deepseek-reasoning.sse").reply(),
    ]))
    .await;
    let inst = install(&llm, "openai");
    let out = inst.cordon(&["run", "which", "is", "larger"]).await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "9.9 is larger.");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("9.11 and 9.9: compare tenths, 1 < 9."),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "no escape codes off a terminal: {stderr:?}"
    );
    let outputs = model_outputs(&inst.audit().await);
    assert_eq!(outputs[0]["reasoning_bytes"], 36);
    // Recorded, apart from the text (`record_content` is on by default).
    assert_eq!(
        outputs[0]["reasoning"],
        "9.11 and 9.9: compare tenths, 1 < 9."
    );
    assert_eq!(outputs[0]["text"], "9.9 is larger.");
}
