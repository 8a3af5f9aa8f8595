//! Latency of the native sandbox against baselines measured in the same run.
//!
//! `cargo bench -p cordon-sandbox --bench exec [-- --quick]` times N rounds (200, or 30 with
//! `--quick`), after a short warm-up; each round runs every case once (interleaved, so
//! that load from elsewhere falls on all cases alike). It prints the median and p90 of:
//!
//! - `plain`: fork+exec of `/bin/true` (`std::process::Command`);
//! - `bwrap`: `bwrap --unshare-all` with a comparable minimal root running `/bin/true`
//!   (skipped with a message when bubblewrap is missing or unusable);
//! - `fresh`: a Cordon sandbox per call (start + exec `/bin/true` + drop), i.e. scope "call";
//! - `reused`: one exec of `/bin/true` in a live sandbox, i.e. scope "task";
//! - `fresh + overlay`: `fresh` with the workspace seen through an overlay (upper and
//!   work on `/dev/shm`), as with `[checkpoints]` on.
//!
//! Then the ratios fresh/bwrap and fresh+overlay/bwrap (target <= 0.7) and reused/plain
//! (target <= 1.5), with
//! PASS/MISS. It asserts nothing: the numbers are for `docs/benchmarks.md`.

#[path = "common/bwrap.rs"]
mod bwrap;

use bwrap::bwrap_args;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cordon_sandbox::{ExecRequest, NativeSandbox, Profile, Sandbox, WorkspaceOverlay};

const FRESH_TARGET: f64 = 0.7;
const REUSED_TARGET: f64 = 1.5;

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
        workspace_access: cordon_sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Default::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
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

    // Interleaved: every round runs each case once, so that load from elsewhere on the
    // machine (and the kernel's asynchronous namespace teardown) falls on all cases alike.
    let args = bwrap_args(ws.path());
    let have_bwrap = run_quiet(Command::new("bwrap").args(&args));
    if !have_bwrap {
        println!("bwrap: not installed or not usable here (apt-get install bubblewrap); skipped");
    }
    // The checkpointed profile: upper and work on a tmpfs, as the runtime makes them.
    let shm = tempfile::tempdir_in("/dev/shm").expect("overlay dirs on /dev/shm");
    for d in ["upper", "work"] {
        std::fs::create_dir(shm.path().join(d)).expect("overlay dir");
    }
    let overlaid = Profile {
        workspace_overlay: Some(WorkspaceOverlay {
            upper: shm.path().join("upper"),
            work: shm.path().join("work"),
        }),
        ..profile.clone()
    };
    let mut sb = native.start(&profile).expect("sandbox start");
    let mut cases: Vec<(&str, Vec<Duration>)> = [
        "plain fork+exec /bin/true",
        "bwrap --unshare-all /bin/true",
        "cordon fresh (start+exec+drop)",
        "  of which start",
        "  of which first exec",
        "  of which drop",
        "cordon reused (exec in one)",
        "cordon fresh + workspace overlay",
    ]
    .into_iter()
    .map(|name| (name, Vec::with_capacity(n)))
    .collect();
    let warmup = n / 10 + 3;
    for round in 0..warmup + n {
        let mut sample = [Duration::ZERO; 8];
        let t = Instant::now();
        assert!(run_quiet(&mut Command::new("/bin/true")));
        sample[0] = t.elapsed();
        if have_bwrap {
            let t = Instant::now();
            assert!(run_quiet(Command::new("bwrap").args(&args)), "bwrap failed");
            sample[1] = t.elapsed();
        }
        let t = Instant::now();
        let mut fresh = native.start(&profile).expect("sandbox start");
        sample[3] = t.elapsed();
        let t2 = Instant::now();
        assert!(fresh.exec(&req).expect("sandboxed true").status.success());
        sample[4] = t2.elapsed();
        let t2 = Instant::now();
        drop(fresh);
        sample[5] = t2.elapsed();
        sample[2] = t.elapsed();
        let t = Instant::now();
        assert!(sb.exec(&req).expect("sandboxed true").status.success());
        sample[6] = t.elapsed();
        let t = Instant::now();
        let mut fresh = native.start(&overlaid).expect("sandbox start (overlay)");
        assert!(fresh.exec(&req).expect("sandboxed true").status.success());
        drop(fresh);
        sample[7] = t.elapsed();
        if round >= warmup {
            for ((_, v), d) in cases.iter_mut().zip(sample) {
                v.push(d);
            }
        }
    }
    drop(sb);
    let mut stats = Vec::new();
    for (i, (name, v)) in cases.iter_mut().enumerate() {
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        let s = (at(0.5), at(0.9));
        if i != 1 || have_bwrap {
            row(name, s);
        }
        stats.push(s);
    }
    let (plain, fresh, reused, overlay) = (stats[0], stats[2], stats[6], stats[7]);
    let bwrap = have_bwrap.then_some(stats[1]);

    // An agent's calls come seconds apart, not back to back: with idle time between
    // starts, background work (the namespace pool's refill, the kernel's asynchronous
    // namespace teardown) is off the critical path. Same start+exec+drop, 20 ms apart.
    // Without and with the workspace overlay, alternately.
    let (mut idle, mut idle_overlay) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        for (p, v) in [(&profile, &mut idle), (&overlaid, &mut idle_overlay)] {
            std::thread::sleep(Duration::from_millis(20));
            let t = Instant::now();
            let mut fresh = native.start(p).expect("sandbox start");
            assert!(fresh.exec(&req).expect("sandboxed true").status.success());
            drop(fresh);
            v.push(t.elapsed());
        }
    }
    let quantiles = |mut v: Vec<Duration>| {
        v.sort_unstable();
        (v[n / 2], v[((n - 1) as f64 * 0.9).round() as usize])
    };
    let (idle, idle_overlay) = (quantiles(idle), quantiles(idle_overlay));
    row("cordon fresh, 20 ms apart", idle);
    row("cordon fresh + overlay, 20 ms apart", idle_overlay);
    let mut idle_bwrap = Vec::with_capacity(n);
    if have_bwrap {
        for _ in 0..n {
            std::thread::sleep(Duration::from_millis(20));
            let t = Instant::now();
            assert!(run_quiet(Command::new("bwrap").args(&args)), "bwrap failed");
            idle_bwrap.push(t.elapsed());
        }
        idle_bwrap.sort_unstable();
        row(
            "bwrap, 20 ms apart",
            (
                idle_bwrap[n / 2],
                idle_bwrap[((n - 1) as f64 * 0.9).round() as usize],
            ),
        );
    }

    println!();
    match bwrap {
        Some(b) => {
            verdict("fresh / bwrap (medians)", fresh.0, b.0, FRESH_TARGET);
            verdict(
                "fresh + overlay / bwrap (medians)",
                overlay.0,
                b.0,
                FRESH_TARGET,
            );
        }
        None => println!("fresh / bwrap: no bwrap, no ratio"),
    }
    if have_bwrap {
        verdict(
            "fresh / bwrap, 20 ms apart",
            idle.0,
            idle_bwrap[n / 2],
            FRESH_TARGET,
        );
        verdict(
            "fresh + overlay / bwrap, 20 ms apart",
            idle_overlay.0,
            idle_bwrap[n / 2],
            FRESH_TARGET,
        );
    }
    verdict("reused / plain (medians)", reused.0, plain.0, REUSED_TARGET);
}
