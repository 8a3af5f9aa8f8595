//! The `cordon.toml` a deployment runs with: the loaded config, with only the places
//! changed. Everything else — model, agents' tools, exec modes, egress allowlists,
//! labels, limits, tier — is carried over as loaded.

use std::path::{Path, PathBuf};

use crate::DeployError;

use crate::comment;
use crate::plan::{Plan, WORKSPACES};

/// Where the deployment puts what the config points at.
pub struct Placement {
    /// `[gateway] bind`.
    pub bind: String,
    /// `[gateway] tls_cert` and `tls_key`.
    pub tls: Option<(String, String)>,
    /// Prefix of each policy file's deployed path (followed by its `External::name`).
    pub policy_prefix: String,
    /// Prefix of each upstream CA file's deployed path.
    pub ca_prefix: String,
    /// Why the bind and TLS are what they are, for the header.
    pub gateway_note: &'static str,
}

/// The deployed config's text, with a header naming its origin and every change.
pub fn render(plan: &Plan, place: &Placement, target: &str) -> Result<String, DeployError> {
    let mut cfg = plan.config.clone();
    for (name, agent) in cfg.agents.iter_mut() {
        agent.workspace = PathBuf::from(format!("{WORKSPACES}/{name}"));
    }
    cfg.gateway.bind = place.bind.clone();
    (cfg.gateway.tls_cert, cfg.gateway.tls_key) = match &place.tls {
        Some((c, k)) => (Some(c.into()), Some(k.into())),
        None => (None, None),
    };
    cfg.policy.files = plan
        .policy_files
        .iter()
        .map(|f| PathBuf::from(format!("{}{}", place.policy_prefix, f.name)))
        .collect();
    cfg.egress.upstream_ca_files = plan
        .ca_files
        .iter()
        .map(|f| PathBuf::from(format!("{}{}", place.ca_prefix, f.name)))
        .collect();
    let body = toml::to_string(&cfg).map_err(|e| {
        DeployError::Internal(format!("cannot write the deployed cordon.toml: {e}"))
    })?;

    let mut head = comment(
        &format!(
            "cordon.toml for `cordon deploy {target}`, generated from {} (tier {}).",
            plan.config_file.display(),
            plan.tier()
        ),
        "",
    );
    head.push_str(&format!(
        "# Same settings as that file, except where this deployment puts things:\n\
         #   agents.NAME.workspace -> {WORKSPACES}/NAME\n\
         #   gateway.bind          -> {}\n",
        place.bind,
    ));
    // The reason, hanging under its line.
    head.push_str(&comment(place.gateway_note, "").replace("# ", "#     "));
    if let Some((c, k)) = &place.tls {
        head.push_str(&format!("#   gateway.tls_cert/key  -> {c}, {k}\n"));
    }
    if !plan.policy_files.is_empty() {
        head.push_str(&format!(
            "#   policy.files          -> {}*\n",
            place.policy_prefix
        ));
    }
    if !plan.ca_files.is_empty() {
        head.push_str(&format!(
            "#   egress.upstream_ca_files -> {}*\n",
            place.ca_prefix
        ));
    }
    head.push_str(&format!(
        "# Change the source config and regenerate (`cordon deploy {target} --out DIR --force`)\n\
         # rather than editing this copy. It holds no secrets.\n\n"
    ));
    let text = head + &body;
    // Never ship a config the strict loader would refuse.
    config::load_str(&text, Path::new("cordon.toml")).map_err(|e| {
        DeployError::Internal(format!(
            "internal error: the cordon.toml generated for `cordon deploy {target}` does not \
             load ({e}); nothing was written. This is a bug in `cordon deploy`: please report \
             it with {}",
            plan.config_file.display()
        ))
    })?;
    Ok(text)
}
