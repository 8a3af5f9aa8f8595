//! `cordon schedules list|run`: the configured schedules and the heartbeat, when each runs
//! next, and running one now through the same code `cordon serve` runs them with.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use config::schedule::CronSchedule;
use serde_json::json;

use crate::cli::SchedulesCommand;
use crate::commands::serve_cmd::{Agents, chat_channels};
use crate::setup::open_state;

pub async fn schedules(command: SchedulesCommand) -> Result<ExitCode> {
    match command {
        SchedulesCommand::List { json } => list(json),
        SchedulesCommand::Run { name } => run(&name).await,
    }
}

fn list(as_json: bool) -> Result<ExitCode> {
    let state = open_state()?;
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for s in &state.config.schedules {
        let cron = CronSchedule::new(&s.cron, &s.timezone).map_err(anyhow::Error::msg)?;
        let next = cron.next_after(now);
        rows.push(json!({
            "name": s.name,
            "when": format!("{} ({})", s.cron, s.timezone),
            "agent": s.agent,
            "reply_to": s.reply_to,
            "next_local": next.map(|n| n.with_timezone(cron.zone()).format("%Y-%m-%d %H:%M %Z").to_string()),
            "next_utc": next.map(|n| n.to_rfc3339()),
        }));
    }
    if let Some(h) = &state.config.heartbeat {
        let next = now + chrono::Duration::minutes(i64::try_from(h.every_mins).unwrap_or(30));
        rows.push(json!({
            "name": "heartbeat",
            "when": format!("every {} min", h.every_mins),
            "agent": h.agent,
            "reply_to": h.reply_to,
            "next_local": null,
            "next_utc": next.to_rfc3339(),
            "note": "counted from when `cordon serve` starts",
        }));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no schedules; add `[[schedules]]` or `[heartbeat]` to cordon.toml");
        return Ok(ExitCode::SUCCESS);
    }
    for r in rows {
        let next = r["next_local"]
            .as_str()
            .map(str::to_string)
            .or_else(|| r["note"].as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "{}\t{}\tagent {}\t-> {}\tnext {}",
            r["name"].as_str().unwrap_or(""),
            r["when"].as_str().unwrap_or(""),
            r["agent"].as_str().unwrap_or(""),
            r["reply_to"].as_str().unwrap_or("log only"),
            next
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(name: &str) -> Result<ExitCode> {
    let state = open_state()?;
    let config = state.config.clone();
    let task = if name == "heartbeat" {
        let h = config
            .heartbeat
            .as_ref()
            .context("no [heartbeat] in cordon.toml")?;
        gateway::schedules::Task {
            name: "heartbeat".into(),
            agent: h.agent.clone(),
            text: h.task.clone(),
            reply_to: h.reply_to.clone(),
        }
    } else {
        let Some(s) = config.schedules.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = config.schedules.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "no schedule `{name}`; configured: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        };
        gateway::schedules::Task {
            name: s.name.clone(),
            agent: s.agent.clone(),
            text: s.task.clone(),
            reply_to: s.reply_to.clone(),
        }
    };
    // Channels are built when the answer goes to one, or the agent may message one.
    let messages = config
        .agents
        .get(&task.agent)
        .is_some_and(|a| a.tools.contains(&config::ToolName::SendMessage));
    let (channels, _) = if task.reply_to.is_some() || messages {
        chat_channels(&state)?
    } else {
        (Vec::new(), Default::default())
    };
    let state = Arc::new(state);
    let hub = gateway::hub::Hub::new(state.store.clone(), Some(Arc::new(Agents(state.clone()))));
    let chats = Arc::new(
        gateway::chat::Chats::send_only(
            channels,
            config.clone(),
            hub.clone(),
            state.store.clone(),
            state.audit.clone(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    hub.set_chats(chats.clone());
    let (session, answer) = gateway::schedules::run(&hub, Some(&chats), &state.audit, &task, "cli")
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!("schedule `{}` ran in session {session}", task.name);
    match answer {
        Some(a) => {
            println!("{a}");
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("the turn of session {session} ended without an answer"),
    }
}
