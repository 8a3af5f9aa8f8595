//! Long-running processes (`Sandbox::spawn`, what stdio MCP servers need): real processes
//! in the real native sandbox talking over their pipes, what they can and cannot do, and
//! that killing or dropping them leaves nothing behind. The `none` backend gets the same
//! pipe tests (it isolates nothing, by design). As root, the native tests are re-run as
//! uid 65534.

mod support;

use support::euid;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use cordon_sandbox::{
    ExitStatus, HostSandbox, Limits, NativeSandbox, Process, Profile, RoBind, Sandbox,
    SandboxError, SpawnRequest, WorkspaceAccess,
};

fn profile(ws: &Path) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), "/workspace".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ],
        limits: Limits::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

fn spawn_in(sb: &dyn Sandbox, p: &Profile, argv: &[&str]) -> Box<dyn Process> {
    sb.spawn(p, &SpawnRequest::new(argv.iter().copied()))
        .expect("the process should start")
}

fn spawn(p: &Profile, argv: &[&str]) -> Box<dyn Process> {
    spawn_in(&NativeSandbox::new(), p, argv)
}

/// Everything the process writes to stdout, then its status.
fn finish(proc: &mut dyn Process) -> (String, ExitStatus) {
    let mut out = String::new();
    File::from(proc.stdout().unwrap())
        .read_to_string(&mut out)
        .unwrap();
    let status = proc.wait(Duration::from_secs(30)).unwrap();
    (out, status.expect("the process should have exited"))
}

/// Run `script` with `sh -c` as a spawned process; its stdout and status.
fn sh(p: &Profile, script: &str) -> (String, ExitStatus) {
    let mut proc = spawn(p, &["sh", "-c", script]);
    drop(proc.stdin());
    finish(proc.as_mut())
}

// ------------------------------------------------------------------- pipes

fn cat_round_trip(sb: &dyn Sandbox, ws: &Path) {
    let mut proc = spawn_in(sb, &profile(ws), &["cat"]);
    let mut stdin = File::from(proc.stdin().unwrap());
    let mut stdout = BufReader::new(File::from(proc.stdout().unwrap()));
    assert!(
        proc.stdin().is_none() && proc.stdout().is_none(),
        "given once"
    );
    for i in 0..20 {
        writeln!(stdin, "line {i}").unwrap();
        let mut got = String::new();
        stdout.read_line(&mut got).unwrap();
        assert_eq!(got, format!("line {i}\n"));
    }
    assert_eq!(proc.try_wait().unwrap(), None, "cat still runs");
    // Closing stdin ends cat, which exits 0.
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    // No limit: a timeout too large to represent waits until the exit.
    let status = proc.wait(Duration::MAX).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(0)));
    assert_eq!(
        proc.try_wait().unwrap(),
        Some(ExitStatus::Exited(0)),
        "stays"
    );
}

#[test]
fn cat_round_trips_lines_and_closing_stdin_ends_it() {
    let ws = tempfile::tempdir().unwrap();
    cat_round_trip(&NativeSandbox::new(), ws.path());
}

/// A JSON-lines server (like JSON-RPC over stdio): many requests, one process.
const ECHO_SERVER: &str = r#"
import json, os, sys
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": {"echo": req["params"], "pid": os.getpid()}}), flush=True)
"#;

fn json_lines_server(sb: &dyn Sandbox, ws: &Path) {
    let mut proc = spawn_in(sb, &profile(ws), &["python3", "-c", ECHO_SERVER]);
    let mut stdin = File::from(proc.stdin().unwrap());
    let mut stdout = BufReader::new(File::from(proc.stdout().unwrap()));
    let mut pids = std::collections::BTreeSet::new();
    for id in 0..200 {
        let req = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "echo", "params": {"n": id, "s": "é\"\n"}});
        writeln!(stdin, "{req}").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let resp: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(resp["id"], id);
        assert_eq!(resp["result"]["echo"], req["params"]);
        pids.insert(resp["result"]["pid"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 1, "one process answered every request");
    drop(stdin);
    assert_eq!(
        proc.wait(Duration::from_secs(10)).unwrap(),
        Some(ExitStatus::Exited(0))
    );
}

#[test]
fn a_json_lines_server_answers_many_requests_in_one_process() {
    let ws = tempfile::tempdir().unwrap();
    json_lines_server(&NativeSandbox::new(), ws.path());
}

#[test]
fn exit_code_and_signal_are_reported() {
    let ws = tempfile::tempdir().unwrap();
    let (_, status) = sh(&profile(ws.path()), "exit 7");
    assert_eq!(status, ExitStatus::Exited(7));
    let (_, status) = sh(&profile(ws.path()), "kill -TERM $$");
    assert_eq!(status, ExitStatus::Signaled(libc_sigterm()));
}

fn libc_sigterm() -> i32 {
    15
}

// ------------------------------------------------------------ kill and drop

/// Host processes whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(marker)
        {
            // Zombies are gone for our purpose once reaped; state Z still counts here.
            found.push(name);
        }
    }
    found
}

/// Wait until no host process carries `marker` (the kernel tears a pid namespace down
/// asynchronously); fail naming the survivors.
fn assert_none_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = host_processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "survivors {left:?} of {marker}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A marker unique to this run: `sleep` takes it as a (long) duration.
fn marker(seed: u32) -> String {
    format!("{}{seed:03}", 100_000 + std::process::id() % 100_000)
}

fn wait_until_started(marker: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_processes_with(marker).len() < n {
        assert!(Instant::now() < deadline, "the sleeps never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill_on_drop(sb: &dyn Sandbox, ws: &Path, seed: u32) {
    let m = marker(seed);
    let script = format!("sleep {m} & sleep {m}");
    let proc = spawn_in(sb, &profile(ws), &["sh", "-c", &script]);
    wait_until_started(&m, 2);
    drop(proc);
    assert_none_left(&m);
}

fn kill_explicitly(sb: &dyn Sandbox, ws: &Path, seed: u32) {
    let m = marker(seed);
    let script = format!("sleep {m} & sleep {m} & echo up; wait");
    let mut proc = spawn_in(sb, &profile(ws), &["sh", "-c", &script]);
    let mut stdout = BufReader::new(File::from(proc.stdout().unwrap()));
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "up\n");
    wait_until_started(&m, 2);
    proc.kill().unwrap();
    assert_eq!(proc.try_wait().unwrap(), Some(ExitStatus::Signaled(9)));
    proc.kill().unwrap();
    assert_none_left(&m);
    // Nothing holds the pipe any more.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

#[test]
fn dropping_kills_the_process_and_its_children() {
    let ws = tempfile::tempdir().unwrap();
    kill_on_drop(&NativeSandbox::new(), ws.path(), 1);
}

#[test]
fn kill_ends_the_whole_tree_and_reports_sigkill() {
    let ws = tempfile::tempdir().unwrap();
    kill_explicitly(&NativeSandbox::new(), ws.path(), 2);
}

#[test]
fn when_the_process_exits_what_it_left_running_is_killed() {
    let ws = tempfile::tempdir().unwrap();
    let m = marker(3);
    let mut proc = spawn(
        &profile(ws.path()),
        &["sh", "-c", &format!("sleep {m} >/dev/null 2>&1 & exit 3")],
    );
    let status = proc.wait(Duration::from_secs(10)).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(3)));
    // Reported only once the sandbox held nothing else: the background sleep is gone
    // while the Process is still alive.
    assert!(host_processes_with(&m).is_empty());
    drop(proc);
}

#[test]
fn killing_an_exited_process_keeps_its_status() {
    let ws = tempfile::tempdir().unwrap();
    let mut proc = spawn(&profile(ws.path()), &["true"]);
    assert_eq!(
        proc.wait(Duration::from_secs(10)).unwrap(),
        Some(ExitStatus::Exited(0))
    );
    proc.kill().unwrap();
    assert_eq!(proc.try_wait().unwrap(), Some(ExitStatus::Exited(0)));
}

// ------------------------------------------------------------------- stderr

#[test]
fn stderr_keeps_only_a_bounded_tail_readable_after_exit() {
    let ws = tempfile::tempdir().unwrap();
    let mut req = SpawnRequest::new([
        "sh",
        "-c",
        "head -c 10000000 /dev/zero >&2; printf 'the end' >&2; echo done",
    ]);
    req.stderr_limit = 4096;
    let mut proc = NativeSandbox::new()
        .spawn(&profile(ws.path()), &req)
        .unwrap();
    let (out, status) = finish(proc.as_mut());
    assert_eq!((out.as_str(), status), ("done\n", ExitStatus::Exited(0)));
    // The reader may still be draining the pipe's last bytes when the status arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.stderr_dropped() + (proc.stderr_tail().len() as u64) < 10_000_007 {
        assert!(Instant::now() < deadline, "stderr was not drained");
        std::thread::sleep(Duration::from_millis(5));
    }
    let tail = proc.stderr_tail();
    assert_eq!(tail.len(), 4096, "never more than the limit");
    assert!(tail.ends_with(b"the end"));
    assert_eq!(proc.stderr_dropped(), 10_000_007 - 4096);
}

#[test]
fn a_missing_program_is_an_exec_error_naming_it() {
    let ws = tempfile::tempdir().unwrap();
    let err = NativeSandbox::new()
        .spawn(
            &profile(ws.path()),
            &SpawnRequest::new(["no-such-mcp-server", "--stdio"]),
        )
        .err()
        .expect("must fail");
    match &err {
        SandboxError::Exec { program, detail } => {
            assert_eq!(program, "no-such-mcp-server");
            assert!(detail.contains("not found in PATH"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`no-such-mcp-server`"), "{err}");
    let mut req = SpawnRequest::new(["cat"]);
    req.cwd = Some("no/such/dir".into());
    let err = NativeSandbox::new()
        .spawn(&profile(ws.path()), &req)
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, SandboxError::Exec { program, detail } if program == "cat" && detail.contains("no/such/dir")),
        "{err:?}"
    );
    let err = NativeSandbox::new()
        .spawn(
            &profile(ws.path()),
            &SpawnRequest::new(Vec::<String>::new()),
        )
        .err()
        .expect("must fail");
    assert!(matches!(err, SandboxError::Invalid(_)), "{err:?}");
}

// ------------------------------------------------------------- the boundary

fn isolation(ws: &Path) {
    let (_state, secret) = support::world_readable_secret("host secret");
    let skill = tempfile::tempdir().unwrap();
    std::fs::write(skill.path().join("SKILL.md"), "skill body").unwrap();
    let host_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host_listener.local_addr().unwrap().port();
    host_listener.set_nonblocking(true).unwrap();
    std::fs::write(ws.join("in-ws"), "workspace file").unwrap();

    let mut p = profile(ws);
    p.workspace_access = WorkspaceAccess::Read;
    p.ro_binds = vec![RoBind {
        source: skill.path().to_path_buf(),
        target: "/skills/demo".into(),
    }];
    let script = format!(
        "cat {secret} 2>&1 || echo NO-SECRET; \
         cat /workspace/in-ws; echo; \
         echo x > /workspace/new 2>&1 || echo NO-WRITE; \
         cat /skills/demo/SKILL.md; echo; \
         echo x > /skills/demo/new 2>&1 || echo NO-SKILL-WRITE; \
         grep CapEff /proc/self/status; \
         id -u; \
         (exec 3<>/dev/tcp/127.0.0.1/{host_port}) 2>/dev/null && echo HOST-REACHED || echo NO-HOST",
        secret = secret.display()
    );
    let mut proc = spawn(&p, &["bash", "-c", &script]);
    let (out, status) = finish(proc.as_mut());
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    for want in [
        "NO-SECRET",
        "workspace file",
        "NO-WRITE",
        "skill body",
        "NO-SKILL-WRITE",
        "CapEff:\t0000000000000000",
        "1000",
        "NO-HOST",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        !out.contains("host secret") && !out.contains("HOST-REACHED"),
        "{out}"
    );
    assert!(!ws.join("new").exists() && !skill.path().join("new").exists());
    assert!(host_listener.accept().is_err(), "nothing reached the host");
}

#[test]
fn the_process_sees_only_its_workspace_and_binds_without_capabilities_or_network() {
    let ws = tempfile::tempdir().unwrap();
    isolation(ws.path());
}

fn egress(ws: &Path) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = profile(ws);
    p.egress_port = Some(port);
    let script = format!(
        "read go; exec 3<>/dev/tcp/127.0.0.1/{port} && echo hi >&3 && exec 3>&- && echo sent"
    );
    let mut proc = spawn(&p, &["bash", "-c", &script]);
    let listener = TcpListener::from(proc.egress_listener().expect("egress listener"));
    assert!(proc.egress_listener().is_none(), "handed out once");
    listener.set_nonblocking(false).unwrap();
    let acceptor = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        got
    });
    let mut stdin = File::from(proc.stdin().unwrap());
    writeln!(stdin, "go").unwrap();
    let (out, status) = finish(proc.as_mut());
    assert_eq!((out.as_str(), status), ("sent\n", ExitStatus::Exited(0)));
    assert_eq!(acceptor.join().unwrap(), "hi\n");
    // The port is the sandbox's own, not the host's.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn the_egress_listener_is_the_only_way_out() {
    let ws = tempfile::tempdir().unwrap();
    egress(ws.path());
}

fn process_limit(ws: &Path) {
    let mut p = profile(ws);
    // RLIMIT_NPROC is not enforced for host root: there the cgroup's pids.max must hold.
    p.limits.max_processes = if euid() == 0 { 100_000 } else { 32 };
    p.limits.cgroup_pids = 32;
    let script = "i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; echo all-started";
    let mut proc = spawn(&p, &["bash", "-c", script]);
    let (out, status) = finish(proc.as_mut());
    assert!(!out.contains("all-started"), "{out}");
    assert_ne!(status, ExitStatus::Exited(0));
    let err = String::from_utf8_lossy(&proc.stderr_tail()).into_owned();
    assert!(err.contains("Resource temporarily unavailable"), "{err}");
}

#[test]
fn process_limits_apply() {
    let ws = tempfile::tempdir().unwrap();
    process_limit(ws.path());
}

// ------------------------------------------------------------ backend none

#[test]
fn backend_none_gives_the_same_pipes_unisolated() {
    let ws = tempfile::tempdir().unwrap();
    let host = HostSandbox::new();
    cat_round_trip(&host, ws.path());
    json_lines_server(&host, ws.path());
    kill_on_drop(&host, ws.path(), 4);
    kill_explicitly(&host, ws.path(), 5);
    // Unisolated, and says so through its environment only: the host's files are there.
    let mut proc = spawn_in(&host, &profile(ws.path()), &["sh", "-c", "pwd; echo $HOME"]);
    let (out, status) = finish(proc.as_mut());
    assert_eq!(status, ExitStatus::Exited(0));
    let real = ws.path().canonicalize().unwrap();
    assert_eq!(out, format!("{}\n/workspace\n", real.display()));
    let err = host
        .spawn(
            &profile(ws.path()),
            &SpawnRequest::new(["no-such-mcp-server"]),
        )
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, SandboxError::Exec { program, .. } if program == "no-such-mcp-server"),
        "{err:?}"
    );
}

#[test]
fn backend_none_keeps_a_bounded_stderr_tail() {
    let ws = tempfile::tempdir().unwrap();
    let mut req = SpawnRequest::new(["sh", "-c", "head -c 1000000 /dev/zero >&2; echo x >&2"]);
    req.stderr_limit = 100;
    let mut proc = HostSandbox::new().spawn(&profile(ws.path()), &req).unwrap();
    let (_, status) = finish(proc.as_mut());
    assert_eq!(status, ExitStatus::Exited(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.stderr_dropped() + (proc.stderr_tail().len() as u64) < 1_000_002 {
        assert!(Instant::now() < deadline, "stderr was not drained");
        std::thread::sleep(Duration::from_millis(5));
    }
    let tail = proc.stderr_tail();
    assert_eq!(tail.len(), 100);
    assert!(tail.ends_with(b"\0x\n"));
}

// ------------------------------------------------------- unprivileged caller

const INNER_WS: &str = "CORDON_SPAWN_TEST_WS";

/// Re-runs `spawn_unprivileged_inner` as uid 65534 when this suite runs as root.
#[test]
fn spawn_works_for_an_unprivileged_caller() {
    let Some(run) = support::NobodyRun::prepare() else {
        return;
    };
    let ws = run.owned_dir("ws");
    run.run("spawn_unprivileged_inner", &[(INNER_WS, ws.as_os_str())]);
}

#[test]
#[ignore = "run by spawn_works_for_an_unprivileged_caller under setpriv"]
fn spawn_unprivileged_inner() {
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    let ws = std::path::PathBuf::from(std::env::var_os(INNER_WS).unwrap());
    let sb = NativeSandbox::new();
    cat_round_trip(&sb, &ws);
    json_lines_server(&sb, &ws);
    kill_on_drop(&sb, &ws, 6);
    kill_explicitly(&sb, &ws, 7);
    isolation(&ws);
    egress(&ws);
    process_limit(&ws);
}
