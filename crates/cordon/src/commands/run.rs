use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use runtime::{ApprovalAnswer, ApprovalRequest, Approver};

use crate::setup::{build_agent, open_state};
use crate::terminal::{describe_event, describe_labels, show_reasoning};

/// Nobody is at this terminal: say on stderr what waits for approval and how to answer it
/// from another terminal, then leave the wait to the stored request (it expires after
/// `approvals.timeout_secs` and is denied).
struct NoticeApprover {
    timeout_secs: u64,
    approvers_only: bool,
}

#[async_trait]
impl Approver for NoticeApprover {
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer {
        let id = req.id.as_deref().unwrap_or("?");
        if self.approvers_only {
            eprintln!(
                "approval needed [{id}]: {}\n  why: {} (rule {})\n  {} (within {}s; unanswered, it is denied)",
                req.action,
                req.reason,
                req.rule,
                crate::terminal::approvers_only_hint(id),
                self.timeout_secs,
            );
            return ApprovalAnswer::Unavailable("only approvers may answer".into());
        }
        eprintln!(
            "approval needed [{id}]: {}\n  why: {} (rule {})\n  session: {}\n  answer from another terminal within {}s: `cordon approvals approve {id}` or `cordon approvals deny {id}`; unanswered, it is denied",
            req.action,
            req.reason,
            req.rule,
            describe_labels(&req.labels),
            self.timeout_secs,
        );
        ApprovalAnswer::Unavailable("non-interactive run (`cordon run`)".into())
    }
}

/// One task, no human: print the final answer on stdout, progress (and the model's
/// reasoning) on stderr. Exits non-zero when the model refused.
pub async fn run(agent_name: &str, task: &str) -> Result<ExitCode> {
    let state = open_state()?;
    let notice = NoticeApprover {
        timeout_secs: state.config.approvals.timeout_secs,
        approvers_only: state.config.approvals.answered_by == config::AnsweredBy::Approvers,
    };
    let agent = build_agent(&state, agent_name, Arc::new(notice))?;
    let mut session = agent.new_session()?;
    eprintln!(
        "session {} · agent `{agent_name}` · {}",
        session.id,
        agent.provider_description()
    );
    let mut on_event = |event: agent::AgentEvent| {
        if let Some(line) = describe_event(&event) {
            eprintln!("{line}");
        }
    };
    let outcome = agent.run_turn(&mut session, task, &mut on_event).await;
    agent.end_session(&session);
    let outcome = outcome?;
    if let Some(reasoning) = &outcome.reasoning {
        show_reasoning(reasoning);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", outcome.answer)?;
    out.flush()?;
    // The answer says the model refused; the status says the task was not done.
    if matches!(outcome.ending, agent::provider::Ending::Refused { .. }) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
