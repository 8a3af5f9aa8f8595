//! What the workspace overlay (`Profile::workspace_overlay`) costs, against the same
//! sandbox without it, measured in the same run.
//!
//! `cargo bench -p cordon-sandbox --bench overlay [-- --quick]` times N rounds (200, or 30
//! with `--quick`) after a warm-up; each round runs every case once (interleaved, so that
//! load from elsewhere falls on all cases alike):
//!
//! - `reused`: one exec in a live sandbox (scope "task") of a shell that changes 10 files
//!   of the workspace (appends to 5 existing ones, creates 5; shell built-ins only),
//!   without and with the overlay. With it, the exec includes mounting a new overlay
//!   before the command (and copying up the 5 appended files), building its Landlock
//!   ruleset and unmounting the overlay after. Between rounds, untimed, the workspace is
//!   put back: without the overlay the 5 new files are deleted; with it `upper` is
//!   emptied (the caller's part; applying the change to the workspace, which the journal
//!   does, is not the sandbox's and comes on top);
//! - `reused /bin/true`: the same without changes: the overlay's fixed cost per exec;
//! - `fresh`: start + exec `/bin/true` + drop (scope "call"), without and with the overlay
//!   (with it, start also mounts and unmounts one overlay as a probe, and checks that
//!   `work` takes user xattrs), each after 20 ms idle (as an agent's calls are spaced;
//!   back to back the second start would find the namespace pool empty), in alternating
//!   order.
//!
//! It prints medians and p90, then the ratios with/without (the target for the
//! reused case is <= 1.2x). It asserts nothing: the numbers are for `docs/benchmarks.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use cordon_sandbox::{ExecRequest, NativeSandbox, Profile, Sandbox, WorkspaceOverlay};

const REUSED_TARGET: f64 = 1.2;

/// Appends to f0..f4 (they exist), creates f5..f9.
const TEN_CHANGES: &str = "for i in 0 1 2 3 4 5 6 7 8 9; do echo \"round $i\" >> f$i; done";

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

/// `upper` and `work` in a new directory under `base`; `None` (with the reason printed)
/// when that filesystem cannot hold them.
fn overlay_dirs(base: &Path) -> Option<(tempfile::TempDir, WorkspaceOverlay)> {
    let dir = tempfile::tempdir_in(base).ok()?;
    let o = WorkspaceOverlay {
        upper: dir.path().join("upper"),
        work: dir.path().join("work"),
    };
    std::fs::create_dir(&o.upper).ok()?;
    std::fs::create_dir(&o.work).ok()?;
    Some((dir, o))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 30 } else { 200 };
    let root = tempfile::tempdir().expect("temp dir");
    let ws = root.path().join("ws");
    std::fs::create_dir(&ws).expect("create workspace");
    for i in 0..5 {
        std::fs::write(ws.join(format!("f{i}")), "existing\n").expect("seed file");
    }
    let native = NativeSandbox::new();
    if !native.supports_workspace_overlay() {
        println!("this kernel cannot mount the workspace overlay; nothing to measure");
        return;
    }
    // Upper on the disk (next to the workspace, as a state directory would be), and on a
    // tmpfs (no journal: the overlay's own metadata work per mount is memory only).
    let (_disk, on_disk) = overlay_dirs(root.path()).expect("overlay dirs on disk");
    let tmpfs = overlay_dirs(Path::new("/dev/shm"));
    let mut variants = vec![("none", profile(&ws, None), None)];
    variants.push((
        "overlay, upper on disk",
        profile(&ws, Some(on_disk.clone())),
        Some(on_disk.upper.clone()),
    ));
    let mut _tmpfs_dir = None;
    match tmpfs {
        Some((dir, o)) if native.start(&profile(&ws, Some(o.clone()))).is_ok() => {
            variants.push((
                "overlay, upper on tmpfs",
                profile(&ws, Some(o.clone())),
                Some(o.upper.clone()),
            ));
            _tmpfs_dir = Some(dir);
        }
        _ => println!("/dev/shm cannot hold the overlay's upper layer here; tmpfs case skipped"),
    }
    let change = req(&["sh", "-c", TEN_CHANGES]);
    let truth = req(&["/bin/true"]);
    println!(
        "{n} iterations per case{}",
        if quick { " (--quick)" } else { "" }
    );
    let mut live: Vec<_> = variants
        .iter()
        .map(|(_, p, _)| native.start(p).expect("sandbox start"))
        .collect();
    // [case][variant] samples; cases: reused 10 changes, reused true, fresh true.
    let cases = ["reused, 10 changes", "reused /bin/true", "fresh /bin/true"];
    let mut samples = vec![vec![Vec::with_capacity(n); variants.len()]; cases.len()];
    let warmup = n / 10 + 3;
    for round in 0..warmup + n {
        let keep = round >= warmup;
        for (v, (_, _, upper)) in variants.iter().enumerate() {
            let t = Instant::now();
            assert!(live[v].exec(&change).expect("exec").status.success());
            let d = t.elapsed();
            match upper {
                Some(upper) => clear(upper),
                None => {
                    for i in 5..10 {
                        std::fs::remove_file(ws.join(format!("f{i}"))).expect("reset");
                    }
                }
            }
            if keep {
                samples[0][v].push(d);
            }
        }
        for v in 0..variants.len() {
            let t = Instant::now();
            assert!(live[v].exec(&truth).expect("exec").status.success());
            if keep {
                samples[1][v].push(t.elapsed());
            }
        }
        // Rotated order, each after idle time.
        for k in 0..variants.len() {
            let v = (k + round) % variants.len();
            std::thread::sleep(Duration::from_millis(20));
            let t = Instant::now();
            let mut fresh = native.start(&variants[v].1).expect("sandbox start");
            assert!(fresh.exec(&truth).expect("exec").status.success());
            drop(fresh);
            if keep {
                samples[2][v].push(t.elapsed());
            }
        }
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    for (c, case) in cases.iter().enumerate() {
        let mut medians = Vec::new();
        for (v, (name, _, _)) in variants.iter().enumerate() {
            let s = &mut samples[c][v];
            s.sort_unstable();
            let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
            println!(
                "{:<48} median {}   p90 {}",
                format!("{case}, {name}"),
                ms(at(0.5)),
                ms(at(0.9))
            );
            medians.push(at(0.5));
        }
        for (v, (name, _, _)) in variants.iter().enumerate().skip(1) {
            let r = ratio(medians[v], medians[0]);
            let verdict = if c == 0 {
                let mark = if r <= REUSED_TARGET { "PASS" } else { "MISS" };
                format!("  (target <= {REUSED_TARGET}x without the caller's apply)  {mark}")
            } else {
                String::new()
            };
            println!(
                "  {name} / none: {r:5.2}x  (+{}){verdict}",
                ms(medians[v].saturating_sub(medians[0]))
            );
        }
        println!();
    }
}
