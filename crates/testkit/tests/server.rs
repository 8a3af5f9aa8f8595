//! MockLlm and the `testkit-llm` binary, checked over raw HTTP/1.1 on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use cordon_testkit::{MockLlm, Reply, Script};

/// POST `body` to `http://{addr}{path}` and return the raw response (status line onwards).
fn post(addr: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn addr_of(base_url: &str) -> String {
    base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_both_protocols_records_requests_and_stops_on_drop() {
    let llm = MockLlm::start(Script::new(vec![
        Reply::Text("one".into()),
        Reply::Status {
            code: 429,
            body: "later".into(),
            retry_after: Some(7),
        },
        Reply::Text("three".into()),
    ]))
    .await;
    let addr = addr_of(&llm.base_url());
    assert!(llm.base_url().starts_with("http://127.0.0.1:"));
    let a = addr.clone();
    let (first, second, third) = tokio::task::spawn_blocking(move || {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        (
            post(&a, "/v1/chat/completions", body).unwrap(),
            post(&a, "/v1/messages", body).unwrap(),
            post(
                &a,
                "/v1/messages",
                r#"{"model":"m","stream":true,"messages":[]}"#,
            )
            .unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        first.contains("\"choices\"") && first.contains("\"one\""),
        "{first}"
    );
    assert!(second.starts_with("HTTP/1.1 429"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("retry-after: 7"),
        "{second}"
    );
    assert!(third.contains("text/event-stream"), "{third}");
    assert!(third.contains("event: message_stop"), "{third}");
    assert_eq!(llm.request_count(), 3);
    assert_eq!(llm.requests()[0]["messages"][0]["content"], "hi");

    drop(llm);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(&addr).is_err(),
        "the server still listens after drop"
    );
}

#[test]
fn testkit_llm_binary_serves_a_script_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.json");
    std::fs::write(&script, r#"[{"text": "from the file"}]"#).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_testkit-llm"))
        .arg("--script")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line.trim().to_string();
    let answer = post(
        &addr_of(&base),
        "/v1/chat/completions",
        r#"{"model":"m","messages":[]}"#,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let answer = answer.unwrap();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"),
        "{base}"
    );
    assert!(answer.contains("from the file"), "{answer}");
}

#[test]
fn testkit_llm_binary_rejects_a_bad_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.json");
    std::fs::write(&script, r#"{"not": "an array"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testkit-llm"))
        .arg("--script")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a JSON array of replies"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_testkit-llm"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--script FILE is required"));
}
