//! Applying a command's changes from an overlay upper directory to the real workspace.
//!
//! The sandbox sees the workspace through an overlay: lower = the workspace, read-only;
//! upper = a host directory that receives every change. After the command, [`plan`]
//! reads the upper directory against the workspace and lists every change with its
//! before and after state; [`commit`] stores the before and after bytes, appends the
//! change set to the session's journal and only then applies it to the workspace (each
//! write in that order, made durable in the background: [`crate::sync`]); [`clear_upper`] empties the upper directory for the next command.
//!
//! How the upper directory is read: a character device 0:0 is a whiteout (the path is
//! deleted, with everything beneath it); a directory with `trusted.overlay.opaque` or
//! `user.overlay.opaque` = `y` replaces the workspace's directory (its old entries that
//! are not in the upper directory are deleted); a file copied up without a change of
//! content or mode is no change. Overlay's own extended attributes are never applied.
//!
//! Guarantees: the workspace is written only through [`Tree`] (no symlink followed, so
//! a symlink made by one command cannot carry the next one's writes outside); a FIFO,
//! socket or device in the upper directory, a name that is not UTF-8, and an entry that
//! overlay marked `redirect` or `metacopy` (mount with `redirect_dir=off,metacopy=off`)
//! are refused and reported, never applied; setuid, setgid and sticky bits of a command's
//! files and directories are dropped; before states are checked again at commit, and
//! nothing is applied if the workspace or the upper directory changed since the plan.
//!
//! Not guaranteed: atomicity of a change set as a whole (a crash while applying leaves
//! part of it applied, all of it journaled: undo then reports the unapplied paths as
//! changed since); hard links (each path is replaced by its own file); ownership,
//! timestamps and extended attributes of applied files.

use std::collections::BTreeSet;
use std::path::Path;

use crate::store::{Cost, OverCap, now};
use crate::tree::{Durable, Kind, Tree};
use crate::{Checkpoints, Entry, Error, RelPath, SessionId, State, path::check_call};

const OPAQUE: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
const REFUSED_MARKS: [&str; 4] = [
    "trusted.overlay.redirect",
    "user.overlay.redirect",
    "trusted.overlay.metacopy",
    "user.overlay.metacopy",
];

/// One path's change: what the workspace holds now and what the command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: RelPath,
    pub before: State,
    pub after: State,
}

/// An upper entry that is not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub path: String,
    pub reason: String,
}

/// A command's changes, read but not applied: in the order they are applied (a
/// directory's contents are deleted before it, a directory is created before its
/// contents).
pub struct Plan {
    upper: Tree,
    pub changes: Vec<Change>,
    pub refused: Vec<Refusal>,
}

impl Plan {
    /// The bytes the journal would need for this plan, against the cap.
    pub fn cost(&self, checkpoints: &Checkpoints) -> Result<Cost, Error> {
        let mut blobs = Vec::new();
        let mut path_bytes = 0;
        for c in &self.changes {
            path_bytes += c.path.as_str().len() as u64;
            for s in [&c.before, &c.after] {
                if let State::File { sha256, size, .. } = s {
                    blobs.push((sha256.as_str(), *size));
                }
            }
        }
        checkpoints.cost(blobs, self.changes.len(), path_bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.refused.is_empty()
    }
}

/// What [`commit`] journaled and applied.
#[derive(Debug)]
pub struct Applied {
    pub entries: Vec<Entry>,
    pub refused: Vec<Refusal>,
}

/// Read the upper directory `upper` against `workspace` (nothing is written).
pub fn plan(upper: &Path, workspace: &Tree) -> Result<Plan, Error> {
    let mut plan = Plan {
        upper: Tree::open(upper)?,
        changes: Vec::new(),
        refused: Vec::new(),
    };
    let mut walk = Walk {
        upper: &plan.upper,
        ws: workspace,
        changes: Vec::new(),
        refused: Vec::new(),
    };
    walk.dir(None, false)?;
    plan.changes = walk.changes;
    plan.refused = walk.refused;
    Ok(plan)
}

struct Walk<'a> {
    upper: &'a Tree,
    ws: &'a Tree,
    changes: Vec<Change>,
    refused: Vec<Refusal>,
}

impl Walk<'_> {
    fn refuse(&mut self, path: &str, reason: impl Into<String>) {
        self.refused.push(Refusal {
            path: path.to_owned(),
            reason: reason.into(),
        });
    }

    /// The upper directory `rel`; `hidden`: the workspace's entries of this directory that
    /// the upper one does not hold are deleted (an opaque or replaced directory).
    fn dir(&mut self, rel: Option<&RelPath>, hidden: bool) -> Result<(), Error> {
        let names = self.upper.list(rel)?;
        let mut seen = BTreeSet::new();
        for name in &names {
            let path = match self.upper.child(rel, name) {
                Ok(p) => p,
                Err(e) => {
                    self.refuse(&String::from_utf8_lossy(name), e.to_string());
                    continue;
                }
            };
            seen.insert(path.clone());
            // One entry that cannot be read (a mode the command set, say) is refused; the
            // rest of the change set still applies.
            match self.entry(&path, hidden) {
                Err(e @ Error::Io { .. }) => self.refuse(path.as_str(), e.to_string()),
                other => other?,
            }
        }
        if hidden && let Some(rel) = rel {
            for name in self.ws.list(Some(rel))? {
                match self.ws.child(Some(rel), &name) {
                    Ok(p) if !seen.contains(&p) => {
                        self.delete_tree(&p)?;
                    }
                    Ok(_) => {}
                    Err(e) => self.refuse(&String::from_utf8_lossy(&name), e.to_string()),
                }
            }
        }
        Ok(())
    }

    /// One upper entry; `hidden`: its parent replaces the workspace's directory.
    fn entry(&mut self, path: &RelPath, hidden: bool) -> Result<(), Error> {
        let Some(st) = self.upper.lstat(path)? else {
            return Ok(()); // gone since it was listed
        };
        let kind = Tree::kind(&st);
        let marks = match kind {
            Kind::File | Kind::Dir => self.upper.xattr_names(path)?,
            _ => Vec::new(),
        };
        if let Some(mark) = REFUSED_MARKS.iter().find(|m| marks.iter().any(|n| n == *m)) {
            self.refuse(
                path.as_str(),
                format!("overlay marked it {mark}: mount with redirect_dir=off,metacopy=off"),
            );
            return Ok(());
        }
        let before = match self.ws.observe(path) {
            Ok(o) => o.state,
            Err(e @ Error::Unsupported { .. }) => {
                self.refuse(
                    path.as_str(),
                    format!("the workspace entry cannot be journaled: {e}"),
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mode = st.st_mode & 0o777;
        match kind {
            Kind::Whiteout => {
                if before != State::Absent {
                    self.delete_tree(path)?;
                }
            }
            Kind::Special => self.refuse(
                path.as_str(),
                "a FIFO, socket or device made by the command is not applied",
            ),
            Kind::Dir => {
                let mut opaque = false;
                for name in OPAQUE.iter().filter(|o| marks.iter().any(|n| n == *o)) {
                    opaque |= self.upper.xattr(path, name)?.as_deref() == Some(b"y");
                }
                let after = State::Dir { mode };
                if before.is_dir() {
                    if before != after {
                        self.push(path, before, after);
                    }
                    self.dir(Some(path), opaque || hidden)?;
                } else {
                    if !self.clear_dir(path, &before)? {
                        return Ok(());
                    }
                    self.push(path, before, after);
                    // The workspace has no directory here: nothing of it to hide.
                    self.dir(Some(path), false)?;
                }
            }
            Kind::File | Kind::Symlink => {
                let after = match kind {
                    Kind::File => {
                        let o = self.upper.observe(path)?;
                        match o.state {
                            State::File { sha256, size, .. } => State::File { sha256, mode, size },
                            other => other, // swapped since the lstat: journal what is there
                        }
                    }
                    _ => match self.upper.read_link(path) {
                        Ok(target) => State::Symlink { target },
                        Err(e @ Error::Unsupported { .. }) => {
                            self.refuse(path.as_str(), e.to_string());
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    },
                };
                if before == after || !self.clear_dir(path, &before)? {
                    return Ok(());
                }
                self.push(path, before, after);
            }
        }
        Ok(())
    }

    fn push(&mut self, path: &RelPath, before: State, after: State) {
        self.changes.push(Change {
            path: path.clone(),
            before,
            after,
        });
    }

    /// When `before` is a directory about to be replaced by something else, delete its
    /// contents first; false (and refused) when some of them cannot be.
    fn clear_dir(&mut self, path: &RelPath, before: &State) -> Result<bool, Error> {
        if !before.is_dir() {
            return Ok(true);
        }
        let mut complete = true;
        for name in self.ws.list(Some(path))? {
            match self.ws.child(Some(path), &name) {
                Ok(p) => complete &= self.delete_tree(&p)?,
                Err(e) => {
                    self.refuse(&String::from_utf8_lossy(&name), e.to_string());
                    complete = false;
                }
            }
        }
        if !complete {
            self.refuse(
                path.as_str(),
                "not replaced: it holds entries that cannot be journaled",
            );
        }
        Ok(complete)
    }

    /// Delete `path` and (first) everything beneath it; false when something could not
    /// be journaled (then its ancestors are not deleted either).
    fn delete_tree(&mut self, path: &RelPath) -> Result<bool, Error> {
        let before = match self.ws.observe(path) {
            Ok(o) => o.state,
            Err(e @ Error::Unsupported { .. }) => {
                self.refuse(path.as_str(), format!("not deleted: {e}"));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if before == State::Absent {
            return Ok(true);
        }
        if !self.clear_dir(path, &before)? {
            return Ok(false);
        }
        self.push(path, before, State::Absent);
        Ok(true)
    }
}

/// Journal `plan` as call `call` of `session` and apply it to `workspace`.
///
/// In order: the cost is checked against the cap ([`Error::CapExceeded`], nothing done,
/// when `over_cap` is `Refuse`); every before state is read again and must equal the
/// plan's, every after file is read from the upper directory and must match
/// ([`Error::ChangedSincePlan`] otherwise); before and after bytes are stored; the change
/// set is appended to the journal; then each change is applied (not fsynced, as the
/// command's own writes were not).
pub fn commit(
    plan: &Plan,
    checkpoints: &Checkpoints,
    workspace: &Tree,
    session: &SessionId,
    call: &str,
    over_cap: OverCap,
) -> Result<Applied, Error> {
    check_call(call)?;
    checkpoints.check(plan.cost(checkpoints)?, over_cap)?;
    let time = now();
    let mut entries = Vec::with_capacity(plan.changes.len());
    for c in &plan.changes {
        let now = workspace.observe(&c.path)?;
        if now.state != c.before {
            return Err(Error::ChangedSincePlan {
                path: c.path.to_string(),
                planned: c.before.describe(),
                found: now.state.describe(),
            });
        }
        if let Some(bytes) = &now.content {
            checkpoints.put_blob(bytes)?;
        }
        if let State::File { sha256, .. } = &c.after {
            let (_, bytes) = plan.upper.read_file(&c.path)?;
            if crate::tree::sha256(&bytes) != *sha256 {
                return Err(Error::ChangedSincePlan {
                    path: format!("{} (upper)", c.path),
                    planned: c.after.describe(),
                    found: format!("file ({} bytes) with other content", bytes.len()),
                });
            }
            checkpoints.put_blob(&bytes)?;
        }
        entries.push(Entry {
            call: call.to_owned(),
            time: time.clone(),
            path: c.path.clone(),
            before: c.before.clone(),
            after: c.after.clone(),
        });
    }
    checkpoints.append(session, &entries)?;
    let mut modes = DirModes::default();
    for c in &plan.changes {
        apply(
            checkpoints,
            workspace,
            (&c.path, &c.before, &c.after),
            Durable::No,
            &mut modes,
        )?;
    }
    modes.set(workspace)?;
    Ok(Applied {
        entries,
        refused: plan.refused.clone(),
    })
}

/// Directory modes set last, deepest first: a directory that ends up read-only (or 000)
/// still takes the entries a change set puts in it.
#[derive(Default)]
pub(crate) struct DirModes(Vec<(RelPath, u32)>);

impl DirModes {
    pub(crate) fn set(mut self, ws: &Tree) -> Result<(), Error> {
        self.0.sort_by_key(|d| std::cmp::Reverse(d.0.depth()));
        for (path, mode) in &self.0 {
            ws.chmod_dir(path, *mode)?;
        }
        Ok(())
    }
}

/// Turn `path` from `before` (which it holds) into `after`. A directory is removed only
/// once empty (its contents come earlier in a change set); a directory's mode is left to
/// `modes`.
pub(crate) fn apply(
    checkpoints: &Checkpoints,
    ws: &Tree,
    (path, before, after): (&RelPath, &State, &State),
    durable: Durable,
    modes: &mut DirModes,
) -> Result<(), Error> {
    let remove_before = match (before, after) {
        (State::Absent, _) => false,
        (_, State::Absent) => true,
        (State::Dir { .. }, State::Dir { .. }) => false,
        // A file replaces a file or symlink by rename, atomically.
        (State::File { .. } | State::Symlink { .. }, State::File { .. }) => false,
        _ => true,
    };
    if remove_before {
        ws.remove(path, before.is_dir())?;
    }
    match after {
        State::Absent => Ok(()),
        State::Dir { mode } => {
            if !before.is_dir() {
                ws.mkdir(path, 0o700, durable)?;
            }
            modes.0.push((path.clone(), *mode));
            Ok(())
        }
        State::File { sha256, mode, .. } => {
            ws.write_file(path, &checkpoints.blob(sha256)?, *mode, durable)
        }
        State::Symlink { target } => ws.symlink(path, target),
    }
}

/// Empty the upper directory `upper` (not the directory itself) without following any
/// symlink in it.
pub fn clear_upper(upper: &Path) -> Result<(), Error> {
    Tree::open(upper)?.clear()
}
