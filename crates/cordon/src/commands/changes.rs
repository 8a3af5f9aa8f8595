//! `cordon changes [SESSION]` and `cordon undo SESSION [--call ID]`: the journaled
//! workspace changes of each agent (`STATE/checkpoints/AGENT`), shown and undone.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use audit::event::{CheckpointEvent, CheckpointUndone};
use checkpoint::{Checkpoints, SessionId, State, Tree};

use crate::setup::{State as Opened, open_state};

/// One agent's journal and its workspace.
struct AgentJournal {
    agent: String,
    workspace: PathBuf,
    checkpoints: Checkpoints,
}

/// The journals of the configured agents that have one.
fn journals(state: &Opened) -> Result<Vec<AgentJournal>> {
    let mut out = Vec::new();
    let max = state.config.checkpoints.max_mb.saturating_mul(1 << 20);
    for (agent, cfg) in &state.config.agents {
        let dir = state.state_dir.join("checkpoints").join(agent);
        if !dir.is_dir() {
            continue;
        }
        let checkpoints = Checkpoints::open(&dir, max)
            .with_context(|| format!("the checkpoint journal of agent `{agent}`"))?;
        out.push(AgentJournal {
            agent: agent.clone(),
            workspace: cfg.workspace.clone(),
            checkpoints,
        });
    }
    Ok(out)
}

/// The journal holding `session`, or an error naming what exists.
fn find(state: &Opened, session: &str) -> Result<(AgentJournal, SessionId)> {
    let id = SessionId::new(session).map_err(|e| anyhow::anyhow!("session `{session}`: {e}"))?;
    for j in journals(state)? {
        if j.checkpoints.sessions()?.contains(&id) {
            return Ok((j, id));
        }
    }
    bail!(
        "session `{session}` changed nothing in any agent's workspace (or its changes were not \
         journaled); `cordon changes` lists the sessions that did"
    )
}

fn kind(before: &State, after: &State) -> &'static str {
    match (before, after) {
        (State::Absent, _) => "added",
        (_, State::Absent) => "deleted",
        _ => "changed",
    }
}

pub fn changes(session: Option<&str>) -> Result<ExitCode> {
    let state = open_state()?;
    let Some(session) = session else {
        let mut any = false;
        for j in journals(&state)? {
            for id in j.checkpoints.sessions()? {
                let net = j.checkpoints.changes(&id)?;
                let changed = net.iter().filter(|c| c.before != c.after).count();
                if changed == 0 {
                    continue;
                }
                any = true;
                println!(
                    "{}  agent {}  {changed} path{} changed",
                    id.as_str(),
                    j.agent,
                    if changed == 1 { "" } else { "s" }
                );
            }
        }
        if !any {
            println!("no journaled changes");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (j, id) = find(&state, session)?;
    println!(
        "session {} · agent {} · workspace {}",
        id.as_str(),
        j.agent,
        j.workspace.display()
    );
    for change in j.checkpoints.changes(&id)? {
        if change.before == change.after {
            continue;
        }
        println!(
            "\n{} {} (calls {})",
            kind(&change.before, &change.after),
            change.path.as_str(),
            change.calls.join(", ")
        );
        println!("{}", j.checkpoints.render(&change)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn undo(session: &str, call: Option<&str>) -> Result<ExitCode> {
    let state = open_state()?;
    let (j, id) = find(&state, session)?;
    let tree = Tree::open(&j.workspace)?;
    let undo_call = format!("undo-{}", ulid::Ulid::new());
    let report = j.checkpoints.undo(&id, call, &tree, &undo_call)?;
    for p in &report.restored {
        println!("restored {}", p.as_str());
    }
    for p in &report.already {
        println!("unchanged {} (already as before)", p.as_str());
    }
    let mut conflicts = Vec::new();
    for c in &report.conflicts {
        let line = format!(
            "{}: changed since (expected {}, found {})",
            c.path.as_str(),
            c.expected.describe(),
            c.found
        );
        println!("left alone {line}");
        conflicts.push(line);
    }
    for (p, why) in &report.failed {
        let line = format!("{}: {why}", p.as_str());
        println!("failed {line}");
        conflicts.push(line);
    }
    state.audit.record_event(
        None,
        CheckpointEvent::Undone(CheckpointUndone {
            undone_session: id.as_str().to_string(),
            call_id: call.map(str::to_string),
            restored: report
                .restored
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            conflicts,
            by: "cli".into(),
        }),
    )?;
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
