//! Reading and verifying a log directory.
//!
//! Guarantees: [`verify`] accepts a log only if every line is the exact canonical line of
//! a record whose `seq` is its line number, whose `prev` is the previous record's hash,
//! whose `hash` matches its content, whose last record is the one `head` names, and whose
//! record at the head's checkpoint (if any) is the one it names, at its offset. The first
//! failure is reported with its line. Does not: detect a consistent rewrite of the whole
//! log together with `head` (see the crate threat model).
//!
//! A writer's open checks less ([`Scope::FromCheckpoint`]): the checkpoint's record (its
//! hash and its offset) and every record after it, with the same rules. An edit before
//! the checkpoint that keeps every byte offset is then found by [`verify`] only, not at
//! open; one that moves the checkpoint's record (a line deleted, inserted or resized) is
//! found at open too.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{AuditError, VerifyError};
use crate::head::{self, Checkpoint};
use crate::record::{EventKind, Record};
use crate::{GENESIS_HASH, LOG_FILE};

/// What a successful [`verify`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    /// Hash of the last record (64 zeros for an empty log).
    pub last_hash: String,
}

/// Check the whole chain of `dir` against its head anchor.
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    scan_settled(dir, |_| false)
        .map(|(report, _)| report)
        .map_err(|e| e.error)
}

/// Every record of a verified log, in order. A damaged log is an error.
pub fn read(dir: &Path) -> Result<Vec<Record>, AuditError> {
    read_filtered(dir, &Filter::default())
}

/// The records of a verified log that `filter` keeps, in order.
pub fn read_filtered(dir: &Path, filter: &Filter) -> Result<Vec<Record>, AuditError> {
    scan_settled(dir, |r| filter.matches(r))
        .map(|(_, records)| records)
        .map_err(|e| AuditError::Broken(e.error))
}

/// Selects records for `cordon log show`. Empty fields select everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub session: Option<String>,
    pub kinds: Vec<EventKind>,
}

impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        let session_ok = match &self.session {
            Some(s) => r.session.as_deref() == Some(s.as_str()),
            None => true,
        };
        session_ok && (self.kinds.is_empty() || self.kinds.contains(&r.kind))
    }
}

/// [`scan`] as a reader. A live writer (it holds the lock on the log file) writes new
/// records to the file just before it replaces `head`, so a reader can see durable
/// records past the anchor: while the lock is held those are accepted if they chain
/// correctly from the anchored record (a forgery among them is caught by the writer's
/// next sync or reopen). Without a writer, records past the anchor are damage.
fn scan_settled(
    dir: &Path,
    keep: impl Fn(&Record) -> bool,
) -> Result<(VerifyReport, Vec<Record>), ScanError> {
    let mut attempt = 0;
    loop {
        let live = writer_active(dir);
        let mut kept = Vec::new();
        let result = scan_with(dir, live, Scope::Whole, |r| {
            if keep(&r) {
                kept.push(r);
            }
        });
        match result {
            // A writer may have started between the lock probe and the scan.
            Err(e) if e.past_head && attempt < 3 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
            Ok(scanned) => return Ok((scanned.report, kept)),
        }
    }
}

/// Whether some process holds the writer lock on the log file right now.
fn writer_active(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(LOG_FILE)) else {
        return false;
    };
    match file.try_lock_shared() {
        // Released at once when `file` drops: a reader must never block a writer.
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

pub(crate) struct ScanError {
    pub error: VerifyError,
    /// The only problem is records after the head anchor.
    pub past_head: bool,
}

/// How much of the chain a scan reads and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every record from the first ([`verify`], [`read`]).
    Whole,
    /// The head's checkpoint record and those after it (the whole chain when the head
    /// has no checkpoint): a writer's open.
    FromCheckpoint,
}

/// What a scan saw: the report, and the last record as a checkpoint (`None` for an
/// empty log).
pub(crate) struct Scanned {
    pub report: VerifyReport,
    pub last: Option<Checkpoint>,
}

/// Verify `dir` strictly (no records past the anchor) over `scope`, handing every good
/// record to `each`.
pub(crate) fn scan(
    dir: &Path,
    scope: Scope,
    each: impl FnMut(Record),
) -> Result<Scanned, ScanError> {
    scan_with(dir, false, scope, each)
}

/// The bytes of the log file from `offset` on.
fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    if offset == 0 {
        return std::fs::read(path);
    }
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(len.saturating_sub(offset) as usize);
    file.seek(SeekFrom::Start(offset))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub(crate) fn scan_with(
    dir: &Path,
    allow_past_head: bool,
    scope: Scope,
    mut each: impl FnMut(Record),
) -> Result<Scanned, ScanError> {
    let path = dir.join(LOG_FILE);
    let fail = |line: usize, seq: Option<u64>, reason: String| ScanError {
        error: VerifyError {
            path: path.clone(),
            line,
            seq,
            reason,
        },
        past_head: false,
    };
    let anchor = head::read(dir).map_err(|reason| fail(0, None, reason))?;
    let from = match (scope, &anchor) {
        (Scope::FromCheckpoint, Some(h)) => h.checkpoint.clone(),
        _ => None,
    };
    let bytes = match read_from(&path, from.as_ref().map_or(0, |c| c.offset)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(0, None, "the log file is missing".into()));
        }
        Err(e) => return Err(fail(0, None, format!("cannot read: {e}"))),
    };
    let Some(anchor) = anchor else {
        return Err(fail(
            0,
            None,
            "the head anchor is missing, so truncation cannot be ruled out".into(),
        ));
    };
    // From a checkpoint, record N is still on line N (one record per line), and its
    // first record is checked against the checkpoint's hash instead of a `prev`.
    let (mut prev, mut count, mut pos) = match &from {
        Some(c) => (String::new(), c.seq - 1, c.offset),
        None => (GENESIS_HASH.to_string(), 0, 0),
    };
    let mut line_no = usize::try_from(count).unwrap_or(usize::MAX);
    let mut at_checkpoint = from.is_some();
    let mut last_start = 0;
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        line_no += 1;
        let expected = count + 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            if allow_past_head && count >= anchor.seq {
                break; // a live writer is part-way through writing this line
            }
            return Err(fail(
                line_no,
                None,
                "incomplete last line (torn write?)".into(),
            ));
        };
        let raw = &rest[..end];
        rest = &rest[end + 1..];
        let start = pos;
        pos += end as u64 + 1;
        let text = std::str::from_utf8(raw)
            .map_err(|_| fail(line_no, None, "line is not UTF-8".into()))?;
        let record: Record = serde_json::from_str(text).map_err(|e| {
            let seq = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
            fail(line_no, seq, format!("not a valid record: {e}"))
        })?;
        let seq = Some(record.seq);
        if record.seq != expected {
            return Err(fail(
                line_no,
                seq,
                format!(
                    "expected record #{expected} here: records were deleted, inserted or \
                     reordered"
                ),
            ));
        }
        if record.prev != prev && !at_checkpoint {
            return Err(fail(
                line_no,
                seq,
                "`prev` does not match the previous record's hash".into(),
            ));
        }
        if record.computed_hash() != record.hash {
            return Err(fail(
                line_no,
                seq,
                "content does not match its hash (edited)".into(),
            ));
        }
        if record.line().as_bytes() != raw {
            return Err(fail(
                line_no,
                seq,
                "line is not in canonical form (edited)".into(),
            ));
        }
        // The record the head's checkpoint names must be exactly that one, where it says.
        if let Some(c) = &anchor.checkpoint
            && c.seq == record.seq
            && (c.hash != record.hash || c.offset != start)
        {
            return Err(fail(
                line_no,
                seq,
                "record does not match the checkpoint in the head anchor".into(),
            ));
        }
        at_checkpoint = false;
        last_start = start;
        prev = record.hash.clone();
        count = expected;
        if count > anchor.seq && !allow_past_head {
            return Err(ScanError {
                error: VerifyError {
                    path: path.clone(),
                    line: line_no,
                    seq,
                    reason: format!(
                        "record is past the head anchor (#{}): appended without a sync, or \
                         forged",
                        anchor.seq
                    ),
                },
                past_head: true,
            });
        }
        if count == anchor.seq && prev != anchor.hash {
            return Err(fail(
                line_no,
                seq,
                "record does not match the head anchor".into(),
            ));
        }
        each(record);
    }
    if count < anchor.seq {
        return Err(fail(
            line_no + 1,
            Some(count + 1),
            format!(
                "log ends at record #{count} but the head anchor names #{}: the tail was \
                 truncated",
                anchor.seq
            ),
        ));
    }
    if count == anchor.seq && prev != anchor.hash {
        return Err(fail(
            line_no,
            None,
            "the log does not match the head anchor".into(),
        ));
    }
    let last = (count > 0).then(|| Checkpoint {
        seq: count,
        hash: prev.clone(),
        offset: last_start,
    });
    Ok(Scanned {
        report: VerifyReport {
            records: count,
            last_hash: prev,
        },
        last,
    })
}
