//! Latency of one `tools/call` of `echo` through [`cordon_mcp::Session`] against the
//! same call with rmcp's own client (its stdio transport, no limits, no watch), each
//! on its own copy of the same server, measured in the same run, interleaved. Prints
//! p50 and p90 of both, the ratio and the added latency. The server is
//! `mcp-server-everything` when installed, else the test suite's hostile server
//! (which answers `echo` at once).
//!
//! `cargo bench -p cordon-mcp --bench call`

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cordon_mcp::{Limits, Session};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::json;
use tokio::process::{Child, Command};

const WARMUP: usize = 50;
const RUNS: usize = 1000;

/// The server's command line and the `echo` arguments it takes.
fn server() -> (Vec<String>, serde_json::Value, &'static str) {
    let everything = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("mcp-server-everything").is_file()))
        .unwrap_or(false);
    if everything {
        (
            vec!["mcp-server-everything".into(), "stdio".into()],
            json!({"message": "ping"}),
            "mcp-server-everything (npm)",
        )
    } else {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile.py");
        (
            vec![
                "python3".into(),
                script.display().to_string(),
                "normal".into(),
            ],
            json!({"text": "ping"}),
            "tests/fixtures/hostile.py (mcp-server-everything is not installed)",
        )
    }
}

fn spawn(cmd: &[String]) -> Child {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", cmd[0]))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (cmd, args, which) = server();
        let serde_json::Value::Object(args_obj) = args.clone() else {
            unreachable!("echo arguments are an object")
        };

        let mut ours_child = spawn(&cmd);
        let ours = Session::connect(
            "bench",
            ours_child.stdout.take().expect("stdout"),
            ours_child.stdin.take().expect("stdin"),
            Limits::default(),
        )
        .await
        .expect("connect");
        ours.list_tools().await.expect("list");

        let mut direct_child = spawn(&cmd);
        let direct = ()
            .serve((
                direct_child.stdout.take().expect("stdout"),
                direct_child.stdin.take().expect("stdin"),
            ))
            .await
            .expect("rmcp connect");

        let timeout = Duration::from_secs(30);
        let call_direct = || {
            direct
                .peer()
                .call_tool(CallToolRequestParams::new("echo").with_arguments(args_obj.clone()))
        };
        for _ in 0..WARMUP {
            ours.call_tool("echo", args.clone(), timeout)
                .await
                .expect("ours");
            call_direct().await.expect("direct");
        }
        let mut t_ours = Vec::with_capacity(RUNS);
        let mut t_direct = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            // Alternate which goes first, so neither always follows the other.
            let mut one = async |first_ours: bool| {
                if first_ours {
                    let t = Instant::now();
                    ours.call_tool("echo", args.clone(), timeout)
                        .await
                        .expect("ours");
                    t_ours.push(t.elapsed());
                } else {
                    let t = Instant::now();
                    call_direct().await.expect("direct");
                    t_direct.push(t.elapsed());
                }
            };
            one(i % 2 == 0).await;
            one(i % 2 == 1).await;
        }
        t_ours.sort();
        t_direct.sort();
        let (o50, d50) = (percentile(&t_ours, 0.5), percentile(&t_direct, 0.5));
        let (o90, d90) = (percentile(&t_ours, 0.9), percentile(&t_direct, 0.9));
        println!("call_tool(\"echo\"), {RUNS} calls each, server: {which}");
        println!("  rmcp client directly:  p50 {d50:>10.3?}  p90 {d90:>10.3?}");
        println!("  cordon_mcp::Session:   p50 {o50:>10.3?}  p90 {o90:>10.3?}");
        println!(
            "  ratio p50 {:.3}, added p50 {:+.1} µs",
            o50.as_secs_f64() / d50.as_secs_f64(),
            (o50.as_secs_f64() - d50.as_secs_f64()) * 1e6
        );
        ours.close().await;
        let _ = direct.cancel().await;
    });
}
