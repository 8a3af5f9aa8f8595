//! Replacing a file so that a crash leaves either the old contents or the new, never a
//! mix, an empty file or a file that vanishes.
//!
//! [`atomic_write`] writes a temporary file beside the target (same directory, so the
//! same filesystem), gives it the requested mode exactly (not filtered by the umask),
//! fsyncs it, renames it over the target and fsyncs the directory so the rename itself
//! survives a power loss. On any failure before the rename the temporary file is removed
//! and the target is untouched.
//!
//! Not guaranteed: that nobody else writes the target at the same time (the last rename
//! wins), and anything about a target that is a symlink (the link is replaced, not
//! followed).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file that could not be replaced: which step failed, on which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub struct AtomicWriteError {
    /// What was being done: `create`, `write`, `sync`, `replace`, `sync the directory of`.
    pub step: &'static str,
    /// The file (or temporary file, or directory) the step failed on.
    pub path: PathBuf,
    pub source: io::Error,
}

/// Replace `path` with `contents`, mode `mode` (e.g. `0o600`): write a temporary file in
/// the same directory, fsync it, rename it over `path`, fsync the directory.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let err = |step, path: &Path| {
        let path = path.to_path_buf();
        move |source| AtomicWriteError { step, path, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) =
        create_temp(dir, path).map_err(err("create a temporary file for", path))?;
    let written = (|| {
        // Set after creation: the mode given to open() is filtered by the umask.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err("set the mode of", &tmp))?;
        file.write_all(contents).map_err(err("write", &tmp))?;
        file.sync_all().map_err(err("sync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(err("replace", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("sync the directory of", path))
}

/// A new temporary file `.NAME.PID.N.tmp` beside `target`, created exclusively so that a
/// leftover or a planted file (or symlink) of that name is never written through.
fn create_temp(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempts = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_contents_with_exactly_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursor.json");
        fs::write(&path, "old contents, longer than the new ones").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        atomic_write(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), 0o600);
        // The umask does not filter the mode: 0644 is 0644 whatever the process umask.
        atomic_write(&path, b"newer", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "newer");
        assert_eq!(mode(&path), 0o644);
        assert_eq!(
            entries(dir.path()),
            ["cursor.json"],
            "no temporary file left"
        );
    }

    #[test]
    fn creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head");
        atomic_write(&path, b"{}\n", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_failed_replace_leaves_the_target_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: rename(2) of a file over it fails after the
        // temporary file was written.
        let target = dir.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "kept").unwrap();
        let e = atomic_write(&target, b"new", 0o600).unwrap_err();
        assert_eq!(e.step, "replace", "{e}");
        assert!(e.to_string().contains("target"), "{e}");
        assert_eq!(fs::read_to_string(target.join("inside")).unwrap(), "kept");
        assert_eq!(entries(dir.path()), ["target"], "no temporary file left");
    }

    #[test]
    fn a_planted_temporary_name_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg.toml");
        let victim = dir.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        // Plant symlinks under the first temporary names this process would use (a
        // process of its own under nextest, so its counter starts at 0).
        for n in 0..20 {
            let planted = dir
                .path()
                .join(format!(".cfg.toml.{}.{n}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        atomic_write(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_directory_that_does_not_exist_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("f");
        let e = atomic_write(&path, b"x", 0o600).unwrap_err();
        assert!(e.to_string().contains("missing/f"), "{e}");
        assert!(!dir.path().join("missing").exists());
    }
}
