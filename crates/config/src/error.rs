use std::path::PathBuf;

/// A config that cannot be used. Display names the file, line, column and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: `{key}`: {message}")]
    Invalid { path: PathBuf, line: usize, column: usize, key: String, message: String },
}
