//! The gateway (`cordon serve`, the release binary) under load, on loopback, each measure
//! next to a baseline taken in the same run:
//!
//! - cold start: spawn `cordon serve` until the first `200` from `/readyz` (median of 5
//!   starts on an initialised state directory), against spawning and reaping
//!   `cordon --version` (the same binary's load and exit), interleaved;
//! - idle RSS of a started gateway (`VmRSS` in `/proc/PID/status`), and again after one
//!   turn (the agent is built on first use);
//! - 200 concurrent sessions, each: create a session, open its WebSocket stream, send a
//!   message, read events until `turn_finished`, check the streamed text is the whole
//!   answer exactly once. Counts errors (any: the exit status is non-zero), samples RSS
//!   every 50 ms (and reads `VmHWM`), and reports p50/p95 turn latency (message sent to
//!   `turn_finished` received) against the same 200 streamed answers fetched from the
//!   mock model directly.
//!
//! The model is `testkit::MockLlm` in this process, streaming a fixed answer. Nothing is
//! asserted about time: the targets are printed next to the numbers.
//!
//! `cargo bench -p cordon --bench gateway_load` (builds the release `cordon` it runs;
//! `-- --sessions N` for another load, `-- --rounds N` to repeat it on the same gateway
//! and print its memory after each round).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[path = "common/install.rs"]
mod install;
use install::Install;

const STARTS: usize = 5;
const SESSIONS: usize = 200;
/// Longest a single turn may take before it counts as an error.
const TURN_TIMEOUT: Duration = Duration::from_secs(120);
const RSS_EVERY: Duration = Duration::from_millis(50);
/// Events the gateway streamed to the load's clients (each one stored, then sent).
static EVENTS_SEEN: AtomicU64 = AtomicU64::new(0);
const TARGET_IDLE_RSS_MB: f64 = 25.0;
const TARGET_READY_MS: f64 = 100.0;
/// What the mock model streams for every turn (cut into many deltas).
const ANSWER: &str = "The gateway streams this answer to every session as a series of \
    small text deltas, each one persisted in the session's event log and sent to the \
    WebSocket follower, so that a client reconnecting with the last sequence number it \
    saw misses nothing and sees nothing twice.";

fn cordon() -> &'static str {
    env!("CARGO_BIN_EXE_cordon")
}

impl Install {
    fn token(&self) -> String {
        let out = self
            .command(cordon())
            .args(["token", "create", "--scope", "operator", "--name", "bench"])
            .output()
            .expect("run cordon token create");
        assert!(
            out.status.success(),
            "cordon token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn serve_log(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// `cordon serve` on `port`; returns it once `/readyz` answered 200, and how long
    /// that took from the spawn.
    fn serve(&self, port: u16) -> (Child, Duration) {
        let log = std::fs::File::create(self.serve_log()).unwrap();
        let start = Instant::now();
        let mut child = self
            .command(cordon())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cordon serve");
        loop {
            if ready(port) {
                return (child, start.elapsed());
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "cordon serve exited ({status}) before it was ready:\n{}",
                    std::fs::read_to_string(self.serve_log()).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "cordon serve not ready after 20 s"
            );
            std::thread::sleep(Duration::from_micros(250));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `GET /readyz` answered 200.
fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn stop(mut child: Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = child.wait();
}

/// A `/proc/PID/status` field in kB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `anon A MB, file F MB`: heap and stacks vs the binary's (and libraries') pages.
fn rss_split(pid: u32) -> String {
    let anon = status_kb(pid, "RssAnon").unwrap_or(0);
    let file = status_kb(pid, "RssFile").unwrap_or(0) + status_kb(pid, "RssShmem").unwrap_or(0);
    format!("anon {:.1} MB, file {:.1} MB", mb(anon), mb(file))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Cold start: `STARTS` gateway starts interleaved with `cordon --version` runs.
fn cold_start(inst: &Install) -> (Duration, Duration, Vec<Duration>) {
    // Warm-up (creates the state directory and database, fills the page cache).
    let (child, _) = inst.serve(free_port());
    stop(child);
    let mut serve = Vec::new();
    let mut version = Vec::new();
    for _ in 0..STARTS {
        let t = Instant::now();
        let status = Command::new(cordon())
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .expect("run cordon --version");
        version.push(t.elapsed());
        assert!(status.success());
        let (child, took) = inst.serve(free_port());
        serve.push(took);
        stop(child);
    }
    let all = serve.clone();
    (median(serve), median(version), all)
}

/// What one load run saw.
struct Load {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    wall: Duration,
}

impl Load {
    fn from(results: Vec<Result<Duration, String>>, wall: Duration) -> Load {
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(d) => latencies.push(d),
                Err(e) => errors.push(e),
            }
        }
        latencies.sort();
        Load {
            latencies,
            errors,
            wall,
        }
    }

    fn p(&self, p: f64) -> Option<Duration> {
        (!self.latencies.is_empty()).then(|| percentile(&self.latencies, p))
    }
}

/// One session's whole life; the message is sent once every session is ready.
async fn gateway_turn(
    http: reqwest::Client,
    base: String,
    token: String,
    go: Arc<tokio::sync::Barrier>,
) -> Result<Duration, String> {
    let prepared = async {
        let resp = http
            .post(format!("{base}/api/sessions"))
            .bearer_auth(&token)
            .json(&json!({"agent": "default"}))
            .send()
            .await
            .map_err(|e| format!("create session: {e}"))?;
        if resp.status() != 201 {
            return Err(format!(
                "create session: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ));
        }
        let session: Value = resp.json().await.map_err(|e| e.to_string())?;
        let id = session["id"].as_str().unwrap_or_default().to_string();
        let ws_url = format!(
            "{}/api/sessions/{id}/stream?after=0",
            base.replace("http://", "ws://")
        );
        let mut req = ws_url.into_client_request().map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        h.insert("origin", base.parse().map_err(|_| "origin header")?);
        h.insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| "token header")?,
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| format!("open stream: {e}"))?;
        Ok::<_, String>((id, ws))
    }
    .await;
    // Everyone meets here, ready or not, so a failed session cannot hold up the others.
    go.wait().await;
    let (id, mut ws) = prepared?;
    let start = Instant::now();
    let turn = async {
        let resp = http
            .post(format!("{base}/api/sessions/{id}/messages"))
            .bearer_auth(&token)
            .json(&json!({"text": "tell me how streaming works"}))
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        if resp.status() != 202 {
            return Err(format!(
                "send: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ));
        }
        let mut text = String::new();
        let mut last = 0u64;
        while let Some(msg) = ws.next().await {
            let msg = msg.map_err(|e| format!("stream: {e}"))?;
            let Message::Text(t) = msg else { continue };
            let e: Value = serde_json::from_str(&t).map_err(|e| format!("event: {e}"))?;
            let seq = e["seq"].as_u64().unwrap_or(0);
            if seq != last + 1 {
                return Err(format!("stream: event {seq} after {last} (gap or repeat)"));
            }
            last = seq;
            EVENTS_SEEN.fetch_add(1, Ordering::Relaxed);
            match e["kind"].as_str().unwrap_or_default() {
                "text_delta" => text.push_str(e["data"]["text"].as_str().unwrap_or_default()),
                "turn_finished" => {
                    let elapsed = start.elapsed();
                    if text != ANSWER {
                        return Err(format!("streamed text differs from the answer: {text:?}"));
                    }
                    let _ = ws.close(None).await;
                    return Ok(elapsed);
                }
                "turn_failed" => return Err(format!("turn_failed: {}", e["data"]["error"])),
                _ => {}
            }
        }
        Err(format!(
            "stream ended before turn_finished (after event {last})"
        ))
    };
    match tokio::time::timeout(TURN_TIMEOUT, turn).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no turn_finished within {} s",
            TURN_TIMEOUT.as_secs()
        )),
    }
}

/// The same answer, streamed by the mock model straight to the client.
async fn direct_turn(
    http: reqwest::Client,
    base: String,
    go: Arc<tokio::sync::Barrier>,
) -> Result<Duration, String> {
    go.wait().await;
    let start = Instant::now();
    let turn = async {
        let resp = http
            .post(format!("{base}/chat/completions"))
            .json(&json!({
                "model": "scripted",
                "stream": true,
                "messages": [{"role": "user", "content": "tell me how streaming works"}],
            }))
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        let mut body = resp.bytes_stream();
        let mut all = Vec::new();
        while let Some(chunk) = body.next().await {
            all.extend_from_slice(&chunk.map_err(|e| format!("body: {e}"))?);
        }
        let elapsed = start.elapsed();
        if !String::from_utf8_lossy(&all).contains("[DONE]") {
            return Err("the stream did not end with [DONE]".into());
        }
        Ok(elapsed)
    };
    match tokio::time::timeout(TURN_TIMEOUT, turn).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    }
}

fn http_client(n: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(n)
        .build()
        .expect("HTTP client")
}

async fn run_direct(base: &str, n: usize) -> Load {
    let http = http_client(n);
    let go = Arc::new(tokio::sync::Barrier::new(n));
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(direct_turn(http.clone(), base.to_string(), go.clone())))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    Load::from(results, start.elapsed())
}

/// The load, with RSS sampled every `RSS_EVERY`; returns it and the peak sample (kB).
async fn run_gateway(base: &str, token: &str, pid: u32, n: usize) -> (Load, u64) {
    let http = http_client(n);
    let go = Arc::new(tokio::sync::Barrier::new(n));
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RSS_EVERY);
            while !done.load(Ordering::SeqCst) {
                tick.tick().await;
                if let Some(kb) = status_kb(pid, "VmRSS") {
                    peak.fetch_max(kb, Ordering::SeqCst);
                }
            }
        })
    };
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(gateway_turn(
                http.clone(),
                base.to_string(),
                token.to_string(),
                go.clone(),
            ))
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    let wall = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let _ = sampler.await;
    (Load::from(results, wall), peak.load(Ordering::SeqCst))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn show(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.1} ms", ms(d)))
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}x", ms(a) / ms(b)),
        _ => "—".into(),
    }
}

/// `--NAME N` from the command line (after `cargo bench … --`).
fn number_arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = number_arg("--sessions", SESSIONS);
    // More rounds of the same load on the same gateway: does memory keep growing?
    let rounds = number_arg("--rounds", 1).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let llm = rt.block_on(MockLlm::start(Script::dynamic(|_| {
        Reply::Text(ANSWER.to_string())
    })));
    let inst = Install::new(&llm.base_url(), "timeout_secs = 120");
    let token = inst.token();
    eprintln!("binary: {}", cordon());

    eprintln!("cold start: {STARTS} starts, interleaved with `cordon --version`…");
    let (ready, version, starts) = cold_start(&inst);

    let port = free_port();
    let (child, _) = inst.serve(port);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle_kb = status_kb(pid, "VmRSS").unwrap_or(0);
    let idle_split = rss_split(pid);
    let base = format!("http://127.0.0.1:{port}");
    // The agent is built on its first turn (policy, sandbox, egress proxy): one turn,
    // then idle again.
    let (first, _) = rt.block_on(run_gateway(&base, &token, pid, 1));
    std::thread::sleep(Duration::from_millis(500));
    let agent_kb = status_kb(pid, "VmRSS").unwrap_or(0);
    let agent_split = rss_split(pid);
    EVENTS_SEEN.store(0, Ordering::Relaxed);

    eprintln!("load: {n} turns straight from the mock model…");
    let direct = rt.block_on(run_direct(&llm.base_url(), n));
    eprintln!("load: {n} concurrent sessions through the gateway…");
    let (load, peak_kb) = rt.block_on(run_gateway(&base, &token, pid, n));
    let events = EVENTS_SEEN.load(Ordering::Relaxed);
    let hwm_kb = status_kb(pid, "VmHWM").unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let after_kb = status_kb(pid, "VmRSS").unwrap_or(0);
    let mut more_errors = 0;
    for round in 2..=rounds {
        let (again, peak) = rt.block_on(run_gateway(&base, &token, pid, n));
        std::thread::sleep(Duration::from_secs(2));
        more_errors += again.errors.len();
        eprintln!(
            "round {round}: p50 {}, errors {}, peak RSS {:.1} MB, 2 s later {:.1} MB",
            show(again.p(0.5)),
            again.errors.len(),
            mb(peak),
            mb(status_kb(pid, "VmRSS").unwrap_or(0))
        );
    }
    let alive = rustix::process::Pid::from_raw(pid as i32)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
    stop(child);

    let starts: Vec<String> = starts.iter().map(|d| format!("{:.1}", ms(*d))).collect();
    println!();
    println!("## gateway_load ({n} sessions)");
    println!();
    println!("| measure | gateway | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| cold start to first 200 /readyz, median of {STARTS} ({} ms) | {:.1} ms | {:.1} ms (`cordon --version`) | {:.1}x | ≤ {TARGET_READY_MS} ms: {} |",
        starts.join(", "),
        ms(ready),
        ms(version),
        ms(ready) / ms(version).max(f64::EPSILON),
        verdict(ms(ready) <= TARGET_READY_MS)
    );
    println!(
        "| idle RSS after start ({idle_split}) | {:.1} MB | — | — | ≤ {TARGET_IDLE_RSS_MB} MB: {} |",
        mb(idle_kb),
        verdict(mb(idle_kb) <= TARGET_IDLE_RSS_MB)
    );
    println!(
        "| idle RSS after a first turn (agent built, {agent_split}; turn {}) | {:.1} MB | — | — | — |",
        show(first.p(0.5)),
        mb(agent_kb)
    );
    println!(
        "| peak RSS under load (50 ms samples / VmHWM) | {:.1} / {:.1} MB | — | {:.1}x idle | — |",
        mb(peak_kb),
        mb(hwm_kb),
        mb(hwm_kb) / mb(idle_kb).max(f64::EPSILON)
    );
    println!(
        "| RSS 2 s after the load | {:.1} MB | — | — | — |",
        mb(after_kb)
    );
    println!(
        "| turn latency p50 | {} | {} (mock model direct) | {} | — |",
        show(load.p(0.5)),
        show(direct.p(0.5)),
        ratio(load.p(0.5), direct.p(0.5))
    );
    println!(
        "| turn latency p95 | {} | {} | {} | — |",
        show(load.p(0.95)),
        show(direct.p(0.95)),
        ratio(load.p(0.95), direct.p(0.95))
    );
    println!(
        "| events per turn (stored, then streamed) | {:.1} | — | — | — |",
        events as f64 / n as f64
    );
    println!(
        "| all {n} turns, wall clock | {:.1} ms | {:.1} ms | {:.2}x | — |",
        ms(load.wall),
        ms(direct.wall),
        ms(load.wall) / ms(direct.wall).max(f64::EPSILON)
    );
    println!(
        "| errors | {}/{n} | {}/{n} | — | 0: {} |",
        load.errors.len(),
        direct.errors.len(),
        verdict(load.errors.is_empty() && alive)
    );
    if !alive {
        println!("\nthe gateway process was gone at the end of the load");
    }
    for e in &first.errors {
        println!("first turn error: {e}");
    }
    for (i, e) in load.errors.iter().take(10).enumerate() {
        println!("gateway error {}: {e}", i + 1);
    }
    for (i, e) in direct.errors.iter().take(5).enumerate() {
        println!("direct error {}: {e}", i + 1);
    }
    let log = std::fs::read_to_string(inst.serve_log()).unwrap_or_default();
    if !log.trim().is_empty() {
        let lines: Vec<&str> = log.lines().collect();
        println!("\ncordon serve stderr ({} lines, last 20):", lines.len());
        for l in lines.iter().rev().take(20).rev() {
            println!("  {l}");
        }
    }
    drop(llm);
    if !first.errors.is_empty()
        || !load.errors.is_empty()
        || more_errors > 0
        || !direct.errors.is_empty()
        || !alive
    {
        // Kept for a look: config, state (database, audit log), serve.log.
        println!("\ninstallation kept in {}", inst.dir.keep().display());
        std::process::exit(1);
    }
}
