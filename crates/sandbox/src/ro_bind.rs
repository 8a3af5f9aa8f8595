//! Read-only binds of host directories into the sandbox: a skill's installed tree at
//! `/skills/NAME`.
//!
//! Guarantees: a target is exactly `/skills/NAME` with NAME one plain file name (ASCII
//! letters, digits, `.`, `-`, `_`; not `.` or `..`; at most 255 bytes), so it is already
//! normalised and cannot name or shadow any other path inside (`/etc`, `/workspace`, `/usr`,
//! a second skill); no two binds share a target; a source is an existing host directory,
//! resolved to its canonical path when the sandbox starts. Every violation is
//! [`SandboxError::Invalid`] naming the field (`ro_binds[2].target`), never a skipped bind.
//!
//! Does not judge the source: which host directory is bound is the caller's decision (the
//! skill store). Symlinks inside a bound tree resolve inside the sandbox's root, so they
//! reach only what the sandbox shows anyway; the backends enforce read-only.

use std::path::{Path, PathBuf};

use crate::SandboxError;

/// Directory under which read-only binds appear inside the sandbox.
pub const SKILLS_MOUNT: &str = "/skills";

/// Longest file name Linux accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A host directory bound read-only into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoBind {
    /// Host directory. Must exist.
    pub source: PathBuf,
    /// Absolute path inside: `/skills/NAME`.
    pub target: String,
}

/// A checked bind: canonical host directory, target inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedBind {
    pub(crate) source: PathBuf,
    pub(crate) target: String,
}

fn invalid(index: usize, field: &str, value: &str, why: &str) -> SandboxError {
    SandboxError::Invalid(format!("ro_binds[{index}].{field} {value:?} {why}"))
}

/// Check every target (no filesystem access): the checks every backend shares, and all a
/// backend can do before it is started.
pub(crate) fn check_targets(binds: &[RoBind]) -> Result<(), SandboxError> {
    for (i, bind) in binds.iter().enumerate() {
        let t = &bind.target;
        let name = t
            .strip_prefix(SKILLS_MOUNT)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                invalid(
                    i,
                    "target",
                    t,
                    "is not beneath /skills/; read-only binds may only appear at /skills/NAME",
                )
            })?;
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && name.len() <= NAME_MAX
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !plain {
            return Err(invalid(
                i,
                "target",
                t,
                "must be /skills/NAME with NAME one plain file name (letters, digits, `.`, \
                 `-`, `_`; not `.` or `..`; no further `/`)",
            ));
        }
        if let Some(j) = binds[..i].iter().position(|b| b.target == *t) {
            return Err(invalid(
                i,
                "target",
                t,
                &format!("is also ro_binds[{j}].target; bind each skill once"),
            ));
        }
    }
    Ok(())
}

/// Check every bind and resolve its source to a canonical, existing directory.
pub(crate) fn resolve(binds: &[RoBind]) -> Result<Vec<ResolvedBind>, SandboxError> {
    check_targets(binds)?;
    binds
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let shown = b.source.display().to_string();
            let source =
                canonical_dir(&b.source).map_err(|why| invalid(i, "source", &shown, &why))?;
            Ok(ResolvedBind {
                source,
                target: b.target.clone(),
            })
        })
        .collect()
}

fn canonical_dir(p: &Path) -> Result<PathBuf, String> {
    if !p.is_absolute() {
        return Err("is not an absolute path; give the host directory's full path".into());
    }
    let real = p
        .canonicalize()
        .map_err(|e| format!("cannot be resolved on the host: {e}; install the skill again"))?;
    if !real.is_dir() {
        return Err("is not a directory; bind a skill's installed tree".into());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(target: &str) -> RoBind {
        RoBind {
            source: PathBuf::from("/"),
            target: target.into(),
        }
    }

    fn message(r: Result<(), SandboxError>) -> String {
        match r {
            Err(SandboxError::Invalid(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn only_one_plain_name_beneath_skills_is_a_target() {
        check_targets(&[bind("/skills/weather"), bind("/skills/a.b-c_1")]).unwrap();
        for bad in [
            "/skills",
            "/skills/",
            "/skills/.",
            "/skills/..",
            "/skills/../etc",
            "/skills/a/b",
            "/skills/a/",
            "/skills//a",
            "/skillsx/a",
            "skills/a",
            "/etc",
            "/workspace",
            "/usr/skills/a",
            "/skills/a b",
            "/skills/a,dst=/etc",
            "/skills/a\0",
            "",
        ] {
            let m = message(check_targets(&[bind("/skills/ok"), bind(bad)]));
            assert!(m.starts_with("ro_binds[1].target "), "{bad:?}: {m}");
        }
        let long = format!("/skills/{}", "a".repeat(256));
        assert!(message(check_targets(&[bind(&long)])).contains("ro_binds[0].target"));
    }

    #[test]
    fn duplicate_targets_are_refused_naming_both() {
        let m = message(check_targets(&[
            bind("/skills/a"),
            bind("/skills/b"),
            bind("/skills/a"),
        ]));
        assert!(
            m.contains("ro_binds[2].target") && m.contains("ro_binds[0].target"),
            "{m}"
        );
    }

    #[test]
    fn sources_must_be_existing_absolute_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let ok = resolve(&[RoBind {
            source: dir
                .path()
                .join(".")
                .join("..")
                .join(dir.path().file_name().unwrap()),
            target: "/skills/x".into(),
        }])
        .unwrap();
        assert_eq!(ok[0].source, dir.path().canonicalize().unwrap());
        for source in [file, dir.path().join("missing"), PathBuf::from("rel")] {
            let err = resolve(&[RoBind {
                source: source.clone(),
                target: "/skills/x".into(),
            }])
            .unwrap_err();
            assert!(
                err.to_string().contains("ro_binds[0].source"),
                "{source:?}: {err}"
            );
        }
    }
}
