//! Undo: put each path a session (or one of its calls) changed back to its first before
//! state — only where the path still holds that session's last after state.
//!
//! A path that changed since (another session, a later call, a human) is reported and
//! left alone, never clobbered. A path already in its before state is left alone too, so
//! undo is idempotent; and an undo is journaled in the same session as a call of its own
//! (`undo_call`), so `changes` shows the session's net effect after it and a later undo
//! of the whole session finds those paths already restored.
//!
//! Not guaranteed: a directory that now holds entries this session did not create is not
//! removed (reported as failed); a path whose parent directory was removed since cannot
//! be restored (reported as failed).

use crate::overlay::{DirModes, apply};
use crate::review::fold;
use crate::store::now;
use crate::tree::{Durable, Tree};
use crate::{Checkpoints, Entry, Error, RelPath, SessionId, State, path::check_call};

/// A path that changed since the session: what undo expected and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: RelPath,
    pub expected: State,
    pub found: String,
}

/// What an undo did, path by path.
#[derive(Debug, Default)]
pub struct UndoReport {
    /// Put back to their before state.
    pub restored: Vec<RelPath>,
    /// Already in their before state: nothing to do.
    pub already: Vec<RelPath>,
    /// Changed since the session: left alone.
    pub conflicts: Vec<Conflict>,
    /// Could not be restored, and why.
    pub failed: Vec<(RelPath, String)>,
}

impl UndoReport {
    /// Every path is back (restored or already so).
    pub fn complete(&self) -> bool {
        self.conflicts.is_empty() && self.failed.is_empty()
    }
}

impl Checkpoints {
    /// Undo `session`'s changes to `workspace` (only call `call`'s, when given), journaled
    /// as call `undo_call` of the same session. See the module doc.
    pub fn undo(
        &self,
        session: &SessionId,
        call: Option<&str>,
        workspace: &Tree,
        undo_call: &str,
    ) -> Result<UndoReport, Error> {
        check_call(undo_call)?;
        let journal = self.journal(session)?;
        if let Some(c) = call
            && !journal.iter().any(|e| e.call == c)
        {
            return Err(Error::UnknownCall {
                session: session.to_string(),
                call: c.to_owned(),
            });
        }
        let net = fold(journal.iter().filter(|e| call.is_none_or(|c| e.call == c)));
        let mut report = UndoReport::default();
        let mut todo = Vec::new();
        for n in net {
            let found = match workspace.observe(&n.path) {
                Ok(o) => o.state,
                Err(e) => {
                    report.conflicts.push(Conflict {
                        path: n.path,
                        expected: n.after,
                        found: e.to_string(),
                    });
                    continue;
                }
            };
            if found == n.before {
                report.already.push(n.path);
            } else if found == n.after {
                todo.push(n);
            } else {
                report.conflicts.push(Conflict {
                    path: n.path,
                    expected: n.after,
                    found: found.describe(),
                });
            }
        }
        // Deepest first: take away what the session made, so directories empty out.
        todo.sort_by(|a, b| {
            b.path
                .depth()
                .cmp(&a.path.depth())
                .then(a.path.cmp(&b.path))
        });
        let mut removed = Vec::new();
        let mut failed_under: Vec<RelPath> = Vec::new();
        for n in &todo {
            let remove = n.after != State::Absent
                && !(n.after.is_dir() && n.before.is_dir())
                && !(matches!(n.after, State::File { .. })
                    && matches!(n.before, State::File { .. }));
            if !remove {
                continue;
            }
            match workspace.remove(&n.path, n.after.is_dir()) {
                Ok(()) => removed.push(n.path.clone()),
                Err(e) => {
                    failed_under.push(n.path.clone());
                    report.failed.push((n.path.clone(), e.to_string()));
                }
            }
        }
        // Shallowest first: directories before what they hold.
        todo.reverse();
        let mut entries = Vec::new();
        let mut modes = DirModes::default();
        let time = now();
        for n in &todo {
            if failed_under.iter().any(|f| f == &n.path) {
                continue;
            }
            // Only a path to recreate needs its parent back; one removed in phase 1 is done.
            if n.before != State::Absent && failed_under.iter().any(|f| n.path.within(f)) {
                report
                    .failed
                    .push((n.path.clone(), "its parent could not be restored".into()));
                continue;
            }
            let current = if removed.contains(&n.path) {
                State::Absent
            } else {
                n.after.clone()
            };
            match apply(
                self,
                workspace,
                (&n.path, &current, &n.before),
                Durable::Yes,
                &mut modes,
            ) {
                Ok(()) => {
                    entries.push(Entry {
                        call: undo_call.to_owned(),
                        time: time.clone(),
                        path: n.path.clone(),
                        before: n.after.clone(),
                        after: n.before.clone(),
                    });
                    report.restored.push(n.path.clone());
                }
                Err(e) => {
                    failed_under.push(n.path.clone());
                    report.failed.push((n.path.clone(), e.to_string()));
                }
            }
        }
        report.restored.sort();
        let modes_set = modes.set(workspace);
        self.append(session, &entries)?;
        // What undo restored, and its journal lines, are on disk when it returns.
        self.sync_now()?;
        modes_set?;
        Ok(report)
    }
}
