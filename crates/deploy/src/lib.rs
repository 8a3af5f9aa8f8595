//! `cordon deploy`: hardened deployment files generated from the loaded config.
//! The binary only loads the config, calls [`generate`], and prints or writes the result.
//!
//! Guarantees:
//! - Every target that runs Cordon (`compose`, `systemd`, `kubernetes`) ships its own
//!   `cordon.toml`: the loaded config with only the places changed (workspaces, gateway
//!   bind, TLS files, policy and CA files); it is reloaded with the strict loader before it
//!   is returned, so a deployment never carries a config `cordon` would reject.
//! - The hardening items are fixed, not options: a non-root user, a read-only root, no
//!   capabilities, no-new-privileges, loopback-only publishing, resource limits sized from
//!   `[sandbox]` and the tier, metadata-address drops. Where the native sandbox needs a
//!   protection relaxed (user namespaces inside a container), the file says which and why.
//! - Output is a function of the config and, for Kubernetes, of the DNS answers at
//!   generation time (named in the file).
//!
//! Does not: install, start or probe anything on a host. Whether the host kernel allows
//! unprivileged user namespaces is for `cordon sandbox explain` to say once deployed.

mod compose;
mod config_file;
mod destinations;
mod error;
mod firewall;
mod kubernetes;
mod output;
mod plan;
mod seccomp;
mod systemd;
mod yaml;

pub use error::DeployError;
pub use output::{Written, print, write_dir};
pub use plan::Source;

/// What `cordon deploy` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Compose,
    Systemd,
    Kubernetes,
    Firewall,
}

/// One generated file: its name inside `--out DIR` and its text.
pub struct Artifact {
    pub name: &'static str,
    pub text: String,
}

/// Generate `target`'s files. `load` is called only by targets that depend on the config
/// (the firewall rules do not); its error is the caller's, into which a [`DeployError`]
/// converts.
pub async fn generate<E: From<DeployError>>(
    target: Target,
    load: impl FnOnce() -> Result<Source, E>,
) -> Result<Vec<Artifact>, E> {
    Ok(match target {
        Target::Firewall => firewall::render(),
        Target::Compose => compose::render(&plan::Plan::new(load()?)?)?,
        Target::Systemd => systemd::render(&plan::Plan::new(load()?)?)?,
        Target::Kubernetes => {
            let plan = plan::Plan::new(load()?)?;
            let destinations = destinations::resolve(&plan).await?;
            kubernetes::render(&plan, &destinations)?
        }
    })
}

/// `text` as `#` comment lines of at most 88 columns (longer words stay whole), each
/// starting with `indent`, each ending with a newline.
fn comment(text: &str, indent: &str) -> String {
    const WIDTH: usize = 88;
    let mut out = String::new();
    let mut line = format!("{indent}#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > WIDTH && line.len() > indent.len() + 1 {
            out.push_str(&line);
            out.push('\n');
            line = format!("{indent}#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}
