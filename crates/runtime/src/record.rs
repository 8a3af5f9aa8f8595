//! Every audit record the runtime writes, built in one place: one function per record,
//! the record's fields spelled once.
//!
//! Guarantees: a decision, an approval outcome and a tool result are written durably
//! (`Log::record`) and their failure is returned to the caller, which stops the call (or
//! marks its result); the proposal is appended before anything runs. Records whose
//! failure cannot stop anything any more (an error, an effect already done, an alert)
//! are appended, and a failure to append them is logged with `tracing`.
//!
//! Every decision record — the guard's, a runtime limit's, a redirect hop's — is built
//! by [`decision`], so all carry the same fields.

use std::time::Duration;

use audit::{AuditError, EventKind, Log};
use guard::{Action, Labels, Verdict};
use serde_json::{Value, json};

use crate::ToolCall;
use crate::approval::ApprovalAnswer;
use crate::pipeline::Stage;
use crate::tools::ToolOutput;

/// Append a record whose loss cannot stop anything any more; a failure is logged.
fn append_or_warn(log: &Log, kind: EventKind, session: Option<&str>, data: Value) {
    if let Err(e) = log.append(kind, session, data) {
        tracing::warn!("audit: cannot append a {kind:?} record: {e}");
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `tool_proposed`: the call as the model proposed it (arguments already redacted).
pub(crate) fn tool_proposed(
    log: &Log,
    session: &str,
    call: &ToolCall,
    arguments: Value,
) -> Result<(), AuditError> {
    log.append(
        EventKind::ToolProposed,
        Some(session),
        json!({
            "call_id": call.id,
            "tool": call.name,
            "arguments": arguments,
        }),
    )
}

/// What a decision record notes beyond the verdict.
pub(crate) enum DecisionNote<'a> {
    None,
    /// A stored grant answered the `ask` (`session`: a session grant, else an agent one).
    Grant {
        id: &'a str,
        session: bool,
    },
    /// The action is a redirect hop of the call's request.
    Redirect,
}

/// `decision`: the action (`canonical`, already redacted), its fingerprint, the
/// decision, the deciding rule, the policies that matched and the session's labels.
pub(crate) fn decision(
    log: &Log,
    session: &str,
    call: &ToolCall,
    canonical: &str,
    action: &Action,
    v: &Verdict,
    note: DecisionNote<'_>,
) -> Result<(), AuditError> {
    let mut data = json!({
        "call_id": call.id,
        "tool": call.name,
        "action": canonical,
        "action_kind": action.name(),
        "fingerprint": action.fingerprint(),
        "decision": v.decision.kind(),
        "reason": v.decision.reason(),
        "rule": v.rule,
        "matched": v.matched.iter().map(|m| format!("{}:{}", m.effect.as_str(), m.id)).collect::<Vec<_>>(),
        "labels": v.labels,
    });
    match note {
        DecisionNote::None => {}
        DecisionNote::Grant { id, session } => {
            data["grant_id"] = Value::String(id.to_string());
            data["session_grant"] = Value::Bool(session);
        }
        DecisionNote::Redirect => data["redirect"] = Value::Bool(true),
    }
    log.record(EventKind::Decision, Some(session), data)
}

/// `approval` with state `decided`: the outcome of asking a human for this call
/// (`StoredApprovals` wrote `requested`/`answered`/`granted`/`expired`).
pub(crate) fn approval_decided(
    log: &Log,
    session: &str,
    call: &ToolCall,
    canonical: &str,
    fingerprint: &str,
    v: &Verdict,
    answer: &ApprovalAnswer,
) -> Result<(), AuditError> {
    log.record(
        EventKind::Approval,
        Some(session),
        json!({
            "state": "decided",
            "call_id": call.id,
            "action": canonical,
            "fingerprint": fingerprint,
            "rule": v.rule,
            "labels": v.labels,
            "answer": serde_json::to_value(answer).unwrap_or(Value::Null),
        }),
    )
}

/// `approval` for a memory write: appended at once, or submitted for review.
pub(crate) fn memory_write(
    log: &Log,
    session: &str,
    call: &ToolCall,
    file: &str,
    outcome: &str,
    id: &str,
    labels: &Labels,
) {
    let mut data = json!({
        "call_id": call.id,
        "kind": "memory_write",
        "file": file,
        "outcome": outcome,
        "id": id,
        "labels": labels,
    });
    if outcome == "pending" {
        // The request itself was audited as `requested` by `submit`.
        data["state"] = json!("submitted");
        data["approval_id"] = json!(id);
    }
    append_or_warn(log, EventKind::Approval, Some(session), data);
}

/// `alert` `data_exfiltration_blocked`: private or secret data headed for a host it is
/// not bound to was refused. `call_id` is `None` for a command's own connection.
pub(crate) fn exfiltration_blocked(
    log: &Log,
    session: &str,
    call_id: Option<&str>,
    action: &str,
    v: &Verdict,
) {
    let mut data = json!({
        "alert": "data_exfiltration_blocked",
        "action": action,
        "rule": v.rule,
        "labels": v.labels,
    });
    if let Some(id) = call_id {
        data["call_id"] = json!(id);
    }
    append_or_warn(log, EventKind::Alert, Some(session), data);
}

/// `error`: the stage at which a call ended, and the (redacted) message.
pub(crate) fn error(log: &Log, session: &str, call: &ToolCall, stage: Stage, message: &str) {
    append_or_warn(
        log,
        EventKind::Error,
        Some(session),
        json!({
            "call_id": call.id,
            "tool": call.name,
            "stage": stage.as_str(),
            "message": message,
        }),
    );
}

/// `tool_result`: size, digest, status and label of what the model is shown.
pub(crate) fn tool_result(
    log: &Log,
    session: &str,
    call: &ToolCall,
    output: &ToolOutput,
    redacted: &secrets::Redacted,
    elapsed: Duration,
    labels: &Labels,
) -> Result<(), AuditError> {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(redacted.text.as_bytes()));
    log.record(
        EventKind::ToolResult,
        Some(session),
        json!({
            "call_id": call.id,
            "tool": call.name,
            "is_error": output.is_error,
            "status": output.status,
            "duration_ms": millis(elapsed),
            "bytes": redacted.text.len(),
            "sha256": digest,
            "truncated": output.truncated,
            "redacted": redacted.hits,
            "labels": labels,
        }),
    )
}

/// `tool_result` of loading memory at the start of a session.
pub(crate) fn memory_load(
    log: &Log,
    session: &str,
    entries: usize,
    labels: &Labels,
    problems: &[String],
) {
    append_or_warn(
        log,
        EventKind::ToolResult,
        Some(session),
        json!({
            "tool": "memory_load",
            "entries": entries,
            "labels": labels,
            "problems": problems,
        }),
    );
}

/// `sandbox_exec`: how a command ran (`backend`, whether it was isolated) and ended.
pub(crate) fn sandbox_exec(
    log: &Log,
    session: &str,
    call: &ToolCall,
    backend: &str,
    isolation: sandbox::Isolation,
    out: &sandbox::ExecOutput,
) {
    append_or_warn(
        log,
        EventKind::SandboxExec,
        Some(session),
        json!({
            "call_id": call.id,
            "backend": backend,
            "isolation": match isolation {
                sandbox::Isolation::None => {
                    "NONE: the command ran on the host without a sandbox (sandbox.backend = \"none\")"
                }
                sandbox::Isolation::Isolated => "sandboxed",
            },
            "status": crate::tools::exec::status_json(out.status),
            "duration_ms": millis(out.duration),
            "stdout_bytes": out.stdout.len() as u64 + out.stdout_dropped,
            "stderr_bytes": out.stderr.len() as u64 + out.stderr_dropped,
        }),
    );
}

/// `egress`: a request of the runtime's own (`http_fetch`) completed.
pub(crate) fn egress(log: &Log, session: &str, call: &ToolCall, url: &str, status: &Value) {
    append_or_warn(
        log,
        EventKind::Egress,
        Some(session),
        json!({
            "call_id": call.id,
            "url": url,
            "status": status,
        }),
    );
}

/// `model_output` of the quarantined reader (a model call without tools).
pub(crate) fn quarantined_answer(
    log: &Log,
    session: &str,
    call: &ToolCall,
    url: &str,
    instruction: &str,
    outcome: &Result<Value, String>,
) {
    append_or_warn(
        log,
        EventKind::ModelOutput,
        Some(session),
        json!({
            "call_id": call.id,
            "quarantine": true,
            "url": url,
            "instruction": instruction,
            "answer": outcome.as_ref().ok(),
            "error": outcome.as_ref().err(),
        }),
    );
}
