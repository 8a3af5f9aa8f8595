use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use runtime::NoHumanApprover;

use crate::setup::{build_agent, open_state};
use crate::terminal::describe_event;

/// One task, no human: print the final answer on stdout, progress on stderr.
pub async fn run(agent_name: &str, task: &str) -> Result<ExitCode> {
    let state = open_state()?;
    let agent = build_agent(&state, agent_name, Arc::new(NoHumanApprover))?;
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
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", outcome.answer)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
