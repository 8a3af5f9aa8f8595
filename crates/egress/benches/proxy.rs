//! Direct vs through the egress proxy, in one run on loopback:
//! small-request latency (keep-alive) and 100 MB throughput (CONNECT tunnel and plain
//! HTTP). Prints ratios against the targets: added median ≤ 0.3 ms, throughput ≥ 90%.
//!
//! `cargo bench -p cordon-egress --bench proxy`

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use egress::{EgressPolicy, ProxyConfig};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: usize = 2000;
const WARMUP: usize = 200;
const BIG: usize = 100 * 1024 * 1024;
/// Interleaved rounds per throughput measure; the best counts (other load only slows).
const ROUNDS: usize = 15;
/// Back-to-back transfers per CPU-cost measure.
const CPU_ROUNDS: u32 = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn latencies(client: &reqwest::Client, url: &str) -> (Duration, Duration) {
    for _ in 0..WARMUP {
        let r = client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let r = client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// A TCP server that writes BIG bytes to every connection, then closes.
async fn source_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let chunk = vec![7u8; 256 * 1024];
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut left = BIG;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// An HTTP server answering every request with BIG bytes.
async fn big_http_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let body = Bytes::from(vec![7u8; BIG]);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_r: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

async fn read_all(s: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

async fn tunnel_direct(src: SocketAddr) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(src).await.unwrap();
    assert_eq!(read_all(&mut s).await, BIG);
    t.elapsed()
}

async fn tunnel_proxied(proxy: SocketAddr, port: u16) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(
        format!("CONNECT source.test:{port} HTTP/1.1\r\nhost: source.test:{port}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // Read the 200 head byte by byte so no tunnel byte is consumed with it.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(read_all(&mut s).await, BIG);
    t.elapsed()
}

async fn http_big(client: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let mut r = client.get(url).send().await.unwrap();
    let mut total = 0;
    while let Some(c) = r.chunk().await.unwrap() {
        total += c.len();
    }
    assert_eq!(total, BIG);
    t.elapsed()
}

/// CPU time this process has used (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// CPU time per 100 MiB transfer, over CPU_ROUNDS transfers back to back.
async fn cpu_per_transfer<F, Fut>(mut one: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let before = cpu_time();
    for _ in 0..CPU_ROUNDS {
        one().await;
    }
    (cpu_time() - before) / CPU_ROUNDS
}

fn best(runs: Vec<Duration>) -> Duration {
    runs.into_iter().min().unwrap()
}

fn mbps(d: Duration) -> f64 {
    BIG as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let web = http_server().await;
        let src = source_server().await;
        let big = big_http_server().await;
        let cfg = ProxyConfig {
            resolve: names(&[("api.test", "127.0.0.1"), ("source.test", "127.0.0.1"), ("big.test", "127.0.0.1")]),
            allow_ranges: loopback_only(),
            max_bytes: u64::MAX,
            ..ProxyConfig::default()
        };
        let policy = EgressPolicy::new(
            "bench",
            "bench",
            vec![
                pat(&format!("api.test:{}", web.port())),
                pat(&format!("source.test:{}", src.port())),
                pat(&format!("big.test:{}", big.port())),
            ],
        );
        let h = start(cfg, policy).await;
        let direct = reqwest::Client::builder().no_proxy().build().unwrap();
        let proxied = h.client();

        let small_direct = format!("http://127.0.0.1:{}/small", web.port());
        let small_proxied = format!("http://api.test:{}/small", web.port());
        let (d50, d99) = latencies(&direct, &small_direct).await;
        let (p50, p99) = latencies(&proxied, &small_proxied).await;

        let mut td = Vec::new();
        let mut tp = Vec::new();
        let mut hd = Vec::new();
        let mut hp = Vec::new();
        let big_direct = format!("http://127.0.0.1:{}/", big.port());
        let big_proxied = format!("http://big.test:{}/", big.port());
        for _ in 0..ROUNDS {
            td.push(tunnel_direct(src).await);
            tp.push(tunnel_proxied(h.handle.local_addr(), src.port()).await);
            hd.push(http_big(&direct, &big_direct).await);
            hp.push(http_big(&proxied, &big_proxied).await);
        }
        let (td, tp, hd, hp) = (best(td), best(tp), best(hd), best(hp));
        let proxy_addr = h.handle.local_addr();
        let ctd = cpu_per_transfer(|| tunnel_direct(src)).await;
        let ctp = cpu_per_transfer(|| tunnel_proxied(proxy_addr, src.port())).await;
        let chd = cpu_per_transfer(|| http_big(&direct, &big_direct)).await;
        let chp = cpu_per_transfer(|| http_big(&proxied, &big_proxied)).await;

        let added = ms(p50) - ms(d50);
        println!("egress proxy benchmark (loopback, {REQUESTS} keep-alive requests, 100 MiB transfers, best of {ROUNDS})");
        println!("{:<34} {:>12} {:>12} {:>10}", "", "direct", "via proxy", "ratio");
        println!("{:<34} {:>9.3} ms {:>9.3} ms {:>9.2}x", "small request median", ms(d50), ms(p50), ms(p50) / ms(d50));
        println!("{:<34} {:>9.3} ms {:>9.3} ms {:>9.2}x", "small request p99", ms(d99), ms(p99), ms(p99) / ms(d99));
        println!("{:<34} {:>7.0} MiB/s {:>7.0} MiB/s {:>9.0}%", "100 MiB through CONNECT tunnel", mbps(td), mbps(tp), 100.0 * mbps(tp) / mbps(td));
        println!("{:<34} {:>7.0} MiB/s {:>7.0} MiB/s {:>9.0}%", "100 MiB plain HTTP", mbps(hd), mbps(hp), 100.0 * mbps(hp) / mbps(hd));
        println!("{:<34} {:>9.0} ms {:>9.0} ms {:>9.2}x", "CPU per 100 MiB, CONNECT tunnel", ms(ctd), ms(ctp), ms(ctp) / ms(ctd));
        println!("{:<34} {:>9.0} ms {:>9.0} ms {:>9.2}x", "CPU per 100 MiB, plain HTTP", ms(chd), ms(chp), ms(chp) / ms(chd));
        println!(
            "targets: added median {added:.3} ms (target <= 0.3 ms: {}); tunnel {:.0}% and HTTP {:.0}% of direct (target >= 90%: {})",
            if added <= 0.3 { "met" } else { "MISSED" },
            100.0 * mbps(tp) / mbps(td),
            100.0 * mbps(hp) / mbps(hd),
            if mbps(tp) >= 0.9 * mbps(td) && mbps(hp) >= 0.9 * mbps(hd) { "met" } else { "MISSED" },
        );
    });
}
