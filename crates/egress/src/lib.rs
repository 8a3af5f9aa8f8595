//! The egress proxy: the one way out of a sandbox.
//!
//! A sandbox's network namespace has only loopback; its `HTTP(S)_PROXY` points to a
//! listener whose accepted connections [`Proxy::serve`] handles under that sandbox's
//! [`EgressPolicy`]. The listener identifies the sandbox: nothing in a request can
//! choose another policy.
//!
//! What it guarantees, per request or `CONNECT`:
//! - deny by default: only `host:port` matching the allowlist ([`config::HostPattern`]);
//!   IP literals only inside the operator's `allow_ranges`;
//! - one resolution, every address vetted by the SSRF guard ([`address::refusal`]),
//!   then exactly those addresses dialled (no rebinding window);
//! - credentials: placeholders replaced by real values only for their bound hosts
//!   (HTTPS to such hosts is terminated with a leaf from the per-install
//!   [`CertificateAuthority`] and re-encrypted with verified TLS); a placeholder sent
//!   anywhere else, or a real value seen in outbound traffic, is blocked with an
//!   `Alert`;
//! - limits on concurrent connections and total bytes per policy;
//! - an `Egress` audit record for every decision and connection (credential names,
//!   never values).
//!
//! What it does not: look inside opaque tunnels (HTTPS to hosts without credentials),
//! follow redirects (each hop is the client's new request, decided anew), or scan
//! responses.

pub mod address;
mod ca;
mod decision;
mod error;
mod forward;
mod meter;
mod policy;
mod proxy;
mod resolve;
mod splice;

pub use ca::CertificateAuthority;
pub use decision::Verdict;
pub use error::EgressError;
pub use policy::{BoundCredential, ConnectGate, CredentialSource, EgressPolicy};
pub use proxy::{Proxy, ProxyConfig, ServeHandle};
pub use resolve::{Lookup, Resolve, SystemResolver};
