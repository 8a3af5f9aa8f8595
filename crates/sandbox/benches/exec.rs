//! Latency of one fresh sandbox running `true`, against baselines measured in the same run:
//! a plain `fork+exec` of `true`, and `bwrap --unshare-all` when bubblewrap is installed.
//! Run with `cargo bench -p cordon-sandbox`. Prints ratios; asserts nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use cordon_sandbox::{ExecRequest, NativeSandbox, Profile, Sandbox};

const RUNS: u32 = 200;

fn time(mut f: impl FnMut()) -> Duration {
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..RUNS {
        f();
    }
    start.elapsed() / RUNS
}

fn main() {
    let ws = tempfile::tempdir().expect("temp workspace");
    let profile = Profile {
        workspace: ws.path().to_path_buf(),
        workspace_writable: true,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Default::default(),
        egress_port: None,
    };
    let mut sb = NativeSandbox::new().start(&profile).expect("sandbox start");
    let req = ExecRequest {
        argv: vec!["true".into()],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(10),
        output_limit: 4096,
    };
    let plain = time(|| {
        Command::new("true").status().expect("run true");
    });
    let native = time(|| {
        sb.exec(&req).expect("sandboxed true");
    });
    println!("plain fork+exec: {plain:?}/run");
    println!(
        "native sandbox:  {native:?}/run ({:.1}x plain)",
        ratio(native, plain)
    );
    let bwrap_args = [
        "--unshare-all",
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
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "true",
    ];
    if Command::new("bwrap")
        .args(bwrap_args)
        .status()
        .is_ok_and(|s| s.success())
    {
        let bwrap = time(|| {
            Command::new("bwrap")
                .args(bwrap_args)
                .status()
                .expect("run bwrap");
        });
        println!(
            "bwrap:           {bwrap:?}/run (native is {:.2}x bwrap)",
            ratio(native, bwrap)
        );
    } else {
        println!("bwrap: not installed or not usable here, no comparison");
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
