//! A session's journaled workspace changes, shown and undone the same way by every
//! interface — `cordon changes` / `cordon undo`, `cordon chat`'s `/undo`, and the
//! gateway's `GET /api/sessions/{id}/changes` / `POST /api/sessions/{id}/undo`.
//!
//! Guarantees: the journal holding a session is found among the configured agents'
//! journals (`STATE/checkpoints/AGENT`); an undo restores only paths that still hold the
//! session's last state ([`checkpoint::Checkpoints::undo`]) and is always followed by one
//! `checkpoint` `undone` audit record naming who asked (`by`) and what was left alone.
//!
//! Not guaranteed: two undos of the same session at once are not ordered against each
//! other (the second finds the paths already restored and says so).

use std::path::{Path, PathBuf};

use audit::event::{CheckpointEvent, CheckpointUndone};
use checkpoint::{Checkpoints, NetChange, SessionId, State, Tree};
use config::Config;
use serde::Serialize;

/// Why changes could not be listed or undone.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("session `{session}`: {source}")]
    BadSession {
        session: String,
        source: checkpoint::Error,
    },
    #[error(
        "session `{0}` changed nothing in any agent's workspace (or its changes were not \
         journaled); `cordon changes` lists the sessions that did"
    )]
    NoChanges(String),
    #[error("the checkpoint journal of agent `{agent}`: {source}")]
    Journal {
        agent: String,
        source: checkpoint::Error,
    },
    /// A call id that is malformed or not in the session's journal.
    #[error(transparent)]
    BadCall(checkpoint::Error),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// One agent's journal and its workspace.
pub struct AgentJournal {
    pub agent: String,
    pub workspace: PathBuf,
    pub checkpoints: Checkpoints,
}

/// The journals of the configured agents that have one.
pub fn journals(config: &Config, state_dir: &Path) -> Result<Vec<AgentJournal>, ChangesError> {
    let mut out = Vec::new();
    let max = config.checkpoints.max_mb.saturating_mul(1 << 20);
    for (agent, cfg) in &config.agents {
        let dir = state_dir.join("checkpoints").join(agent);
        if !dir.is_dir() {
            continue;
        }
        let checkpoints = Checkpoints::open(&dir, max).map_err(|source| ChangesError::Journal {
            agent: agent.clone(),
            source,
        })?;
        out.push(AgentJournal {
            agent: agent.clone(),
            workspace: cfg.workspace.clone(),
            checkpoints,
        });
    }
    Ok(out)
}

/// The journal holding `session`, or [`ChangesError::NoChanges`].
pub fn find(
    config: &Config,
    state_dir: &Path,
    session: &str,
) -> Result<(AgentJournal, SessionId), ChangesError> {
    let id = SessionId::new(session).map_err(|source| ChangesError::BadSession {
        session: session.to_string(),
        source,
    })?;
    for j in journals(config, state_dir)? {
        if j.checkpoints.sessions()?.contains(&id) {
            return Ok((j, id));
        }
    }
    Err(ChangesError::NoChanges(session.to_string()))
}

/// How a path's net change reads to a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    pub fn of(before: &State, after: &State) -> ChangeKind {
        match (before, after) {
            (State::Absent, _) => ChangeKind::Added,
            (_, State::Absent) => ChangeKind::Deleted,
            _ => ChangeKind::Changed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One path a session changed (net of all its calls), rendered.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub kind: ChangeKind,
    /// The calls that changed it, in order.
    pub calls: Vec<String>,
    /// A unified diff for text, one line for anything else.
    pub diff: String,
}

/// A session that changed something, and how many paths.
#[derive(Debug, Clone, Serialize)]
pub struct SessionChanges {
    pub session: String,
    pub agent: String,
    pub paths: usize,
}

/// Every journaled session that still has a net change, agent by agent.
pub fn sessions(config: &Config, state_dir: &Path) -> Result<Vec<SessionChanges>, ChangesError> {
    let mut out = Vec::new();
    for j in journals(config, state_dir)? {
        for id in j.checkpoints.sessions()? {
            let paths = j.checkpoints.changes(&id)?.len();
            if paths > 0 {
                out.push(SessionChanges {
                    session: id.as_str().to_string(),
                    agent: j.agent.clone(),
                    paths,
                });
            }
        }
    }
    Ok(out)
}

/// `session`'s net change of each path in `journal`, rendered.
pub fn file_changes(
    journal: &AgentJournal,
    session: &SessionId,
) -> Result<Vec<FileChange>, ChangesError> {
    let mut out = Vec::new();
    for change in journal.checkpoints.changes(session)? {
        out.push(render(&journal.checkpoints, &change)?);
    }
    Ok(out)
}

fn render(checkpoints: &Checkpoints, change: &NetChange) -> Result<FileChange, ChangesError> {
    Ok(FileChange {
        path: change.path.as_str().to_string(),
        kind: ChangeKind::of(&change.before, &change.after),
        calls: change.calls.clone(),
        diff: checkpoints.render(change)?,
    })
}

/// What an undo did, path by path, for a human or a client.
#[derive(Debug, Clone, Serialize)]
pub struct Undone {
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// Put back to what they were before.
    pub restored: Vec<String>,
    /// Already as before: nothing to do.
    pub unchanged: Vec<String>,
    /// Changed since the session, left alone: `PATH: changed since (expected …, found …)`.
    pub left_alone: Vec<String>,
    /// Could not be restored: `PATH: why`.
    pub failed: Vec<String>,
    /// Every path is back (restored or already so).
    pub complete: bool,
}

/// Undo `session`'s changes (only call `call`'s, when given) in its agent's workspace,
/// then record a `checkpoint` `undone` audit record made `by` (`cli`, `chat`,
/// `gateway token ID`).
pub fn undo(
    config: &Config,
    state_dir: &Path,
    audit: &audit::Log,
    session: &str,
    call: Option<&str>,
    by: &str,
) -> Result<Undone, ChangesError> {
    let (j, id) = find(config, state_dir, session)?;
    let tree = Tree::open(&j.workspace)?;
    let undo_call = format!("undo-{}", ulid::Ulid::new());
    let report = j
        .checkpoints
        .undo(&id, call, &tree, &undo_call)
        .map_err(|e| match e {
            checkpoint::Error::UnknownCall { .. } | checkpoint::Error::InvalidCall { .. } => {
                ChangesError::BadCall(e)
            }
            e => ChangesError::Checkpoint(e),
        })?;
    let names = |v: &[checkpoint::RelPath]| -> Vec<String> {
        v.iter().map(|p| p.as_str().to_string()).collect()
    };
    let left_alone: Vec<String> = report
        .conflicts
        .iter()
        .map(|c| {
            format!(
                "{}: changed since (expected {}, found {})",
                c.path.as_str(),
                c.expected.describe(),
                c.found
            )
        })
        .collect();
    let failed: Vec<String> = report
        .failed
        .iter()
        .map(|(p, why)| format!("{}: {why}", p.as_str()))
        .collect();
    let done = Undone {
        session: id.as_str().to_string(),
        call: call.map(str::to_string),
        restored: names(&report.restored),
        unchanged: names(&report.already),
        complete: report.complete(),
        left_alone,
        failed,
    };
    audit.record_event(
        None,
        CheckpointEvent::Undone(CheckpointUndone {
            undone_session: done.session.clone(),
            call_id: done.call.clone(),
            restored: done.restored.clone(),
            conflicts: done
                .left_alone
                .iter()
                .chain(&done.failed)
                .cloned()
                .collect(),
            by: by.to_string(),
        }),
    )?;
    Ok(done)
}

impl Undone {
    /// The report as the CLI and `cordon chat` print it, one line per path.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.restored.iter().map(|p| format!("restored {p}")));
        out.extend(
            self.unchanged
                .iter()
                .map(|p| format!("unchanged {p} (already as before)")),
        );
        out.extend(self.left_alone.iter().map(|l| format!("left alone {l}")));
        out.extend(self.failed.iter().map(|l| format!("failed {l}")));
        out
    }
}
