//! The stderr of a long-running process, kept as its last N bytes.
//!
//! Guarantees: one thread per process reads the pipe until end-of-file, so the process
//! never blocks writing stderr; at most `limit` bytes are held (a ring: the oldest bytes
//! go first) plus one fixed read buffer, whatever the process writes; what was kept stays
//! readable after the process ended. The thread ends at end-of-file (when the process
//! and everything holding the pipe are gone) and is never joined, so dropping the tail
//! does not wait for that.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

/// Size of the one read buffer of the reading thread.
const CHUNK: usize = 16 * 1024;

#[derive(Default)]
struct Kept {
    bytes: VecDeque<u8>,
    dropped: u64,
}

/// The last bytes of a stream, filled by a background thread.
pub(crate) struct StderrTail {
    kept: Arc<Mutex<Kept>>,
}

impl StderrTail {
    /// Start reading `fd` (the read end of the stderr pipe), keeping the last `limit` bytes.
    pub(crate) fn start(fd: OwnedFd, limit: usize) -> std::io::Result<StderrTail> {
        let kept = Arc::new(Mutex::new(Kept::default()));
        let shared = Arc::clone(&kept);
        std::thread::Builder::new()
            .name("cordon-sandbox-stderr".into())
            .spawn(move || read_all(std::fs::File::from(fd), &shared, limit))?;
        Ok(StderrTail { kept })
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves consistent data (plain pushes and pops).
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes kept so far, oldest first.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.lock().bytes.iter().copied().collect()
    }

    /// Bytes dropped from the front so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

fn read_all(mut pipe: std::fs::File, kept: &Mutex<Kept>, limit: usize) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let chunk = buf.get(..n).unwrap_or(&[]);
        let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
        // Only the chunk's tail can survive; then make room for it.
        let skip = chunk.len().saturating_sub(limit);
        let tail = chunk.get(skip..).unwrap_or(&[]);
        let over = (k.bytes.len() + tail.len()).saturating_sub(limit);
        k.bytes.drain(..over);
        k.bytes.extend(tail);
        k.dropped += (skip + over) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn filled(limit: usize, writes: &[&[u8]]) -> StderrTail {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let tail = StderrTail::start(r, limit).unwrap();
        let mut w = std::fs::File::from(w);
        for chunk in writes {
            w.write_all(chunk).unwrap();
        }
        drop(w);
        // The thread ends at EOF; wait for it to have read everything.
        let total: usize = writes.iter().map(|c| c.len()).sum();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tail.bytes().len() as u64 + tail.dropped() < total as u64 {
            assert!(std::time::Instant::now() < deadline, "the reader stalled");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        tail
    }

    #[test]
    fn keeps_everything_below_the_limit() {
        let t = filled(100, &[b"hello ", b"world"]);
        assert_eq!(t.bytes(), b"hello world");
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn keeps_only_the_last_bytes() {
        let big = vec![b'x'; 3 * CHUNK + 5];
        let t = filled(10, &[b"first", &big, b"0123456789AB"]);
        assert_eq!(t.bytes(), b"23456789AB");
        assert_eq!(t.dropped(), (5 + big.len() + 12 - 10) as u64);
        let t = filled(0, &[b"abc"]);
        assert!(t.bytes().is_empty());
        assert_eq!(t.dropped(), 3);
    }
}
