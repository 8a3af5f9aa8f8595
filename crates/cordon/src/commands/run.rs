use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use runtime::{ApprovalAnswer, ApprovalRequest, Approver};

use crate::setup::{build_agent_with, check_model, model_provider, open_state};
use crate::terminal::{Status, TurnView, describe_labels, retry_reporter, show_reasoning};

/// Nobody is at this terminal: say on stderr what waits for approval and how to answer it
/// from another terminal, then leave the wait to the stored request (it expires after
/// `approvals.timeout_secs` and is denied).
struct NoticeApprover {
    timeout_secs: u64,
    approvers_only: bool,
    status: Status,
}

#[async_trait]
impl Approver for NoticeApprover {
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer {
        self.status.clear();
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
/// reasoning) on stderr. Exits non-zero when the model refused or its provider filtered the
/// answer, and at once, before any session, when the model server does not answer.
///
/// On a terminal the answer is printed as it arrives, with a status line while the model
/// or a command works; piped, stdout is the final answer alone.
pub async fn run(agent_name: &str, task: &str) -> Result<ExitCode> {
    let state = open_state()?;
    let status = Status::for_terminal();
    let notice = NoticeApprover {
        timeout_secs: state.config.approvals.timeout_secs,
        approvers_only: state.config.approvals.answered_by == config::AnsweredBy::Approvers,
        status: status.clone(),
    };
    let provider = model_provider(&state.config, Some(retry_reporter(&status)))?;
    let agent = build_agent_with(&state, agent_name, Arc::new(notice), provider.clone())?;
    check_model(&state, provider.as_ref()).await?;
    let mut session = agent.new_session()?;
    eprintln!(
        "session {} · agent `{agent_name}` · {}",
        session.id,
        agent.provider_description()
    );
    let mut view = TurnView::new(status.clone(), status.on_terminal());
    view.start();
    let mut on_event = |event: agent::AgentEvent| view.on_event(&event);
    let outcome = agent.run_turn(&mut session, task, &mut on_event).await;
    let shown = view.finish();
    agent.end_session(&session);
    let outcome = outcome?;
    let mut out = std::io::stdout().lock();
    if shown.text {
        // The text was shown as it came; what the loop added follows it.
        writeln!(out)?;
        for note in &outcome.notes {
            writeln!(out, "{note}")?;
        }
    } else {
        if let Some(reasoning) = outcome.reasoning.as_ref().filter(|_| !shown.reasoning) {
            show_reasoning(reasoning);
        }
        writeln!(out, "{}", outcome.answer)?;
    }
    out.flush()?;
    // The answer says the model refused or its provider filtered it; the status says the
    // task was not done.
    if outcome.ending.withheld() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
