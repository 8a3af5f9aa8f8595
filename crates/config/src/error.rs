//! The one error type of config loading.
//!
//! Every problem with the text of a config (syntax, unknown key, wrong type, bad value,
//! failed semantic check) is a [`ConfigError`] whose Display starts with
//! `FILE:LINE:COLUMN:` so editors and terminals can jump to it.

use std::path::PathBuf;

/// A config that cannot be used. Display names the file, line, column and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error(
        "cannot read config {path}: {source} (create it with `cordon init`, or set CORDON_CONFIG)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{path}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid TOML, but a key is unknown, has the wrong type or an invalid value.
    #[error("{path}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, if it points into the file.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { line, .. } | ConfigError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The dotted key path (`agents.default.tools[2]`) of an [`ConfigError::Invalid`].
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
