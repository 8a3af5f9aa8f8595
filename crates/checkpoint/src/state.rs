//! What a path held at one moment, and one journal entry.

use serde::{Deserialize, Serialize};

use crate::RelPath;

/// The state of one path: what a change replaced (before) or left (after). A regular
/// file's bytes are in the blob store under `sha256`; ownership, timestamps, extended
/// attributes and hard links are not recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum State {
    Absent,
    File {
        sha256: String,
        mode: u32,
        size: u64,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
}

impl State {
    /// A few words for a report: `absent`, `file (12 bytes, mode 0644)`, ...
    pub fn describe(&self) -> String {
        match self {
            State::Absent => "absent".into(),
            State::File { mode, size, .. } => format!("file ({size} bytes, mode {mode:04o})"),
            State::Dir { mode } => format!("directory (mode {mode:04o})"),
            State::Symlink { target } => format!("symlink to {target}"),
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        matches!(self, State::Dir { .. })
    }
}

/// One line of a session's journal: call `call` changed `path` from `before` to `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub call: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub path: RelPath,
    pub before: State,
    pub after: State,
}
