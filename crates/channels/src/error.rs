//! What goes wrong talking to a chat platform.

/// An error from a chat platform or from reaching it.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The platform could not be reached (connection refused, timeout, TLS).
    #[error("{platform}: cannot reach {url}: {detail}")]
    Unreachable {
        platform: &'static str,
        url: String,
        detail: String,
    },
    /// The platform answered with an error (HTTP status or its own `ok: false`).
    #[error("{platform}: {method} failed: {detail}")]
    Api {
        platform: &'static str,
        method: String,
        detail: String,
        /// Seconds the platform asked to wait (HTTP 429 `Retry-After`, Telegram
        /// `parameters.retry_after`), if it said.
        retry_after: Option<u64>,
    },
    /// The credentials were refused: backing off will not help.
    #[error("{platform}: the token was refused ({detail}); check the vault secret")]
    Unauthorized {
        platform: &'static str,
        detail: String,
    },
    /// The platform's answer could not be read.
    #[error("{platform}: unreadable answer to {method}: {detail}")]
    Protocol {
        platform: &'static str,
        method: String,
        detail: String,
    },
    /// A connection a platform's answer asked for (a socket URL, a file URL) goes to
    /// another host, a non-public address or over a weaker scheme: refused, nothing dialled.
    #[error("{platform}: {what} not connected to: {reason}")]
    Refused {
        platform: &'static str,
        /// What was asked for, without secrets (`socket URL ws://host/path`).
        what: String,
        reason: String,
    },
    /// A file was larger than allowed.
    #[error("{platform}: the file is larger than {cap} bytes; not kept")]
    TooLarge { platform: &'static str, cap: u64 },
}

impl ChannelError {
    /// Seconds the platform asked to wait before the next call, if it said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ChannelError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
