//! Errors of setting up the proxy. Per-request refusals are not errors: they are
//! [`crate::Verdict`]s and HTTP responses.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error(
        "egress CA at {path}: {action} failed: {source}; check the state directory's permissions"
    )]
    CaIo {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error(
        "egress CA at {dir}: found only one of ca.pem / ca-key.pem; remove the other to create a new CA (clients must then trust the new ca.pem)"
    )]
    CaIncomplete { dir: PathBuf },
    #[error("egress CA at {path}: {reason}; remove ca.pem and ca-key.pem to create a new CA")]
    CaInvalid { path: PathBuf, reason: String },
    #[error("egress CA: could not issue a certificate for `{host}`: {reason}")]
    Issue { host: String, reason: String },
    #[error("egress TLS configuration: {0}")]
    Tls(String),
    #[error("egress proxy config: {0}")]
    Config(String),
    #[error("egress listener: {action} failed: {source}")]
    Listener {
        action: &'static str,
        source: std::io::Error,
    },
}
