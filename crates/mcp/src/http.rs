//! Streamable-HTTP servers (feature `http`): rmcp's HTTP client transport, its HTTP
//! sent through a [`reqwest::Client`] the caller builds — so Cordon can route it
//! through the egress proxy (allowlist, SSRF guard, credential injection) — with the
//! same watch over unasked messages as stdio, and responses and SSE events bounded by
//! [`Limits::max_message_bytes`].
//!
//! The client is reqwest 0.13 (what rmcp is built on), re-exported as
//! [`crate::reqwest`]; it has no TLS crypto provider of its own: install one for the
//! process (rustls' `ring` provider, as the rest of Cordon uses) before building it.

use std::sync::Arc;

use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};

use crate::error::Error;
use crate::session::{Limits, Session};
use crate::transport::Watch;

/// Any transport, its received messages passed through the watch.
struct Watched<T> {
    inner: T,
    watch: Arc<Watch>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Watched<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            let msg = self.inner.receive().await?;
            if self.watch.admit(&msg) {
                return Some(msg);
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await
    }
}

impl Session {
    /// Initialize a session with the streamable-HTTP server at `url`, every request
    /// sent with `client`. Otherwise as [`Session::connect`].
    pub async fn connect_http(
        server: &str,
        url: &str,
        client: reqwest_mcp::Client,
        limits: Limits,
    ) -> Result<Session, Error> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url);
        config.max_sse_event_size = limits.max_message_bytes;
        config.max_json_response_size = limits.max_message_bytes;
        let watch = Watch::new(limits.max_notifications_per_call);
        let transport = Watched {
            inner: StreamableHttpClientTransport::with_client(client, config),
            watch: watch.clone(),
        };
        Session::connect_over(server, transport, watch, limits).await
    }
}
