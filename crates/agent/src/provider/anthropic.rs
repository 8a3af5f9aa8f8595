//! Anthropic Messages (`POST {base}/messages`).
//!
//! The system prompt is top-level; tool calls are assistant `tool_use` blocks; tool
//! results go back as `user` messages of `tool_result` blocks, consecutive results merged
//! into one message (the API wants every result of a turn together). Streaming answers are
//! typed events (`message_start`, `content_block_start|delta|stop`, `message_delta`,
//! `message_stop`, `ping`, `error`); an `error` event fails the completion. `thinking`
//! and `redacted_thinking` blocks are reasoning, never text; `stop_reason: "refusal"` is a
//! refusal and `max_tokens` a cut-off answer, in which a `tool_use` block that did not end
//! (no `content_block_stop`; in a whole answer, the last block) is a cut call.

use std::collections::BTreeMap;

use async_trait::async_trait;
use runtime::ToolCall;
use serde_json::{Value, json};

use super::retry::Wire;
use super::{
    CallIds, ChatRequest, Delta, Ending, Message, ModelReply, Parts, Proposed, Protocol, Provider,
    ProviderError, Settings, Usage, read_answer,
};

/// What `reasoning` shows for a `redacted_thinking` block (its content is encrypted).
const REDACTED_THINKING: &str = "[redacted thinking]";

const PATH: &str = "/messages";
const API_VERSION: &str = "2023-06-01";

pub(super) struct Anthropic {
    pub(super) s: Settings,
}

#[async_trait]
impl Provider for Anthropic {
    fn describe(&self) -> String {
        format!("anthropic {} at {}", self.s.model, self.s.wire.base_url())
    }

    async fn complete(
        &self,
        req: &ChatRequest<'_>,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<ModelReply, ProviderError> {
        let wire = &self.s.wire;
        let url = wire.url(PATH);
        let body = request_body(&self.s, req);
        let headers = headers(wire);
        let answer = wire.send(PATH, &headers, &body, self.s.stream).await?;
        read_answer::<StreamState>(wire, &url, answer, &self.s.call_ids, on_delta).await
    }

    async fn check(&self) -> Result<(), ProviderError> {
        super::check_server(&self.s.wire, &headers(&self.s.wire)).await
    }
}

/// The protocol's headers (the API key among them).
fn headers(wire: &Wire) -> Vec<(&'static str, String)> {
    let mut headers = vec![("anthropic-version", API_VERSION.to_string())];
    if let Some(key) = wire.api_key() {
        headers.push(("x-api-key", key.to_string()));
    }
    headers
}

fn request_body(s: &Settings, req: &ChatRequest<'_>) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in req.messages {
        match m {
            Message::System { content } => system.push(content.as_str()),
            Message::User { content } => messages.push(json!({"role": "user", "content": content})),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = Vec::new();
                if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name,
                                       "input": tool_input(&c.arguments)}));
                }
                // The API refuses empty content; an empty turn carries nothing anyway.
                if !blocks.is_empty() {
                    messages.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            Message::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let block = json!({"type": "tool_result", "tool_use_id": call_id,
                                   "content": content, "is_error": is_error});
                match messages.last_mut().and_then(tool_result_blocks) {
                    Some(blocks) => blocks.push(block),
                    None => messages.push(json!({"role": "user", "content": [block]})),
                }
            }
        }
    }
    let mut body = json!({
        "model": s.model,
        "max_tokens": s.max_tokens,
        "stream": s.stream,
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "description": t.description,
                            "input_schema": t.parameters})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

/// The blocks of `m` if it is a user message made of tool results (to merge into).
fn tool_result_blocks(m: &mut Value) -> Option<&mut Vec<Value>> {
    if m.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let blocks = m.get_mut("content")?.as_array_mut()?;
    let all_results = blocks
        .iter()
        .all(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
    all_results.then_some(blocks)
}

/// `tool_use.input` must be an object. Arguments the model got wrong earlier are sent back
/// as they were, wrapped, so the model can see what it produced.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"invalid_arguments": arguments}),
    }
}

fn api_error(wire: &Wire, url: &str, v: &Value) -> Result<(), ProviderError> {
    let is_error = v.get("type").and_then(Value::as_str) == Some("error")
        || v.get("error").is_some_and(|e| !e.is_null());
    if !is_error {
        return Ok(());
    }
    let err = v.get("error").unwrap_or(v);
    let kind = err
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_string();
    let message = match err.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => err.to_string(),
    };
    Err(ProviderError::Api {
        url: url.to_string(),
        kind,
        message: wire.excerpt(&message),
    })
}

fn usage(u: &Value) -> Option<Usage> {
    let input = u.get("input_tokens").and_then(Value::as_u64);
    let output = u.get("output_tokens").and_then(Value::as_u64);
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
    })
}

fn parse_body(
    wire: &Wire,
    url: &str,
    text: &str,
    ids: &CallIds,
) -> Result<ModelReply, ProviderError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| wire.malformed(url, "the response is not JSON", text))?;
    api_error(wire, url, &v)?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| wire.malformed(url, "the response has no `content` array", text))?;
    let stop = v.get("stop_reason").and_then(Value::as_str);
    let mut out = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => out.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                let t = b.get("thinking").and_then(Value::as_str).unwrap_or("");
                push_block(&mut reasoning, t);
            }
            Some("redacted_thinking") => push_block(&mut reasoning, REDACTED_THINKING),
            Some("tool_use") => {
                let name = b
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        wire.malformed(url, "a `tool_use` block has no `name`", &b.to_string())
                    })?;
                let arguments = match b.get("input") {
                    Some(Value::String(raw)) => raw.clone(),
                    Some(Value::Null) | None => "{}".to_string(),
                    Some(input) => input.to_string(),
                };
                calls.push(Proposed {
                    call: ToolCall {
                        id: ids.or_generate(b.get("id").and_then(Value::as_str)),
                        name: name.to_string(),
                        arguments,
                    },
                    // At the token limit the last block is the one being written: the
                    // server's `input` may be what it could parse of a cut one.
                    closed: i + 1 < blocks.len() || ending(stop) != Ending::CutOff,
                });
            }
            _ => {} // future block types carry nothing for the loop
        }
    }
    Ok(Parts {
        text: out,
        reasoning,
        calls,
        stop_reason: stop.map(String::from),
        usage: v.get("usage").and_then(usage),
        ending: ending(stop),
    }
    .into_reply())
}

/// What a stop reason means for the reply.
fn ending(stop: Option<&str>) -> Ending {
    match stop {
        Some("refusal") => Ending::Refused { refusal: None },
        Some("max_tokens" | "model_context_window_exceeded") => Ending::CutOff,
        _ => Ending::Complete,
    }
}

/// Append one block's reasoning, blocks separated by a blank line.
fn push_block(reasoning: &mut String, text: &str) {
    if !reasoning.is_empty() && !text.is_empty() {
        reasoning.push_str("\n\n");
    }
    reasoning.push_str(text);
}

enum Block {
    Text,
    Thinking,
    Tool {
        id: Option<String>,
        name: String,
        json: String,
        /// `content_block_stop` arrived.
        closed: bool,
    },
    Other,
}

#[derive(Default)]
pub(super) struct StreamState {
    text: String,
    reasoning: String,
    /// A reasoning block started: its first text is set apart from the previous block's.
    new_block: bool,
    blocks: BTreeMap<u64, Block>,
    stop_reason: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl Protocol for StreamState {
    const STREAM_END: &'static str = "a `message_stop` event";

    fn parse_body(
        wire: &Wire,
        url: &str,
        text: &str,
        ids: &CallIds,
    ) -> Result<ModelReply, ProviderError> {
        parse_body(wire, url, text, ids)
    }

    fn text(&self) -> &str {
        &self.text
    }

    fn finished(&self) -> bool {
        self.stop_reason.is_some()
    }

    /// One event's data; `Ok(true)` at `message_stop`.
    fn on_data(
        &mut self,
        wire: &Wire,
        url: &str,
        data: &str,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<bool, ProviderError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|_| wire.malformed(url, "a stream event is not JSON", data))?;
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.take_usage(u);
                }
            }
            Some("content_block_start") => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                let b = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = block.get("text").and_then(Value::as_str).unwrap_or("");
                        self.push_text(t, on_delta);
                        Block::Text
                    }
                    Some("thinking") => {
                        self.new_block = true;
                        let t = block.get("thinking").and_then(Value::as_str).unwrap_or("");
                        self.push_reasoning(t, on_delta);
                        Block::Thinking
                    }
                    Some("redacted_thinking") => {
                        self.new_block = true;
                        self.push_reasoning(REDACTED_THINKING, on_delta);
                        Block::Other
                    }
                    Some("tool_use") => Block::Tool {
                        id: block.get("id").and_then(Value::as_str).map(String::from),
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                        json: String::new(),
                        closed: false,
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, b);
            }
            Some("content_block_delta") => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        self.push_text(t, on_delta);
                    }
                    Some("thinking_delta") => {
                        let t = delta.get("thinking").and_then(Value::as_str).unwrap_or("");
                        self.push_reasoning(t, on_delta);
                    }
                    Some("input_json_delta") => {
                        let part = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        match self.blocks.get_mut(&index) {
                            Some(Block::Tool { json, .. }) => json.push_str(part),
                            _ => {
                                let what = "an `input_json_delta` for a block that is not a \
                                            started `tool_use`";
                                return Err(wire.malformed(url, what, data));
                            }
                        }
                    }
                    _ => {} // signatures, future delta types
                }
            }
            Some("message_delta") => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
            }
            Some("content_block_stop") => {
                if let Some(Block::Tool { closed, .. }) = self.blocks.get_mut(&index) {
                    *closed = true;
                }
            }
            Some("message_stop") => return Ok(true),
            Some("error") => api_error(wire, url, &v)?,
            // `ping`, and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn finish(
        self,
        wire: &Wire,
        url: &str,
        ids: &CallIds,
        _on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<ModelReply, ProviderError> {
        let mut calls = Vec::new();
        for (index, block) in self.blocks {
            if let Block::Tool {
                id,
                name,
                json,
                closed,
            } = block
            {
                if name.is_empty() {
                    let got = format!("block {index} with input {json}");
                    return Err(wire.malformed(url, "a `tool_use` block has no `name`", &got));
                }
                let arguments = if json.is_empty() {
                    "{}".to_string()
                } else {
                    json
                };
                calls.push(Proposed {
                    call: ToolCall {
                        id: ids.or_generate(id.as_deref()),
                        name,
                        arguments,
                    },
                    closed,
                });
            }
        }
        let usage = match (self.input_tokens, self.output_tokens) {
            (None, None) => None,
            (i, o) => Some(Usage {
                input_tokens: i.unwrap_or(0),
                output_tokens: o.unwrap_or(0),
            }),
        };
        let ending = ending(self.stop_reason.as_deref());
        Ok(Parts {
            text: self.text,
            reasoning: self.reasoning,
            calls,
            stop_reason: self.stop_reason,
            usage,
            ending,
        }
        .into_reply())
    }
}

impl StreamState {
    /// Reasoning, passed on as it is kept (with the blank line between blocks).
    fn push_reasoning(&mut self, t: &str, on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send)) {
        if t.is_empty() {
            return;
        }
        let before = self.reasoning.len();
        if std::mem::take(&mut self.new_block) {
            push_block(&mut self.reasoning, t);
        } else {
            self.reasoning.push_str(t);
        }
        on_delta(Delta::Reasoning(&self.reasoning[before..]));
    }

    fn push_text(&mut self, t: &str, on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send)) {
        if !t.is_empty() {
            on_delta(Delta::Text(t));
            self.text.push_str(t);
        }
    }

    fn take_usage(&mut self, u: &Value) {
        if let Some(i) = u.get("input_tokens").and_then(Value::as_u64) {
            self.input_tokens = Some(i);
        }
        if let Some(o) = u.get("output_tokens").and_then(Value::as_u64) {
            self.output_tokens = Some(o);
        }
    }
}
