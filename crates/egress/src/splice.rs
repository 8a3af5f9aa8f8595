//! Zero-copy relay for opaque tunnels between two TCP sockets (Linux `splice(2)`
//! through a pipe), so a CONNECT tunnel costs no user-space copies.
//!
//! Guarantees the same accounting as [`crate::meter::Metered`]: every byte relayed is
//! charged to the policy, and a transfer never goes past the byte limit (the tunnel
//! is closed when the allowance is spent).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::meter::ConnBytes;
use crate::policy::Usage;

const CHUNK: usize = 1 << 20;

/// The policy's allowance, shared by both directions.
pub(crate) struct Budget {
    pub(crate) usage: Arc<Usage>,
    pub(crate) conn: Arc<ConnBytes>,
    pub(crate) max_bytes: u64,
}

impl Budget {
    /// Take up to `CHUNK` bytes of what is left, atomically, so that concurrent
    /// directions and tunnels of one policy cannot each spend the same remainder.
    /// 0 when the budget is spent.
    fn reserve(&self) -> usize {
        let mut used = self.usage.bytes.load(Ordering::Relaxed);
        loop {
            let left = self.max_bytes.saturating_sub(used).min(CHUNK as u64);
            if left == 0 {
                return 0;
            }
            match self.usage.bytes.compare_exchange_weak(
                used,
                used + left,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                // `left` <= CHUNK, so it fits a usize.
                Ok(_) => return left as usize,
                Err(now) => used = now,
            }
        }
    }

    fn spent(&self) -> bool {
        self.usage.bytes.load(Ordering::Relaxed) >= self.max_bytes
    }

    /// Give back the part of a reservation that did not move.
    fn refund(&self, n: usize) {
        self.usage.bytes.fetch_sub(n as u64, Ordering::Relaxed);
    }
}

/// Relay both ways until both sides are done (or the budget is spent).
pub(crate) async fn relay(client: &TcpStream, upstream: &TcpStream, budget: &Budget) {
    let up = one_way(client, upstream, budget, &budget.conn.up);
    let down = one_way(upstream, client, budget, &budget.conn.down);
    let _ = tokio::join!(up, down);
}

async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    budget: &Budget,
    counter: &AtomicU64,
) -> io::Result<()> {
    let (pipe_r, pipe_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // A bigger pipe moves more per syscall; the default (64 KiB) still works.
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe_w, CHUNK);
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let result = async {
        loop {
            // The pipe is empty here: fill it from the source socket. The allowance is
            // reserved only around the (non-blocking) splice, so an idle direction holds
            // none of the budget.
            let n = loop {
                if budget.spent() {
                    budget.conn.limit_hit.store(true, Ordering::Relaxed);
                    return Err(io::Error::other("egress byte limit reached"));
                }
                from.readable().await?;
                let allowance = budget.reserve();
                if allowance == 0 {
                    budget.conn.limit_hit.store(true, Ordering::Relaxed);
                    return Err(io::Error::other("egress byte limit reached"));
                }
                let res = from.try_io(Interest::READABLE, || {
                    rustix::pipe::splice(from, None, &pipe_w, None, allowance, flags)
                        .map_err(io::Error::from)
                });
                budget.refund(allowance - res.as_ref().map_or(0, |n| *n));
                match res {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                return Ok(());
            }
            counter.fetch_add(n as u64, Ordering::Relaxed);
            let mut left = n;
            while left > 0 {
                to.writable().await?;
                match to.try_io(Interest::WRITABLE, || {
                    rustix::pipe::splice(&pipe_r, None, to, None, left, flags)
                        .map_err(io::Error::from)
                }) {
                    Ok(m) => left -= m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    .await;
    // Pass the end (or the failure) on so the other side sees it.
    let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
    if result.is_err() {
        let _ = rustix::net::shutdown(from, rustix::net::Shutdown::Read);
    }
    result
}
