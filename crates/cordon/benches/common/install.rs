//! A throwaway installation for the benchmarks that run the `cordon` binary
//! (`startup.rs`, `gateway_load.rs`, which include this file with `#[path]`): a config
//! naming the mock model at `base_url`, a workspace, a home, and a state directory the
//! first command creates.

use std::path::PathBuf;
use std::process::Command;

pub struct Install {
    pub dir: tempfile::TempDir,
}

impl Install {
    /// `model_extra`: more `[model]` keys (lines), e.g. `stream = false`.
    pub fn new(base_url: &str, model_extra: &str) -> Install {
        let dir = tempfile::tempdir().expect("temp dir");
        let ws = dir.path().join("workspace");
        std::fs::create_dir_all(&ws).expect("workspace dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home dir");
        let config = format!(
            r#"[model]
provider = "openai"
base_url = "{base_url}"
model = "scripted"
max_retries = 0
{model_extra}

[agents.default]
workspace = "{ws}"
tools = ["read_file", "write_file", "edit_file", "list_dir", "search", "exec", "http_fetch"]

[agents.default.exec]
mode = "ask"
allow = []
timeout_secs = 20

[agents.default.egress]
allow = []
"#,
            ws = ws.display()
        );
        std::fs::write(dir.path().join("cordon.toml"), config).expect("write config");
        Install { dir }
    }

    /// `bin` (a `cordon` binary) with only this installation in its environment.
    pub fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CORDON_CONFIG", self.dir.path().join("cordon.toml"))
            .env("CORDON_STATE_DIR", self.dir.path().join("state"));
        cmd
    }

    #[allow(dead_code, reason = "not every benchmark that includes this uses it")]
    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }
}
