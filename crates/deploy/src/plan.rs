//! What every deployment target reads from the loaded config, worked out once: the
//! gateway address, the model endpoint, the files the config points at (resolved on this
//! machine), and the resource limits for the tier.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::DeployError;
use config::{Config, SandboxBackend, Tier};

/// The loaded config and the file it came from.
pub struct Source {
    pub config: Config,
    pub config_file: PathBuf,
}

/// Where Cordon lives in every generated deployment.
pub const STATE_ROOT: &str = "/var/lib/cordon";
/// `CORDON_STATE_DIR` (mode 0700): database, audit log, vault.
pub const STATE_DIR: &str = "/var/lib/cordon/state";
/// Parent of each agent's workspace; never inside `STATE_DIR`, which no sandbox may see.
pub const WORKSPACES: &str = "/var/lib/cordon/workspaces";
/// `CORDON_CONFIG` in containers.
pub const CONFIG_PATH: &str = "/etc/cordon/cordon.toml";
/// The container user (the native sandbox maps its inner uid 1000 onto it).
pub const UID: u32 = 1000;

pub struct Plan {
    pub config: Config,
    pub config_file: PathBuf,
    pub bind: SocketAddr,
    pub model: ModelEndpoint,
    pub sizing: Sizing,
    /// `[policy] files`, in order.
    pub policy_files: Vec<External>,
    /// `[egress] upstream_ca_files`, in order.
    pub ca_files: Vec<External>,
    /// `[gateway] tls_cert` and `tls_key`, resolved.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A file the config names, as found on this machine.
pub struct External {
    /// The config key, e.g. `policy.files[0]`.
    pub key: String,
    /// Absolute path here.
    pub source: PathBuf,
    /// A name safe as a file name, ConfigMap key and systemd credential: `0-extra.cedar`.
    pub name: String,
}

/// `[model] base_url`, taken apart.
pub struct ModelEndpoint {
    pub host: ModelHost,
    pub port: u16,
}

pub enum ModelHost {
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for ModelHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelHost::Name(n) => f.write_str(n),
            ModelHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Limits of the whole gateway (container, pod or unit): the gateway itself plus room
/// for `sandboxes` sandboxes at their own `[sandbox] cgroup_*` limits. Inside a container
/// the sandbox cannot create cgroups of its own, so these are what bound it there.
pub struct Sizing {
    pub sandboxes: u64,
    pub memory_mb: u64,
    pub millicpus: u64,
    pub pids: u64,
    pub storage_gib: u64,
}

/// Memory, tasks and CPU the gateway process itself is given, before sandboxes.
const GATEWAY_MEMORY_MB: u64 = 512;
const GATEWAY_PIDS: u64 = 256;
const GATEWAY_MILLICPUS: u64 = 1000;

impl Sizing {
    fn new(config: &Config) -> Sizing {
        // Sandboxes running at once that the limits leave room for.
        let (sandboxes, storage_gib) = match config.tier {
            Tier::Personal => (1, 5),
            Tier::Team => (2, 20),
            Tier::Enterprise => (4, 50),
        };
        let s = &config.sandbox;
        Sizing {
            sandboxes,
            memory_mb: GATEWAY_MEMORY_MB + s.cgroup_memory_mb * sandboxes,
            millicpus: GATEWAY_MILLICPUS + u64::from(s.cgroup_cpu_percent) * 10 * sandboxes,
            pids: GATEWAY_PIDS + s.cgroup_pids * sandboxes,
            storage_gib,
        }
    }

    /// Whole CPUs for engines that take a decimal (`cpus: 2.5`).
    pub fn cpus(&self) -> String {
        let whole = self.millicpus / 1000;
        match self.millicpus % 1000 {
            0 => whole.to_string(),
            frac => format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0')),
        }
    }

    /// The formula, for comments.
    pub fn explain(&self, config: &Config) -> String {
        let s = &config.sandbox;
        format!(
            "room for the gateway ({GATEWAY_MEMORY_MB} MiB, {GATEWAY_PIDS} tasks, 1 CPU) plus \
             {n} sandbox(es) at once for tier {tier} at [sandbox] cgroup_memory_mb = {m}, \
             cgroup_pids = {p}, cgroup_cpu_percent = {c}",
            n = self.sandboxes,
            tier = tier_name(config.tier),
            m = s.cgroup_memory_mb,
            p = s.cgroup_pids,
            c = s.cgroup_cpu_percent,
        )
    }
}

pub fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Personal => "personal",
        Tier::Team => "team",
        Tier::Enterprise => "enterprise",
    }
}

impl Plan {
    pub fn new(source: Source) -> Result<Plan, DeployError> {
        let Source {
            config,
            config_file,
        } = source;
        let dir = config_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let at = |key: &str| format!("{}: {key}", config_file.display());
        let bind: SocketAddr = config
            .gateway
            .bind
            .parse()
            .map_err(|e| DeployError::Config(format!("{}: {e}", at("gateway.bind"))))?;
        let model = model_endpoint(&config.model.base_url)
            .map_err(|e| DeployError::Config(format!("{}: {e}", at("model.base_url"))))?;
        let in_file = |e: String| DeployError::Config(format!("{}: {e}", config_file.display()));
        let policy_files =
            externals(&dir, "policy.files", &config.policy.files).map_err(in_file)?;
        let ca_files = externals(
            &dir,
            "egress.upstream_ca_files",
            &config.egress.upstream_ca_files,
        )
        .map_err(in_file)?;
        let tls = match (&config.gateway.tls_cert, &config.gateway.tls_key) {
            (Some(c), Some(k)) => Some((absolute(&dir, c), absolute(&dir, k))),
            _ => None,
        };
        Ok(Plan {
            sizing: Sizing::new(&config),
            config,
            config_file,
            bind,
            model,
            policy_files,
            ca_files,
            tls,
        })
    }

    /// Containers run the native sandbox inside themselves; a container engine backend
    /// would need the engine's socket mounted in, which is root on the host.
    pub fn require_in_container_backend(&self, target: &str) -> Result<(), DeployError> {
        match self.config.sandbox.backend {
            SandboxBackend::Native | SandboxBackend::None => Ok(()),
            b @ (SandboxBackend::Docker | SandboxBackend::Podman) => {
                Err(DeployError::Config(format!(
                    "{}: sandbox.backend = \"{}\" cannot work inside the {target} deployment: it \
                 would need the container engine's socket mounted in, which is root on the \
                 host. Set sandbox.backend = \"native\" (the generated files allow the user \
                 namespaces it needs), or use `cordon deploy systemd`",
                    self.config_file.display(),
                    if b == SandboxBackend::Docker {
                        "docker"
                    } else {
                        "podman"
                    },
                )))
            }
        }
    }

    /// `[model] base_url` names this machine, which inside a container or pod is the
    /// container itself.
    pub fn model_is_loopback(&self) -> bool {
        match &self.model.host {
            ModelHost::Ip(ip) => ip.to_canonical().is_loopback(),
            ModelHost::Name(n) => n == "localhost" || n.ends_with(".localhost"),
        }
    }

    pub fn tier(&self) -> &'static str {
        tier_name(self.config.tier)
    }

    /// Every file the config names, with its kind (`policy` or `ca`), in config order.
    pub fn external_files(&self) -> impl Iterator<Item = (&'static str, &External)> {
        let policy = self.policy_files.iter().map(|f| ("policy", f));
        policy.chain(self.ca_files.iter().map(|f| ("ca", f)))
    }

    pub fn agent_names(&self) -> impl Iterator<Item = &str> {
        self.config.agents.keys().map(String::as_str)
    }
}

fn absolute(dir: &Path, p: &Path) -> PathBuf {
    dir.join(config::expand_tilde(p))
}

/// `key`'s files, each checked by [`external`].
fn externals(dir: &Path, key: &str, paths: &[PathBuf]) -> Result<Vec<External>, String> {
    paths
        .iter()
        .enumerate()
        .map(|(i, f)| external(dir, format!("{key}[{i}]"), i, f))
        .collect()
}

/// A referenced file must exist now: a deployment that names a missing file fails only
/// later, on the host.
fn external(dir: &Path, key: String, index: usize, path: &Path) -> Result<External, String> {
    let source = absolute(dir, path);
    if !source.is_file() {
        return Err(format!(
            "{key} = `{}`: no such file ({} here); fix the path before deploying",
            path.display(),
            source.display()
        ));
    }
    let base = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(External {
        key,
        source,
        name: format!("{index}-{safe}"),
    })
}

fn model_endpoint(base_url: &str) -> Result<ModelEndpoint, String> {
    let url = reqwest::Url::parse(base_url).map_err(|e| format!("not a URL: {e}"))?;
    let port = url
        .port_or_known_default()
        .ok_or("no port and no default port for this scheme")?;
    let raw = url.host_str().ok_or("no host")?;
    // IPv6 hosts come back in brackets.
    let bare = raw.trim_start_matches('[').trim_end_matches(']');
    let host = match bare.parse::<IpAddr>() {
        Ok(ip) => ModelHost::Ip(ip),
        Err(_) => ModelHost::Name(bare.to_ascii_lowercase()),
    };
    Ok(ModelEndpoint { host, port })
}
