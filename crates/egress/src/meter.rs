//! Byte accounting on a client connection: every byte in either direction, whatever
//! protocol runs over it (plain HTTP, an opaque tunnel, terminated TLS), is counted
//! against the policy's total; past the limit, reads and writes fail and the
//! connection closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::policy::Usage;

/// Per-connection counters, readable while the connection runs.
#[derive(Debug, Default)]
pub(crate) struct ConnBytes {
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
    pub(crate) limit_hit: AtomicBool,
}

pub(crate) struct Metered<S> {
    inner: S,
    usage: Arc<Usage>,
    conn: Arc<ConnBytes>,
    max_bytes: u64,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S, usage: Arc<Usage>, conn: Arc<ConnBytes>, max: u64) -> Self {
        Metered {
            inner,
            usage,
            conn,
            max_bytes: max,
        }
    }

    /// The wrapped stream and its accounting, to continue counting elsewhere.
    pub(crate) fn into_parts(self) -> (S, Arc<Usage>, Arc<ConnBytes>, u64) {
        (self.inner, self.usage, self.conn, self.max_bytes)
    }

    /// Count `n` bytes; false when the policy's total is now over its limit.
    fn charge(&self, n: usize) -> bool {
        let n = n as u64;
        let total = self.usage.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_bytes {
            self.conn.limit_hit.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Bytes that may still be written; `None` (and the limit marked as hit) when the
    /// policy's total is spent.
    fn allowance(&self) -> Option<usize> {
        let left = self
            .max_bytes
            .saturating_sub(self.usage.bytes.load(Ordering::Relaxed));
        if left == 0 {
            self.conn.limit_hit.store(true, Ordering::Relaxed);
            return None;
        }
        Some(usize::try_from(left).unwrap_or(usize::MAX))
    }

    fn over(&self) -> bool {
        self.usage.bytes.load(Ordering::Relaxed) > self.max_bytes
    }
}

fn limit_error(max: u64) -> io::Error {
    io::Error::other(format!(
        "egress byte limit of {max} bytes for this sandbox reached"
    ))
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.over() {
            self.conn.limit_hit.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(limit_error(self.max_bytes)));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let n = buf.filled().len() - before;
            self.conn.up.fetch_add(n as u64, Ordering::Relaxed);
            if !self.charge(n) {
                return Poll::Ready(Err(limit_error(self.max_bytes)));
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Never write more than the remaining allowance.
        let Some(left) = self.allowance() else {
            return Poll::Ready(Err(limit_error(self.max_bytes)));
        };
        let cap = data.len().min(left);
        let res = Pin::new(&mut self.inner).poll_write(cx, &data[..cap]);
        if let Poll::Ready(Ok(n)) = res {
            self.conn.down.fetch_add(n as u64, Ordering::Relaxed);
            self.charge(n);
        }
        res
    }

    /// Vectored too, so hyper queues body chunks as they are instead of first copying
    /// them into one buffer (its "flatten" strategy for non-vectored streams).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(left) = self.allowance() else {
            return Poll::Ready(Err(limit_error(self.max_bytes)));
        };
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let res = if total <= left {
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        } else {
            // Over the allowance: fall back to one capped plain write.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            let cap = first.len().min(left);
            Pin::new(&mut self.inner).poll_write(cx, &first[..cap])
        };
        if let Poll::Ready(Ok(n)) = res {
            self.conn.down.fetch_add(n as u64, Ordering::Relaxed);
            self.charge(n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn writes_stop_exactly_at_the_byte_limit() {
        let usage = Arc::new(Usage::default());
        let conn = Arc::new(ConnBytes::default());
        let mut m = Metered::new(Vec::new(), usage.clone(), conn.clone(), 10);
        let (a, b) = ([1u8; 6], [2u8; 6]);
        let n = m
            .write_vectored(&[IoSlice::new(&a), IoSlice::new(&b)])
            .await
            .unwrap();
        assert_eq!(n, 6, "12 bytes do not fit in 10: only the first slice goes");
        let n = m.write_vectored(&[IoSlice::new(&b)]).await.unwrap();
        assert_eq!(n, 4, "capped at what is left");
        assert!(m.write_vectored(&[IoSlice::new(&b)]).await.is_err());
        assert!(m.write(&b).await.is_err());
        assert!(conn.limit_hit.load(Ordering::Relaxed));
        let (sent, ..) = m.into_parts();
        assert_eq!(sent, [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(usage.bytes.load(Ordering::Relaxed), 10);
        assert_eq!(conn.down.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn vectored_writes_within_the_allowance_go_whole() {
        let usage = Arc::new(Usage::default());
        let conn = Arc::new(ConnBytes::default());
        let mut m = Metered::new(Vec::new(), usage.clone(), conn, 1 << 20);
        let (a, b) = ([1u8; 6], [2u8; 6]);
        assert!(m.is_write_vectored());
        let n = m
            .write_vectored(&[IoSlice::new(&a), IoSlice::new(&b)])
            .await
            .unwrap();
        assert_eq!(n, 12);
        assert_eq!(usage.bytes.load(Ordering::Relaxed), 12);
    }
}
