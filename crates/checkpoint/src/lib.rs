//! The journal of workspace changes: every change a tool makes in the workspace is
//! recorded with what it replaced, so it can be shown and undone exactly.
//!
//! - [`Checkpoints`] is a checkpoint directory (the runtime's `STATE/checkpoints`):
//!   content-addressed blobs (`blobs/<sha256>`, 0600, written under a temporary name and
//!   renamed, one file per distinct content whichever sessions stored it) and one
//!   journal per session (`sessions/<session>.jsonl`, one [`Entry`] per line: call id,
//!   time, path, before and after [`State`]), appended per change set. Both are made
//!   durable by a background `syncfs` half a second after a burst of writes, off the
//!   tool call's path; undo syncs before it returns.
//! - File tools: [`Checkpoints::before_change`] before writing, editing or deleting one
//!   file, then [`Pending::record`].
//! - Commands: the sandbox writes into an overlay upper directory; [`plan`] reads it
//!   against the workspace, [`Plan::cost`] says whether it fits under the cap,
//!   [`commit`] journals and applies it, [`clear_upper`] empties the upper directory.
//! - [`Checkpoints::changes`] and [`Checkpoints::render`] show a session's net change
//!   per path; [`Checkpoints::undo`] restores it.
//!
//! # Guarantees
//!
//! - The workspace is written only beneath its root and never through a symlink
//!   (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, `O_NOFOLLOW` and `*at`
//!   calls on the last component): a symlink left by one command cannot carry a later
//!   change outside the workspace.
//! - Write-ahead: a command's change set is journaled (and its before and after bytes
//!   stored) before the first change is applied; a file tool's before state is stored
//!   before the tool writes, and [`Pending`] is the only way to record an after state.
//! - A change set whose new bytes would push the directory over its cap is refused before
//!   anything is stored or applied, unless the caller says it was approved
//!   ([`OverCap::Allow`]).
//! - Undo restores content and mode byte for byte, deletes what the session created and
//!   recreates what it deleted, only where the path still holds the session's last after
//!   state; anything else is reported and left alone. It is idempotent and journaled.
//! - Paths, session ids and blob names are validated, also when read back from a journal.
//!
//! # What callers must do
//!
//! - Mount the overlay with `redirect_dir=off,metacopy=off` (a renamed lower directory
//!   is then copied by the command's tools; entries overlay marks `redirect` or
//!   `metacopy` are refused), and empty the upper directory with [`clear_upper`] only
//!   while it is not mounted (overlayfs does not allow changing a mounted layer).
//! - Commit one change set at a time per workspace: before states are checked again at
//!   commit, but two commits racing on the same paths are not ordered.
//!
//! # Not guaranteed
//!
//! - Ownership, timestamps, extended attributes and hard links are neither recorded nor
//!   restored; setuid, setgid and sticky bits of files a command made are dropped.
//! - FIFOs, sockets and devices are not journaled: in an upper directory they are
//!   refused, in the workspace a change that would delete one is refused.
//! - A change set is not applied atomically as a whole: after a crash part of it may be
//!   applied (all of it is journaled; undo reports the unapplied paths as changed since).
//! - Each file is held in memory while it is hashed and stored.
//! - Durability at the moment of a change: a power loss within half a second of a
//!   change (the background sync's delay) can lose its journal line or blobs, as it can
//!   lose the change itself (written without a sync, like the command's own writes). A
//!   crash or kill of Cordon loses nothing: each write is visible once made, in the
//!   write-ahead order above.
//! - The journal is not protected against someone who can write the state directory.

mod file_tool;
mod overlay;
mod path;
mod review;
mod state;
mod store;
mod sync;
mod tree;
mod undo;

pub use file_tool::Pending;
pub use overlay::{Applied, Change, Plan, Refusal, clear_upper, commit, plan};
pub use path::{RelPath, SessionId};
pub use review::NetChange;
pub use state::{Entry, State};
pub use store::{Checkpoints, Cost, OverCap};
pub use tree::Tree;
pub use undo::{Conflict, UndoReport};

/// Why a checkpoint operation failed: what, on which path or id.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    AtomicWrite(#[from] config::AtomicWriteError),
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("invalid session id {id:?}: {reason}")]
    InvalidSession { id: String, reason: &'static str },
    #[error("invalid call id {call:?}: 1 to 256 characters, no control characters")]
    InvalidCall { call: String },
    #[error("session {session} has no call {call:?} in its journal")]
    UnknownCall { session: String, call: String },
    #[error("{path}: {what} cannot be journaled")]
    Unsupported { path: String, what: &'static str },
    #[error(
        "the change needs {needed} bytes of checkpoints and {used} of the cap of {cap} are used: \
         raise the journal size cap or approve this change"
    )]
    CapExceeded { needed: u64, used: u64, cap: u64 },
    #[error("{path} changed since the plan: planned {planned}, found {found}; nothing was applied")]
    ChangedSincePlan {
        path: String,
        planned: String,
        found: String,
    },
    #[error("corrupt checkpoint data {what}: {reason}")]
    Corrupt { what: String, reason: String },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl std::fmt::Display,
        e: rustix::io::Errno,
    ) -> Error {
        let source = std::io::Error::from(e);
        Error::Io {
            op,
            path: path.to_string(),
            source,
        }
    }
}
