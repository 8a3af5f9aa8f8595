//! What the workspace overlay (`Profile::workspace_overlay`) costs, against the same
//! sandbox without it, measured in the same run.
//!
//! `cargo bench -p cordon-sandbox --bench overlay [-- --quick]` times N rounds (200, or 30
//! with `--quick`) after a warm-up; each round runs every case once (interleaved, so that
//! load from elsewhere falls on all cases alike):
//!
//! - `reused`: one exec in a live sandbox (scope "task") of a shell that changes 10 files
//!   of the workspace (5 overwritten, 5 created; shell built-ins only), without and with
//!   the overlay. With it, the exec includes mounting a new overlay before the command,
//!   building its Landlock ruleset and unmounting the overlay after; emptying `upper`
//!   between rounds is the caller's work and is not timed (neither is applying it to the
//!   workspace, which is not the sandbox's part: the journal's cost comes on top);
//! - `fresh`: start + exec `/bin/true` + drop (scope "call"), without and with the overlay
//!   (with it, start also mounts and unmounts one overlay as a probe).
//!
//! It prints medians and p90, then the ratios with/without (the target for the
//! reused case is <= 1.2x). It asserts nothing: the numbers are for `docs/benchmarks.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use cordon_sandbox::{ExecRequest, NativeSandbox, Profile, Sandbox, WorkspaceOverlay};

const REUSED_TARGET: f64 = 1.2;

const TEN_CHANGES: &str = "for i in 0 1 2 3 4 5 6 7 8 9; do echo \"round $i\" > f$i; done";

fn ms(d: Duration) -> String {
    format!("{:7.3} ms", d.as_secs_f64() * 1e3)
}

fn profile(ws: &Path, overlay: Option<WorkspaceOverlay>) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: cordon_sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Default::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: overlay,
    }
}

fn req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(10),
        output_limit: 4096,
    }
}

/// Empty `dir` (the caller's part after each command, untimed).
fn clear(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read upper") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("remove");
        } else {
            std::fs::remove_file(&p).expect("remove");
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 30 } else { 200 };
    let root = tempfile::tempdir().expect("temp dir");
    let ws = root.path().join("ws");
    let upper = root.path().join("state/upper");
    let work = root.path().join("state/work");
    for d in [&ws, &upper, &work] {
        std::fs::create_dir_all(d).expect("create dirs");
    }
    for i in 0..5 {
        std::fs::write(ws.join(format!("f{i}")), "existing\n").expect("seed file");
    }
    let overlay = WorkspaceOverlay {
        upper: upper.clone(),
        work,
    };
    let plain = profile(&ws, None);
    let with = profile(&ws, Some(overlay));
    let native = NativeSandbox::new();
    if !native.supports_workspace_overlay() {
        println!("this kernel cannot mount the workspace overlay; nothing to measure");
        return;
    }
    let change = req(&["sh", "-c", TEN_CHANGES]);
    let truth = req(&["/bin/true"]);
    println!(
        "{n} iterations per case{}",
        if quick { " (--quick)" } else { "" }
    );

    let mut reused_plain = native.start(&plain).expect("sandbox start");
    let mut reused_with = native.start(&with).expect("sandbox start with overlay");
    let names = [
        "reused, 10 changes, no overlay",
        "reused, 10 changes, overlay",
        "fresh /bin/true, no overlay",
        "fresh /bin/true, overlay",
    ];
    let mut samples: Vec<Vec<Duration>> = names.iter().map(|_| Vec::with_capacity(n)).collect();
    let warmup = n / 10 + 3;
    for round in 0..warmup + n {
        let mut s = [Duration::ZERO; 4];
        let t = Instant::now();
        assert!(reused_plain.exec(&change).expect("exec").status.success());
        s[0] = t.elapsed();
        let t = Instant::now();
        assert!(reused_with.exec(&change).expect("exec").status.success());
        s[1] = t.elapsed();
        clear(&upper);
        for (i, p) in [(2, &plain), (3, &with)] {
            let t = Instant::now();
            let mut fresh = native.start(p).expect("sandbox start");
            assert!(fresh.exec(&truth).expect("exec").status.success());
            drop(fresh);
            s[i] = t.elapsed();
        }
        if round >= warmup {
            for (v, d) in samples.iter_mut().zip(s) {
                v.push(d);
            }
        }
    }
    let mut medians = Vec::new();
    for (name, v) in names.iter().zip(&mut samples) {
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!("{name:<34} median {}   p90 {}", ms(at(0.5)), ms(at(0.9)));
        medians.push(at(0.5));
    }
    println!();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let r = ratio(medians[1], medians[0]);
    let mark = if r <= REUSED_TARGET { "PASS" } else { "MISS" };
    println!(
        "{:<34} {r:5.2}x  (target <= {REUSED_TARGET}x, without the caller's apply)  {mark}",
        "reused: overlay / none (medians)"
    );
    println!(
        "{:<34} {:5.2}x  (+{})",
        "fresh: overlay / none (medians)",
        ratio(medians[3], medians[2]),
        ms(medians[3].saturating_sub(medians[2]))
    );
}
