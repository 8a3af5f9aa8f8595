//! Errors of starting and administering the gateway (request errors are
//! [`crate::layers::ApiError`]).

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, and a gateway reachable \
         from other machines must use TLS and require a token. Missing: {missing}. Or keep \
         the default bind 127.0.0.1:7777 and reach it through an SSH tunnel \
         (`ssh -L 7777:127.0.0.1:7777 HOST`)"
    )]
    PublicBindRefused { addr: SocketAddr, missing: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gateway TLS: cannot read {what} {}: {reason}; set [gateway] {key} to a PEM file", path.display())]
    TlsFile {
        what: &'static str,
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "gateway TLS: certificate {} and key {} do not form a usable server identity: {reason}",
        cert.display(),
        key.display()
    )]
    TlsIdentity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("gateway: [gateway] {key} = `{value}` is invalid: {reason}")]
    Config {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("token name `{name}` is invalid: use 1-64 printable characters")]
    TokenName { name: String },
    #[error("token lifetime {0}: use 1 minute to 365 days, e.g. `30d`, `12h`, `90m`")]
    TokenTtl(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("cannot generate random bytes: {0}")]
    Random(String),
}
