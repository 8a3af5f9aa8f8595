//! The bubblewrap baseline the sandbox benchmarks compare against, shared by
//! `crates/sandbox/benches/exec.rs` and `crates/cordon/benches/startup.rs` (included with
//! `#[path]`): `bwrap --unshare-all` with a minimal root comparable to Cordon's, running
//! `/bin/true` with `ws` as `/workspace`.

use std::path::Path;

pub fn bwrap_args(ws: &Path) -> Vec<String> {
    let ws = ws.to_string_lossy().into_owned();
    [
        "--unshare-all",
        "--die-with-parent",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        &ws,
        "/workspace",
        "--chdir",
        "/workspace",
        "/bin/true",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}
