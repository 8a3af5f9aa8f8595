//! `cordon skills add|list|show|remove|update|verify|scan`.
//!
//! Guarantees: nothing is installed before the tree was read whole (every refusal of
//! `skills::tree` applies), its manifest parsed, its scan shown and a human accepted it:
//! at the terminal, or with `--yes` only when nothing is high or critical and (for an
//! update) no capability is new. A critical finding is never installed; a high one needs
//! `--accept-risk` and the skill's name typed at a terminal. The `install_skill` policy of
//! every agent it is enabled for is decided first (a `deny` refuses). The stored tree is
//! written before the lock names it and removed again if the lock cannot be written, so
//! a failure leaves nothing half-installed. Every change is recorded in the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use audit::event::{SkillEvent, SkillInstalled, SkillRemoved};
use config::Paths;
use serde_json::json;
use skills::install::{Admission, Consent};
use skills::source::Source;
use skills::{Capabilities, Lock, Locked, Manifest, Report, Severity, Store, Tree};

use crate::cli::SkillsCommand;
use crate::setup::{State, open_state, open_vault};

/// Largest local archive read (a skill is at most 20 MB unpacked).
const MAX_ARCHIVE_BYTES: u64 = 25 * 1024 * 1024;

pub async fn skills(command: SkillsCommand) -> Result<ExitCode> {
    match command {
        SkillsCommand::Add {
            source,
            agents,
            yes,
            accept_risk,
            env,
            ca,
        } => {
            let how = Consent { yes, accept_risk };
            add(&source, agents, how, &env, ca.as_deref()).await
        }
        SkillsCommand::List { json } => list(json),
        SkillsCommand::Show { name, json } => show(&name, json),
        SkillsCommand::Remove { name } => remove(&name),
        SkillsCommand::Update {
            name,
            source,
            yes,
            accept_risk,
            ca,
        } => update(&name, &source, Consent { yes, accept_risk }, ca.as_deref()).await,
        SkillsCommand::Verify => verify(),
        SkillsCommand::Scan { path, json } => scan(&path, json),
    }
}

/// A skill read from its source: its tree, manifest and scan.
struct Candidate {
    source: String,
    tree: Tree,
    manifest: Manifest,
    report: Report,
}

/// Read SOURCE into memory (nothing is written yet), parse the manifest and scan it.
async fn fetch(raw: &str, ca: Option<&Path>) -> Result<Candidate> {
    let source = Source::parse(raw).map_err(anyhow::Error::msg)?;
    let tree = match &source {
        Source::Dir(dir) => Tree::read_dir(dir)?,
        Source::Archive(path) => {
            let bytes = read_capped(path)?;
            Tree::read_archive(&path.display().to_string(), &bytes)?
        }
        Source::Url { url, sha256 } => {
            let roots = match ca {
                Some(p) => Some(
                    std::fs::read(p)
                        .with_context(|| format!("cannot read --ca {}", p.display()))?,
                ),
                None => None,
            };
            let bytes = skills::source::fetch(url, sha256, roots.as_deref())
                .await
                .map_err(anyhow::Error::msg)?;
            Tree::read_archive(url, &bytes)?
        }
    };
    let manifest = manifest_of(&tree)?;
    let report = skills::scan::scan(&tree, &manifest.declared());
    Ok(Candidate {
        source: source.display(),
        tree,
        manifest,
        report,
    })
}

fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_ARCHIVE_BYTES {
        bail!(
            "{}: {len} bytes, larger than the {MAX_ARCHIVE_BYTES} an archive of a skill may be",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn manifest_of(tree: &Tree) -> Result<Manifest> {
    let file = tree
        .get(skills::manifest::FILE)
        .context("the skill has no SKILL.md at its root")?;
    let text = std::str::from_utf8(&file.contents).context("SKILL.md is not UTF-8")?;
    Ok(skills::manifest::parse(skills::manifest::FILE, text)?)
}

fn lock_and_store(state: &State) -> (std::path::PathBuf, Store) {
    runtime::skills::locations(&Paths::from_env().config_file, &state.state_dir)
}

async fn add(
    raw: &str,
    agents: Vec<String>,
    how: Consent,
    env: &[String],
    ca: Option<&Path>,
) -> Result<ExitCode> {
    let state = open_state()?;
    check_agents(&state, &agents)?;
    let (lock_path, store) = lock_and_store(&state);
    let mut lock = Lock::load(&lock_path)?;
    let c = fetch(raw, ca).await?;
    let name = c.manifest.name.clone();
    if lock.get(&name).is_some() {
        bail!("skill `{name}` is installed already; use `cordon skills update {name} SOURCE`");
    }
    let env = c
        .manifest
        .env_mapping(env)
        .map_err(|e| anyhow::anyhow!("--env {e}"))?;
    print_candidate(&c, &env);
    check_vault(&state, &c.manifest.capabilities, &env)?;
    if let Err(why) = consent(&state, &c, &agents, how, &[]) {
        record_refused(&state, &name, &c, &why);
        bail!(why);
    }
    let locked = Locked {
        name: name.clone(),
        source: c.source.clone(),
        version: c.manifest.version.clone(),
        sha256: c.tree.sha256(),
        verdict: c.report.verdict().to_string(),
        accepted_risk: c.report.worst() == Some(Severity::High),
        agents,
        installed_at: now(),
        capabilities: c.manifest.capabilities.clone(),
        env,
    };
    warn(skills::install::commit(
        &store, &c.tree, &lock_path, &mut lock, &locked, None,
    )?);
    record_installed(&state, &locked, &c.report, None, how)?;
    eprintln!(
        "skill `{name}` installed, pinned at {} in {}",
        locked.sha256,
        lock_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn update(name: &str, raw: &str, how: Consent, ca: Option<&Path>) -> Result<ExitCode> {
    let state = open_state()?;
    let (lock_path, store) = lock_and_store(&state);
    let mut lock = Lock::load(&lock_path)?;
    let old = lock.get(name).cloned().with_context(|| {
        format!("no skill `{name}` is installed; add it with `cordon skills add`")
    })?;
    let c = fetch(raw, ca).await?;
    if c.manifest.name != name {
        bail!(
            "the new version's SKILL.md is named `{}`, not `{name}`",
            c.manifest.name
        );
    }
    let sha = c.tree.sha256();
    // The files that changed, against the installed tree when it is intact.
    match store.load(&old.sha256) {
        Ok(old_tree) => {
            let d = c.tree.diff(&old_tree);
            eprintln!("files changed since {}:", short(&old.sha256));
            for (mark, list) in [("+", &d.added), ("-", &d.removed), ("~", &d.changed)] {
                for f in list {
                    eprintln!("  {mark} {f}");
                }
            }
            if d.is_empty() {
                eprintln!("  (none)");
            }
        }
        Err(d) => eprintln!(
            "the installed tree cannot be compared: {}",
            runtime::skills::drift_reason(&d)
        ),
    }
    let new_caps = c.manifest.capabilities.added_since(&old.capabilities);
    if new_caps.is_empty() {
        eprintln!("capabilities: no new ones");
    } else {
        eprintln!("NEW capabilities (need your approval again):");
        for n in &new_caps {
            eprintln!("  + {n}");
        }
    }
    let env: BTreeMap<String, String> = old
        .env
        .iter()
        .filter(|(var, _)| c.manifest.requires_env.contains(var))
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    print_candidate(&c, &env);
    check_vault(&state, &c.manifest.capabilities, &env)?;
    if let Err(why) = consent(&state, &c, &old.agents, how, &new_caps) {
        record_refused(&state, name, &c, &why);
        bail!(why);
    }
    let locked = Locked {
        name: name.to_string(),
        source: c.source.clone(),
        version: c.manifest.version.clone(),
        sha256: sha,
        verdict: c.report.verdict().to_string(),
        accepted_risk: c.report.worst() == Some(Severity::High),
        agents: old.agents.clone(),
        installed_at: now(),
        capabilities: c.manifest.capabilities.clone(),
        env,
    };
    warn(skills::install::commit(
        &store,
        &c.tree,
        &lock_path,
        &mut lock,
        &locked,
        Some(&old),
    )?);
    record_installed(&state, &locked, &c.report, Some(&old.sha256), how)?;
    eprintln!(
        "skill `{name}` updated: {} -> {}",
        short(&old.sha256),
        short(&locked.sha256)
    );
    Ok(ExitCode::SUCCESS)
}

/// The `install_skill` decision of every agent the skill is for, then what the human
/// must do ([`skills::install::admit`]), asked at the terminal when needed.
fn consent(
    state: &State,
    c: &Candidate,
    agents: &[String],
    how: Consent,
    new_capabilities: &[String],
) -> std::result::Result<(), String> {
    let name = &c.manifest.name;
    let sha = c.tree.sha256();
    let mut asks = Vec::new();
    let targets: Vec<String> = if agents.is_empty() {
        state.config.agents.keys().cloned().collect()
    } else {
        agents.to_vec()
    };
    for agent in &targets {
        let policy = crate::setup::load_policy(&state.config, agent).map_err(|e| e.to_string())?;
        let action = guard::Action::InstallSkill {
            name: name.clone(),
            sha256: sha.clone(),
        };
        let labels = guard::Labels::trusted();
        let contacted = BTreeSet::new();
        let secret_hosts = BTreeMap::new();
        let view = guard::SessionView {
            session: "cli",
            labels: &labels,
            contacted: &contacted,
            depth: 0,
            secret_hosts: &secret_hosts,
            skill: None,
            checkpointed: false,
            labelled_code: &[],
        };
        let v = policy.evaluate(&action, &view);
        match &v.decision {
            guard::Decision::Deny { reason } => {
                return Err(format!(
                    "the policy of agent `{agent}` refuses installing `{name}`: {reason} [rule {}]",
                    v.rule
                ));
            }
            guard::Decision::Ask { reason } => asks.push(format!("{agent}: {reason}")),
            guard::Decision::Allow { .. } => {}
        }
    }
    match skills::install::admit(name, &c.report, new_capabilities, &asks, how) {
        Admission::Accept => Ok(()),
        Admission::Refuse(why) => Err(why),
        Admission::Confirm {
            prompt,
            expected,
            why,
        } => {
            if let Some(why) = why {
                eprintln!("{why}");
            }
            typed_at_terminal(&prompt, &expected)
        }
    }
}

/// Ask at the terminal and accept only `expected`.
fn typed_at_terminal(prompt: &str, expected: &str) -> std::result::Result<(), String> {
    if !std::io::stdin().is_terminal() {
        return Err(
            "not installed: a human must confirm at a terminal (stdin is not one); --yes \
             accepts only a skill with no high or critical finding and no new capability"
                .into(),
        );
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    if line.trim() == expected {
        Ok(())
    } else {
        Err("not installed: not confirmed".into())
    }
}

/// Every approved secret must be in the vault, or the skill would be refused at load.
fn check_vault(state: &State, caps: &Capabilities, env: &BTreeMap<String, String>) -> Result<()> {
    if caps.secrets.is_empty() && env.is_empty() {
        return Ok(());
    }
    let vault = open_vault(state)?;
    for name in caps.secrets.iter().chain(env.values()) {
        if vault.get(name).is_none() {
            bail!(
                "the skill needs the secret `{name}`, which is not in the vault; add it first \
                 with `cordon secrets set {name} --hosts HOST`"
            );
        }
    }
    Ok(())
}

fn check_agents(state: &State, agents: &[String]) -> Result<()> {
    for a in agents {
        if !state.config.agents.contains_key(a) {
            let known: Vec<&str> = state.config.agents.keys().map(String::as_str).collect();
            bail!(
                "--agent `{a}`: no such agent; configured: {}",
                known.join(", ")
            );
        }
    }
    Ok(())
}

fn print_candidate(c: &Candidate, env: &BTreeMap<String, String>) {
    let m = &c.manifest;
    let caps = &m.capabilities;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    eprintln!(
        "skill {} {}\n  {}\n  source   {}\n  sha256   {}\n  files    {} ({} bytes)",
        m.name,
        m.version.as_deref().unwrap_or(""),
        m.description,
        c.source,
        c.tree.sha256(),
        c.tree.files().len(),
        c.tree.size()
    );
    if !m.declares {
        eprintln!("  (declares no metadata.cordon: no network, no secrets, read-only workspace)");
    }
    eprintln!(
        "  asks for: egress {}; secrets {}; programs {}; workspace {}",
        list(&caps.egress),
        list(&caps.secrets),
        list(&caps.bins),
        caps.workspace.as_str()
    );
    if !m.requires_env.is_empty() {
        let shown: Vec<String> = m
            .requires_env
            .iter()
            .map(|v| match env.get(v) {
                Some(s) => format!("{v} <- secret {s}"),
                None => format!("{v} (not given; map with --env {v}=SECRET)"),
            })
            .collect();
        eprintln!("  environment: {}", shown.join(", "));
    }
    print_report(&c.report);
}

fn print_report(r: &Report) {
    eprint!("{}", report_text(r));
}

/// The findings as text: a summary line, then per finding its severity, rule, place,
/// evidence and why.
fn report_text(r: &Report) -> String {
    if r.findings.is_empty() {
        return "scan: clean\n".into();
    }
    let mut out = format!(
        "scan: {} finding(s), worst {}\n",
        r.findings.len(),
        r.verdict()
    );
    for f in &r.findings {
        out.push_str(&format!(
            "  {:<8} {}  {}:{}  {}\n           {}\n",
            f.severity.as_str(),
            f.id,
            f.file,
            f.line,
            f.evidence,
            f.why
        ));
    }
    out
}

fn counts(r: &Report) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for f in &r.findings {
        *m.entry(f.severity.as_str().to_string()).or_insert(0) += 1;
    }
    m
}

fn record_installed(
    state: &State,
    locked: &Locked,
    report: &Report,
    previous: Option<&str>,
    how: Consent,
) -> Result<()> {
    let payload = SkillInstalled {
        skill: locked.name.clone(),
        source: locked.source.clone(),
        sha256: locked.sha256.clone(),
        previous: previous.map(str::to_string),
        verdict: locked.verdict.clone(),
        findings: counts(report),
        accepted_risk: locked.accepted_risk,
        capabilities: json!({
            "egress": locked.capabilities.egress,
            "secrets": locked.capabilities.secrets,
            "bins": locked.capabilities.bins,
            "workspace": locked.capabilities.workspace.as_str(),
            "env": locked.env,
        }),
        agents: locked.agents.clone(),
        by: if how.yes { "cli --yes" } else { "cli" }.into(),
    };
    let event = if previous.is_some() {
        SkillEvent::Updated(payload)
    } else {
        SkillEvent::Added(payload)
    };
    state.audit.record_event(None, event)?;
    Ok(())
}

fn record_refused(state: &State, name: &str, c: &Candidate, why: &str) {
    let event = SkillEvent::Refused(audit::event::SkillRefused {
        skill: name.to_string(),
        sha256: Some(c.tree.sha256()),
        stage: "install".into(),
        reason: why.to_string(),
        call_id: None,
    });
    if let Err(e) = state.audit.record_event(None, event) {
        eprintln!("warning: the refusal could not be recorded: {e}");
    }
}

fn list(as_json: bool) -> Result<ExitCode> {
    let state = open_state()?;
    let (lock_path, _) = lock_and_store(&state);
    let lock = Lock::load(&lock_path)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&lock.skills)?);
        return Ok(ExitCode::SUCCESS);
    }
    if lock.skills.is_empty() {
        eprintln!("no skills installed ({})", lock_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<10} {:<14} {:<9} {:<14} capabilities",
        "NAME", "VERSION", "SHA256", "VERDICT", "AGENTS"
    );
    for s in &lock.skills {
        println!(
            "{:<20} {:<10} {:<14} {:<9} {:<14} {}",
            s.name,
            s.version.as_deref().unwrap_or("-"),
            short(&s.sha256),
            s.verdict,
            if s.agents.is_empty() {
                "all".to_string()
            } else {
                s.agents.join(",")
            },
            caps_line(&s.capabilities)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn caps_line(c: &Capabilities) -> String {
    let or_none = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    format!(
        "egress {} secrets {} bins {} workspace {}",
        or_none(&c.egress),
        or_none(&c.secrets),
        or_none(&c.bins),
        c.workspace.as_str()
    )
}

fn show(name: &str, as_json: bool) -> Result<ExitCode> {
    let state = open_state()?;
    let (lock_path, store) = lock_and_store(&state);
    let lock = Lock::load(&lock_path)?;
    let s = lock
        .get(name)
        .with_context(|| format!("no skill `{name}` is installed"))?;
    let tree = store.load(&s.sha256);
    let report = tree.as_ref().ok().map(|t| {
        let mut declared = s.capabilities.clone();
        declared.secrets.extend(s.env.keys().cloned());
        skills::scan::scan(t, &declared)
    });
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "skill": s,
                "intact": tree.is_ok(),
                "drift": tree.as_ref().err().map(runtime::skills::drift_reason),
                "files": tree.as_ref().ok().map(|t| t.files().iter().map(|f| &f.path).collect::<Vec<_>>()),
                "findings": report.as_ref().map(|r| &r.findings),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}  {}\n  source      {}\n  sha256      {}\n  verdict     {}{}\n  agents      {}\n  installed   {}\n  capabilities {}",
        s.name,
        s.version.as_deref().unwrap_or(""),
        s.source,
        s.sha256,
        s.verdict,
        if s.accepted_risk {
            " (risk accepted)"
        } else {
            ""
        },
        if s.agents.is_empty() {
            "all".to_string()
        } else {
            s.agents.join(", ")
        },
        s.installed_at,
        caps_line(&s.capabilities)
    );
    for (var, secret) in &s.env {
        println!("  env         {var} <- secret {secret}");
    }
    match (&tree, &report) {
        (Ok(t), Some(r)) => {
            println!("  files       {}", t.files().len());
            for f in t.files() {
                println!("    {}{}", f.path, if f.executable { " (x)" } else { "" });
            }
            print_report(r);
        }
        (Err(d), _) => println!("  DRIFTED: {}", runtime::skills::drift_reason(d)),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(name: &str) -> Result<ExitCode> {
    let state = open_state()?;
    let (lock_path, store) = lock_and_store(&state);
    let mut lock = Lock::load(&lock_path)?;
    let (old, warning) = skills::install::uninstall(&store, &lock_path, &mut lock, name)?;
    warn(warning);
    state.audit.record_event(
        None,
        SkillEvent::Removed(SkillRemoved {
            skill: name.to_string(),
            sha256: old.sha256.clone(),
            by: "cli".into(),
        }),
    )?;
    eprintln!("skill `{name}` removed");
    Ok(ExitCode::SUCCESS)
}

fn warn(warning: Option<String>) {
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
}

fn verify() -> Result<ExitCode> {
    let state = open_state()?;
    let (lock_path, store) = lock_and_store(&state);
    let lock = Lock::load(&lock_path)?;
    let mut drifted = 0;
    for s in &lock.skills {
        match store.load(&s.sha256) {
            Ok(_) => println!("ok       {}  {}", s.name, s.sha256),
            Err(d) => {
                drifted += 1;
                println!("DRIFTED  {}  {}", s.name, runtime::skills::drift_reason(&d));
                runtime::skills::record_drift(&state.audit, None, &s.name, &d);
            }
        }
    }
    if drifted > 0 {
        eprintln!(
            "{drifted} of {} skill(s) drifted from skills.lock",
            lock.skills.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("{} skill(s) match skills.lock", lock.skills.len());
    Ok(ExitCode::SUCCESS)
}

fn scan(path: &Path, as_json: bool) -> Result<ExitCode> {
    let tree = if path.is_dir() {
        Tree::read_dir(path)?
    } else {
        let bytes = read_capped(path)?;
        Tree::read_archive(&path.display().to_string(), &bytes)?
    };
    let manifest = manifest_of(&tree)?;
    let report = skills::scan::scan(&tree, &manifest.declared());
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "skill": manifest.name,
                "sha256": tree.sha256(),
                "verdict": report.verdict(),
                "passes": report.passes(),
                "findings": report.findings,
            }))?
        );
    } else {
        println!("{} ({})", manifest.name, tree.sha256());
        print!("{}", report_text(&report));
    }
    Ok(if report.passes() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
