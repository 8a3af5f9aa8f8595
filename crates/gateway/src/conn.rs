//! The connection loop: HTTP/1.1 over any [`axum::serve::Listener`], with limits that
//! `axum::serve` does not set.
//!
//! Guarantees: at most [`MAX_CONNECTIONS`] connections are served at once (further
//! clients wait in the kernel's backlog); a client that does not finish sending a request
//! head within [`HEADER_TIMEOUT`] — including an idle keep-alive connection — is
//! disconnected, so slow or silent clients cannot pin connections; every request carries
//! its connection's peer address ([`PeerAddr`]); on shutdown, accepting stops and
//! in-flight requests get [`DRAIN_TIMEOUT`] to finish. Upgrades (WebSocket) are
//! allowed through.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::client::PeerAddr;

/// Connections served at once.
pub const MAX_CONNECTIONS: u32 = 1024;
/// Time a client has to send a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight requests get to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run<L>(mut listener: L, app: Router, shutdown: impl Future<Output = ()>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (io, peer) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
            app.clone().oneshot(req)
        });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("gateway: connection from {peer}: {e}");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(MAX_CONNECTIONS)).await;
}
