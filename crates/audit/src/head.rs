//! The head anchor: `seq` and `hash` of the last durable record, in `DIR/head`, and the
//! checkpoint: the last record whose chain back to the first record has been verified
//! (by a full scan, or from an earlier checkpoint) when a writer opened the log.
//!
//! Replaced atomically ([`config::atomic_write`]: a temporary file, fsync, rename over
//! `head`, fsync the directory), so a crash leaves either the old or the new anchor,
//! never a torn one.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::HEAD_FILE;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: String,
    /// Absent in a new log and in a head written before checkpoints existed: the next
    /// open then verifies the whole chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// A record [`crate::Log::open`] verified: the next open verifies only this record and
/// those after it. Record `seq` (≥ 1) has hash `hash`, and its line starts at byte
/// `offset` of the log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub offset: u64,
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Ok(None)` when there is no head file.
pub(crate) fn read(dir: &Path) -> Result<Option<Head>, String> {
    let path = dir.join(HEAD_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let head: Head = serde_json::from_str(text.trim_end())
        .map_err(|e| format!("head anchor {} is not valid: {e}", path.display()))?;
    if !is_hash(&head.hash) {
        return Err(format!(
            "head anchor {} has a malformed hash",
            path.display()
        ));
    }
    if let Some(c) = &head.checkpoint
        && (!is_hash(&c.hash) || c.seq == 0 || c.seq > head.seq)
    {
        return Err(format!(
            "head anchor {} has a malformed checkpoint",
            path.display()
        ));
    }
    Ok(Some(head))
}

pub(crate) fn write(dir: &Path, head: &Head) -> std::io::Result<()> {
    let mut text = serde_json::to_string(head).map_err(std::io::Error::other)?;
    text.push('\n');
    config::atomic_write(&dir.join(HEAD_FILE), text.as_bytes(), 0o600)
        .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))
}
