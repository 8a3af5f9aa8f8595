//! `cordon audit [--json] [--fix] [--deep]` and `cordon audit blast-radius [--agent NAME]`:
//! the deployment as an attacker would look at it (`crates/posture`), and what a fully
//! compromised agent could reach.
//!
//! Exit status: 1 when any finding is critical, 0 otherwise (2 for usage errors). The
//! audit reads; only `--fix` changes anything (file modes, a public bind without TLS,
//! weak gateway tokens), and it says what it changed. `--deep` also runs two probe
//! commands in a sandbox (recorded in the audit log like any sandboxed command).
//!
//! A weak token (older than 90 days, or living longer than 90 days) is rotated by `--fix`:
//! a token with the same name and scope and a 30-day lifetime is created, the old one is
//! revoked (both audited, as by `cordon token`), and the new token is printed once on
//! stdout — in `--json`, only under `rotated_tokens` — and written nowhere else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use config::{HostPattern, Paths};
use posture::{
    CurlExit, Finding, MetadataTarget, ProbePath, Severity, blast, config_checks, host, sorted,
    state, tokens,
};
use serde_json::json;

/// Who rotated a token, in the audit log.
const ROTATED_BY: &str = "cordon audit --fix";

pub async fn audit(json_out: bool, fix: bool, deep: bool) -> Result<ExitCode> {
    let paths = Paths::from_env();
    let metadata = MetadataTarget::from_env()?;
    let file = &paths.config_file;
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read the config {} (run `cordon init` first, or point CORDON_CONFIG at it)",
            file.display()
        )
    })?;
    let mut text = text;
    let mut fixed = Vec::new();
    if fix && let Some((tightened, what)) = config_checks::tighten_bind(&text) {
        write_config(file, &tightened)?;
        fixed.push(format!("fixed {}: {what}", file.display()));
        text = tightened;
    }
    let (tier, mut findings) = config_checks::check(&text, file);
    let loaded = config::load_str(&text, file).ok();
    let mut rotated = Vec::new();

    // Files and the state directory.
    let guarded = host::guarded_files(file, &paths.state_dir);
    if fix {
        fixed.extend(host::fix_modes(&guarded));
    }
    findings.extend(host::check_modes(&guarded));
    if let Some(f) = host::running_as_root(rustix::process::geteuid().as_raw()) {
        findings.push(f);
    }

    if let Some(cfg) = &loaded {
        let home = config::home_dir();
        for (name, agent) in &cfg.agents {
            findings.extend(host::env_files(name, &agent.workspace));
            findings.extend(host::workspace_scope(
                name,
                &agent.workspace,
                &home,
                &[&paths.state_dir, file.as_path()],
            ));
        }
        if fix {
            match rotate_weak_tokens(cfg, &paths) {
                Ok(r) => rotated = r,
                Err(e) => eprintln!("cordon: weak tokens were not rotated: {e:#}"),
            }
            fixed.extend(rotated.iter().map(Rotated::describe));
        }
        findings.extend(state_checks(cfg, &paths));
        // What really listens on the gateway's port.
        if let Ok(bind) = cfg.gateway.bind.parse::<SocketAddr>() {
            let tls = cfg.gateway.tls_cert.is_some() && cfg.gateway.tls_key.is_some();
            let (_, f) = host::gateway_exposure(bind.port(), tls, Path::new("/proc/net"));
            findings.extend(f);
            if deep {
                findings.extend(docker_published(bind.port()));
            }
        }
        if deep {
            findings.extend(sandbox_layers(cfg));
            findings.extend(metadata_from_sandbox(&paths, metadata).await);
        }
    }
    let answers = host::reachable(metadata.addr(), Duration::from_millis(300));
    findings.extend(host::metadata_from_host(metadata, answers));
    let vendor = host::cloud_vendor(Path::new("/sys/class/dmi/id"));
    if vendor.is_some() {
        findings.extend(host::metadata_firewall(vendor, &firewall_rulesets()));
    }

    let findings = sorted(findings);
    let critical = findings.iter().any(|f| f.severity == Severity::Critical);
    if json_out {
        let out = json!({
            "config": file.display().to_string(),
            "tier": tier.map(config_checks::Tier::as_str),
            "findings": findings,
            "fixed": fixed,
            "rotated_tokens": rotated.iter().map(|r| json!({
                "old_id": r.old.id,
                "new_id": r.new.record.id,
                "name": r.new.record.name,
                "scope": r.new.record.scope.as_str(),
                "expires_at": r.new.record.expires_at,
                "token": r.new.token.expose(),
            })).collect::<Vec<_>>(),
            "critical": critical,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_findings(file, tier, &findings, &fixed, &rotated);
    }
    if !rotated.is_empty() {
        eprintln!(
            "The new tokens above are shown only now and stored nowhere in clear: give each \
             to whoever used the old one, which no longer works."
        );
    }
    Ok(if critical {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Replace the config file atomically, keeping its mode.
fn write_config(file: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)?.permissions().mode() & 0o7777;
    Ok(config::atomic_write(file, text.as_bytes(), mode)?)
}

fn print_findings(
    file: &Path,
    tier: Option<config_checks::Tier>,
    findings: &[Finding],
    fixed: &[String],
    rotated: &[Rotated],
) {
    println!(
        "cordon audit of {} (tier {})",
        file.display(),
        tier.map_or("unknown", config_checks::Tier::as_str)
    );
    for line in fixed {
        println!("  {line}");
    }
    for r in rotated {
        println!(
            "  new token {} (`{}`): {}",
            r.new.record.id,
            r.new.record.name,
            r.new.token.expose()
        );
    }
    if findings.is_empty() {
        println!("no findings");
        return;
    }
    for f in findings {
        println!("\n[{}] {}: {}", f.severity.as_str(), f.id, f.title);
        println!("  evidence: {}", f.evidence);
        println!("  remedy:   {}", f.remedy);
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    println!(
        "\n{} critical, {} warn, {} info",
        count(Severity::Critical),
        count(Severity::Warn),
        count(Severity::Info)
    );
}

/// Tokens, the audit log and vault bindings (state that exists only after use).
fn state_checks(cfg: &config::Config, paths: &Paths) -> Vec<Finding> {
    let mut out = Vec::new();
    let audit_dir = paths.audit_dir();
    if audit_dir.exists()
        && let Err(e) = audit::verify(&audit_dir)
    {
        out.push(state::audit_log_damaged(e.to_string()));
    }
    if crate::setup::store_exists(cfg, paths) {
        match crate::setup::open_store(cfg, paths).and_then(|s| weak_tokens(&s)) {
            Ok(weak) => out.extend(weak.into_iter().flat_map(|w| w.findings)),
            Err(e) => out.push(Finding::not_checked(
                "gateway tokens (age and lifetime)",
                format!("{e:#}"),
                "fix what the error names and run `cordon audit` again; `cordon token list` \
                 shows the tokens",
            )),
        }
    }
    // Each secret's name and bound hosts; `None` when the vault could not be read. A
    // vault never written holds no secret.
    let (vault, bindings) = match existing_vault(paths) {
        Ok(Some(v)) => {
            let list: Vec<(String, Vec<HostPattern>)> =
                v.list().into_iter().map(|s| (s.name, s.hosts)).collect();
            (Some(v), Some(list))
        }
        Ok(None) => (None, Some(Vec::new())),
        Err(e) => {
            out.push(Finding::not_checked(
                "the vault's secret bindings",
                e.to_string(),
                "run `cordon audit` as the user Cordon runs as, with the vault's passphrase \
                 in the environment if it has one",
            ));
            (None, None)
        }
    };
    let vault_names: Vec<String> = bindings
        .iter()
        .flatten()
        .map(|(name, _)| name.clone())
        .collect();
    if let Some(vault) = vault {
        out.extend(state::secret_bindings(&vault.list()));
    }
    if bindings.is_some() {
        out.extend(config_checks::secrets_outside_vault(cfg, &vault_names));
    }
    out.extend(skill_checks(cfg, paths, &vault_names));
    out.extend(mcp_checks(cfg, paths, bindings.as_deref()));
    out
}

/// MCP servers against `mcp.lock` (tools never approved, pins of removed servers) and,
/// when the vault could be read (`vault`: each secret's name and bound hosts), against
/// the vault.
fn mcp_checks(
    cfg: &config::Config,
    paths: &Paths,
    vault: Option<&[(String, Vec<HostPattern>)]>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(vault) = vault {
        out.extend(posture::mcp::secret_bindings(&cfg.mcp.servers, vault));
    }
    match mcp::Pins::load(&mcp::Pins::path_for(&paths.config_file)) {
        Ok(pins) => {
            let pinned: BTreeMap<String, Vec<String>> = pins
                .servers
                .into_iter()
                .map(|s| (s.name, s.tools.into_iter().map(|t| t.name).collect()))
                .collect();
            out.extend(posture::mcp::approvals(&cfg.mcp.servers, &pinned));
        }
        Err(e) => out.push(posture::mcp::lock_invalid(e)),
    }
    out
}

/// Installed skills (drift, high findings, broad capabilities) and skill folders lying
/// unpinned in a workspace.
fn skill_checks(cfg: &config::Config, paths: &Paths, vault: &[String]) -> Vec<Finding> {
    let (lock_path, store) = runtime::skills::locations(&paths.config_file, &paths.state_dir);
    let lock = match skills::Lock::load(&lock_path) {
        Ok(l) => l,
        Err(e) => {
            return vec![Finding::not_checked(
                "installed skills",
                e.to_string(),
                "fix skills.lock (it is generated by `cordon skills`; restore it from version \
                 control)",
            )];
        }
    };
    let checked: Vec<posture::skills::Checked<'_>> = lock
        .skills
        .iter()
        .map(|s| posture::skills::Checked {
            locked: s,
            intact: store
                .load(&s.sha256)
                .map(|_| ())
                .map_err(|d| runtime::skills::drift_reason(&d)),
        })
        .collect();
    let mut out = posture::skills::installed(&checked, vault);
    let pins: Vec<&str> = lock.skills.iter().map(|s| s.sha256.as_str()).collect();
    let pinned =
        |dir: &Path| skills::Tree::read_dir(dir).is_ok_and(|t| pins.contains(&t.sha256().as_str()));
    for (name, agent) in &cfg.agents {
        out.extend(posture::skills::unpinned_in_workspace(
            name,
            &agent.workspace,
            3,
            &pinned,
        ));
    }
    out
}

/// The vault, if one was ever written. Opening a missing vault would create it (and its
/// key file), and the audit only reads.
fn existing_vault(paths: &Paths) -> Result<Option<secrets::Vault>, secrets::VaultError> {
    if !paths.state_dir.join("vault").join("secrets.enc").exists() {
        return Ok(None);
    }
    secrets::Vault::open(&paths.state_dir).map(Some)
}

/// The usable gateway tokens worth replacing (`posture::tokens`).
fn weak_tokens(store: &store::Store) -> Result<Vec<tokens::WeakToken>> {
    let tokens = store
        .list_tokens(false)
        .context("cannot list the gateway tokens")?;
    Ok(tokens::weak_tokens(tokens, time::OffsetDateTime::now_utc()))
}

/// A weak token replaced by `--fix`.
struct Rotated {
    old: store::TokenRecord,
    /// The replacement, with the one copy of the token in clear.
    new: gateway::token::IssuedToken,
}

impl Rotated {
    /// The `fixed` line (without the token, which is printed once, separately).
    fn describe(&self) -> String {
        format!(
            "rotated token `{}` ({}): {} revoked, replaced by {} (expires {})",
            self.old.name,
            self.old.scope,
            self.old.id,
            self.new.record.id,
            self.new.record.expires_at
        )
    }
}

/// Replace every weak token: first a new token with the same name and scope for
/// [`tokens::ROTATED_TTL_DAYS`], then the old one revoked; both audited like `cordon token`.
/// Stops at the first failure (said on stderr) and returns what was rotated so far, so a
/// token that was created is always printed.
fn rotate_weak_tokens(cfg: &config::Config, paths: &Paths) -> Result<Vec<Rotated>> {
    if !crate::setup::store_exists(cfg, paths) {
        return Ok(Vec::new());
    }
    let store = crate::setup::open_store(cfg, paths)?;
    let weak = weak_tokens(&store)?;
    if weak.is_empty() {
        return Ok(Vec::new());
    }
    let audit = audit::Log::open(&paths.audit_dir()).with_context(|| {
        format!(
            "cannot open the audit log in {} (a rotation must be recorded)",
            paths.audit_dir().display()
        )
    })?;
    let mut rotated = Vec::new();
    for w in weak {
        let old = w.record;
        let new = match gateway::token::create(
            &store,
            &audit,
            &old.name,
            old.scope,
            time::Duration::days(tokens::ROTATED_TTL_DAYS),
            ROTATED_BY,
        ) {
            Ok(new) => new,
            Err(e) => {
                eprintln!(
                    "cordon: cannot create a replacement for token {}: {e}",
                    old.id
                );
                break;
            }
        };
        let revoked = gateway::token::revoke(&store, &audit, &old.id, ROTATED_BY);
        if let Err(e) = &revoked {
            eprintln!(
                "cordon: token {} was replaced by {} but could not be revoked: {e}; run \
                 `cordon token revoke {}`",
                old.id, new.record.id, old.id
            );
        }
        rotated.push(Rotated { old, new });
        if revoked.is_err() {
            break;
        }
    }
    Ok(rotated)
}

/// Whether a sandboxed command reaches the metadata service, directly or through the
/// egress proxy (it must do neither).
async fn metadata_from_sandbox(paths: &Paths, target: MetadataTarget) -> Vec<Finding> {
    if which("curl").is_none() {
        return vec![posture::curl_missing()];
    }
    let unavailable = |why: String| vec![posture::sandbox_unavailable(why)];
    let state = match crate::setup::open_state_at(paths) {
        Ok(s) => s,
        Err(e) => return unavailable(format!("{e:#}")),
    };
    let Some(agent) = state.config.agents.keys().next().cloned() else {
        return Vec::new();
    };
    let runtime = match crate::setup::build_runtime(
        &state,
        state.config.clone(),
        &agent,
        std::sync::Arc::new(runtime::NoHumanApprover),
    ) {
        Ok(r) => r,
        Err(e) => return unavailable(format!("{e:#}")),
    };
    let session = format!("audit-deep-{}", std::process::id());
    let mut out = Vec::new();
    for path in ProbePath::BOTH {
        let o = match runtime
            .sandbox_exec(&session, target.curl_probe(path), Duration::from_secs(10))
            .await
        {
            Ok(o) => o,
            Err(e) => return unavailable(e),
        };
        let exit = match o.status {
            sandbox::ExitStatus::Exited(c) => CurlExit::Code(c),
            other => CurlExit::Other(format!("{other:?}")),
        };
        let probe = posture::read_probe(&exit, &String::from_utf8_lossy(&o.stdout));
        out.extend(posture::sandbox_probe_finding(target, path, &agent, probe));
    }
    runtime.end_session(&session);
    out
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Sandbox layers this kernel cannot apply.
fn sandbox_layers(cfg: &config::Config) -> Vec<Finding> {
    let backend = match crate::setup::sandbox_backend(cfg) {
        Ok(b) => b,
        Err(e) => {
            return vec![Finding::not_checked(
                "the sandbox layers this host applies",
                format!("{e:#}"),
                "see `cordon sandbox explain`",
            )];
        }
    };
    let Some((_, agent)) = cfg.agents.iter().next() else {
        return Vec::new();
    };
    let profile = runtime::sandbox_profile(cfg, &agent.workspace);
    let e = backend.explain(&profile);
    host::sandbox_layers_unavailable(
        e.layers
            .iter()
            .filter(|l| !l.active)
            .map(|l| (l.layer.as_str(), l.detail.as_str())),
    )
}

/// What the firewall tools print (those that answer).
fn firewall_rulesets() -> Vec<String> {
    [
        ("nft", &["list", "ruleset"][..]),
        ("iptables-save", &[][..]),
        ("ip6tables-save", &[][..]),
    ]
    .iter()
    .filter_map(|(cmd, args)| {
        let out = std::process::Command::new(cmd)
            .args(*args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .collect()
}

/// Docker containers publishing the gateway's port on every interface.
fn docker_published(port: u16) -> Vec<Finding> {
    let Ok(out) = std::process::Command::new("docker")
        .args(["ps", "--format", "{{.Names}}\t{{.Ports}}"])
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    host::docker_published(&String::from_utf8_lossy(&out.stdout), port)
}

pub fn blast_radius(agent: Option<&str>, json_out: bool) -> Result<ExitCode> {
    let paths = Paths::from_env();
    let cfg = crate::setup::load_config(&paths)?;
    let names: Vec<String> = match agent {
        Some(a) => {
            crate::setup::agent_config(&cfg, a)?;
            vec![a.to_string()]
        }
        None => cfg.agents.keys().cloned().collect(),
    };
    if names.is_empty() {
        bail!("the config has no agents");
    }
    let (vault, vault_note) = match existing_vault(&paths) {
        Ok(None) => (BTreeMap::new(), None),
        Ok(Some(v)) => (
            v.list()
                .into_iter()
                .map(|s| (s.name, s.hosts))
                .collect::<BTreeMap<String, Vec<HostPattern>>>(),
            None,
        ),
        Err(e) => (
            BTreeMap::new(),
            Some(format!("vault not readable ({e}): secret bindings unknown")),
        ),
    };
    let mut radii = Vec::new();
    for name in &names {
        let policy = crate::setup::load_policy_from(&paths, &cfg, name)?;
        let memory = paths.state_dir.join("agents").join(name).join("memory");
        radii.push(blast::blast_radius(
            name,
            &cfg.agents[name],
            &policy,
            &vault,
            &memory.display().to_string(),
        ));
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "agents": radii, "note": vault_note }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(n) = vault_note {
        println!("note: {n}");
    }
    for r in &radii {
        println!("agent `{}` — if its model were fully compromised:", r.agent);
        println!("  worst:");
        for w in &r.worst {
            println!("    [{}] {}", w.severity.as_str(), w.what);
        }
        if r.worst.is_empty() {
            println!("    nothing without a human");
        }
        println!("  hosts reachable without a human:");
        for h in &r.hosts {
            println!("    {} ({})", h.pattern, h.methods.join(", "));
        }
        if r.hosts.is_empty() {
            println!("    none");
        }
        println!("  secrets:");
        for s in &r.secrets {
            println!(
                "    {}: bound to {}; usable without a human at {}",
                s.name,
                if s.bound.is_empty() {
                    "nothing (not in the vault)".to_string()
                } else {
                    s.bound.join(", ")
                },
                if s.usable_at.is_empty() {
                    "none".to_string()
                } else {
                    s.usable_at.join(", ")
                }
            );
        }
        if r.secrets.is_empty() {
            println!("    none");
        }
        println!("  writable without a human: {}", list_or_none(&r.writable));
        println!("  without a human: {}", list_or_none(&r.without_human));
        println!("  after a human approves: {}", list_or_none(&r.with_human));
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}
