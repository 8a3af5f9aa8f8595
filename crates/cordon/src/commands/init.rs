//! `cordon init`: a commented config, the state directory, each agent's workspace — and
//! a model to talk to. The usual local model servers (Ollama, llama.cpp's server, vLLM,
//! LM Studio) are asked on 127.0.0.1, all at once and briefly, which models they serve
//! (`GET /v1/models`); the first server found and its first model (or `--model`) go into
//! `[model]`. With none found, the config keeps Ollama's address and says how to point it
//! elsewhere.

use std::os::unix::fs::DirBuilderExt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use config::{InitModel, Paths, Tier};

use crate::setup::ensure_private_dir;

/// The local model servers `cordon init` looks for: (port on 127.0.0.1, what usually
/// listens there).
const LOCAL_SERVERS: [(u16, &str); 4] = [
    (11434, "Ollama"),
    (8080, "llama.cpp server"),
    (8000, "vLLM"),
    (1234, "LM Studio"),
];

/// For tests only: a comma-separated list of ports that replaces [`LOCAL_SERVERS`]
/// (e.g. `CORDON_INIT_PROBE_PORTS=40123,40124`; empty for none), so a test's model
/// server on a free port is found and the developer's own servers are not.
const PROBE_PORTS_ENV: &str = "CORDON_INIT_PROBE_PORTS";

/// How long one server may take to list its models.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// A local server that listed its models.
struct Found {
    name: String,
    base_url: String,
    models: Vec<String>,
}

pub async fn init(tier: Tier, force: bool, model: Option<&str>) -> Result<ExitCode> {
    let paths = Paths::from_env();
    let file = &paths.config_file;
    if file.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            file.display()
        );
    }
    let servers = probe_servers().await?;
    let chosen = choose(&servers, model);
    let text = config::init_template_for(tier, &chosen);
    // The template must itself be valid: never write a config `cordon` would reject.
    let parsed = config::load_str(&text, file)?;
    if let Some(parent) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    config::atomic_write(file, text.as_bytes(), 0o600)?;
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    for (name, text) in config::init_files(tier) {
        let path = dir.join(name);
        if path.exists() && !force {
            println!("kept {} (exists; --force replaces it)", path.display());
            continue;
        }
        if let Some(p) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
        }
        config::atomic_write(&path, text.as_bytes(), 0o600)?;
        println!("wrote {}", path.display());
    }
    ensure_private_dir(&paths.state_dir)?;
    println!("wrote {} (tier {:?})", file.display(), tier);
    println!("state directory {} (mode 0700)", paths.state_dir.display());
    for (name, agent) in &parsed.agents {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&agent.workspace)
            .with_context(|| format!("cannot create workspace {}", agent.workspace.display()))?;
        println!("agent `{name}`: workspace {}", agent.workspace.display());
    }
    println!("{}", model_summary(&servers, &chosen, file));
    Ok(ExitCode::SUCCESS)
}

/// Ask every local server at once which models it serves; those that answered with a
/// list, in [`LOCAL_SERVERS`] order.
async fn probe_servers() -> Result<Vec<Found>> {
    let candidates: Vec<(u16, String)> = match std::env::var(PROBE_PORTS_ENV) {
        Ok(list) => list
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.trim()
                    .parse::<u16>()
                    .map(|port| (port, format!("the server on port {port}")))
                    .with_context(|| format!("{PROBE_PORTS_ENV}: `{p}` is not a port"))
            })
            .collect::<Result<_>>()?,
        Err(_) => LOCAL_SERVERS
            .iter()
            .map(|(port, name)| (*port, name.to_string()))
            .collect(),
    };
    let asks: Vec<_> = candidates
        .into_iter()
        .map(|(port, name)| {
            tokio::spawn(async move {
                let base_url = format!("http://127.0.0.1:{port}/v1");
                let endpoint = runtime::ModelEndpoint::new(&base_url, PROBE_TIMEOUT).ok()?;
                let models =
                    tokio::time::timeout(PROBE_TIMEOUT, agent::provider::list_models(endpoint))
                        .await
                        .ok()?
                        .ok()?;
                (!models.is_empty()).then_some(Found {
                    name,
                    base_url,
                    models,
                })
            })
        })
        .collect();
    let mut found = Vec::new();
    for ask in asks {
        if let Ok(Some(f)) = ask.await {
            found.push(f);
        }
    }
    Ok(found)
}

/// The server and model to write: the server that lists `wanted` (else the first found,
/// with `wanted` as its model), or the first server and its first model, or Ollama's
/// defaults when none was found.
fn choose(servers: &[Found], wanted: Option<&str>) -> InitModel {
    let defaults = InitModel::default();
    let server = wanted
        .and_then(|w| servers.iter().find(|s| s.models.iter().any(|m| m == w)))
        .or(servers.first());
    match (server, wanted) {
        (Some(s), Some(w)) => InitModel {
            base_url: s.base_url.clone(),
            model: w.to_string(),
        },
        (Some(s), None) => InitModel {
            base_url: s.base_url.clone(),
            model: s.models[0].clone(),
        },
        (None, Some(w)) => InitModel {
            model: w.to_string(),
            ..defaults
        },
        (None, None) => defaults,
    }
}

/// What was written into `[model]`, and what to do next.
fn model_summary(servers: &[Found], chosen: &InitModel, file: &std::path::Path) -> String {
    let looked: Vec<String> = LOCAL_SERVERS
        .iter()
        .map(|(port, name)| format!("{name} {port}"))
        .collect();
    let Some(server) = servers.iter().find(|s| s.base_url == chosen.base_url) else {
        return format!(
            "no local model server found (looked on 127.0.0.1 for {}). The config keeps \
             base_url = \"{}\" and model = \"{}\": start a server there, or set `base_url` \
             and `model` in the [model] section of {} to any OpenAI-compatible server \
             (provider = \"anthropic\" for Anthropic's API). `cordon demo` shows Cordon at \
             work offline, without a model.",
            looked.join(", "),
            chosen.base_url,
            chosen.model,
            file.display()
        );
    };
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!(
            "found {} at {} (models: {})\n",
            s.name,
            s.base_url,
            s.models.join(", ")
        ));
    }
    if !server.models.contains(&chosen.model) {
        out.push_str(&format!(
            "note: {} does not list `{}`; it is written anyway\n",
            server.name, chosen.model
        ));
    }
    out.push_str(&format!(
        "model: `{}` at {} (`cordon init --force --model NAME` picks another)\n\
         next: `cordon chat`, or `cordon run \"...\"`",
        chosen.model, chosen.base_url
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str, port: u16, models: &[&str]) -> Found {
        Found {
            name: name.into(),
            base_url: format!("http://127.0.0.1:{port}/v1"),
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn the_first_server_and_model_unless_one_is_asked_for() {
        let servers = [
            found("Ollama", 11434, &["a", "b"]),
            found("vLLM", 8000, &["c"]),
        ];
        let first = choose(&servers, None);
        assert_eq!(
            (first.base_url.as_str(), first.model.as_str()),
            ("http://127.0.0.1:11434/v1", "a")
        );
        let c = choose(&servers, Some("c"));
        assert_eq!(
            (c.base_url.as_str(), c.model.as_str()),
            ("http://127.0.0.1:8000/v1", "c")
        );
        let unknown = choose(&servers, Some("z"));
        assert_eq!(unknown.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(unknown.model, "z");
        assert_eq!(choose(&[], None), InitModel::default());
    }
}
