//! One live native sandbox serving many calls (scope = "task"), and its egress listener.
//!
//! Each test runs real commands in a real sandbox and checks what survives between calls
//! (scratch files: yes; processes: never), what the deadline kills, that two live
//! sandboxes cannot see or signal each other, and that the egress listener is reachable
//! from inside only.

mod support;

use support::euid;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cordon_sandbox::{
    ExecOutput, ExecRequest, ExitStatus, Instance, Limits, NativeSandbox, Profile, Sandbox,
};

fn profile(ws: &Path) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: cordon_sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Limits::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

fn start(ws: &Path) -> Box<dyn Instance> {
    NativeSandbox::new()
        .start(&profile(ws))
        .expect("sandbox start")
}

fn bash_req(script: &str, timeout: Duration) -> ExecRequest {
    ExecRequest {
        argv: vec!["bash".into(), "-c".into(), script.into()],
        cwd: None,
        stdin: Vec::new(),
        timeout,
        output_limit: 1 << 20,
    }
}

fn bash(sb: &mut dyn Instance, script: &str) -> ExecOutput {
    sb.exec(&bash_req(script, Duration::from_secs(30)))
        .expect("the sandbox should run the command")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_owned()
}

/// Host pids whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        for b in &mut cmdline {
            if *b == 0 {
                *b = b' ';
            }
        }
        if String::from_utf8_lossy(&cmdline).contains(marker) && pid != std::process::id() {
            found.push(pid);
        }
    }
    found
}

#[test]
fn many_calls_in_one_instance_work_and_see_the_same_sandbox() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    let mut inits = Vec::new();
    for i in 0..50 {
        let mut req = bash_req(
            &format!(
                "cat; echo out-{i}; echo err-{i} >&2; cat /proc/1/stat | cut -d' ' -f1; exit {}",
                i % 7
            ),
            Duration::from_secs(30),
        );
        req.stdin = format!("in-{i}\n").into_bytes();
        let out = sb.exec(&req).unwrap();
        assert_eq!(out.status, ExitStatus::Exited(i % 7), "call {i}");
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with(&format!("in-{i}\nout-{i}")), "{stdout}");
        assert_eq!(text(&out.stderr), format!("err-{i}"));
        inits.push(stdout.lines().last().unwrap().to_owned());
    }
    // Every call saw the same pid 1: one sandbox, not fifty.
    assert!(inits.iter().all(|p| p == "1"), "{inits:?}");
    // Errors do not break the instance.
    let err = sb
        .exec(&bash_req("x", Duration::from_secs(5)).with_argv(&["no-such-program"]))
        .unwrap_err();
    assert!(err.to_string().contains("no-such-program"), "{err}");
    assert_eq!(
        text(&bash(sb.as_mut(), "echo still-alive").stdout),
        "still-alive"
    );
}

trait WithArgv {
    fn with_argv(self, argv: &[&str]) -> Self;
}

impl WithArgv for ExecRequest {
    fn with_argv(mut self, argv: &[&str]) -> Self {
        self.argv = argv.iter().map(|s| s.to_string()).collect();
        self
    }
}

#[test]
fn tmp_and_shm_persist_within_an_instance_and_vanish_with_it() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    bash(
        sb.as_mut(),
        "echo scratch > /tmp/state; echo shm > /dev/shm/state",
    );
    let out = bash(sb.as_mut(), "cat /tmp/state /dev/shm/state");
    assert_eq!(text(&out.stdout), "scratch\nshm");
    drop(sb);
    let mut other = start(ws.path());
    let out = bash(other.as_mut(), "cat /tmp/state /dev/shm/state");
    assert_ne!(out.status, ExitStatus::Exited(0));
    assert_eq!(text(&out.stdout), "");
    let out = bash(other.as_mut(), "ls -A /tmp /dev/shm | grep -c state");
    assert_eq!(text(&out.stdout), "0");
}

#[test]
fn no_process_survives_a_call() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    let marker = "sleep 978";
    // Background, double-forked, SIGTERM-ignoring, own session: all must be gone when the
    // call returns.
    let out = bash(
        sb.as_mut(),
        &format!(
            "({marker} &); (trap '' TERM; setsid {marker} &) ; nohup {marker} >/dev/null 2>&1 & \
             echo started"
        ),
    );
    assert_eq!(text(&out.stdout), "started");
    assert!(out.duration < Duration::from_secs(10), "{:?}", out.duration);
    assert!(host_processes_with(marker).is_empty());
    // And inside, the next call sees only itself (and init).
    let out = bash(sb.as_mut(), "ls /proc | grep -c '^[0-9]'");
    let n: u32 = text(&out.stdout).parse().unwrap();
    assert!(n <= 4, "processes visible in the next call: {n}");
}

#[test]
fn the_deadline_kills_only_that_call_and_the_instance_keeps_working() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    bash(sb.as_mut(), "echo kept > /tmp/kept");
    let marker = "sleep 979";
    let started = Instant::now();
    let out = sb
        .exec(&bash_req(
            &format!("trap '' TERM; ({marker} &); echo partial; {marker}"),
            Duration::from_millis(300),
        ))
        .unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert_eq!(text(&out.stdout), "partial");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(host_processes_with(marker).is_empty());
    let out = bash(sb.as_mut(), "cat /tmp/kept");
    assert_eq!(text(&out.stdout), "kept");
}

#[test]
fn concurrent_instances_cannot_see_or_signal_each_other() {
    let ws = tempfile::tempdir().unwrap();
    let mut a = start(ws.path());
    let mut b = start(ws.path());
    let marker = "sleep 980";
    let waiter = std::thread::spawn(move || {
        let out = a
            .exec(&bash_req(
                &format!("echo a > /tmp/who; {marker}"),
                Duration::from_millis(1500),
            ))
            .unwrap();
        (a, out)
    });
    // Wait until a's sleep runs (visible on the host).
    let until = Instant::now() + Duration::from_secs(5);
    while host_processes_with(marker).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let host_pid = host_processes_with(marker)[0];
    let out = bash(
        b.as_mut(),
        &format!(
            "ps -eo args 2>/dev/null | grep -c '{marker}' || true; cat /tmp/who 2>&1; \
             pkill -KILL -f '{marker}'; kill -KILL {host_pid} && echo killed-host-pid"
        ),
    );
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("killed-host-pid"), "{stdout}");
    assert!(
        !stdout.contains("\na\n") && !stdout.ends_with("\na"),
        "{stdout}"
    );
    let (mut a, out_a) = waiter.join().unwrap();
    // a's sleep was untouched: it ran to the deadline.
    assert_eq!(out_a.status, ExitStatus::TimedOut);
    assert_eq!(text(&bash(a.as_mut(), "cat /tmp/who").stdout), "a");
}

#[test]
fn the_egress_listener_is_reachable_from_inside_only() {
    // A port free on the host right now; the sandbox binds it in its own namespace.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.egress_port = Some(port);
    let mut sb = NativeSandbox::new().start(&p).unwrap();
    let listener = TcpListener::from(sb.egress_listener().expect("egress listener"));
    assert!(sb.egress_listener().is_none(), "handed out once");
    listener.set_nonblocking(false).unwrap();
    assert_eq!(listener.local_addr().unwrap().port(), port);

    let acceptor = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        (listener, got)
    });
    let out = bash(
        sb.as_mut(),
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3; exec 3>&-; echo sent"),
    );
    assert_eq!(text(&out.stdout), "sent", "{out:?}");
    // The proxy keeps the listener open for the sandbox's lifetime.
    let (_listener, got) = acceptor.join().unwrap();
    assert_eq!(got, "hi\n");

    // Not on the host's loopback.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // Nothing inside can take the port over.
    let out = bash(
        sb.as_mut(),
        &format!(
            "python3 -c 'import socket; s=socket.socket(); \
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); \
             s.bind((\"127.0.0.1\", {port})); print(\"TOOK\" + \"-PORT\")' 2>&1"
        ),
    );
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("TOOK-PORT"), "{stdout}");
    assert!(stdout.contains("Address already in use"), "{stdout}");
}

#[test]
fn without_an_egress_port_there_is_no_listener() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    assert!(sb.egress_listener().is_none());
}

const INNER_WS: &str = "CORDON_REUSE_TEST_WS";

/// Re-runs `reuse_unprivileged_inner` as uid 65534 when this suite runs as root.
#[test]
fn reuse_works_for_an_unprivileged_caller() {
    let Some(run) = support::NobodyRun::prepare() else {
        return;
    };
    let ws = run.owned_dir("ws");
    run.run("reuse_unprivileged_inner", &[(INNER_WS, ws.as_os_str())]);
}

#[test]
#[ignore = "run by reuse_works_for_an_unprivileged_caller under setpriv"]
fn reuse_unprivileged_inner() {
    let ws = std::env::var(INNER_WS).expect("run through reuse_works_for_an_unprivileged_caller");
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    let mut sb = start(Path::new(&ws));
    bash(
        sb.as_mut(),
        "echo x > /tmp/x; (sleep 981 &); id -u > /workspace/uid",
    );
    assert!(host_processes_with("sleep 981").is_empty());
    let out = bash(sb.as_mut(), "cat /tmp/x /workspace/uid");
    assert_eq!(text(&out.stdout), "x\n1000");
    let out = sb
        .exec(&bash_req("sleep 982", Duration::from_millis(200)))
        .unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert_eq!(text(&bash(sb.as_mut(), "echo ok").stdout), "ok");
}

/// Namespaces may come from the pre-created pool or be made at start: either way every
/// live sandbox has its own, fully set up (ids mapped, `lo` up, nested userns refused).
#[test]
fn every_live_sandbox_has_its_own_namespaces() {
    let ws = tempfile::tempdir().unwrap();
    // With `lo` down, a loopback connect fails with "Network is unreachable" instead.
    let script = "for n in user net mnt pid ipc uts; do readlink /proc/self/ns/$n; done; id -u; \
                  (exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 | grep -o 'Connection refused' | head -1; \
                  unshare -U true 2>/dev/null && echo nested-userns";
    let mut live = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..8 {
        // Give the pool time to refill now and then, so both paths are taken.
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut sb = start(ws.path());
        let out = bash(sb.as_mut(), script);
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 8, "{stdout}");
        for ns in &lines[..6] {
            assert!(
                seen.insert(ns.to_string()),
                "namespace {ns} shared: {stdout}"
            );
        }
        assert_eq!(lines[6], "1000", "{stdout}");
        assert!(!stdout.contains("nested-userns"), "{stdout}");
        assert_eq!(lines[7], "Connection refused", "{stdout}");
        live.push(sb);
    }
    // Still isolated from each other while all are alive.
    let out = bash(live[0].as_mut(), "ls /proc | grep -c '^[0-9]'");
    assert!(text(&out.stdout).parse::<u32>().unwrap() <= 4);
}

const INNER_DIE: &str = "CORDON_REUSE_TEST_DIE";

/// If the process holding the instance dies, the sandbox dies with it: init sees the
/// control channel close and kills everything (there is no parent-death signal, which
/// would fire on the exit of the *thread* that started the sandbox).
#[test]
fn the_sandbox_dies_with_the_process_that_holds_it() {
    let ws = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "parent_dies_inner",
            "--include-ignored",
            "--nocapture",
        ])
        .env(INNER_DIE, ws.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("command running"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let until = Instant::now() + Duration::from_secs(5);
    while !host_processes_with("sleep 983").is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(host_processes_with("sleep 983").is_empty());
}

#[test]
#[ignore = "run by the_sandbox_dies_with_the_process_that_holds_it"]
fn parent_dies_inner() {
    let ws = std::env::var(INNER_DIE)
        .expect("run through the_sandbox_dies_with_the_process_that_holds_it");
    // Started on a thread that exits at once: the sandbox must outlive the thread.
    let mut sb = std::thread::spawn(move || start(Path::new(&ws)))
        .join()
        .unwrap();
    std::thread::spawn(move || {
        let _ = sb.exec(&bash_req(
            "(sleep 983 &); sleep 983",
            Duration::from_secs(600),
        ));
    });
    let until = Instant::now() + Duration::from_secs(5);
    while host_processes_with("sleep 983").len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(host_processes_with("sleep 983").len(), 2);
    println!("command running");
    // Die abruptly, without dropping the instance.
    std::process::exit(0);
}

#[test]
fn an_instance_whose_init_died_says_so_and_runs_nothing_more() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    let runner = std::thread::spawn(move || {
        let r = sb.exec(&bash_req("sleep 984", Duration::from_secs(60)));
        (sb, r)
    });
    let until = Instant::now() + Duration::from_secs(5);
    while host_processes_with("sleep 984").is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The command's parent on the host is the sandbox's init.
    let cmd = host_processes_with("sleep 984")[0];
    let status = std::fs::read_to_string(format!("/proc/{cmd}/status")).unwrap();
    let init = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        Command::new("kill")
            .args(["-9", &init])
            .status()
            .unwrap()
            .success()
    );
    let (mut sb, result) = runner.join().unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("start a new one"), "{err}");
    let err = sb
        .exec(&bash_req("echo ran", Duration::from_secs(5)))
        .unwrap_err();
    assert!(err.to_string().contains("no longer usable"), "{err}");
    assert!(host_processes_with("sleep 984").is_empty());
}

#[test]
fn an_oversized_request_is_refused_and_the_instance_keeps_working() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = start(ws.path());
    let big = "x".repeat(70 * 1024);
    let err = sb
        .exec(&bash_req(&format!("echo {big}"), Duration::from_secs(5)))
        .unwrap_err();
    assert!(err.to_string().contains("at most 65536"), "{err}");
    let many: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let mut req = bash_req("echo $#", Duration::from_secs(5));
    req.argv.extend(many);
    let err = sb.exec(&req).unwrap_err();
    assert!(err.to_string().contains("arguments"), "{err}");
    assert_eq!(text(&bash(sb.as_mut(), "echo fine").stdout), "fine");
}

/// Init runs on a copy of the calling thread's stack; its buffers live on the heap, so a
/// caller with a small stack works too.
#[test]
fn a_sandbox_started_from_a_small_stack_thread_works() {
    let ws = tempfile::tempdir().unwrap();
    let path = ws.path().to_path_buf();
    let out = std::thread::Builder::new()
        .stack_size(96 * 1024)
        .spawn(move || {
            let mut sb = start(&path);
            (0..3)
                .map(|i| text(&bash(sb.as_mut(), &format!("echo {i}")).stdout))
                .collect::<Vec<_>>()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(out, ["0", "1", "2"]);
}
