//! The MCP client side: sessions with MCP servers over any byte stream, tool pins and
//! the vetting of what servers say about their tools. Protocol by the official Rust
//! SDK (`rmcp`); the stdio framing is Cordon's own, to turn what a server does wrong
//! into errors that name it (a line that is not JSON-RPC, or too long, is a fault
//! that fails every waiting request with its reason, where rmcp would drop it silently).
//!
//! - [`Session`]: `initialize` (protocol version negotiated, server name and version
//!   recorded), [`Session::list_tools`] (paginated), [`Session::call_tool`] (deadline,
//!   cancellation, progress, notification budget, result cap), and the
//!   `tools/list_changed` counter ([`Session::tools_changed`]).
//! - [`pin`]: the hash of each approved tool (`mcp.lock`) and [`pin::compare`], which
//!   tells approved, new, changed (with the difference) and removed tools apart.
//! - [`vet`]: the skills scanner over each tool's description and schema, and
//!   [`model_facing`], what the model may see of a description.
//!
//! - Feature `http`: [`Session::connect_http`], a streamable-HTTP server through a
//!   caller's HTTP client (so its traffic can go through the egress proxy).
//!
//! This crate starts no process: the caller (the sandbox) starts the server and hands
//! over its stdout and stdin. Policy, redaction and audit are the runtime's.

mod error;
#[cfg(feature = "http")]
mod http;
mod outcome;
pub mod pin;
mod session;
mod transport;
pub mod vet;

pub use error::{Error, ErrorKind};
pub use outcome::{Block, CallOutcome, Cut};
pub use pin::{Comparison, Pins, PinsError, Status, ToolPin, compare};
pub use session::{Limits, ServerInfo, Session, Tool};
pub use vet::{Vetting, model_facing, vet};

/// The HTTP client [`Session::connect_http`] takes (reqwest 0.13, what rmcp is built on).
#[cfg(feature = "http")]
pub use reqwest_mcp as reqwest;
