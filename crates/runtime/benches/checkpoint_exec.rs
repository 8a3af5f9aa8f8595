//! What checkpointing costs a command, as the agent feels it: one `exec` call through the
//! whole runtime (guard, sandbox, records) in a reused sandbox (`scope = "task"`) that
//! changes 10 workspace files, with `[checkpoints]` on (the workspace overlay, then the
//! change set planned, journaled and applied) against the same runtime with checkpoints
//! off. Interleaved in one run; prints medians and the ratio (issue 15's target: ≤ 1.2×).
//! A fresh sandbox per call (`scope = "call"`) is measured the same way.
//!
//! `cargo bench -p cordon-runtime --bench checkpoint_exec`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use serde_json::json;

const WARMUP: usize = 5;
const RUNS: usize = 60;

/// Appends to 5 files and rewrites 5 others: 10 changes per call.
const COMMAND: &str = "sh -c 'for i in 1 2 3 4 5; do echo x >> a$i.txt; done; for i in 1 2 3 4 5; do echo y > b$i.txt; done'";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn harness(checkpoints: bool, scope: &'static str) -> common::Harness {
    let h = common::Harness::new(common::Setup {
        native_sandbox: true,
        exec_mode: "auto",
        checkpoints,
        extra_toml: scope,
        ..Default::default()
    });
    for i in 1..=5 {
        std::fs::write(h.ws.join(format!("a{i}.txt")), "start\n").expect("seed");
    }
    h
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for (name, scope) in [
            (
                "reused sandbox (scope = task)",
                "\n[sandbox]\nscope = \"task\"\n",
            ),
            (
                "fresh sandbox (scope = call)",
                "\n[sandbox]\nscope = \"call\"\n",
            ),
        ] {
            let on = harness(true, scope);
            let off = harness(false, scope);
            let call = async |h: &common::Harness| {
                let t = Instant::now();
                let (_, obs) = h.call("exec", json!({ "command": COMMAND })).await;
                assert!(!obs.is_error, "{}", obs.content);
                t.elapsed()
            };
            for _ in 0..WARMUP {
                call(&on).await;
                call(&off).await;
            }
            let (mut t_on, mut t_off) = (Vec::new(), Vec::new());
            for i in 0..RUNS {
                if i % 2 == 0 {
                    t_on.push(call(&on).await);
                    t_off.push(call(&off).await);
                } else {
                    t_off.push(call(&off).await);
                    t_on.push(call(&on).await);
                }
            }
            assert_eq!(
                std::fs::read_to_string(on.ws.join("b1.txt")).expect("applied"),
                "y\n",
                "the checkpointed runtime applied the command's changes"
            );
            let (m_on, m_off) = (median(t_on), median(t_off));
            println!("exec changing 10 files, {name}, {RUNS} calls each, interleaved");
            println!("  checkpoints off: median {m_off:>10.3?}");
            println!("  checkpoints on:  median {m_on:>10.3?}");
            println!(
                "  ratio {:.2} (target ≤ 1.2)",
                m_on.as_secs_f64() / m_off.as_secs_f64()
            );
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "load average: {}",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
    });
}
