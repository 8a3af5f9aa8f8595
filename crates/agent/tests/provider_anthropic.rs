//! The Anthropic Messages provider against the scripted LLM server, over real HTTP.
// Fixtures here open sockets of their own (servers that misbehave); the crate under
// test still may not (crates/agent/clippy.toml).
#![allow(clippy::disallowed_types)]

use std::time::{Duration, Instant};

use cordon_agent::provider::{
    self, ChatRequest, Delta, Message, ModelReply, Provider, ProviderError, RetryPolicy,
};
use runtime::{ModelEndpoint, ToolCall, ToolSpec};
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script, ScriptedCall};

const KEY: &str = "sk-ant-test-very-secret";

fn provider(base: &str, stream: bool, key: Option<&str>, max_retries: u32) -> Box<dyn Provider> {
    let cfg = config::ModelConfig {
        provider: config::Provider::Anthropic,
        base_url: base.to_string(),
        model: "claude-test".to_string(),
        api_key_env: Some("TEST_ANTHROPIC_KEY".to_string()),
        stream,
        timeout_secs: 10,
        max_retries,
        max_tokens: 1024,
    };
    let endpoint = ModelEndpoint::new(base, Duration::from_secs(10)).unwrap();
    let retry = RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    };
    provider::from_config(&cfg, key.map(String::from), endpoint, retry)
}

fn hello() -> Vec<Message> {
    vec![
        Message::System {
            content: "You are a test.".into(),
        },
        Message::User {
            content: "Say hello".into(),
        },
    ]
}

async fn complete(
    p: &dyn Provider,
    messages: &[Message],
    tools: &[ToolSpec],
) -> (Result<ModelReply, ProviderError>, Vec<String>) {
    let mut deltas = Vec::new();
    let mut on_text = |d: Delta<'_>| {
        if let Delta::Text(t) = d {
            deltas.push(t.to_string());
        }
    };
    let result = p
        .complete(&ChatRequest { messages, tools }, &mut on_text)
        .await;
    (result, deltas)
}

fn args(call: &ToolCall) -> Value {
    serde_json::from_str(&call.arguments).unwrap()
}

/// A stream body from `(event, data)` pairs.
fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}

#[tokio::test]
async fn text_without_streaming() {
    let llm = MockLlm::start(Script::new(vec![Reply::Text("Hello from Claude".into())])).await;
    let p = provider(&llm.base_url(), false, Some(KEY), 0);
    assert_eq!(
        p.describe(),
        format!("anthropic claude-test at {}", llm.base_url())
    );
    let (reply, deltas) = complete(p.as_ref(), &hello(), &[]).await;
    let reply = reply.unwrap();
    assert_eq!(reply.text.as_deref(), Some("Hello from Claude"));
    assert_eq!(deltas, vec!["Hello from Claude"]);
    assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
    assert!(
        reply
            .usage
            .is_some_and(|u| u.input_tokens > 0 && u.output_tokens > 0)
    );

    let req = &llm.requests()[0];
    assert_eq!(req["model"], "claude-test");
    assert_eq!(req["max_tokens"], 1024);
    assert_eq!(req["stream"], false);
    assert_eq!(req["system"], "You are a test.");
    assert_eq!(
        req["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    assert!(req.get("tools").is_none(), "{req}");
    let h = &llm.request_headers()[0];
    assert_eq!(h.get("x-api-key").map(String::as_str), Some(KEY));
    assert_eq!(
        h.get("anthropic-version").map(String::as_str),
        Some("2023-06-01")
    );
    assert!(!h.contains_key("authorization"));
}

#[tokio::test]
async fn text_streaming_arrives_in_deltas() {
    let text = "Streaming from the Messages API, in pieces.";
    let llm = MockLlm::start(Script::new(vec![Reply::Text(text.into())])).await;
    let p = provider(&llm.base_url(), true, None, 0);
    let (reply, deltas) = complete(p.as_ref(), &hello(), &[]).await;
    let reply = reply.unwrap();
    assert_eq!(reply.text.as_deref(), Some(text));
    assert!(deltas.len() > 3, "{deltas:?}");
    assert_eq!(deltas.concat(), text);
    assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
    let usage = reply.usage.unwrap();
    assert!(
        usage.input_tokens > 0 && usage.output_tokens > 0,
        "{usage:?}"
    );
    assert!(
        !llm.request_headers()[0].contains_key("x-api-key"),
        "no key, no header"
    );
}

#[tokio::test]
async fn multiple_tool_calls_streamed_with_split_input() {
    let llm = MockLlm::start(Script::new(vec![Reply::ToolCalls(vec![
        ScriptedCall::new("read_file", json!({"path": "src/main.rs"})),
        ScriptedCall::new("search", json!({"pattern": "fn main", "path": "src"})),
    ])]))
    .await;
    let p = provider(&llm.base_url(), true, None, 0);
    let (reply, deltas) = complete(p.as_ref(), &hello(), &[]).await;
    let reply = reply.unwrap();
    assert!(deltas.is_empty());
    assert_eq!(reply.text, None);
    assert_eq!(reply.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(reply.tool_calls.len(), 2);
    assert_eq!(reply.tool_calls[0].id, "toolu_0_0");
    assert_eq!(reply.tool_calls[0].name, "read_file");
    assert_eq!(args(&reply.tool_calls[0]), json!({"path": "src/main.rs"}));
    assert_eq!(reply.tool_calls[1].id, "toolu_0_1");
    assert_eq!(
        args(&reply.tool_calls[1]),
        json!({"pattern": "fn main", "path": "src"})
    );
}

#[tokio::test]
async fn single_tool_call_without_streaming() {
    let call = ScriptedCall::new("list_dir", json!({"path": "."}));
    let llm = MockLlm::start(Script::new(vec![Reply::ToolCalls(vec![call])])).await;
    let p = provider(&llm.base_url(), false, None, 0);
    let reply = complete(p.as_ref(), &hello(), &[]).await.0.unwrap();
    assert_eq!(reply.tool_calls.len(), 1);
    assert_eq!(reply.tool_calls[0].name, "list_dir");
    assert_eq!(args(&reply.tool_calls[0]), json!({"path": "."}));
    assert_eq!(reply.stop_reason.as_deref(), Some("tool_use"));
}

#[tokio::test]
async fn invalid_tool_input_passes_through_raw() {
    let raw = r#"{"path": "a.txt", "content": "unterminated"#;
    let reply = Reply::RawArguments {
        name: "write_file".into(),
        arguments: raw.into(),
    };
    let llm = MockLlm::start(Script::new(vec![reply])).await;
    let p = provider(&llm.base_url(), true, None, 0);
    let reply = complete(p.as_ref(), &hello(), &[]).await.0.unwrap();
    assert_eq!(reply.tool_calls[0].arguments, raw);
}

#[tokio::test]
async fn request_has_anthropic_shape_with_merged_tool_results() {
    let llm = MockLlm::start(Script::new(vec![Reply::Text("ok".into())])).await;
    let p = provider(&llm.base_url(), true, Some(KEY), 0);
    let call = |id: &str, args: &str| ToolCall {
        id: id.into(),
        name: "read_file".into(),
        arguments: args.into(),
    };
    let result = |id: &str, content: &str, is_error: bool| Message::Tool {
        call_id: id.into(),
        name: "read_file".into(),
        content: content.into(),
        is_error,
    };
    let messages = vec![
        Message::System {
            content: "sys one".into(),
        },
        Message::System {
            content: "sys two".into(),
        },
        Message::User {
            content: "read both".into(),
        },
        Message::Assistant {
            content: Some("Reading both.".into()),
            tool_calls: vec![call("t1", r#"{"path":"a"}"#), call("t2", "{broken")],
        },
        result("t1", "contents of a", false),
        result("t2", "invalid arguments", true),
        Message::Assistant {
            content: Some("Done.".into()),
            tool_calls: vec![],
        },
        Message::User {
            content: "thanks".into(),
        },
    ];
    let tools = vec![ToolSpec {
        name: "read_file".into(),
        description: "Read a workspace file".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    }];
    complete(p.as_ref(), &messages, &tools).await.0.unwrap();
    let req = &llm.requests()[0];
    assert_eq!(req["system"], "sys one\n\nsys two");
    let expected = json!([
        {"role": "user", "content": "read both"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Reading both."},
            {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "a"}},
            {"type": "tool_use", "id": "t2", "name": "read_file",
             "input": {"invalid_arguments": "{broken"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "contents of a",
             "is_error": false},
            {"type": "tool_result", "tool_use_id": "t2", "content": "invalid arguments",
             "is_error": true}
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
        {"role": "user", "content": "thanks"}
    ]);
    assert_eq!(req["messages"], expected);
    assert_eq!(
        req["tools"],
        json!([{"name": "read_file", "description": "Read a workspace file",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}])
    );
}

#[tokio::test]
async fn overloaded_is_retried_then_succeeds() {
    let llm = MockLlm::start(Script::new(vec![
        Reply::Status {
            code: 429,
            body: "rate limited".into(),
            retry_after: Some(60),
        },
        Reply::Status {
            code: 529,
            body: "{\"type\":\"error\"}".into(),
            retry_after: None,
        },
        Reply::Text("after retries".into()),
    ]))
    .await;
    let p = provider(&llm.base_url(), false, None, 2);
    let started = Instant::now();
    let reply = complete(p.as_ref(), &hello(), &[]).await.0.unwrap();
    assert_eq!(reply.text.as_deref(), Some("after retries"));
    assert_eq!(llm.request_count(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Retry-After not capped"
    );
}

#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let fail = || Reply::Status {
        code: 502,
        body: "bad gateway".into(),
        retry_after: None,
    };
    let llm = MockLlm::start(Script::new(vec![fail(), fail(), fail()])).await;
    let p = provider(&llm.base_url(), true, None, 1);
    let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
    assert!(
        matches!(err, ProviderError::GaveUp { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(llm.request_count(), 2);
    assert!(
        err.to_string()
            .contains(&format!("{}/messages", llm.base_url())),
        "{err}"
    );
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let body = format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\
         \"message\":\"invalid x-api-key {KEY}\"}}}}"
    );
    let llm = MockLlm::start(Script::new(vec![Reply::Status {
        code: 401,
        body,
        retry_after: None,
    }]))
    .await;
    let p = provider(&llm.base_url(), false, Some(KEY), 3);
    let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
    assert_eq!(llm.request_count(), 1);
    let msg = err.to_string();
    assert!(
        msg.contains("check the API key in $TEST_ANTHROPIC_KEY"),
        "{msg}"
    );
    assert!(msg.contains("authentication_error"), "{msg}");
    assert!(!msg.contains(KEY), "key leaked: {msg}");
}

#[tokio::test]
async fn garbage_is_malformed() {
    for (body, what) in [
        ("not json at all", "not JSON"),
        ("{\"id\":\"msg\"}", "no `content`"),
    ] {
        let llm = MockLlm::start(Script::new(vec![Reply::Garbage(body.into())])).await;
        let p = provider(&llm.base_url(), false, None, 0);
        let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
        assert!(err.is_malformed(), "{err:?}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[tokio::test]
async fn stream_without_message_stop_is_malformed() {
    let body = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "cut he"}}),
        ),
    ]);
    let llm = MockLlm::start(Script::new(vec![Reply::Garbage(body)])).await;
    let p = provider(&llm.base_url(), true, None, 0);
    let (result, deltas) = complete(p.as_ref(), &hello(), &[]).await;
    let err = result.unwrap_err();
    assert_eq!(
        deltas,
        vec!["cut he"],
        "text already streamed was delivered"
    );
    assert!(err.is_malformed(), "{err:?}");
    assert!(err.to_string().contains("message_stop"), "{err}");
}

#[tokio::test]
async fn error_event_fails_the_completion() {
    let body = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "error",
            json!({"type": "error",
                         "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ]);
    let llm = MockLlm::start(Script::new(vec![Reply::Garbage(body)])).await;
    let p = provider(&llm.base_url(), true, None, 0);
    let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
    assert!(matches!(err, ProviderError::Api { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("overloaded_error") && msg.contains("Overloaded"),
        "{msg}"
    );
}

#[tokio::test]
async fn hand_made_stream_tool_use_without_deltas_or_id() {
    let body = sse(&[
        (
            "message_start",
            json!({"type": "message_start",
                                 "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "name": "list_dir", "input": {}}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                 "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    // The same stream with CRLF line endings must read the same.
    let crlf = body.replace('\n', "\r\n");
    let llm = MockLlm::start(Script::new(vec![
        Reply::Garbage(body),
        Reply::Garbage(crlf),
    ]))
    .await;
    let p = provider(&llm.base_url(), true, None, 0);
    for round in 0..2 {
        let (reply, deltas) = complete(p.as_ref(), &hello(), &[]).await;
        let reply = reply.unwrap();
        assert!(deltas.is_empty(), "thinking is not text");
        assert_eq!(reply.tool_calls.len(), 1);
        assert_eq!(reply.tool_calls[0].name, "list_dir");
        assert_eq!(reply.tool_calls[0].arguments, "{}", "no deltas means {{}}");
        assert_eq!(reply.tool_calls[0].id, format!("call_{}", round + 1));
        let usage = reply.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (7, 12));
    }
}

#[tokio::test]
async fn unreachable_endpoint_names_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let p = provider(&base, false, None, 0);
    let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("{base}/messages")),
        "{err}"
    );
}

#[tokio::test]
async fn a_dynamic_model_sees_tool_results_through_the_anthropic_shape() {
    let script = Script::dynamic(|c| match c.last_tool_result() {
        Some(r) if r.is_error => Reply::Text(format!("tool {} failed: {}", r.call_id, r.content)),
        Some(_) => Reply::Text("tool ok".into()),
        None => Reply::ToolCalls(vec![ScriptedCall::new(
            "shell",
            json!({"command": "false"}),
        )]),
    });
    let llm = MockLlm::start(script).await;
    let p = provider(&llm.base_url(), false, None, 0);
    let first = complete(p.as_ref(), &hello(), &[]).await.0.unwrap();
    let call = first.tool_calls[0].clone();
    let mut messages = hello();
    messages.push(Message::Assistant {
        content: None,
        tool_calls: vec![call.clone()],
    });
    messages.push(Message::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: "exit status 1".into(),
        is_error: true,
    });
    let second = complete(p.as_ref(), &messages, &[]).await.0.unwrap();
    assert_eq!(
        second.text,
        Some(format!("tool {} failed: exit status 1", call.id))
    );
}

#[tokio::test]
async fn a_stream_that_is_not_sse_is_malformed() {
    let cases = [
        ("<html><body>502 Bad Gateway</body></html>", "message_stop"),
        ("event: message_start\ndata: {not json\n\n", "not JSON"),
        (
            "data: {\"type\":\"content_block_delta\",\"index\":4,\
             \"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
            "not a started `tool_use`",
        ),
    ];
    for (body, what) in cases {
        let llm = MockLlm::start(Script::new(vec![Reply::Garbage(body.into())])).await;
        let p = provider(&llm.base_url(), true, None, 2);
        let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
        assert!(err.is_malformed(), "{body}: {err:?}");
        assert!(err.to_string().contains(what), "{body}: {err}");
        assert_eq!(llm.request_count(), 1, "a malformed stream is not retried");
    }
}

#[tokio::test]
async fn not_found_points_at_base_url_and_model() {
    let body =
        "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: x\"}}";
    let llm = MockLlm::start(Script::new(vec![Reply::Status {
        code: 404,
        body: body.into(),
        retry_after: None,
    }]))
    .await;
    let p = provider(&llm.base_url(), true, None, 3);
    let err = complete(p.as_ref(), &hello(), &[]).await.0.unwrap_err();
    assert_eq!(llm.request_count(), 1);
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string()
            .contains("check model.base_url and model.model"),
        "{err}"
    );
}
