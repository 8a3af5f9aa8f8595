//! Model servers' answers as their real bodies: the project's own reconstructions of what
//! OpenAI, Ollama (`/v1`), vLLM, llama.cpp's server, DeepSeek, Groq, OpenRouter and
//! Anthropic send, one file per quirk in `fixtures/streams/<server>-<quirk>.sse` (a
//! streamed answer) or `.json` (a whole one).
//!
//! They are written from the published wire formats and from what these servers are known
//! to do, not copied from any third party. Ids and signatures in them are made up.
//! [`Recording::reply`] makes [`MockLlm`](crate::MockLlm) serve one byte for byte (in
//! several network writes). `fixtures/streams/README.md` is generated from [`RECORDINGS`]
//! (`tests/recordings.rs` keeps it current and checks every file is listed).

use crate::conversation::Protocol;
use crate::script::Reply;

/// One model server's answer to one request.
#[derive(Debug, Clone, Copy)]
pub struct Recording {
    /// The file name in `fixtures/streams/`, e.g. `openai-refusal.sse`.
    pub name: &'static str,
    /// The server it reconstructs.
    pub server: &'static str,
    /// The protocol it answers (`/chat/completions` or `/messages`).
    pub protocol: Protocol,
    /// What is peculiar about it, in one line.
    pub quirk: &'static str,
    /// The body exactly as the server writes it.
    pub body: &'static str,
}

impl Recording {
    /// Whether it is a streamed answer (`.sse`) rather than a whole one (`.json`).
    pub fn streamed(&self) -> bool {
        self.name.ends_with(".sse")
    }

    /// A reply that serves this body as it is.
    pub fn reply(&self) -> Reply {
        Reply::Recorded(self.body.to_string())
    }
}

macro_rules! recordings {
    ($($file:literal, $server:literal, $protocol:ident, $quirk:literal;)*) => {
        /// Every recording, in the order of the README.
        pub const RECORDINGS: &[Recording] = &[$(Recording {
            name: $file,
            server: $server,
            protocol: Protocol::$protocol,
            quirk: $quirk,
            body: include_str!(concat!("../fixtures/streams/", $file)),
        }),*];
    };
}

recordings! {
    "openai-tool-calls.sse", "OpenAI", OpenAi,
        "two parallel tool calls keyed by `index`, arguments in fragments, `usage: null` on every chunk, then a usage-only chunk (`choices: []`)";
    "openai-refusal.sse", "OpenAI", OpenAi,
        "a refusal streamed in `delta.refusal`, no `content`";
    "openai-refusal.json", "OpenAI", OpenAi,
        "a refusal in `message.refusal` of a whole answer";
    "openai-length.sse", "OpenAI", OpenAi,
        "text cut at the token limit: `finish_reason: \"length\"`";
    "openai-length-tool-call.sse", "OpenAI", OpenAi,
        "one whole tool call, then a second whose arguments are cut mid-JSON by `finish_reason: \"length\"`";
    "openai-n2.sse", "OpenAI", OpenAi,
        "`n: 2`: two choices interleaved, the second with a tool call";
    "azure-content-filter.sse", "Azure OpenAI", OpenAi,
        "`prompt_filter_results` in a first chunk with `choices: []`, `content_filter_results` on each choice, a few words, then `finish_reason: \"content_filter\"`";
    "ollama-tool-calls.sse", "Ollama /v1", OpenAi,
        "thinking in `delta.reasoning`, `content: \"\"` on every chunk, a whole tool call in one delta, no usage";
    "ollama-think-split-tags.sse", "Ollama /v1 (deepseek-r1, no thinking parser)", OpenAi,
        "reasoning inline in `content` as `<think>…</think>`, both tags cut across deltas (`<thi` + `nk>`)";
    "ollama-think-tag-in-answer.json", "Ollama /v1 (qwq, no thinking parser)", OpenAi,
        "a whole answer: a `<think>` block, then an answer whose code contains `<think>` and `</think>`";
    "vllm-reasoning.sse", "vLLM", OpenAi,
        "`delta.reasoning_content`, text, then a tool call whose first delta has no `arguments`";
    "vllm-think-length.sse", "vLLM (QwQ without a reasoning parser)", OpenAi,
        "a `<think>` block in `content` still open when `finish_reason: \"length\"` ends the answer";
    "vllm-channel-tokens.sse", "vLLM (gpt-oss without a reasoning parser)", OpenAi,
        "channel tokens leak into `content` (`<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…<|return|>`), split across deltas";
    "llamacpp-tool-calls.sse", "llama.cpp server", OpenAi,
        "continuation deltas repeat `id: \"\"` and `name: \"\"`; usage and timings in a last chunk with `choices: []`";
    "llamacpp-no-done.sse", "llama.cpp server", OpenAi,
        "the stream ends after its finish chunk without `data: [DONE]`";
    "llamacpp-think-unopened.sse", "llama.cpp server (`--reasoning-format none`, DeepSeek-R1 distill)", OpenAi,
        "the chat template opened `<think>`: `content` has the reasoning, then only `</think>` (cut across deltas), then the answer";
    "llamacpp-think-tool-call.sse", "llama.cpp server (`--reasoning-format none`, Qwen3)", OpenAi,
        "a `<think>…</think>` block in `content`, then a tool call";
    "deepseek-reasoning.sse", "DeepSeek", OpenAi,
        "`reasoning_content` then `content` (the other one `null`), `: keep-alive` comments, usage on the finish chunk";
    "deepseek-reasoning.json", "DeepSeek", OpenAi,
        "`message.reasoning_content` in a whole answer";
    "deepseek-tool-calls.sse", "DeepSeek", OpenAi,
        "a tool call whose arguments come in many small fragments; usage on the finish chunk";
    "groq-tool-calls.sse", "Groq", OpenAi,
        "a whole tool call in one delta; usage only in `x_groq.usage` of the finish chunk";
    "openrouter-reasoning.sse", "OpenRouter", OpenAi,
        "`: OPENROUTER PROCESSING` comments, `delta.reasoning` with `reasoning_details` beside it, `native_finish_reason`, a usage-only chunk";
    "compat-split-last-event.sse", "an OpenAI-compatible server", OpenAi,
        "the last event's JSON has a raw newline (it spans two lines) and no `data: [DONE]` follows";
    "anthropic-tool-use.sse", "Anthropic", Anthropic,
        "text, then a `tool_use` block whose `input_json_delta`s start with an empty one; `ping`";
    "anthropic-thinking.sse", "Anthropic", Anthropic,
        "a `thinking` block (`thinking_delta`, `signature_delta`), a `redacted_thinking` block, text and a tool call";
    "anthropic-refusal.sse", "Anthropic", Anthropic,
        "a few words, then `stop_reason: \"refusal\"`";
    "anthropic-refusal.json", "Anthropic", Anthropic,
        "`stop_reason: \"refusal\"` with no content in a whole answer";
    "anthropic-max-tokens.sse", "Anthropic", Anthropic,
        "text, then a `tool_use` whose input is cut mid-JSON by `stop_reason: \"max_tokens\"`";
    "anthropic-no-message-stop.sse", "Anthropic", Anthropic,
        "the stream ends after `message_delta` (with its stop reason) without `message_stop`";
}

/// The recording named `name`. Panics, listing the names, if there is none.
pub fn recording(name: &str) -> &'static Recording {
    match RECORDINGS.iter().find(|r| r.name == name) {
        Some(r) => r,
        None => {
            let names: Vec<&str> = RECORDINGS.iter().map(|r| r.name).collect();
            panic!("no recording {name:?}; there are {names:?}")
        }
    }
}

/// `fixtures/streams/README.md`: the index of [`RECORDINGS`].
pub fn index_markdown() -> String {
    let mut md = String::from(
        "# Model servers' answers\n\n\
         Generated from `crates/testkit/src/recordings.rs` (`RECORDINGS`); regenerate with\n\
         `UPDATE_DOCS=1 cargo test -p cordon-testkit --test recordings`.\n\n\
         Each file is the body a model server sends for one request, reconstructed by the\n\
         project from the published wire formats and the servers' known behaviour (ids and\n\
         signatures are made up). `.sse` files are streamed answers, `.json` whole ones.\n\
         `crates/agent/tests/provider_recordings.rs` has one test per file, asserting exactly\n\
         what the provider makes of it.\n\n\
         | file | server | protocol | quirk |\n|---|---|---|---|\n",
    );
    for r in RECORDINGS {
        let protocol = match r.protocol {
            Protocol::OpenAi => "Chat Completions",
            Protocol::Anthropic => "Messages",
        };
        md.push_str(&format!(
            "| `{}` | {} | {protocol} | {} |\n",
            r.name,
            r.server,
            r.quirk.replace('|', "\\|")
        ));
    }
    md
}
