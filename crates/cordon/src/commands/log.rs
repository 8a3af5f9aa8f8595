use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use config::Paths;

use crate::cli::LogCommand;

pub fn log(command: LogCommand) -> Result<ExitCode> {
    let paths = Paths::from_env();
    let dir = paths.audit_dir();
    match command {
        LogCommand::Export => unreachable!("dispatched to log::export"),
        LogCommand::Verify => match audit::verify(&dir) {
            Ok(report) => {
                println!(
                    "audit log {}: {} records, chain intact",
                    dir.display(),
                    report.records
                );
                println!("head {}", report.last_hash);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("TAMPERED OR DAMAGED: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        LogCommand::Show {
            session,
            kind,
            json,
            tail,
        } => {
            let records = audit::read(&dir)
                .with_context(|| format!("cannot read the audit log in {}", dir.display()))?;
            let kind_filter = kind.map(|k| k.to_ascii_lowercase());
            let mut selected: Vec<&audit::Record> = records
                .iter()
                .filter(|r| {
                    session
                        .as_ref()
                        .is_none_or(|s| r.session.as_deref() == Some(s.as_str()))
                })
                .filter(|r| {
                    kind_filter
                        .as_ref()
                        .is_none_or(|k| kind_name(&r.kind) == *k)
                })
                .collect();
            if let Some(n) = tail {
                let skip = selected.len().saturating_sub(n);
                selected.drain(..skip);
            }
            let mut out = std::io::stdout().lock();
            for r in selected {
                if json {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                } else {
                    writeln!(
                        out,
                        "#{:<5} {} {:<13} {} {}",
                        r.seq,
                        r.ts,
                        kind_name(&r.kind),
                        r.session.as_deref().unwrap_or("-"),
                        serde_json::to_string(&r.data)?
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cordon log export`: deliver what is pending to each configured destination, the
/// audit collector (`[audit.export]`) and the alert webhook (`[alerts]`). Exit 1 if any
/// of them did not take it.
pub async fn export() -> Result<ExitCode> {
    let state = crate::setup::open_state()?;
    let mut deliveries = Vec::new();
    if let Some(cfg) = &state.config.audit.export {
        deliveries.push(audit::export::Delivery::audit_export(
            &state.state_dir,
            state.audit.dir(),
            cfg,
        )?);
    }
    if let Some(cfg) = &state.config.alerts {
        deliveries.push(audit::export::Delivery::alerts(
            &state.state_dir,
            state.audit.dir(),
            cfg,
        )?);
    }
    if deliveries.is_empty() {
        anyhow::bail!(
            "no [audit.export] and no [alerts] in the config: set [audit.export] `url` (and \
             `token_env`) to ship the audit log to a collector, [alerts] `webhook_url` to \
             deliver alerts"
        );
    }
    let mut code = ExitCode::SUCCESS;
    for d in &deliveries {
        match d.ship().await {
            Ok(s) => println!(
                "sent {} records to {} (delivered through #{})",
                s.records,
                d.shown_url(),
                s.through
            ),
            Err(e) => {
                eprintln!("cordon: delivery to the {} failed: {e:#}", d.what());
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

fn kind_name(kind: &audit::EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
