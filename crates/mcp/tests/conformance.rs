//! The MCP conformance suite (`@modelcontextprotocol/conformance`, npm) against
//! `mcp-conformance-client`, a client on `Session`'s public API: the scenarios Cordon
//! supports pass every check, and a server that asks the user for input
//! (elicitation) is declined.
//!
//! Not run, as not supported on purpose (the client refuses them, exit code 2): the
//! `auth/*` scenarios (OAuth; Cordon's egress proxy injects an HTTP server's
//! credentials instead).
//!
//! The tool runs in a network namespace of its own with only loopback up, so neither it
//! nor the client can reach anything else.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_mcp-conformance-client");

/// What one scenario's run left.
struct Run {
    /// The checks the tool recorded.
    checks: Vec<Value>,
    /// The tool's verdict: every check passed and the client exited with 0 in time.
    passed: bool,
    /// The client exited with 0 in time (the tool says so when it did not).
    client_ok: bool,
    /// What the client printed.
    client_stdout: String,
}

/// Run `scenario`, or `None` (with the reason printed) when the tool is not installed.
fn run(scenario: &str) -> Option<Run> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("conformance").is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!(
            "skipped: `conformance` is not installed (npm install -g \
             @modelcontextprotocol/conformance@0.1.13; CI installs it)"
        );
        return None;
    }
    // The tool splits its --command on spaces.
    assert!(
        !CLIENT.contains(' '),
        "the client's path has a space: {CLIENT}"
    );
    let out_dir = tempfile::tempdir().expect("tempdir");
    // Loopback only: a namespace of its own, `lo` brought up in it.
    let out = Command::new("unshare")
        .args(["--net", "--map-root-user", "--", "sh", "-c"])
        .arg(r#"ip link set lo up && exec "$@""#)
        .args(["sh", "conformance", "client", "--timeout", "60000"])
        .args(["--command", CLIENT, "--scenario", scenario, "-o"])
        .arg(out_dir.path())
        .output()
        .expect("run unshare (util-linux)");
    let shown = format!(
        "conformance, scenario {scenario} (exit {:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{shown}");
    assert!(
        !shown.contains("does not provide an export named"),
        "this `conformance` does not run on this Node.js (0.1.14 and later need Node 22; \
         install @modelcontextprotocol/conformance@0.1.13)"
    );
    let dir =
        result_dir(out_dir.path()).unwrap_or_else(|| panic!("no checks.json was written\n{shown}"));
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    Some(Run {
        checks: serde_json::from_str(&read("checks.json")).expect("checks.json is JSON"),
        passed: out.status.success(),
        client_ok: !shown.contains("Client exited with code") && !shown.contains("timed out"),
        client_stdout: read("stdout.txt"),
    })
}

/// The one folder beneath `dir` with a `checks.json` (the tool names it after the
/// scenario and the time).
fn result_dir(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("checks.json").is_file())
}

fn status<'a>(checks: &'a [Value], id: &str) -> Option<&'a str> {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["status"].as_str())
}

/// Every check passed (or is informational), and each of `expected` is among them.
fn assert_passed(checks: &[Value], expected: &[&str]) {
    for c in checks {
        assert!(
            matches!(c["status"].as_str(), Some("SUCCESS" | "INFO")),
            "check {} is {}: {}",
            c["id"],
            c["status"],
            c["errorMessage"]
        );
    }
    for id in expected {
        assert_eq!(
            status(checks, id),
            Some("SUCCESS"),
            "check {id}: {checks:?}"
        );
    }
}

#[test]
fn initialize() {
    let Some(run) = run("initialize") else {
        return;
    };
    let checks = &run.checks;
    assert_passed(checks, &["mcp-client-initialization"]);
    assert!(run.passed && run.client_ok, "see the tool's output above");
    assert!(
        run.client_stdout
            .contains("initialized: server `test-server`"),
        "{}",
        run.client_stdout
    );
    let init = checks
        .iter()
        .find(|c| c["id"] == "mcp-client-initialization")
        .expect("initialization check");
    // The newest version the suite knows, offered first.
    assert_eq!(init["details"]["protocolVersionSent"], "2025-11-25");
    assert_eq!(init["details"]["clientName"], "cordon");
}

#[test]
fn tools_call() {
    let Some(run) = run("tools_call") else {
        return;
    };
    assert_passed(&run.checks, &["tool-add-numbers"]);
    assert!(run.passed && run.client_ok, "see the tool's output above");
    // The server only records that it was called; the answer came back too.
    assert!(
        run.client_stdout
            .contains("add_numbers: The sum of 5 and 3 is 8"),
        "{}",
        run.client_stdout
    );
}

/// The POST's event stream ends before the result: the client waits the `retry` the
/// server gave and resumes with a GET carrying `Last-Event-ID`, where the result comes.
#[test]
fn sse_retry() {
    let Some(run) = run("sse-retry") else {
        return;
    };
    // The result came on the resumed stream.
    assert!(run.client_ok, "see the tool's output above");
    assert!(
        run.client_stdout
            .contains("test_reconnection: Reconnection test completed successfully"),
        "{}",
        run.client_stdout
    );
    let checks = &run.checks;
    // Reconnecting 200 ms later than asked is a warning, which a loaded machine can cause;
    // reconnecting early (not waiting as asked) or very late is a failure.
    let timing = checks
        .iter()
        .find(|c| c["id"] == "client-sse-retry-timing")
        .expect("timing check");
    if timing["status"] == "WARNING" {
        eprintln!("reconnected late: {}", timing["errorMessage"]);
    }
    let (waited, min) = (
        &timing["details"]["actualDelayMs"],
        &timing["details"]["minAcceptableMs"],
    );
    assert!(
        waited.as_f64() >= min.as_f64() && min.as_f64().is_some(),
        "waited {waited} ms, asked at least {min}"
    );
    let rest: Vec<Value> = checks
        .iter()
        .filter(|c| c["id"] != "client-sse-retry-timing")
        .cloned()
        .collect();
    assert_passed(
        &rest,
        &["client-sse-graceful-reconnect", "client-sse-last-event-id"],
    );
    assert!(
        matches!(timing["status"].as_str(), Some("SUCCESS" | "WARNING")),
        "{timing}"
    );
}

/// A server that asks the user for input during a call (`elicitation/create`) is
/// declined: Cordon offers servers no way to talk to the user.
#[test]
fn elicitation_is_declined() {
    let Some(run) = run("elicitation-sep1034-client-defaults") else {
        return;
    };
    assert!(run.client_ok && !run.passed, "see the tool's output above");
    let checks = &run.checks;
    let general = checks
        .iter()
        .find(|c| c["id"] == "client-elicitation-sep1034-general")
        .expect("the server asked, so it recorded the answer");
    assert_eq!(general["status"], "FAILURE");
    assert!(
        general["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("got 'decline'")),
        "{general}"
    );
    // Nothing was filled in for the server.
    assert!(
        checks.iter().all(|c| c["status"] != "SUCCESS"),
        "{checks:?}"
    );
}
