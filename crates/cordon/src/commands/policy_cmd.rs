//! `cordon policy explain|test|show`: the decisions the runtime would make, from the
//! same compiled policy (`guard::Policy::evaluate`), without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use config::{HostPattern, Paths};
use guard::{ActionText, Confidentiality, Integrity, Labels, SessionView};

use crate::cli::PolicyCommand;
use crate::setup::{load_config, load_policy};

pub fn policy(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Explain {
            agent,
            labels,
            secrets,
            sources,
            contacted,
            secret_hosts,
            depth,
            checkpointed,
            runs_labelled,
            json,
            action,
        } => {
            let config = load_config(&Paths::from_env())?;
            let policy = load_policy(&config, &agent)?;
            let max_steps = config
                .agents
                .get(&agent)
                .with_context(|| format!("no agent `{agent}` in the config"))?
                .max_steps;
            let action = ActionText::from_words(&action)
                .and_then(|t| t.to_action(max_steps))
                .map_err(|e| anyhow::anyhow!(e))?;
            let labels = parse_labels(labels.as_deref(), &secrets, &sources)?;
            let contacted: BTreeSet<String> =
                contacted.iter().map(|h| h.to_ascii_lowercase()).collect();
            let mut bound: BTreeMap<String, Vec<HostPattern>> = BTreeMap::new();
            for spec in &secret_hosts {
                let (name, hosts) = spec.split_once('=').with_context(|| {
                    format!("--secret-host `{spec}`: expected NAME=HOST[,HOST…]")
                })?;
                let mut patterns = Vec::new();
                for h in hosts.split(',').filter(|h| !h.is_empty()) {
                    patterns.push(
                        HostPattern::parse(h)
                            .map_err(|e| anyhow::anyhow!("--secret-host `{spec}`: {e}"))?,
                    );
                }
                bound.insert(name.to_string(), patterns);
            }
            let view = SessionView {
                session: "explain",
                labels: &labels,
                contacted: &contacted,
                depth,
                secret_hosts: &bound,
                skill: None,
                checkpointed,
                labelled_code: &runs_labelled,
            };
            let v = policy.evaluate(&action, &view);
            if json {
                let out = serde_json::json!({
                    "agent": agent,
                    "action": action.canonical(),
                    "action_kind": action.name(),
                    "fingerprint": action.fingerprint(),
                    "decision": v.decision.kind(),
                    "reason": v.decision.reason(),
                    "rule": v.rule,
                    "matched": v.matched,
                    "labels": v.labels,
                    "contacted": contacted,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("agent        {agent}");
            println!("action       {}", action.canonical());
            println!("fingerprint  {}", action.fingerprint());
            println!(
                "session      labels {}; contacted: {}",
                v.labels,
                if contacted.is_empty() {
                    "(none)".to_string()
                } else {
                    contacted.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            );
            if v.matched.is_empty() {
                println!("matched      (no policy matched)");
            } else {
                println!("matched");
                for m in &v.matched {
                    println!(
                        "  {:<7} {:<32} [{}] {}",
                        m.effect.as_str(),
                        m.id,
                        m.origin,
                        m.reason
                    );
                }
            }
            println!("decision     {}", v.decision.kind());
            println!("rule         {}", v.rule);
            println!("reason       {}", v.decision.reason());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { file } => {
            let paths = Paths::from_env();
            let config = load_config(&paths)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let dir = paths
                .config_file
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            let report = guard::policy_test::run(&config, &dir, &text, &file)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{report}");
            if report.passed() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{} of {} cases did not get the expected decision",
                    report.mismatches().len(),
                    report.rows.len()
                );
                Ok(ExitCode::from(1))
            }
        }
        PolicyCommand::Show { agent } => {
            let config = load_config(&Paths::from_env())?;
            let policy = load_policy(&config, &agent)?;
            for (origin, text) in policy.policy_text() {
                println!("// ---- {origin} ----");
                println!("{}", text.trim_end());
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `trusted|untrusted` and `public|private|secret`, comma-separated.
fn parse_labels(spec: Option<&str>, secrets: &[String], sources: &[String]) -> Result<Labels> {
    let mut labels = Labels::trusted();
    for word in spec
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        match word {
            "trusted" => labels.integrity = Integrity::Trusted,
            "untrusted" => labels.integrity = Integrity::Untrusted,
            "public" => labels.confidentiality = Confidentiality::Public,
            "private" => labels.confidentiality = Confidentiality::Private,
            "secret" => labels.confidentiality = Confidentiality::Secret,
            other => bail!(
                "--labels: unknown label `{other}` (use trusted|untrusted and public|private|secret, comma-separated)"
            ),
        }
    }
    if !secrets.is_empty() {
        labels.confidentiality = Confidentiality::Secret;
        labels.secrets = secrets.to_vec();
    } else if labels.confidentiality == Confidentiality::Secret {
        // A secret of unknown owner: bound to no host.
        labels.secrets = vec!["*".into()];
    }
    if labels.integrity == Integrity::Untrusted {
        labels.untrusted_sources = if sources.is_empty() {
            vec!["(given with --labels)".into()]
        } else {
            sources.to_vec()
        };
    }
    Ok(labels)
}
