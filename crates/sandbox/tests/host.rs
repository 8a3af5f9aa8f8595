//! The `none` backend with real host processes: it runs commands, kills the whole process
//! group at the deadline, caps output, passes exactly the profile's environment, applies
//! rlimits, and its explanation says there is no isolation.

use std::path::Path;
use std::time::{Duration, Instant};

use cordon_sandbox::{
    ExecOutput, ExecRequest, ExitStatus, HOST_WARNING, HostSandbox, Limits, Profile, Sandbox,
    SandboxError,
};

fn profile(ws: &Path) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: cordon_sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), "/workspace".into()),
            ("CORDON_TEST".into(), "x=y z".into()),
        ],
        limits: Limits::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

fn req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(30),
        output_limit: 1 << 20,
    }
}

fn run(p: &Profile, r: &ExecRequest) -> Result<ExecOutput, SandboxError> {
    HostSandbox::new().start(p)?.exec(r)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn alive(pid: i32) -> bool {
    // Zombies count as dead: they can do nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn runs_with_stdin_stdout_stderr_and_exit_code() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&["sh", "-c", "echo out; echo err >&2; cat; exit 7"]);
    r.stdin = b"from stdin\n".to_vec();
    let out = run(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(7));
    assert_eq!(text(&out.stdout), "out\nfrom stdin\n");
    assert_eq!(text(&out.stderr), "err\n");
}

#[test]
fn cwd_is_the_workspace_and_workspace_paths_map_to_it() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("sub")).unwrap();
    let real = ws.path().canonicalize().unwrap();
    let p = profile(ws.path());
    let out = run(&p, &req(&["pwd"])).unwrap();
    assert_eq!(text(&out.stdout).trim(), real.to_str().unwrap());
    let mut r = req(&["pwd"]);
    r.cwd = Some("/workspace/sub".into());
    let out = run(&p, &r).unwrap();
    assert_eq!(text(&out.stdout).trim(), real.join("sub").to_str().unwrap());
    // Files written land in the real workspace.
    run(&p, &req(&["sh", "-c", "echo hi > made.txt"])).unwrap();
    assert_eq!(
        std::fs::read_to_string(real.join("made.txt")).unwrap(),
        "hi\n"
    );
}

#[test]
fn environment_is_exactly_the_profile() {
    // SAFETY: set before any thread of this test reads the env; the name is unique.
    unsafe { std::env::set_var("CORDON_HOST_LEAK_CANARY", "leaked") };
    let ws = tempfile::tempdir().unwrap();
    let out = run(&profile(ws.path()), &req(&["env", "-0"])).unwrap();
    let mut got: Vec<String> = text(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "CORDON_TEST=x=y z",
            "HOME=/workspace",
            "PATH=/usr/local/bin:/usr/bin:/bin"
        ]
    );
}

#[test]
fn deadline_kills_the_whole_process_group() {
    let ws = tempfile::tempdir().unwrap();
    let pidfile = ws.path().join("bg.pid");
    let mut r = req(&[
        "sh",
        "-c",
        "sleep 1000 & echo $! > bg.pid; sleep 1000 & wait",
    ]);
    r.timeout = Duration::from_millis(500);
    let t = Instant::now();
    let out = run(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "background sleep {pid} survived the deadline");
}

#[test]
fn background_processes_die_when_the_command_exits() {
    let ws = tempfile::tempdir().unwrap();
    let out = run(
        &profile(ws.path()),
        &req(&["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"]),
    )
    .unwrap();
    assert!(out.status.success());
    let pid: i32 = text(&out.stdout).trim().parse().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "background sleep {pid} outlived the command");
}

#[test]
fn an_unrepresentable_deadline_is_no_deadline() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&["true"]);
    r.timeout = Duration::MAX;
    assert!(run(&profile(ws.path()), &r).unwrap().status.success());
}

#[test]
fn output_is_capped_and_the_rest_counted() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&[
        "sh",
        "-c",
        "head -c 100000 /dev/zero; head -c 5000 /dev/zero >&2",
    ]);
    r.output_limit = 1000;
    let out = run(&profile(ws.path()), &r).unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stdout_dropped, 99_000);
    assert_eq!(out.stderr.len(), 1000);
    assert_eq!(out.stderr_dropped, 4000);
}

#[test]
fn rlimits_are_applied() {
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.limits.max_open_files = 77;
    p.limits.max_file_size = 4096;
    let out = run(&p, &req(&["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"])).unwrap();
    assert_eq!(text(&out.stdout), "77\n77\n0\n");
    // Writing past RLIMIT_FSIZE fails (SIGXFSZ or EFBIG) and the file stays small.
    let out = run(&p, &req(&["sh", "-c", "head -c 100000 /dev/zero > big"])).unwrap();
    assert!(!out.status.success(), "{:?}", out.status);
    let len = std::fs::metadata(ws.path().join("big")).unwrap().len();
    assert!(len <= 4096, "file grew to {len}");
}

#[test]
fn missing_program_and_bad_requests_are_errors() {
    let ws = tempfile::tempdir().unwrap();
    let p = profile(ws.path());
    match run(&p, &req(&["no-such-program-cordon"])) {
        Err(SandboxError::Exec { program, .. }) => assert_eq!(program, "no-such-program-cordon"),
        other => panic!("expected Exec error, got {other:?}"),
    }
    assert!(matches!(run(&p, &req(&[])), Err(SandboxError::Invalid(_))));
    let gone = profile(&ws.path().join("missing"));
    assert!(matches!(
        HostSandbox::new().start(&gone).err(),
        Some(SandboxError::Invalid(_))
    ));
}

#[test]
fn explain_says_there_is_no_isolation() {
    let ws = tempfile::tempdir().unwrap();
    let e = HostSandbox::new().explain(&profile(ws.path()));
    assert_eq!(e.backend, "none");
    assert!(!e.layers.is_empty());
    assert!(e.layers.iter().all(|l| !l.active), "{:?}", e.layers);
    assert!(e.warnings.iter().any(|w| w == HOST_WARNING));
    assert!(HOST_WARNING.contains("run as you, on the host, with your files and network"));
    let mut with_port = profile(ws.path());
    with_port.egress_port = Some(3128);
    let e2 = HostSandbox::new().explain(&with_port);
    assert!(
        e2.warnings
            .iter()
            .any(|w| w.contains("egress_port 3128 is not applied"))
    );
    // The claimed uid is the one commands really get.
    let out = run(&profile(ws.path()), &req(&["id", "-u"])).unwrap();
    assert_eq!(text(&out.stdout).trim(), e.uid.to_string());
}
