//! Opening the pieces a command needs: paths, config, state dir, audit log, store,
//! sandbox, runtime and agent — always in the same order and with the same checks.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use config::{Config, Paths};
use runtime::{Approver, ModelEndpoint, Runtime, RuntimeOptions};

/// Everything that lives in the state directory, opened.
pub struct State {
    pub state_dir: std::path::PathBuf,
    pub config: Arc<Config>,
    pub audit: Arc<audit::Log>,
    pub store: Arc<store::Store>,
}

/// Agent `agent`'s policy: compiled from the config, the built-in rules and the
/// `[policy] files` (relative to the config file's directory), validated.
pub fn load_policy(config: &Config, agent: &str) -> Result<guard::Policy> {
    load_policy_from(&Paths::from_env(), config, agent)
}

/// [`load_policy`] for the config file named in `paths`.
pub fn load_policy_from(paths: &Paths, config: &Config, agent: &str) -> Result<guard::Policy> {
    let dir = paths
        .config_file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    guard::Policy::load(config, &dir, agent).map_err(|e| {
        anyhow::anyhow!(
            "{}: policy of agent `{agent}`: {e}",
            paths.config_file.display()
        )
    })
}

/// Load and validate the config file named by the environment.
pub fn load_config(paths: &Paths) -> Result<Config> {
    Ok(read_config(paths)?.0)
}

/// The config and the exact text it was parsed from (read once, so the digest recorded
/// in the audit log is of what was actually loaded).
/// The session store `config` names: the PostgreSQL database at `[store] url` (with the
/// password from the variable `[store] password_env` names), else SQLite at
/// `STATE/cordon.db`. Every command opens the store here.
pub fn open_store(config: &Config, paths: &Paths) -> Result<store::Store> {
    let Some(url) = &config.store.url else {
        return store::Store::open(&paths.db_file()).with_context(|| {
            format!(
                "cannot open the session store {}",
                paths.db_file().display()
            )
        });
    };
    store::Store::connect(url, store_password(config)?.as_deref())
        .context("cannot open the session store ([store] url)")
}

/// [`open_store`], opened (created, migrated; connected) by its first use instead of now:
/// for a command that may never use it. What can be checked without touching the
/// database (the URL, the password variable) is checked now.
fn open_store_on_first_use(config: &Config, paths: &Paths) -> Result<store::Store> {
    let Some(url) = &config.store.url else {
        return Ok(store::Store::open_on_first_use(&paths.db_file()));
    };
    store::Store::connect_on_first_use(url, store_password(config)?.as_deref())
        .context("cannot open the session store ([store] url)")
}

/// The PostgreSQL password from the variable `[store] password_env` names, if any.
fn store_password(config: &Config) -> Result<Option<String>> {
    let Some(var) = &config.store.password_env else {
        return Ok(None);
    };
    let value = std::env::var(var).with_context(|| {
        format!(
            "[store] password_env names `{var}`, but that environment variable is not set \
             (or not UTF-8); set it to the PostgreSQL password"
        )
    })?;
    Ok(Some(value))
}

/// Is there a store to look into without creating one? PostgreSQL always; SQLite once
/// its file exists.
pub fn store_exists(config: &Config, paths: &Paths) -> bool {
    config.store.url.is_some() || paths.db_file().exists()
}

fn read_config(paths: &Paths) -> Result<(Config, String)> {
    let file = &paths.config_file;
    if !file.exists() {
        bail!(
            "no config at {} — run `cordon init` first, or point CORDON_CONFIG at one",
            file.display()
        );
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read config {}", file.display()))?;
    Ok((config::load_str(&text, file)?, text))
}

/// Create the state directory with mode 0700, or tighten it if it is more open.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("state directory {} is not a directory", dir.display());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "state directory {} belongs to uid {}, not to you (uid {me}); refusing to use it",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
    }
    Ok(())
}

/// Open config, state dir, audit log and store; record that the config was loaded.
pub fn open_state() -> Result<State> {
    open_state_at(&Paths::from_env())
}

/// [`open_state`] for one command a human typed (`cordon sandbox exec`): the
/// `config_loaded` record is appended in order but made durable with the next record
/// (the command's own, which the caller records and syncs after it ran and before it
/// reports an outcome; or an egress record during it), or at exit: one fsync of the log
/// and its anchor instead of two on the way to the command. The store is opened by its
/// first use ([`store::Store::open_on_first_use`]): such a command's approver never
/// asks, so it normally has none, and creating SQLite's `-wal` and `-shm` files only to
/// remove them at exit is most of what opening costs.
pub fn open_state_for_one_command() -> Result<State> {
    open_state_with(&Paths::from_env(), Opening::OneCommand)
}

/// How much of the state is made ready before the command starts.
enum Opening {
    /// The store open and the `config_loaded` record durable before `open_state` returns.
    Eager,
    /// The store opened at its first use; `config_loaded` durable with the next record
    /// synced (or when the log is dropped).
    OneCommand,
}

/// [`open_state`] for the config file and state directory in `paths`.
pub fn open_state_at(paths: &Paths) -> Result<State> {
    open_state_with(paths, Opening::Eager)
}

fn open_state_with(paths: &Paths, opening: Opening) -> Result<State> {
    let (config, text) = read_config(paths)?;
    ensure_private_dir(&paths.state_dir)?;
    let audit = audit::Log::open(&paths.audit_dir()).with_context(|| {
        format!(
            "cannot open the audit log in {}",
            paths.audit_dir().display()
        )
    })?;
    let store = match opening {
        Opening::Eager => open_store(&config, paths)?,
        Opening::OneCommand => open_store_on_first_use(&config, paths)?,
    };
    let loaded = audit::event::ConfigLoaded {
        path: paths.config_file.display().to_string(),
        sha256: sha256_hex(text.as_bytes()),
        tier: config.tier,
        agents: config.agents.keys().cloned().collect(),
    };
    match opening {
        Opening::Eager => audit.record_event(None, loaded)?,
        Opening::OneCommand => audit.append_event(None, loaded)?,
    }
    Ok(State {
        state_dir: paths.state_dir.clone(),
        config: Arc::new(config),
        audit: Arc::new(audit),
        store: Arc::new(store),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The agent's config, or an error listing the agents that exist.
pub fn agent_config<'a>(config: &'a Config, name: &str) -> Result<&'a config::AgentConfig> {
    config.agents.get(name).with_context(|| {
        let known: Vec<&str> = config.agents.keys().map(String::as_str).collect();
        format!(
            "no agent `{name}` in the config; known agents: {}",
            known.join(", ")
        )
    })
}

/// The sandbox backend the config asks for. Fails closed when it cannot be provided.
pub fn sandbox_backend(config: &Config) -> Result<Arc<dyn sandbox::Sandbox>> {
    sandbox_backend_with(config, sandbox::Pooling::Refill)
}

/// [`sandbox_backend`]; the native backend prepares for a next start with
/// [`sandbox::Pooling::Refill`] only.
fn sandbox_backend_with(
    config: &Config,
    pooling: sandbox::Pooling,
) -> Result<Arc<dyn sandbox::Sandbox>> {
    let image = config.sandbox.image.clone();
    Ok(match config.sandbox.backend {
        config::SandboxBackend::Native => Arc::new(sandbox::NativeSandbox::with_pooling(pooling)),
        config::SandboxBackend::Docker => Arc::new(sandbox::ContainerSandbox::new(
            sandbox::Engine::Docker,
            image,
        )),
        config::SandboxBackend::Podman => Arc::new(sandbox::ContainerSandbox::new(
            sandbox::Engine::Podman,
            image,
        )),
        // Config loading refuses `none` without the explicit acknowledgement.
        config::SandboxBackend::None => Arc::new(sandbox::HostSandbox::new()),
    })
}

/// The vault in the state directory (key from `CORDON_VAULT_PASSPHRASE` or the key file).
pub fn open_vault(state: &State) -> Result<secrets::Vault> {
    secrets::Vault::open(&state.state_dir).with_context(|| {
        format!(
            "cannot open the secret vault in {}",
            state.state_dir.display()
        )
    })
}

/// The egress proxy with the per-install CA in `state/egress/`.
pub fn egress_proxy(state: &State) -> Result<Arc<egress::Proxy>> {
    let dir = state.state_dir.join("egress");
    let ca = egress::CertificateAuthority::load_or_create(&dir)
        .with_context(|| format!("cannot load the egress CA in {}", dir.display()))?;
    let cfg = egress::ProxyConfig::from_config(&state.config.egress)?;
    Ok(egress::Proxy::new(cfg, ca, state.audit.clone())?)
}

/// Say it loudly when tool processes will run without isolation.
pub fn warn_if_unsandboxed(config: &Config) {
    if config.sandbox.backend == config::SandboxBackend::None {
        eprintln!(
            "WARNING: sandbox.backend = \"none\": {} (every use is recorded in the audit log)",
            sandbox::HOST_WARNING
        );
    }
}

/// The model API key, read from the environment variable the config names.
fn api_key(config: &Config) -> Option<(String, String)> {
    let var = config.model.api_key_env.as_ref()?;
    let value = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    Some((var.clone(), value))
}

/// Wire runtime and agent for `agent_name`, talking to the configured model.
pub fn build_agent(
    state: &State,
    agent_name: &str,
    approver: Arc<dyn Approver>,
) -> Result<agent::Agent> {
    let provider = model_provider(&state.config, None)?;
    build_agent_with(state, agent_name, approver, provider)
}

/// The configured model. `on_retry`, when given, is told of each retry (otherwise each
/// is a warning in the log).
pub fn model_provider(
    config: &Config,
    on_retry: Option<agent::provider::OnRetry>,
) -> Result<Arc<dyn agent::provider::Provider>> {
    let key = api_key(config);
    let model = &config.model;
    let endpoint = ModelEndpoint::new(&model.base_url, Duration::from_secs(model.timeout_secs))?;
    let retry = agent::provider::RetryPolicy {
        max_retries: model.max_retries,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(30),
    };
    Ok(Arc::from(agent::provider::from_config_reporting(
        model,
        key.map(|(_, v)| v),
        endpoint,
        retry,
        on_retry,
    )))
}

/// How long the check before the first prompt waits for the model server.
const MODEL_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Before the first prompt: does the model server answer? One request, no retries, at
/// most [`MODEL_CHECK_TIMEOUT`]; the error is one paragraph naming `[model] base_url`,
/// the config file and what to do. A failure is recorded in the audit log (`error`,
/// stage `model`, no session).
pub async fn check_model(state: &State, provider: &dyn agent::provider::Provider) -> Result<()> {
    use agent::provider::ProviderError;
    let file = Paths::from_env().config_file;
    let base_url = &state.config.model.base_url;
    let failed = match tokio::time::timeout(MODEL_CHECK_TIMEOUT, provider.check()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => ProviderError::Timeout {
            url: base_url.clone(),
            secs: MODEL_CHECK_TIMEOUT.as_secs(),
        },
    };
    state.audit.record_event(
        None,
        audit::event::ErrorEvent::Other(audit::event::Failure::new("model", failed.to_string())),
    )?;
    match failed {
        ProviderError::Unreachable { .. } | ProviderError::Timeout { .. } => bail!(
            "cannot reach the model server at {base_url} ({}). Cordon sends every prompt to \
             `base_url` in the [model] section of {}: start that server, or set `base_url` and \
             `model` there to one that runs (`cordon init --force` looks for Ollama, llama.cpp, \
             vLLM and LM Studio on this machine). `cordon demo` shows Cordon at work without \
             a model.",
            failed.brief(),
            file.display()
        ),
        other => bail!(
            "the model server at {base_url} (`base_url` in the [model] section of {}) \
             cannot be used: {other}",
            file.display()
        ),
    }
}

/// [`build_agent`] with the model given (`cordon demo`'s scripted one).
pub fn build_agent_with(
    state: &State,
    agent_name: &str,
    approver: Arc<dyn Approver>,
    provider: Arc<dyn agent::provider::Provider>,
) -> Result<agent::Agent> {
    let config = &state.config;
    let agent_cfg = agent_config(config, agent_name)?;
    let runtime = build_runtime(state, config.clone(), agent_name, approver)?;
    let mut extra = String::new();
    if !agent_cfg.egress.secrets.is_empty() {
        extra.push_str(&format!(
            "Secrets you may use (their values are never shown to you): {}. In exec they are \
             environment variables ($NAME); in http_fetch write ${{NAME}} in a header or body.",
            agent_cfg.egress.secrets.join(", ")
        ));
    }
    if let Some(i) = &agent_cfg.instructions {
        if !extra.is_empty() {
            extra.push_str("\n\n");
        }
        extra.push_str(i);
    }
    if let Some(catalog) = runtime.skill_catalog() {
        if !extra.is_empty() {
            extra.push_str("\n\n");
        }
        extra.push_str(&catalog);
    }
    let system_prompt = agent::system_prompt(
        agent_name,
        &runtime.tool_specs(),
        (!extra.is_empty()).then_some(extra.as_str()),
    );
    Ok(agent::Agent::new(agent::AgentOptions {
        provider: Box::new(agent::SharedProvider(provider.clone())),
        runtime: attach(state, runtime, agent_name, provider),
        store: state.store.clone(),
        audit: state.audit.clone().into(),
        max_steps: agent_cfg.max_steps,
        system_prompt,
        record_content: config.audit.record_content,
    }))
}

/// Attach memory (`STATE/agents/NAME/memory`), the quarantined reader and the
/// sub-agent runner (both on the agent's model) to `runtime`.
fn attach(
    state: &State,
    runtime: Runtime,
    agent_name: &str,
    provider: Arc<dyn agent::provider::Provider>,
) -> Arc<Runtime> {
    let runtime = Arc::new(runtime);
    runtime.set_memory(runtime::memory::MemoryStore::for_agent(
        &state.state_dir,
        agent_name,
    ));
    runtime.set_quarantine(Arc::new(agent::ProviderQuarantine::new(provider.clone())));
    runtime.set_subagent_runner(Arc::new(agent::ChildAgents::new(
        provider,
        state.store.clone(),
        state.audit.clone(),
        state.config.audit.record_content,
    )));
    runtime
}

/// The runtime of `agent_name` under `config` (normally the loaded config; `cordon
/// sandbox exec --workspace` passes one with the workspace replaced): sandbox backend,
/// egress proxy, vault-derived redaction and the agent's secrets.
pub fn build_runtime(
    state: &State,
    config: Arc<Config>,
    agent_name: &str,
    approver: Arc<dyn Approver>,
) -> Result<Runtime> {
    let agent_cfg = agent_config(&config, agent_name)?;
    warn_if_unsandboxed(&config);
    // Compiling the policy (Cedar: parse, validate) is the largest part of building a
    // runtime; it runs on a thread of its own while the vault, skills, MCP pins and
    // egress CA are read, and its error is still reported in the same order as before.
    let config = &config;
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("cordon-policy".into())
            .spawn_scoped(scope, move || load_policy(config, agent_name));
        let policy = move || -> Result<Arc<guard::LazyPolicy>> {
            let policy = match thread {
                Ok(thread) => thread.join().unwrap_or_else(|_| {
                    bail!("compiling the policy of agent `{agent_name}` panicked")
                }),
                // No thread to be had: compile it here.
                Err(_) => load_policy(config, agent_name),
            }?;
            Ok(Arc::new(guard::LazyPolicy::compiled(policy)))
        };
        let pooling = sandbox::Pooling::Refill;
        build_runtime_with(
            state, config, agent_cfg, agent_name, approver, policy, pooling,
        )
    })
}

/// [`build_runtime`] for one command a human typed, run in one sandbox, after which the
/// process exits (`cordon sandbox exec`). The policy decides only the connections the
/// command opens, so it is compiled at the first of them, not here; if it cannot be
/// compiled then, every decision is a deny naming the error (fail closed), and `cordon
/// policy check` reports it up front. The sandbox backend prepares nothing for a next
/// start ([`sandbox::Pooling::Off`]).
pub fn build_runtime_for_one_command(
    state: &State,
    config: Arc<Config>,
    agent_name: &str,
    approver: Arc<dyn Approver>,
) -> Result<Runtime> {
    let agent_cfg = agent_config(&config, agent_name)?;
    warn_if_unsandboxed(&config);
    let (paths, cfg, agent) = (Paths::from_env(), config.clone(), agent_name.to_string());
    let policy = Arc::new(guard::LazyPolicy::new(agent_name, move || {
        load_policy_from(&paths, &cfg, &agent).map_err(|e| format!("{e:#}"))
    }));
    let pooling = sandbox::Pooling::Off;
    build_runtime_with(
        state,
        &config,
        agent_cfg,
        agent_name,
        approver,
        || Ok(policy),
        pooling,
    )
}

/// [`build_runtime`] with the policy given by `policy`, called when it is needed.
fn build_runtime_with(
    state: &State,
    config: &Arc<Config>,
    agent_cfg: &config::AgentConfig,
    agent_name: &str,
    approver: Arc<dyn Approver>,
    policy: impl FnOnce() -> Result<Arc<guard::LazyPolicy>>,
    pooling: sandbox::Pooling,
) -> Result<Runtime> {
    let sandbox = sandbox_backend_with(config, pooling)?;
    if pooling == sandbox::Pooling::Off {
        // One command, whose sandbox starts as soon as this runtime is built: the backend
        // sets up what does not depend on the command (cgroup, network namespace, seccomp
        // filter) on another thread meanwhile.
        sandbox.prepare(&runtime::sandbox_profile(config, &agent_cfg.workspace));
    }
    let key = api_key(config);
    let vault = open_vault(state)?;
    // Every vault value is redacted from what comes back and blocked on the way out,
    // whether or not this agent may use it.
    let watched: Vec<(String, String)> = vault
        .list()
        .into_iter()
        .filter_map(|info| {
            let (value, _) = vault.get(&info.name)?;
            Some((info.name, value.expose().to_string()))
        })
        .collect();
    let redactor =
        secrets::Redactor::new(key.iter().cloned().chain(watched.iter().cloned()).collect())
            .with_credential_detection();
    let mut agent_secrets = Vec::new();
    for name in &agent_cfg.egress.secrets {
        let Some((value, hosts)) = vault.get(name) else {
            bail!(
                "agents.{agent_name}.egress.secrets names `{name}`, which is not in the vault; \
                 add it with `cordon secrets set {name} --hosts HOST`"
            );
        };
        agent_secrets.push(runtime::AgentSecret {
            name: name.clone(),
            value,
            hosts,
        });
    }
    let skills = installed_skills(state, agent_name, &vault);
    let mcp = mcp_options(config, &vault);
    let egress = egress_proxy(state);
    // Errors in the order they were always reported: policy, skills, MCP, egress.
    let policy = policy()?;
    let (skills, mcp, egress) = (skills?, mcp?, egress?);
    let approvals = Arc::new(runtime::StoredApprovals::new(
        state.store.clone(),
        state.audit.clone(),
        std::time::Duration::from_secs(config.approvals.timeout_secs),
        config.approvals.grant_max_days,
    ));
    Ok(Runtime::new(RuntimeOptions {
        policy: Some(policy),
        sandbox,
        config: config.clone(),
        agent: agent_name.to_string(),
        audit: state.audit.clone(),
        approver,
        approvals,
        redactor,
        egress,
        secrets: agent_secrets,
        watched_secrets: watched,
        skills,
        mcp,
        checkpoints_dir: Some(state.state_dir.join("checkpoints").join(agent_name)),
    })?)
}

/// The skills `skills.lock` enables for `agent`, each verified against its pin (a drifted
/// one is refused, recorded and alerted, and the others still load). An unreadable lock
/// stops the start: what is pinned cannot be known.
fn installed_skills(
    state: &State,
    agent: &str,
    vault: &secrets::Vault,
) -> Result<Vec<runtime::skills::InstalledSkill>> {
    let paths = Paths::from_env();
    let (lock_path, store) = runtime::skills::locations(&paths.config_file, &state.state_dir);
    let lock = skills::Lock::load(&lock_path)?;
    Ok(runtime::skills::installed(
        &lock,
        &store,
        agent,
        &state.audit,
        &|name| vault.get(name),
    ))
}

/// `mcp.lock` (the approved MCP tools) and every configured server's secrets from the
/// vault. A server secret missing from the vault stops the start with what to run.
pub fn mcp_options(config: &Config, vault: &secrets::Vault) -> Result<runtime::McpOptions> {
    let pins = mcp::Pins::load(&mcp::Pins::path_for(&Paths::from_env().config_file))?;
    let mut secrets = std::collections::BTreeMap::new();
    for (name, server) in &config.mcp.servers {
        let mut list = Vec::new();
        for s in &server.secrets {
            let Some((value, hosts)) = vault.get(s) else {
                bail!(
                    "mcp.servers.{name}.secrets names `{s}`, which is not in the vault; add it \
                     with `cordon secrets set {s} --hosts HOST`"
                );
            };
            list.push(runtime::AgentSecret {
                name: s.clone(),
                value,
                hosts,
            });
        }
        secrets.insert(name.clone(), list);
    }
    Ok(runtime::McpOptions { pins, secrets })
}
