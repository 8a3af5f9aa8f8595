use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use runtime::Confidentiality;

use crate::setup::{build_agent, open_state};
use crate::terminal::{Lines, TerminalApprover, describe_event};

/// The interactive terminal conversation.
pub async fn chat(agent_name: &str, new: bool) -> Result<ExitCode> {
    let state = open_state()?;
    let lines = Lines::stdin();
    let agent = build_agent(
        &state,
        agent_name,
        Arc::new(TerminalApprover {
            lines: lines.clone(),
            approvers_only: state.config.approvals.answered_by == config::AnsweredBy::Approvers,
        }),
    )?;
    let mut session = match (new, agent.latest_session()?) {
        (false, Some(s)) => {
            eprintln!(
                "resuming session {} ({} items); /new starts a fresh one",
                s.id,
                s.items.len()
            );
            s
        }
        _ => {
            let s = agent.new_session()?;
            eprintln!("new session {}", s.id);
            s
        }
    };
    eprintln!(
        "agent `{agent_name}` · {} · /exit to leave",
        agent.provider_description()
    );
    loop {
        let labels = agent.labels(&session);
        let label = match labels.confidentiality {
            Confidentiality::Public => labels.integrity.as_str().to_string(),
            c => format!("{} {}", labels.integrity.as_str(), c.as_str()),
        };
        let Some(line) = lines.next(&format!("[{label}] you> ")).await else {
            break;
        };
        let text = line.trim();
        match text {
            "" => continue,
            "/exit" | "/quit" => break,
            "/new" => {
                agent.end_session(&session);
                session = agent.new_session()?;
                eprintln!("new session {}", session.id);
                continue;
            }
            _ => {}
        }
        let mut streamed = false;
        let mut on_event = |event: agent::AgentEvent| {
            if let agent::AgentEvent::TextDelta(d) = &event {
                streamed = true;
                print!("{d}");
                let _ = std::io::stdout().flush();
            } else if let Some(line) = describe_event(&event) {
                if streamed {
                    println!();
                    streamed = false;
                }
                eprintln!("{line}");
            }
        };
        match agent.run_turn(&mut session, text, &mut on_event).await {
            Ok(outcome) => {
                if streamed {
                    println!();
                } else {
                    println!("{}", outcome.answer);
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    agent.end_session(&session);
    Ok(ExitCode::SUCCESS)
}
