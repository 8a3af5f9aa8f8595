//! Files Cordon writes beside the config for people to commit (`skills.lock`,
//! `mcp.lock`): TOML under a header, read with errors that name the line, written
//! atomically. The owners (the skills and mcp crates) define their shapes and checks.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a generated file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GeneratedError {
    /// Its text is not what it should be; `line` is 1-based.
    #[error("{path}: line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The text of a generated file, read once.
pub struct GeneratedFile {
    path: PathBuf,
    text: String,
}

impl GeneratedFile {
    /// Read `path`; `None` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<GeneratedFile>, GeneratedError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(GeneratedFile {
                path: path.to_path_buf(),
                text,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(GeneratedError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parse the text as `T`; a TOML or shape error names its line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, GeneratedError> {
        toml::from_str(&self.text).map_err(|e| {
            let line = e.span().map_or(1, |s| self.line_of(s));
            self.invalid(line, e.message())
        })
    }

    /// The 1-based line where `span` (a byte range of the text) starts.
    pub fn line_of(&self, span: Range<usize>) -> usize {
        1 + self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
    }

    /// An error at `line`.
    pub fn invalid(&self, line: usize, message: impl Into<String>) -> GeneratedError {
        GeneratedError::Invalid {
            path: self.path.clone(),
            line,
            message: message.into(),
        }
    }

    /// Write `value` as TOML under `header` to `path`, atomically, mode 0644.
    pub fn write(path: &Path, header: &str, value: &impl Serialize) -> Result<(), GeneratedError> {
        let body = toml::to_string(value).map_err(|e| GeneratedError::Invalid {
            path: path.to_path_buf(),
            line: 1,
            message: format!("cannot be written: {e}"),
        })?;
        let text = format!("{header}{body}");
        crate::atomic_write(path, text.as_bytes(), 0o644).map_err(|e| GeneratedError::Io {
            path: e.path.clone(),
            source: std::io::Error::new(e.source.kind(), format!("{}: {}", e.step, e.source)),
        })
    }
}
