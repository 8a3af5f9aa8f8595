//! The checkpoint directory: content-addressed blobs and one journal per session.
//!
//! ```text
//! DIR/blobs/<sha256>          file bytes, 0600, written atomically, never rewritten
//! DIR/sessions/<session>.jsonl one Entry per line, appended per change set
//! ```
//!
//! Writes are made durable in the background ([`crate::sync`]), never on the caller's
//! path; undo syncs before it returns.
//!
//! A blob is named by the SHA-256 of its bytes, so the same content stored by any number
//! of changes or sessions is one file, and a blob read back is checked against its name.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::tree::sha256;
use crate::{Entry, Error, SessionId};

/// What to do when a change set would push the checkpoint directory over its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCap {
    /// Refuse with [`Error::CapExceeded`] before anything is stored or applied.
    Refuse,
    /// Store it anyway (a human approved it).
    Allow,
}

/// How many bytes a change set would add to the checkpoint directory, against its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// New blobs (content not stored yet) plus the journal lines.
    pub needed: u64,
    /// What the directory holds now.
    pub used: u64,
    pub cap: u64,
}

impl Cost {
    pub fn exceeds(&self) -> bool {
        self.used.saturating_add(self.needed) > self.cap
    }
}

/// Roughly what one journal line takes besides the path: ids, time, two states.
pub(crate) const ENTRY_OVERHEAD: u64 = 256;

/// A checkpoint directory (the runtime's `STATE/checkpoints`) with its size cap.
pub struct Checkpoints {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes held, counted once at first use and kept up to date by this process's
    /// writes (another process's writes are seen at the next open).
    used: std::sync::Mutex<Option<u64>>,
    /// Makes blob and journal writes durable in the background.
    syncer: crate::sync::Syncer,
}

impl Checkpoints {
    /// Open (creating, mode 0700) the checkpoint directory `dir`; `max_bytes` caps the
    /// bytes its blobs and journals may hold.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Checkpoints, Error> {
        for d in [dir.to_path_buf(), dir.join("blobs"), dir.join("sessions")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| Error::Io {
                    op: "create the directory",
                    path: d.display().to_string(),
                    source: e,
                })?;
        }
        Ok(Checkpoints {
            dir: dir.to_path_buf(),
            max_bytes,
            used: std::sync::Mutex::new(None),
            syncer: crate::sync::Syncer::new(dir),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, sha: &str) -> Result<PathBuf, Error> {
        if sha.len() != 64
            || !sha
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(Error::Corrupt {
                what: format!("blob name {sha:?}"),
                reason: "not a lowercase SHA-256".into(),
            });
        }
        Ok(self.dir.join("blobs").join(sha))
    }

    pub(crate) fn has_blob(&self, sha: &str) -> bool {
        self.blob_path(sha).is_ok_and(|p| p.is_file())
    }

    /// Store `bytes` (once: content already stored is not written again).
    ///
    /// Written to a temporary name and renamed, synced in the background.
    pub(crate) fn put_blob(&self, bytes: &[u8]) -> Result<String, Error> {
        let sha = sha256(bytes);
        let path = self.blob_path(&sha)?;
        if path.is_file() {
            return Ok(sha);
        }
        let tmp = self.dir.join("blobs").join(format!(
            ".tmp-{sha}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let io = |op: &'static str, p: &Path| {
            let path = p.display().to_string();
            move |source| Error::Io { op, path, source }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)
            .map_err(io("create the blob", &tmp))?;
        let written = file
            .write_all(bytes)
            .map_err(io("write the blob", &tmp))
            .and_then(|()| fs::rename(&tmp, &path).map_err(io("store the blob", &path)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.syncer.request();
        self.add_used(bytes.len() as u64);
        Ok(sha)
    }

    /// Make everything written so far durable before returning.
    pub(crate) fn sync_now(&self) -> Result<(), Error> {
        self.syncer.now()
    }

    fn add_used(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = used.as_mut() {
            *u += bytes;
        }
    }

    /// The bytes stored as `sha`, checked against it.
    pub fn blob(&self, sha: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(sha)?;
        let bytes = fs::read(&path).map_err(|e| Error::Io {
            op: "read the blob",
            path: path.display().to_string(),
            source: e,
        })?;
        if sha256(&bytes) != sha {
            return Err(Error::Corrupt {
                what: path.display().to_string(),
                reason: "its content does not match its name".into(),
            });
        }
        Ok(bytes)
    }

    /// Bytes held by blobs and journals now.
    pub fn used(&self) -> Result<u64, Error> {
        let mut cached = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = *cached {
            return Ok(u);
        }
        let total = self.count_used()?;
        *cached = Some(total);
        Ok(total)
    }

    fn count_used(&self) -> Result<u64, Error> {
        let mut total = 0;
        for sub in ["blobs", "sessions"] {
            let d = self.dir.join(sub);
            let listing = fs::read_dir(&d).map_err(|e| Error::Io {
                op: "list",
                path: d.display().to_string(),
                source: e,
            })?;
            for e in listing.flatten() {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok(total)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The cost of storing `blobs` (sha and size; repeated and stored ones count nothing)
    /// and `entries` journal lines of `path_bytes` path bytes in all.
    pub(crate) fn cost<'a>(
        &self,
        blobs: impl IntoIterator<Item = (&'a str, u64)>,
        entries: usize,
        path_bytes: u64,
    ) -> Result<Cost, Error> {
        let mut seen = std::collections::HashSet::new();
        let mut needed = entries as u64 * ENTRY_OVERHEAD + path_bytes * 2;
        for (sha, size) in blobs {
            if seen.insert(sha) && !self.has_blob(sha) {
                needed += size;
            }
        }
        Ok(Cost {
            needed,
            used: self.used()?,
            cap: self.max_bytes,
        })
    }

    pub(crate) fn check(&self, cost: Cost, over_cap: OverCap) -> Result<(), Error> {
        if cost.exceeds() && over_cap == OverCap::Refuse {
            return Err(Error::CapExceeded {
                needed: cost.needed,
                used: cost.used,
                cap: cost.cap,
            });
        }
        Ok(())
    }

    fn journal_path(&self, session: &SessionId) -> PathBuf {
        self.dir.join("sessions").join(format!("{session}.jsonl"))
    }

    /// Append `entries` to `session`'s journal as one write (after the blobs they name
    /// were written; synced in the background).
    pub(crate) fn append(&self, session: &SessionId, entries: &[Entry]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.journal_path(session);
        let io = |op| {
            let path = path.display().to_string();
            move |source| Error::Io { op, path, source }
        };
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(e).expect("an entry serializes"));
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(io("open the journal"))?;
        file.write_all(text.as_bytes())
            .map_err(io("append to the journal"))?;
        self.syncer.request();
        self.add_used(text.len() as u64);
        Ok(())
    }

    /// Every entry of `session`'s journal in order (none if it has no journal).
    pub fn journal(&self, session: &SessionId) -> Result<Vec<Entry>, Error> {
        let path = self.journal_path(session);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    op: "read the journal",
                    path: path.display().to_string(),
                    source: e,
                });
            }
        };
        let mut entries = Vec::new();
        for (n, line) in text.split_inclusive('\n').enumerate() {
            let Some(line) = line.strip_suffix('\n') else {
                // A last line without its newline is an append cut short by a crash: the
                // change set it began was never applied (entries are written first).
                break;
            };
            if line.is_empty() {
                continue;
            }
            let entry = serde_json::from_str(line).map_err(|e| Error::Corrupt {
                what: format!("{}:{}", path.display(), n + 1),
                reason: e.to_string(),
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The sessions that have a journal, sorted.
    pub fn sessions(&self) -> Result<Vec<SessionId>, Error> {
        let d = self.dir.join("sessions");
        let listing = fs::read_dir(&d).map_err(|e| Error::Io {
            op: "list",
            path: d.display().to_string(),
            source: e,
        })?;
        let mut ids: Vec<SessionId> = listing
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                SessionId::new(name.strip_suffix(".jsonl")?).ok()
            })
            .collect();
        ids.sort();
        Ok(ids)
    }
}

pub(crate) fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
