//! One error type for everything a server can do wrong, always naming the server and,
//! when there was one, the tool.

use std::time::Duration;

/// What went wrong with a server, and which server and tool.
#[derive(Debug, thiserror::Error)]
#[error("MCP server `{server}`{}: {kind}", tool_part(.tool))]
pub struct Error {
    /// The server's name (as the caller named it in [`crate::Session::connect`]).
    pub server: String,
    /// The tool being listed or called, if any.
    pub tool: Option<String>,
    pub kind: ErrorKind,
}

fn tool_part(tool: &Option<String>) -> String {
    tool.as_ref()
        .map(|t| format!(", tool `{t}`"))
        .unwrap_or_default()
}

impl Error {
    pub(crate) fn new(server: &str, tool: Option<&str>, kind: ErrorKind) -> Error {
        Error {
            server: server.to_string(),
            tool: tool.map(str::to_string),
            kind,
        }
    }
}

/// The ways a server fails. Those marked *fatal* close the session: the server broke
/// the protocol or went away, so nothing it sends later can be matched to a request;
/// start it again.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// Fatal. The server's output ended before it answered `initialize` (it exited,
    /// crashed, or is not an MCP server).
    #[error(
        "it exited or closed its output before it finished initializing ({detail}); \
         check its command and its standard error"
    )]
    ExitedDuringInit { detail: String },
    /// Fatal. No answer to `initialize` in time.
    #[error("it did not finish initializing within {0:?}")]
    InitTimeout(Duration),
    /// Fatal. `initialize` failed otherwise (an error response, a wrong answer).
    #[error("initializing failed: {0}")]
    Init(String),
    /// Fatal. The server chose a protocol version this client does not speak.
    #[error("it answered with protocol version `{version}`; this client speaks {supported}")]
    UnsupportedProtocol { version: String, supported: String },
    /// Fatal. A line on the server's output is not JSON, or not a JSON-RPC message.
    #[error("it sent malformed JSON-RPC ({detail}): `{excerpt}`; the session is closed")]
    Malformed { detail: String, excerpt: String },
    /// Fatal. One message longer than [`crate::Limits::max_message_bytes`].
    #[error(
        "it sent a message longer than {limit} bytes (the limit, `max_message_bytes`); \
         the session is closed"
    )]
    MessageTooLarge { limit: usize },
    /// Fatal. The server's output ended (it exited or crashed) while a request waited.
    #[error("the server closed the connection (it exited or crashed){}", detail_part(.0))]
    Closed(Option<String>),
    /// No result within the call's timeout; `notifications/cancelled` was sent.
    #[error("no result within {0:?}; the call was cancelled")]
    Timeout(Duration),
    /// More notifications during one call than [`crate::Limits::max_notifications_per_call`];
    /// the call was cancelled.
    #[error(
        "it sent more than {limit} notifications during one call (the limit, \
         `max_notifications_per_call`); the call was cancelled"
    )]
    NotificationFlood { limit: u32 },
    /// The tool is not among those the server listed.
    #[error("the server has no such tool (it lists: {listed})")]
    UnknownTool { listed: String },
    /// The call's arguments are not a JSON object.
    #[error("the arguments must be a JSON object, not {0}")]
    BadArguments(&'static str),
    /// The server answered with a JSON-RPC error.
    #[error("the server answered with JSON-RPC error {code}: {message}")]
    Rpc { code: i32, message: String },
    /// The server answered with something that is not what was asked for.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The listing has more pages or tools than allowed.
    #[error("its tool listing is longer than {0} (pages or tools); refusing the rest")]
    ListTooLong(usize),
}

fn detail_part(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl ErrorKind {
    /// Whether the session is unusable after this error (start the server again).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ErrorKind::ExitedDuringInit { .. }
                | ErrorKind::InitTimeout(_)
                | ErrorKind::Init(_)
                | ErrorKind::UnsupportedProtocol { .. }
                | ErrorKind::Malformed { .. }
                | ErrorKind::MessageTooLarge { .. }
                | ErrorKind::Closed(_)
        )
    }
}
