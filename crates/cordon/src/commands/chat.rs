use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use runtime::Confidentiality;
use runtime::changes::{self, ChangesError};

use crate::setup::{State, build_agent_with, check_model, model_provider, open_state};
use crate::terminal::{Lines, Status, TerminalApprover, TurnView, retry_reporter, show_reasoning};

/// The interactive terminal conversation. Before the first prompt, one request checks
/// that the model server answers; if not, it ends at once with what to fix.
pub async fn chat(agent_name: &str, new: bool) -> Result<ExitCode> {
    let state = open_state()?;
    let lines = Lines::stdin();
    let status = Status::for_terminal();
    let provider = model_provider(&state.config, Some(retry_reporter(&status)))?;
    let agent = build_agent_with(
        &state,
        agent_name,
        Arc::new(TerminalApprover {
            lines: lines.clone(),
            status: status.clone(),
            approvers_only: state.config.approvals.answered_by == config::AnsweredBy::Approvers,
        }),
        provider.clone(),
    )?;
    check_model(&state, provider.as_ref()).await?;
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
        "agent `{agent_name}` · {} · /undo puts back this session's changes · /exit to leave",
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
        if let Some(call) = text.strip_prefix("/undo")
            && (call.is_empty() || call.starts_with(' '))
        {
            undo(
                &state,
                &session.id,
                Some(call.trim()).filter(|c| !c.is_empty()),
            );
            continue;
        }
        let before = journaled(&state, &session.id);
        let mut view = TurnView::new(status.clone(), true);
        view.start();
        let mut on_event = |event: agent::AgentEvent| view.on_event(&event);
        let result = agent.run_turn(&mut session, text, &mut on_event).await;
        let shown = view.finish();
        match result {
            Ok(outcome) => {
                if shown.text {
                    // The text was shown as it came; what the loop added follows it.
                    println!();
                    for note in &outcome.notes {
                        println!("{note}");
                    }
                } else {
                    if let Some(reasoning) = outcome.reasoning.as_ref().filter(|_| !shown.reasoning)
                    {
                        show_reasoning(reasoning);
                    }
                    println!("{}", outcome.answer);
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
        summarise_turn(&state, &session.id, &before);
    }
    agent.end_session(&session);
    Ok(ExitCode::SUCCESS)
}

/// Each path `session` has changed so far, with the calls that changed it (empty when
/// nothing was journaled).
fn journaled(state: &State, session: &str) -> BTreeMap<String, Vec<String>> {
    let Ok((journal, id)) = changes::find(&state.config, &state.state_dir, session) else {
        return BTreeMap::new();
    };
    changes::file_changes(&journal, &id)
        .map(|files| files.into_iter().map(|f| (f.path, f.calls)).collect())
        .unwrap_or_default()
}

/// After a turn: the paths it changed (those whose calls changed since `before`), how,
/// and how to undo them.
fn summarise_turn(state: &State, session: &str, before: &BTreeMap<String, Vec<String>>) {
    let files = match changes::find(&state.config, &state.state_dir, session)
        .and_then(|(journal, id)| changes::file_changes(&journal, &id))
    {
        Ok(files) => files,
        Err(ChangesError::NoChanges(_)) => return,
        Err(e) => {
            eprintln!("error: listing this turn's changes: {e}");
            return;
        }
    };
    let turn: Vec<_> = files
        .iter()
        .filter(|f| before.get(&f.path) != Some(&f.calls))
        .collect();
    if turn.is_empty() {
        return;
    }
    eprintln!("changed this turn (/undo puts back the session's changes, /undo CALL one call's):");
    for f in turn {
        eprintln!(
            "  {} {} (call {})",
            f.kind.as_str(),
            f.path,
            f.calls.join(", ")
        );
    }
}

/// `/undo [CALL]`: the same undo as `cordon undo`, recorded as made by `chat`.
fn undo(state: &State, session: &str, call: Option<&str>) {
    match changes::undo(
        &state.config,
        &state.state_dir,
        &state.audit,
        session,
        call,
        "chat",
    ) {
        Ok(done) => {
            for line in done.lines() {
                println!("{line}");
            }
            if done.lines().is_empty() {
                println!("nothing to undo");
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
}
