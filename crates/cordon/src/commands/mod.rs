//! One module per command.

mod approvals_cmd;
mod audit_cmd;
mod changes;
mod chat;
mod config_cmd;
mod demo;
mod deploy;
mod egress_cmd;
mod files_cmd;
mod init;
mod log;
mod mcp_cmd;
mod memory_cmd;
mod pairing_cmd;
mod policy_cmd;
mod remote;
mod run;
mod sandbox_cmd;
mod schedules_cmd;
mod secrets_cmd;
mod serve_cmd;
mod skills_cmd;
mod token_cmd;

use std::process::ExitCode;

use crate::cli::Command;

pub async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { tier, force, model } => {
            init::init(tier.into(), force, model.as_deref()).await
        }
        Command::Run { agent, task } => run::run(&agent, &task.join(" ")).await,
        Command::Chat {
            agent,
            remote: Some(url),
            session,
            ca,
            new: _,
        } => remote::chat(&url, &agent, session.as_deref(), ca.as_deref()).await,
        Command::Chat { agent, new, .. } => chat::chat(&agent, new).await,
        Command::Log {
            command: crate::cli::LogCommand::Export,
        } => log::export().await,
        Command::Log { command } => log::log(command),
        Command::Config { command } => config_cmd::config(command),
        Command::Sandbox { command } => sandbox_cmd::sandbox(command).await,
        Command::Secrets { command } => secrets_cmd::secrets(command),
        Command::Egress { command } => egress_cmd::egress(command).await,
        Command::Approvals { command } => approvals_cmd::approvals(command),
        Command::Memory { command } => memory_cmd::memory(command),
        Command::Files { command } => files_cmd::files(command),
        Command::Pairing { command } => pairing_cmd::pairing(command),
        Command::Policy { command } => policy_cmd::policy(command),
        Command::Schedules { command } => schedules_cmd::schedules(command).await,
        Command::Serve { bind } => serve_cmd::serve(bind).await,
        Command::Token { command } => token_cmd::token(command),
        Command::Skills { command } => skills_cmd::skills(command).await,
        Command::Mcp { command } => mcp_cmd::mcp(command).await,
        Command::Changes { session } => changes::changes(session.as_deref()),
        Command::Undo { session, call } => changes::undo(&session, call.as_deref()),
        Command::Audit {
            json,
            fix,
            deep,
            command,
        } => match command {
            None => audit_cmd::audit(json, fix, deep).await,
            Some(crate::cli::AuditCommand::BlastRadius { agent }) => {
                audit_cmd::blast_radius(agent.as_deref(), json)
            }
        },
        Command::Deploy { target, out, force } => {
            deploy::deploy(target.into(), out.as_deref(), force).await
        }
        Command::Demo { keep } => demo::demo(keep).await,
    }
}
