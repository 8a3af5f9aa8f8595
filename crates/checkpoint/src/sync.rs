//! Durability off the caller's path: after a burst of blob and journal writes, one
//! `syncfs` of the checkpoint directory's filesystem, run by a thread of its own.
//!
//! Why not synchronously: a `syncfs` (or an `fsync` per blob) waits for every dirty page
//! of the filesystem, other programs' too; under a build on the same disk one took 17 ms,
//! 3.5× the command it protected. Written data is visible to every later reader the moment
//! `write` returns, so the journal's write-ahead order (blobs, then the journal line, then
//! the workspace) holds against Cordon being killed at any point without a sync; the sync
//! only narrows what a power loss can take.
//!
//! Guarantees: every write made before [`Syncer::request`] is covered by a `syncfs` that
//! starts after it, within half a second; bursts are coalesced; [`Syncer::now`] syncs on the caller's thread
//! (undo uses it); dropping the syncer runs a last sync when one is due and waits for it.
//!
//! Not guaranteed: durability at the moment a change is applied. A power loss within
//! half a second of a change (plus the time one `syncfs` takes) can lose its journal line
//! or blobs —
//! as it can lose the change itself, which the command wrote without a sync either.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::Error;

#[derive(Default)]
struct Due {
    /// Writes not yet covered by a sync.
    dirty: bool,
    stop: bool,
    /// The last background sync's failure, reported by the next [`Syncer::now`].
    failed: Option<String>,
    /// Background syncs run so far.
    synced: u64,
}

type Shared = Arc<(Mutex<Due>, Condvar)>;

/// How long after the first unsynced write the background sync starts: a burst of
/// changes is covered by one sync, run after it rather than during it.
const DELAY: std::time::Duration = std::time::Duration::from_millis(500);

pub(crate) struct Syncer {
    dir: PathBuf,
    shared: Shared,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn sync_fs(dir: &Path) -> std::io::Result<()> {
    let d = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&d)?;
    Ok(())
}

impl Syncer {
    pub(crate) fn new(dir: &Path) -> Syncer {
        Syncer {
            dir: dir.to_path_buf(),
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// Writes were made: have them synced soon, in the background.
    pub(crate) fn request(&self) {
        let (due, wake) = &*self.shared;
        due.lock().unwrap_or_else(PoisonError::into_inner).dirty = true;
        wake.notify_one();
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            let (shared, dir) = (self.shared.clone(), self.dir.clone());
            // A thread that cannot be started leaves the sync to `now` and the drop.
            *thread = std::thread::Builder::new()
                .name("checkpoint-sync".into())
                .spawn(move || background(&shared, &dir))
                .ok();
        }
    }

    /// Sync now, on this thread (also reporting a background sync that failed).
    pub(crate) fn now(&self) -> Result<(), Error> {
        let (due, _) = &*self.shared;
        let failed = {
            let mut due = due.lock().unwrap_or_else(PoisonError::into_inner);
            due.dirty = false;
            due.failed.take()
        };
        let io = |source| Error::Io {
            op: "sync",
            path: self.dir.display().to_string(),
            source,
        };
        sync_fs(&self.dir).map_err(io)?;
        match failed {
            Some(e) => Err(io(std::io::Error::other(format!(
                "an earlier background sync failed: {e}"
            )))),
            None => Ok(()),
        }
    }
}

fn background(shared: &Shared, dir: &Path) {
    let (due, wake) = &**shared;
    loop {
        let mut d = due.lock().unwrap_or_else(PoisonError::into_inner);
        while !d.dirty && !d.stop {
            d = wake.wait(d).unwrap_or_else(PoisonError::into_inner);
        }
        if !d.dirty {
            return; // stopped, nothing due
        }
        // Let the burst finish: a sync running while the journal applies a change set
        // stalls its writes behind the filesystem's journal commit.
        d = wake
            .wait_timeout_while(d, DELAY, |d| !d.stop)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        d.dirty = false;
        drop(d);
        let result = sync_fs(dir);
        let mut d = due.lock().unwrap_or_else(PoisonError::into_inner);
        d.synced += 1;
        if let Err(e) = result {
            d.failed = Some(e.to_string());
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (due, wake) = &*self.shared;
        due.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match thread {
            Some(t) => {
                let _ = t.join();
            }
            // No thread could be started: the sync it would have run, here.
            None => {
                let dirty = due.lock().unwrap_or_else(PoisonError::into_inner).dirty;
                if dirty {
                    let _ = sync_fs(&self.dir);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_synced_once_in_the_background_and_the_drop_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Syncer::new(dir.path());
        let shared = s.shared.clone();
        s.request();
        s.request();
        assert!(
            s.thread.lock().expect("lock").is_some(),
            "a sync thread runs"
        );
        assert_eq!(
            shared.0.lock().expect("lock").synced,
            0,
            "not during the burst"
        );
        drop(s); // joins: returns only once the due sync ran
        let due = shared.0.lock().expect("lock");
        assert_eq!(
            due.synced, 1,
            "one sync for the burst, before the drop returned"
        );
        assert!(!due.dirty && due.failed.is_none());
    }

    #[test]
    fn a_burst_is_synced_after_the_delay_without_a_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Syncer::new(dir.path());
        s.request();
        std::thread::sleep(DELAY * 3);
        assert_eq!(s.shared.0.lock().expect("lock").synced, 1);
    }

    #[test]
    fn a_failed_background_sync_is_reported_by_the_next_sync_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone");
        let s = Syncer::new(&gone);
        s.request(); // the directory does not exist: the background sync fails
        for _ in 0..200 {
            if s.shared.0.lock().expect("lock").failed.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::create_dir(&gone).expect("mkdir");
        let err = s.now().expect_err("reported");
        assert!(
            err.to_string()
                .contains("an earlier background sync failed"),
            "{err}"
        );
        s.now().expect("reported once, then a sync that works");
    }
}
