//! LLM providers: the two wire protocols Cordon speaks to a language model.
//!
//! [`Provider::complete`] turns a conversation ([`Message`]s) and the offered tools into
//! one [`ModelReply`]: text and/or proposed [`ToolCall`]s, the model's reasoning apart,
//! and how the answer ended ([`Ending`]). Two protocols are implemented: OpenAI-compatible
//! Chat Completions (`openai`: OpenAI, Ollama's `/v1`, vLLM, llama.cpp's server,
//! DeepSeek, Groq, OpenRouter…) and Anthropic Messages (`anthropic`), each streaming
//! (server-sent events) or not. `testkit::recordings` holds these servers' real answers,
//! one per quirk; `tests/provider_recordings.rs` asserts what each becomes.
//!
//! What this module guarantees:
//! - it opens no socket: every request goes through [`runtime::ModelEndpoint`], which only
//!   reaches the configured `base_url`;
//! - 429, 5xx and transport failures are retried with exponential backoff (plus jitter),
//!   honouring `Retry-After` up to [`RetryPolicy::max_delay`]; other 4xx are not retried,
//!   and a stream that already started is never retried (its text was delivered);
//! - a response that is not the protocol (not JSON, no `choices`, a stream cut before the
//!   model's finish reason, larger than [`MAX_RESPONSE_BYTES`]) is a
//!   [`ProviderError::Malformed`] with a short excerpt, never a panic and never a partial
//!   reply;
//! - a refusal is never an empty answer: OpenAI's `refusal` (streamed or not) and
//!   Anthropic's `stop_reason: "refusal"` are [`Ending::Refused`];
//! - an answer cut at the token limit (`finish_reason: "length"`, `stop_reason:
//!   "max_tokens"`) is [`Ending::CutOff`], and a tool call it cut is never in
//!   [`ModelReply::tool_calls`]: a call whose arguments are not a whole JSON object (or,
//!   in Anthropic's protocol, whose block did not end) is in [`ModelReply::cut_calls`];
//! - an answer a provider's content filter stopped (`finish_reason: "content_filter"`) is
//!   [`Ending::Filtered`], never a silent empty or cut answer, and its cut calls are
//!   `cut_calls` as at the token limit;
//! - reasoning is never answer text: `reasoning_content`, `reasoning`, Anthropic
//!   `thinking` and `redacted_thinking` blocks, the non-final channels of a model whose
//!   channel tokens leak into `content` (`channels`), and a `<think>…</think>` block at
//!   the start of `content` (`think`; also when only `</think>` came, because the chat
//!   template opened the block) go to [`ModelReply::reasoning`], and to the caller as
//!   [`Delta::Reasoning`] as they arrive (a `</think>` nobody opened is the one exception,
//!   below);
//! - only the first choice (`index` 0) is read when a server sends several (`n` > 1);
//! - once the model's finish reason has arrived, a stream that ends without its end marker
//!   (`data: [DONE]`, `message_stop`) is accepted with a warning in the log, and so is an
//!   event whose JSON a raw newline broke over two lines when it parses joined;
//! - the API key never appears in an error: excerpts of server answers are scrubbed of it;
//! - [`Provider::check`] is one request (`GET {base_url}/models`) and never retried, so a
//!   server that is not there fails at once, before the first prompt; each retry of a
//!   completion goes to the caller's [`OnRetry`] when it gave one (a status line), else
//!   to the log as a warning.
//!
//! What it does not do: it does not validate the arguments of a call that was not cut. A
//! call whose `arguments` is not valid JSON is passed through as raw text, because the
//! runtime is the one place that parses and rejects arguments (and tells the model why).
//! It does not send reasoning back to the model (Anthropic's thinking signatures are
//! dropped; extended thinking is not requested). Text streamed before a `</think>` that
//! no `<think>` opened was passed to `on_delta` as answer before the tag showed it was
//! reasoning; the reply has it as reasoning, the deltas cannot be taken back.

mod anthropic;
mod channels;
mod error;
mod openai;
mod retry;
mod sse;
mod think;

use std::borrow::Cow;
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
    /// The answer's text, `None` when the model produced none. Never reasoning.
    pub text: Option<String>,
    /// Proposed tool calls, in the order the model made them. Never a call the token limit
    /// cut (those are in `cut_calls`).
    pub tool_calls: Vec<ToolCall>,
    /// The provider's reason for stopping (`stop`, `tool_calls`, `end_turn`, `tool_use`…).
    pub stop_reason: Option<String>,
    pub usage: Option<Usage>,
    /// What the model reasoned apart from its answer (`reasoning_content`, `reasoning`,
    /// `thinking` blocks, non-final channels), `None` when it showed none. Redacted
    /// thinking is shown as `[redacted thinking]`.
    pub reasoning: Option<String>,
    /// How the answer ended.
    pub ending: Ending,
    /// Tool calls the token limit cut before their arguments were whole: never to be run.
    pub cut_calls: Vec<CutCall>,
}

/// How an answer ended, where that changes what is done with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Ending {
    /// The model finished its answer or its calls (or the server named no reason that
    /// matters here).
    #[default]
    Complete,
    /// The model declined to answer. `refusal` is its stated reason when the protocol
    /// carries one (OpenAI's `refusal`); Anthropic's `stop_reason: "refusal"` carries none,
    /// and what it wrote before stopping is in `text`.
    Refused { refusal: Option<String> },
    /// The answer reached the token limit (`model.max_tokens`): `text` stops mid-way, and
    /// calls it cut are in [`ModelReply::cut_calls`].
    CutOff,
    /// The provider's content filter stopped the answer (OpenAI's and Azure's
    /// `finish_reason: "content_filter"`): `text` is what came before, calls it cut are in
    /// [`ModelReply::cut_calls`], and none of the answer's calls is to run.
    Filtered,
}

impl Ending {
    /// Whether the model or its provider withheld the answer (a refusal, a content
    /// filter): the task was not done, and none of the answer's calls runs.
    pub fn withheld(&self) -> bool {
        matches!(self, Ending::Refused { .. } | Ending::Filtered)
    }
}

/// A tool call cut off by the token limit. Deliberately not a [`ToolCall`]: nothing may
/// run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutCall {
    pub id: String,
    pub name: String,
    /// The arguments as far as they came (incomplete JSON, or unfinished).
    pub partial_arguments: String,
}

/// A language model.
#[async_trait]
pub trait Provider: Send + Sync {
    /// What this is, for logs and status: e.g. `openai qwen2.5:7b at http://127.0.0.1:11434/v1`.
    fn describe(&self) -> String;

    /// One completion. `on_delta` receives the answer's text and the model's reasoning as
    /// they arrive, each [`Delta`] a piece of one or the other (when not streaming, once
    /// each with the whole reasoning, then the whole text).
    ///
    /// (`for<'t>` is spelled out because `async_trait` would otherwise pin the elided
    /// lifetime of `&str` to one borrow, and no closure could be passed.)
    async fn complete(
        &self,
        req: &ChatRequest<'_>,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<ModelReply, ProviderError>;

    /// Whether the server answers, in one request and without retrying, before the
    /// first prompt: `GET {base_url}/models`. Any HTTP answer but 401/403 will do (some
    /// servers do not list their models); no connection, a timeout or a refused key is
    /// an error. Models that need no server (scripted ones) keep the default.
    async fn check(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A piece of an answer as it arrives, passed to [`Provider::complete`]'s `on_delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta<'t> {
    /// Answer text ([`ModelReply::text`]).
    Text(&'t str),
    /// Reasoning, never answer text ([`ModelReply::reasoning`]).
    Reasoning(&'t str),
}

/// A retry about to happen, as told to an [`OnRetry`].
#[derive(Debug)]
pub struct Retrying<'a> {
    /// The attempt that failed (1 is the first).
    pub attempt: u32,
    /// Attempts at most (`max_retries + 1`).
    pub attempts: u32,
    /// How long until the next attempt.
    pub delay: Duration,
    pub error: &'a ProviderError,
}

/// Told of each retry (see [`from_config_reporting`]).
pub type OnRetry = std::sync::Arc<dyn Fn(&Retrying<'_>) + Send + Sync>;

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
    from_config_reporting(cfg, api_key, endpoint, retry, None)
}

/// [`from_config`], telling `on_retry` of each retry instead of logging a warning (a
/// terminal shows them as one status line).
pub fn from_config_reporting(
    cfg: &config::ModelConfig,
    api_key: Option<String>,
    endpoint: ModelEndpoint,
    retry: RetryPolicy,
    on_retry: Option<OnRetry>,
) -> Box<dyn Provider> {
    let settings = Settings {
        model: cfg.model.clone(),
        max_tokens: cfg.max_tokens,
        stream: cfg.stream,
        wire: retry::Wire::new(endpoint, retry, api_key, cfg.api_key_env.clone())
            .reporting_to(on_retry),
        call_ids: CallIds::default(),
    };
    match cfg.provider {
        config::Provider::Openai => Box::new(openai::OpenAi { s: settings }),
        config::Provider::Anthropic => Box::new(anthropic::Anthropic { s: settings }),
    }
}

/// Model ids an OpenAI-compatible server at `endpoint` lists (`GET {base_url}/models`,
/// `{"data": [{"id": …}]}`), in its order; one request, no retry. `cordon init` asks each
/// local server it finds.
pub async fn list_models(endpoint: ModelEndpoint) -> Result<Vec<String>, ProviderError> {
    let wire = retry::Wire::new(endpoint, RetryPolicy::default(), None, None);
    let (status, text) = wire.get(MODELS_PATH, &[]).await?;
    let url = wire.url(MODELS_PATH);
    if !(200..300).contains(&status) {
        return Err(ProviderError::Http {
            url,
            status,
            excerpt: wire.excerpt(&text),
            what_to_do: "the server does not list its models: name one with model.model",
        });
    }
    #[derive(Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        id: String,
    }
    let list: List = serde_json::from_str(&text).map_err(|_| {
        wire.malformed(
            &url,
            "not a model list (`{\"data\": [{\"id\": …}]}`)",
            &text,
        )
    })?;
    Ok(list.data.into_iter().map(|e| e.id).collect())
}

/// Where both protocols list their models, beneath `base_url`.
const MODELS_PATH: &str = "/models";

/// [`Provider::check`] for both protocols: one GET with the protocol's headers.
async fn check_server(wire: &retry::Wire, headers: &[(&str, String)]) -> Result<(), ProviderError> {
    let (status, text) = wire.get(MODELS_PATH, headers).await?;
    if status == 401 || status == 403 {
        return Err(wire.unauthorized(MODELS_PATH, status, &text));
    }
    Ok(())
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

/// What a protocol read from one answer, before the rules both protocols share are
/// applied ([`Parts::into_reply`]).
#[derive(Default)]
struct Parts {
    text: String,
    reasoning: String,
    calls: Vec<Proposed>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
    ending: Ending,
}

/// A tool call as read.
struct Proposed {
    call: ToolCall,
    /// Whether the protocol marked its end. OpenAI's marks none (always `true`);
    /// Anthropic's ends each block (`content_block_stop`, or a block before the last).
    closed: bool,
}

impl Parts {
    /// The reply: at the token limit or a content filter, a call that did not end or whose
    /// arguments are not a whole JSON object goes to `cut_calls`, never to `tool_calls`.
    fn into_reply(self) -> ModelReply {
        let cut_off = matches!(self.ending, Ending::CutOff | Ending::Filtered);
        let mut tool_calls = Vec::new();
        let mut cut_calls = Vec::new();
        for Proposed { call, closed } in self.calls {
            if cut_off && (!closed || !is_json_object(&call.arguments)) {
                cut_calls.push(CutCall {
                    id: call.id,
                    name: call.name,
                    partial_arguments: call.arguments,
                });
            } else {
                tool_calls.push(call);
            }
        }
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        ModelReply {
            text: non_empty(self.text),
            tool_calls,
            stop_reason: self.stop_reason,
            usage: self.usage,
            reasoning: non_empty(self.reasoning),
            ending: self.ending,
            cut_calls,
        }
    }
}

fn is_json_object(text: &str) -> bool {
    matches!(
        serde_json::from_str::<serde_json::Value>(text),
        Ok(serde_json::Value::Object(_))
    )
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
    /// One SSE data payload; `Ok(true)` at the stream's end marker.
    fn on_data(
        &mut self,
        wire: &retry::Wire,
        url: &str,
        data: &str,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<bool, ProviderError>;
    /// The reply; text and reasoning held back until now go to `on_delta` first.
    fn finish(
        self,
        wire: &retry::Wire,
        url: &str,
        ids: &CallIds,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<ModelReply, ProviderError>;
    /// Text accumulated so far (quoted when the answer grows too large).
    fn text(&self) -> &str;
    /// Whether the model's finish reason has arrived (after it, a stream that stops
    /// without its end marker lost nothing the reply needs).
    fn finished(&self) -> bool;
}

/// Read an answer of protocol `P`, passing text to `on_delta` as it arrives.
async fn read_answer<P: Protocol>(
    wire: &retry::Wire,
    url: &str,
    answer: retry::Answer,
    ids: &CallIds,
    on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
) -> Result<ModelReply, ProviderError> {
    use futures::StreamExt;
    match answer {
        retry::Answer::Body(text) => {
            let reply = P::parse_body(wire, url, &text, ids)?;
            if let Some(r) = &reply.reasoning {
                on_delta(Delta::Reasoning(r));
            }
            if let Some(t) = &reply.text {
                on_delta(Delta::Text(t));
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
                    if state.on_data(wire, url, &payload(&event, url), on_delta)? {
                        return state.finish(wire, url, ids, on_delta);
                    }
                }
            }
            if let Some(event) = decoder.finish()
                && state.on_data(wire, url, &payload(&event, url), on_delta)?
            {
                return state.finish(wire, url, ids, on_delta);
            }
            if state.finished() {
                tracing::warn!(
                    url,
                    "the model's stream ended without {} after its finish reason; \
                     using the answer as it came",
                    P::STREAM_END
                );
                return state.finish(wire, url, ids, on_delta);
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

/// An event's payload. A server that writes a raw newline inside its JSON breaks the
/// payload over lines the SSE format ignores ([`sse::SseEvent::stray`]); when the payload
/// alone is not JSON but is once joined with them, the joined text (with a warning). The
/// newline fell between JSON tokens (kept) or inside a string (where JSON wants `\n`).
fn payload<'e>(event: &'e sse::SseEvent, url: &str) -> Cow<'e, str> {
    let is_json = |t: &str| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok();
    if event.stray.is_empty() || is_json(&event.data) {
        return Cow::Borrowed(&event.data);
    }
    let between_tokens = format!("{}\n{}", event.data, event.stray.join("\n"));
    let in_a_string = format!("{}\\n{}", event.data, event.stray.join("\\n"));
    for joined in [between_tokens, in_a_string] {
        if is_json(&joined) {
            tracing::warn!(
                url,
                "a stream event's JSON spans {} lines (a raw newline in it); read it joined",
                event.stray.len() + 1
            );
            return Cow::Owned(joined);
        }
    }
    Cow::Borrowed(&event.data)
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
    fn a_payload_broken_by_a_raw_newline_is_read_joined() {
        let event = |data: &str, stray: &[&str]| sse::SseEvent {
            event: None,
            data: data.into(),
            stray: stray.iter().map(|s| s.to_string()).collect(),
        };
        let between = event(r#"{"a":1,"#, &[r#""b":2}"#]);
        assert_eq!(payload(&between, "u"), "{\"a\":1,\n\"b\":2}");
        let inside = event(r#"{"t":"one"#, &[r#"two"}"#]);
        let joined = payload(&inside, "u");
        let v: serde_json::Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(v["t"], "one\ntwo");
        // Whole payloads and hopeless ones are left as they are.
        assert_eq!(payload(&event("[DONE]", &[]), "u"), "[DONE]");
        assert_eq!(payload(&event(r#"{"a":"#, &["nope"]), "u"), r#"{"a":"#);
    }

    #[test]
    fn at_the_token_limit_only_whole_closed_calls_survive() {
        let call = |args: &str, closed| Proposed {
            call: ToolCall {
                id: "c".into(),
                name: "n".into(),
                arguments: args.into(),
            },
            closed,
        };
        let parts = |ending| Parts {
            calls: vec![
                call("{\"a\":1}", true),
                call("{\"a\":", true),
                call("{\"a\":1}", false),
                call("[1]", true),
            ],
            ending,
            ..Parts::default()
        };
        let cut = parts(Ending::CutOff).into_reply();
        assert_eq!(cut.tool_calls.len(), 1);
        assert_eq!(cut.tool_calls[0].arguments, "{\"a\":1}");
        let partial: Vec<&str> = cut
            .cut_calls
            .iter()
            .map(|c| c.partial_arguments.as_str())
            .collect();
        assert_eq!(partial, vec!["{\"a\":", "{\"a\":1}", "[1]"]);
        // A content filter cuts calls the same way.
        let filtered = parts(Ending::Filtered).into_reply();
        assert_eq!(
            (filtered.tool_calls.len(), filtered.cut_calls.len()),
            (1, 3)
        );
        assert!(filtered.ending.withheld() && !cut.ending.withheld());
        // Not at the limit, calls pass as they are (the runtime judges arguments).
        let whole = parts(Ending::Complete).into_reply();
        assert_eq!(whole.tool_calls.len(), 4);
        assert!(whole.cut_calls.is_empty());
    }

    #[test]
    fn generated_call_ids_fill_only_missing_ones() {
        let ids = CallIds::default();
        assert_eq!(ids.or_generate(Some("given")), "given");
        assert_eq!(ids.or_generate(None), "call_1");
        assert_eq!(ids.or_generate(Some("  ")), "call_2");
    }
}
