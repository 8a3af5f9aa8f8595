use std::path::Path;

use crate::{Config, ConfigError};

/// Load and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    load_str(&text, path)
}

/// Validate config text; `path` is used in error messages only.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        message: e.message().to_string(),
    })
}
