//! Latency of the native sandbox against baselines measured in the same run.
//!
//! `cargo bench -p cordon-sandbox --bench exec [-- --quick]` times N iterations (200, or 30
//! with `--quick`) of each case, after a short warm-up, and prints the median and p90:
//!
//! - `plain`: fork+exec of `/bin/true` (`std::process::Command`);
//! - `bwrap`: `bwrap --unshare-all` with a comparable minimal root running `/bin/true`
//!   (skipped with a message when bubblewrap is missing or unusable);
//! - `fresh`: a Cordon sandbox per call (start + exec `/bin/true` + drop), i.e. scope "call";
//! - `reused`: one exec of `/bin/true` in a live sandbox, i.e. scope "task".
//!
//! Then the ratios fresh/bwrap (target <= 0.7) and reused/plain (target <= 1.5), with
//! PASS/MISS. It asserts nothing: the numbers are for `docs/benchmarks.md`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cordon_sandbox::{ExecRequest, NativeSandbox, Profile, Sandbox};

const FRESH_TARGET: f64 = 0.7;
const REUSED_TARGET: f64 = 1.5;

/// Median and 90th percentile of `n` timed runs of `f`, after `n / 10 + 3` warm-up runs.
fn measure(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..n / 10 + 3 {
        f();
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

fn ms(d: Duration) -> String {
    format!("{:7.3} ms", d.as_secs_f64() * 1e3)
}

fn row(name: &str, (median, p90): (Duration, Duration)) {
    println!("{name:<34} median {}   p90 {}", ms(median), ms(p90));
}

fn verdict(name: &str, a: Duration, b: Duration, target: f64) {
    let r = a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let mark = if r <= target { "PASS" } else { "MISS" };
    println!("{name:<34} {r:5.2}x  (target <= {target}x)  {mark}");
}

fn bwrap_args(ws: &Path) -> Vec<String> {
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

fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 30 } else { 200 };
    let ws = tempfile::tempdir().expect("temp workspace");
    let profile = Profile {
        workspace: ws.path().to_path_buf(),
        workspace_writable: true,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Default::default(),
        egress_port: None,
    };
    let req = ExecRequest {
        argv: vec!["/bin/true".into()],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(10),
        output_limit: 4096,
    };
    let native = NativeSandbox::new();
    println!(
        "{n} iterations per case{}",
        if quick { " (--quick)" } else { "" }
    );

    let plain = measure(n, || {
        assert!(run_quiet(&mut Command::new("/bin/true")));
    });
    row("plain fork+exec /bin/true", plain);

    let args = bwrap_args(ws.path());
    let bwrap = if run_quiet(Command::new("bwrap").args(&args)) {
        let t = measure(n, || {
            assert!(run_quiet(Command::new("bwrap").args(&args)), "bwrap failed");
        });
        row("bwrap --unshare-all /bin/true", t);
        Some(t)
    } else {
        println!("bwrap: not installed or not usable here (apt-get install bubblewrap); skipped");
        None
    };

    let fresh = measure(n, || {
        let mut sb = native.start(&profile).expect("sandbox start");
        let out = sb.exec(&req).expect("sandboxed true");
        assert!(out.status.success());
    });
    row("cordon fresh (start+exec+drop)", fresh);

    // Where the fresh case spends its time.
    let (mut t_start, mut t_exec, mut t_drop) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let mut sb = native.start(&profile).expect("sandbox start");
        t_start.push(t.elapsed());
        let t = Instant::now();
        sb.exec(&req).expect("sandboxed true");
        t_exec.push(t.elapsed());
        let t = Instant::now();
        drop(sb);
        t_drop.push(t.elapsed());
    }
    for (name, mut v) in [
        ("  of which start", t_start),
        ("  of which first exec", t_exec),
        ("  of which drop", t_drop),
    ] {
        v.sort_unstable();
        println!("{name:<34} median {}", ms(v[v.len() / 2]));
    }

    let mut sb = native.start(&profile).expect("sandbox start");
    let reused = measure(n, || {
        let out = sb.exec(&req).expect("sandboxed true");
        assert!(out.status.success());
    });
    row("cordon reused (exec in one)", reused);
    drop(sb);

    println!();
    match bwrap {
        Some(b) => verdict("fresh / bwrap (medians)", fresh.0, b.0, FRESH_TARGET),
        None => println!("fresh / bwrap: no bwrap, no ratio"),
    }
    verdict("reused / plain (medians)", reused.0, plain.0, REUSED_TARGET);
}
