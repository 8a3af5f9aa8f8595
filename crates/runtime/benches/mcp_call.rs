//! Added latency of an MCP tool call through Cordon — decided by the guard, the server
//! in its own sandbox, the result redacted, labelled and recorded in the audit log —
//! against the same call made directly with the SDK (rmcp's client) to the same server
//! started without a sandbox. Interleaved in one run; prints p50/p90 of both and the
//! p50 difference (target: ≤ 2 ms added). Needs `mcp-server-everything` (npm).
//!
//! `cargo bench -p cordon-runtime --bench mcp_call`

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

const WARMUP: usize = 30;
const RUNS: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let installed = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("mcp-server-everything").is_file()))
        .unwrap_or(false);
    if !installed {
        println!(
            "SKIPPED: mcp-server-everything is not installed (npm install -g @modelcontextprotocol/server-everything)"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = "\n[mcp.servers.everything]\ncommand = \"mcp-server-everything\"\n";
        let setup = || common::Setup {
            native_sandbox: true,
            extra_toml: server,
            ..Default::default()
        };
        // Approve `echo` as a human would: list, pin.
        let lister = common::Harness::new(setup());
        let (_, listed) = lister
            .rt
            .mcp_list_tools("everything", Vec::new())
            .await
            .expect("list the tools");
        let mut pins = mcp::Pins::default();
        pins.approve(
            "everything",
            listed.iter().find(|t| t.name == "echo").expect("echo"),
        );
        let h = common::Harness::new(common::Setup {
            mcp_pins: pins,
            ..setup()
        });

        let mut child = tokio::process::Command::new("mcp-server-everything")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the direct server");
        let direct = ()
            .serve((
                child.stdout.take().expect("stdout"),
                child.stdin.take().expect("stdin"),
            ))
            .await
            .expect("rmcp connect");
        let args = json!({"message": "ping"});
        let serde_json::Value::Object(obj) = args.clone() else {
            unreachable!()
        };
        let through = async || {
            let t = Instant::now();
            let (_, obs) = h.call("everything__echo", args.clone()).await;
            assert!(
                !obs.is_error && obs.content.contains("ping"),
                "{}",
                obs.content
            );
            t.elapsed()
        };
        std::fs::write(h.ws.join("note.txt"), "ping").expect("a note");
        // The pipeline's own floor: a built-in tool through the same guard, redaction,
        // labels and audit records (each decision and result made durable).
        let builtin = async || {
            let t = Instant::now();
            let (_, obs) = h.call("read_file", json!({"path": "note.txt"})).await;
            assert!(!obs.is_error, "{}", obs.content);
            t.elapsed()
        };
        let sdk = async || {
            let t = Instant::now();
            direct
                .peer()
                .call_tool(CallToolRequestParams::new("echo").with_arguments(obj.clone()))
                .await
                .expect("direct call");
            t.elapsed()
        };
        for _ in 0..WARMUP {
            through().await;
            sdk().await;
        }
        let (mut t_cordon, mut t_sdk, mut t_builtin) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..RUNS {
            if i % 2 == 0 {
                t_cordon.push(through().await);
                t_sdk.push(sdk().await);
            } else {
                t_sdk.push(sdk().await);
                t_cordon.push(through().await);
            }
            t_builtin.push(builtin().await);
        }
        t_cordon.sort();
        t_sdk.sort();
        t_builtin.sort();
        let (b50, b90) = (percentile(&t_builtin, 0.5), percentile(&t_builtin, 0.9));
        let (c50, s50) = (percentile(&t_cordon, 0.5), percentile(&t_sdk, 0.5));
        let (c90, s90) = (percentile(&t_cordon, 0.9), percentile(&t_sdk, 0.9));
        println!("echo of mcp-server-everything, {RUNS} calls each, interleaved");
        println!("  SDK directly, no sandbox:     p50 {s50:>10.3?}  p90 {s90:>10.3?}");
        println!("  through Cordon's runtime:     p50 {c50:>10.3?}  p90 {c90:>10.3?}");
        println!("  built-in read_file, same path: p50 {b50:>10.3?}  p90 {b90:>10.3?}");
        println!(
            "  ratio p50 {:.2}, added p50 {:.2} ms (target ≤ 2 ms)",
            c50.as_secs_f64() / s50.as_secs_f64(),
            (c50.as_secs_f64() - s50.as_secs_f64()) * 1e3
        );
        println!(
            "  of which the pipeline's floor (read_file): {:.2} ms; MCP-specific: {:.2} ms",
            b50.as_secs_f64() * 1e3,
            (c50.as_secs_f64() - s50.as_secs_f64() - b50.as_secs_f64()) * 1e3
        );
        let _ = direct.cancel().await;
    });
}
