//! Whole-process start-up of the release `cordon` binary, each case next to a baseline
//! measured in the same run. Every round runs every case once, in the same order
//! (interleaved, so that load from elsewhere on the machine falls on all cases alike):
//!
//! - `plain`: fork+exec+wait of `/bin/true` (what any process costs here);
//! - `bwrap`: `bwrap --unshare-all` with a minimal root running `/bin/true` (the argument
//!   list of `crates/sandbox/benches/exec.rs`; skipped with a message when bubblewrap is
//!   missing or unusable);
//! - `cordon sandbox exec -- /bin/true`: the agent's sandbox, from an initialised state
//!   directory, as a user types it;
//! - `cordon --version`;
//! - `cordon run TASK` against `testkit::MockLlm` in this process, which answers every
//!   request at once with a short text.
//!
//! It prints the median and p90 wall-clock time of each, the mean CPU time (user +
//! system of the reaped child, from this process's `cutime`/`cstime`, 10 ms ticks summed
//! over the rounds), and the ratios against the targets of issue 17: sandbox exec ≤ 1.0×
//! bwrap, `--version` ≤ 5 ms, `run` ≤ 30 ms. It asserts nothing about time.
//!
//! `cargo bench -p cordon --bench startup` (builds the release `cordon` it runs;
//! `-- --rounds N` for another number of rounds, default 40; `CORDON_BENCH_BIN=PATH` runs
//! another build of `cordon` instead, e.g. the one before a change).

#[path = "../../sandbox/benches/common/bwrap.rs"]
mod bwrap;
#[path = "common/install.rs"]
mod install;
use bwrap::bwrap_args;
use install::Install;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{MockLlm, Reply, Script};

const ROUNDS: usize = 40;
const SANDBOX_TARGET: f64 = 1.0;
const VERSION_TARGET_MS: f64 = 5.0;
const RUN_TARGET_MS: f64 = 30.0;

/// The release binary cargo built, or `$CORDON_BENCH_BIN` (an older build, to compare).
fn cordon() -> String {
    std::env::var("CORDON_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cordon").into())
}

/// CPU time of this process's reaped children so far (user + system), in clock ticks.
fn children_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces):
    // state is field 3, cutime field 16, cstime field 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    get(16).unwrap_or(0) + get(17).unwrap_or(0)
}

/// Run `cmd` to completion with output discarded; its wall-clock time and CPU ticks.
fn time(cmd: &mut Command) -> (Duration, u64, bool) {
    let before = children_ticks();
    let t = Instant::now();
    let ok = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let took = t.elapsed();
    (took, children_ticks().saturating_sub(before), ok)
}

/// A case's samples: wall-clock times and the CPU ticks summed over them.
struct Case {
    name: &'static str,
    wall: Vec<Duration>,
    ticks: u64,
}

impl Case {
    fn new(name: &'static str) -> Case {
        Case {
            name,
            wall: Vec::new(),
            ticks: 0,
        }
    }

    fn add(&mut self, (took, ticks, ok): (Duration, u64, bool), what: &str) {
        assert!(ok, "{what} failed (run it by hand to see why)");
        self.wall.push(took);
        self.ticks += ticks;
    }

    fn median(&self) -> f64 {
        let mut v = self.wall.clone();
        v.sort();
        v.get(v.len() / 2).map_or(f64::NAN, ms)
    }

    fn p90(&self) -> f64 {
        let mut v = self.wall.clone();
        v.sort();
        let i = ((v.len().max(1) - 1) as f64 * 0.9).round() as usize;
        v.get(i).map_or(f64::NAN, ms)
    }

    fn cpu_ms(&self) -> f64 {
        let hz = rustix::param::clock_ticks_per_second() as f64;
        self.ticks as f64 * 1000.0 / hz / self.wall.len().max(1) as f64
    }

    fn print(&self) {
        if self.wall.is_empty() {
            return;
        }
        println!(
            "{:<40} median {:8.2} ms   p90 {:8.2} ms   cpu {:6.1} ms",
            self.name,
            self.median(),
            self.p90(),
            self.cpu_ms()
        );
    }
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(name: &str, value: f64, target: f64, unit: &str) {
    let mark = if value <= target { "PASS" } else { "MISS" };
    println!("{name:<40} {value:8.2}{unit}  (target <= {target}{unit})  {mark}");
}

fn rounds_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS)
        .max(1)
}

fn main() {
    let n = rounds_arg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let llm = rt.block_on(MockLlm::start(Script::dynamic(|_| {
        Reply::Text("done".to_string())
    })));
    // One JSON body: the mock streams in paced pieces, a real server's time, not Cordon's.
    let inst = Install::new(&llm.base_url(), "stream = false\ntimeout_secs = 30");
    let args = bwrap_args(&inst.workspace());
    let have_bwrap = Command::new("bwrap")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_bwrap {
        println!("bwrap: not installed or not usable here (apt-get install bubblewrap); skipped");
    }
    eprintln!("binary: {}", cordon());
    eprintln!(
        "{n} rounds, interleaved, after {} warm-up rounds…",
        n / 10 + 2
    );

    let mut plain = Case::new("plain fork+exec /bin/true");
    let mut bwrap = Case::new("bwrap --unshare-all /bin/true");
    let mut exec = Case::new("cordon sandbox exec -- /bin/true");
    let mut version = Case::new("cordon --version");
    let mut run = Case::new("cordon run (model answers at once)");
    let warmup = n / 10 + 2;
    for round in 0..warmup + n {
        let keep = round >= warmup;
        let s = time(&mut Command::new("/bin/true"));
        if keep {
            plain.add(s, "/bin/true");
        }
        if have_bwrap {
            let s = time(Command::new("bwrap").args(&args));
            if keep {
                bwrap.add(s, "bwrap");
            }
        }
        let s = time(
            inst.command(&cordon())
                .args(["sandbox", "exec", "--", "/bin/true"]),
        );
        if keep || !s.2 {
            exec.add(s, "cordon sandbox exec -- /bin/true");
        }
        let s = time(inst.command(&cordon()).arg("--version"));
        if keep || !s.2 {
            version.add(s, "cordon --version");
        }
        let s = time(inst.command(&cordon()).args(["run", "say done"]));
        if keep || !s.2 {
            run.add(s, "cordon run");
        }
    }

    println!("\nwhole processes, {n} rounds interleaved (wall clock; cpu = user + system)");
    for c in [&plain, &bwrap, &exec, &version, &run] {
        c.print();
    }
    println!();
    if have_bwrap {
        verdict(
            "sandbox exec / bwrap",
            exec.median() / bwrap.median(),
            SANDBOX_TARGET,
            "x",
        );
    }
    verdict(
        "cordon --version",
        version.median(),
        VERSION_TARGET_MS,
        " ms",
    );
    verdict("cordon run", run.median(), RUN_TARGET_MS, " ms");
    println!(
        "{:<40} {:8.2}x",
        "cordon --version / plain",
        version.median() / plain.median()
    );
    drop(llm);
}
