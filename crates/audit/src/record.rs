//! One audit record and its canonical serialisation.
//!
//! Canonical form (the bytes that are hashed): a JSON object without any whitespace,
//! fields in this fixed order — `seq` (integer), `ts` (string), `kind` (snake_case
//! string), `session` (string or `null`), `data` (any JSON), `prev` (64 lower-case hex
//! digits) — where every object inside `data` has its keys sorted by their UTF-8 bytes,
//! and strings and numbers are written as `serde_json` writes them. `hash` is the
//! lower-case hex SHA-256 of those bytes. The stored line is the canonical form with
//! `,"hash":"…"` inserted before the final `}`; [`crate::verify`] demands the line be
//! exactly that, so even a semantically neutral edit (a space) is detected.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ConfigLoaded,
    SessionStart,
    UserMessage,
    ModelOutput,
    ToolProposed,
    Decision,
    Approval,
    ToolResult,
    SandboxExec,
    Egress,
    Error,
    Alert,
    /// A vault secret was added, replaced or removed (names and hosts, never values).
    SecretChange,
    /// A skill was added, updated, removed, loaded, used or refused.
    Skill,
    /// A human approved tools of an MCP server (`cordon mcp approve`).
    McpApproval,
    /// An MCP server answered a tool call.
    McpCall,
    /// Workspace changes journaled, applied unjournaled, or undone.
    Checkpoint,
    /// A human cleared a workspace file's provenance label (`cordon files trust`).
    FileTrusted,
    /// A chat channel's inbound message, outbound message or pairing step.
    Channel,
    /// A schedule's run or a webhook delivery.
    Trigger,
}

impl EventKind {
    pub const ALL: [EventKind; 20] = [
        EventKind::ConfigLoaded,
        EventKind::SessionStart,
        EventKind::UserMessage,
        EventKind::ModelOutput,
        EventKind::ToolProposed,
        EventKind::Decision,
        EventKind::Approval,
        EventKind::ToolResult,
        EventKind::SandboxExec,
        EventKind::Egress,
        EventKind::Error,
        EventKind::Alert,
        EventKind::SecretChange,
        EventKind::Skill,
        EventKind::McpApproval,
        EventKind::McpCall,
        EventKind::Checkpoint,
        EventKind::FileTrusted,
        EventKind::Channel,
        EventKind::Trigger,
    ];

    /// The snake_case name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConfigLoaded => "config_loaded",
            EventKind::SessionStart => "session_start",
            EventKind::UserMessage => "user_message",
            EventKind::ModelOutput => "model_output",
            EventKind::ToolProposed => "tool_proposed",
            EventKind::Decision => "decision",
            EventKind::Approval => "approval",
            EventKind::ToolResult => "tool_result",
            EventKind::SandboxExec => "sandbox_exec",
            EventKind::Egress => "egress",
            EventKind::Error => "error",
            EventKind::Alert => "alert",
            EventKind::SecretChange => "secret_change",
            EventKind::Skill => "skill",
            EventKind::McpApproval => "mcp_approval",
            EventKind::McpCall => "mcp_call",
            EventKind::Checkpoint => "checkpoint",
            EventKind::FileTrusted => "file_trusted",
            EventKind::Channel => "channel",
            EventKind::Trigger => "trigger",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When it was appended, RFC 3339 UTC.
    pub ts: String,
    pub kind: EventKind,
    pub session: Option<String>,
    pub data: Value,
    /// `hash` of the previous record; 64 zeros for the first.
    pub prev: String,
    /// SHA-256 of the canonical form of the other fields.
    pub hash: String,
}

impl Record {
    /// Build a record and compute its hash.
    pub fn new(
        seq: u64,
        ts: String,
        kind: EventKind,
        session: Option<String>,
        data: Value,
        prev: String,
    ) -> Record {
        let mut r = Record {
            seq,
            ts,
            kind,
            session,
            data,
            prev,
            hash: String::new(),
        };
        r.hash = hex::encode(Sha256::digest(r.canonical().as_bytes()));
        r
    }

    /// The canonical bytes (everything but `hash`) that `hash` covers.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"ts\":");
        write_string(&mut out, &self.ts);
        out.push_str(",\"kind\":\"");
        out.push_str(self.kind.as_str());
        out.push_str("\",\"session\":");
        match &self.session {
            Some(s) => write_string(&mut out, s),
            None => out.push_str("null"),
        }
        out.push_str(",\"data\":");
        write_value(&mut out, &self.data);
        out.push_str(",\"prev\":");
        write_string(&mut out, &self.prev);
        out.push('}');
        out
    }

    /// The hash the canonical form actually has (to compare with `hash`).
    pub fn computed_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    /// The exact line stored in the file, without the newline.
    pub fn line(&self) -> String {
        let mut line = self.canonical();
        line.pop();
        line.push_str(",\"hash\":");
        write_string(&mut line, &self.hash);
        line.push('}');
        line
    }
}

fn write_string(out: &mut String, s: &str) {
    // Serialising a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, val);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_is_fixed() {
        let r = Record::new(
            1,
            "2026-01-01T00:00:00Z".into(),
            EventKind::ToolProposed,
            None,
            json!({"b": [1, 2.5, "x"], "a": {"z": null, "y": true}}),
            crate::GENESIS_HASH.into(),
        );
        assert_eq!(
            r.canonical(),
            format!(
                "{{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"tool_proposed\",\
                 \"session\":null,\"data\":{{\"a\":{{\"y\":true,\"z\":null}},\"b\":[1,2.5,\"x\"]}},\
                 \"prev\":\"{}\"}}",
                crate::GENESIS_HASH
            )
        );
        assert_eq!(r.hash.len(), 64);
        let parsed: Record = serde_json::from_str(&r.line()).unwrap();
        assert_eq!(parsed, r);
        assert_eq!(parsed.line(), r.line());
        assert_eq!(parsed.computed_hash(), r.hash);
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
