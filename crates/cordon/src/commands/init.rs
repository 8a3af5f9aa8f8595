use std::os::unix::fs::DirBuilderExt;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use config::{Paths, Tier};

use crate::setup::ensure_private_dir;

pub fn init(tier: Tier, force: bool) -> Result<ExitCode> {
    let paths = Paths::from_env();
    let file = &paths.config_file;
    if file.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            file.display()
        );
    }
    let text = config::init_template(tier);
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
    println!("next: set [model] in the config, then `cordon run \"...\"` or `cordon chat`");
    Ok(ExitCode::SUCCESS)
}
