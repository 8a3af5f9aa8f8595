use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use audit::event::{CommandExec, CommandExecFailed, SandboxExec};
use runtime::NoHumanApprover;
use sandbox::ExitStatus;
use serde_json::json;

use crate::cli::SandboxCommand;
use crate::setup::{
    agent_config, build_runtime_for_one_command, open_state, open_state_for_one_command,
    sandbox_backend,
};

pub async fn sandbox(command: SandboxCommand) -> Result<ExitCode> {
    match command {
        SandboxCommand::Explain { agent, json } => {
            let state = open_state()?;
            let agent_cfg = agent_config(&state.config, &agent)?;
            let profile = runtime::sandbox_profile(&state.config, &agent_cfg.workspace);
            let backend = sandbox_backend(&state.config)?;
            let explanation = backend.explain(&profile);
            let scope = state.config.sandbox.scope;
            if json {
                let mut value = serde_json::to_value(&explanation)?;
                value["scope"] = serde_json::to_value(scope)?;
                value["agent"] = json!(agent);
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_explanation(&agent, scope, &explanation);
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Exec {
            agent,
            workspace,
            timeout,
            cmd,
        } => {
            let state = open_state_for_one_command()?;
            // The same error as everywhere else (it lists the agents that exist).
            agent_config(&state.config, &agent)?;
            let mut config = (*state.config).clone();
            let agent_cfg = config
                .agents
                .get_mut(&agent)
                .context("the agent disappeared from the config")?;
            if let Some(ws) = workspace {
                agent_cfg.workspace = std::fs::canonicalize(&ws).with_context(|| {
                    format!(
                        "--workspace {}: no such directory; create it first",
                        ws.display()
                    )
                })?;
            }
            let workspace = agent_cfg.workspace.clone();
            let timeout = timeout.unwrap_or(Duration::from_secs(agent_cfg.exec.timeout_secs));
            let runtime = build_runtime_for_one_command(
                &state,
                Arc::new(config),
                &agent,
                Arc::new(NoHumanApprover),
            )?;
            let backend_name = state.config.sandbox.backend;
            // A session of its own, so the egress records name this run.
            let session = format!("sandbox-exec-{}", std::process::id());
            let result = runtime.sandbox_exec(&session, cmd.clone(), timeout).await;
            let record = match &result {
                Ok(out) => SandboxExec::Command(CommandExec {
                    argv: cmd,
                    backend: backend_name,
                    workspace: workspace.display().to_string(),
                    status: out.status.to_string(),
                    duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
                    stdout_bytes: out.stdout.len() as u64,
                    stderr_bytes: out.stderr.len() as u64,
                }),
                Err(e) => SandboxExec::CommandFailed(CommandExecFailed {
                    argv: cmd,
                    backend: backend_name,
                    error: e.clone(),
                }),
            };
            state.audit.record_event(Some(&session), record)?;
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    eprintln!("cordon: {e}");
                    return Ok(ExitCode::from(125));
                }
            };
            let stdout = runtime.redact(&String::from_utf8_lossy(&out.stdout));
            let stderr = runtime.redact(&String::from_utf8_lossy(&out.stderr));
            std::io::stdout().lock().write_all(stdout.as_bytes())?;
            std::io::stderr().lock().write_all(stderr.as_bytes())?;
            if out.stdout_dropped > 0 || out.stderr_dropped > 0 {
                eprintln!(
                    "cordon: output truncated ({} bytes of stdout, {} of stderr dropped)",
                    out.stdout_dropped, out.stderr_dropped
                );
            }
            Ok(match out.status {
                ExitStatus::Exited(c) => ExitCode::from((c & 0xff) as u8),
                ExitStatus::Signaled(s) => ExitCode::from((128 + s).clamp(0, 255) as u8),
                ExitStatus::TimedOut => {
                    eprintln!("cordon: killed at the deadline");
                    ExitCode::from(124)
                }
            })
        }
    }
}

fn print_explanation(agent: &str, scope: config::SandboxScope, e: &sandbox::Explanation) {
    println!("agent `{agent}` · backend {} · scope {scope:?}", e.backend);
    println!("runs as uid {} gid {}", e.uid, e.gid);
    println!("network: {}", e.network);
    println!("\nlayers:");
    for l in &e.layers {
        let mark = if l.active { "on " } else { "OFF" };
        println!("  [{mark}] {:<22} {}", l.layer, l.detail);
    }
    println!("\nvisible paths (nothing else exists inside):");
    for m in &e.mounts {
        let access = match m.access {
            sandbox::Access::ReadOnly => "ro",
            sandbox::Access::ReadWrite => "rw",
        };
        println!("  {access} {:<24} {}", m.path, m.source);
    }
    println!("\nlimits:");
    for (k, v) in &e.limits {
        println!("  {k:<24} {v}");
    }
    if !e.warnings.is_empty() {
        println!("\nwarnings:");
        for w in &e.warnings {
            println!("  ! {w}");
        }
    }
}
