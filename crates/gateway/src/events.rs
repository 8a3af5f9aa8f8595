//! The events of a session's stream, defined once: the hub serialises them into the
//! store and the WebSocket (`{seq, at, kind, data}`), and clients (`cordon chat
//! --remote`) parse them back with the same type, so renaming an event or a field changes
//! both sides or fails to compile — never silently at run time.
//!
//! The JSON shapes are the public API (`docs/api.md`): `kind` is the variant's snake_case
//! name and `data` its fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum SessionEvent {
    /// A turn began with the user's `text` (or a task's), and where untrusted content in
    /// it came from (`source`, absent for the user's own words).
    TurnStarted {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// A piece of the model's streamed answer.
    TextDelta { text: String },
    /// A piece of the model's reasoning as it streams (`reasoning_content`, thinking
    /// blocks, a leading `<think>` block): shown apart from the answer, never part of it.
    ReasoningDelta { text: String },
    /// The model proposed a tool call (`arguments`: the raw JSON text it produced).
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// What a tool call returned; `name` is `null` when the gateway did not see the call.
    ToolResult {
        call_id: String,
        #[serde(default)]
        name: Option<String>,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
    /// An action waits for an approver (`POST /api/approvals/{id}`).
    ApprovalRequested {
        id: Option<String>,
        session: String,
        action: String,
        tool: String,
        reason: String,
        rule: String,
        #[serde(default)]
        labels: Value,
        #[serde(default)]
        untrusted_sources: Vec<String>,
    },
    /// A request was answered (or expired): `answer` is the runtime's answer,
    /// `{"answer": "once"}`, `{"answer": "agent", "detail": …}`.
    ApprovalSettled {
        id: Option<String>,
        session: String,
        #[serde(default)]
        answer: Value,
        #[serde(default)]
        by: Option<String>,
    },
    /// The turn ended with the model's `answer`.
    TurnFinished {
        #[serde(default)]
        answer: String,
        #[serde(default)]
        steps: u64,
        #[serde(default)]
        labels: Value,
    },
    /// The turn failed.
    TurnFailed { error: String },
    /// A kind this build does not know (from a newer gateway): a client skips it. The
    /// hub never emits it.
    #[serde(other)]
    Unknown,
}

impl SessionEvent {
    /// `kind` and `data` as stored and sent.
    pub fn to_parts(&self) -> (String, Value) {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let kind = v["kind"].as_str().unwrap_or("unknown").to_string();
        (
            kind,
            v.get_mut("data").map(Value::take).unwrap_or(Value::Null),
        )
    }

    /// The event of a stored or received `kind` and `data`; [`SessionEvent::Unknown`] for
    /// a kind this build does not know, whatever its data.
    pub fn from_parts(kind: &str, data: Value) -> Result<SessionEvent, serde_json::Error> {
        let parsed = serde_json::from_value(serde_json::json!({ "kind": kind, "data": data }));
        match parsed {
            Err(e) => match serde_json::from_value(serde_json::json!({ "kind": kind })) {
                Ok(SessionEvent::Unknown) => Ok(SessionEvent::Unknown),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    /// `once`, `deny`, `expired`… of an [`SessionEvent::ApprovalSettled`] answer.
    pub fn settled_answer(answer: &Value) -> &str {
        answer
            .as_str()
            .or_else(|| answer["answer"].as_str())
            .unwrap_or("answered")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_and_data_keep_their_documented_shape() {
        let (kind, data) = SessionEvent::ToolResult {
            call_id: "c1".into(),
            name: None,
            content: "ok".into(),
            is_error: false,
        }
        .to_parts();
        assert_eq!(kind, "tool_result");
        assert_eq!(
            data,
            json!({"call_id": "c1", "name": null, "content": "ok", "is_error": false})
        );
        let (kind, data) = SessionEvent::TurnFailed { error: "x".into() }.to_parts();
        assert_eq!(
            (kind.as_str(), data),
            ("turn_failed", json!({"error": "x"}))
        );
        let finished = SessionEvent::TurnFinished {
            answer: "done".into(),
            steps: 2,
            labels: json!({"integrity": "trusted"}),
        };
        let (kind, data) = finished.to_parts();
        assert_eq!(kind, "turn_finished");
        assert_eq!(SessionEvent::from_parts(&kind, data).unwrap(), finished);
    }

    #[test]
    fn an_unknown_kind_is_skippable_and_bad_data_is_an_error() {
        assert_eq!(
            SessionEvent::from_parts("from_a_newer_gateway", json!({"x": 1})).unwrap(),
            SessionEvent::Unknown
        );
        assert!(SessionEvent::from_parts("text_delta", json!({"txt": "x"})).is_err());
    }
}
