//! `cordon memory show|pending|accept|reject`: an agent's long-term memory, and aliases
//! for the memory changes in the approvals queue (writes from sessions that read
//! untrusted content, kind `memory_write`): `pending` lists them, `accept` / `reject` are
//! `cordon approvals approve` / `deny` restricted to memory changes. Accepting appends
//! the entry with the writer's label (untrusted), so every session that later reads it
//! is tainted by it; rejecting discards it. Both answers are audited by the approvals
//! path.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use runtime::memory::MemoryStore;
use store::ApprovalKind;

use crate::cli::MemoryCommand;
use crate::commands::approvals_cmd::{answer_memory, expire_overdue, list_where};
use crate::setup::{State, agent_config, open_state};

pub fn memory(command: MemoryCommand) -> Result<ExitCode> {
    let state = open_state()?;
    match command {
        MemoryCommand::Show { agent } => show(&store(&state, &agent)?),
        MemoryCommand::Pending { agent, json } => {
            agent_config(&state.config, &agent)?;
            expire_overdue(&state)?;
            list_where(
                &state,
                false,
                json,
                Some(ApprovalKind::MemoryWrite),
                Some(&agent),
            )
        }
        MemoryCommand::Accept { agent, id } => answer(&state, agent.as_deref(), &id, true),
        MemoryCommand::Reject { agent, id } => answer(&state, agent.as_deref(), &id, false),
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

fn answer(state: &State, agent: Option<&str>, id: &str, accept: bool) -> Result<ExitCode> {
    expire_overdue(state)?;
    let record = state.store.get_approval(id)?.with_context(|| {
        format!("no memory change `{id}`; list pending ones with `cordon memory pending`")
    })?;
    if let Some(agent) = agent
        && agent != record.agent
    {
        bail!(
            "memory change `{id}` belongs to agent `{}`, not `{agent}`; drop --agent or \
             name the right one",
            record.agent
        );
    }
    crate::commands::approvals_cmd::refuse_unless_local_answers(state, id)?;
    answer_memory(state, id, accept)
}
