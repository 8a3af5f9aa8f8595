//! Real model servers' answers (`testkit::recordings`, the project's reconstructions),
//! served byte for byte over HTTP: one test per recording, each asserting exactly what
//! the provider makes of it — text, reasoning, tool calls, cut calls, how it ended, usage
//! and the text deltas passed on while it streamed.

use std::time::Duration;

use cordon_agent::provider::{
    self, ChatRequest, CutCall, Delta, Ending, Message, ModelReply, ProviderError, RetryPolicy,
    Usage,
};
use runtime::{ModelEndpoint, ToolCall};
use testkit::{MockLlm, Protocol, RECORDINGS, Reply, Script, recording};

/// What the provider made of a recorded answer, and the text and reasoning deltas it
/// passed on.
async fn read_body(
    protocol: Protocol,
    streamed: bool,
    reply: Reply,
) -> (Result<ModelReply, ProviderError>, Vec<String>, Vec<String>) {
    let llm = MockLlm::start(Script::new(vec![reply])).await;
    let base = llm.base_url();
    let cfg = config::ModelConfig {
        provider: match protocol {
            Protocol::OpenAi => config::Provider::Openai,
            Protocol::Anthropic => config::Provider::Anthropic,
        },
        base_url: base.clone(),
        model: "recorded".to_string(),
        api_key_env: None,
        stream: streamed,
        timeout_secs: 10,
        max_retries: 0,
        max_tokens: 1024,
    };
    let endpoint = ModelEndpoint::new(&base, Duration::from_secs(10)).unwrap();
    let p = provider::from_config(&cfg, None, endpoint, RetryPolicy::default());
    let messages = [Message::User {
        content: "go".into(),
    }];
    let (mut deltas, mut reasoning) = (Vec::new(), Vec::new());
    let mut on_delta = |d: Delta<'_>| match d {
        Delta::Text(t) => deltas.push(t.to_string()),
        Delta::Reasoning(r) => reasoning.push(r.to_string()),
    };
    let result = p
        .complete(
            &ChatRequest {
                messages: &messages,
                tools: &[],
            },
            &mut on_delta,
        )
        .await;
    (result, deltas, reasoning)
}

async fn read(name: &str) -> (ModelReply, Vec<String>) {
    let (reply, deltas, _) = read_streams(name).await;
    (reply, deltas)
}

/// The reply, the text deltas and the reasoning deltas of recording `name`.
async fn read_streams(name: &str) -> (ModelReply, Vec<String>, Vec<String>) {
    let r = recording(name);
    let (reply, deltas, reasoning) = read_body(r.protocol, r.streamed(), r.reply()).await;
    match reply {
        Ok(reply) => (reply, deltas, reasoning),
        Err(e) => panic!("{name}: {e}"),
    }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

fn usage(input_tokens: u64, output_tokens: u64) -> Option<Usage> {
    Some(Usage {
        input_tokens,
        output_tokens,
    })
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

// ---------------------------------------------------------------------------------------
// OpenAI

#[tokio::test]
async fn openai_tool_calls_keyed_by_index_with_a_usage_only_last_chunk() {
    let (reply, deltas) = read("openai-tool-calls.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![
                call(
                    "call_Rq2mVt8xKp3aN1Lz",
                    "read_file",
                    r#"{"path": "notes/todo.txt"}"#
                ),
                call(
                    "call_Wd7hB4nQe9sY2Tf0",
                    "search",
                    r#"{"pattern": "TODO", "path": "src"}"#
                ),
            ],
            stop_reason: some("tool_calls"),
            usage: usage(312, 48),
            ..ModelReply::default()
        }
    );
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[tokio::test]
async fn openai_streamed_refusal_is_a_refusal_with_its_text() {
    let (reply, deltas) = read("openai-refusal.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            stop_reason: some("stop"),
            usage: usage(95, 10),
            ending: Ending::Refused {
                refusal: some("I'm sorry, but I can't help with that.")
            },
            ..ModelReply::default()
        }
    );
    assert!(
        deltas.is_empty(),
        "a refusal is not answer text: {deltas:?}"
    );
}

#[tokio::test]
async fn openai_whole_refusal_is_a_refusal_with_its_text() {
    let (reply, deltas) = read("openai-refusal.json").await;
    assert_eq!(
        reply,
        ModelReply {
            stop_reason: some("stop"),
            usage: usage(101, 12),
            ending: Ending::Refused {
                refusal: some("I'm sorry, I can't assist with that request.")
            },
            ..ModelReply::default()
        }
    );
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[tokio::test]
async fn openai_length_marks_the_answer_cut_off() {
    let (reply, deltas) = read("openai-length.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Here is the plan:\n1. Read the config\n2. Chec"),
            stop_reason: some("length"),
            usage: usage(140, 16),
            ending: Ending::CutOff,
            ..ModelReply::default()
        }
    );
    assert_eq!(
        deltas,
        [
            "Here is",
            " the plan",
            ":\n1.",
            " Read the",
            " config\n2",
            ". Chec"
        ]
    );
}

#[tokio::test]
async fn openai_length_keeps_the_whole_call_and_never_passes_the_cut_one() {
    let (reply, _) = read("openai-length-tool-call.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call(
                "call_Lq0xPz7mNc4vB8Ds",
                "list_dir",
                r#"{"path": "."}"#
            )],
            stop_reason: some("length"),
            usage: usage(388, 64),
            ending: Ending::CutOff,
            cut_calls: vec![CutCall {
                id: "call_Wf3kRy6tHj1uM5Ga".into(),
                name: "write_file".into(),
                partial_arguments:
                    r##"{"path": "report.md", "content": "# Report\n\nThe first sec"##.into(),
            }],
            ..ModelReply::default()
        }
    );
}

#[tokio::test]
async fn openai_n2_uses_only_the_first_choice() {
    let (reply, deltas) = read("openai-n2.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("The sky is blue."),
            stop_reason: some("stop"),
            usage: usage(30, 21),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["The sky", " is blue."]);
}

#[tokio::test]
async fn azure_content_filter_is_a_filtered_ending_not_a_silent_stop() {
    let (reply, deltas) = read("azure-content-filter.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Step one: take the"),
            stop_reason: some("content_filter"),
            ending: Ending::Filtered,
            ..ModelReply::default()
        }
    );
    assert!(reply.ending.withheld());
    assert_eq!(deltas, ["Step one:", " take the"]);
}

// ---------------------------------------------------------------------------------------
// Ollama, vLLM, llama.cpp

#[tokio::test]
async fn ollama_reasoning_is_kept_apart_and_a_whole_call_in_one_delta_parses() {
    let (reply, deltas) = read("ollama-tool-calls.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call(
                "call_x1k9q2bd",
                "read_file",
                r#"{"path":"README.md"}"#
            )],
            stop_reason: some("tool_calls"),
            reasoning: some("The user wants the README first."),
            ..ModelReply::default()
        }
    );
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[tokio::test]
async fn vllm_reasoning_content_is_kept_apart_from_text_and_call() {
    let (reply, deltas) = read("vllm-reasoning.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Let me search for it."),
            tool_calls: vec![call(
                "chatcmpl-tool-5c1f0e2d9a8b4c37",
                "search",
                r#"{"pattern": "--verbose", "path": "src"}"#
            )],
            stop_reason: some("tool_calls"),
            reasoning: some("I should search the source for the flag."),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["Let me", " search for", " it."]);
}

#[tokio::test]
async fn vllm_leaked_channel_tokens_reduce_to_the_final_channel() {
    let (reply, deltas) = read("vllm-channel-tokens.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Paris is the capital of France."),
            stop_reason: some("stop"),
            reasoning: some("User asks for the capital. Answer: Paris."),
            ..ModelReply::default()
        }
    );
    assert_eq!(
        deltas,
        ["Paris is the", " capital of France", "."],
        "no token and no analysis reaches the streamed text"
    );
}

#[tokio::test]
async fn llamacpp_continuations_with_empty_id_and_name_extend_the_call() {
    let (reply, _) = read("llamacpp-tool-calls.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call(
                "pJ3mX8qL0vT2rN5wZ1cB4yH7",
                "exec",
                r#"{"command": "ls -la"}"#
            )],
            stop_reason: some("tool_calls"),
            usage: usage(257, 22),
            ..ModelReply::default()
        }
    );
}

#[tokio::test]
async fn llamacpp_stream_without_done_after_its_finish_is_accepted() {
    let (reply, deltas) = read("llamacpp-no-done.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Done."),
            stop_reason: some("stop"),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["Done", "."]);
}

// ---------------------------------------------------------------------------------------
// `<think>` blocks in `content` (Ollama, llama.cpp without a reasoning parser)

#[tokio::test]
async fn ollama_think_block_with_tags_cut_across_deltas_is_reasoning() {
    let (reply, deltas) = read("ollama-think-split-tags.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("17 * 3 = 51."),
            stop_reason: some("stop"),
            reasoning: some("\nOkay, the user wants 17 * 3.\n"),
            ..ModelReply::default()
        }
    );
    // Nothing of the block, nor the blank lines after it, was passed on as text.
    assert_eq!(deltas, ["17 * 3", " = 51."]);
}

#[tokio::test]
async fn llamacpp_think_close_without_open_makes_what_came_before_reasoning() {
    let (reply, deltas) = read("llamacpp-think-unopened.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Hello! How can I help?"),
            stop_reason: some("stop"),
            usage: usage(9, 19),
            reasoning: some("Okay, a greeting. Reply briefly.\n"),
            ..ModelReply::default()
        }
    );
    // Streamed, the reasoning went out as text before `</think>` showed what it was (the
    // tag itself never did): the reply corrects it, the deltas could not.
    assert_eq!(
        deltas,
        [
            "Okay",
            ", a greeting.",
            " Reply",
            " briefly.\n",
            "Hello",
            "! How can I help?"
        ]
    );
}

#[tokio::test]
async fn ollama_think_tags_later_in_the_answer_stay_text() {
    let (reply, deltas) = read("ollama-think-tag-in-answer.json").await;
    let answer = r#"Use `re.sub(r"<think>.*?</think>", "", text, flags=re.S)`."#;
    assert_eq!(
        reply,
        ModelReply {
            text: some(answer),
            stop_reason: some("stop"),
            usage: usage(26, 61),
            reasoning: some("\nThey want a regex that strips the tags.\n"),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, [answer]);
}

#[tokio::test]
async fn vllm_think_block_the_token_limit_cut_stays_reasoning() {
    let (reply, deltas) = read("vllm-think-length.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            stop_reason: some("length"),
            usage: usage(44, 32),
            reasoning: some("\nFirst count the files, then sum their sizes"),
            ending: Ending::CutOff,
            ..ModelReply::default()
        }
    );
    // Half-finished thinking is not an answer: nothing was passed on as text.
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[tokio::test]
async fn llamacpp_tool_call_after_a_think_block_parses() {
    let (reply, deltas) = read("llamacpp-think-tool-call.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call(
                "Qw8eR2tY4uI6oP0aS3dF5gH7",
                "list_dir",
                r#"{"path":"src"}"#
            )],
            stop_reason: some("tool_calls"),
            usage: usage(301, 27),
            reasoning: some("\nList the files first.\n"),
            ..ModelReply::default()
        }
    );
    assert!(deltas.is_empty(), "{deltas:?}");
}

// ---------------------------------------------------------------------------------------
// DeepSeek, Groq, OpenRouter, and a server that breaks its last event

#[tokio::test]
async fn deepseek_reasoning_content_is_kept_apart() {
    let (reply, deltas) = read("deepseek-reasoning.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("9.9 is larger."),
            stop_reason: some("stop"),
            usage: usage(18, 40),
            reasoning: some("9.11 and 9.9: compare tenths, 1 < 9."),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["9.9 is", " larger."]);
}

#[tokio::test]
async fn deepseek_whole_answer_reasoning_content_is_kept_apart() {
    let (reply, deltas) = read("deepseek-reasoning.json").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("9.9 is larger."),
            stop_reason: some("stop"),
            usage: usage(18, 40),
            reasoning: some("9.11 and 9.9: compare tenths, 1 < 9."),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["9.9 is larger."]);
}

#[tokio::test]
async fn deepseek_call_in_many_fragments_parses() {
    let (reply, _) = read("deepseek-tool-calls.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call(
                "call_0_3f8e2a1b-9c7d-4e6f-8a5b-2c1d0e9f8a7b",
                "http_fetch",
                r#"{"url":"https://docs.rs/serde"}"#
            )],
            stop_reason: some("tool_calls"),
            usage: usage(205, 24),
            ..ModelReply::default()
        }
    );
}

#[tokio::test]
async fn groq_usage_is_read_from_x_groq() {
    let (reply, _) = read("groq-tool-calls.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call("call_a1b2c3d4e5", "list_dir", r#"{"path":"src"}"#)],
            stop_reason: some("tool_calls"),
            usage: usage(230, 19),
            ..ModelReply::default()
        }
    );
}

#[tokio::test]
async fn openrouter_reasoning_once_despite_reasoning_details_and_comments() {
    let (reply, deltas) = read("openrouter-reasoning.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            tool_calls: vec![call("call_or7Kd2Pq9Lm4", "list_dir", r#"{"path":"docs"}"#)],
            stop_reason: some("tool_calls"),
            usage: usage(410, 37),
            reasoning: some("Need the file list first."),
            ..ModelReply::default()
        }
    );
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[tokio::test]
async fn a_last_event_broken_by_a_raw_newline_is_read_joined() {
    let (reply, deltas) = read("compat-split-last-event.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("All done."),
            stop_reason: some("stop"),
            usage: usage(20, 3),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["All done", "."]);
}

// ---------------------------------------------------------------------------------------
// Anthropic

#[tokio::test]
async fn anthropic_text_and_tool_use() {
    let (reply, deltas) = read("anthropic-tool-use.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("I'll read the file first."),
            tool_calls: vec![call(
                "toolu_01Ab3Cd5Ef7Gh9Ij1Kl3Mn5",
                "read_file",
                r#"{"path": "src/main.rs"}"#
            )],
            stop_reason: some("tool_use"),
            usage: usage(472, 61),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["I'll read", " the file", " first."]);
}

#[tokio::test]
async fn anthropic_thinking_and_redacted_thinking_are_reasoning_not_text() {
    let (reply, deltas) = read("anthropic-thinking.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Listing the tests."),
            tool_calls: vec![call(
                "toolu_01Zy9Xw8Vu7Ts6Rq5Po4Nm3L",
                "list_dir",
                r#"{"path": "tests"}"#
            )],
            stop_reason: some("tool_use"),
            usage: usage(530, 88),
            reasoning: some(
                "The user wants the tests run. Start by listing them.\n\n[redacted thinking]"
            ),
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["Listing the tests."]);
}

#[tokio::test]
async fn anthropic_streamed_refusal_is_a_refusal() {
    let (reply, deltas) = read("anthropic-refusal.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Here is how"),
            stop_reason: some("refusal"),
            usage: usage(64, 5),
            ending: Ending::Refused { refusal: None },
            ..ModelReply::default()
        }
    );
    assert_eq!(deltas, ["Here is", " how"]);
}

#[tokio::test]
async fn anthropic_whole_refusal_is_a_refusal() {
    let (reply, deltas) = read("anthropic-refusal.json").await;
    assert_eq!(
        reply,
        ModelReply {
            stop_reason: some("refusal"),
            usage: usage(64, 1),
            ending: Ending::Refused { refusal: None },
            ..ModelReply::default()
        }
    );
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[tokio::test]
async fn anthropic_max_tokens_never_passes_the_cut_tool_use() {
    let (reply, _) = read("anthropic-max-tokens.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("I'll write the report."),
            stop_reason: some("max_tokens"),
            usage: usage(610, 1024),
            ending: Ending::CutOff,
            cut_calls: vec![CutCall {
                id: "toolu_01Qw2Er3Ty4Ui5Op6As7Df8".into(),
                name: "write_file".into(),
                partial_arguments:
                    r##"{"path": "report.md", "content": "# Report\n\nThe first sec"##.into(),
            }],
            ..ModelReply::default()
        }
    );
}

#[tokio::test]
async fn anthropic_stream_without_message_stop_after_its_stop_reason_is_accepted() {
    let (reply, _) = read("anthropic-no-message-stop.sse").await;
    assert_eq!(
        reply,
        ModelReply {
            text: some("Checking now."),
            tool_calls: vec![call(
                "toolu_01Lk9Jh8Gf7Ds6Ap5Zx4Cv3",
                "exec",
                r#"{"command": "cargo test"}"#
            )],
            stop_reason: some("tool_use"),
            usage: usage(120, 30),
            ..ModelReply::default()
        }
    );
}

#[tokio::test]
async fn reasoning_is_passed_on_apart_from_text_as_it_arrives() {
    for (name, want) in [
        (
            "deepseek-reasoning.sse",
            &["9.11 and 9.9:", " compare tenths,", " 1 < 9."][..],
        ),
        (
            "deepseek-reasoning.json",
            &["9.11 and 9.9: compare tenths, 1 < 9."][..],
        ),
        (
            "ollama-think-split-tags.sse",
            &["\n", "Okay", ", the user wants", " 17 * 3.", "\n"][..],
        ),
        (
            "anthropic-thinking.sse",
            &[
                "The user wants",
                " the tests run.",
                " Start by listing them.",
                "\n\n[redacted thinking]",
            ][..],
        ),
    ] {
        let (reply, _, reasoning) = read_streams(name).await;
        assert_eq!(reasoning, want, "{name}");
        assert_eq!(
            reply.reasoning.as_deref(),
            Some(want.concat().as_str()),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Across the corpus

/// Where a streamed recording's finish reason arrives: the start of that event.
fn finish_event_start(body: &str, protocol: Protocol) -> usize {
    let marker = match protocol {
        Protocol::OpenAi => "\"finish_reason\":\"",
        Protocol::Anthropic => "event: message_delta",
    };
    let at = body.find(marker).expect("a finish reason");
    body[..at].rfind("\n\n").map_or(0, |i| i + 2)
}

#[tokio::test]
async fn every_stream_cut_before_its_finish_reason_is_still_an_error() {
    for r in RECORDINGS.iter().filter(|r| r.streamed()) {
        let cut = &r.body[..finish_event_start(r.body, r.protocol)];
        let (reply, _, _) = read_body(r.protocol, true, Reply::Recorded(cut.to_string())).await;
        let err = match reply {
            Ok(reply) => panic!("{}: a stream cut before its finish gave {reply:?}", r.name),
            Err(e) => e,
        };
        assert!(err.is_malformed(), "{}: {err:?}", r.name);
        assert!(
            err.to_string().contains("the stream ended without"),
            "{}: {err}",
            r.name
        );
    }
}

#[tokio::test]
async fn every_recording_with_a_tool_call_yields_one() {
    for r in RECORDINGS {
        let has_call = r.body.contains("\"tool_calls\":[{") || r.body.contains("\"tool_use\"");
        if !has_call || r.name == "openai-n2.sse" {
            continue; // openai-n2's call is in the choice that is not read
        }
        let (reply, _) = read(r.name).await;
        assert!(
            !reply.tool_calls.is_empty() || !reply.cut_calls.is_empty(),
            "{}: {reply:?}",
            r.name
        );
        for c in &reply.tool_calls {
            let args: serde_json::Value = serde_json::from_str(&c.arguments)
                .unwrap_or_else(|e| panic!("{}: {} arguments: {e}", r.name, c.name));
            assert!(args.is_object(), "{}: {args}", r.name);
        }
    }
}
