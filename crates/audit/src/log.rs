//! The writer: [`Log`], shared as `Arc<Log>` between threads.
//!
//! Guarantees: records get consecutive `seq` numbers and a correct chain whatever the
//! number of threads; lines are never interleaved (one writer thread at a time inside the
//! process, an exclusive `flock` against other processes); after [`Log::sync`] returns,
//! every record appended before the call is on disk and named by `head`. A failed write
//! poisons the handle: nothing more is appended after a possibly torn line.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AuditError;
use crate::head::{self, Head};
use crate::record::{EventKind, Record};
use crate::verify::{scan, scan_with};
use crate::{GENESIS_HASH, LOG_FILE, VerifyReport};

/// Buffered bytes that make `append` sync by itself.
const FLUSH_AT: usize = 256 * 1024;

/// An open, locked, verified audit log. `Send + Sync`.
pub struct Log {
    dir: PathBuf,
    file: File,
    state: Mutex<State>,
    /// Serialises fsync + head replacement; holds the seq the head names.
    synced: Mutex<u64>,
}

struct State {
    /// Lines appended but not yet written to the file.
    pending: Vec<u8>,
    /// Seq of the last appended record.
    last_seq: u64,
    last_hash: String,
    /// Seq and hash of the last record written to the file.
    written: (u64, String),
    failed: Option<String>,
}

impl Log {
    /// Create or open the log in `dir`, take the writer lock and verify the existing
    /// chain against `head`. A damaged log is [`AuditError::Broken`]: nothing is appended
    /// to it.
    pub fn open(dir: &Path) -> Result<Log, AuditError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| AuditError::Io {
                path,
                action,
                source,
            }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create directory", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("set directory mode 0700", dir))?;
        let path = dir.join(LOG_FILE);
        for name in [LOG_FILE, crate::HEAD_FILE] {
            let p = dir.join(name);
            if let Ok(meta) = std::fs::symlink_metadata(&p)
                && !meta.file_type().is_file()
            {
                return Err(AuditError::Broken(crate::VerifyError {
                    path: p,
                    line: 0,
                    seq: None,
                    reason: "is not a regular file (a symlink?); refusing to follow it".into(),
                }));
            }
        }
        let fresh = !path.exists() && !dir.join(crate::HEAD_FILE).exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(fresh)
            .mode(0o600)
            .open(&path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    AuditError::Broken(crate::VerifyError {
                        path: path.clone(),
                        line: 0,
                        seq: None,
                        reason: "the log file is missing but the head anchor exists".into(),
                    })
                } else {
                    AuditError::Io {
                        path: path.clone(),
                        action: "open",
                        source,
                    }
                }
            })?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("set file mode 0600", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(AuditError::Locked { path }),
            Err(TryLockError::Error(source)) => {
                return Err(AuditError::Io {
                    path,
                    action: "lock",
                    source,
                });
            }
        }
        if fresh {
            let genesis = Head {
                seq: 0,
                hash: GENESIS_HASH.to_string(),
            };
            head::write(dir, &genesis).map_err(io("write head anchor", dir))?;
        }
        let (report, recovered) = match scan(dir, |_| ()) {
            Ok(report) => (report, None),
            Err(_) => recover_interrupted_write(dir, &file).map_err(AuditError::Broken)?,
        };
        let log = Log {
            dir: dir.to_path_buf(),
            file,
            state: Mutex::new(State {
                pending: Vec::new(),
                last_seq: report.records,
                last_hash: report.last_hash.clone(),
                written: (report.records, report.last_hash),
                failed: None,
            }),
            synced: Mutex::new(report.records),
        };
        if let Some(r) = recovered {
            log.record(
                EventKind::Alert,
                None,
                serde_json::json!({
                    "alert": "audit_log_recovered",
                    "detail": "the previous writer stopped between writing records and anchoring them (crash or kill); complete records were adopted, a torn partial record was dropped",
                    "adopted_records": r.adopted,
                    "dropped_bytes": r.dropped_bytes,
                }),
            )?;
        }
        Ok(log)
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append a record (buffered, not yet durable) and return its `seq`.
    pub fn append(
        &self,
        kind: EventKind,
        session: Option<&str>,
        data: Value,
    ) -> Result<u64, AuditError> {
        let ts = OffsetDateTime::now_utc().format(&Rfc3339)?;
        let mut state = self.lock_state()?;
        let seq = state.last_seq + 1;
        let record = Record::new(
            seq,
            ts,
            kind,
            session.map(str::to_string),
            data,
            state.last_hash.clone(),
        );
        // The log is only worth something if `verify` can re-derive every hash; refuse a
        // value whose JSON does not read back identically rather than write a record that
        // would later look tampered with.
        let line = record.line();
        let reread: Option<Record> = serde_json::from_str(&line).ok();
        if reread.is_none_or(|r| r.line() != line) {
            return Err(AuditError::Unrepresentable { seq });
        }
        state.pending.extend_from_slice(record.line().as_bytes());
        state.pending.push(b'\n');
        state.last_seq = seq;
        state.last_hash = record.hash;
        let large = state.pending.len() >= FLUSH_AT;
        drop(state);
        // Bound memory without ever leaving written-but-unanchored records in the file
        // (which `verify` would report as past the head).
        if large {
            self.sync()?;
        }
        Ok(seq)
    }

    /// Make every record appended before this call durable and anchor it in `head`. One
    /// fsync covers all of them, whichever thread appended them; returns at once if
    /// another thread's sync already covered them.
    pub fn sync(&self) -> Result<(), AuditError> {
        let target = self.lock_state()?.last_seq;
        let mut synced = self.synced.lock().map_err(|_| self.poisoned())?;
        if *synced >= target {
            return Ok(());
        }
        let (seq, hash) = {
            let mut state = self.lock_state()?;
            self.write_pending(&mut state)?;
            state.written.clone()
        };
        // fsync outside the state lock so other threads keep appending meanwhile.
        let result = self
            .file
            .sync_data()
            .map_err(|source| self.io("fsync", source))
            .and_then(|()| {
                head::write(&self.dir, &Head { seq, hash })
                    .map_err(|source| self.io("replace head anchor", source))
            });
        if let Err(e) = result {
            if let Ok(mut state) = self.state.lock() {
                state.failed = Some(e.to_string());
            }
            return Err(e);
        }
        *synced = seq;
        Ok(())
    }

    /// Append and sync: use before acknowledging the action the record describes.
    pub fn record(
        &self,
        kind: EventKind,
        session: Option<&str>,
        data: Value,
    ) -> Result<u64, AuditError> {
        let seq = self.append(kind, session, data)?;
        self.sync()?;
        Ok(seq)
    }

    fn lock_state(&self) -> Result<MutexGuard<'_, State>, AuditError> {
        let state = self.state.lock().map_err(|_| self.poisoned())?;
        if let Some(reason) = &state.failed {
            return Err(AuditError::Failed {
                path: self.dir.join(LOG_FILE),
                reason: reason.clone(),
            });
        }
        Ok(state)
    }

    fn write_pending(&self, state: &mut State) -> Result<(), AuditError> {
        if state.pending.is_empty() {
            return Ok(());
        }
        if let Err(source) = (&self.file).write_all(&state.pending) {
            let e = self.io("write", source);
            state.failed = Some(e.to_string());
            return Err(e);
        }
        state.pending.clear();
        state.written = (state.last_seq, state.last_hash.clone());
        Ok(())
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.dir.join(LOG_FILE),
            action,
            source,
        }
    }

    fn poisoned(&self) -> AuditError {
        AuditError::Failed {
            path: self.dir.join(LOG_FILE),
            reason: "a thread panicked while writing".into(),
        }
    }
}

/// What [`recover_interrupted_write`] repaired.
struct Recovery {
    adopted: u64,
    dropped_bytes: u64,
}

/// A writer killed between `write` and the head update leaves complete records past the
/// anchor and possibly a torn last line; those were never acknowledged (acknowledgement
/// waits for the anchor). Everything up to the anchor must still verify strictly; then the
/// complete records that chain from it are anchored and a torn tail is cut off. This adds
/// no power to an attacker: anyone able to append chained records can rewrite the anchor.
/// Any other damage stays an error.
fn recover_interrupted_write(
    dir: &Path,
    file: &File,
) -> Result<(VerifyReport, Option<Recovery>), crate::VerifyError> {
    let anchor = head::read(dir).ok().flatten().map(|h| h.seq).unwrap_or(0);
    // Strict up to the anchor; past it only complete, correctly chained records count.
    let report = scan_with(dir, true, |_| ()).map_err(|e| e.error)?;
    let path = dir.join(LOG_FILE);
    let io = |e: std::io::Error| crate::VerifyError {
        path: path.clone(),
        line: 0,
        seq: None,
        reason: format!("cannot repair an interrupted write: {e}"),
    };
    let bytes = std::fs::read(&path).map_err(io)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let dropped_bytes = (bytes.len() - keep) as u64;
    if dropped_bytes > 0 {
        file.set_len(keep as u64).map_err(io)?;
    }
    file.sync_data().map_err(io)?;
    head::write(
        dir,
        &Head {
            seq: report.records,
            hash: report.last_hash.clone(),
        },
    )
    .map_err(io)?;
    let recovery = Recovery {
        adopted: report.records.saturating_sub(anchor),
        dropped_bytes,
    };
    Ok((report, Some(recovery)))
}

impl Drop for Log {
    /// Best effort: make buffered records durable. Callers that need the guarantee call
    /// [`Log::sync`] themselves.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Log>();
    }
}
