//! The container backend. The exact `run`/`exec` argument vectors always run; so do the
//! attacks on them and the instance lifecycle against a fake engine CLI (a shell script
//! that logs its arguments and runs `exec` commands on the host). Tests against a real
//! engine run only when `docker version` / `podman version` succeeds, and say why they
//! skipped otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cordon_sandbox::{
    Access, ContainerConfig, ContainerSandbox, Engine, ExecRequest, ExitStatus, Layer, Limits,
    Profile, RoBind, Sandbox, SandboxError, SpawnRequest, WorkspaceAccess, exec_args, run_args,
    spawn_args,
};

fn profile(ws: &Path) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("HOME".into(), "/workspace".into()),
        ],
        limits: Limits::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

fn config() -> ContainerConfig {
    ContainerConfig {
        engine: Engine::Docker,
        image: "debian:stable-slim".into(),
        name: "cordon-test-1".into(),
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

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ------------------------------------------------------------ argument vectors

#[test]
fn run_args_are_exactly_the_profile() {
    let args = run_args(&profile(Path::new("/srv/ws")), &config()).unwrap();
    assert_eq!(
        strs(&args),
        [
            "run",
            "--detach",
            "--name",
            "cordon-test-1",
            "--user",
            "1000:1000",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--network",
            "none",
            "--pids-limit",
            "512",
            "--memory",
            "2147483648",
            "--memory-swap",
            "2147483648",
            "--cpus",
            "2.00",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=256:256",
            "--ulimit",
            "fsize=1073741824:1073741824",
            "--ulimit",
            "cpu=300:300",
            "--ulimit",
            "core=0:0",
            "--tmpfs",
            "/tmp:rw,nosuid,nodev,size=268435456",
            "--mount",
            "type=bind,src=/srv/ws,dst=/workspace",
            "--workdir",
            "/workspace",
            "--hostname",
            "cordon-sandbox",
            "--label",
            "cordon.sandbox=1",
            "--rm",
            "--init",
            "--env=PATH=/usr/bin:/bin",
            "--env=HOME=/workspace",
            "--entrypoint",
            "sleep",
            "debian:stable-slim",
            "infinity",
        ]
    );
}

#[test]
fn read_only_workspace_and_custom_limits() {
    let mut p = profile(Path::new("/srv/ws"));
    p.workspace_access = WorkspaceAccess::Read;
    p.limits.cgroup_cpu_percent = 50;
    p.limits.cgroup_pids = 64;
    let args = run_args(&p, &config()).unwrap();
    let at = |flag: &str| {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1].clone()
    };
    assert_eq!(
        at("--mount"),
        "type=bind,src=/srv/ws,dst=/workspace,readonly"
    );
    assert_eq!(at("--cpus"), "0.50");
    assert_eq!(at("--pids-limit"), "64");
}

#[test]
fn podman_gets_no_extra_writable_tmpfs_and_no_userns_keep_id() {
    let mut c = config();
    c.engine = Engine::Podman;
    let podman = run_args(&profile(Path::new("/srv/ws")), &c).unwrap();
    let docker = run_args(&profile(Path::new("/srv/ws")), &config()).unwrap();
    let extra: Vec<&String> = podman.iter().filter(|a| !docker.contains(a)).collect();
    assert_eq!(extra, ["--read-only-tmpfs=false"]);
    assert!(!podman.iter().any(|a| a.contains("keep-id")));
}

#[test]
fn run_args_never_publish_ports_or_mount_anything_else() {
    let args = run_args(&profile(Path::new("/srv/ws")), &config()).unwrap();
    for bad in [
        "-p",
        "--publish",
        "--publish-all",
        "-P",
        "-v",
        "--volume",
        "--volumes-from",
        "--privileged",
        "--cap-add",
        "--device",
        "--pid",
        "--ipc",
        "--userns",
    ] {
        assert!(
            !args
                .iter()
                .any(|a| a == bad || a.starts_with(&format!("{bad}="))),
            "{bad} in {args:?}"
        );
    }
    assert!(
        !args
            .iter()
            .any(|a| a.contains("docker.sock") || a.contains("podman.sock"))
    );
    assert!(
        !args.iter().any(|a| a.contains("seccomp")),
        "seccomp is the engine default"
    );
    assert_eq!(args.iter().filter(|a| *a == "--mount").count(), 1);
    assert_eq!(args.iter().filter(|a| *a == "--tmpfs").count(), 1);
}

#[test]
fn exec_args_are_exact() {
    let mut r = req(&["sh", "-c", "cat"]);
    r.stdin = b"x".to_vec();
    r.cwd = Some("src".into());
    let args = exec_args(&profile(Path::new("/srv/ws")), &config(), &r).unwrap();
    assert_eq!(
        strs(&args),
        [
            "exec",
            "--interactive",
            "--user",
            "1000:1000",
            "--workdir=/workspace/src",
            "--env=PATH=/usr/bin:/bin",
            "--env=HOME=/workspace",
            "cordon-test-1",
            "sh",
            "-c",
            "cat",
        ]
    );
    // No stdin: no -i; absolute cwd kept.
    let mut r = req(&["ls"]);
    r.cwd = Some("/tmp".into());
    let args = exec_args(&profile(Path::new("/srv/ws")), &config(), &r).unwrap();
    assert_eq!(
        strs(&args)[..4],
        ["exec", "--user", "1000:1000", "--workdir=/tmp"]
    );
}

#[test]
fn spawn_args_keep_stdin_open_without_a_terminal() {
    let mut r = SpawnRequest::new(["npx", "-y", "@modelcontextprotocol/server-filesystem", "/"]);
    r.cwd = Some("src".into());
    let args = spawn_args(&profile(Path::new("/srv/ws")), &config(), &r).unwrap();
    assert_eq!(
        strs(&args),
        [
            "exec",
            "--interactive",
            "--user",
            "1000:1000",
            "--workdir=/workspace/src",
            "--env=PATH=/usr/bin:/bin",
            "--env=HOME=/workspace",
            "cordon-test-1",
            "npx",
            "-y",
            "@modelcontextprotocol/server-filesystem",
            "/",
        ]
    );
    assert!(!args.iter().any(|a| a == "--tty" || a == "-t" || a == "-it"));
    // Flags in argv stay after the container name; an empty argv is refused.
    let r = SpawnRequest::new(["--privileged", "x"]);
    let args = spawn_args(&profile(Path::new("/srv/ws")), &config(), &r).unwrap();
    let name_at = args.iter().position(|a| a == "cordon-test-1").unwrap();
    assert_eq!(args[name_at + 1], "--privileged");
    let err = spawn_args(
        &profile(Path::new("/srv/ws")),
        &config(),
        &SpawnRequest::new(Vec::<String>::new()),
    )
    .unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err:?}");
}

#[test]
fn skills_are_bound_read_only_and_no_workspace_is_an_empty_read_only_tmpfs() {
    let mut p = profile(Path::new("/srv/ws"));
    p.workspace_access = WorkspaceAccess::None;
    p.ro_binds = vec![
        RoBind {
            source: "/var/lib/cordon/skills/ab12".into(),
            target: "/skills/weather".into(),
        },
        RoBind {
            source: "/var/lib/cordon/skills/cd34".into(),
            target: "/skills/notes".into(),
        },
    ];
    let args = run_args(&p, &config()).unwrap();
    let values = |flag: &str| -> Vec<&str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    };
    assert_eq!(
        values("--mount"),
        [
            "type=bind,src=/var/lib/cordon/skills/ab12,dst=/skills/weather,readonly",
            "type=bind,src=/var/lib/cordon/skills/cd34,dst=/skills/notes,readonly",
        ]
    );
    assert_eq!(
        values("--tmpfs")[1],
        "/workspace:ro,nosuid,nodev,noexec,size=4k,mode=0555"
    );
    assert!(!args.iter().any(|a| a.contains("/srv/ws")), "{args:?}");
    assert_eq!(values("--workdir"), ["/workspace"]);
}

#[test]
fn attack_ro_bind_that_would_rewrite_the_mount_is_rejected() {
    for (source, target, field) in [
        ("/srv/s,dst=/etc", "/skills/a", "ro_binds[0].source"),
        ("/srv/s", "/skills/a,dst=/etc", "ro_binds[0].target"),
        ("/srv/s", "/etc", "ro_binds[0].target"),
        ("/srv/s", "/skills/../etc", "ro_binds[0].target"),
        ("/srv/s=x", "/skills/a", "ro_binds[0].source"),
        ("relative", "/skills/a", "ro_binds[0].source"),
    ] {
        let mut p = profile(Path::new("/srv/ws"));
        p.ro_binds = vec![RoBind {
            source: source.into(),
            target: target.into(),
        }];
        match run_args(&p, &config()) {
            Err(SandboxError::Invalid(msg)) => assert!(msg.contains(field), "{msg}"),
            other => panic!("{source:?} -> {target:?} accepted: {other:?}"),
        }
    }
}

// ------------------------------------------------------------ attacks on the vectors

#[test]
fn attack_workspace_path_that_would_rewrite_the_mount_is_rejected() {
    for ws in [
        "/srv/ws,dst=/etc",
        "/srv/a,src=/var/run/docker.sock",
        "/srv/ws=x",
        "/srv/\"quoted\"",
        "/srv/ws\nx",
        "relative/ws",
    ] {
        match run_args(&profile(Path::new(ws)), &config()) {
            Err(SandboxError::Invalid(msg)) => assert!(msg.contains("workspace"), "{msg}"),
            other => panic!("{ws:?} accepted: {other:?}"),
        }
    }
}

#[test]
fn attack_image_and_env_cannot_inject_flags() {
    for image in ["--privileged", "-v/:/host", "", "img --privileged"] {
        let mut c = config();
        c.image = image.into();
        assert!(
            matches!(
                run_args(&profile(Path::new("/srv/ws")), &c),
                Err(SandboxError::Invalid(_))
            ),
            "image {image:?} accepted"
        );
    }
    for key in ["A=B", ""] {
        let mut p = profile(Path::new("/srv/ws"));
        p.env.push((key.into(), "v".into()));
        assert!(matches!(
            run_args(&p, &config()),
            Err(SandboxError::Invalid(_))
        ));
        assert!(matches!(
            exec_args(&p, &config(), &req(&["true"])),
            Err(SandboxError::Invalid(_))
        ));
    }
    // A value with spaces or `=` stays inside its one `--env=` argument.
    let mut p = profile(Path::new("/srv/ws"));
    p.env.push(("X".into(), "a=b --privileged".into()));
    let args = run_args(&p, &config()).unwrap();
    assert!(args.contains(&"--env=X=a=b --privileged".to_owned()));
    assert!(!args.contains(&"--privileged".to_owned()));
}

#[test]
fn attack_argv_flags_land_after_the_container_name() {
    let args = exec_args(
        &profile(Path::new("/srv/ws")),
        &config(),
        &req(&["--privileged", "-u", "0"]),
    )
    .unwrap();
    let name = args.iter().position(|a| a == "cordon-test-1").unwrap();
    assert_eq!(strs(&args[name + 1..]), ["--privileged", "-u", "0"]);
    assert!(
        !args[..name]
            .iter()
            .any(|a| a == "--privileged" || a == "-u")
    );
    assert!(matches!(
        exec_args(&profile(Path::new("/srv/ws")), &config(), &req(&[])),
        Err(SandboxError::Invalid(_))
    ));
}

// ------------------------------------------------------------ missing engine

#[test]
fn missing_engine_is_a_setup_error_naming_it() {
    let ws = tempfile::tempdir().unwrap();
    let sb = ContainerSandbox {
        engine: Engine::Podman,
        image: "debian:stable-slim".into(),
        program: Some(PathBuf::from("/nonexistent/podman")),
    };
    match sb.start(&profile(ws.path())) {
        Err(SandboxError::Setup { layer, detail }) => {
            assert_eq!(layer, Layer::Exec);
            assert!(detail.contains("container engine"), "{detail}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started with a missing engine"),
    }
    // Lookup in PATH: only meaningful when podman is really absent.
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("podman").exists()))
        .unwrap_or(false);
    if in_path {
        eprintln!("skipped the PATH half: podman is installed");
        return;
    }
    match ContainerSandbox::new(Engine::Podman, "x").start(&profile(ws.path())) {
        Err(SandboxError::Setup { layer, detail }) => {
            assert_eq!(layer, Layer::Exec);
            assert!(detail.contains("`podman` not found in PATH"), "{detail}");
            assert!(detail.contains("install Podman"), "{detail}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started without podman"),
    }
}

// ------------------------------------------------------------ lifecycle (fake engine)

/// A fake engine CLI: logs each call's arguments to `log`; `run` fails when `fail_run`
/// exists; `exec` strips the exec flags and container name and runs the command.
fn fake_engine(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("log");
    let script = dir.join("fake-docker");
    let body = format!(
        r#"#!/bin/sh
printf '%s\n' "$*" >> '{log}'
case "$1" in
run)
    if [ -e '{dir}/fail_run' ]; then echo "Error response from daemon: no such image" >&2; exit 125; fi
    echo 0123456789abcdef ;;
exec)
    shift
    while :; do
        case "$1" in
        --interactive) shift ;;
        --user) shift 2 ;;
        --workdir=*|--env=*) shift ;;
        *) break ;;
        esac
    done
    shift
    exec "$@" ;;
rm|version) ;;
esac
"#,
        log = log.display(),
        dir = dir.display()
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

fn name_of_run(line: &str) -> String {
    line.split(' ').nth(3).unwrap().to_owned()
}

#[test]
fn one_container_per_task_exec_per_call_rm_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let (script, log) = fake_engine(dir.path());
    let sb = ContainerSandbox {
        engine: Engine::Docker,
        image: "debian:stable-slim".into(),
        program: Some(script),
    };
    let mut inst = sb.start(&profile(ws.path())).unwrap();
    let full = std::fs::read_to_string(&log).unwrap();
    assert!(full.starts_with("run --detach --name cordon-"), "{full}");
    let name = name_of_run(full.lines().next().unwrap());

    let mut r = req(&["sh", "-c", "cat; echo err >&2; exit 3"]);
    r.stdin = b"hello\n".to_vec();
    let out = inst.exec(&r).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(3));
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"err\n");
    inst.exec(&req(&["true"])).unwrap();
    let c = calls(&log);
    assert_eq!(c.len(), 3, "{c:?}");
    assert_eq!(c[1], "exec --interactive --user");
    assert_eq!(c[2], "exec --user 1000:1000");

    drop(inst);
    let c = calls(&log);
    assert_eq!(c.last().unwrap(), &format!("rm -f {name}"));
}

#[test]
fn a_spawned_process_talks_through_exec_interactive_and_its_container_goes_with_it() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let (script, log) = fake_engine(dir.path());
    let sb = ContainerSandbox {
        engine: Engine::Docker,
        image: "debian:stable-slim".into(),
        program: Some(script),
    };
    // Dropped while running: the container is removed.
    let mut proc = sb
        .spawn(&profile(ws.path()), &SpawnRequest::new(["cat"]))
        .unwrap();
    let name = name_of_run(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    );
    let mut stdin = std::fs::File::from(proc.stdin().unwrap());
    let mut stdout = BufReader::new(std::fs::File::from(proc.stdout().unwrap()));
    for i in 0..5 {
        writeln!(stdin, "line {i}").unwrap();
        let mut got = String::new();
        stdout.read_line(&mut got).unwrap();
        assert_eq!(got, format!("line {i}\n"));
    }
    assert_eq!(proc.try_wait().unwrap(), None);
    assert_eq!(calls(&log)[1], "exec --interactive --user");
    drop(proc);
    assert_eq!(calls(&log).last().unwrap(), &format!("rm -f {name}"));

    // Exits on its own: status and stderr tail, then the container is removed.
    let mut proc = sb
        .spawn(
            &profile(ws.path()),
            &SpawnRequest::new(["sh", "-c", "echo oops >&2; exit 4"]),
        )
        .unwrap();
    let status = proc.wait(Duration::from_secs(10)).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(4)));
    let name = name_of_run(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .rfind(|l| l.starts_with("run "))
            .unwrap(),
    );
    assert_eq!(calls(&log).last().unwrap(), &format!("rm -f {name}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while proc.stderr_tail() != b"oops\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            proc.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Killed: removed once, status SIGKILL.
    let mut proc = sb
        .spawn(&profile(ws.path()), &SpawnRequest::new(["sleep", "100"]))
        .unwrap();
    proc.kill().unwrap();
    assert_eq!(proc.try_wait().unwrap(), Some(ExitStatus::Signaled(9)));
    let removals = calls(&log)
        .iter()
        .filter(|c| c.starts_with("rm -f"))
        .count();
    drop(proc);
    assert_eq!(
        calls(&log)
            .iter()
            .filter(|c| c.starts_with("rm -f"))
            .count(),
        removals
    );
}

#[test]
fn output_through_the_engine_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let (script, _log) = fake_engine(dir.path());
    let sb = ContainerSandbox {
        engine: Engine::Docker,
        image: "img".into(),
        program: Some(script),
    };
    let mut inst = sb.start(&profile(ws.path())).unwrap();
    let mut r = req(&["sh", "-c", "head -c 50000 /dev/zero"]);
    r.output_limit = 100;
    let out = inst.exec(&r).unwrap();
    assert_eq!((out.stdout.len(), out.stdout_dropped), (100, 49_900));
}

#[test]
fn deadline_removes_the_container_and_next_exec_recreates_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let (script, log) = fake_engine(dir.path());
    let sb = ContainerSandbox {
        engine: Engine::Docker,
        image: "img".into(),
        program: Some(script),
    };
    let mut inst = sb.start(&profile(ws.path())).unwrap();
    let first = name_of_run(&std::fs::read_to_string(&log).unwrap());
    let mut r = req(&["sleep", "1000"]);
    r.timeout = Duration::from_millis(300);
    let out = inst.exec(&r).unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert_eq!(calls(&log).last().unwrap(), &format!("rm -f {first}"));

    let out = inst.exec(&req(&["echo", "again"])).unwrap();
    assert_eq!(out.stdout, b"again\n");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let runs: Vec<&String> = lines.iter().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(runs.len(), 2, "{lines:?}");
    assert_ne!(name_of_run(runs[1]), first, "a fresh container name");
}

#[test]
fn attack_workspace_with_comma_is_rejected_before_the_engine_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws,dst=etc,readonly=false");
    std::fs::create_dir(&ws).unwrap();
    let (script, log) = fake_engine(dir.path());
    let sb = ContainerSandbox {
        engine: Engine::Docker,
        image: "img".into(),
        program: Some(script),
    };
    match sb.start(&profile(&ws)) {
        Err(SandboxError::Invalid(msg)) => assert!(msg.contains("--mount"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a workspace with `,` was mounted"),
    }
    assert!(
        calls(&log).is_empty(),
        "the engine was called: {:?}",
        calls(&log)
    );
}

#[test]
fn failing_run_is_a_setup_error_with_the_engine_message() {
    let dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let (script, _log) = fake_engine(dir.path());
    std::fs::write(dir.path().join("fail_run"), "").unwrap();
    let sb = ContainerSandbox {
        engine: Engine::Docker,
        image: "img".into(),
        program: Some(script),
    };
    match sb.start(&profile(ws.path())) {
        Err(SandboxError::Setup { detail, .. }) => {
            assert!(detail.contains("no such image"), "{detail}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started although run failed"),
    }
}

#[test]
fn explain_describes_the_container_profile() {
    let ws = tempfile::tempdir().unwrap();
    let sb = ContainerSandbox::new(Engine::Docker, "debian:stable-slim");
    let e = sb.explain(&profile(ws.path()));
    assert_eq!(e.backend, "docker");
    assert_eq!((e.uid, e.gid), (1000, 1000));
    for layer in [
        "engine namespaces",
        "--cap-drop ALL",
        "no-new-privileges",
        "--network none",
        "engine default seccomp",
    ] {
        assert!(
            e.layers.iter().any(|l| l.layer == layer && l.active),
            "{layer} missing: {:?}",
            e.layers
        );
    }
    let paths: Vec<&str> = e.mounts.iter().map(|m| m.path.as_str()).collect();
    for p in ["/", "/workspace", "/tmp"] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    assert!(e.network.contains("loopback only"));
    let mut skilled = profile(ws.path());
    skilled.workspace_access = WorkspaceAccess::None;
    skilled.ro_binds = vec![RoBind {
        source: ws.path().to_path_buf(),
        target: "/skills/s".into(),
    }];
    let e3 = sb.explain(&skilled);
    let view = |path: &str| e3.mounts.iter().find(|m| m.path == path).unwrap().clone();
    assert_eq!(view("/skills/s").access, Access::ReadOnly);
    assert_eq!(view("/workspace").access, Access::ReadOnly);
    assert!(view("/workspace").source.starts_with("empty tmpfs"));
    let mut with_port = profile(ws.path());
    with_port.egress_port = Some(3128);
    let e2 = sb.explain(&with_port);
    assert!(e2.warnings.iter().any(|w| w.contains("egress_port 3128")));
    if live(Engine::Docker).is_err() {
        assert!(
            e.warnings
                .iter()
                .any(|w| w.contains("starting a sandbox will fail")),
            "{:?}",
            e.warnings
        );
    }
}

// ------------------------------------------------------------ live engine

fn live(engine: Engine) -> Result<(), String> {
    ContainerSandbox::new(engine, "unused").probe()
}

/// Image for live tests: `CORDON_TEST_IMAGE` or `debian:stable-slim`.
fn live_sandbox() -> Option<ContainerSandbox> {
    for engine in [Engine::Docker, Engine::Podman] {
        match live(engine) {
            Ok(()) => {
                let image = std::env::var("CORDON_TEST_IMAGE")
                    .unwrap_or_else(|_| "debian:stable-slim".into());
                return Some(ContainerSandbox::new(engine, image));
            }
            Err(why) => eprintln!(
                "live container tests: {} unavailable: {why}",
                engine.program()
            ),
        }
    }
    eprintln!("live container tests SKIPPED: no working container engine");
    None
}

#[test]
fn live_container_applies_the_profile() {
    let Some(sb) = live_sandbox() else { return };
    let ws = tempfile::tempdir().unwrap();
    // uid 1000 must be able to write the workspace.
    std::process::Command::new("chmod")
        .args(["0777", ws.path().to_str().unwrap()])
        .status()
        .unwrap();
    let mut inst = sb.start(&profile(ws.path())).unwrap();
    let out = inst
        .exec(&req(&[
            "sh",
            "-c",
            "id -u; id -g; hostname; pwd; echo hi > /workspace/f; \
             touch /etc/x 2>/dev/null && echo root-writable; \
             grep -c . /proc/net/dev; cat /proc/self/status | grep CapEff",
        ]))
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[..4],
        ["1000", "1000", "cordon-sandbox", "/workspace"],
        "{s}"
    );
    assert!(!s.contains("root-writable"), "{s}");
    // --network none: /proc/net/dev has its two header lines and `lo` only.
    assert_eq!(lines[4], "3", "{s}");
    assert!(s.contains("CapEff:\t0000000000000000"), "{s}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("f")).unwrap(),
        "hi\n"
    );

    let mut r = req(&["sleep", "1000"]);
    r.timeout = Duration::from_secs(1);
    assert_eq!(inst.exec(&r).unwrap().status, ExitStatus::TimedOut);
    let out = inst.exec(&req(&["echo", "recreated"])).unwrap();
    assert_eq!(out.stdout, b"recreated\n");
}
