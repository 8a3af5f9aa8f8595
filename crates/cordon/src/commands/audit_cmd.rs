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
use posture::{Finding, MetadataTarget, Severity, blast, config_checks, host, sorted};
use serde_json::json;

/// Tokens older than this, or living longer than this, are worth rotating.
const TOKEN_OLD_DAYS: i64 = 90;
/// Lifetime of a token `--fix` creates in place of a weak one.
const ROTATED_TTL_DAYS: i64 = 30;
/// Who rotated a token, in the audit log.
const ROTATED_BY: &str = "cordon audit --fix";
/// A secret bound to more hosts than this is reusable in too many places.
const SECRET_MAX_HOSTS: usize = 3;

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
        out.push(Finding::new(
            "audit.verify_failed",
            Severity::Critical,
            "the audit log does not verify: records were changed, removed or reordered",
            e.to_string(),
            "keep the damaged log for investigation (copy it elsewhere); `cordon log \
             verify` names the first bad record",
        ));
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
    let vault = match existing_vault(paths) {
        Ok(v) => v,
        Err(e) => {
            out.push(Finding::not_checked(
                "the vault's secret bindings",
                e.to_string(),
                "run `cordon audit` as the user Cordon runs as, with the vault's passphrase \
                 in the environment if it has one",
            ));
            None
        }
    };
    if let Some(vault) = vault {
        for s in vault.list() {
            let wild: Vec<String> = s
                .hosts
                .iter()
                .filter(|h| h.is_wildcard())
                .map(ToString::to_string)
                .collect();
            if s.hosts.len() > SECRET_MAX_HOSTS || !wild.is_empty() {
                let hosts: Vec<String> = s.hosts.iter().map(ToString::to_string).collect();
                out.push(Finding::new(
                    "secrets.bound_too_widely",
                    Severity::Warn,
                    format!("secret {} may be sent to many hosts", s.name),
                    format!("bound to {}", hosts.join(", ")),
                    format!(
                        "bind it to the one API host that needs it: `cordon secrets set {} \
                         --hosts HOST`",
                        s.name
                    ),
                ));
            }
        }
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

/// A usable gateway token worth replacing, and why.
struct WeakToken {
    record: store::TokenRecord,
    findings: Vec<Finding>,
}

/// Usable tokens created more than [`TOKEN_OLD_DAYS`] ago (`tokens.old`) or living longer
/// than that (`tokens.long_lived`): a leaked one stays useful for too long.
/// A token whose timestamps do not parse is returned with an `audit.not_checked` finding
/// (its age is unknown, so replacing it is the safe side).
fn weak_tokens(store: &store::Store) -> Result<Vec<WeakToken>> {
    let tokens = store
        .list_tokens(false)
        .context("cannot list the gateway tokens")?;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let parse = |ts: &str| {
        time::PrimitiveDateTime::parse(ts, fmt)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    };
    let now = time::OffsetDateTime::now_utc();
    let limit = time::Duration::days(TOKEN_OLD_DAYS);
    let remedy = |id: &str| {
        format!(
            "`cordon audit --fix` replaces it with a {ROTATED_TTL_DAYS}-day token of the same \
             name and scope and revokes it (or create one with --ttl 30d and `cordon token \
             revoke {id}`)"
        )
    };
    let mut out = Vec::new();
    for t in tokens {
        let (Some(created), Some(expires)) = (parse(&t.created_at), parse(&t.expires_at)) else {
            let why = format!(
                "token {} has timestamps that do not parse: created {:?}, expires {:?}",
                t.id, t.created_at, t.expires_at
            );
            out.push(WeakToken {
                findings: vec![Finding::not_checked(
                    format!("token `{}` ({})'s age", t.name, t.scope),
                    why,
                    remedy(&t.id),
                )],
                record: t,
            });
            continue;
        };
        let mut findings = Vec::new();
        let age = (now - created).whole_days();
        if age > TOKEN_OLD_DAYS {
            findings.push(Finding::new(
                "tokens.old",
                Severity::Warn,
                format!("token `{}` ({}) is {age} days old", t.name, t.scope),
                format!("token {} created {}", t.id, t.created_at),
                remedy(&t.id),
            ));
        }
        if expires - created > limit {
            findings.push(Finding::new(
                "tokens.long_lived",
                Severity::Warn,
                format!(
                    "token `{}` ({}) lives {} days: if it leaks, it keeps working that long",
                    t.name,
                    t.scope,
                    (expires - created).whole_days()
                ),
                format!(
                    "token {} created {}, expires {}",
                    t.id, t.created_at, t.expires_at
                ),
                remedy(&t.id),
            ));
        }
        if !findings.is_empty() {
            out.push(WeakToken {
                record: t,
                findings,
            });
        }
    }
    Ok(out)
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
/// [`ROTATED_TTL_DAYS`], then the old one revoked; both audited like `cordon token`.
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
            time::Duration::days(ROTATED_TTL_DAYS),
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
    let unavailable = |why: String| {
        vec![Finding::new(
            "sandbox.unavailable",
            Severity::Warn,
            "cannot run a command in the sandbox to probe the metadata address",
            why,
            "see `cordon sandbox explain`",
        )]
    };
    if which("curl").is_none() {
        return vec![Finding::new(
            "sandbox.metadata_probe_skipped",
            Severity::Info,
            "curl is not installed: the metadata probe from a sandbox was skipped",
            "no curl on PATH",
            "install curl and run `cordon audit --deep` again",
        )];
    }
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
    let url = target.url();
    let session = format!("audit-deep-{}", std::process::id());
    let probe = |direct: bool| {
        // Headers and then the status code on stdout: the proxy marks every response it
        // makes itself (a refusal, an unreachable upstream) with `x-cordon-egress`.
        let mut argv: Vec<String> = [
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
        ]
        .map(String::from)
        .to_vec();
        // Direct: past the proxy variables. Through the proxy: even for an address the
        // sandbox's NO_PROXY exempts (a loopback stand-in in tests).
        let bypass = if direct { "*" } else { "" };
        argv.extend(["--noproxy".into(), bypass.into()]);
        argv.push(url.clone());
        argv
    };
    let mut out = Vec::new();
    for (direct, how) in [(true, "directly"), (false, "through the egress proxy")] {
        let o = match runtime
            .sandbox_exec(&session, probe(direct), Duration::from_secs(10))
            .await
        {
            Ok(o) => o,
            Err(e) => return unavailable(e),
        };
        match metadata_probe(&o.status, &String::from_utf8_lossy(&o.stdout)) {
            Probe::Blocked => {}
            Probe::Reached(code) => out.push(Finding::new(
                "sandbox.metadata_reachable",
                Severity::Critical,
                format!("a sandboxed command reaches the cloud metadata service {how}"),
                format!("curl {url} in the sandbox of agent `{agent}`: HTTP {code}"),
                "check [egress] allow_ranges and the sandbox backend (`cordon sandbox explain`)",
            )),
            Probe::DidNotRun(why) => out.push(Finding::not_checked(
                format!("whether a sandboxed command reaches the metadata service {how}"),
                format!("curl in the sandbox of agent `{agent}`: {why}"),
                "make curl available inside the sandbox (`cordon sandbox explain` shows what \
                 it mounts) and run `cordon audit --deep` again",
            )),
        }
    }
    runtime.end_session(&session);
    out
}

/// What one curl probe of the metadata address showed.
#[derive(Debug, PartialEq)]
enum Probe {
    /// The metadata service answered, with this HTTP status (any status: a 401 or 403
    /// from IMDSv2 or GCP still means the connection got through).
    Reached(String),
    /// No connection, or the egress proxy refused it.
    Blocked,
    /// curl did not run, so the probe says nothing.
    DidNotRun(String),
}

/// `stdout` is curl's `-D -` headers followed by `-w %{http_code}`.
fn metadata_probe(status: &sandbox::ExitStatus, stdout: &str) -> Probe {
    match status {
        sandbox::ExitStatus::Exited(0) => {}
        // 1-3: curl refused its own arguments; 126/127: it is not there to run.
        sandbox::ExitStatus::Exited(c @ (1..=3 | 126 | 127)) => {
            return Probe::DidNotRun(format!("exit status {c}"));
        }
        // Could not resolve, connect, or got no answer in time.
        sandbox::ExitStatus::Exited(_) => return Probe::Blocked,
        other => return Probe::DidNotRun(format!("{other:?}")),
    }
    let code = stdout.lines().last().unwrap_or("").trim();
    let from_proxy = stdout
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("x-cordon-egress:"));
    if from_proxy || code.is_empty() || code == "000" {
        Probe::Blocked
    } else {
        Probe::Reached(code.to_string())
    }
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
    let mut out = Vec::new();
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
        return out;
    };
    let profile = runtime::sandbox_profile(cfg, &agent.workspace);
    let e = backend.explain(&profile);
    for l in e.layers.iter().filter(|l| !l.active) {
        out.push(Finding::new(
            "sandbox.layer_unavailable",
            Severity::Warn,
            format!("sandbox layer {} is not applied on this host", l.layer),
            l.detail.clone(),
            "see `cordon sandbox explain`; a newer kernel or enabling the feature restores it",
        ));
    }
    out
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
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines() {
        let (name, ports) = line.split_once('\t').unwrap_or((line, ""));
        for p in ports.split(", ") {
            let public =
                p.starts_with("0.0.0.0:") || p.starts_with("[::]:") || p.starts_with(":::");
            if public && p.contains(&format!(":{port}->")) {
                found.push(Finding::new(
                    "docker.port_published_public",
                    Severity::Critical,
                    format!("container `{name}` publishes Cordon's port on every interface"),
                    format!("docker ps: {p}"),
                    format!("publish it as 127.0.0.1:{port}:{port} (see `cordon deploy compose`)"),
                ));
            }
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::{Probe, metadata_probe};
    use sandbox::ExitStatus;

    #[test]
    fn a_metadata_answer_of_any_status_is_reached_and_a_curl_that_did_not_run_is_not_blocked() {
        let imds_v2 = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n401";
        assert_eq!(
            metadata_probe(&ExitStatus::Exited(0), imds_v2),
            Probe::Reached("401".into())
        );
        let refused = "HTTP/1.1 403 Forbidden\r\nx-cordon-egress: refused\r\n\r\n403";
        assert_eq!(
            metadata_probe(&ExitStatus::Exited(0), refused),
            Probe::Blocked
        );
        assert_eq!(
            metadata_probe(&ExitStatus::Exited(7), "000"),
            Probe::Blocked
        );
        assert_eq!(
            metadata_probe(&ExitStatus::Exited(28), "000"),
            Probe::Blocked
        );
        for status in [ExitStatus::Exited(127), ExitStatus::Signaled(31)] {
            assert!(
                matches!(metadata_probe(&status, ""), Probe::DidNotRun(_)),
                "{status:?}"
            );
        }
    }
}
