//! Persistence of agent sessions, approval requests and grants in SQLite
//! (`state_dir/cordon.db`, [`Store::open`]) or, for several processes or hosts sharing
//! one store, PostgreSQL ([`Store::connect`], `[store] url`), so `cordon chat` can resume
//! where it stopped and an approval asked in one process can be answered from another.
//! Both backends keep the same guarantees: each implements the `backend::Backend`
//! trait once (`sqlite`, `pg`), and each area (`sessions`, `events`, `tokens`,
//! `approvals`, `files`, `channels`, `chat_queue`) keeps its statements for both next to each other.
//!
//! Guarantees: the database file is created 0600; every write is one transaction taken
//! with `BEGIN IMMEDIATE`, so several handles (threads or processes) on one file append
//! items without losing or duplicating a `seq`; items of a session load back in the order
//! they were appended; the schema is versioned by `PRAGMA user_version` and a database
//! from a newer Cordon, or one that is not a Cordon database, is refused with an error
//! rather than modified. Items are opaque JSON here: the `agent` crate defines them.
//!
//! Does not: encrypt the database (it holds conversation content, so the state
//! directory is 0700 and never mounted into a sandbox), or keep secrets (they live in
//! the vault).

mod approvals;
mod backend;
mod channels;
mod chat_queue;
mod error;
mod events;
mod files;
mod pg;
mod schema;
mod sessions;
mod sqlite;
mod store;
mod tokens;

pub use approvals::{
    Answer, AnswerReach, Answered, ApprovalFilter, ApprovalKind, ApprovalRecord, ApprovalStatus,
    GrantQuery, GrantRecord, GrantScope, NewApproval,
};
pub use channels::{ApprovalMessage, NewPairing, PairingRecord, PairingRequest, PairingStatus};
pub use chat_queue::{ChatTurnOutcome, NewChatTurn, QueuedChatTurn};
pub use error::StoreError;
pub use events::EventRecord;
pub use files::FileLabelRecord;
pub use sessions::SessionRecord;
pub use store::Store;
pub use tokens::{ActiveToken, NewToken, Revoked, TokenRecord, TokenScope};
