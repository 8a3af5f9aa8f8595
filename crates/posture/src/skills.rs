//! Installed skills as an attacker would look at them: a tree that no longer matches its
//! pin, a skill a human installed despite high findings, capabilities that are too broad
//! (a wildcard host, every secret in the vault, a writable workspace together with
//! network access), and skill folders lying in a workspace without a pin.
//!
//! Pure: the caller reads `skills.lock`, verifies the store and lists the vault.

use std::path::{Path, PathBuf};

use skills::Locked;

use crate::{Finding, Severity};

/// One installed skill and whether its tree still matches the pin (`Err`: why not).
pub struct Checked<'a> {
    pub locked: &'a Locked,
    pub intact: Result<(), String>,
}

/// Findings for the installed skills. `vault` is the names of every vault secret.
pub fn installed(skills: &[Checked<'_>], vault: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in skills {
        let s = c.locked;
        if let Err(why) = &c.intact {
            out.push(Finding::new(
                "skills.drifted",
                Severity::Critical,
                format!(
                    "skill `{}` no longer matches its pin in skills.lock",
                    s.name
                ),
                format!("{} (pinned {}): {why}", s.name, s.sha256),
                format!(
                    "find out who changed it; then `cordon skills update {} SOURCE` from a source \
                     you trust, or `cordon skills remove {}`",
                    s.name, s.name
                ),
            ));
        }
        if s.verdict == "high" || s.accepted_risk {
            out.push(Finding::new(
                "skills.high_findings",
                Severity::Warn,
                format!(
                    "skill `{}` was installed despite high scan findings",
                    s.name
                ),
                format!("{} verdict {}, risk accepted", s.name, s.verdict),
                format!(
                    "review `cordon skills show {}`; remove it if the findings are not explained",
                    s.name
                ),
            ));
        }
        for e in &s.capabilities.egress {
            if broad_host(e) {
                out.push(Finding::new(
                    "skills.broad_egress",
                    Severity::Warn,
                    format!("skill `{}` may reach `{e}`", s.name),
                    format!("{}: metadata.cordon.egress contains `{e}`", s.name),
                    "pin the exact API hosts the skill needs; a wildcard over a public suffix \
                     lets its scripts send data almost anywhere",
                ));
            }
        }
        let mut granted: Vec<&String> = s
            .capabilities
            .secrets
            .iter()
            .chain(s.env.values())
            .collect();
        granted.sort();
        granted.dedup();
        if vault.len() > 1 && vault.iter().all(|v| granted.contains(&v)) {
            out.push(Finding::new(
                "skills.every_secret",
                Severity::Warn,
                format!("skill `{}` is given every secret in the vault", s.name),
                format!("{}: secrets {}", s.name, vault.join(", ")),
                "give a skill only the secret its API needs",
            ));
        }
        if s.capabilities.workspace == skills::WorkspaceAccess::Write
            && !s.capabilities.egress.is_empty()
        {
            out.push(Finding::new(
                "skills.write_and_network",
                Severity::Info,
                format!(
                    "skill `{}` may both write the workspace and reach the network",
                    s.name
                ),
                format!(
                    "{}: workspace write, egress {}",
                    s.name,
                    s.capabilities.egress.join(", ")
                ),
                "a script with both can bring code from the network into the workspace; \
                 prefer `workspace = \"read\"` when the skill only reads",
            ));
        }
    }
    out
}

/// A host pattern that covers too much: `*`, or a wildcard directly over a public
/// suffix (`*.com`, `*.co.uk`-style two-label suffixes of at most 3 letters each).
fn broad_host(pattern: &str) -> bool {
    let host = pattern.split(':').next().unwrap_or(pattern);
    if host == "*" || host.is_empty() {
        return true;
    }
    let Some(rest) = host.strip_prefix("*.") else {
        return false;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    labels.len() == 1 || (labels.len() == 2 && labels.iter().all(|l| l.len() <= 3))
}

/// Skill folders (a `SKILL.md` within `depth` levels) in a workspace that no installed
/// skill pins: Cordon never loads them, but an agent can read them as files and be told
/// to follow them. `pinned(dir)` says whether the folder's tree is pinned.
pub fn unpinned_in_workspace(
    agent: &str,
    workspace: &Path,
    depth: usize,
    pinned: &dyn Fn(&Path) -> bool,
) -> Vec<Finding> {
    let mut found = Vec::new();
    collect(workspace, depth, &mut found);
    found
        .into_iter()
        .filter(|dir| !pinned(dir))
        .map(|dir| {
            Finding::new(
                "skills.unpinned",
                Severity::Warn,
                format!("an unpinned skill lies in agent `{agent}`'s workspace"),
                format!("{}/SKILL.md", dir.display()),
                format!(
                    "install it with `cordon skills add {}` (scanned and pinned), or remove it \
                     from the workspace",
                    dir.display()
                ),
            )
        })
        .collect()
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join(skills::manifest::FILE).is_file() {
        out.push(dir.to_path_buf());
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        collect(&d, depth - 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(name: &str, egress: &[&str], secrets: &[&str], verdict: &str) -> Locked {
        Locked {
            name: name.into(),
            source: "/src".into(),
            version: None,
            sha256: "ab".repeat(32),
            verdict: verdict.into(),
            accepted_risk: verdict == "high",
            agents: vec![],
            installed_at: "2026-12-06T00:00:00Z".into(),
            capabilities: skills::Capabilities {
                egress: egress.iter().map(|s| s.to_string()).collect(),
                secrets: secrets.iter().map(|s| s.to_string()).collect(),
                bins: vec![],
                workspace: skills::WorkspaceAccess::Read,
            },
            env: Default::default(),
        }
    }

    fn ids(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.id).collect()
    }

    #[test]
    fn drift_high_findings_and_broad_capabilities_are_reported() {
        let vault = vec!["A".to_string(), "B".to_string()];
        let fine = locked("fine", &["api.weather.test"], &["A"], "low");
        let risky = locked("risky", &["*.com", "*"], &["A", "B"], "high");
        let checked = [
            Checked {
                locked: &fine,
                intact: Ok(()),
            },
            Checked {
                locked: &risky,
                intact: Err("changed: run.sh".into()),
            },
        ];
        let f = installed(&checked, &vault);
        assert_eq!(
            ids(&f),
            [
                "skills.drifted",
                "skills.high_findings",
                "skills.broad_egress",
                "skills.broad_egress",
                "skills.every_secret"
            ]
        );
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0].evidence.contains("run.sh"));
        assert!(
            installed(&checked[..1], &vault).is_empty(),
            "a narrow, intact skill is fine"
        );
    }

    #[test]
    fn wildcards_over_public_suffixes_are_broad_and_others_are_not() {
        for b in ["*", "*.com", "*.co.uk", "*:443"] {
            assert!(broad_host(b), "{b}");
        }
        for n in [
            "api.example.com",
            "*.example.com",
            "*.githubusercontent.com",
        ] {
            assert!(!broad_host(n), "{n}");
        }
    }

    #[test]
    fn skill_folders_in_a_workspace_without_a_pin_are_found() {
        let ws = tempfile::tempdir().unwrap();
        for d in ["skills/a", "skills/b", "deep/x/y/z/w"] {
            std::fs::create_dir_all(ws.path().join(d)).unwrap();
            std::fs::write(ws.path().join(d).join("SKILL.md"), "---\n").unwrap();
        }
        let pinned_b = |d: &Path| d.ends_with("skills/b");
        let f = unpinned_in_workspace("dev", ws.path(), 3, &pinned_b);
        assert_eq!(ids(&f), ["skills.unpinned"]);
        assert!(
            f[0].evidence.contains("skills/a/SKILL.md"),
            "{}",
            f[0].evidence
        );
    }
}
