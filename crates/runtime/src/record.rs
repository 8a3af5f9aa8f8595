//! Every audit record the runtime writes, built in one place as a typed
//! [`audit::Event`]: one function per record.
//!
//! Guarantees: a decision, an approval outcome and a tool result are written durably
//! (`Log::record_event`) and their failure is returned to the caller, which stops the
//! call (or marks its result); the proposal is appended before anything runs. Records
//! whose failure cannot stop anything any more (an error, an effect already done, an
//! alert) are appended, and a failure to append them is logged with `tracing`.
//!
//! Every decision record — the guard's, a runtime limit's, a redirect hop's — is built
//! by [`decision`], so all carry the same fields.

use std::time::Duration;

use audit::event::{
    Alert, Approval, ApprovalAnswered, ApprovalDecided, ApprovalExpired, ApprovalRequested,
    ApprovalState, CallResult, Egress, ErrorEvent, ExfiltrationBlocked, FetchEgress, GrantChange,
    MemoryLoad, MemoryWrite, ModelOutput, NamedAlert, QuarantineReading, SandboxExec, ToolDecision,
    ToolExec, ToolFailure, ToolProposed, ToolResult,
};
use audit::{AuditError, Event, Log};
use guard::{Action, Labels, Verdict};
use serde::Serialize;
use serde_json::Value;

use crate::ToolCall;
use crate::approval::ApprovalAnswer;
use crate::pipeline::Stage;
use crate::tools::ToolOutput;

/// Append a record whose loss cannot stop anything any more; a failure is logged.
pub(crate) fn append_or_warn(log: &Log, session: &str, event: impl Into<Event>) {
    let event = event.into();
    let kind = event.kind();
    if let Err(e) = log.append_event(Some(session), event) {
        tracing::warn!("audit: cannot append a {} record: {e}", kind.as_str());
    }
}

/// A value of another crate's type (labels, an answer) as the record carries it.
fn json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
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
    log.append_event(
        Some(session),
        ToolProposed {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments,
        },
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

/// What was decided: the action (and its redacted canonical text), the verdict, and
/// whether its workspace changes are checkpointed.
pub(crate) struct Decided<'a> {
    pub(crate) canonical: &'a str,
    pub(crate) action: &'a Action,
    pub(crate) verdict: &'a Verdict,
    pub(crate) checkpointed: bool,
}

/// `decision`: the action (`canonical`, already redacted), its fingerprint, the
/// decision, the deciding rule, the policies that matched, the session's labels and
/// whether the action is checkpointed.
pub(crate) fn decision(
    log: &Log,
    session: &str,
    call: &ToolCall,
    decided: Decided<'_>,
    note: DecisionNote<'_>,
) -> Result<(), AuditError> {
    let Decided {
        canonical,
        action,
        verdict: v,
        checkpointed,
    } = decided;
    let mut d = ToolDecision {
        call_id: call.id.clone(),
        tool: call.name.clone(),
        action: canonical.to_string(),
        action_kind: action.name().to_string(),
        fingerprint: action.fingerprint(),
        decision: v.decision.kind().to_string(),
        reason: v.decision.reason().to_string(),
        rule: v.rule.clone(),
        matched: v
            .matched
            .iter()
            .map(|m| format!("{}:{}", m.effect.as_str(), m.id))
            .collect(),
        labels: json(&v.labels),
        grant_id: None,
        session_grant: None,
        redirect: None,
        checkpointed: checkpointed.then_some(true),
    };
    match note {
        DecisionNote::None => {}
        DecisionNote::Grant { id, session } => {
            d.grant_id = Some(id.to_string());
            d.session_grant = Some(session);
        }
        DecisionNote::Redirect => d.redirect = Some(true),
    }
    log.record_event(Some(session), audit::event::Decision::Tool(d))
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
    log.record_event(
        Some(session),
        Approval::State(ApprovalState::Decided(ApprovalDecided {
            call_id: call.id.clone(),
            action: canonical.to_string(),
            fingerprint: fingerprint.to_string(),
            rule: v.rule.clone(),
            labels: json(&v.labels),
            answer: json(answer),
        })),
    )
}

/// `approval` for a memory write: appended at once, or (`pending`) submitted for
/// review as approval request `id`.
pub(crate) fn memory_write(
    log: &Log,
    session: &str,
    call: &ToolCall,
    file: &str,
    outcome: &str,
    id: &str,
    labels: &Labels,
) {
    // The request itself was audited as `requested` by `submit`.
    let pending = outcome == "pending";
    append_or_warn(
        log,
        session,
        Approval::MemoryWrite(MemoryWrite {
            state: pending.then(|| "submitted".to_string()),
            call_id: call.id.clone(),
            kind: "memory_write".into(),
            file: file.to_string(),
            outcome: outcome.to_string(),
            id: id.to_string(),
            labels: json(labels),
            approval_id: pending.then(|| id.to_string()),
        }),
    );
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
    append_or_warn(
        log,
        session,
        Alert::Named(NamedAlert::DataExfiltrationBlocked(ExfiltrationBlocked {
            call_id: call_id.map(str::to_string),
            action: action.to_string(),
            rule: v.rule.clone(),
            labels: json(&v.labels),
        })),
    );
}

/// `error`: the stage at which a call ended, and the (redacted) message.
pub(crate) fn error(log: &Log, session: &str, call: &ToolCall, stage: Stage, message: &str) {
    append_or_warn(
        log,
        session,
        ErrorEvent::Tool(ToolFailure {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            stage: stage.as_str().to_string(),
            message: message.to_string(),
        }),
    );
}

/// `tool_result`: size, digest, status, label and provenance source of what the model is shown.
pub(crate) fn tool_result(
    log: &Log,
    session: &str,
    call: &ToolCall,
    output: &ToolOutput,
    redacted: &secrets::Redacted,
    elapsed: Duration,
    (labels, source): (&Labels, &str),
) -> Result<(), AuditError> {
    use sha2::Digest;
    log.record_event(
        Some(session),
        ToolResult::Call(CallResult {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            is_error: output.is_error,
            status: output.status.clone(),
            duration_ms: millis(elapsed),
            bytes: redacted.text.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(redacted.text.as_bytes())),
            truncated: output.truncated,
            redacted: redacted.hits.clone(),
            labels: json(labels),
            source: Some(source.to_string()),
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
        session,
        ToolResult::MemoryLoad(MemoryLoad {
            tool: "memory_load".into(),
            entries: entries as u64,
            labels: json(labels),
            problems: problems.to_vec(),
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
    let isolation = match isolation {
        sandbox::Isolation::None => {
            "NONE: the command ran on the host without a sandbox (sandbox.backend = \"none\")"
        }
        sandbox::Isolation::Isolated => "sandboxed",
    };
    append_or_warn(
        log,
        session,
        SandboxExec::Tool(ToolExec {
            call_id: call.id.clone(),
            backend: backend.to_string(),
            isolation: isolation.to_string(),
            status: crate::tools::exec::status_json(out.status),
            duration_ms: millis(out.duration),
            stdout_bytes: out.stdout.len() as u64 + out.stdout_dropped,
            stderr_bytes: out.stderr.len() as u64 + out.stderr_dropped,
        }),
    );
}

/// `egress`: a request of the runtime's own (`http_fetch`) completed.
pub(crate) fn egress(log: &Log, session: &str, call: &ToolCall, url: &str, status: Option<Value>) {
    append_or_warn(
        log,
        session,
        Egress::Fetch(FetchEgress {
            call_id: call.id.clone(),
            url: url.to_string(),
            status,
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
        session,
        ModelOutput::Quarantine(QuarantineReading {
            call_id: call.id.clone(),
            quarantine: true,
            url: url.to_string(),
            instruction: instruction.to_string(),
            answer: outcome.as_ref().ok().cloned(),
            error: outcome.as_ref().err().cloned(),
        }),
    );
}

/// `approval` `requested`: the request as stored (nobody may approve what the log does
/// not show was asked).
pub(crate) fn approval_requested(log: &Log, r: &store::ApprovalRecord) -> Result<(), AuditError> {
    log.record_event(
        Some(&r.session),
        Approval::State(ApprovalState::Requested(ApprovalRequested {
            approval_id: r.id.clone(),
            kind: r.kind.as_str().to_string(),
            tool: r.tool.clone(),
            action: r.action.clone(),
            fingerprint: r.fingerprint.clone(),
            rule: r.rule.clone(),
            reason: r.reason.clone(),
            labels: r.labels.clone(),
            untrusted_sources: r.untrusted_sources.clone(),
            expires_at: r.expires_at.clone(),
        })),
    )
}

/// `approval` `answered`; `memory` names the file and the entry an approved memory
/// change wrote.
pub(crate) fn approval_answered(
    log: &Log,
    r: &store::ApprovalRecord,
    memory: Option<(&str, Option<&str>)>,
) -> Result<(), AuditError> {
    log.record_event(
        Some(&r.session),
        Approval::State(ApprovalState::Answered(ApprovalAnswered {
            approval_id: r.id.clone(),
            action: r.action.clone(),
            status: r.status.as_str().to_string(),
            answer: r.answer.map(|a| a.as_str().to_string()),
            grant_id: r.grant_id.clone(),
            by: r.answered_by.clone(),
            kind: memory.map(|_| r.kind.as_str().to_string()),
            file: memory.map(|(file, _)| file.to_string()),
            entry: memory.and_then(|(_, entry)| entry.map(str::to_string)),
        })),
    )
}

/// `approval` `granted` or `revoked`; `by` is who revoked it, when known.
pub(crate) fn grant_changed(
    log: &Log,
    g: &store::GrantRecord,
    revoked_by: Option<&str>,
) -> Result<(), AuditError> {
    let change = GrantChange {
        grant_id: g.id.clone(),
        approval_id: g.source.clone(),
        agent: g.agent.clone(),
        session: g.session.clone(),
        tool: g.tool.clone(),
        scope: json(&g.scope),
        fingerprint: g.fingerprint.clone(),
        action: g.action.clone(),
        expires_at: g.expires_at.clone(),
        by: revoked_by.unwrap_or(&g.granted_by).to_string(),
        revoked_at: g.revoked_at.clone(),
    };
    let state = if g.revoked_at.is_some() {
        ApprovalState::Revoked(change)
    } else {
        ApprovalState::Granted(change)
    };
    log.record_event(g.session.as_deref(), Approval::State(state))
}

/// `approval` `expired`: by a command or the gateway (`by: timeout`), or by the waiting
/// runtime (with the action and the answer it settled on).
pub(crate) fn approval_expired(
    log: &Log,
    session: Option<&str>,
    expired: ApprovalExpired,
) -> Result<(), AuditError> {
    log.record_event(session, Approval::State(ApprovalState::Expired(expired)))
}
