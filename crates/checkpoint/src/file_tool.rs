//! Journaling one file tool's change: [`Checkpoints::before_change`] captures the path's
//! state before the tool touches it and returns a [`Pending`]; [`Pending::record`] reads
//! the state after and journals the pair. A `Pending` exists only through
//! `before_change`, so no after state can be recorded without its before.

use crate::store::{OverCap, now};
use crate::tree::Tree;
use crate::{Checkpoints, Entry, Error, RelPath, SessionId, State, path::check_call};

/// A change about to be made to one path, its before state already stored. Call
/// [`Pending::record`] once the tool has written, edited or deleted the path (also when it
/// failed: an unchanged path records nothing). One `Pending` journals one path: a tool
/// that also creates parent directories takes one for each directory it creates, first.
#[must_use = "the change is journaled only by Pending::record"]
pub struct Pending<'a> {
    checkpoints: &'a Checkpoints,
    tree: &'a Tree,
    session: SessionId,
    call: String,
    path: RelPath,
    before: State,
}

impl Checkpoints {
    /// Capture `path`'s state in `workspace` before call `call` of `session` changes it,
    /// storing a regular file's bytes. `new_bytes` is the size the tool is about to write
    /// (0 for a delete): with the before bytes it is checked against the cap, and
    /// [`Error::CapExceeded`] is returned (nothing stored) when `over_cap` is `Refuse`.
    /// A path beneath a symlink, or a FIFO/device/socket, is an error.
    pub fn before_change<'a>(
        &'a self,
        workspace: &'a Tree,
        session: &SessionId,
        call: &str,
        path: &RelPath,
        new_bytes: u64,
        over_cap: OverCap,
    ) -> Result<Pending<'a>, Error> {
        check_call(call)?;
        workspace.check_parents(path)?;
        let observed = workspace.observe(path)?;
        let path_bytes = path.as_str().len() as u64;
        let mut blobs = Vec::new();
        if let State::File { sha256, size, .. } = &observed.state {
            blobs.push((sha256.as_str(), *size));
        }
        let mut cost = self.cost(blobs, 1, path_bytes)?;
        cost.needed += new_bytes;
        self.check(cost, over_cap)?;
        if let Some(bytes) = &observed.content {
            self.put_blob(bytes)?;
        }
        Ok(Pending {
            checkpoints: self,
            tree: workspace,
            session: session.clone(),
            call: call.to_owned(),
            path: path.clone(),
            before: observed.state,
        })
    }
}

impl Pending<'_> {
    pub fn before(&self) -> &State {
        &self.before
    }

    /// Read the path's state now, store its bytes and journal the change; `None` when
    /// nothing changed.
    pub fn record(self) -> Result<Option<Entry>, Error> {
        let observed = self.tree.observe(&self.path)?;
        if observed.state == self.before {
            return Ok(None);
        }
        if let Some(bytes) = &observed.content {
            self.checkpoints.put_blob(bytes)?;
        }
        let entry = Entry {
            call: self.call,
            time: now(),
            path: self.path,
            before: self.before,
            after: observed.state,
        };
        self.checkpoints
            .append(&self.session, std::slice::from_ref(&entry))?;
        Ok(Some(entry))
    }
}
