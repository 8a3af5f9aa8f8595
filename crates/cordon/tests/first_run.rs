//! A first run as a new user meets it: `cordon init` finds a local model server (or says
//! how to point at one), and `cordon run` / `cordon chat` without a reachable model fail
//! at once with one clear paragraph — short, naming `base_url` and the config file, no
//! colour codes when not on a terminal, no error said twice.

mod common;

use std::time::{Duration, Instant};

use common::*;
use testkit::{MockLlm, Reply, Script};

/// A loopback port nothing listens on (bound once to pick it, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn port_of(base_url: &str) -> String {
    let rest = base_url.trim_start_matches("http://127.0.0.1:");
    rest.split('/').next().unwrap().to_string()
}

/// The installation's model is a server that is not running, with the default retries
/// and timeout: the check before the first prompt must not wait for either.
fn without_a_model() -> Install {
    let base = format!("http://127.0.0.1:{}/v1", closed_port());
    Install::new(
        &base,
        AgentSetup {
            extra_model: "",
            ..AgentSetup::default()
        },
    )
}

/// What a user sees of a failed start: short, names `base_url` and the config file,
/// no escape codes, each cause said once.
fn assert_one_clear_paragraph(inst: &Install, out: &std::process::Output, took: Duration) {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let all = format!("{stdout}{stderr}");
    assert!(!out.status.success(), "{all}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {all}");
    assert!(all.lines().count() <= 6, "too long:\n{all}");
    assert!(all.contains("base_url"), "{all}");
    assert!(
        all.contains(&inst.config.display().to_string()),
        "the config file is not named: {all}"
    );
    assert!(
        !all.contains("\x1b["),
        "escape codes off a terminal: {all:?}"
    );
    assert_eq!(all.matches("Connection refused").count(), 1, "{all}");
    assert!(!all.contains("retrying"), "{all}");
    assert!(all.contains("cordon demo"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_model_server_fails_fast_in_one_paragraph() {
    let inst = without_a_model();
    let start = Instant::now();
    let out = inst.cordon(&["run", "hello"]).await;
    assert_one_clear_paragraph(&inst, &out, start.elapsed());
    // No session was started for a task that could not be sent.
    assert!(
        !text(&out.stderr).contains("session "),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_without_a_model_server_fails_before_its_first_prompt() {
    let inst = without_a_model();
    let start = Instant::now();
    let out = inst.cordon_stdin(&["chat"], "hello\n").await;
    assert_one_clear_paragraph(&inst, &out, start.elapsed());
    assert!(!text(&out.stderr).contains("you>"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_is_one_plain_line_and_the_answer_still_comes() {
    let llm = MockLlm::start(Script::new(vec![
        Reply::Status {
            code: 503,
            body: "loading model".into(),
            retry_after: None,
        },
        Reply::Text("the answer".into()),
    ]))
    .await;
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            extra_model: "max_retries = 2",
            ..AgentSetup::default()
        },
    );
    let out = inst.cordon(&["run", "hello"]).await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "the answer\n");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("retrying").count(), 1, "{stderr}");
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    assert!(
        !stderr.contains("WARN") && !stderr.contains("\x1b["),
        "{stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_finds_a_local_server_and_writes_its_model() {
    let llm = MockLlm::start(Script::new(vec![Reply::Text(
        "hello from the model".into(),
    )]))
    .await;
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let config = inst.dir.path().join("fresh").join("cordon.toml");
    // The first port has nothing on it; the second is the test's model server.
    let ports = format!("{},{}", closed_port(), port_of(&llm.base_url()));
    let out = inst
        .command()
        .args(["init"])
        .env("CORDON_CONFIG", &config)
        .env("CORDON_INIT_PROBE_PORTS", &ports)
        .output()
        .await
        .unwrap();
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("found") && stdout.contains("scripted-large"),
        "{stdout}"
    );
    let written = read(&config);
    assert!(
        written.contains(&format!("base_url = \"{}\"", llm.base_url())),
        "{written}"
    );
    assert!(written.contains("model = \"scripted\""), "{written}");

    // The config it wrote works as it is.
    let out = inst
        .command()
        .args(["run", "say hello"])
        .env("CORDON_CONFIG", &config)
        .output()
        .await
        .unwrap();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "hello from the model\n");

    // `--model` picks another of the server's models.
    let out = inst
        .command()
        .args(["init", "--force", "--model", "scripted-large"])
        .env("CORDON_CONFIG", &config)
        .env("CORDON_INIT_PROBE_PORTS", &ports)
        .output()
        .await
        .unwrap();
    assert_ok(&out);
    assert!(read(&config).contains("model = \"scripted-large\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn init_without_a_server_says_how_to_point_at_one() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let config = inst.dir.path().join("fresh").join("cordon.toml");
    let start = Instant::now();
    let out = inst
        .command()
        .args(["init"])
        .env("CORDON_CONFIG", &config)
        .env("CORDON_INIT_PROBE_PORTS", closed_port().to_string())
        .output()
        .await
        .unwrap();
    assert_ok(&out);
    assert!(start.elapsed() < Duration::from_secs(10));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("no local model server found"), "{stdout}");
    assert!(
        stdout.contains("base_url") && stdout.contains("`model`"),
        "{stdout}"
    );
    assert!(stdout.contains("cordon demo"), "{stdout}");
    assert!(read(&config).contains("base_url = \"http://127.0.0.1:11434/v1\""));
}
