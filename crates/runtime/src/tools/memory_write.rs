//! `memory_write`: the guard decides `memory_write: FILE`. `Allow` (a trusted session)
//! appends the entry at once with the session's label; `Ask` (a session that read
//! untrusted content) does not block: the tool is [`OnAsk::Review`], so the entry
//! becomes a `memory_write` request in the approvals queue ([`StoredApprovals::submit`]),
//! carrying the change as its payload, that a human approves (`cordon approvals approve
//! ID`: it is appended then) or denies, and the tool answers "pending human review" at
//! once; `Deny` writes nothing. Grants never cover a memory write: each one is reviewed.

use async_trait::async_trait;
use guard::{Action, Verdict};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Executed, OnAsk, Tool, ToolOutput};
use crate::approval::{ApprovalKind, ApprovalRequest, StoredApprovals};
use crate::authorise::{Authorization, Authorized};
use crate::memory::{MemoryFile, MemoryStore, PendingChange};
use crate::pipeline::{Cx, Failure, Stage};

/// Characters of the text shown in the approval's arguments.
const PREVIEW_CHARS: usize = 120;

pub(crate) struct MemoryWrite;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryWriteArgs {
    /// MEMORY.md or NAME.md (letters, digits, -, _)
    pub file: Option<String>,
    /// The entry (markdown)
    pub content: String,
}

#[async_trait]
impl Tool for MemoryWrite {
    type Args = MemoryWriteArgs;
    type Plan = (MemoryWriteArgs, MemoryFile);

    fn name(&self) -> &str {
        "memory_write"
    }

    fn description(&self) -> &str {
        "Add an entry to your long-term memory, which later sessions read. `file` is `MEMORY.md` (default) or `NAME.md` for a topic file. Each entry records which session wrote it and that session's trust label; from a session that has read untrusted content the entry waits for a human to accept it."
    }

    fn on_ask(&self) -> OnAsk {
        OnAsk::Review
    }

    fn canonicalise(&self, _cx: &Cx<'_>, args: MemoryWriteArgs) -> Result<Self::Plan, Failure> {
        let file = match &args.file {
            Some(f) => MemoryFile::parse(f),
            None => Ok(MemoryFile::main()),
        }
        .map_err(|e| {
            Failure::new(
                Stage::Arguments,
                format!("invalid arguments for memory_write: {e}"),
            )
        })?;
        Ok((args, file))
    }

    fn action(&self, _cx: &Cx<'_>, (_, file): &Self::Plan) -> Action {
        Action::MemoryWrite {
            file: file.to_string(),
        }
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        (args, file): &Self::Plan,
        auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let Some(store) = cx.rt.memory() else {
            return Err(Failure::new(
                Stage::Memory,
                "memory_write is unavailable: no memory store is attached to this runtime",
            ));
        };
        let w = Write {
            agent: cx.rt.agent(),
            session: cx.session,
            file,
            text: &args.content,
        };
        let written =
            write(store, &cx.rt.approvals, auth, &w).map_err(|m| Failure::new(Stage::Memory, m))?;
        crate::record::memory_write(
            cx.rt.audit_log(),
            cx.session,
            cx.call,
            file.as_str(),
            written.outcome,
            &written.id,
            &auth.verdict.labels,
        );
        Ok(Executed::new(cx, written.output))
    }
}

/// What happened, for the model and the audit log.
struct Written {
    output: ToolOutput,
    /// `appended` or `pending`.
    outcome: &'static str,
    /// The entry's id, or the approval request's.
    id: String,
}

/// One write by `session` of `agent`.
struct Write<'a> {
    agent: &'a str,
    session: &'a str,
    file: &'a MemoryFile,
    text: &'a str,
}

/// Carry out the authorised write: append it, or file it for review.
fn write(
    store: &MemoryStore,
    approvals: &StoredApprovals,
    auth: &Authorization,
    w: &Write<'_>,
) -> Result<Written, String> {
    let verdict = &auth.verdict;
    match auth.by {
        Authorized::Policy | Authorized::Human => {
            let id = store
                .append(w.file, w.text, w.session, &verdict.labels)
                .map_err(|e| e.to_string())?;
            Ok(Written {
                output: ToolOutput::ok(format!("memory entry {id} added to {}", w.file)),
                outcome: "appended",
                id,
            })
        }
        Authorized::Review => submit(approvals, verdict, w),
    }
}

/// File the write as a request in the approvals queue.
fn submit(
    approvals: &StoredApprovals,
    verdict: &Verdict,
    w: &Write<'_>,
) -> Result<Written, String> {
    let reason = verdict.decision.reason();
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
        reason: reason.to_string(),
        rule: verdict.rule.clone(),
        labels: serde_json::to_value(&verdict.labels).unwrap_or(Value::Null),
        untrusted_sources: verdict.labels.untrusted_sources.clone(),
        payload: Some(
            serde_json::to_value(&change)
                .map_err(|e| format!("memory_write not stored: cannot encode the change: {e}"))?,
        ),
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
