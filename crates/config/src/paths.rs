//! Where Cordon keeps its files. `CORDON_CONFIG` and `CORDON_STATE_DIR` relocate
//! everything, so several instances (and every test) can run side by side.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    /// The config file (`$CORDON_CONFIG`, else `~/.config/cordon/cordon.toml`).
    pub config_file: PathBuf,
    /// The state directory, mode 0700 (`$CORDON_STATE_DIR`, else `~/.local/state/cordon`).
    pub state_dir: PathBuf,
}

impl Paths {
    /// Resolve from the environment.
    pub fn from_env() -> Paths {
        let home = home_dir();
        let config_file = match std::env::var_os("CORDON_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => std::env::var_os("XDG_CONFIG_HOME")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".config"))
                .join("cordon/cordon.toml"),
        };
        let state_dir = match std::env::var_os("CORDON_STATE_DIR") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => std::env::var_os("XDG_STATE_HOME")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".local/state"))
                .join("cordon"),
        };
        Paths {
            config_file,
            state_dir,
        }
    }

    pub fn db_file(&self) -> PathBuf {
        self.state_dir.join("cordon.db")
    }
    pub fn audit_dir(&self) -> PathBuf {
        self.state_dir.join("audit")
    }
}

/// `$HOME`, or `/` when unset (never the current directory).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Expand a leading `~` or `~/` to `$HOME`.
pub fn expand_tilde(p: &Path) -> PathBuf {
    match p.to_str() {
        Some("~") => home_dir(),
        Some(s) if s.starts_with("~/") => home_dir().join(&s[2..]),
        _ => p.to_path_buf(),
    }
}
