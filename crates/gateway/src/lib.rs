//! Cordon's HTTP gateway: the daemon people use an agent through (`cordon serve`).
//!
//! Guarantees, each enforced here and tested by attacks in `tests/`:
//! - **Binding** ([`bind`]): loopback by default; any other address is refused unless TLS
//!   is configured *and* an unrevoked, unexpired token exists. No option downgrades the
//!   refusal to a warning.
//! - **Auth** ([`token`], [`auth`]): API tokens are 32 random bytes, shown once, stored
//!   as SHA-256 hashes, compared in constant time, scoped (`read < approver < operator <
//!   admin`), expiring and revocable. Browsers exchange a token (POST body, never a URL)
//!   for an `HttpOnly; SameSite=Strict` session cookie (`Secure` under TLS) with idle and
//!   absolute lifetimes; every state-changing cookie request needs the session's CSRF
//!   token in `X-CSRF-Token`, and every state-changing request with a foreign `Origin` is
//!   refused. Logins are rate limited per client address with a lockout that is recorded
//!   as an `alert`.
//! - **Layers** ([`layers`]): every response (errors and 404s included) carries a request
//!   id and strict security headers; errors are JSON `{error, request_id}`; bodies are
//!   size-limited and requests time out; on a loopback bind the `Host` must be a loopback
//!   name (DNS-rebinding defence).
//! - URL query parameters are never read for authentication or for a server address.
//!
//! - **Sessions** ([`hub`]): agents run turns concurrently in the background, one turn
//!   per session at a time; every event is stored, then broadcast, and the WebSocket
//!   stream replays from any `seq` (the upgrade needs credentials and the gateway's own
//!   `Origin`). Events are one typed enum ([`events::SessionEvent`]) that clients parse
//!   with too.
//!
//! - **Remote client** ([`remote`]): what `cordon chat --remote` talks to a gateway with:
//!   the token never in the URL, plain HTTP only to loopback, the gateway's own `Origin`
//!   on the stream, which reopens from the last event without gaps or repeats.
//!
//! Does not: keep browser sessions across a restart (they live in memory).

pub mod api;
pub mod auth;
pub mod bind;
pub mod chat;
mod client;
mod conn;
mod error;
pub mod events;
pub mod hooks;
pub mod hub;
pub mod layers;
mod login_limit;
pub mod messenger;
pub mod remote;
pub mod schedules;
mod server;
mod session;
mod tls;
pub mod token;
mod ui;

pub use bind::{Exposure, check_exposure};
pub use error::GatewayError;
pub use hub::AgentFactory;
pub use server::{Gateway, GatewayOptions};
pub use store::TokenScope;
pub use token::{IssuedToken, TokenSecret};
