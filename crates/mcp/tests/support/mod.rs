//! Starting a real MCP server as a child process (not sandboxed: that is the
//! sandbox's job, tested there) and connecting a session to its stdio.

#![allow(dead_code)]

use std::process::Stdio;

use cordon_mcp::{Limits, Session};
use tokio::process::{Child, Command};

/// Whether `program` is on the PATH; when not, says why the test does nothing (CI
/// installs every server these tests use, see `.ci/run`).
pub fn installed(program: &str, how: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("skipped: `{program}` is not installed ({how}; CI installs it)");
    }
    found
}

/// Start `program args…` and initialize a session with it.
pub async fn start(name: &str, program: &str, args: &[&str], limits: Limits) -> (Child, Session) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let out = child.stdout.take().expect("stdout");
    let inp = child.stdin.take().expect("stdin");
    let session = Session::connect(name, out, inp, limits)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (child, session)
}
