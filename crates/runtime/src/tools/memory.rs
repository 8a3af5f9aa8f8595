//! `memory_write`: the guard decides `Action::MemoryWrite`. `Allow` (a trusted session)
//! appends the entry at once with the session's label; `Ask` (a session that read
//! untrusted content) does not block: the entry becomes a `memory_write` request in the
//! approvals queue ([`StoredApprovals::submit`]), carrying the change as its payload, that
//! a human approves (`cordon approvals approve ID`: it is appended then) or denies, and
//! the tool answers "pending human review" at once; `Deny` writes nothing. Grants never
//! cover a memory write: each one is reviewed.

use guard::{Action, Decision, Verdict};
use serde_json::{Value, json};

use crate::approval::{ApprovalKind, ApprovalRequest, StoredApprovals};
use crate::memory::{MemoryFile, MemoryStore, PendingChange};
use crate::tools::ToolOutput;

/// Characters of the text shown in the approval's arguments.
const PREVIEW_CHARS: usize = 120;

/// What happened, for the model and the audit log.
pub(crate) struct Written {
    pub output: ToolOutput,
    /// `appended` or `pending`.
    pub outcome: &'static str,
    /// The entry's id, or the approval request's.
    pub id: String,
}

/// One write by `session` of `agent`, to be carried out after the guard's `verdict`.
pub(crate) struct Write<'a> {
    pub agent: &'a str,
    pub session: &'a str,
    pub file: &'a MemoryFile,
    pub text: &'a str,
}

/// Carry out `verdict` (already recorded in the audit log) for `w`.
pub(crate) fn write(
    store: &MemoryStore,
    approvals: &StoredApprovals,
    verdict: &Verdict,
    w: &Write<'_>,
) -> Result<Written, String> {
    match &verdict.decision {
        Decision::Deny { reason } => Err(format!(
            "memory_write denied: {reason} [rule {}]",
            verdict.rule
        )),
        Decision::Allow { .. } => {
            let id = store
                .append(w.file, w.text, w.session, &verdict.labels)
                .map_err(|e| e.to_string())?;
            Ok(Written {
                output: ToolOutput::ok(format!("memory entry {id} added to {}", w.file)),
                outcome: "appended",
                id,
            })
        }
        Decision::Ask { reason } => {
            let change = PendingChange::new(w.file, w.text, w.session, &verdict.labels)
                .map_err(|e| e.to_string())?;
            let action = Action::MemoryWrite {
                file: w.file.to_string(),
            };
            let req = ApprovalRequest {
                session: w.session.to_string(),
                agent: w.agent.to_string(),
                kind: ApprovalKind::MemoryWrite,
                tool: "memory_write".into(),
                action: action.canonical(),
                fingerprint: action.fingerprint(),
                arguments: json!({"file": w.file.as_str(), "preview": change.preview(PREVIEW_CHARS)}),
                reason: reason.clone(),
                rule: verdict.rule.clone(),
                labels: serde_json::to_value(&verdict.labels).unwrap_or(Value::Null),
                untrusted_sources: verdict.labels.untrusted_sources.clone(),
                payload: Some(serde_json::to_value(&change).map_err(|e| {
                    format!("memory_write not stored: cannot encode the change: {e}")
                })?),
                ..Default::default()
            };
            let id = approvals
                .submit(&req)
                .map_err(|e| format!("memory_write not stored: {e}"))?;
            let sources = &verdict.labels.untrusted_sources;
            Ok(Written {
                output: ToolOutput::ok(format!(
                    "pending human review: id {id}. The entry for {} is stored only once a \
                     human approves it (`cordon approvals approve {id}`), because {reason}{}. \
                     Continue with your task.",
                    w.file,
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
        approvals: &StoredApprovals,
        call: &crate::ToolCall,
        verdict: &Verdict,
        w: &Write<'_>,
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
        let written = write(store, approvals, verdict, w).map_err(|m| (stage, m))?;
        let mut data = json!({
            "call_id": call.id,
            "kind": "memory_write",
            "file": w.file.as_str(),
            "outcome": written.outcome,
            "id": written.id,
            "labels": verdict.labels,
        });
        if written.outcome == "pending" {
            // The request itself was audited as `requested` by `submit`.
            data["state"] = json!("submitted");
            data["approval_id"] = json!(written.id);
        }
        let _ = self
            .audit_log()
            .append(audit::EventKind::Approval, Some(w.session), data);
        Ok(written.output)
    }
}
