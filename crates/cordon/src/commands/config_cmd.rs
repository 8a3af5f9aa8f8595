use std::process::ExitCode;

use anyhow::Result;
use config::Paths;

use crate::cli::ConfigCommand;
use crate::setup::load_config;

pub fn config(command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Check { file } => {
            let mut paths = Paths::from_env();
            if let Some(file) = file {
                paths.config_file = file;
            }
            let cfg = load_config(&paths)?;
            // The policies too: compiled settings, built-in rules and `[policy] files`.
            for name in cfg.agents.keys() {
                crate::setup::load_policy_from(&paths, &cfg, name)?;
            }
            println!("{}: ok (tier {:?})", paths.config_file.display(), cfg.tier);
            for (name, agent) in &cfg.agents {
                let tools: Vec<&str> = agent.tools.iter().map(|t| t.as_str()).collect();
                println!(
                    "  agent `{name}`: workspace {}, exec {:?}, egress [{}], tools [{}]",
                    agent.workspace.display(),
                    agent.exec.mode,
                    agent
                        .egress
                        .allow
                        .iter()
                        .map(|h| h.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    tools.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&config::json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
