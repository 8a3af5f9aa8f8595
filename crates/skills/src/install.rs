//! Installing and removing a skill: whether it may be installed and what a human must do
//! for it ([`admit`]), and the change of the store and the lock as one step ([`commit`],
//! [`uninstall`]). The caller (the CLI) shows the scan, asks at the terminal and records.
//!
//! Guarantees: a critical finding is never admitted; a high one only with `accept_risk`
//! and a human typing the skill's name; `yes` admits without asking only a skill with
//! nothing high and no new capability, and only when no policy asks. [`commit`] writes
//! the tree before the lock names it and removes it again if the lock cannot be written,
//! so a failure leaves neither a lock entry without a tree nor a tree nobody installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::lock::{Lock, LockError, Locked};
use crate::manifest::{Capabilities, Manifest};
use crate::scan::{Report, Severity};
use crate::store::{Store, StoreError};
use crate::tree::Tree;

/// What the human said on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consent {
    /// `--yes`.
    pub yes: bool,
    /// `--accept-risk`.
    pub accept_risk: bool,
}

/// What has to happen before a skill is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Installed without asking.
    Accept,
    /// A human must type `expected` at a terminal after `prompt`; `why` says why asking.
    Confirm {
        prompt: String,
        expected: String,
        why: Option<String>,
    },
    /// Not installed, and why.
    Refuse(String),
}

/// Whether skill `name` with `report` may be installed. `new_capabilities` are those an
/// update adds ([`Capabilities::added_since`]); `policy_asks` the reasons of policies that
/// ask for a human (`install_skill` decided `ask`).
pub fn admit(
    name: &str,
    report: &Report,
    new_capabilities: &[String],
    policy_asks: &[String],
    consent: Consent,
) -> Admission {
    let yes = |why: Option<String>| Admission::Confirm {
        prompt: "install it? type yes: ".into(),
        expected: "yes".into(),
        why,
    };
    match report.worst() {
        Some(Severity::Critical) => {
            return Admission::Refuse(format!(
                "`{name}` has critical findings and cannot be installed (nothing accepts them)"
            ));
        }
        Some(Severity::High) if !consent.accept_risk => {
            return Admission::Refuse(format!(
                "`{name}` has high findings: read them, and if you still want it, run again \
                 with --accept-risk at a terminal"
            ));
        }
        Some(Severity::High) => {
            return Admission::Confirm {
                prompt: format!(
                    "type the skill's name ({name}) to install it despite its high findings: "
                ),
                expected: name.to_string(),
                why: None,
            };
        }
        _ => {}
    }
    if !policy_asks.is_empty() {
        return yes(Some(format!(
            "policy asks for a human: {}",
            policy_asks.join("; ")
        )));
    }
    if !new_capabilities.is_empty() {
        let why = consent
            .yes
            .then(|| "--yes does not approve new capabilities".to_string());
        return yes(why);
    }
    if consent.yes {
        Admission::Accept
    } else {
        yes(None)
    }
}

impl Capabilities {
    /// What `self` allows that `old` did not, in words (`egress HOST`, `secret NAME`,
    /// `bin NAME`, `workspace write`).
    pub fn added_since(&self, old: &Capabilities) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, o, n) in [
            ("egress", &old.egress, &self.egress),
            ("secret", &old.secrets, &self.secrets),
            ("bin", &old.bins, &self.bins),
        ] {
            let o: BTreeSet<&String> = o.iter().collect();
            out.extend(
                n.iter()
                    .filter(|x| !o.contains(x))
                    .map(|x| format!("{kind} {x}")),
            );
        }
        if self.workspace > old.workspace {
            out.push(format!("workspace {}", self.workspace));
        }
        out
    }
}

impl Manifest {
    /// What the skill declares, for the scanner: its capabilities, with the
    /// `requires.env` names counted among its secrets (the operator maps each to a vault
    /// secret, or the script gets nothing under that name).
    pub fn declared(&self) -> Capabilities {
        let mut caps = self.capabilities.clone();
        caps.secrets.extend(self.requires_env.iter().cloned());
        caps
    }

    /// The operator's `VAR=SECRET` pairs: each VAR must be one of `requires.env`, each
    /// SECRET a vault name (upper-case letters, digits, `_`, starting with a letter).
    pub fn env_mapping(&self, pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for p in pairs {
            let Some((var, secret)) = p.split_once('=') else {
                return Err(format!(
                    "`{p}`: write VAR=SECRET (a requires.env name and a vault secret name)"
                ));
            };
            if !self.requires_env.iter().any(|v| v == var) {
                return Err(format!(
                    "`{p}`: `{var}` is not in the skill's requires.env ({})",
                    if self.requires_env.is_empty() {
                        "none".to_string()
                    } else {
                        self.requires_env.join(", ")
                    }
                ));
            }
            let valid = secret.len() <= 64
                && secret.starts_with(|c: char| c.is_ascii_uppercase())
                && secret
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(format!("`{p}`: `{secret}` is not a valid secret name"));
            }
            out.insert(var.to_string(), secret.to_string());
        }
        Ok(out)
    }
}

/// Why an install or removal did not happen (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the lock was not written, so nothing changed: {0}")]
    Lock(#[from] LockError),
    #[error("no skill `{0}` is installed")]
    NotInstalled(String),
}

/// Install `tree` as `locked` (replacing `replaces`, an update): the tree into the store,
/// then the lock. Returns a warning when an old tree no entry uses any more could not be
/// removed (the install itself succeeded).
pub fn commit(
    store: &Store,
    tree: &Tree,
    lock_path: &Path,
    lock: &mut Lock,
    locked: &Locked,
    replaces: Option<&Locked>,
) -> Result<Option<String>, InstallError> {
    let used_before = lock.skills.iter().any(|s| s.sha256 == locked.sha256);
    store.install(tree)?;
    let before = lock.clone();
    lock.put(locked.clone());
    if let Err(e) = lock.save(lock_path) {
        *lock = before;
        if !used_before {
            // Best effort: the tree is unreferenced either way.
            let _ = store.remove(&locked.sha256);
        }
        return Err(e.into());
    }
    Ok(replaces.and_then(|old| release(store, lock, &old.sha256)))
}

/// Remove skill `name`: its lock entry, then its tree when no other entry uses it.
/// Returns the removed entry and a warning when the tree could not be removed.
pub fn uninstall(
    store: &Store,
    lock_path: &Path,
    lock: &mut Lock,
    name: &str,
) -> Result<(Locked, Option<String>), InstallError> {
    let before = lock.clone();
    let old = lock
        .remove(name)
        .ok_or_else(|| InstallError::NotInstalled(name.to_string()))?;
    if let Err(e) = lock.save(lock_path) {
        *lock = before;
        return Err(e.into());
    }
    let warning = release(store, lock, &old.sha256);
    Ok((old, warning))
}

/// Remove the tree `sha256` if no lock entry uses it.
fn release(store: &Store, lock: &Lock, sha256: &str) -> Option<String> {
    if lock.skills.iter().any(|s| s.sha256 == sha256) {
        return None;
    }
    store
        .remove(sha256)
        .err()
        .map(|e| format!("the old tree {sha256} stays in the store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Finding;

    fn report(worst: Option<Severity>) -> Report {
        Report {
            findings: worst
                .map(|severity| Finding {
                    id: "t.rule",
                    severity,
                    file: "SKILL.md".into(),
                    line: 1,
                    evidence: String::new(),
                    why: "",
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn what_each_consent_admits() {
        let yes = Consent {
            yes: true,
            accept_risk: false,
        };
        let all = Consent {
            yes: true,
            accept_risk: true,
        };
        let none = Consent::default();
        let crit = report(Some(Severity::Critical));
        let high = report(Some(Severity::High));
        let medium = report(Some(Severity::Medium));
        assert!(
            matches!(admit("s", &crit, &[], &[], all), Admission::Refuse(r) if r.contains("critical"))
        );
        assert!(
            matches!(admit("s", &high, &[], &[], yes), Admission::Refuse(r) if r.contains("--accept-risk"))
        );
        assert!(
            matches!(admit("s", &high, &[], &[], all), Admission::Confirm { expected, .. } if expected == "s"),
            "high findings: the name typed, never --yes alone"
        );
        assert_eq!(admit("s", &medium, &[], &[], yes), Admission::Accept);
        assert!(
            matches!(admit("s", &medium, &[], &[], none), Admission::Confirm { expected, .. } if expected == "yes")
        );
        let new = vec!["egress api.x.test".to_string()];
        assert!(matches!(
            admit("s", &medium, &new, &[], yes),
            Admission::Confirm { why: Some(w), .. } if w.contains("new capabilities")
        ));
        let asks = vec!["dev: needs a human".to_string()];
        assert!(matches!(
            admit("s", &report(None), &[], &asks, yes),
            Admission::Confirm { why: Some(w), .. } if w.contains("needs a human")
        ));
    }

    #[test]
    fn added_capabilities_are_named() {
        let old = Capabilities {
            egress: vec!["a.test".into()],
            secrets: vec![],
            bins: vec!["python3".into()],
            workspace: crate::WorkspaceAccess::Read,
        };
        let mut new = old.clone();
        assert!(new.added_since(&old).is_empty());
        new.egress.push("b.test".into());
        new.secrets.push("KEY".into());
        new.workspace = crate::WorkspaceAccess::Write;
        assert_eq!(
            new.added_since(&old),
            ["egress b.test", "secret KEY", "workspace write"]
        );
        new.workspace = crate::WorkspaceAccess::None;
        assert_eq!(new.added_since(&old).len(), 2, "less access is not new");
    }

    #[test]
    fn env_mappings_name_what_is_wrong() {
        let text = "---\nname: w\ndescription: d\nmetadata:\n  openclaw:\n    requires:\n      env: [API_KEY]\n---\nbody\n";
        let m = crate::manifest::parse("SKILL.md", text).unwrap();
        let ok = m.env_mapping(&["API_KEY=WEATHER_KEY".into()]).unwrap();
        assert_eq!(ok["API_KEY"], "WEATHER_KEY");
        for (pair, needle) in [
            ("API_KEY", "VAR=SECRET"),
            ("OTHER=X", "not in the skill's requires.env (API_KEY)"),
            ("API_KEY=lower", "not a valid secret name"),
        ] {
            let e = m.env_mapping(&[pair.into()]).unwrap_err();
            assert!(e.contains(needle), "{pair}: {e}");
        }
    }

    #[test]
    fn a_lock_that_cannot_be_written_leaves_no_tree_and_no_entry() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::new(state.path());
        let tree = Tree::from_files(vec![crate::TreeFile {
            path: "SKILL.md".into(),
            executable: false,
            contents: b"---\nname: w\ndescription: d\n---\n".to_vec(),
        }])
        .unwrap();
        let locked = Locked {
            name: "w".into(),
            source: "/src".into(),
            version: None,
            sha256: tree.sha256(),
            verdict: "clean".into(),
            accepted_risk: false,
            agents: vec![],
            installed_at: "2026-12-06T00:00:00Z".into(),
            capabilities: Capabilities::default(),
            env: BTreeMap::new(),
        };
        let mut lock = Lock::default();
        // A lock path whose directory does not exist.
        let bad = state.path().join("missing/dir/skills.lock");
        let e = commit(&store, &tree, &bad, &mut lock, &locked, None).unwrap_err();
        assert!(matches!(e, InstallError::Lock(_)), "{e}");
        assert!(lock.skills.is_empty(), "the in-memory lock is restored");
        assert!(
            !store.path(&locked.sha256).exists(),
            "the tree was removed again"
        );

        let good = state.path().join("skills.lock");
        assert!(
            commit(&store, &tree, &good, &mut lock, &locked, None)
                .unwrap()
                .is_none()
        );
        assert!(store.load(&locked.sha256).is_ok());
        let (gone, warning) = uninstall(&store, &good, &mut lock, "w").unwrap();
        assert_eq!(gone.name, "w");
        assert!(warning.is_none());
        assert!(!store.path(&locked.sha256).exists());
        assert!(matches!(
            uninstall(&store, &good, &mut lock, "w"),
            Err(InstallError::NotInstalled(_))
        ));
    }
}
