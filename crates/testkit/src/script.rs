//! What the mock model answers: a queue of [`Reply`]s or a function of the conversation.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::conversation::Conversation;

/// One tool call the mock model makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedCall {
    pub name: String,
    /// Sent as JSON text (OpenAI) or as the `input` object (Anthropic).
    pub arguments: serde_json::Value,
}

impl ScriptedCall {
    pub fn new(name: &str, arguments: serde_json::Value) -> ScriptedCall {
        ScriptedCall {
            name: name.to_string(),
            arguments,
        }
    }
}

/// One answer of the mock model to one request.
///
/// In JSON (script files) it is externally tagged in snake_case, e.g.
/// `{"text": "hi"}`, `{"tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}]}`,
/// `{"status": {"code": 429, "body": "slow down", "retry_after": 1}}`,
/// `{"delay": {"millis": 50, "then": {"text": "late"}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A plain text answer.
    Text(String),
    /// One or more tool calls with well-formed JSON arguments.
    ToolCalls(Vec<ScriptedCall>),
    /// One tool call whose arguments are this raw text, deliberately malformed if wanted.
    /// (Anthropic carries arguments as a JSON object, so there the raw text is only
    /// reproduced when streaming, as `input_json_delta` fragments.)
    RawArguments { name: String, arguments: String },
    /// An HTTP error (or any status) with this body and an optional `Retry-After` in seconds.
    Status {
        code: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// HTTP 200 with exactly this body, for streaming requests too (with an SSE content
    /// type then), so a test can hand-craft any stream.
    Garbage(String),
    /// HTTP 200 with exactly this body, written in pieces of varying size (a few bytes to
    /// a few hundred, cutting lines and characters) as a server's network writes would
    /// arrive: a model server's real answer, e.g. a [`Recording`](crate::Recording).
    Recorded(String),
    /// Wait, then answer with `then`.
    Delay { millis: u64, then: Box<Reply> },
}

/// What the script says once it has run out of replies.
pub const EXHAUSTED: &str = "(script exhausted)";

type DynamicFn = dyn Fn(&Conversation) -> Reply + Send + Sync;

/// The mock model's behaviour.
pub struct Script {
    inner: ScriptInner,
}

enum ScriptInner {
    Queue(Mutex<VecDeque<Reply>>),
    Dynamic(Box<DynamicFn>),
}

/// A script file that could not be used.
#[derive(Debug)]
pub enum ScriptError {
    Read {
        path: String,
        error: std::io::Error,
    },
    Parse {
        path: String,
        error: serde_json::Error,
    },
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::Read { path, error } => {
                write!(f, "cannot read script file {path}: {error}")
            }
            ScriptError::Parse { path, error } => write!(
                f,
                "script file {path} is not a JSON array of replies ({error}); \
                 expected e.g. [{{\"text\": \"hello\"}}]"
            ),
        }
    }
}

impl std::error::Error for ScriptError {}

impl Script {
    /// Replies consumed in order, one per request; then [`EXHAUSTED`] as text.
    pub fn new(replies: Vec<Reply>) -> Script {
        Script {
            inner: ScriptInner::Queue(Mutex::new(replies.into())),
        }
    }

    /// A model that decides each reply from the conversation it is sent.
    pub fn dynamic(f: impl Fn(&Conversation) -> Reply + Send + Sync + 'static) -> Script {
        Script {
            inner: ScriptInner::Dynamic(Box::new(f)),
        }
    }

    /// A JSON array of [`Reply`] read from a file.
    pub fn from_json_file(path: &std::path::Path) -> Result<Script, ScriptError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScriptError::Read {
            path: shown.clone(),
            error,
        })?;
        let replies: Vec<Reply> = serde_json::from_str(&text)
            .map_err(|error| ScriptError::Parse { path: shown, error })?;
        Ok(Script::new(replies))
    }

    pub(crate) fn next(&self, conversation: &Conversation) -> Reply {
        match &self.inner {
            ScriptInner::Queue(queue) => {
                let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                queue
                    .pop_front()
                    .unwrap_or_else(|| Reply::Text(EXHAUSTED.to_string()))
            }
            ScriptInner::Dynamic(f) => f(conversation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_through_json() {
        let replies = vec![
            Reply::Text("hi".into()),
            Reply::ToolCalls(vec![ScriptedCall::new(
                "read_file",
                serde_json::json!({"path": "a"}),
            )]),
            Reply::RawArguments {
                name: "x".into(),
                arguments: "{not json".into(),
            },
            Reply::Status {
                code: 429,
                body: "slow".into(),
                retry_after: Some(1),
            },
            Reply::Garbage("<html>".into()),
            Reply::Recorded("data: [DONE]\n\n".into()),
            Reply::Delay {
                millis: 5,
                then: Box::new(Reply::Text("late".into())),
            },
        ];
        let text = serde_json::to_string(&replies).unwrap();
        let back: Vec<Reply> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, replies);
        let parsed: Vec<Reply> = serde_json::from_str(
            r#"[{"text":"a"},{"status":{"code":500,"body":"","retry_after":null}}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0], Reply::Text("a".into()));
    }

    #[test]
    fn queue_then_exhausted() {
        let script = Script::new(vec![Reply::Text("one".into())]);
        let conv = Conversation::default();
        assert_eq!(script.next(&conv), Reply::Text("one".into()));
        assert_eq!(script.next(&conv), Reply::Text(EXHAUSTED.into()));
    }
}
