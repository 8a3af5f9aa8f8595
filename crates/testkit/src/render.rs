//! Turning a scripted answer into each protocol's JSON body or server-sent-event stream.
//!
//! Streams are deliberately awkward for clients: text goes out in small deltas, tool-call
//! arguments in several fragments, and every event is split across two network writes.
//! OpenAI streams also start with an SSE comment and alternate `\n` and `\r\n` endings;
//! Anthropic streams carry `event:` lines and a `ping`.

use bytes::Bytes;
use serde_json::{Value, json};

/// What the model says, once the script has been resolved to content.
pub(crate) enum Answer {
    Text(String),
    /// `(id, name, arguments as JSON text, arguments as a value for Anthropic)`.
    Calls(Vec<Call>),
}

pub(crate) struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
    pub input: Value,
}

pub(crate) struct Usage {
    pub input: u64,
    pub output: u64,
}

/// Pieces of at most `max` characters (at least one piece, possibly empty).
fn pieces(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(max.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// About three fragments, however long the arguments are.
fn fragments(text: &str) -> Vec<String> {
    let n = text.chars().count();
    pieces(text, n.div_ceil(3).max(1))
}

/// Each event split in two network writes, in the middle.
fn split_writes(events: Vec<String>) -> Vec<Bytes> {
    let mut out = Vec::new();
    for e in events {
        let mut mid = e.len() / 2;
        while !e.is_char_boundary(mid) {
            mid += 1;
        }
        let (a, b) = e.split_at(mid);
        out.push(Bytes::from(a.to_string()));
        out.push(Bytes::from(b.to_string()));
    }
    out
}

pub(crate) fn openai_json(model: &str, answer: &Answer, usage: &Usage) -> Value {
    let (message, finish) = match answer {
        Answer::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
        Answer::Calls(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            (
                json!({"role": "assistant", "content": null, "tool_calls": calls}),
                "tool_calls",
            )
        }
    };
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage.input, "completion_tokens": usage.output,
                  "total_tokens": usage.input + usage.output}
    })
}

pub(crate) fn openai_sse(model: &str, answer: &Answer, usage: &Usage) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
               "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut data = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let finish = match answer {
        Answer::Text(t) => {
            for p in pieces(t, 4) {
                data.push(chunk(json!({"content": p}), Value::Null));
            }
            "stop"
        }
        Answer::Calls(calls) => {
            for (i, c) in calls.iter().enumerate() {
                data.push(chunk(
                    json!({"tool_calls": [{"index": i, "id": c.id, "type": "function",
                                           "function": {"name": c.name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for f in fragments(&c.arguments) {
                    data.push(chunk(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": f}}]}),
                        Value::Null,
                    ));
                }
            }
            "tool_calls"
        }
    };
    data.push(chunk(json!({}), json!(finish)));
    data.push(
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
                     "model": model, "choices": [],
                     "usage": {"prompt_tokens": usage.input, "completion_tokens": usage.output,
                               "total_tokens": usage.input + usage.output}}),
    );
    let mut events = vec![": keep-alive\n\n".to_string()];
    for (i, d) in data.iter().enumerate() {
        let end = if i % 2 == 0 { "\n\n" } else { "\r\n\r\n" };
        events.push(format!("data: {d}{end}"));
    }
    events.push("data: [DONE]\n\n".to_string());
    split_writes(events)
}

pub(crate) fn anthropic_json(model: &str, answer: &Answer, usage: &Usage) -> Value {
    let (content, stop) = match answer {
        Answer::Text(t) => (vec![json!({"type": "text", "text": t})], "end_turn"),
        Answer::Calls(calls) => (
            calls
                .iter()
                .map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}))
                .collect(),
            "tool_use",
        ),
    };
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": usage.input, "output_tokens": usage.output}
    })
}

pub(crate) fn anthropic_sse(model: &str, answer: &Answer, usage: &Usage) -> Vec<Bytes> {
    let mut events: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": usage.input, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    let stop = match answer {
        Answer::Text(t) => {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ));
            for p in pieces(t, 4) {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": p}}),
                ));
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            "end_turn"
        }
        Answer::Calls(calls) => {
            for (i, c) in calls.iter().enumerate() {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i,
                           "content_block": {"type": "tool_use", "id": c.id, "name": c.name,
                                             "input": {}}}),
                ));
                for f in fragments(&c.arguments) {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": i,
                               "delta": {"type": "input_json_delta", "partial_json": f}}),
                    ));
                }
                events.push((
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": i}),
                ));
            }
            "tool_use"
        }
    };
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": usage.output}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    split_writes(
        events
            .into_iter()
            .map(|(name, d)| format!("event: {name}\ndata: {d}\n\n"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_on_char_boundaries() {
        let p = pieces("héllo wörld", 4);
        assert_eq!(p.concat(), "héllo wörld");
        assert!(p.len() >= 3);
        assert_eq!(fragments("{\"a\":1}").concat(), "{\"a\":1}");
        assert!(fragments("{\"path\":\"x\"}").len() >= 2);
    }

    #[test]
    fn streams_are_split_and_end_properly() {
        let usage = Usage {
            input: 1,
            output: 2,
        };
        let o = openai_sse("m", &Answer::Text("hello there".into()), &usage);
        let all: Vec<u8> = o.iter().flat_map(|b| b.to_vec()).collect();
        let text = String::from_utf8(all).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert!(text.contains("\r\n\r\n"));
        assert!(text.starts_with(": keep-alive"));
        let a = anthropic_sse("m", &Answer::Text("hi".into()), &usage);
        let all: Vec<u8> = a.iter().flat_map(|b| b.to_vec()).collect();
        assert!(
            String::from_utf8(all)
                .unwrap()
                .contains("event: message_stop")
        );
    }
}
