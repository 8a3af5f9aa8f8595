//! Skills: folders with a `SKILL.md` (OpenClaw / AgentSkills format) and optional
//! scripts, that teach an agent a job. This crate owns everything about a skill that is
//! not running it: reading a tree safely ([`tree`]), its canonical hash, the manifest
//! ([`manifest`]), the scanner ([`scan`]), the lock file beside the config ([`lock`]) and
//! the read-only store of installed trees under the state directory ([`store`]).
//!
//! Running a skill's script is the runtime's job (sandbox, egress proxy, guard); this
//! crate tells it what the skill may do ([`Capabilities`]).

pub mod install;
pub mod lock;
pub mod manifest;
pub mod scan;
pub mod source;
pub mod store;
pub mod tree;

pub use lock::{Lock, LockError, Locked};
pub use manifest::{Capabilities, Manifest, ManifestError, WorkspaceAccess};
pub use scan::{Finding, Report, Severity};
pub use store::{Drift, Store, StoreError};
pub use tree::{Tree, TreeError, TreeFile};

/// Where a skill's tree appears inside the sandbox: `/skills/NAME`.
pub const MOUNT_ROOT: &str = "/skills";

/// Whether `name` is a valid skill name: 1–64 of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter or digit (what AgentSkills allows, and safe as a path component and in
/// `/skills/NAME`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}
