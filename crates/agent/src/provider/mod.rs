//! LLM providers: the two wire protocols Cordon speaks to a language model.
//!
//! [`Provider::complete`] turns a conversation ([`Message`]s) and the offered tools into
//! one [`ModelReply`]: text and/or proposed [`ToolCall`]s. Two protocols are implemented:
//! OpenAI-compatible Chat Completions (`openai`) and Anthropic Messages (`anthropic`),
//! each streaming (server-sent events) or not.
//!
//! What this module guarantees:
//! - it opens no socket: every request goes through [`runtime::ModelEndpoint`], which only
//!   reaches the configured `base_url`;
//! - 429, 5xx and transport failures are retried with exponential backoff (plus jitter),
//!   honouring `Retry-After` up to [`RetryPolicy::max_delay`]; other 4xx are not retried,
//!   and a stream that already started is never retried (its text was delivered);
//! - a response that is not the protocol (not JSON, no `choices`, a stream cut before its
//!   end marker, larger than [`MAX_RESPONSE_BYTES`]) is a [`ProviderError::Malformed`]
//!   with a short excerpt, never a panic and never a partial reply;
//! - the API key never appears in an error: excerpts of server answers are scrubbed of it.
//!
//! What it does not do: it does not validate tool-call arguments. A call whose
//! `arguments` is not valid JSON is passed through as raw text, because the runtime is
//! the one place that parses and rejects arguments (and tells the model why).

mod anthropic;
mod error;
mod openai;
mod retry;
mod sse;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use runtime::{ModelEndpoint, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};

pub use error::ProviderError;

/// The most response bytes one request may accumulate (body or whole stream).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// One message of a conversation, protocol-independent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        call_id: String,
        name: String,
        content: String,
        is_error: bool,
    },
}

/// What is sent to the model for one completion.
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
}

/// Tokens the provider reports for one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The model's answer to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelReply {
    /// The text, `None` when the model produced none.
    pub text: Option<String>,
    /// Proposed tool calls, in the order the model made them.
    pub tool_calls: Vec<ToolCall>,
    /// The provider's reason for stopping (`stop`, `tool_calls`, `end_turn`, `tool_use`…).
    pub stop_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// A language model.
#[async_trait]
pub trait Provider: Send + Sync {
    /// What this is, for logs and status: e.g. `openai qwen2.5:7b at http://127.0.0.1:11434/v1`.
    fn describe(&self) -> String;

    /// One completion. `on_text` receives streamed text deltas as they arrive (called once
    /// with the whole text when not streaming).
    ///
    /// (`for<'t>` is spelled out because `async_trait` would otherwise pin the elided
    /// lifetime of `&str` to one borrow, and no closure could be passed.)
    async fn complete(
        &self,
        req: &ChatRequest<'_>,
        on_text: &mut (dyn for<'t> FnMut(&'t str) + Send),
    ) -> Result<ModelReply, ProviderError>;
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound on any one delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// `model.max_retries` from the config, with the default delays (0.5 s doubling, at
    /// most 30 s).
    pub fn from_config(cfg: &config::ModelConfig) -> RetryPolicy {
        RetryPolicy {
            max_retries: cfg.max_retries,
            ..RetryPolicy::default()
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// The provider `cfg` describes, sending through `endpoint`.
///
/// `api_key` is the key's value (read by the caller from `cfg.api_key_env`), or `None`
/// for servers that need none. `retry` is used as given, `cfg.max_retries` is not read
/// here: see [`RetryPolicy::from_config`].
pub fn from_config(
    cfg: &config::ModelConfig,
    api_key: Option<String>,
    endpoint: ModelEndpoint,
    retry: RetryPolicy,
) -> Box<dyn Provider> {
    let settings = Settings {
        model: cfg.model.clone(),
        max_tokens: cfg.max_tokens,
        stream: cfg.stream,
        wire: retry::Wire::new(endpoint, retry, api_key, cfg.api_key_env.clone()),
        call_ids: CallIds::default(),
    };
    match cfg.provider {
        config::Provider::Openai => Box::new(openai::OpenAi { s: settings }),
        config::Provider::Anthropic => Box::new(anthropic::Anthropic { s: settings }),
    }
}

/// What both protocols need.
struct Settings {
    model: String,
    max_tokens: u32,
    stream: bool,
    wire: retry::Wire,
    call_ids: CallIds,
}

/// Ids for tool calls the model sent without one: `call_1`, `call_2`… unique per provider.
#[derive(Default)]
struct CallIds(AtomicU64);

impl CallIds {
    fn next(&self) -> String {
        format!("call_{}", self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// `id` if the model gave a usable one, else a generated one.
    fn or_generate(&self, id: Option<&str>) -> String {
        match id {
            Some(id) if !id.trim().is_empty() => id.to_string(),
            _ => self.next(),
        }
    }
}

/// Build a reply from accumulated parts.
fn reply(
    text: String,
    tool_calls: Vec<ToolCall>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
) -> ModelReply {
    ModelReply {
        text: (!text.is_empty()).then_some(text),
        tool_calls,
        stop_reason,
        usage,
    }
}

/// How one protocol reads its answer: the whole body, or a stream of SSE data payloads
/// accumulated in `Self`. [`read_answer`] drives either with the same limits and error
/// reporting.
trait Protocol: Default {
    /// What a stream that stops early lacked, e.g. "a `message_stop` event".
    const STREAM_END: &'static str;
    fn parse_body(
        wire: &retry::Wire,
        url: &str,
        text: &str,
        ids: &CallIds,
    ) -> Result<ModelReply, ProviderError>;
    /// One SSE data payload; `Ok(true)` when the stream is complete.
    fn on_data(
        &mut self,
        wire: &retry::Wire,
        url: &str,
        data: &str,
        on_text: &mut (dyn for<'t> FnMut(&'t str) + Send),
    ) -> Result<bool, ProviderError>;
    fn finish(
        self,
        wire: &retry::Wire,
        url: &str,
        ids: &CallIds,
    ) -> Result<ModelReply, ProviderError>;
    /// Text accumulated so far (quoted when the answer grows too large).
    fn text(&self) -> &str;
}

/// Read an answer of protocol `P`, passing text to `on_text` as it arrives.
async fn read_answer<P: Protocol>(
    wire: &retry::Wire,
    url: &str,
    answer: retry::Answer,
    ids: &CallIds,
    on_text: &mut (dyn for<'t> FnMut(&'t str) + Send),
) -> Result<ModelReply, ProviderError> {
    use futures::StreamExt;
    match answer {
        retry::Answer::Body(text) => {
            let reply = P::parse_body(wire, url, &text, ids)?;
            if let Some(t) = &reply.text {
                on_text(t);
            }
            Ok(reply)
        }
        retry::Answer::Stream(resp) => {
            let mut chunks = resp.bytes_stream();
            let mut decoder = sse::SseDecoder::new(MAX_RESPONSE_BYTES);
            let mut state = P::default();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| wire.transport(e))?;
                let events = decoder
                    .feed(&chunk)
                    .map_err(|_| wire.too_large(url, state.text().as_bytes()))?;
                for event in events {
                    if state.on_data(wire, url, &event.data, on_text)? {
                        return state.finish(wire, url, ids);
                    }
                }
            }
            if let Some(event) = decoder.finish()
                && state.on_data(wire, url, &event.data, on_text)?
            {
                return state.finish(wire, url, ids);
            }
            let got = decoder.head();
            Err(wire.malformed(
                url,
                format!("the stream ended without {}", P::STREAM_END),
                &got,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json() {
        let messages = vec![
            Message::System {
                content: "s".into(),
            },
            Message::User {
                content: "u".into(),
            },
            Message::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "c".into(),
                    name: "n".into(),
                    arguments: "{".into(),
                }],
            },
            Message::Tool {
                call_id: "c".into(),
                name: "n".into(),
                content: "r".into(),
                is_error: true,
            },
        ];
        let text = serde_json::to_string(&messages).unwrap();
        assert!(text.contains("\"role\":\"assistant\""), "{text}");
        let back: Vec<Message> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn generated_call_ids_fill_only_missing_ones() {
        let ids = CallIds::default();
        assert_eq!(ids.or_generate(Some("given")), "given");
        assert_eq!(ids.or_generate(None), "call_1");
        assert_eq!(ids.or_generate(Some("  ")), "call_2");
    }
}
