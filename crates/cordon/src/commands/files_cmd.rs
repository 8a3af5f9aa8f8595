//! `cordon files labels|trust`: the provenance labels of an agent's workspace files
//! (see `runtime::provenance`). `labels` lists each labelled file with its label, the
//! session that wrote it and whether its content changed since; `trust PATH` clears one
//! file's label after a human reviewed it, recorded as a `file_trusted` audit record
//! before the label is removed.

use std::path::{Component, Path};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use runtime::provenance::{file_sha256, workspace_key};
use store::FileLabelRecord;

use crate::cli::FilesCommand;
use crate::setup::{State, agent_config, open_state};

pub fn files(command: FilesCommand) -> Result<ExitCode> {
    let state = open_state()?;
    match command {
        FilesCommand::Labels { agent, json } => labels(&state, &agent, json),
        FilesCommand::Trust { agent, path } => trust(&state, &agent, &path),
    }
}

/// The agent's workspace root and the key its labels are stored under.
fn workspace(state: &State, agent: &str) -> Result<(std::path::PathBuf, String)> {
    let root = agent_config(&state.config, agent)?.workspace.clone();
    let key = workspace_key(&root);
    Ok((root, key))
}

/// Whether the file's content is no longer what the labelled session left.
fn state_of(root: &Path, r: &FileLabelRecord) -> &'static str {
    let now = file_sha256(&root.join(&r.path));
    match (&r.sha256, now) {
        (None, None) => "deleted",
        (None, Some(_)) => "recreated since",
        (Some(_), None) => "gone since",
        (Some(a), Some(b)) if *a == b => "unchanged",
        (Some(_), Some(_)) => "changed since",
    }
}

fn labels(state: &State, agent: &str, json: bool) -> Result<ExitCode> {
    let (root, key) = workspace(state, agent)?;
    let rows = state.store.file_labels(Some(&key))?;
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "path": r.path,
                    "labels": r.labels,
                    "session": r.session,
                    "written_at": r.written_at,
                    "sha256": r.sha256,
                    "state": state_of(&root, r),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("(no labelled files in {key})");
    }
    for r in &rows {
        println!(
            "{}  {}  written by session {} at {}  ({})",
            r.path,
            r.labels,
            r.session,
            r.written_at,
            state_of(&root, r)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `path` relative to the workspace root: given relative to it, or absolute beneath it.
fn relative(root: &Path, key: &str, path: &str) -> Result<String> {
    let p = Path::new(path);
    let rel = if p.is_absolute() {
        p.strip_prefix(key)
            .or_else(|_| p.strip_prefix(root))
            .with_context(|| format!("{path} is not inside the workspace {key}"))?
    } else {
        p
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .with_context(|| format!("{path}: not UTF-8"))?
                    .to_string(),
            ),
            Component::CurDir => {}
            _ => bail!("{path}: give a path inside the workspace without `..`"),
        }
    }
    if parts.is_empty() {
        bail!("{path}: give a file, not the workspace itself");
    }
    Ok(parts.join("/"))
}

fn trust(state: &State, agent: &str, path: &str) -> Result<ExitCode> {
    let (root, key) = workspace(state, agent)?;
    let rel = relative(&root, &key, path)?;
    let Some(r) = state.store.file_label(&key, &rel)? else {
        bail!(
            "`{rel}` has no provenance label in {key}; list labelled files with `cordon files \
             labels --agent {agent}`"
        );
    };
    // Recorded before the label goes: a trust that is not in the log does not happen.
    state.audit.record_event(
        None,
        audit::event::FileTrusted {
            workspace: key.clone(),
            path: rel.clone(),
            labels: serde_json::to_value(&r.labels)?,
            written_by: r.session.clone(),
            recorded_sha256: r.sha256.clone(),
            sha256: file_sha256(&root.join(&rel)),
            by: "cli".into(),
        },
    )?;
    state.store.clear_file_label(&key, &rel)?;
    eprintln!(
        "trusted {rel}: its label ({}) was cleared; sessions that read or run it are no longer \
         tainted by it",
        r.labels
    );
    Ok(ExitCode::SUCCESS)
}
