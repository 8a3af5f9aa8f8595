//! The recorded answers: every file in `fixtures/streams/` is listed once, its index is
//! current, and MockLlm serves each byte for byte.

use std::collections::BTreeSet;
use std::path::Path;

use cordon_testkit::recordings::index_markdown;
use cordon_testkit::{MockLlm, Protocol, RECORDINGS, Script};

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/streams")
}

#[test]
fn every_file_is_listed_once_and_every_listing_has_its_file() {
    let files: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    let listed: Vec<&str> = RECORDINGS.iter().map(|r| r.name).collect();
    let unique: BTreeSet<String> = listed.iter().map(|n| n.to_string()).collect();
    assert_eq!(unique.len(), listed.len(), "a name is listed twice");
    assert_eq!(unique, files, "fixtures/streams and RECORDINGS differ");
    for r in RECORDINGS {
        assert!(
            r.name.ends_with(".sse") || r.name.ends_with(".json"),
            "{}",
            r.name
        );
        let on_disk = std::fs::read_to_string(dir().join(r.name)).unwrap();
        assert_eq!(on_disk, r.body, "{}", r.name);
    }
}

#[test]
fn every_server_the_issue_names_has_a_recording_with_a_tool_call() {
    for server in [
        "OpenAI",
        "Ollama /v1",
        "vLLM",
        "llama.cpp server",
        "DeepSeek",
        "Groq",
        "OpenRouter",
        "Anthropic",
    ] {
        let with_call = RECORDINGS.iter().any(|r| {
            r.server == server
                && (r.body.contains("\"tool_calls\"") || r.body.contains("\"tool_use\""))
        });
        assert!(with_call, "{server} has no recording with a tool call");
    }
}

#[test]
fn index_is_current() {
    cordon_testkit::generated_doc::assert_current(
        &dir().join("README.md"),
        &index_markdown(),
        "RECORDINGS",
        "cargo test -p cordon-testkit --test recordings",
    );
}

/// POST to the mock and return the raw body it sent.
async fn fetch(url: &str, stream: bool) -> (String, String) {
    let body = format!(r#"{{"model":"m","stream":{stream},"messages":[]}}"#);
    let addr = url.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let (host, path) = addr.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(
            s,
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    })
    .await
    .unwrap()
}

/// A chunked body's data, chunk sizes removed.
fn unchunk(body: &str) -> (String, usize) {
    let mut out = String::new();
    let mut rest = body;
    let mut chunks = 0;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return (out, chunks);
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
        chunks += 1;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mock_serves_each_recording_byte_for_byte_in_several_writes() {
    for r in RECORDINGS {
        let llm = MockLlm::start(Script::new(vec![r.reply()])).await;
        let path = match r.protocol {
            Protocol::OpenAi => "chat/completions",
            Protocol::Anthropic => "messages",
        };
        let url = format!("{}/{path}", llm.base_url());
        let (head, body) = fetch(&url, r.streamed()).await;
        let kind = if r.streamed() {
            "text/event-stream"
        } else {
            "application/json"
        };
        assert!(
            head.to_ascii_lowercase().contains(kind),
            "{}: {head}",
            r.name
        );
        let (data, chunks) = unchunk(&body);
        assert_eq!(data, r.body, "{}", r.name);
        assert!(
            chunks > 1 || r.body.len() <= 7,
            "{}: {chunks} writes",
            r.name
        );
    }
}
