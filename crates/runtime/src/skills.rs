//! Skills in the runtime: the installed skills enabled for this agent, verified against
//! their pins, and what a command that runs one of their scripts may do.
//!
//! Guarantees: a skill is offered only when `skills.lock` pins it for this agent and its
//! installed tree hashes to the pin; the tree is verified again before every load and
//! every run, and a drifted tree refuses the skill and raises an `alert`. A skill's
//! instructions enter the context with provenance `skill:NAME@HASH`. A command runs a
//! skill's script only when it is exactly that run (`[BIN] /skills/NAME/SCRIPT ARGS…`,
//! one simple command, no pipes, redirections or other commands); it then runs in a
//! sandbox of its own with the skill's tree mounted read-only at `/skills/NAME`, the
//! skill's workspace access, the skill's approved hosts as its whole egress allowlist,
//! and the skill's approved secrets as placeholders — never the agent's.
//!
//! Not guaranteed: what an allowed host does with what a script sends it (the data-flow
//! rules on the session's labels still apply to every connection).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use audit::Log;
use audit::event::{Alert, NamedAlert, SkillDrifted, SkillEvent, SkillRefused, SkillUse};
use config::HostPattern;

use crate::runtime::AgentSecret;

/// A skill installed, pinned, verified and enabled for this agent.
#[derive(Clone)]
pub struct InstalledSkill {
    pub name: String,
    /// The pinned canonical tree hash.
    pub sha256: String,
    pub description: String,
    /// Its tree in the store (read-only).
    pub dir: PathBuf,
    pub capabilities: skills::Capabilities,
    /// `capabilities.egress`, parsed.
    pub egress: Vec<HostPattern>,
    /// Approved `requires.env` mapping: variable -> vault secret name.
    pub env: BTreeMap<String, String>,
    /// The approved secrets (capabilities and the env mapping), with their values.
    pub secrets: Vec<AgentSecret>,
    store: skills::Store,
}

impl std::fmt::Debug for InstalledSkill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstalledSkill")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl InstalledSkill {
    /// Where its tree appears inside the sandbox.
    pub fn mount(&self) -> String {
        format!("{}/{}", skills::MOUNT_ROOT, self.name)
    }

    /// Re-read the installed tree and check it against the pin.
    pub(crate) fn verify(&self) -> Result<skills::Tree, skills::Drift> {
        self.store.load(&self.sha256)
    }
}

/// A vault lookup: the value and bound hosts of a secret.
pub type VaultLookup<'a> = &'a dyn Fn(&str) -> Option<(secrets::Secret, Vec<HostPattern>)>;

/// The skills of `lock` enabled for `agent`, each verified against its pin in `store`.
/// A drifted tree, an unreadable manifest or an approved secret missing from the vault
/// refuses that skill (recorded, with an `alert` for drift); the others are returned.
pub fn installed(
    lock: &skills::Lock,
    store: &skills::Store,
    agent: &str,
    audit: &Log,
    vault: VaultLookup<'_>,
) -> Vec<InstalledSkill> {
    let mut out = Vec::new();
    for locked in lock.skills.iter().filter(|s| s.enabled_for(agent)) {
        match enable(locked, store, vault) {
            Ok(skill) => out.push(skill),
            Err(Refusal::Drift(d)) => record_drift(audit, None, &locked.name, &d),
            Err(Refusal::Other(reason)) => refused(audit, None, &locked.name, "load", &reason),
        }
    }
    out
}

enum Refusal {
    Drift(skills::Drift),
    Other(String),
}

fn enable(
    locked: &skills::Locked,
    store: &skills::Store,
    vault: VaultLookup<'_>,
) -> Result<InstalledSkill, Refusal> {
    let tree = store.load(&locked.sha256).map_err(Refusal::Drift)?;
    let manifest = tree
        .get(skills::manifest::FILE)
        .ok_or_else(|| Refusal::Other("the installed tree has no SKILL.md".into()))
        .and_then(|f| {
            let text = std::str::from_utf8(&f.contents)
                .map_err(|_| Refusal::Other("SKILL.md is not UTF-8".into()))?;
            skills::manifest::parse(skills::manifest::FILE, text)
                .map_err(|e| Refusal::Other(e.to_string()))
        })?;
    let egress = locked
        .capabilities
        .egress
        .iter()
        .map(|p| {
            HostPattern::parse(p).map_err(|e| {
                Refusal::Other(format!("skills.lock: egress entry `{p}` is invalid: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<&String> = locked.capabilities.secrets.iter().collect();
    names.extend(locked.env.values());
    names.sort();
    names.dedup();
    let mut secrets = Vec::new();
    for name in names {
        let Some((value, hosts)) = vault(name) else {
            return Err(Refusal::Other(format!(
                "its approved secret `{name}` is not in the vault; add it with \
                 `cordon secrets set {name} --hosts HOST`"
            )));
        };
        secrets.push(AgentSecret {
            name: name.clone(),
            value,
            hosts,
        });
    }
    Ok(InstalledSkill {
        name: locked.name.clone(),
        sha256: locked.sha256.clone(),
        description: manifest.description,
        dir: store.path(&locked.sha256),
        capabilities: locked.capabilities.clone(),
        egress,
        env: locked.env.clone(),
        secrets,
        store: store.clone(),
    })
}

/// The lines of the system prompt that list the enabled skills, if any.
pub(crate) fn catalog(skills: &[Arc<InstalledSkill>]) -> Option<String> {
    if skills.is_empty() {
        return None;
    }
    let mut text = String::from(
        "Skills (installed, reviewed instructions for particular jobs). When a task matches \
         one, call load_skill with its name first and follow what it says; its files are at \
         /skills/NAME, read-only, and a command that runs one of its scripts gets only the \
         skill's own network and secrets:",
    );
    for s in skills {
        text.push_str(&format!("\n- {}: {}", s.name, s.description));
    }
    Some(text)
}

/// Which enabled skill `command` runs, if it names `/skills/…` at all.
///
/// `Ok(None)`: the command does not mention `/skills/`. `Ok(Some)`: it is exactly a run
/// of one skill's script. `Err`: it mentions `/skills/` in any other way (several
/// skills, an unknown one, more than that one run), which is refused.
pub(crate) fn skill_run<'s>(
    command: &str,
    skills: &'s [Arc<InstalledSkill>],
) -> Result<Option<&'s Arc<InstalledSkill>>, String> {
    let root = format!("{}/", skills::MOUNT_ROOT);
    if !command.contains(&root) {
        return Ok(None);
    }
    let shape = format!(
        "a command that runs a skill's script must be only that: \
         `[PROGRAM] {root}NAME/SCRIPT [ARGS…]` (one command; no pipes, redirections, \
         `;`, `&&`, variables or substitutions)"
    );
    let c = guard::canonicalise_exec(command);
    let [cmd] = c.commands.as_slice() else {
        return Err(shape);
    };
    if c.unparsable.is_some()
        || c.arbitrary_code.is_some()
        || !cmd.redirects.is_empty()
        || !cmd.env.is_empty()
        || !cmd.expansions.is_empty()
        || cmd.open_ended
        || !cmd.globs.is_empty()
    {
        return Err(shape);
    }
    // The script: the program itself, or the first argument of a program.
    let (program, script) = match cmd.argv.as_slice() {
        [p, ..] if p.starts_with(&root) => (None, p),
        [p, s, ..] if s.starts_with(&root) => (Some(p), s),
        _ => return Err(shape),
    };
    // No other argument may reach into /skills (another skill's files).
    let others = cmd
        .argv
        .iter()
        .filter(|w| !std::ptr::eq(*w, script))
        .any(|w| w.contains(&root));
    if others {
        return Err(format!("{shape}; only the script may be under {root}"));
    }
    let rest = &script[root.len()..];
    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(skill) = skills.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "no skill `{name}` is enabled for this agent (enabled: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    if path.is_empty()
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(format!(
            "`{script}` is not a file path inside the skill (no `.`, `..` or empty parts)"
        ));
    }
    if let Some(p) = program {
        let bin = guard::program_name(p);
        if !skill.capabilities.bins.iter().any(|b| b == bin) {
            return Err(format!(
                "skill `{name}` does not declare the program `{bin}` (its bins: {}); run its \
                 script with a declared program",
                if skill.capabilities.bins.is_empty() {
                    "none".to_string()
                } else {
                    skill.capabilities.bins.join(", ")
                }
            ));
        }
    }
    Ok(Some(skill))
}

/// The first skill name a command mentions (`/skills/NAME…`), for records.
pub(crate) fn named_in(command: &str) -> String {
    let root = format!("{}/", skills::MOUNT_ROOT);
    command
        .split(&root)
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Record `skill` `loaded` or `used`.
pub(crate) fn used(
    log: &Log,
    session: &str,
    skill: &InstalledSkill,
    call_id: &str,
    command: Option<&str>,
) {
    let usage = SkillUse {
        skill: skill.name.clone(),
        sha256: skill.sha256.clone(),
        call_id: call_id.to_string(),
        command: command.map(str::to_string),
    };
    let event = if command.is_some() {
        SkillEvent::Used(usage)
    } else {
        SkillEvent::Loaded(usage)
    };
    if let Err(e) = log.append_event(Some(session), event) {
        tracing::warn!("audit: cannot append a skill record: {e}");
    }
}

/// Record `skill` `refused` at `stage`.
pub(crate) fn refused(log: &Log, session: Option<&str>, skill: &str, stage: &str, reason: &str) {
    refused_call(log, session, skill, None, stage, reason, None);
}

pub(crate) fn refused_call(
    log: &Log,
    session: Option<&str>,
    skill: &str,
    sha256: Option<&str>,
    stage: &str,
    reason: &str,
    call_id: Option<&str>,
) {
    let event = SkillEvent::Refused(SkillRefused {
        skill: skill.to_string(),
        sha256: sha256.map(str::to_string),
        stage: stage.to_string(),
        reason: reason.to_string(),
        call_id: call_id.map(str::to_string),
    });
    if let Err(e) = log.append_event(session, event) {
        tracing::warn!("audit: cannot append a skill record: {e}");
    }
}

/// Record a drifted skill: the refusal and an `alert`.
pub fn record_drift(log: &Log, session: Option<&str>, skill: &str, d: &skills::Drift) {
    let reason = drift_reason(d);
    refused_call(
        log,
        session,
        skill,
        Some(&d.expected),
        "load",
        &reason,
        None,
    );
    let alert = Alert::Named(NamedAlert::SkillDrifted(SkillDrifted {
        skill: skill.to_string(),
        expected: d.expected.clone(),
        actual: d.actual.clone(),
        files: d.files.clone(),
        reason,
    }));
    if let Err(e) = log.append_event(session, alert) {
        tracing::warn!("audit: cannot append an alert: {e}");
    }
}

/// Drift in words.
pub fn drift_reason(d: &skills::Drift) -> String {
    if d.files.is_empty() {
        format!(
            "its installed files no longer match the pin {}: {}",
            d.expected, d.reason
        )
    } else {
        format!(
            "its installed files no longer match the pin {} ({}): {}",
            d.expected,
            d.files.join(", "),
            d.reason
        )
    }
}

/// The lock file next to `config_file` and the store under `state_dir`.
pub fn locations(config_file: &Path, state_dir: &Path) -> (PathBuf, skills::Store) {
    (
        skills::Lock::path_for(config_file),
        skills::Store::new(state_dir),
    )
}
