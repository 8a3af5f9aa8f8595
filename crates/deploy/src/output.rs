//! Putting generated files somewhere: stdout, or a directory.
//!
//! Guarantees for a directory: it is created (0755) if missing; every file is written
//! whole ([`config::atomic_write`]) with mode 0644 whatever the umask; an existing
//! file with other contents is never replaced without `force`, and that is checked for
//! every file before the first is written, so a refusal leaves the directory unchanged.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Artifact, DeployError};

/// One file: its text. Several: each after a `# ==> NAME <==` line (like `head`), since
/// they only make sense as separate files (`--out`).
pub fn print(files: &[Artifact], out: &mut dyn Write) -> Result<(), DeployError> {
    print_to(files, out).map_err(DeployError::Print)
}

fn print_to(files: &[Artifact], out: &mut dyn Write) -> std::io::Result<()> {
    if let [only] = files {
        out.write_all(only.text.as_bytes())?;
        return Ok(());
    }
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        writeln!(out, "# ==> {} <==", f.name)?;
        out.write_all(f.text.as_bytes())?;
    }
    Ok(())
}

/// What [`write_dir`] did with one file.
pub enum Written {
    Created(PathBuf),
    Replaced(PathBuf),
    Unchanged(PathBuf),
}

pub fn write_dir(files: &[Artifact], dir: &Path, force: bool) -> Result<Vec<Written>, DeployError> {
    let failed = |what: String| move |source| DeployError::Write { what, source };
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(m) if m.file_type().is_symlink() && dir.is_dir() => {}
        Ok(_) => {
            return Err(DeployError::Out(format!(
                "--out {}: exists and is not a directory; give a directory (it is created if \
                 missing)",
                dir.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(failed(format!(
                    "--out {}: cannot create the directory",
                    dir.display()
                )))?;
            // The umask may have taken bits away.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(
                failed(format!("--out {}: cannot set mode 0755", dir.display())),
            )?;
        }
        Err(e) => return Err(DeployError::Out(format!("--out {}: {e}", dir.display()))),
    }

    // Decide for every file first.
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for f in files {
        let path = dir.join(f.name);
        let state = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Written::Created(path),
            Err(e) => return Err(DeployError::Out(format!("{}: {e}", path.display()))),
            Ok(m) if m.is_dir() => {
                return Err(DeployError::Out(format!(
                    "{}: is a directory; move it away or choose another --out",
                    path.display()
                )));
            }
            Ok(m) => {
                let same =
                    m.is_file() && std::fs::read(&path).is_ok_and(|old| old == f.text.as_bytes());
                if same {
                    Written::Unchanged(path)
                } else {
                    conflicts.push(path.display().to_string());
                    Written::Replaced(path)
                }
            }
        };
        plan.push((f, state));
    }
    if !conflicts.is_empty() && !force {
        return Err(DeployError::Out(format!(
            "refusing to overwrite {} (different contents); nothing was written. Pass --force \
             to replace, or choose another --out",
            conflicts.join(", ")
        )));
    }
    let mut done = Vec::new();
    for (f, state) in plan {
        match &state {
            Written::Created(path) | Written::Replaced(path) => {
                config::atomic_write(path, f.text.as_bytes(), 0o644)?;
            }
            // Same contents: only the mode is made right.
            Written::Unchanged(path) => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    .map_err(failed(format!("{}: cannot set mode 0644", path.display())))?;
            }
        }
        done.push(state);
    }
    Ok(done)
}
