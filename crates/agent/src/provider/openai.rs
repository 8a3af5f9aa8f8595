//! OpenAI-compatible Chat Completions (`POST {base}/chat/completions`): OpenAI, Ollama,
//! vLLM, llama.cpp, OpenRouter and the like.
//!
//! Streaming answers are `data: {chunk}` events ending with `data: [DONE]`; text comes in
//! `delta.content` of the choice with `index` 0 (other choices, sent when `n` > 1, are
//! ignored), tool calls in `delta.tool_calls[i]`, keyed by `index`, whose
//! `function.arguments` arrive as fragments to concatenate (a continuation's `id` and
//! `name` may be `""`). A refusal comes in `refusal`, reasoning in `reasoning_content`
//! (DeepSeek, vLLM) or `reasoning` (Ollama, OpenRouter), or inline in `content` as leaked
//! channel tokens (`channels`) or a leading `<think>…</think>` block (`think`); usage in a
//! last chunk whose `choices` is empty, on the finish chunk, or in Groq's `x_groq.usage`.

use async_trait::async_trait;
use runtime::ToolCall;
use serde_json::{Map, Value, json};

use super::channels::ChannelSplitter;
use super::retry::Wire;
use super::think::{Piece, ThinkSplitter};
use super::{
    CallIds, ChatRequest, Delta, Ending, Message, ModelReply, Parts, Proposed, Protocol, Provider,
    ProviderError, Settings, Usage, read_answer,
};

const PATH: &str = "/chat/completions";

pub(super) struct OpenAi {
    pub(super) s: Settings,
}

#[async_trait]
impl Provider for OpenAi {
    fn describe(&self) -> String {
        format!("openai {} at {}", self.s.model, self.s.wire.base_url())
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
    let mut headers = Vec::new();
    if let Some(key) = wire.api_key() {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    headers
}

fn request_body(s: &Settings, req: &ChatRequest<'_>) -> Value {
    let messages: Vec<Value> = req.messages.iter().map(message_json).collect();
    let mut body = json!({
        "model": s.model,
        "messages": messages,
        "max_tokens": s.max_tokens,
        "stream": s.stream,
    });
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

fn message_json(m: &Message) -> Value {
    match m {
        Message::System { content } => json!({"role": "system", "content": content}),
        Message::User { content } => json!({"role": "user", "content": content}),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            let mut out = Map::new();
            out.insert("role".into(), json!("assistant"));
            if tool_calls.is_empty() {
                // Some servers refuse an assistant message with neither content nor calls.
                out.insert("content".into(), json!(content.as_deref().unwrap_or("")));
            } else {
                out.insert("content".into(), json!(content));
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
            }
            Value::Object(out)
        }
        // The protocol has no error flag on tool results; the model learns it from the text.
        Message::Tool {
            call_id,
            content,
            is_error,
            ..
        } => {
            let content = if *is_error {
                format!("[tool error] {content}")
            } else {
                content.clone()
            };
            json!({"role": "tool", "tool_call_id": call_id, "content": content})
        }
    }
}

/// A non-streamed answer.
fn parse_body(
    wire: &Wire,
    url: &str,
    text: &str,
    ids: &CallIds,
) -> Result<ModelReply, ProviderError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| wire.malformed(url, "the response is not JSON", text))?;
    api_error(wire, url, &v)?;
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| wire.malformed(url, "the response has no `choices` array", text))?;
    let choice = first_choice(choices)
        .or_else(|| choices.first())
        .ok_or_else(|| wire.malformed(url, "`choices` is empty", text))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| wire.malformed(url, "`choices[0]` has no `message` object", text))?;
    let mut channels = ChannelSplitter::default();
    let mut content = channels.push(&content_text(message.get("content")));
    let rest = channels.finish();
    content.answer.push_str(&rest.answer);
    let mut reasoning = reasoning_of(message).unwrap_or_default().to_string();
    reasoning.push_str(&content.reasoning);
    reasoning.push_str(&rest.reasoning);
    // The whole text at once: nothing was passed on before, so nothing to take back.
    let mut think = ThinkSplitter::default();
    let mut answer = String::new();
    for piece in [think.push(&content.answer), think.finish()] {
        reasoning.push_str(&piece.reasoning);
        answer.push_str(&piece.answer);
    }
    let mut calls = Vec::new();
    if let Some(list) = message.get("tool_calls").and_then(Value::as_array) {
        for c in list {
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    wire.malformed(url, "a tool call has no `function.name`", &c.to_string())
                })?;
            calls.push(Proposed {
                call: ToolCall {
                    id: ids.or_generate(c.get("id").and_then(Value::as_str)),
                    name: name.to_string(),
                    arguments: arguments_text(c.pointer("/function/arguments")),
                },
                closed: true,
            });
        }
    }
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let refusal = message.get("refusal").and_then(Value::as_str).unwrap_or("");
    Ok(Parts {
        text: answer,
        reasoning,
        calls,
        stop_reason: finish.map(String::from),
        usage: usage_of(&v),
        ending: ending(finish, refusal),
    }
    .into_reply())
}

/// The choice with `index` 0 (a missing `index` counts as 0): with `n` > 1 a server sends
/// several, interleaved, and only the first is the answer.
fn first_choice(choices: &[Value]) -> Option<&Value> {
    choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

/// Reasoning text of a message or delta: `reasoning_content` (DeepSeek, vLLM, Qwen) or
/// else `reasoning` (Ollama, OpenRouter), whichever is a non-empty string. Servers that
/// send both send the same text twice.
fn reasoning_of(m: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
}

/// A refusal (any non-blank `refusal` text) before the finish reason: `length` is the
/// token limit, `content_filter` the provider's filter (OpenAI, Azure).
fn ending(finish: Option<&str>, refusal: &str) -> Ending {
    if !refusal.trim().is_empty() {
        Ending::Refused {
            refusal: Some(refusal.to_string()),
        }
    } else if finish == Some("length") {
        Ending::CutOff
    } else if finish == Some("content_filter") {
        Ending::Filtered
    } else {
        Ending::Complete
    }
}

/// Usage where compatible servers put it: top-level `usage`, or Groq's `x_groq.usage`.
fn usage_of(v: &Value) -> Option<Usage> {
    v.get("usage")
        .and_then(usage)
        .or_else(|| v.pointer("/x_groq/usage").and_then(usage))
}

/// A server that answers 200 with `{"error": {...}}` (several compatible servers do).
fn api_error(wire: &Wire, url: &str, v: &Value) -> Result<(), ProviderError> {
    let Some(err) = v.get("error").filter(|e| !e.is_null()) else {
        return Ok(());
    };
    let kind = err
        .get("type")
        .or_else(|| err.get("code"))
        .map(|k| match k {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let message = match err.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => err.to_string(),
    };
    Err(ProviderError::Api {
        url: url.to_string(),
        kind: kind.unwrap_or_else(|| "error".into()),
        message: wire.excerpt(&message),
    })
}

/// `content` as text: a string, `null`, or an array of `{type: "text", text}` parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Arguments as raw text, passed through unvalidated; `{}` when there are none.
fn arguments_text(args: Option<&Value>) -> String {
    match args {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // Some servers (Ollama) send the arguments as an object.
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_string(),
    }
}

fn usage(u: &Value) -> Option<Usage> {
    let get = |a: &str, b: &str| u.get(a).or_else(|| u.get(b)).and_then(Value::as_u64);
    let input = get("prompt_tokens", "input_tokens");
    let output = get("completion_tokens", "output_tokens");
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
    })
}

/// One tool call being assembled from stream fragments.
struct PartialCall {
    index: u64,
    id: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Default)]
pub(super) struct StreamState {
    text: String,
    reasoning: String,
    refusal: String,
    channels: ChannelSplitter,
    think: ThinkSplitter,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl Protocol for StreamState {
    const STREAM_END: &'static str = "`data: [DONE]`";

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
        self.finish.is_some()
    }

    /// One `data:` payload; `Ok(true)` at `[DONE]`.
    fn on_data(
        &mut self,
        wire: &Wire,
        url: &str,
        data: &str,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<bool, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|_| wire.malformed(url, "a stream event is not JSON", data))?;
        api_error(wire, url, &v)?;
        let usage = usage_of(&v);
        if usage.is_some() {
            self.usage = usage;
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            if usage.is_some() {
                return Ok(false); // a usage-only chunk without `choices`
            }
            return Err(wire.malformed(url, "a stream event has no `choices` array", data));
        };
        // The usage-only chunk (`choices: []`), or a chunk of another choice.
        let Some(choice) = first_choice(choices) else {
            return Ok(false);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(reason.to_string());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(false);
        };
        if let Some(r) = reasoning_of(delta) {
            self.push_reasoning(r, on_delta);
        }
        if let Some(r) = delta.get("refusal").and_then(Value::as_str) {
            self.refusal.push_str(r);
        }
        let content = content_text(delta.get("content"));
        if !content.is_empty() {
            let split = self.channels.push(&content);
            self.take(split, on_delta);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                self.on_call_delta(c);
            }
        }
        Ok(false)
    }

    fn finish(
        mut self,
        wire: &Wire,
        url: &str,
        ids: &CallIds,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<ModelReply, ProviderError> {
        let rest = self.channels.finish();
        self.take(rest, on_delta);
        let rest = self.think.finish();
        self.take_think(rest, on_delta);
        self.calls.sort_by_key(|c| c.index);
        let mut calls = Vec::with_capacity(self.calls.len());
        for c in self.calls {
            if c.name.is_empty() {
                let got = format!("tool call {} with arguments {}", c.index, c.arguments);
                return Err(wire.malformed(
                    url,
                    "a streamed tool call has no `function.name`",
                    &got,
                ));
            }
            let arguments = if c.arguments.is_empty() {
                "{}".to_string()
            } else {
                c.arguments
            };
            calls.push(Proposed {
                call: ToolCall {
                    id: ids.or_generate(c.id.as_deref()),
                    name: c.name,
                    arguments,
                },
                closed: true,
            });
        }
        let ending = ending(self.finish.as_deref(), &self.refusal);
        Ok(Parts {
            text: self.text,
            reasoning: self.reasoning,
            calls,
            stop_reason: self.finish,
            usage: self.usage,
            ending,
        }
        .into_reply())
    }
}

impl StreamState {
    /// Content split by channel: the rest is reasoning, the answer goes on to the
    /// `<think>` splitter.
    fn take(
        &mut self,
        split: super::channels::Split,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) {
        self.push_reasoning(&split.reasoning, on_delta);
        if !split.answer.is_empty() {
            let piece = self.think.push(&split.answer);
            self.take_think(piece, on_delta);
        }
    }

    /// Content split by `<think>` block: the answer is streamed and kept, the rest is
    /// reasoning (with the text kept so far, when a `</think>` nobody opened says it was).
    fn take_think(&mut self, piece: Piece, on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send)) {
        if piece.earlier_was_reasoning {
            // Already passed on as text: kept as reasoning, not passed on again.
            let earlier = std::mem::take(&mut self.text);
            self.reasoning.push_str(&earlier);
        }
        self.push_reasoning(&piece.reasoning, on_delta);
        if !piece.answer.is_empty() {
            on_delta(Delta::Text(&piece.answer));
            self.text.push_str(&piece.answer);
        }
    }

    fn push_reasoning(&mut self, r: &str, on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send)) {
        if !r.is_empty() {
            on_delta(Delta::Reasoning(r));
            self.reasoning.push_str(r);
        }
    }

    fn on_call_delta(&mut self, c: &Value) {
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let index = match c.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            // Without `index`: a new id starts a new call, anything else continues the last.
            None => match id {
                Some(id) => match self.calls.iter().find(|p| p.id.as_deref() == Some(id)) {
                    Some(p) => p.index,
                    None => self.calls.iter().map(|p| p.index + 1).max().unwrap_or(0),
                },
                None => self.calls.last().map(|p| p.index).unwrap_or(0),
            },
        };
        let pos = match self.calls.iter().position(|p| p.index == index) {
            Some(pos) => pos,
            None => {
                self.calls.push(PartialCall {
                    index,
                    id: None,
                    name: String::new(),
                    arguments: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[pos];
        if let Some(id) = id {
            call.id = Some(id.to_string());
        }
        if let Some(name) = c.pointer("/function/name").and_then(Value::as_str)
            && call.name.is_empty()
        {
            call.name = name.to_string();
        }
        match c.pointer("/function/arguments") {
            Some(Value::String(s)) => call.arguments.push_str(s),
            Some(v @ Value::Object(_)) => call.arguments.push_str(&v.to_string()),
            _ => {}
        }
    }
}
