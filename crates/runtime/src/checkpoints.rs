//! Checkpoints in the runtime: every workspace change a file tool makes is journaled
//! with what it replaced ([`checkpoint::Checkpoints`], `STATE/checkpoints/AGENT`), so
//! `cordon changes` shows it and `cordon undo` restores it exactly.
//!
//! Guarantees: a file tool's change is journaled before and after it is made, with each
//! parent directory it creates; a change whose earlier content does not fit under
//! `[checkpoints] max_mb` is not checkpointed, so the guard decides it as a change that
//! cannot be undone (it asks in an untrusted session) — and if the journal fills between
//! decision and execution, a change that was allowed only because it would be journaled
//! is not made. Each journaled call leaves a `checkpoint` record; a change applied without
//! a journal leaves one marked `unjournaled`. When a session that has read untrusted
//! content deletes or overwrites a file that existed before the session began, an `alert`
//! `workspace_overwritten` is raised with the exact undo command, and the turn's answer
//! ends with the same note ([`Runtime::take_change_notice`]).
//!
//! A command's changes are journaled the same way when the sandbox backend can show the
//! workspace through an overlay ([`sandbox::Sandbox::supports_workspace_overlay`]): the
//! command writes into the session's upper directory (on a tmpfs when `/dev/shm` is
//! usable), and after it ends the runtime plans, journals and applies the whole change
//! set ([`Runtime::apply_command_changes`]), then empties the upper directory. Entries
//! the journal refuses to apply (FIFOs, devices, names that are not UTF-8 …) are named
//! in the command's output and not applied.
//!
//! A skill's script with write access to the workspace runs through the same overlay
//! (in its own sandbox), so its changes are journaled alike.
//!
//! Not guaranteed: changes made outside Cordon are not journaled (undo then reports the
//! file as changed since and leaves it alone); two sessions' commands running at once
//! over the same workspace see each other's applied changes mid-command.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use audit::event::{
    Alert, CheckpointEvent, CheckpointRecorded, NamedAlert, PathChange, WorkspaceOverwritten,
};
use checkpoint::{Checkpoints, Entry, OverCap, RelPath, SessionId, State, Tree};

use crate::Runtime;
use crate::approval::ApprovalAnswer;
use crate::authorise::{Authorization, Authorized};
use crate::pipeline::{Cx, Failure, Stage};
use crate::workspace::WorkspacePath;

/// One agent's journal over its workspace.
pub(crate) struct Journal {
    checkpoints: Checkpoints,
    tree: Tree,
    /// One change set at a time per workspace (before states are checked again at
    /// commit, but racing commits on the same paths are not ordered).
    lock: Mutex<()>,
    /// Per session, the paths it created: read from its journal once, then kept up to
    /// date as this process journals its changes (not re-read per call).
    created: Mutex<HashMap<String, HashSet<String>>>,
}

impl Journal {
    pub(crate) fn open(dir: &Path, max_bytes: u64, workspace: &Path) -> Result<Journal, String> {
        let checkpoints = Checkpoints::open(dir, max_bytes)
            .map_err(|e| format!("the checkpoint journal in {}: {e}", dir.display()))?;
        let tree = Tree::open(workspace).map_err(|e| e.to_string())?;
        Ok(Journal {
            checkpoints,
            tree,
            lock: Mutex::new(()),
            created: Mutex::default(),
        })
    }

    /// Paths `session` created (journaled with an absent before state): changing them
    /// again overwrites nothing that was there before the session.
    fn created_by(&self, session: &SessionId) -> HashSet<String> {
        let mut created = self.created.lock().unwrap_or_else(PoisonError::into_inner);
        created
            .entry(session.as_str().to_string())
            .or_insert_with(|| {
                self.checkpoints
                    .journal(session)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.before == State::Absent)
                    .map(|e| e.path.as_str().to_string())
                    .collect()
            })
            .clone()
    }

    /// `entries` were journaled for `session`: the paths they created join its set.
    fn journaled(&self, session: &str, entries: &[Entry]) {
        let mut created = self.created.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = created.get_mut(session) {
            let new = entries.iter().filter(|e| e.before == State::Absent);
            set.extend(new.map(|e| e.path.as_str().to_string()));
        }
    }

    /// Whether the journal has room left at all (for a command, whose changes are known
    /// only once it ran).
    fn has_room(&self) -> bool {
        self.checkpoints
            .used()
            .is_ok_and(|used| used < self.checkpoints.max_bytes())
    }

    /// Whether writing `new_bytes` over `path` fits under the cap, counting what is
    /// there now as the earlier content to keep (deduplication can only make it smaller).
    fn fits(&self, root: &Path, path: &WorkspacePath, new_bytes: u64) -> bool {
        let current = std::fs::symlink_metadata(root.join(path.as_str()))
            .map(|m| if m.is_file() { m.len() } else { 0 })
            .unwrap_or(0);
        let Ok(used) = self.checkpoints.used() else {
            return false;
        };
        used.saturating_add(current).saturating_add(new_bytes) <= self.checkpoints.max_bytes()
    }
}

/// One session's overlay directories, `upper` and `work` side by side in a directory of
/// their own (0700); removed when the session's state is dropped.
pub(crate) struct OverlayDirs {
    root: PathBuf,
}

impl OverlayDirs {
    /// Make them on a tmpfs (`/dev/shm`) when possible — overlay mounts on a busy disk
    /// cost several times more — else beneath `fallback`.
    fn create(fallback: &Path) -> Result<OverlayDirs, String> {
        use std::os::unix::fs::DirBuilderExt;
        let name = format!(
            "{OVERLAY_PREFIX}{}-{}",
            std::process::id(),
            ulid::Ulid::new()
        );
        let mut last = String::new();
        for base in [Path::new("/dev/shm"), fallback] {
            sweep_stale(base);
            let root = base.join(&name);
            let made = std::fs::DirBuilder::new()
                .recursive(false)
                .mode(0o700)
                .create(&root)
                .and_then(|()| {
                    for sub in ["upper", "work"] {
                        std::fs::DirBuilder::new()
                            .mode(0o700)
                            .create(root.join(sub))?;
                    }
                    Ok(())
                });
            match made {
                Ok(()) => return Ok(OverlayDirs { root }),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&root);
                    last = format!("{}: {e}", root.display());
                }
            }
        }
        Err(format!(
            "cannot make the workspace overlay's directories ({last})"
        ))
    }

    pub(crate) fn profile(&self) -> sandbox::WorkspaceOverlay {
        sandbox::WorkspaceOverlay {
            upper: self.root.join("upper"),
            work: self.root.join("work"),
        }
    }
}

const OVERLAY_PREFIX: &str = "cordon-overlay-";

/// Remove the overlay directories in `base` left by Cordon processes that no longer run
/// (killed before they could drop them): what they hold was never applied.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(OVERLAY_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        // Only our own user's: another user's directory is theirs to clean (and 0700).
        let ours = e.metadata().is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::uid(&m) == rustix::process::geteuid().as_raw()
        });
        if !alive && ours {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for OverlayDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The rule an over-cap change set is asked under (in the approval and its record).
const OVER_CAP_RULE: &str = "checkpoint.over_cap";

/// Where applying a command's change set got to.
pub(crate) enum Step {
    /// Applied (or nothing to apply), with a note for the command's output.
    Done(Option<String>),
    /// Over the cap, and only a human may let it through.
    Ask { changes: usize, needed: u64 },
}

/// How a journaled entry changed its path.
fn change_of(e: &Entry) -> &'static str {
    match (&e.before, &e.after) {
        (State::Absent, _) => "added",
        (_, State::Absent) => "deleted",
        (State::File { sha256: a, .. }, State::File { sha256: b, .. }) if a == b => "mode",
        _ => "changed",
    }
}

impl Runtime {
    /// Whether a file tool's write of `new_bytes` over `path` will be journaled.
    pub(crate) fn file_change_checkpointed(&self, path: &WorkspacePath, new_bytes: u64) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|j| j.fits(self.workspace.root(), path, new_bytes))
    }

    /// Whether a command's workspace changes will be journaled: checkpoints on, room in
    /// the journal, and a sandbox that can show the workspace through an overlay.
    pub(crate) fn command_checkpointed(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.has_room()) && self.commands_use_overlay()
    }

    /// Whether commands run with the workspace overlay, their changes applied by
    /// [`Runtime::apply_command_changes`] (which also labels them for provenance).
    pub(crate) fn commands_use_overlay(&self) -> bool {
        self.journal.is_some() && self.sandbox.supports_workspace_overlay()
    }

    /// The session's overlay directories for its commands, made on first use; `None`
    /// when commands are not journaled (checkpoints off, or a backend without overlay).
    pub(crate) fn command_overlay(
        &self,
        session: &str,
    ) -> Result<Option<std::sync::Arc<OverlayDirs>>, Failure> {
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
        if !self.sandbox.supports_workspace_overlay() {
            return Ok(None);
        }
        let fallback = journal.checkpoints.dir().join("overlay");
        self.session_overlay(session, || {
            std::fs::create_dir_all(&fallback)
                .map_err(|e| format!("{}: {e}", fallback.display()))?;
            OverlayDirs::create(&fallback)
        })
        .map(Some)
        .map_err(|m| Failure::new(Stage::Sandbox, m))
    }

    /// After a command ran with `overlay`: plan its changes, journal and apply them,
    /// empty the upper directory. Returns a note for the command's output (entries not
    /// applied), if any.
    ///
    /// A change set over the journal's cap asks a human when the command was allowed
    /// only because its changes would be journaled (an untrusted session, no human
    /// approved it): approved, it is applied and journaled over the cap; refused,
    /// expired or with nobody to ask, it is discarded whole. Otherwise (a trusted
    /// session, or a human approved the command) it is applied over the cap.
    pub(crate) async fn apply_command_changes(
        &self,
        cx: &Cx<'_>,
        auth: &Authorization,
        overlay: &OverlayDirs,
    ) -> Result<Option<String>, Failure> {
        let fail = |m: String| Failure::new(Stage::Workspace, m);
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
        let upper = overlay.profile().upper;
        let first = {
            let _one_at_a_time = journal.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.apply_planned(cx, auth, journal, &upper, None)
        };
        let result = match first {
            Ok(Step::Ask { changes, needed }) => {
                match self.ask_over_cap(cx, changes, needed).await {
                    Ok(()) => {
                        let _one_at_a_time = journal.lock.lock().unwrap_or_else(|p| p.into_inner());
                        self.apply_planned(cx, auth, journal, &upper, Some(OverCap::Allow))
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        // Whatever happened, the next command starts from the real workspace.
        checkpoint::clear_upper(&upper)
            .map_err(|e| fail(format!("cannot empty the overlay's upper directory: {e}")))?;
        match result? {
            Step::Done(note) => Ok(note),
            Step::Ask { .. } => Err(fail("the command's changes were not applied".into())),
        }
    }

    /// Plan the upper directory's changes and, unless a human must first agree to go over
    /// the cap ([`Step::Ask`]; `consent` is then `None`), journal and apply them.
    fn apply_planned(
        &self,
        cx: &Cx<'_>,
        auth: &Authorization,
        journal: &Journal,
        upper: &Path,
        consent: Option<OverCap>,
    ) -> Result<Step, Failure> {
        let fail = |m: String| Failure::new(Stage::Workspace, m);
        let plan = checkpoint::plan(upper, &journal.tree)
            .map_err(|e| fail(format!("cannot read the command's changes: {e}")))?;
        if plan.is_empty() {
            return Ok(Step::Done(None));
        }
        let session = SessionId::new(cx.session).map_err(|e| fail(e.to_string()))?;
        let cost = plan
            .cost(&journal.checkpoints)
            .map_err(|e| fail(e.to_string()))?;
        let over_cap = match consent {
            _ if !cost.exceeds() => OverCap::Refuse,
            Some(c) => c,
            None if auth.by != Authorized::Human && self.flow(cx.session).labels().is_tainted() => {
                return Ok(Step::Ask {
                    changes: plan.changes.len(),
                    needed: cost.needed,
                });
            }
            None => OverCap::Allow,
        };
        let created_here = self.created_before(cx.session, journal, &session);
        let committed = checkpoint::commit(
            &plan,
            &journal.checkpoints,
            &journal.tree,
            &session,
            &cx.call.id,
            over_cap,
        );
        // Provenance: every path of the change set carries the session's label as it now
        // is in the workspace — also after a commit that failed part-way, so no change is
        // left unlabelled.
        let paths: Vec<&str> = plan.changes.iter().map(|c| c.path.as_str()).collect();
        let labelled = self.label_changes(cx.session, &self.flow(cx.session).labels(), &paths);
        let applied = committed.map_err(|e| {
            fail(format!(
                "the command's workspace changes were not applied: {e}"
            ))
        })?;
        // Applied: the record and the overwrite alert are due whether or not labelling
        // worked, then its failure fails the call.
        self.record_checkpoint(cx, &applied.entries, &created_here);
        labelled?;
        if applied.refused.is_empty() {
            return Ok(Step::Done(None));
        }
        let refused: Vec<String> = applied
            .refused
            .iter()
            .map(|r| format!("{} ({})", r.path, r.reason))
            .collect();
        Ok(Step::Done(Some(format!(
            "[cordon: not applied to the workspace: {}]",
            refused.join("; ")
        ))))
    }

    /// Ask a human whether a command's `changes` workspace changes, which need `needed`
    /// bytes more than the journal's cap leaves, may be applied although they could not
    /// be undone. `Ok` only when a human approved; recorded like any approval.
    async fn ask_over_cap(&self, cx: &Cx<'_>, changes: usize, needed: u64) -> Result<(), Failure> {
        let max_mb = self.config.checkpoints.max_mb;
        let labels = self.flow(cx.session).labels();
        let action = format!("apply {changes} workspace change(s) of: {}", cx.call.name);
        let reason = format!(
            "the command's {changes} workspace change(s) need {} KiB in the checkpoint \
             journal, more than its cap leaves ([checkpoints] max_mb = {max_mb}): applied, \
             they could not be undone",
            needed.div_ceil(1024)
        );
        let verdict = guard::Verdict {
            decision: guard::Decision::Ask {
                reason: reason.clone(),
            },
            rule: OVER_CAP_RULE.to_string(),
            matched: Vec::new(),
            labels: labels.clone(),
        };
        let fingerprint = format!("{OVER_CAP_RULE}:{}:{}", cx.session, cx.call.id);
        let req = crate::approval::ApprovalRequest {
            session: cx.session.to_string(),
            agent: self.agent.clone(),
            kind: crate::approval::ApprovalKind::Action,
            tool: cx.call.name.clone(),
            action: action.clone(),
            fingerprint: fingerprint.clone(),
            arguments: serde_json::from_str(&cx.call.arguments)
                .unwrap_or_else(|_| serde_json::Value::String(cx.call.arguments.clone())),
            reason: reason.clone(),
            rule: OVER_CAP_RULE.to_string(),
            labels: serde_json::to_value(&labels).unwrap_or(serde_json::Value::Null),
            untrusted_sources: labels.untrusted_sources.clone(),
            root_session: Some(self.root_session(cx.session)).filter(|r| r != cx.session),
            ..Default::default()
        };
        let answer = self.approvals.ask(&req, self.approver.as_ref()).await;
        crate::record::approval_decided(
            &self.audit,
            cx.session,
            cx.call,
            &action,
            &fingerprint,
            &verdict,
            &answer,
        )
        .map_err(|e| Failure::new(Stage::Audit, format!("{action}: {e}")))?;
        let discarded = |why: String| {
            Err(Failure::new(
                Stage::Approval,
                format!("{reason}; {why}, so they were discarded (nothing was applied)"),
            ))
        };
        match answer {
            ApprovalAnswer::Once | ApprovalAnswer::Session | ApprovalAnswer::Agent { .. } => Ok(()),
            ApprovalAnswer::Deny => discarded("the human refused".into()),
            ApprovalAnswer::Expired => {
                discarded("nobody answered within approvals.timeout_secs".into())
            }
            ApprovalAnswer::Unavailable(why) => discarded(format!("no human can answer: {why}")),
        }
    }

    /// Make one file tool's change to `path` (`new_bytes` long; 0 for a delete) with
    /// `change`, journaled: the before state of the file and of each parent directory
    /// it will create is stored first, the after state recorded once `change` returns.
    pub(crate) fn journaled_file_change<T>(
        &self,
        cx: &Cx<'_>,
        auth: &Authorization,
        path: &WorkspacePath,
        new_bytes: u64,
        change: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, Failure> {
        let fail = |m: String| Failure::new(Stage::Workspace, m);
        let Some(journal) = &self.journal else {
            return change().map_err(fail);
        };
        let session = SessionId::new(cx.session).map_err(|e| fail(e.to_string()))?;
        let _one_at_a_time = journal.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Parents `write_file` will create, shallowest first, then the file itself.
        let rel = path.as_str();
        let mut targets = Vec::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            if !self.workspace.root().join(&parent).exists() {
                targets.push((parent, 0));
            }
        }
        targets.push((rel.clone(), new_bytes));
        let mut pending = Vec::new();
        for (p, bytes) in &targets {
            let p = RelPath::new(p).map_err(|e| fail(e.to_string()))?;
            match journal.checkpoints.before_change(
                &journal.tree,
                &session,
                &cx.call.id,
                &p,
                *bytes,
                OverCap::Refuse,
            ) {
                Ok(p) => pending.push(p),
                Err(checkpoint::Error::CapExceeded { .. }) => {
                    drop(pending);
                    return self.unjournaled_change(cx, auth, rel.as_str(), change);
                }
                Err(e) => return Err(fail(format!("cannot checkpoint {rel}: {e}"))),
            }
        }
        let created_here = self.created_before(cx.session, journal, &session);
        let result = change();
        let mut entries = Vec::new();
        for p in pending {
            match p.record() {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => {}
                Err(e) => {
                    return Err(fail(format!(
                        "{rel} was changed but its checkpoint could not be recorded: {e}"
                    )));
                }
            }
        }
        self.record_checkpoint(cx, &entries, &created_here);
        result.map_err(fail)
    }

    /// A change that does not fit under the journal's cap: made without a checkpoint
    /// when the guard allowed it as such (a trusted session, or a human approved);
    /// refused when it was allowed only because it would be journaled.
    fn unjournaled_change<T>(
        &self,
        cx: &Cx<'_>,
        auth: &Authorization,
        rel: &str,
        change: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, Failure> {
        if auth.by != Authorized::Human && self.flow(cx.session).labels().is_tainted() {
            return Err(Failure::new(
                Stage::Workspace,
                format!(
                    "{rel} was not changed: the checkpoint journal is full ([checkpoints] \
                     max_mb = {}), and in this session only a change that can be undone may \
                     be made without a human",
                    self.config.checkpoints.max_mb
                ),
            ));
        }
        let out = change().map_err(|m| Failure::new(Stage::Workspace, m))?;
        let event = CheckpointEvent::Unjournaled(CheckpointRecorded {
            call_id: cx.call.id.clone(),
            changes: vec![PathChange {
                path: rel.to_string(),
                change: "changed".into(),
            }],
            stored_bytes: 0,
        });
        crate::record::append_or_warn(&self.audit, cx.session, event);
        Ok(out)
    }

    /// What the session created before this call, for [`Runtime::record_checkpoint`]'s
    /// alert: needed (and read) only once the session is untrusted.
    fn created_before(
        &self,
        name: &str,
        journal: &Journal,
        session: &SessionId,
    ) -> HashSet<String> {
        if self.flow(name).labels().is_tainted() {
            journal.created_by(session)
        } else {
            HashSet::new()
        }
    }

    /// The `checkpoint` record of a call's journaled entries, and the alert when an
    /// untrusted session deleted or overwrote what existed before it.
    fn record_checkpoint(&self, cx: &Cx<'_>, entries: &[Entry], created_here: &HashSet<String>) {
        if entries.is_empty() {
            return;
        }
        if let Some(journal) = &self.journal {
            journal.journaled(cx.session, entries);
        }
        let size = |s: &State| match s {
            State::File { size, .. } => *size,
            _ => 0,
        };
        let event = CheckpointEvent::Recorded(CheckpointRecorded {
            call_id: cx.call.id.clone(),
            changes: entries
                .iter()
                .map(|e| PathChange {
                    path: e.path.as_str().to_string(),
                    change: change_of(e).into(),
                })
                .collect(),
            stored_bytes: entries
                .iter()
                .map(|e| size(&e.before) + size(&e.after))
                .sum(),
        });
        crate::record::append_or_warn(&self.audit, cx.session, event);
        let labels = self.flow(cx.session).labels();
        if !labels.is_tainted() {
            return;
        }
        let overwritten: Vec<String> = entries
            .iter()
            .filter(|e| !matches!(e.before, State::Absent | State::Dir { .. }))
            .filter(|e| !created_here.contains(e.path.as_str()))
            .map(|e| e.path.as_str().to_string())
            .collect();
        if overwritten.is_empty() {
            return;
        }
        let undo = format!("cordon undo {} --call {}", cx.session, cx.call.id);
        let alert = Alert::Named(NamedAlert::WorkspaceOverwritten(WorkspaceOverwritten {
            call_id: cx.call.id.clone(),
            paths: overwritten.clone(),
            untrusted_sources: labels.untrusted_sources.clone(),
            undo,
        }));
        crate::record::append_or_warn(&self.audit, cx.session, alert);
        self.note_overwritten(cx.session, &overwritten);
    }

    /// What this session's turn overwrote or deleted of what existed before the session
    /// (since the last call), as the note that ends the turn's answer; `None` when
    /// nothing was.
    pub fn take_change_notice(&self, session: &str) -> Option<String> {
        let paths = self.take_overwritten(session);
        if paths.is_empty() {
            return None;
        }
        Some(format!(
            "Cordon: after reading untrusted content this session deleted or overwrote \
             files that existed before it: {}. `cordon changes {session}` shows the \
             changes; `cordon undo {session}` restores them.",
            paths.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_directories_of_processes_gone_are_swept_and_live_ones_kept() {
        let base = tempfile::tempdir().expect("tempdir");
        let dead = base.path().join(format!("{OVERLAY_PREFIX}4294967294-X"));
        let live = base
            .path()
            .join(format!("{OVERLAY_PREFIX}{}-Y", std::process::id()));
        let other = base.path().join("not-ours");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("upper")).expect("mkdir");
        }
        std::fs::write(dead.join("upper/left.txt"), "never applied").expect("write");
        sweep_stale(base.path());
        assert!(!dead.exists(), "a dead process's directory is removed");
        assert!(live.exists() && other.exists(), "the rest is left alone");
    }
}
