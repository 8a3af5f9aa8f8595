//! The workspace seen through an overlay: the profile's request and its checks.
//!
//! With [`Profile::workspace_overlay`](crate::Profile::workspace_overlay) set and write
//! access, a backend that supports it ([`Sandbox::supports_workspace_overlay`]) shows each
//! command `/workspace` as an overlay whose lower layer is the real workspace (never
//! written) and whose upper layer is [`WorkspaceOverlay::upper`]: everything a command
//! changes lands there, and the caller decides what reaches the real workspace.
//!
//! Guarantees of this module (every backend shares them): `upper` and `work` are existing
//! host directories, distinct, in the same parent directory (the overlay needs them on
//! one mount, and the sandbox binds that parent once, hidden), on one filesystem, and
//! neither overlaps the workspace (inside it, or containing it). Every violation is
//! [`SandboxError::Invalid`] naming the field. Does not check that `upper` is empty: what
//! is in it is part of the view (the caller empties it between commands).
//!
//! [`Sandbox::supports_workspace_overlay`]: crate::Sandbox::supports_workspace_overlay

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// Host directories of a workspace overlay, created (empty) by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceOverlay {
    /// Receives every change a command makes to `/workspace`: new and changed files
    /// (whole), deleted entries as whiteouts (character devices 0:0), directories that
    /// replace a deleted one marked opaque (`user.overlay.opaque` = `y`). Must be empty
    /// when a command starts unless its content is meant to be seen.
    pub upper: PathBuf,
    /// The overlay's private work directory: same parent directory as `upper`. Left to
    /// the sandbox; its content has no meaning to the caller.
    ///
    /// Both are best on a tmpfs (Linux >= 6.6 for user xattrs there): every command's
    /// overlay mount does metadata work in `work`, which on a busy journaled disk
    /// filesystem waits for the journal (see `docs/benchmarks.md`). The overlay is
    /// `volatile`: upper is never synced, so whoever applies it makes it durable.
    pub work: PathBuf,
}

/// A checked overlay: canonical directories, and the one parent the sandbox binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedOverlay {
    pub(crate) upper: PathBuf,
    pub(crate) work: PathBuf,
    /// The directory holding both.
    pub(crate) parent: PathBuf,
    pub(crate) upper_name: OsString,
    pub(crate) work_name: OsString,
}

fn invalid(field: &str, value: &Path, why: &str) -> SandboxError {
    SandboxError::Invalid(format!(
        "workspace_overlay.{field} {}: {why}",
        value.display()
    ))
}

fn canonical_dir(field: &str, p: &Path) -> Result<(PathBuf, std::fs::Metadata), SandboxError> {
    if !p.is_absolute() {
        return Err(invalid(
            field,
            p,
            "is not an absolute path; give the host directory's full path",
        ));
    }
    let real = p
        .canonicalize()
        .map_err(|e| invalid(field, p, &format!("{e}; create the directory first")))?;
    let meta = std::fs::metadata(&real).map_err(|e| invalid(field, p, &e.to_string()))?;
    if !meta.is_dir() {
        return Err(invalid(field, p, "is not a directory"));
    }
    Ok((real, meta))
}

/// For backends that cannot provide an overlay: refuse a profile that asks for one
/// (with write access), so that no command writes the workspace the caller meant to keep.
pub(crate) fn refuse(backend: &str, profile: &crate::Profile) -> Result<(), SandboxError> {
    match &profile.workspace_overlay {
        Some(_) if profile.workspace_access.writable() => Err(SandboxError::Invalid(format!(
            "workspace_overlay: the {backend} sandbox backend cannot show the workspace \
             through an overlay; check Sandbox::supports_workspace_overlay and leave \
             workspace_overlay unset for this backend"
        ))),
        _ => Ok(()),
    }
}

/// Check `overlay` against the (canonical) `workspace`.
pub(crate) fn resolve(
    overlay: &WorkspaceOverlay,
    workspace: &Path,
) -> Result<ResolvedOverlay, SandboxError> {
    let (upper, upper_meta) = canonical_dir("upper", &overlay.upper)?;
    let (work, work_meta) = canonical_dir("work", &overlay.work)?;
    for (field, given, real) in [
        ("upper", &overlay.upper, &upper),
        ("work", &overlay.work, &work),
    ] {
        if real.starts_with(workspace) {
            return Err(invalid(
                field,
                given,
                &format!(
                    "is inside the workspace {}; keep the overlay's directories outside it \
                     (in the state directory)",
                    workspace.display()
                ),
            ));
        }
        if workspace.starts_with(real) {
            return Err(invalid(
                field,
                given,
                &format!(
                    "contains the workspace {}; use a directory of its own",
                    workspace.display()
                ),
            ));
        }
    }
    if upper == work {
        return Err(invalid(
            "work",
            &overlay.work,
            "is the same directory as workspace_overlay.upper; create two sibling directories",
        ));
    }
    let (Some(parent), Some(upper_name), Some(work_name)) =
        (upper.parent(), upper.file_name(), work.file_name())
    else {
        return Err(invalid(
            "upper",
            &overlay.upper,
            "cannot be the root directory",
        ));
    };
    if work.parent() != Some(parent) {
        return Err(invalid(
            "work",
            &overlay.work,
            &format!(
                "must be in the same directory as workspace_overlay.upper ({}); create both \
                 in one directory",
                parent.display()
            ),
        ));
    }
    if upper_meta.dev() != work_meta.dev() {
        return Err(invalid(
            "work",
            &overlay.work,
            "is on another filesystem than workspace_overlay.upper; the overlay needs both on \
             one filesystem",
        ));
    }
    Ok(ResolvedOverlay {
        parent: parent.to_path_buf(),
        upper_name: upper_name.to_os_string(),
        work_name: work_name.to_os_string(),
        upper,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> (tempfile::TempDir, PathBuf, WorkspaceOverlay) {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let state = root.path().join("state");
        for d in [&ws, &state, &state.join("upper"), &state.join("work")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let overlay = WorkspaceOverlay {
            upper: state.join("upper"),
            work: state.join("work"),
        };
        let ws = ws.canonicalize().unwrap();
        (root, ws, overlay)
    }

    #[test]
    fn sibling_directories_outside_the_workspace_resolve() {
        let (_root, ws, o) = dirs();
        let r = resolve(&o, &ws).unwrap();
        assert_eq!(r.upper, o.upper.canonicalize().unwrap());
        assert_eq!(r.parent, r.upper.parent().unwrap());
        assert_eq!(r.upper_name, "upper");
        assert_eq!(r.work_name, "work");
    }

    #[test]
    fn bad_overlays_are_refused_naming_the_field() {
        let (root, ws, o) = dirs();
        let err = |o: &WorkspaceOverlay| resolve(o, &ws).unwrap_err().to_string();

        let missing = WorkspaceOverlay {
            upper: root.path().join("nope"),
            ..o.clone()
        };
        assert!(
            err(&missing).contains("workspace_overlay.upper"),
            "{}",
            err(&missing)
        );

        let relative = WorkspaceOverlay {
            work: "state/work".into(),
            ..o.clone()
        };
        assert!(err(&relative).contains("workspace_overlay.work"));
        assert!(err(&relative).contains("absolute"));

        std::fs::create_dir(ws.join("upper")).unwrap();
        let inside = WorkspaceOverlay {
            upper: ws.join("upper"),
            ..o.clone()
        };
        assert!(
            err(&inside).contains("inside the workspace"),
            "{}",
            err(&inside)
        );

        let containing = WorkspaceOverlay {
            upper: root.path().to_path_buf(),
            ..o.clone()
        };
        assert!(err(&containing).contains("contains the workspace"));

        let same = WorkspaceOverlay {
            work: o.upper.clone(),
            ..o.clone()
        };
        assert!(err(&same).contains("same directory"), "{}", err(&same));

        let elsewhere = root.path().join("other");
        std::fs::create_dir(&elsewhere).unwrap();
        let apart = WorkspaceOverlay {
            work: elsewhere,
            ..o.clone()
        };
        assert!(err(&apart).contains("same directory as"), "{}", err(&apart));

        let file = root.path().join("state/file");
        std::fs::write(&file, "x").unwrap();
        let not_dir = WorkspaceOverlay { work: file, ..o };
        assert!(err(&not_dir).contains("not a directory"));
    }
}
