//! Shared by the sandbox test suites: re-running one of a suite's own `#[ignore]`d tests
//! as an unprivileged user (uid 65534, through `setpriv`) when the suite runs as root, so
//! every isolation claim is checked for both kinds of caller.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const NOBODY: u32 = 65534;

/// A copy of the running test binary in a directory owned by uid 65534 (the original
/// may sit where that user cannot reach it).
pub struct NobodyRun {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
}

impl NobodyRun {
    /// `None`, with the reason printed, when the suite is not running as root or
    /// `setpriv` is missing.
    pub fn prepare() -> Option<NobodyRun> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("already unprivileged: the other tests in this suite cover this case");
            return None;
        }
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("SKIPPED: setpriv is not installed, cannot re-run as an unprivileged user");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        chown_nobody(dir.path());
        let bin = dir.path().join("suite");
        std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(NobodyRun { dir, bin })
    }

    /// A new directory owned by uid 65534 inside the run directory.
    pub fn owned_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir(&p).unwrap();
        chown_nobody(&p);
        p
    }

    /// Run test `inner` of this suite as uid 65534 with only `env` (and a minimal PATH)
    /// in its environment, and assert that it ran and passed.
    pub fn run(&self, inner: &str, env: &[(&str, &OsStr)]) {
        // A sandbox cloned by a concurrent test may briefly hold the copy's write
        // descriptor (ETXTBSY): retry a few times, as Go's os/exec does.
        let mut attempts = 0;
        let out = loop {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&self.bin)
                .args(["--exact", inner, "--include-ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .current_dir(self.dir.path());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            attempts += 1;
            if attempts < 20 && String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            break out;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "inner run `{inner}` failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "inner test `{inner}` did not run: {stdout}"
        );
    }
}

pub fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// The effective uid of the test process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A world-readable file outside any workspace (a stand-in for the host's secrets), so
/// only the sandbox can hide it from an unprivileged caller. Keep the directory alive.
pub fn world_readable_secret(content: &str) -> (tempfile::TempDir, PathBuf) {
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = state.path().join("secret");
    std::fs::write(&secret, content).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    (state, secret)
}
