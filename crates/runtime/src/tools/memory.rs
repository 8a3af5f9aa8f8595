//! `memory_write`: the guard decides `Action::MemoryWrite`. `Allow` (a trusted session)
//! appends the entry at once with the session's label; `Ask` (a session that read
//! untrusted content) does not block: the entry becomes a pending change a human accepts
//! (`cordon memory accept ID`) or rejects, and the tool answers "pending human review"
//! at once; `Deny` writes nothing.

use guard::{Decision, Verdict};

use crate::memory::{MemoryFile, MemoryStore};
use crate::tools::ToolOutput;

/// What happened, for the model and the audit log.
pub(crate) struct Written {
    pub output: ToolOutput,
    /// `appended` or `pending`.
    pub outcome: &'static str,
    pub id: String,
}

/// Carry out `verdict` (already recorded in the audit log) for one write by `session`.
pub(crate) fn write(
    store: &MemoryStore,
    verdict: &Verdict,
    file: &MemoryFile,
    text: &str,
    session: &str,
) -> Result<Written, String> {
    match &verdict.decision {
        Decision::Deny { reason } => Err(format!(
            "memory_write denied: {reason} [rule {}]",
            verdict.rule
        )),
        Decision::Allow { .. } => {
            let id = store
                .append(file, text, session, &verdict.labels)
                .map_err(|e| e.to_string())?;
            Ok(Written {
                output: ToolOutput::ok(format!("memory entry {id} added to {file}")),
                outcome: "appended",
                id,
            })
        }
        Decision::Ask { reason } => {
            let id = store
                .submit_pending(file, text, session, &verdict.labels)
                .map_err(|e| e.to_string())?;
            let sources = &verdict.labels.untrusted_sources;
            Ok(Written {
                output: ToolOutput::ok(format!(
                    "pending human review: id {id}. The entry for {file} is stored only once a \
                     human accepts it (`cordon memory accept {id}`), because {reason}{}. \
                     Continue with your task.",
                    if sources.is_empty() {
                        String::new()
                    } else {
                        format!(" (untrusted content read: {})", sources.join(", "))
                    }
                )),
                outcome: "pending",
                id,
            })
        }
    }
}

impl crate::Runtime {
    /// Write after the guard's verdict (recorded by the caller); the outcome is audited.
    pub(crate) fn memory_write(
        &self,
        session: &str,
        call: &crate::ToolCall,
        verdict: &Verdict,
        file: &MemoryFile,
        content: &str,
    ) -> Result<ToolOutput, (&'static str, String)> {
        let Some(store) = self.memory() else {
            return Err((
                "memory",
                "memory_write is unavailable: no memory store is attached to this runtime".into(),
            ));
        };
        let stage = match verdict.decision {
            Decision::Deny { .. } => "decision",
            _ => "memory",
        };
        let written = write(store, verdict, file, content, session).map_err(|m| (stage, m))?;
        let _ = self.audit_log().append(
            audit::EventKind::Approval,
            Some(session),
            serde_json::json!({
                "call_id": call.id,
                "kind": "memory_write",
                "file": file.as_str(),
                "outcome": written.outcome,
                "id": written.id,
                "labels": verdict.labels,
            }),
        );
        Ok(written.output)
    }
}
