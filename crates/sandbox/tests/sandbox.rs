//! Real commands in the real native sandbox: what they can and cannot do.
//!
//! Every escape test runs the attack inside the sandbox and checks both that it failed and
//! that its effect (a file, a connection, a surviving process) is absent on the host.

mod support;

use support::euid;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cordon_sandbox::{
    Access, ExecOutput, ExecRequest, ExitStatus, HostSandbox, Layer, Limits, NativeSandbox,
    Profile, RoBind, Sandbox, SandboxError, WorkspaceAccess,
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

fn req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(30),
        output_limit: 1 << 20,
    }
}

fn run_in(p: &Profile, r: &ExecRequest) -> Result<ExecOutput, SandboxError> {
    NativeSandbox::new().start(p)?.exec(r)
}

fn bash_in(p: &Profile, script: &str) -> ExecOutput {
    run_in(p, &req(&["bash", "-c", script])).expect("the sandbox should run the command")
}

fn bash(ws: &Path, script: &str) -> ExecOutput {
    bash_in(&profile(ws), script)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(b: &[u8]) -> Vec<String> {
    text(b).lines().map(str::to_owned).collect()
}

// ---------------------------------------------------------------- pass-through

#[test]
fn stdout_stderr_stdin_and_exit_code_pass_through() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&["bash", "-c", "echo out; echo err >&2; cat; exit 7"]);
    r.stdin = b"from stdin\n".to_vec();
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(7));
    assert_eq!(text(&out.stdout), "out\nfrom stdin\n");
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!((out.stdout_dropped, out.stderr_dropped), (0, 0));
}

#[test]
fn echo_found_through_path_and_success() {
    let ws = tempfile::tempdir().unwrap();
    let out = run_in(&profile(ws.path()), &req(&["echo", "hello", "world"])).unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(text(&out.stdout), "hello world\n");
}

#[test]
fn empty_stdin_reads_eof_at_once() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&["wc", "-c"]);
    r.timeout = Duration::from_secs(5);
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(text(&out.stdout).trim(), "0");
}

#[test]
fn big_stdin_and_both_outputs_flow_concurrently() {
    let ws = tempfile::tempdir().unwrap();
    // More than any pipe buffer in every direction at once: deadlocks if not concurrent.
    let script = "wc -c; head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2";
    let mut r = req(&["bash", "-c", script]);
    r.stdin = vec![b'x'; 1 << 20];
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("1048576\n"));
    assert_eq!(out.stdout.len(), "1048576\n".len() + 300000);
    assert_eq!(out.stderr.len(), 300000);
}

#[test]
fn exit_by_signal_is_reported() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(ws.path(), "kill -KILL $$");
    assert_eq!(out.status, ExitStatus::Signaled(libc_sigkill()));
}

fn libc_sigkill() -> i32 {
    9
}

#[test]
fn command_not_found_is_an_exec_error() {
    let ws = tempfile::tempdir().unwrap();
    let p = profile(ws.path());
    match run_in(&p, &req(&["no-such-program-cordon"])) {
        Err(SandboxError::Exec { program, detail }) => {
            assert_eq!(program, "no-such-program-cordon");
            assert!(detail.contains("not found in PATH"), "{detail}");
        }
        other => panic!("expected an Exec error, got {other:?}"),
    }
    match run_in(&p, &req(&["/usr/bin/no-such-program-cordon"])) {
        Err(SandboxError::Exec { detail, .. }) => assert!(detail.contains("no such file")),
        other => panic!("expected an Exec error, got {other:?}"),
    }
    // Host programs outside the sandbox's root are not found either.
    let ws_exe = ws.path().join("tool");
    std::fs::write(&ws_exe, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&ws_exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    match run_in(&p, &req(&[ws_exe.to_str().unwrap()])) {
        Err(SandboxError::Exec { .. }) => {}
        other => panic!("a host path must not be executable inside, got {other:?}"),
    }
    // ...while the same file at its sandbox path runs.
    let out = run_in(&p, &req(&["/workspace/tool"])).unwrap();
    assert_eq!(text(&out.stdout), "ran\n");
}

#[test]
fn an_unrepresentable_timeout_means_no_deadline() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&["true"]);
    r.timeout = Duration::MAX;
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
}

#[test]
fn empty_argv_is_invalid() {
    let ws = tempfile::tempdir().unwrap();
    let err = run_in(&profile(ws.path()), &req(&[])).unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err:?}");
}

#[test]
fn missing_workspace_is_rejected_at_start() {
    let ws = tempfile::tempdir().unwrap();
    let p = profile(&ws.path().join("absent"));
    let err = NativeSandbox::new()
        .start(&p)
        .err()
        .expect("start must fail");
    assert!(
        matches!(err, SandboxError::Invalid(ref m) if m.contains("absent")),
        "{err:?}"
    );
    let file = ws.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = NativeSandbox::new()
        .start(&profile(&file))
        .err()
        .expect("start must fail");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn failed_setup_step_is_reported_and_the_command_never_runs() {
    // The sandbox is set up once, at start: make its workspace bind fail there. A directory
    // owned by an id the sandbox's user namespace does not map, mode 0700, cannot be
    // traversed by init even with all its (namespaced) capabilities; the host root that
    // canonicalized the path could.
    if euid() != 0 {
        eprintln!("SKIPPED: needs root to create a directory owned by an unmapped uid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    let ws = locked.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::os::unix::fs::chown(&locked, Some(12345), Some(12345)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    match NativeSandbox::new().start(&profile(&ws)).err() {
        Some(SandboxError::Setup {
            layer: Layer::RootFilesystem,
            ref detail,
        }) => assert!(detail.contains("workspace"), "{detail}"),
        other => panic!("expected a root filesystem setup error at start, got {other:?}"),
    }
    // Nothing was left running: no instance exists to exec in, and a later start with a
    // usable workspace works.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&locked, Some(0), Some(0)).unwrap();
    let out = bash(&ws, "echo ok");
    assert_eq!(text(&out.stdout), "ok\n");
}

#[test]
fn environment_is_exactly_the_profile() {
    let ws = tempfile::tempdir().unwrap();
    // SAFETY-free way to put something in our own environment: a child of this test would
    // inherit it; the sandbox must not.
    let out = run_in(&profile(ws.path()), &req(&["env"])).unwrap();
    let got: BTreeSet<String> = lines(&out.stdout).into_iter().collect();
    let want: BTreeSet<String> = profile(ws.path())
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn working_directory_defaults_to_workspace_and_follows_cwd() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("sub")).unwrap();
    let p = profile(ws.path());
    let out = run_in(&p, &req(&["pwd"])).unwrap();
    assert_eq!(text(&out.stdout), "/workspace\n");
    let mut r = req(&["pwd"]);
    r.cwd = Some("sub".into());
    assert_eq!(text(&run_in(&p, &r).unwrap().stdout), "/workspace/sub\n");
    r.cwd = Some("/tmp".into());
    assert_eq!(text(&run_in(&p, &r).unwrap().stdout), "/tmp\n");
    r.cwd = Some("/nonexistent".into());
    match run_in(&p, &r) {
        Err(SandboxError::Exec { detail, .. }) => assert!(detail.contains("/nonexistent")),
        other => panic!("expected an Exec error for a bad cwd, got {other:?}"),
    }
}

// ---------------------------------------------------------------- identity and privileges

#[test]
fn runs_as_uid_1000_without_capabilities() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "id -u; id -g; id -un; hostname; cat /proc/self/status",
    );
    let l = lines(&out.stdout);
    assert_eq!(&l[..4], ["1000", "1000", "cordon", "cordon-sandbox"]);
    let field = |name: &str| {
        l.iter()
            .find_map(|x| {
                x.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{name} missing from /proc/self/status"))
    };
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(cap), "0000000000000000", "{cap}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
}

#[test]
fn setuid_binaries_grant_nothing() {
    let ws = tempfile::tempdir().unwrap();
    // `su`/`mount` are setuid on Debian; with no_new_privs and no caps they stay uid 1000.
    let out = bash(
        ws.path(),
        "su -c id root </dev/null; mount -t tmpfs none /tmp; echo rc=$?",
    );
    assert!(text(&out.stdout).contains("rc="), "{}", text(&out.stdout));
    assert!(
        !text(&out.stdout).contains("uid=0"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("rc=0"), "{}", text(&out.stdout));
}

// ---------------------------------------------------------------- filesystem escapes

#[test]
fn etc_is_reduced_and_shadow_is_absent() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(ws.path(), "cat /etc/shadow; echo rc=$?; ls -A /etc");
    let l = lines(&out.stdout);
    assert_eq!(l[0], "rc=1");
    let allowed = [
        "passwd",
        "group",
        "hosts",
        "hostname",
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "ssl",
        "ca-certificates",
        "alternatives",
        "nsswitch.conf",
        "localtime",
        "mime.types",
        "bash.bashrc",
        "profile",
        "inputrc",
        "terminfo",
    ];
    for name in &l[1..] {
        assert!(allowed.contains(&name.as_str()), "unexpected /etc/{name}");
    }
    let out = bash(ws.path(), "cat /etc/passwd /etc/hosts");
    assert!(text(&out.stdout).contains("cordon:x:1000:1000"));
    assert!(
        !text(&out.stdout).contains("postgres"),
        "host passwd leaked"
    );
}

#[test]
fn host_directories_are_not_there() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "for d in /root /home /var /sys /run /opt /mnt /srv /boot /work /oldroot /newroot; do \
           ls $d >/dev/null 2>&1 && echo \"$d visible\"; done; ls -A /",
    );
    assert!(
        !text(&out.stdout).contains("visible"),
        "{}",
        text(&out.stdout)
    );
    let root: BTreeSet<String> = lines(&out.stdout).into_iter().collect();
    let allowed = [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "sbin",
        "tmp",
        "usr",
        "workspace",
    ];
    for name in &root {
        assert!(allowed.contains(&name.as_str()), "unexpected /{name}");
    }
}

#[test]
fn a_state_dir_outside_the_workspace_is_invisible() {
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("vault.key");
    std::fs::write(&secret, "TOPSECRET-STATE").unwrap();
    let ws = tempfile::tempdir().unwrap();
    let s = secret.display();
    let out = bash(
        ws.path(),
        &format!(
            "cat {s}; cat /workspace/../{s}; cat /proc/1/root/{s}; cat /proc/self/cwd/../{s}; \
             grep -r TOPSECRET /tmp /dev/shm /workspace 2>/dev/null; true"
        ),
    );
    assert!(!text(&out.stdout).contains("TOPSECRET"));
    assert!(
        text(&out.stderr).contains("No such file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn writes_outside_workspace_tmp_and_shm_fail() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "for f in /usr/x /usr/bin/x /etc/x /etc/passwd /x /dev/x /proc/x /lib/x; do \
           (echo pwned > $f) 2>/dev/null && echo \"wrote $f\"; done; \
         mkdir /newdir 2>/dev/null && echo 'made /newdir'; \
         echo ok > /workspace/ok && echo ok > /tmp/ok && echo ok > /dev/shm/ok && echo writable",
    );
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("wrote") && !stdout.contains("made"),
        "{stdout}"
    );
    assert!(
        stdout.contains("writable"),
        "{stdout} {}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("ok")).unwrap(),
        "ok\n"
    );
    assert!(!Path::new("/x").exists() && !Path::new("/usr/x").exists());
}

#[test]
fn read_only_workspace_cannot_be_written_or_remounted() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("input"), "data").unwrap();
    let mut p = profile(ws.path());
    p.workspace_access = WorkspaceAccess::Read;
    let out = bash_in(
        &p,
        "cat /workspace/input; echo; echo x > /workspace/new && echo wrote; \
         rm /workspace/input && echo removed; \
         mount -o remount,rw /workspace 2>/dev/null && echo remounted; true",
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("data"), "{stdout}");
    assert!(
        !stdout.contains("wrote") && !stdout.contains("removed") && !stdout.contains("remounted")
    );
    assert!(!ws.path().join("new").exists());
    assert!(ws.path().join("input").exists());
}

#[test]
fn read_only_workspace_covers_mounts_inside_it() {
    if euid() != 0 {
        eprintln!("SKIPPED: needs root to mount a tmpfs inside the workspace on the host");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let sub = ws.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&sub)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: could not mount a tmpfs on the host");
        return;
    }
    let mut p = profile(ws.path());
    p.workspace_access = WorkspaceAccess::Read;
    let out = bash_in(&p, "echo x > /workspace/sub/x && echo wrote; ls /workspace");
    let _ = Command::new("umount").arg(&sub).status();
    assert!(
        !text(&out.stdout).contains("wrote"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("sub"));
}

/// Every bind carries its flags, seen from inside in `/proc/self/mountinfo`: the system
/// and identity files read-only, nosuid and nodev; device nodes read-only, nosuid and
/// noexec (but not nodev: they must work); the workspace nosuid and nodev, and (as root)
/// a mount the host has inside the workspace gets them too, so a set-uid program or a
/// device node placed there on the host is inert inside.
#[test]
fn every_bind_carries_its_mount_flags_down_to_its_submounts() {
    let ws = tempfile::tempdir().unwrap();
    let sub = ws.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mounted = euid() == 0
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&sub)
            .status()
            .is_ok_and(|s| s.success());
    let out = bash(ws.path(), "cut -d' ' -f5,6 /proc/self/mountinfo");
    if mounted {
        let _ = Command::new("umount").arg(&sub).status();
    }
    let seen = text(&out.stdout);
    let flags_of = |point: &str| -> Vec<String> {
        let line = seen
            .lines()
            .rev()
            .find(|l| l.split(' ').next() == Some(point))
            .unwrap_or_else(|| panic!("{point} is not mounted inside:\n{seen}"));
        line.split(' ')
            .nth(1)
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    let expect = |point: &str, set: &[&str], unset: &[&str]| {
        let flags = flags_of(point);
        for f in set {
            assert!(flags.iter().any(|x| x == f), "{point}: {flags:?} lacks {f}");
        }
        for f in unset {
            assert!(!flags.iter().any(|x| x == f), "{point}: {flags:?} has {f}");
        }
    };
    expect("/usr", &["ro", "nosuid", "nodev"], &[]);
    expect("/etc/ssl", &["ro", "nosuid", "nodev"], &[]);
    expect("/dev/null", &["ro", "nosuid", "noexec"], &["nodev"]);
    expect("/proc/sys", &["ro", "nosuid", "nodev", "noexec"], &[]);
    expect("/workspace", &["rw", "nosuid", "nodev"], &[]);
    if mounted {
        expect("/workspace/sub", &["rw", "nosuid", "nodev"], &[]);
    }
}

#[test]
fn host_device_nodes_work_but_cannot_be_changed() {
    // As host root the command's uid owns the host's /dev/null inode: a rw bind would let it
    // chmod or chown the host's device nodes. chmod to the current mode so that a failure of
    // this test changes nothing on the host.
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c; \
         for d in null zero full random urandom tty; do \
           chmod 666 /dev/$d 2>/dev/null && echo \"chmod $d\"; \
           chown 1000 /dev/$d 2>/dev/null && echo \"chown $d\"; done; \
         ln -s /x /dev/new 2>/dev/null && echo 'created in /dev'",
    );
    let stdout = text(&out.stdout);
    assert_eq!(lines(&out.stdout), ["4", "4"], "{stdout}");
}

#[test]
fn the_sandbox_has_its_own_session_and_no_terminal() {
    // Without a new session the command could reach the user's terminal through /dev/tty
    // and push input into it (TIOCSTI).
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "cut -d' ' -f6,7 /proc/self/stat; (exec 3</dev/tty) 2>/dev/null && echo 'opened tty'",
    );
    // Session id 1 (init, as seen inside), tty_nr 0.
    assert_eq!(lines(&out.stdout), ["1 0"], "{}", text(&out.stdout));
}

#[test]
fn proc_shows_only_sandbox_pids() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(ws.path(), "ls /proc");
    let pids: Vec<u32> = lines(&out.stdout)
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(pids.contains(&1), "init must be pid 1: {pids:?}");
    assert!(pids.iter().all(|&p| p < 10), "host pids visible: {pids:?}");
    assert!(!pids.contains(&std::process::id()) || std::process::id() < 10);
}

#[test]
fn global_kernel_settings_in_proc_cannot_be_written() {
    // As host root the command's uid is kuid 0, which owns these files: only the read-only
    // and masking mounts stand between it and e.g. core_pattern (a host escape). Writes the
    // current value back, so a failure of this test changes nothing on the host.
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "for f in kernel/printk_ratelimit vm/swappiness; do v=$(cat /proc/sys/$f) && \
           (echo \"$v\" > /proc/sys/$f) 2>/dev/null && echo \"wrote $f\"; done; \
         (echo h > /proc/sysrq-trigger) 2>/dev/null && echo 'wrote sysrq'; \
         mount -o remount,rw /proc/sys 2>/dev/null && echo remounted; \
         umount /proc/sys 2>/dev/null && echo unmounted; \
         head -c 16 /proc/kcore 2>/dev/null | wc -c; cat /proc/keys /proc/kallsyms 2>/dev/null | wc -c",
    );
    let stdout = text(&out.stdout);
    for bad in ["wrote", "remounted", "unmounted"] {
        assert!(!stdout.contains(bad), "{stdout}");
    }
    assert_eq!(lines(&out.stdout), ["0", "0"], "{stdout}");
}

#[test]
fn init_cannot_be_reached_from_the_command() {
    // Init holds full capabilities in the sandbox's user namespace: reaching it would undo
    // every mount-based protection.
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "cat /proc/1/environ >/dev/null 2>&1 && echo 'read environ'; \
         readlink /proc/1/fd/0 /proc/1/cwd >/dev/null 2>&1 && echo 'read fds'; \
         head -c 1 /proc/1/maps >/dev/null 2>&1 && echo 'read maps'; \
         ls /proc/1/root/ >/dev/null 2>&1 && echo 'entered root'; \
         kill -KILL 1; sleep 0.2; grep CapEff /proc/1/status",
    );
    let stdout = text(&out.stdout);
    for bad in ["read", "entered"] {
        assert!(!stdout.contains(bad), "{stdout}");
    }
    // Init survived SIGKILL from inside and is still privileged (so the checks above were
    // meaningful).
    assert!(
        stdout.contains("CapEff:") && !stdout.contains("0000000000000000"),
        "{stdout}"
    );
}

#[test]
fn nested_user_namespaces_are_refused() {
    // A nested user namespace would give the command every capability over new namespaces
    // (fresh /proc, mounts): the way around the read-only /proc/sys and masks.
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "unshare -U true && echo 'userns created'; \
         unshare -Urmpf --mount-proc sh -c 'echo 0 > /proc/sys/kernel/printk_ratelimit' \
           && echo 'proc remounted'; cat /proc/sys/user/max_user_namespaces",
    );
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("created") && !stdout.contains("remounted"),
        "{stdout}"
    );
    assert_eq!(lines(&out.stdout), ["0"]);
}

#[test]
fn mounting_fails() {
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        "mkdir /tmp/x && mount -t tmpfs none /tmp/x; echo rc=$?; grep -c ' /tmp/x ' /proc/self/mounts",
    );
    let l = lines(&out.stdout);
    assert_ne!(l[0], "rc=0", "{}", text(&out.stderr));
    assert_eq!(l[1], "0");
}

// ---------------------------------------------------------------- skill trees and workspace access

/// A skill tree on the host: `SKILL.md` and an executable `scripts/run.sh`.
fn skill_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("SKILL.md"),
        "---\nname: weather\n---\nSay hi.\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    let script = dir.path().join("scripts/run.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"forecast for $1 from $(pwd)\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn with_skill(ws: &Path, skill: &Path) -> Profile {
    let mut p = profile(ws);
    p.ro_binds = vec![RoBind {
        source: skill.to_path_buf(),
        target: "/skills/weather".into(),
    }];
    p
}

/// Every entry beneath `dir` with its type, mode, size, mtime and contents or link target.
fn snapshot(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let body = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if m.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                text(&std::fs::read(&path).unwrap())
            };
            out.insert(format!(
                "{} {:o} {} {:?} {body}",
                path.display(),
                m.permissions().mode(),
                m.len(),
                m.modified().unwrap()
            ));
        }
    }
    out
}

#[test]
fn a_skill_tree_is_readable_and_its_scripts_run_from_it() {
    let ws = tempfile::tempdir().unwrap();
    let skill = skill_tree();
    let p = with_skill(ws.path(), skill.path());
    let out = bash_in(
        &p,
        "cat /skills/weather/SKILL.md; /skills/weather/scripts/run.sh Oslo; \
         cd /skills/weather && ./scripts/run.sh Bergen; ls /skills",
    );
    assert_eq!(
        lines(&out.stdout),
        [
            "---",
            "name: weather",
            "---",
            "Say hi.",
            "forecast for Oslo from /workspace",
            "forecast for Bergen from /skills/weather",
            "weather",
        ],
        "{}",
        text(&out.stderr)
    );
    // The script runs as the command's program too, with cwd inside the tree.
    let mut r = req(&["/skills/weather/scripts/run.sh", "Tromsø"]);
    r.cwd = Some("/skills/weather".into());
    let out = run_in(&p, &r).unwrap();
    assert_eq!(
        text(&out.stdout),
        "forecast for Tromsø from /skills/weather\n"
    );
}

/// A shell command making one raw x86_64 syscall through perl: `strs` (passed as
/// pointers), then `ints`; it fails with the errno's text.
fn perl_syscall(nr: u32, strs: &[&str], ints: &[u64]) -> String {
    let quoted: Vec<String> = strs.iter().map(|s| format!("\"{s}\"")).collect();
    let mut args: Vec<String> = (0..strs.len()).map(|i| format!("$s[{i}]")).collect();
    args.extend(ints.iter().map(u64::to_string));
    format!(
        "perl -e 'my @s = ({}); syscall({nr}, {}) == -1 and die \"$!\\n\"'",
        quoted.join(", "),
        args.join(", ")
    )
}

#[test]
fn attack_a_skill_tree_cannot_be_changed_from_inside() {
    let ws = tempfile::tempdir().unwrap();
    let skill = skill_tree();
    // The caller can write the host tree: only the sandbox stands in the way.
    assert!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(skill.path().join("SKILL.md"))
            .is_ok()
    );
    let before = snapshot(skill.path());
    let s = "/skills/weather";
    let attempts = [
        ("overwrite", format!("echo pwned > {s}/SKILL.md")),
        ("append", format!("echo pwned >> {s}/scripts/run.sh")),
        ("truncate", format!("truncate -s 0 {s}/SKILL.md")),
        ("create", format!("echo x > {s}/new")),
        ("mkdir", format!("mkdir {s}/newdir")),
        ("chmod file", format!("chmod 4777 {s}/scripts/run.sh")),
        ("chmod dir", format!("chmod 777 {s}")),
        ("chown", format!("chown 1000:1000 {s}/SKILL.md")),
        ("touch", format!("touch -d 2001-01-01 {s}/SKILL.md")),
        ("rename", format!("mv {s}/SKILL.md {s}/moved")),
        ("rename out", format!("mv {s}/SKILL.md /tmp/moved")),
        ("unlink", format!("rm -f {s}/SKILL.md")),
        ("rmdir", format!("rm -rf {s}/scripts")),
        ("hard link", format!("ln {s}/SKILL.md {s}/hard")),
        ("symlink", format!("ln -s /tmp {s}/sym")),
        ("new skill", "mkdir /skills/evil".to_owned()),
        ("replace skill", format!("mv {s} /skills/other")),
        // The syscalls themselves (mount(8) refuses uid 1000 before asking the kernel):
        // mount(MS_REMOUNT|MS_BIND) without MS_RDONLY, umount2(MNT_DETACH), mount(MS_BIND).
        (
            "remount",
            perl_syscall(165, &["none", s, "none"], &[0x1020, 0]),
        ),
        ("unmount", perl_syscall(166, &[s], &[2])),
        (
            "over-mount",
            perl_syscall(165, &["/tmp", s, "none"], &[0x1000, 0]),
        ),
    ];
    let script: String = attempts
        .iter()
        .map(|(name, cmd)| {
            format!(
                "if ({cmd}) 2>/tmp/err; then echo 'CHANGED {name}'; \
                 else echo \"refused {name}: $(head -n1 /tmp/err)\"; fi\n"
            )
        })
        .collect();
    let out = bash_in(&with_skill(ws.path(), skill.path()), &script);
    let stdout = text(&out.stdout);
    let got = lines(&out.stdout);
    assert_eq!(got.len(), attempts.len(), "{stdout}{}", text(&out.stderr));
    for ((name, _), line) in attempts.iter().zip(&got) {
        assert!(line.starts_with(&format!("refused {name}: ")), "{stdout}");
        assert!(
            [
                "Read-only file system",
                "Permission denied",
                "Operation not permitted"
            ]
            .iter()
            .any(|e| line.contains(e)),
            "{name} failed for another reason: {line}"
        );
    }
    assert_eq!(snapshot(skill.path()), before, "the host tree changed");
}

#[test]
fn attack_symlinks_in_a_skill_tree_resolve_inside_the_sandbox() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("in-ws"), "WS-CONTENT").unwrap();
    let (_state, secret) = support::world_readable_secret("TOPSECRET-SKILL-LINK");
    let skill = skill_tree();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let links = [
        ("shadow", PathBuf::from("/etc/shadow")),
        ("secret", secret.clone()),
        ("home", PathBuf::from(&home)),
        ("ws", ws.path().join("in-ws")),
        ("up", PathBuf::from("../../../../../..")),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, skill.path().join(name)).unwrap();
    }
    // On the host the links lead out; the caller can follow the secret one.
    assert_eq!(
        std::fs::read_to_string(skill.path().join("secret")).unwrap(),
        "TOPSECRET-SKILL-LINK"
    );
    let out = bash_in(
        &with_skill(ws.path(), skill.path()),
        "s=/skills/weather; for f in shadow secret ws up/etc/shadow; do \
           cat $s/$f 2>/dev/null && echo \"READ $f\"; done; \
         ls -A $s/home/ 2>/dev/null && echo 'LISTED home'; \
         readlink -f $s/up; readlink -f $s/ws; echo end",
    );
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("READ") && !stdout.contains("LISTED"),
        "{stdout}"
    );
    for leaked in ["TOPSECRET", "WS-CONTENT", "root:"] {
        assert!(!stdout.contains(leaked), "{leaked} leaked: {stdout}");
    }
    // `..` stops at the sandbox's root; the host workspace path means nothing inside.
    let l = lines(&out.stdout);
    assert_eq!(l[0], "/", "{stdout}");
    assert_eq!(l.last().map(String::as_str), Some("end"));
}

#[test]
fn ro_bind_targets_outside_skills_are_refused_naming_them() {
    let ws = tempfile::tempdir().unwrap();
    let skill = skill_tree();
    let sandboxes: [&dyn Sandbox; 2] = [&NativeSandbox::new(), &HostSandbox::new()];
    for bad in [
        "/etc",
        "/usr/bin",
        "/workspace",
        "/skills",
        "/skills/../etc",
        "/skills/a/../../etc",
        "/skills/./a",
        "/skills/a/b",
        "/skills//a",
        "skills/a",
        "/tmp/skills/a",
    ] {
        let mut p = with_skill(ws.path(), skill.path());
        p.ro_binds[0].target = bad.into();
        for sb in sandboxes {
            match sb.start(&p) {
                Err(SandboxError::Invalid(m)) => assert!(
                    m.contains("ro_binds[0].target") && m.contains(&format!("{bad:?}")),
                    "{bad}: {m}"
                ),
                Err(e) => panic!("{bad}: wrong error {e}"),
                Ok(_) => panic!("{} accepted target {bad}", sb.backend()),
            }
        }
        let e = NativeSandbox::new().explain(&p);
        assert!(
            e.warnings.iter().any(|w| w.contains("ro_binds[0].target")),
            "{:?}",
            e.warnings
        );
        assert!(!e.mounts.iter().any(|m| m.path == bad));
    }
    let mut p = with_skill(ws.path(), skill.path());
    p.ro_binds.push(p.ro_binds[0].clone());
    let err = NativeSandbox::new()
        .start(&p)
        .err()
        .expect("duplicate refused");
    assert!(err.to_string().contains("ro_binds[1].target"), "{err}");
    for source in [skill.path().join("missing"), skill.path().join("SKILL.md")] {
        let mut p = with_skill(ws.path(), skill.path());
        p.ro_binds[0].source = source;
        let err = NativeSandbox::new()
            .start(&p)
            .err()
            .expect("bad source refused");
        assert!(err.to_string().contains("ro_binds[0].source"), "{err}");
    }
    // `none` runs on the host: it has nowhere to mount a skill and says so.
    let err = HostSandbox::new()
        .start(&with_skill(ws.path(), skill.path()))
        .err()
        .expect("the host backend cannot bind");
    assert!(err.to_string().contains("ro_binds[0]"), "{err}");
}

#[test]
fn without_a_workspace_the_host_workspace_is_invisible() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("in-ws"), "WS-CONTENT").unwrap();
    // mountinfo names a bind's directory within its filesystem: the workspace's own name.
    let ws_name = ws
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let script = format!(
        "pwd; ls -A /workspace | wc -l; cat /workspace/in-ws 2>/dev/null; \
         echo x > /workspace/new 2>/dev/null && echo WROTE; \
         mkdir /workspace/d 2>/dev/null && echo MADE; \
         grep -qF '{ws_name}' /proc/self/mountinfo && echo HOST-PATH; echo end"
    );
    let mut p = profile(ws.path());
    p.workspace_access = WorkspaceAccess::Read;
    let read = text(&bash_in(&p, &script).stdout);
    // Control: with read access the same probes see the workspace.
    assert_eq!(read, "/workspace\n1\nWS-CONTENTHOST-PATH\nend\n");

    p.workspace_access = WorkspaceAccess::None;
    let out = bash_in(&p, &script);
    assert_eq!(
        text(&out.stdout),
        "/workspace\n0\nend\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(ws.path()).unwrap().count(),
        1,
        "something was created in the host workspace"
    );
    let e = NativeSandbox::new().explain(&p);
    let view = e.mounts.iter().find(|m| m.path == "/workspace").unwrap();
    assert_eq!(view.access, Access::ReadOnly);
    assert!(!view.source.contains(&ws_name), "{view:?}");
}

/// Re-runs the skill-tree and workspace-access tests as uid 65534 when this suite runs as
/// root: the caller then owns the skill files, so only the mounts keep them read-only.
#[test]
fn unprivileged_caller_gets_read_only_skills_and_no_workspace() {
    if let Some(run) = support::NobodyRun::prepare() {
        run.run("unprivileged_skills_inner", &[]);
    }
}

#[test]
#[ignore = "run by unprivileged_caller_gets_read_only_skills_and_no_workspace under setpriv"]
fn unprivileged_skills_inner() {
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    a_skill_tree_is_readable_and_its_scripts_run_from_it();
    attack_a_skill_tree_cannot_be_changed_from_inside();
    attack_symlinks_in_a_skill_tree_resolve_inside_the_sandbox();
    ro_bind_targets_outside_skills_are_refused_naming_them();
    without_a_workspace_the_host_workspace_is_invisible();
}

// ---------------------------------------------------------------- network

#[test]
fn host_loopback_is_unreachable_but_sandbox_loopback_is_up() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        ws.path(),
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected; echo rc=$?"),
    );
    assert!(
        !text(&out.stdout).contains("connected"),
        "{}",
        text(&out.stdout)
    );
    // lo is up inside: the port is simply closed there ("refused"), not "unreachable".
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host listener got a connection: {other:?}"),
    }
    let out = bash(
        ws.path(),
        "ls /proc/self/net/dev >/dev/null; tail -n +3 /proc/net/dev | cut -d: -f1",
    );
    assert_eq!(
        lines(&out.stdout)
            .iter()
            .map(|s| s.trim())
            .collect::<Vec<_>>(),
        ["lo"]
    );
}

// ---------------------------------------------------------------- deadline and limits

#[test]
fn deadline_kills_a_tree_that_ignores_sigterm_and_double_forks() {
    let ws = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let marker = format!("1000.{}{}", std::process::id(), nanos);
    let script = format!("trap '' TERM; (sleep {marker} &) ; sleep {marker}");
    let mut r = req(&["sh", "-c", &script]);
    r.timeout = Duration::from_millis(700);
    let started = Instant::now();
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.duration >= Duration::from_millis(700));
    assert_eq!(host_processes_with(&marker), Vec::<u32>::new());
}

fn host_processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn output_beyond_the_limit_is_dropped_and_counted() {
    let ws = tempfile::tempdir().unwrap();
    let mut r = req(&["bash", "-c", "yes | head -c 10M; yes | head -c 5000 >&2"]);
    r.output_limit = 1000;
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stdout_dropped, 10 * 1024 * 1024 - 1000);
    assert_eq!(out.stderr.len(), 1000);
    assert_eq!(out.stderr_dropped, 4000);
    assert!(out.stdout.starts_with(b"y\ny\n"));
}

#[test]
fn rlimits_take_effect() {
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.limits = Limits {
        max_processes: 123,
        max_open_files: 77,
        max_file_size: 1 << 20,
        max_cpu_secs: 33,
        max_memory: 1 << 30,
        tmp_size: 4 << 20,
        ..Limits::default()
    };
    let out = bash_in(
        &p,
        "ulimit -n; ulimit -Hn; ulimit -u; ulimit -f; ulimit -t; ulimit -d; ulimit -c; ulimit -Hc",
    );
    assert_eq!(
        lines(&out.stdout),
        ["77", "77", "123", "1024", "33", "1048576", "0", "0"]
    );
    // The limits are enforced, not just reported.
    let out = bash_in(
        &p,
        "(head -c 3M /dev/zero > /tmp/big) 2>/dev/null; stat -c %s /tmp/big; \
         ulimit -n 1000 2>/dev/null && echo raised",
    );
    assert_eq!(lines(&out.stdout), ["1048576"]);
}

/// Runs a fork bomb under max_processes = 10 and checks that it was stopped.
fn assert_fork_bomb_is_stopped(ws: &Path) {
    let mut p = profile(ws);
    p.limits.max_processes = 10;
    let script = "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done; echo all-started";
    let mut r = req(&["sh", "-c", script]);
    r.timeout = Duration::from_secs(10);
    let out = run_in(&p, &r).unwrap();
    assert!(
        !text(&out.stdout).contains("all-started"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("fork"), "{}", text(&out.stderr));
    assert_ne!(out.status, ExitStatus::TimedOut);
}

#[test]
fn process_limit_stops_a_fork_bomb() {
    if euid() == 0 {
        // The kernel exempts processes whose real uid is host root from RLIMIT_NPROC, and
        // inner 1000 maps to the caller. unprivileged_inner runs this attack as uid 65534.
        eprintln!("as host root RLIMIT_NPROC is not enforced; checked in unprivileged_inner");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    assert_fork_bomb_is_stopped(ws.path());
}

#[test]
fn leftover_background_processes_die_with_the_command() {
    let ws = tempfile::tempdir().unwrap();
    let marker = format!("2000.{}", std::process::id());
    let mut r = req(&[
        "bash",
        "-c",
        &format!("(sleep {marker} &); sleep {marker} & echo done"),
    ]);
    r.timeout = Duration::from_secs(20);
    let started = Instant::now();
    let out = run_in(&profile(ws.path()), &r).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(text(&out.stdout), "done\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(host_processes_with(&marker), Vec::<u32>::new());
}

#[test]
fn a_lower_host_hard_limit_wins_over_the_profile() {
    // Asking more than the host's hard limit gives the host's limit (stricter), not an
    // error: raising a hard limit needs CAP_SYS_RESOURCE in the initial namespace.
    let ws = tempfile::tempdir().unwrap();
    let host_hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap();
    let mut p = profile(ws.path());
    p.limits.max_open_files = u64::MAX - 1;
    let out = bash_in(&p, "ulimit -Hn");
    let want = if host_hard == "unlimited" {
        "unlimited".to_owned()
    } else {
        host_hard
    };
    assert_eq!(text(&out.stdout).trim(), want);
}

#[test]
fn tmp_is_capped_at_tmp_size() {
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.limits.tmp_size = 1 << 20;
    let out = bash_in(
        &p,
        "head -c 3M /dev/zero > /tmp/f; echo rc=$?; stat -c %s /tmp/f",
    );
    let l = lines(&out.stdout);
    assert_ne!(l[0], "rc=0");
    assert!(l[1].parse::<u64>().unwrap() <= 1 << 20, "{l:?}");
    assert!(
        text(&out.stderr).contains("No space left"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn many_sandboxes_in_parallel_from_a_multithreaded_parent() {
    let ws = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let p = profile(ws.path());
                s.spawn(move || {
                    let mut sb = NativeSandbox::new().start(&p).unwrap();
                    for j in 0..5 {
                        let out = sb.exec(&req(&["echo", &format!("{i}-{j}")])).unwrap();
                        assert_eq!(text(&out.stdout), format!("{i}-{j}\n"));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn clone_is_safe_while_other_threads_allocate() {
    // If the child allocated or took a lock between clone and exec, a copy of an allocator
    // lock held by one of these threads would deadlock it sooner or later (-> TimedOut).
    let ws = tempfile::tempdir().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut keep = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    keep.push(vec![0u8; 4096]);
                    if keep.len() > 256 {
                        keep.clear();
                    }
                }
            });
        }
        let mut sb = NativeSandbox::new().start(&profile(ws.path())).unwrap();
        for i in 0..40 {
            let mut r = req(&["echo", "alive"]);
            r.timeout = Duration::from_secs(10);
            let out = sb.exec(&r).unwrap();
            assert_eq!(out.status, ExitStatus::Exited(0), "run {i}");
            assert_eq!(text(&out.stdout), "alive\n");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn a_long_sandbox_does_not_hold_up_a_short_one() {
    // A sandbox cloned while another's pipes are open must not keep copies of them: the
    // short one would then wait for the long one to end before seeing EOF.
    let ws = tempfile::tempdir().unwrap();
    let p = profile(ws.path());
    std::thread::scope(|s| {
        let short = s.spawn(|| {
            let mut sb = NativeSandbox::new().start(&p).unwrap();
            let mut slowest = Duration::ZERO;
            for _ in 0..12 {
                // Our stdin pipe stays open while the command sleeps (1 MiB > pipe buffer).
                let mut r = req(&["sh", "-c", "sleep 0.1; wc -c"]);
                r.stdin = vec![b'x'; 1 << 20];
                let out = sb.exec(&r).unwrap();
                assert_eq!(text(&out.stdout).trim(), "1048576");
                slowest = slowest.max(out.duration);
            }
            slowest
        });
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(70));
            s.spawn(|| {
                let mut r = req(&["sleep", "4"]);
                r.timeout = Duration::from_secs(10);
                NativeSandbox::new().start(&p).unwrap().exec(&r).unwrap();
            });
        }
        let slowest = short.join().unwrap();
        assert!(
            slowest < Duration::from_secs(2),
            "a short run took {slowest:?}"
        );
    });
}

// ---------------------------------------------------------------- unprivileged caller

const INNER_WS: &str = "CORDON_SANDBOX_TEST_WS";
const INNER_SECRET: &str = "CORDON_SANDBOX_TEST_SECRET";

/// Re-runs `unprivileged_inner` as uid 65534 when this suite runs as root.
#[test]
fn unprivileged_caller_gets_the_same_isolation() {
    let Some(run) = support::NobodyRun::prepare() else {
        return;
    };
    let ws = run.owned_dir("ws");
    let (_state, secret) = support::world_readable_secret("TOPSECRET-UNPRIV");
    run.run(
        "unprivileged_inner",
        &[
            (INNER_WS, ws.as_os_str()),
            (INNER_SECRET, secret.as_os_str()),
        ],
    );
}

#[test]
#[ignore = "run by unprivileged_caller_gets_the_same_isolation under setpriv"]
fn unprivileged_inner() {
    let ws =
        std::env::var(INNER_WS).expect("run through unprivileged_caller_gets_the_same_isolation");
    let secret = std::env::var(INNER_SECRET).unwrap();
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    // The host can read the secret as this user; the sandbox must not.
    assert!(
        std::fs::read_to_string(&secret)
            .unwrap()
            .contains("TOPSECRET")
    );
    let out = bash(
        Path::new(&ws),
        &format!(
            "id -u; grep -E '^(CapEff|CapBnd)' /proc/self/status; cat {secret}; \
             echo x > /workspace/made-inside && echo wrote-ws; echo x > /usr/x && echo wrote-usr; \
             ls /proc | grep -c '^[0-9]'"
        ),
    );
    let stdout = text(&out.stdout);
    let l = lines(&out.stdout);
    assert_eq!(l[0], "1000");
    assert!(
        l[1].ends_with("0000000000000000") && l[2].ends_with("0000000000000000"),
        "{stdout}"
    );
    assert!(!stdout.contains("TOPSECRET"));
    assert!(
        stdout.contains("wrote-ws") && !stdout.contains("wrote-usr"),
        "{stdout}"
    );
    assert!(l.last().unwrap().parse::<u32>().unwrap() < 10, "{stdout}");
    let mut r = req(&["sh", "-c", "trap '' TERM; (sleep 977 &); sleep 977"]);
    r.timeout = Duration::from_millis(300);
    let out = run_in(&profile(Path::new(&ws)), &r).unwrap();
    assert_eq!(out.status, ExitStatus::TimedOut);
    assert_fork_bomb_is_stopped(Path::new(&ws));
}

#[test]
fn extra_etc_files_are_visible_read_only_and_names_are_checked() {
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.etc_files = vec![(
        "cordon-ca.pem".into(),
        b"-----BEGIN CERTIFICATE-----\n".to_vec(),
    )];
    let out = bash_in(
        &p,
        "cat /etc/cordon-ca.pem; echo x > /etc/cordon-ca.pem && echo WROTE",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-----BEGIN CERTIFICATE-----\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));
    for bad in ["passwd", "ssl", "../x", "a/b", "", ".."] {
        let mut p = profile(ws.path());
        p.etc_files = vec![(bad.into(), b"x".to_vec())];
        let err = NativeSandbox::new().start(&p).err().expect("refused");
        assert!(matches!(err, SandboxError::Invalid(_)), "{bad}: {err}");
    }
}
