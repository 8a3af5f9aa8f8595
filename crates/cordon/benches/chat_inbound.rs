//! Inbound chat messages through the release `cordon serve`, each measure next to a
//! baseline taken in the same run (interleaved):
//!
//! - latency: a message pushed to a Telegram Bot API double (`testkit::FakeTelegram`) until
//!   the agent's model request arrives at the mock model in this process, against the same
//!   push until a bare long-polling client (`getUpdates` in a loop, in this process)
//!   receives it from a second double: what Cordon adds is the difference (gate, store,
//!   audit record, session, turn start, model request). p50 and p95 over the rounds;
//!   target: added ≤ 5 ms at p50.
//! - throughput: 1,000 updates pushed at once (900 from distinct members of an
//!   allowlisted group that do not mention the bot, ignored; 100 from distinct unpaired
//!   senders, who get a pairing code or a "too many pending" reply) until the audit log
//!   holds an inbound record of each, against the bare client draining 1,000 updates;
//!   target: ≥ 1,000 a second with none lost (each update's id appears exactly once).
//!
//! Nothing is asserted about time. `cargo bench -p cordon --bench chat_inbound`
//! (`-- --rounds N`, default 50).

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::telegram::TgUser;
use testkit::{FakeTelegram, MockLlm, Reply, Script};

#[path = "common/install.rs"]
mod install;
use install::Install;

const TOKEN: &str = "777:bench-token";
const GROUP: i64 = -100_900;
const OWNER: i64 = 5001;
const BURST: usize = 1000;

fn cordon() -> &'static str {
    env!("CARGO_BIN_EXE_cordon")
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(inst: &Install) -> Gateway {
    let mut child = inst
        .command(cordon())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cordon serve");
    let mut out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    Gateway(child)
}

/// Inbound `channel` records in the audit log, by event id.
fn inbound_ids(inst: &Install) -> Vec<String> {
    let path = inst.dir.path().join("state/audit/audit.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("\"kind\":\"channel\"") && l.contains("\"action\":\"inbound\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["data"]["event_id"].as_str().map(str::to_string))
        .collect()
}

/// A bare Bot API client: long-poll `getUpdates` and note when each update arrives.
async fn poll_once(http: &reqwest::Client, base: &str, offset: &mut i64) -> usize {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/bot{TOKEN}/getUpdates?offset={}&timeout=25", *offset);
    let v: Value = http
        .get(&url)
        .send()
        .await
        .expect("getUpdates")
        .json()
        .await
        .expect("json");
    let updates = v["result"].as_array().cloned().unwrap_or_default();
    if let Some(last) = updates.last() {
        *offset = last["update_id"].as_i64().unwrap_or(0) + 1;
    }
    updates.len()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let llm = MockLlm::start(Script::dynamic(move |_| {
        seen.lock().unwrap().push(Instant::now());
        Reply::Text("ok".into())
    }))
    .await;
    let tg = FakeTelegram::start(TOKEN).await;
    let raw = FakeTelegram::start(TOKEN).await;
    let inst = Install::new(&llm.base_url(), "stream = false");
    let config = inst.dir.path().join("cordon.toml");
    let mut cfg = std::fs::read_to_string(&config).unwrap();
    cfg.push_str(&format!(
        "\n[channels.telegram]\ntoken_secret = \"TG_TOKEN\"\napi_url = \"{}\"\nallow = [{{ id = \"{OWNER}\", role = \"owner\" }}]\ngroups = [\"{GROUP}\"]\nrate_per_min = 600\n",
        tg.base_url()
    ));
    std::fs::write(&config, cfg).unwrap();
    let mut set = inst
        .command(cordon())
        .args(["secrets", "set", "TG_TOKEN", "--hosts", "api.telegram.org"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(set.stdin.take().unwrap(), "{TOKEN}").unwrap();
    assert!(set.wait().unwrap().success(), "cordon secrets set");
    let _gw = start(&inst);
    let owner = TgUser::new(OWNER, "Owner");

    // Warm up: the agent is built on the first turn.
    tg.message(&owner).text("warm up").push();
    tg.wait_for_sent(1, Duration::from_secs(60)).await;

    let http = reqwest::Client::new();
    let mut raw_offset = 0i64;
    let (mut cordon_ms, mut raw_ms) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Cordon: push until the model request.
        let before = arrivals.lock().unwrap().len();
        let sent_before = tg.sent().len();
        let t0 = Instant::now();
        tg.message(&owner).text(&format!("round {i}")).push();
        let t1 = loop {
            if let Some(t) = arrivals.lock().unwrap().get(before).copied() {
                break t;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        cordon_ms.push((t1 - t0).as_secs_f64() * 1e3);
        tg.wait_for_sent(sent_before + 1, Duration::from_secs(30))
            .await;
        // Baseline: the same push to a bare long-polling client.
        let base = raw.base_url();
        let poll = {
            let http = http.clone();
            let mut off = raw_offset;
            tokio::spawn(async move {
                // Until the update arrives (a poll may end empty).
                loop {
                    let n = poll_once(&http, &base, &mut off).await;
                    if n > 0 {
                        return (Instant::now(), n, off);
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        raw.message(&owner).text(&format!("round {i}")).push();
        let (t1, _, off) = poll.await.unwrap();
        raw_offset = off;
        raw_ms.push((t1 - t0).as_secs_f64() * 1e3);
    }
    let c50 = percentile(&mut cordon_ms, 0.5);
    let c95 = percentile(&mut cordon_ms, 0.95);
    let r50 = percentile(&mut raw_ms, 0.5);
    let r95 = percentile(&mut raw_ms, 0.95);
    println!("latency, message pushed -> ({rounds} rounds, interleaved)");
    println!("  bare getUpdates client receives it: p50 {r50:.2} ms, p95 {r95:.2} ms");
    println!("  cordon's model request arrives:     p50 {c50:.2} ms, p95 {c95:.2} ms");
    println!(
        "  added by cordon: p50 {:.2} ms (target <= 5 ms), ratio {:.1}x",
        c50 - r50,
        c50 / r50
    );

    // Throughput: a burst of 1,000 refused or answered-with-a-code updates.
    let before: HashSet<String> = inbound_ids(&inst).into_iter().collect();
    let mut pushed = Vec::with_capacity(BURST);
    let t0 = Instant::now();
    for i in 0..BURST {
        let id = if i % 10 == 0 {
            let u = TgUser::new(700_000 + i as i64, "Stranger");
            tg.message(&u).text("hello?").push()
        } else {
            let u = TgUser::new(800_000 + i as i64, "Member");
            tg.message(&u)
                .in_group(GROUP, "team")
                .text("chatter")
                .push()
        };
        pushed.push(id.to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let (elapsed, got) = loop {
        let ids: Vec<String> = inbound_ids(&inst)
            .into_iter()
            .filter(|i| !before.contains(i))
            .collect();
        if ids.len() >= BURST || Instant::now() > deadline {
            break (t0.elapsed(), ids);
        }
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!("{} of {BURST} recorded after {:?}", ids.len(), t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let unique: HashSet<&String> = got.iter().collect();
    let missing = pushed.iter().filter(|p| !unique.contains(p)).count();
    let rate = got.len() as f64 / elapsed.as_secs_f64();
    // Baseline: the bare client drains the same number of updates.
    for _ in 0..BURST {
        raw.message(&owner).text("chatter").push();
    }
    let t0 = Instant::now();
    let mut drained = 0;
    while drained < BURST {
        let n = poll_once(&http, &raw.base_url(), &mut raw_offset).await;
        if n == 0 {
            eprintln!("baseline: an empty poll after {drained} of {BURST}");
        }
        drained += n;
    }
    let raw_rate = BURST as f64 / t0.elapsed().as_secs_f64();
    println!("throughput, {BURST} updates pushed at once");
    println!("  bare getUpdates client drains them: {raw_rate:.0}/s");
    println!(
        "  cordon judges and records them:     {rate:.0}/s in {:.0} ms (target >= 1000/s), \
         {} recorded, {} duplicated, {missing} lost",
        elapsed.as_secs_f64() * 1e3,
        unique.len(),
        got.len() - unique.len()
    );
}
