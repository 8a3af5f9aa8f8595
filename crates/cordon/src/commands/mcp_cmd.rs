//! `cordon mcp list|tools|approve|test`: MCP servers from the command line.
//!
//! Guarantees: a server is only ever started through the runtime (its sandbox, its
//! egress, its placeholders); approving pins exactly the descriptions and schemas shown,
//! refuses tools whose descriptions carry high or critical scanner findings, and writes
//! `mcp.lock` atomically.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use config::Paths;

use crate::cli::McpCommand;
use crate::setup::{build_runtime, open_state, open_vault};

pub async fn mcp(command: McpCommand) -> Result<ExitCode> {
    match command {
        McpCommand::List => list(),
        McpCommand::Tools { name, agent } => tools(&name, &agent).await,
        McpCommand::Approve { name, tools, agent } => approve(&name, &tools, &agent).await,
        McpCommand::Test { name, agent } => test(&name, &agent).await,
    }
}

fn list() -> Result<ExitCode> {
    let state = open_state()?;
    let pins = mcp::Pins::load(&mcp::Pins::path_for(&Paths::from_env().config_file))?;
    if state.config.mcp.servers.is_empty() {
        eprintln!("no MCP servers configured ([mcp.servers.NAME])");
    }
    for (name, s) in &state.config.mcp.servers {
        let how = match (&s.command, &s.url) {
            (Some(c), _) => format!("stdio: {c} {}", s.args.join(" ")),
            (None, Some(u)) => format!("http: {u}"),
            (None, None) => "-".into(),
        };
        let egress: Vec<String> = s.egress.iter().map(ToString::to_string).collect();
        println!(
            "{name}\n  {how}\n  egress {}; trust {:?}; workspace {:?}; approved tools {}",
            if egress.is_empty() {
                "none".to_string()
            } else {
                egress.join(", ")
            },
            s.trust,
            s.workspace,
            pins.server(name).len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Start `name` through agent `agent`'s runtime and list its tools.
async fn listed(name: &str, agent: &str) -> Result<(mcp::ServerInfo, Vec<mcp::Tool>)> {
    let state = open_state()?;
    let runtime = build_runtime(
        &state,
        state.config.clone(),
        agent,
        Arc::new(runtime::NoHumanApprover),
    )?;
    let vault = open_vault(&state)?;
    let options = crate::setup::mcp_options(&state.config, &vault)?;
    let secrets = options.secrets.get(name).cloned().unwrap_or_default();
    runtime
        .mcp_list_tools(name, secrets)
        .await
        .map_err(anyhow::Error::msg)
}

async fn tools(name: &str, agent: &str) -> Result<ExitCode> {
    let (info, tools) = listed(name, agent).await?;
    let pins = mcp::Pins::load(&mcp::Pins::path_for(&Paths::from_env().config_file))?;
    let vetted = mcp::vet(name, &tools, &skills::Capabilities::default());
    println!(
        "{name}: {} {} (protocol {})",
        info.name, info.version, info.protocol_version
    );
    for c in mcp::compare(&tools, pins.server(name)) {
        let status = match &c.status {
            mcp::Status::Approved => "approved".to_string(),
            mcp::Status::New => "not approved".to_string(),
            mcp::Status::Changed { diff, .. } => format!("CHANGED since approval:\n{diff}"),
            mcp::Status::Removed => "removed by the server".to_string(),
        };
        println!("\n{name}__{}  [{status}]", c.name);
        if let Some(t) = tools.iter().find(|t| t.name == c.name) {
            println!("  {}", mcp::model_facing(&t.description));
            println!("  schema {}", guard::canonical_json(&t.input_schema));
        }
        if let Some(v) = vetted.iter().find(|v| v.tool == c.name) {
            for f in &v.report.findings {
                println!(
                    "  {} {} {}: {}",
                    f.severity.as_str(),
                    f.id,
                    f.evidence,
                    f.why
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn approve(name: &str, wanted: &[String], agent: &str) -> Result<ExitCode> {
    let (_, tools) = listed(name, agent).await?;
    let path = mcp::Pins::path_for(&Paths::from_env().config_file);
    let mut pins = mcp::Pins::load(&path)?;
    let vetted = mcp::vet(name, &tools, &skills::Capabilities::default());
    for w in wanted {
        if !tools.iter().any(|t| &t.name == w) {
            bail!("MCP server `{name}` has no tool `{w}`");
        }
    }
    let state = open_state()?;
    let mut approved = Vec::new();
    let mut refused = Vec::new();
    for t in &tools {
        if !wanted.is_empty() && !wanted.contains(&t.name) {
            continue;
        }
        let worst = vetted
            .iter()
            .find(|v| v.tool == t.name)
            .and_then(|v| v.report.worst());
        if worst.is_some_and(|s| s >= skills::Severity::High) {
            eprintln!(
                "not approved: {name}__{} (its description has {} findings; see `cordon mcp tools {name}`)",
                t.name,
                worst.map_or("", skills::Severity::as_str)
            );
            refused.push(t.name.clone());
            continue;
        }
        pins.approve(name, t);
        approved.push(t.name.clone());
    }
    pins.save(&path)?;
    state.audit.record_event(
        None,
        audit::event::McpApproval {
            server: name.to_string(),
            tools: pins
                .server(name)
                .iter()
                .filter(|p| approved.contains(&p.name))
                .map(|p| audit::event::McpPinned {
                    tool: p.name.clone(),
                    sha256: p.sha256.clone(),
                })
                .collect(),
            refused,
            by: "cli".into(),
        },
    )?;
    eprintln!(
        "approved {} tool(s) of `{name}`: {}",
        approved.len(),
        approved.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

async fn test(name: &str, agent: &str) -> Result<ExitCode> {
    let (info, tools) = listed(name, agent).await?;
    println!(
        "{name}: {} {} answered; {} tool(s): {}",
        info.name,
        info.version,
        tools.len(),
        tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
