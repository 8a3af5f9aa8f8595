//! `cordon serve`: the gateway daemon. Binds (refusing a network address without TLS and
//! a token), prints the URL and how to log in, serves until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::setup::{State, build_agent, open_state, open_vault};

/// The gateway's agents, wired exactly as `cordon chat` wires them.
pub(crate) struct Agents(pub(crate) Arc<State>);

impl gateway::AgentFactory for Agents {
    fn names(&self) -> Vec<String> {
        self.0.config.agents.keys().cloned().collect()
    }

    fn build(
        &self,
        name: &str,
        approver: Arc<dyn runtime::Approver>,
    ) -> Result<agent::Agent, String> {
        build_agent(&self.0, name, approver).map_err(|e| format!("{e:#}"))
    }
}

pub async fn serve(bind: Option<SocketAddr>) -> Result<ExitCode> {
    let started = Instant::now();
    let state = open_state()?;
    // TLS files are relative to the config file's directory, like `[policy] files`.
    let dir = config::Paths::from_env()
        .config_file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut cfg = (*state.config).clone();
    for file in [&mut cfg.gateway.tls_cert, &mut cfg.gateway.tls_key]
        .into_iter()
        .flatten()
    {
        *file = dir.join(config::expand_tilde(file));
    }
    // Ship the audit log to the collector and alerts to the webhook, if configured (a
    // missing token is an error here, not a silently undelivered log).
    if let Some(x) = &state.config.audit.export {
        let delivery =
            audit::export::Delivery::audit_export(&state.state_dir, state.audit.dir(), x)?;
        tokio::spawn(audit::export::run(
            delivery,
            std::time::Duration::from_secs(x.interval_secs),
            state.audit.clone(),
        ));
    }
    if let Some(a) = &state.config.alerts {
        let delivery = audit::export::Delivery::alerts(&state.state_dir, state.audit.dir(), a)?;
        tokio::spawn(audit::export::run(
            delivery,
            audit::export::ALERT_INTERVAL,
            state.audit.clone(),
        ));
    }
    let (channels, hook_secrets) = chat_channels(&state)?;
    let state = Arc::new(state);
    let gw = gateway::Gateway::bind(gateway::GatewayOptions {
        config: Arc::new(cfg),
        store: state.store.clone(),
        audit: state.audit.clone(),
        bind,
        state_dir: state.state_dir.clone(),
        skills_lock: skills::Lock::path_for(&config::Paths::from_env().config_file),
        agents: Some(Arc::new(Agents(state.clone()))),
        channels,
        hook_secrets,
    })
    .await?;
    let url = gw.url();
    // Written once and errors ignored: a closed stdout (a supervisor that stopped
    // reading) must not take the gateway down.
    let banner = format!(
        "cordon gateway listening on {url}\n  \
         web UI: open {url} and log in with a token from \
         `cordon token create --scope operator` (API: POST {url}/api/login with \
         {{\"token\": \"…\"}}, or `Authorization: Bearer TOKEN`; never put a token in a URL)\n  \
         health: {url}/healthz, ready: {url}/readyz (ready in {} ms)\n",
        started.elapsed().as_millis()
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot watch SIGTERM: {e}");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    gw.serve(shutdown).await.context("the gateway stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// The configured channels' platform clients, with their tokens from the vault, and the
/// webhooks' secrets. A token missing from the vault stops the start with what to run; a
/// webhook secret missing from the vault leaves that hook refusing every delivery (and
/// `cordon audit` reports it).
pub(crate) fn chat_channels(
    state: &State,
) -> Result<(Vec<gateway::chat::ChatChannel>, gateway::hooks::HookSecrets)> {
    use config::ChannelKind;
    let config = &state.config;
    if config.channels.is_empty() && config.webhooks.is_empty() {
        return Ok((Vec::new(), Default::default()));
    }
    let vault = open_vault(state)?;
    let token = |kind: ChannelKind, key: &str, name: &str| -> Result<String> {
        let (secret, _) = vault.get(name).with_context(|| {
            format!(
                "channels.{kind}.{key} names `{name}`, which is not in the vault; add the token \
                 with `cordon secrets set {name}`"
            )
        })?;
        Ok(secret.expose().to_string())
    };
    let mut channels = Vec::new();
    for (kind, c) in &config.channels {
        let default = kind.default_api_url().unwrap_or_default();
        let api = url::Url::parse(c.api_url.as_deref().unwrap_or(default))
            .with_context(|| format!("channels.{kind}.api_url"))?;
        let http = channels::http::client_for(&api)
            .with_context(|| format!("channels.{kind}: cannot build its HTTP client"))?;
        let bot = token(*kind, "token_secret", &c.token_secret)?;
        let service: Arc<dyn channels::ChatService> = match kind {
            ChannelKind::Telegram => Arc::new(channels::telegram::Telegram::new(api, bot, http)),
            ChannelKind::Slack => {
                let app_name = c.app_token_secret.as_deref().unwrap_or_default();
                let app = token(*kind, "app_token_secret", app_name)?;
                Arc::new(channels::slack::Slack::new(api, bot, app, http))
            }
            ChannelKind::Matrix => Arc::new(channels::matrix::Matrix::new(api, bot, http)),
        };
        channels.push(gateway::chat::ChatChannel {
            kind: *kind,
            service,
        });
    }
    let mut hooks = gateway::hooks::HookSecrets::new();
    for (name, w) in &config.webhooks {
        match w.secret.as_deref().map(|s| (s, vault.get(s))) {
            Some((_, Some((secret, _)))) => {
                hooks.insert(
                    name.clone(),
                    gateway::hooks::HookSecret(secret.expose_bytes().to_vec()),
                );
            }
            Some((s, None)) => tracing::warn!(
                "webhooks.{name}.secret names `{s}`, which is not in the vault: every delivery \
                 to /hooks/{name} is refused until `cordon secrets set {s}`"
            ),
            None => tracing::warn!(
                "webhooks.{name} has no secret: every delivery to /hooks/{name} is refused"
            ),
        }
    }
    Ok((channels, hooks))
}
