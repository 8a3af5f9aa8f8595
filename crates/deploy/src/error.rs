//! The one error type of `cordon deploy`.

use std::path::PathBuf;

/// Why no deployment files were produced (or, for `--out`, why writing stopped). Each
/// message names the config key, path or flag it is about and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The config asks for something a deployment cannot carry.
    #[error("{0}")]
    Config(String),
    /// The gateway's `[egress]` settings do not load the way the proxy loads them.
    #[error(transparent)]
    Egress(#[from] egress::EgressError),
    /// A file the config names cannot be read.
    #[error("{key} = {}: cannot read: {source}", path.display())]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `--out`: the directory cannot be used, or files would be overwritten.
    #[error("{0}")]
    Out(String),
    /// `--out`: a file or the directory could not be written.
    #[error("{what}: {source}")]
    Write {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Replace(#[from] config::AtomicWriteError),
    /// The files could not be printed.
    #[error("cannot print the deployment files: {0}")]
    Print(std::io::Error),
    /// A generated file does not pass its own check: a bug in `cordon deploy`.
    #[error("{0}")]
    Internal(String),
}
