//! `cordon memory show|pending|accept|reject`: an agent's long-term memory and the
//! memory changes waiting for a human (writes from sessions that read untrusted
//! content). Accepting appends the entry with the writer's label (untrusted), so every
//! session that later reads it is tainted by it; rejecting discards it. Both answers are
//! recorded in the audit log.

use std::process::ExitCode;

use anyhow::Result;
use audit::EventKind;
use runtime::memory::MemoryStore;
use serde_json::json;

use crate::cli::MemoryCommand;
use crate::setup::{State, agent_config, open_state};

pub fn memory(command: MemoryCommand) -> Result<ExitCode> {
    let state = open_state()?;
    match command {
        MemoryCommand::Show { agent } => show(&store(&state, &agent)?),
        MemoryCommand::Pending { agent } => pending(&store(&state, &agent)?),
        MemoryCommand::Accept { agent, id } => answer(&state, &store(&state, &agent)?, &id, true),
        MemoryCommand::Reject { agent, id } => answer(&state, &store(&state, &agent)?, &id, false),
    }
}

fn store(state: &State, agent: &str) -> Result<MemoryStore> {
    agent_config(&state.config, agent)?;
    Ok(MemoryStore::for_agent(&state.state_dir, agent))
}

fn show(store: &MemoryStore) -> Result<ExitCode> {
    let memory = store.load()?;
    if memory.entries.is_empty() {
        println!("(memory is empty: {})", store.dir().display());
    }
    for e in &memory.entries {
        println!(
            "{}#{}  session {}  {} {}  {}\n{}\n",
            e.file,
            e.id,
            e.session,
            e.labels.integrity.as_str(),
            e.labels.confidentiality.as_str(),
            e.at,
            e.text
        );
    }
    for p in &memory.problems {
        eprintln!("warning: {p}");
    }
    Ok(ExitCode::SUCCESS)
}

fn pending(store: &MemoryStore) -> Result<ExitCode> {
    let changes = store.pending()?;
    if changes.is_empty() {
        println!("no pending memory changes");
    }
    for c in changes {
        println!(
            "{}  {}  from session {} ({}; read: {})  {}\n{}\n",
            c.id,
            c.file,
            c.session,
            c.labels.integrity.as_str(),
            if c.labels.untrusted_sources.is_empty() {
                "-".to_string()
            } else {
                c.labels.untrusted_sources.join(", ")
            },
            c.at,
            c.text
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn answer(state: &State, store: &MemoryStore, id: &str, accept: bool) -> Result<ExitCode> {
    let (change, entry) = if accept {
        let (c, e) = store.accept(id)?;
        (c, Some(e))
    } else {
        (store.reject(id)?, None)
    };
    state.audit.record(
        EventKind::Approval,
        Some(&change.session),
        json!({
            "kind": "memory_write",
            "id": change.id,
            "file": change.file.as_str(),
            "answer": if accept { "accept" } else { "reject" },
            "entry": entry,
            "labels": change.labels,
            "by": "cli",
        }),
    )?;
    match entry {
        Some(e) => println!(
            "accepted: entry {e} added to {} with label {}",
            change.file,
            change.labels.integrity.as_str()
        ),
        None => println!("rejected: memory change {} discarded", change.id),
    }
    Ok(ExitCode::SUCCESS)
}
