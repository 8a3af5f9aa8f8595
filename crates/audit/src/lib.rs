//! Cordon's tamper-evident, append-only audit log.
//!
//! Every event (config load, prompt, model output, tool proposal, decision, approval,
//! tool result, sandboxed exec, egress connection, error, alert) becomes one [`Record`]:
//! one line of JSON in `DIR/audit.jsonl`. Each record carries the SHA-256 of the record
//! before it (`prev`) and its own hash over a canonical serialisation (see [`record`]),
//! so the records form a chain. `DIR/head` holds the `seq` and `hash` of the last durable
//! record and is replaced atomically at every [`Log::sync`].
//!
//! # Threat model
//!
//! Detects, via [`verify`]: any edited byte, deleted, inserted, duplicated or reordered
//! record, a truncated tail (checked against `head`), records appended after the head
//! anchor, garbage lines and a missing file — by anyone who cannot also rewrite `head`
//! consistently. It does **not** stop an attacker with write access to the whole
//! directory (e.g. root, or the Cordon user itself) from rewriting the entire chain and
//! `head`; the hashes are unkeyed. Ship the head (or the stream) off the machine to
//! defend against that. The directory is created 0700 and the files 0600 so other local
//! users cannot read or change them; the sandboxed agent never sees the directory.
//!
//! Records are typed: writers build an [`Event`] (one payload type per [`EventKind`], see
//! [`event`]) and append it with [`Log::append_event`] / [`Log::record_event`]; the agent
//! loop gets an [`AgentLog`] that can write only its own kinds. The shapes are published in
//! `docs/audit-events.md`.
//!
//! Durability: [`Log::append_event`] buffers; [`Log::sync`] makes everything appended so far
//! durable with one `fsync` (group commit); [`Log::record_event`] is both, to be used before
//! acknowledging the action a record describes. Several processes may write one log
//! (`cordon chat` and `cordon run` side by side): records are numbered and chained at
//! sync time under an exclusive `flock`, after checking what other writers added. A
//! writer killed between writing and anchoring is repaired at the next open (complete
//! chained records adopted, a torn tail dropped, an `alert` recorded). [`verify`] and
//! [`read`] take no lock and may run while a writer is live; they then accept
//! well-chained records just past the anchor (the writer is between writing them and
//! replacing `head`), which stay checked at every later sync and open.

mod agent_log;
mod error;
pub mod event;
mod head;
mod log;
pub mod record;
mod verify;

pub use agent_log::{AgentEvent, AgentLog};
pub use error::{AuditError, VerifyError};
pub use event::Event;
pub use log::Log;
pub use record::{EventKind, Record};
pub use verify::{Filter, VerifyReport, read, read_filtered, verify};

/// The log file inside the audit directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// The head anchor inside the audit directory.
pub const HEAD_FILE: &str = "head";
/// `prev` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
