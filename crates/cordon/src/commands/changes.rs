//! `cordon changes [SESSION]` and `cordon undo SESSION [--call ID]`: the journaled
//! workspace changes of each agent (`STATE/checkpoints/AGENT`), shown and undone through
//! [`runtime::changes`], the same functions the gateway and `cordon chat` use.

use std::process::ExitCode;

use anyhow::Result;
use runtime::changes;

use crate::setup::open_state;

pub fn changes(session: Option<&str>) -> Result<ExitCode> {
    let state = open_state()?;
    let Some(session) = session else {
        let all = changes::sessions(&state.config, &state.state_dir)?;
        for s in &all {
            println!(
                "{}  agent {}  {} path{} changed",
                s.session,
                s.agent,
                s.paths,
                if s.paths == 1 { "" } else { "s" }
            );
        }
        if all.is_empty() {
            println!("no journaled changes");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (j, id) = changes::find(&state.config, &state.state_dir, session)?;
    println!(
        "session {} · agent {} · workspace {}",
        id.as_str(),
        j.agent,
        j.workspace.display()
    );
    for change in changes::file_changes(&j, &id)? {
        println!(
            "\n{} {} (calls {})",
            change.kind.as_str(),
            change.path,
            change.calls.join(", ")
        );
        println!("{}", change.diff);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn undo(session: &str, call: Option<&str>) -> Result<ExitCode> {
    let state = open_state()?;
    let done = changes::undo(
        &state.config,
        &state.state_dir,
        &state.audit,
        session,
        call,
        "cli",
    )?;
    for line in done.lines() {
        println!("{line}");
    }
    Ok(if done.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
