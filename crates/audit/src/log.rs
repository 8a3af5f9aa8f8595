//! The writer: [`Log`], shared as `Arc<Log>` between threads, and safe to open from
//! several processes at once (`cordon chat` in one terminal, `cordon run` in another).
//!
//! Guarantees: records get consecutive `seq` numbers and a correct chain whatever the
//! number of threads and processes. A record is finalised (seq, prev, hash) only at sync
//! time, under an exclusive `flock` of the log file: the writer first reads any records
//! other processes added since its last write and checks that they chain, then appends its
//! own, fsyncs and replaces `head`. After [`Log::sync`] returns, every record appended
//! before the call is on disk and named by `head`. A failed write poisons the handle:
//! nothing more is appended after a possibly torn line.
//!
//! [`Log::open`] verifies the chain from the head's checkpoint (the last record an earlier
//! open verified), not from the first record, so opening costs what was written since
//! rather than the size of the log; the checkpoint moves to the end of what this open
//! verified with the handle's first sync. [`crate::verify`] (`cordon log verify`) still
//! checks every record, and the checkpoint against them.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AuditError;
use crate::event::{Alert, Event, Failure, LogRecovered, NamedAlert};
use crate::head::{self, Checkpoint, Head};
use crate::record::{EventKind, Record};
use crate::verify::{Scanned, Scope, scan, scan_with};
use crate::{GENESIS_HASH, LOG_FILE};

/// Buffered bytes that make `append` sync by itself.
const FLUSH_AT: usize = 256 * 1024;

/// An open, verified audit log. `Send + Sync`.
pub struct Log {
    dir: PathBuf,
    file: File,
    state: Mutex<State>,
}

/// A record not yet finalised: seq and chain are assigned under the file lock.
struct Entry {
    ts: String,
    kind: EventKind,
    session: Option<String>,
    data: Value,
}

struct State {
    pending: Vec<Entry>,
    /// Approximate size of `pending` in the file.
    pending_bytes: usize,
    /// Entries appended through this handle, and how many of them are durable.
    appended: u64,
    durable: u64,
    /// The end of the log as this handle last saw it: seq, hash, file length.
    tail_seq: u64,
    tail_hash: String,
    tail_len: u64,
    /// The furthest record known verified by an open (this one's, or another writer's
    /// seen in `head`): the checkpoint this handle writes into `head`.
    checkpoint: Option<Checkpoint>,
    failed: Option<String>,
}

/// Holds the exclusive `flock` on the log file; released on drop.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn take(file: &'a File, path: &Path) -> Result<FileLock<'a>, AuditError> {
        file.lock().map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            action: "lock",
            source,
        })?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Log {
    /// Create or open the log in `dir` and verify the existing chain against `head`, from
    /// its checkpoint on (repairing an interrupted write, see
    /// [`recover_interrupted_write`]). A damaged log is [`AuditError::Broken`]: nothing is
    /// appended to it. Damage before the checkpoint that moves no byte is left to
    /// [`crate::verify`].
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
        let head_exists = dir.join(crate::HEAD_FILE).exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(!head_exists)
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
        let (scanned, recovered, tail_len) = {
            let _lock = FileLock::take(&file, &path)?;
            // Another process may have created the head between our check and the lock.
            // Only a missing head starts a fresh log; an unreadable one is damage.
            if matches!(head::read(dir), Ok(None))
                && file.metadata().map(|m| m.len()).unwrap_or(1) == 0
            {
                let genesis = Head {
                    seq: 0,
                    hash: GENESIS_HASH.to_string(),
                    checkpoint: None,
                };
                head::write(dir, &genesis).map_err(io("write head anchor", dir))?;
            }
            // Anything wrong from the checkpoint on (or with the checkpoint itself): the
            // whole chain decides, and reports the first damage by its line.
            let scanned = match scan(dir, Scope::FromCheckpoint, |_| ()) {
                Ok(scanned) => (scanned, None),
                Err(_) => recover_interrupted_write(dir, &file).map_err(AuditError::Broken)?,
            };
            // The length that goes with the scanned records, read while still holding the
            // lock: another writer may append the moment it is released, and those
            // records must be caught up with (not counted as ours) at our first sync.
            let tail_len = file.metadata().map_err(io("stat", &path))?.len();
            (scanned.0, scanned.1, tail_len)
        };
        let log = Log {
            dir: dir.to_path_buf(),
            file,
            state: Mutex::new(State {
                pending: Vec::new(),
                pending_bytes: 0,
                appended: 0,
                durable: 0,
                tail_seq: scanned.report.records,
                tail_hash: scanned.report.last_hash,
                tail_len,
                checkpoint: scanned.last,
                failed: None,
            }),
        };
        if let Some(r) = recovered {
            log.record_event(
                None,
                Alert::Named(NamedAlert::AuditLogRecovered(LogRecovered {
                    detail: "the previous writer stopped between writing records and anchoring them (crash or kill); complete records were adopted, a torn partial record was dropped".into(),
                    adopted_records: r.adopted,
                    dropped_bytes: r.dropped_bytes,
                })),
            )?;
        }
        Ok(log)
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append a typed record (buffered, not yet durable). Its `seq` and chain link are
    /// assigned when it is synced, under the file lock, so several processes can share the
    /// log. A record that cannot be represented is not dropped silently: an `error` record
    /// naming its kind and the reason takes its place, and the error is returned.
    pub fn append_event(
        &self,
        session: Option<&str>,
        event: impl Into<Event>,
    ) -> Result<(), AuditError> {
        let event = event.into();
        let kind = event.kind();
        match event.data() {
            Ok(data) => self.append_data(kind, session, data),
            Err(e) => {
                let error = AuditError::Serialize {
                    kind,
                    reason: e.to_string(),
                };
                self.record_unwritten(kind, session, &error);
                Err(error)
            }
        }
    }

    /// [`Log::append_event`] and [`Log::sync`]: use before acknowledging the action the
    /// record describes.
    pub fn record_event(
        &self,
        session: Option<&str>,
        event: impl Into<Event>,
    ) -> Result<(), AuditError> {
        self.append_event(session, event)?;
        self.sync()
    }

    /// Untyped: append `data` as a record of `kind` without checking its shape. Only for
    /// the log's own tests of chaining and verification with arbitrary data (feature
    /// `untyped`, which nothing but this crate's tests enables): every writer uses
    /// [`Log::append_event`]. An unrepresentable record leaves an `error` record.
    #[cfg(feature = "untyped")]
    pub fn append(
        &self,
        kind: EventKind,
        session: Option<&str>,
        data: Value,
    ) -> Result<(), AuditError> {
        self.append_data(kind, session, data)
    }

    /// Untyped [`Log::append`] and [`Log::sync`], for the log's own tests only.
    #[cfg(feature = "untyped")]
    pub fn record(
        &self,
        kind: EventKind,
        session: Option<&str>,
        data: Value,
    ) -> Result<(), AuditError> {
        self.append_data(kind, session, data)?;
        self.sync()
    }

    /// Append, and on an unrepresentable record leave an `error` record in its place.
    fn append_data(
        &self,
        kind: EventKind,
        session: Option<&str>,
        data: Value,
    ) -> Result<(), AuditError> {
        let result = self.push(kind, session, data);
        if let Err(e @ AuditError::Unrepresentable { .. }) = &result {
            self.record_unwritten(kind, session, e);
        }
        result
    }

    /// The `error` record standing for a record of `kind` that could not be written. Its
    /// data is Cordon's own text, so it is always representable; if the log itself is
    /// failing, the caller's error already says so.
    fn record_unwritten(&self, kind: EventKind, session: Option<&str>, error: &AuditError) {
        let failure = Failure {
            stage: "audit".into(),
            error: format!("a `{kind}` record was not written: {error}"),
            webhook: None,
            record_kind: Some(kind),
        };
        if let Ok(data) = serde_json::to_value(failure) {
            let _ = self.push(EventKind::Error, session, data);
        }
    }

    /// Buffer one record after checking it reads back identically.
    fn push(&self, kind: EventKind, session: Option<&str>, data: Value) -> Result<(), AuditError> {
        let ts = OffsetDateTime::now_utc().format(&Rfc3339)?;
        // The log is only worth something if `verify` can re-derive every hash; refuse a
        // value whose JSON does not read back identically rather than write a record that
        // would later look tampered with.
        let probe = Record::new(
            0,
            ts.clone(),
            kind,
            session.map(str::to_string),
            data,
            GENESIS_HASH.to_string(),
        );
        let line = probe.line();
        let problem = match serde_json::from_str::<Record>(&line) {
            Ok(r) if r.line() == line => None,
            Ok(_) => Some("it reads back differently".to_string()),
            Err(e) => Some(format!("it does not read back: {e}")),
        };
        if let Some(reason) = problem {
            return Err(AuditError::Unrepresentable { kind, reason });
        }
        let mut state = self.lock_state()?;
        state.pending.push(Entry {
            ts,
            kind,
            session: probe.session,
            data: probe.data,
        });
        state.appended += 1;
        state.pending_bytes += line.len() + 1;
        let large = state.pending_bytes >= FLUSH_AT;
        drop(state);
        if large {
            self.sync()?;
        }
        Ok(())
    }

    /// Make every record appended before this call durable and anchor it in `head`. One
    /// fsync covers all of them, whichever thread appended them; returns at once if
    /// another thread's sync already covered them.
    pub fn sync(&self) -> Result<(), AuditError> {
        let mut state = self.lock_state()?;
        if state.durable >= state.appended {
            return Ok(());
        }
        let path = self.dir.join(LOG_FILE);
        let _lock = FileLock::take(&self.file, &path)?;
        let result = self.write_locked(&mut state, &path);
        if let Err(e) = &result {
            state.failed = Some(e.to_string());
        }
        result
    }

    /// With the file lock held: catch up with other writers, then finalise, write, fsync
    /// and anchor this handle's pending records.
    fn write_locked(&self, state: &mut State, path: &Path) -> Result<(), AuditError> {
        self.catch_up(state, path)?;
        let mut bytes = Vec::new();
        let (mut seq, mut prev) = (state.tail_seq, state.tail_hash.clone());
        for e in state.pending.drain(..) {
            seq += 1;
            let record = Record::new(seq, e.ts, e.kind, e.session, e.data, prev);
            bytes.extend_from_slice(record.line().as_bytes());
            bytes.push(b'\n');
            prev = record.hash;
        }
        (&self.file)
            .write_all(&bytes)
            .map_err(|source| self.io("write", source))?;
        self.file
            .sync_data()
            .map_err(|source| self.io("fsync", source))?;
        head::write(
            &self.dir,
            &Head {
                seq,
                hash: prev.clone(),
                checkpoint: state.checkpoint.clone(),
            },
        )
        .map_err(|source| self.io("replace head anchor", source))?;
        state.tail_seq = seq;
        state.tail_hash = prev;
        state.tail_len += bytes.len() as u64;
        state.durable = state.appended;
        state.pending_bytes = 0;
        Ok(())
    }

    /// Read and check the records other processes appended since this handle's last
    /// write: they must continue the chain exactly.
    fn catch_up(&self, state: &mut State, path: &Path) -> Result<(), AuditError> {
        let len = self
            .file
            .metadata()
            .map_err(|source| self.io("stat", source))?
            .len();
        if len == state.tail_len {
            return Ok(());
        }
        let broken = |reason: String| {
            AuditError::Broken(crate::VerifyError {
                path: path.to_path_buf(),
                line: 0,
                seq: Some(state.tail_seq + 1),
                reason,
            })
        };
        if len < state.tail_len {
            return Err(broken(
                "the log shrank while open: truncated by someone".into(),
            ));
        }
        let mut buf = vec![0u8; (len - state.tail_len) as usize];
        self.file
            .read_exact_at(&mut buf, state.tail_len)
            .map_err(|source| self.io("read", source))?;
        if buf.last() != Some(&b'\n') {
            return Err(broken("another writer left a torn record".into()));
        }
        let (mut seq, mut prev) = (state.tail_seq, state.tail_hash.clone());
        // `buf` ends with a newline (checked above); every line before it, even an empty
        // one, must be a record that continues the chain.
        for raw in buf[..buf.len() - 1].split(|&b| b == b'\n') {
            let record: Record = std::str::from_utf8(raw)
                .ok()
                .and_then(|t| serde_json::from_str(t).ok())
                .ok_or_else(|| {
                    broken(format!(
                        "record #{} written by another process is not valid",
                        seq + 1
                    ))
                })?;
            if record.seq != seq + 1
                || record.prev != prev
                || record.computed_hash() != record.hash
                || record.line().as_bytes() != raw
            {
                return Err(broken(format!(
                    "record #{} written by another process does not continue the chain",
                    seq + 1
                )));
            }
            seq = record.seq;
            prev = record.hash;
        }
        state.tail_seq = seq;
        state.tail_hash = prev;
        state.tail_len = len;
        // Another writer anchored those records; its open may have verified further than
        // this one's did. Never move the checkpoint back (that only costs a later open
        // time), nor past what this handle has checked chains.
        if let Ok(Some(Head {
            checkpoint: Some(theirs),
            ..
        })) = head::read(&self.dir)
            && theirs.seq <= seq
            && state
                .checkpoint
                .as_ref()
                .is_none_or(|ours| theirs.seq > ours.seq)
        {
            state.checkpoint = Some(theirs);
        }
        Ok(())
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
) -> Result<(Scanned, Option<Recovery>), crate::VerifyError> {
    let anchor = head::read(dir).ok().flatten().map(|h| h.seq).unwrap_or(0);
    // Strict up to the anchor; past it only complete, correctly chained records count.
    let scanned = scan_with(dir, true, Scope::Whole, |_| ()).map_err(|e| e.error)?;
    let report = &scanned.report;
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
            checkpoint: scanned.last.clone(),
        },
    )
    .map_err(io)?;
    let recovery = Recovery {
        adopted: report.records.saturating_sub(anchor),
        dropped_bytes,
    };
    Ok((scanned, Some(recovery)))
}

impl Drop for Log {
    /// Best effort: make buffered records durable. Callers that need the guarantee call
    /// [`Log::sync`] themselves; a failure here has no caller to go to, so it is reported
    /// rather than dropped in silence.
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("audit log closed with records it could not make durable: {e}");
        }
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
