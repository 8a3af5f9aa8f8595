//! `cordon chat --remote URL` against a real `cordon serve`: the streamed answer, tool
//! calls and approvals answered from the remote terminal, a stream cut mid-turn, TLS, and
//! the inputs that must be refused (a token in the URL, plain HTTP off this machine, a
//! token without the scope to talk).

mod common;

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use testkit::{MockLlm, Reply, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running `cordon serve` (stopped with SIGTERM, or killed on drop).
struct Gateway {
    child: tokio::process::Child,
    url: String,
}

impl Gateway {
    async fn start(inst: &Install, args: &[&str]) -> Gateway {
        let (child, url) = serve_gateway(inst, args).await;
        Gateway { child, url }
    }

    fn addr(&self) -> SocketAddr {
        self.url.strip_prefix("http://").unwrap().parse().unwrap()
    }

    async fn stop(mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id().unwrap() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("serve did not stop on SIGTERM")
            .unwrap();
        assert!(status.success(), "serve exited with {status}");
    }
}

/// `cordon chat --remote …` with the token in `$CORDON_TOKEN` and `input` on stdin.
async fn remote_chat(inst: &Install, token: &str, args: &[&str], input: &str) -> Output {
    let mut child = inst
        .command()
        .arg("chat")
        .args(args)
        .env("CORDON_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A chat that refuses its arguments exits before reading: then the write fails with
    // a broken pipe, which is not what these tests check (the race made them flaky).
    let _ = stdin.write_all(input.as_bytes()).await;
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the remote chat did not finish in 60 s")
        .unwrap()
}

fn approval_records<'a>(records: &'a [Value], id: &str) -> Vec<&'a Value> {
    of_kind(records, "approval")
        .into_iter()
        .filter(|r| r["data"]["approval_id"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_streams_tools_show_and_an_approval_is_answered_remotely() {
    let answer = "The file remote.txt now exists in the workspace.";
    let llm = MockLlm::start(Script::new(vec![
        tool("exec", json!({"command": "touch remote.txt"})),
        Reply::Text(answer.into()),
        Reply::Text("second turn".into()),
        Reply::Text("resumed turn".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let token = gateway_token(&inst, "operator").await;
    let gw = Gateway::start(&inst, &["--bind", "127.0.0.1:0"]).await;

    let out = remote_chat(
        &inst,
        &token,
        &["--remote", &gw.url],
        "make the file\ny\nand now?\n/exit\n",
    )
    .await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stdout.contains(answer),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("second turn"), "{stdout}");
    // Streamed as deltas, shown once.
    assert_eq!(stdout.matches(answer).count(), 1, "{stdout}");
    assert!(
        stderr.contains("→ exec") && stderr.contains("touch remote.txt"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("approval needed").count(), 1, "{stderr}");
    assert!(stderr.contains("[trusted] you> "), "{stderr}");
    assert!(
        inst.workspace.join("remote.txt").exists(),
        "the approved command ran"
    );
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "the token was printed"
    );
    // The model saw the command's result, then the second message in the same session.
    let requests = llm.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[2].to_string().contains("make the file"));

    // Resumed: the history goes to the model, but is not shown again.
    let id = stderr
        .split("new session ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    let out = remote_chat(
        &inst,
        &token,
        &["--remote", &gw.url, "--session", id],
        "one more
",
    )
    .await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "resumed turn");
    assert!(text(&out.stderr).contains(&format!("resuming session {id}")));
    assert!(llm.requests()[3].to_string().contains("and now?"));
    gw.stop().await;

    let records = inst.audit().await;
    let requested: Vec<&Value> = of_kind(&records, "approval")
        .into_iter()
        .filter(|r| r["data"]["state"] == "requested")
        .collect();
    assert_eq!(requested.len(), 1, "{requested:?}");
    let id = requested[0]["data"]["approval_id"].as_str().unwrap();
    let states: Vec<String> = approval_records(&records, id)
        .iter()
        .map(|r| r["data"].to_string())
        .collect();
    assert!(
        states
            .iter()
            .any(|s| s.contains("approved") || s.contains("\"once\"")),
        "no record of the remote approval: {states:?}"
    );
    let (decision, result) = outcome(&records, "exec", "touch remote.txt");
    assert!(decision.is_some() && result.is_some(), "{records:?}");
    assert_eq!(result.unwrap()["data"]["is_error"], false);
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_answered_elsewhere_is_not_asked_again() {
    let llm = MockLlm::start(Script::new(vec![
        tool("exec", json!({"command": "touch elsewhere.txt"})),
        Reply::Text("done elsewhere".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let token = gateway_token(&inst, "operator").await;
    let gw = Gateway::start(&inst, &["--bind", "127.0.0.1:0"]).await;
    let mut chat = inst
        .command()
        .args(["chat", "--remote", &gw.url])
        .env("CORDON_TOKEN", &token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    stdin.write_all(b"make it\n").await.unwrap();
    // The question is open on the remote terminal; someone answers from the CLI.
    let start = Instant::now();
    let id = loop {
        let out = inst.cordon(&["approvals", "list", "--json"]).await;
        let pending: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(p) = pending.first() {
            break p["id"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "nothing pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ok(&inst.cordon(&["approvals", "approve", &id]).await);
    // Only now does the terminal type anything: the chat must not take it as the answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stdin.write_all(b"/exit\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), chat.wait_with_output())
        .await
        .expect("the remote chat did not finish")
        .unwrap();
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("({id} was answered elsewhere: once, by ")),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("done elsewhere"));
    assert!(inst.workspace.join("elsewhere.txt").exists());
    gw.stop().await;
}

/// A relay to the gateway that cuts the first event stream in the middle of the first
/// `text_delta` frame it carries.
async fn cutting_relay(target: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let cut_done = Arc::new(AtomicBool::new(false));
    let counter = streams.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            let cut_done = cut_done.clone();
            tokio::spawn(async move {
                let mut server = TcpStream::connect(target).await.unwrap();
                let mut head = vec![0u8; 8192];
                let n = client.read(&mut head).await.unwrap_or(0);
                let is_stream = String::from_utf8_lossy(&head[..n]).contains("/stream?");
                server.write_all(&head[..n]).await.unwrap();
                if !is_stream {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if cut_done.swap(true, Ordering::SeqCst) {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let Ok(n) = sr.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let chunk = &buf[..n];
                    if let Some(at) = chunk.windows(10).position(|w| w == b"text_delta") {
                        // Half a frame, then the connection is gone.
                        let _ = cw.write_all(&chunk[..at + 5]).await;
                        return;
                    }
                    if cw.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, streams)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_mid_turn_is_reopened_and_nothing_is_missed_or_repeated() {
    let answer = "one two three four five six seven eight nine ten eleven twelve \
                  thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty";
    let llm = MockLlm::start(Script::new(vec![Reply::Text(answer.into())])).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let token = gateway_token(&inst, "operator").await;
    let gw = Gateway::start(&inst, &["--bind", "127.0.0.1:0"]).await;
    let (relay, streams) = cutting_relay(gw.addr()).await;

    let url = format!("http://{relay}");
    let out = remote_chat(&inst, &token, &["--remote", &url], "count to twenty\n").await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        stdout.matches(answer).count(),
        1,
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("event stream lost") && stderr.contains("reopened"),
        "{stderr}"
    );
    assert!(streams.load(Ordering::SeqCst) >= 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_token_cannot_send_and_is_told_why() {
    let llm = MockLlm::start(Script::new(vec![Reply::Text("never".into())])).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let operator = gateway_token(&inst, "operator").await;
    let read = gateway_token(&inst, "read").await;
    let gw = Gateway::start(&inst, &["--bind", "127.0.0.1:0"]).await;

    // A read token cannot even start a session.
    let out = remote_chat(&inst, &read, &["--remote", &gw.url], "hello\n").await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("403") && err.contains("operator") && err.contains("read"),
        "{err}"
    );

    // Nor send to an existing one.
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("{}/api/sessions", gw.url))
        .bearer_auth(&operator)
        .json(&json!({"agent": "default"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap();
    let out = remote_chat(
        &inst,
        &read,
        &["--remote", &gw.url, "--session", id],
        "hello\n",
    )
    .await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot send the message") && err.contains("403"),
        "{err}"
    );
    assert!(err.contains("--scope operator"), "{err}");
    assert_eq!(llm.request_count(), 0, "the model was reached");

    // A revoked or made-up token: 401, said plainly.
    let out = remote_chat(&inst, "cdn_notatoken", &["--remote", &gw.url], "hi\n").await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refused the token") && err.contains("401"),
        "{err}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn urls_that_would_leak_the_token_are_refused_before_connecting() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    // Anything that connects here is a failure.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let token = "cdn_ZZZSECRETZZZ";
    for (url, says) in [
        (format!("http://127.0.0.1:{port}/?token={token}"), "query"),
        (format!("http://127.0.0.1:{port}/#{token}"), "fragment"),
        (format!("http://me:{token}@127.0.0.1:{port}"), "password"),
        (format!("ftp://127.0.0.1:{port}"), "scheme `ftp`"),
        (
            "http://192.0.2.10:7777".to_string(),
            "refusing plain http://",
        ),
        (
            "http://cordon.example:7777".to_string(),
            "refusing plain http://",
        ),
        ("not a url".to_string(), "not a URL"),
    ] {
        let out = remote_chat(&inst, "cdn_fromenv", &["--remote", &url], "hello\n").await;
        assert!(!out.status.success(), "{url} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{url}: {err}");
        assert!(
            !err.contains(token),
            "{url}: the URL's secret was echoed: {err}"
        );
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "a refused URL was connected to");

    // No token anywhere: no environment variable and no terminal to ask on. (With a
    // controlling terminal the chat would rightly ask on it: not testable here.)
    if std::fs::File::open("/dev/tty").is_err() {
        let out = inst
            .command()
            .args(["chat", "--remote", &format!("http://127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("CORDON_TOKEN"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_with_the_gateways_ca_and_refused_without_it() {
    let llm = MockLlm::start(Script::new(vec![Reply::Text("over TLS".into())])).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = inst.config.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let mut cfg = read(&inst.config);
    cfg.push_str(
        "\n[gateway]\nbind = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
    );
    std::fs::write(&inst.config, cfg).unwrap();
    let token = gateway_token(&inst, "operator").await;
    let gw = Gateway::start(&inst, &["--bind", "127.0.0.1:0"]).await;
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    let url = gw.url.replace("127.0.0.1", "localhost");
    let ca = dir.join("cert.pem");

    let out = remote_chat(
        &inst,
        &token,
        &["--remote", &url, "--ca", ca.to_str().unwrap()],
        "hello over TLS\n",
    )
    .await;
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("over TLS"),
        "{}",
        text(&out.stderr)
    );

    // The same gateway without its CA: the certificate is not trusted, nothing is sent.
    let out = remote_chat(&inst, &token, &["--remote", &url], "hello\n").await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(llm.request_count(), 1);
    gw.stop().await;
}

/// The model's reasoning travels as `reasoning_delta` events: the remote terminal shows
/// it on stderr apart from the answer (marked, not being a terminal), and the answer on
/// stdout carries none of it.
#[tokio::test(flavor = "multi_thread")]
async fn reasoning_streams_to_the_remote_terminal_apart_from_the_answer() {
    let llm = MockLlm::start(Script::new(vec![
        testkit::recording("deepseek-reasoning.sse").reply(),
    ]))
    .await;
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            extra_model: "max_retries = 0\nstream = true",
            ..Default::default()
        },
    );
    let token = gateway_token(&inst, "operator").await;
    let gw = Gateway::start(&inst, &["--bind", "127.0.0.1:0"]).await;
    let out = remote_chat(
        &inst,
        &token,
        &["--remote", &gw.url],
        "which is larger\n/exit\n",
    )
    .await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("9.9 is larger."), "{stdout}");
    assert!(!stdout.contains("compare tenths"), "{stdout}");
    assert!(
        stderr.contains("[reasoning]\n9.11 and 9.9: compare tenths, 1 < 9.\n"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("compare tenths").count(), 1, "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    gw.stop().await;
}
