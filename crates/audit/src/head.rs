//! The head anchor: `seq` and `hash` of the last durable record, in `DIR/head`.
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
    if head.hash.len() != 64 || !head.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "head anchor {} has a malformed hash",
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
