//! Cold start of a long-running sandboxed process (`Sandbox::spawn`) against `exec` and
//! against the same process unsandboxed, measured in the same run.
//!
//! `cargo bench -p cordon-sandbox --bench spawn [-- --quick]` times N rounds (100, or 20
//! with `--quick`) after a short warm-up; each round runs every case once (interleaved),
//! each after 20 ms of idle time, as an agent's calls come (so every native start finds
//! the namespace/cgroup pool refilled, as in `exec`'s "20 ms apart" case; back to back,
//! a start right after another one creates its cgroup inline and measures that instead).
//! It prints the median and p90 of:
//!
//! - `exec`: a fresh native sandbox running `/bin/true` (start + exec + drop);
//! - `spawn true`: a native spawn of `/bin/true` until its exit status is in, then drop;
//! - `spawn, until started`: the same, only until `spawn` returned (the process runs);
//! - `host spawn true`: backend `none` (a plain child with the same pipes), same steps;
//! - `server, first reply`: a python3 JSON-lines server, from spawn to its first answer,
//!   sandboxed (native) and not (`none`);
//! - `mcp-server-everything`: a real MCP server (node, `@modelcontextprotocol/server-everything`
//!   installed globally), from spawn to the answer of `tools/list` after `initialize` —
//!   what a user waits for before the first call — sandboxed and not. Skipped, saying so,
//!   when the server is not installed.
//!
//! Then the ratios sandboxed/unsandboxed cold start (issue 14's target: <= 1.2x). It
//! asserts nothing: the numbers are for `docs/benchmarks.md`. Note the load average
//! (printed) when recording them: other work on the machine widens every gap.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use cordon_sandbox::{
    ExecRequest, ExitStatus, HostSandbox, NativeSandbox, Profile, Sandbox, SpawnRequest,
};

const SERVER_TARGET: f64 = 1.2;

const SERVER: &str = "import json, sys\nfor line in sys.stdin:\n    print(json.dumps({'id': json.loads(line)['id']}), flush=True)\n";

fn ms(d: Duration) -> String {
    format!("{:7.3} ms", d.as_secs_f64() * 1e3)
}

fn spawn_true(sb: &dyn Sandbox, profile: &Profile) -> (Duration, Duration) {
    let t = Instant::now();
    let mut p = sb
        .spawn(profile, &SpawnRequest::new(["/bin/true"]))
        .expect("spawn /bin/true");
    let started = t.elapsed();
    let status = p.wait(Duration::from_secs(10)).expect("wait");
    assert_eq!(status, Some(ExitStatus::Exited(0)));
    drop(p);
    (started, t.elapsed())
}

fn server_first_reply(sb: &dyn Sandbox, profile: &Profile) -> Duration {
    let t = Instant::now();
    let mut p = sb
        .spawn(profile, &SpawnRequest::new(["python3", "-c", SERVER]))
        .expect("spawn python3");
    let mut stdin = File::from(p.stdin().expect("stdin"));
    let mut stdout = BufReader::new(File::from(p.stdout().expect("stdout")));
    stdin.write_all(b"{\"id\": 1}\n").expect("request");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("reply");
    assert_eq!(line, "{\"id\": 1}\n");
    let d = t.elapsed();
    drop(p);
    d
}

/// The real MCP server measured, when installed.
const EVERYTHING: &str = "/usr/bin/mcp-server-everything";

const INITIALIZE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","#,
    r#""capabilities":{},"clientInfo":{"name":"cordon-bench","version":"1"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    "\n"
);

/// From spawn to the answer of `tools/list` (after `initialize`).
fn mcp_tools_listed(sb: &dyn Sandbox, profile: &Profile) -> Duration {
    let t = Instant::now();
    let mut p = sb
        .spawn(profile, &SpawnRequest::new([EVERYTHING, "stdio"]))
        .expect("spawn mcp-server-everything");
    let mut stdin = File::from(p.stdin().expect("stdin"));
    let mut stdout = BufReader::new(File::from(p.stdout().expect("stdout")));
    stdin.write_all(INITIALIZE.as_bytes()).expect("requests");
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).expect("reply");
        assert!(
            n > 0,
            "the server closed stdout: {}",
            String::from_utf8_lossy(&p.stderr_tail())
        );
        let msg: serde_json::Value = serde_json::from_str(&line).expect("JSON-RPC");
        if msg["id"] == 2 {
            assert!(
                msg["result"]["tools"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty()),
                "{msg}"
            );
            break;
        }
    }
    let d = t.elapsed();
    drop(p);
    d
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 20 } else { 100 };
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
    let (native, host) = (NativeSandbox::new(), HostSandbox::new());
    let everything = std::path::Path::new(EVERYTHING).exists();
    if !everything {
        println!(
            "{EVERYTHING} is not installed (npm i -g @modelcontextprotocol/server-everything): its cases are skipped"
        );
    }
    println!(
        "{n} iterations per case{}; load average before: {}",
        if quick { " (--quick)" } else { "" },
        load_average()
    );
    let names = [
        "exec true (start+exec+drop)",
        "spawn true (until exit, drop)",
        "spawn true, until started",
        "host spawn true (until exit)",
        "server first reply, native",
        "server first reply, none",
        "mcp everything tools/list, native",
        "mcp everything tools/list, none",
    ];
    let mut cases: Vec<Vec<Duration>> = names.iter().map(|_| Vec::with_capacity(n)).collect();
    let warmup = n / 10 + 3;
    let idle = || std::thread::sleep(Duration::from_millis(20));
    for round in 0..warmup + n {
        let mut s = [Duration::ZERO; 8];
        idle();
        let t = Instant::now();
        let mut inst = native.start(&profile).expect("sandbox start");
        assert!(inst.exec(&req).expect("exec").status.success());
        drop(inst);
        s[0] = t.elapsed();
        idle();
        (s[2], s[1]) = spawn_true(&native, &profile);
        idle();
        s[3] = spawn_true(&host, &profile).1;
        idle();
        s[4] = server_first_reply(&native, &profile);
        idle();
        s[5] = server_first_reply(&host, &profile);
        if everything {
            idle();
            s[6] = mcp_tools_listed(&native, &profile);
            idle();
            s[7] = mcp_tools_listed(&host, &profile);
        }
        if round >= warmup {
            for (v, d) in cases.iter_mut().zip(s) {
                v.push(d);
            }
        }
    }
    let mut medians = Vec::new();
    let shown = if everything { names.len() } else { 6 };
    for (name, v) in names.iter().zip(&mut cases).take(shown) {
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!("{name:<34} median {}   p90 {}", ms(at(0.5)), ms(at(0.9)));
        medians.push(at(0.5));
    }
    println!();
    let r = medians[1].as_secs_f64() / medians[0].as_secs_f64().max(1e-9);
    println!("{:<34} {r:5.2}x", "spawn true / exec true (medians)");
    let ratio = |name: &str, sandboxed: Duration, direct: Duration| {
        let r = sandboxed.as_secs_f64() / direct.as_secs_f64().max(1e-9);
        let mark = if r <= SERVER_TARGET { "PASS" } else { "MISS" };
        println!("{name:<34} {r:5.2}x  (target <= {SERVER_TARGET}x)  {mark}");
    };
    ratio("server cold start native / none", medians[4], medians[5]);
    if everything {
        ratio("mcp everything native / none", medians[6], medians[7]);
    }
    println!("load average after: {}", load_average());
}
