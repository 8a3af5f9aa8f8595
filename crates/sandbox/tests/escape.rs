//! The escape suite: each test is a real attack run as a real process in the real native
//! sandbox, and asserts that it failed *and* why (the errno text the attacker saw), and,
//! where it applies, that its effect is absent on the host.
//!
//! As root, `unprivileged_caller_cannot_escape_either` re-runs the important attacks as
//! uid 65534 through `setpriv`.

mod support;

use support::euid;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cordon_sandbox::{
    ExecOutput, ExecRequest, ExitStatus, Limits, NativeSandbox, Profile, Sandbox,
};

fn profile(ws: &Path) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: cordon_sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ],
        limits: Limits::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

fn run_with(p: &Profile, timeout: Duration, argv: &[&str]) -> ExecOutput {
    let req = ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        stdin: Vec::new(),
        timeout,
        output_limit: 1 << 20,
    };
    NativeSandbox::new()
        .start(p)
        .expect("sandbox starts")
        .exec(&req)
        .expect("the command runs")
}

/// Runs `script` with bash in a sandbox of `p`; returns stdout + stderr as one text.
fn bash_in(p: &Profile, script: &str) -> (ExecOutput, String) {
    let out = run_with(p, Duration::from_secs(30), &["bash", "-c", script]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out, all)
}

fn bash(ws: &Path, script: &str) -> String {
    bash_in(&profile(ws), script).1
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_has(all: &str, needle: &str) {
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
}

// -------------------------------------------------------------------- reading host files

fn attack_read_host_secrets(ws: &Path, state_secret: &Path) {
    let all = bash(
        ws,
        &format!(
            "cat /etc/shadow; ls /home; ls /root; cat {}; echo end",
            state_secret.display()
        ),
    );
    assert!(
        !all.contains("TOPSECRET") && !all.contains("root:"),
        "{all}"
    );
    assert_eq!(
        all.matches("No such file or directory").count(),
        4,
        "each read must fail with ENOENT:\n{all}"
    );
}

#[test]
fn host_secrets_home_root_and_state_dir_are_unreadable() {
    let ws = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("secret");
    std::fs::write(&secret, "TOPSECRET-STATE").unwrap();
    attack_read_host_secrets(ws.path(), &secret);
}

fn attack_proc_of_init_and_host(ws: &Path) {
    let host_pid = std::process::id();
    let all = bash(
        ws,
        &format!(
            "cat /proc/1/environ; cat /proc/1/mem; ls /proc/{host_pid}/; \
             echo count=$(ls /proc | grep -c '^[0-9]')"
        ),
    );
    assert_eq!(
        all.matches("Permission denied").count(),
        2,
        "init's environ and mem must be refused:\n{all}"
    );
    assert_has(
        &all,
        &format!("/proc/{host_pid}/': No such file or directory"),
    );
    let count: u32 = all
        .lines()
        .find_map(|l| l.strip_prefix("count="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(count < 10, "only sandbox pids are visible:\n{all}");
}

#[test]
fn proc_of_init_and_of_host_processes_is_out_of_reach() {
    let ws = tempfile::tempdir().unwrap();
    attack_proc_of_init_and_host(ws.path());
}

// -------------------------------------------------------------------- writing outside

fn attack_write_outside(ws: &Path) {
    let all = bash(
        ws,
        "echo x > /usr/x; echo x > /etc/x; echo x > /x; echo x > /proc/x; echo x > /dev/x; \
         echo x > /workspace/ok && echo wrote-ws",
    );
    assert_eq!(
        all.matches("Read-only file system").count(),
        4,
        "/usr, /etc, / and /dev are read-only:\n{all}"
    );
    assert_has(&all, "/proc/x: No such file or directory");
    assert_has(&all, "/dev/x: Read-only file system");
    assert_has(&all, "wrote-ws");
}

#[test]
fn writes_outside_the_workspace_fail() {
    let ws = tempfile::tempdir().unwrap();
    attack_write_outside(ws.path());
    assert!(!Path::new("/x").exists() && !Path::new("/usr/x").exists());
}

#[test]
fn a_symlink_planted_in_the_workspace_resolves_inside_the_sandbox() {
    let ws = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("secret");
    std::fs::write(&secret, "TOPSECRET-LINK").unwrap();
    std::os::unix::fs::symlink("/", ws.path().join("root")).unwrap();
    std::os::unix::fs::symlink(&secret, ws.path().join("secret")).unwrap();
    let all = bash(
        ws.path(),
        "cat /workspace/root/etc/shadow; ls /workspace/root/home; cat /workspace/secret; \
         echo x > /workspace/root/usr/planted",
    );
    assert!(!all.contains("TOPSECRET"), "{all}");
    assert_eq!(all.matches("No such file or directory").count(), 3, "{all}");
    assert_has(&all, "/workspace/root/usr/planted: Read-only file system");
    assert!(!Path::new("/usr/planted").exists());
}

fn attack_hardlinks(ws: &Path) {
    let all = bash(
        ws,
        "ln /etc/passwd /workspace/passwd; ln /usr/bin/su /workspace/su; \
         ln /etc/hostname /tmp/h; ls /workspace",
    );
    assert_eq!(
        all.matches("Invalid cross-device link").count(),
        3,
        "hard links across mounts fail with EXDEV:\n{all}"
    );
    assert!(!all.contains("passwd\n") && !all.contains("su\n"), "{all}");
}

#[test]
fn hardlinks_to_files_outside_the_workspace_fail() {
    let ws = tempfile::tempdir().unwrap();
    attack_hardlinks(ws.path());
}

/// Landlock as the second layer: places the mounts leave writable or listable that the
/// rules still refuse. Skipped (with a message) on kernels without Landlock.
#[test]
fn landlock_refuses_what_the_mounts_alone_would_allow() {
    let ws = tempfile::tempdir().unwrap();
    attack_past_the_mounts(ws.path());
}

fn attack_past_the_mounts(ws: &Path) {
    let e = NativeSandbox::new().explain(&profile(ws));
    if !e.layers.iter().any(|l| l.layer == "landlock" && l.active) {
        eprintln!("SKIPPED: no Landlock in this kernel");
        return;
    }
    // /proc is a read-write procfs mount and the command owns /proc/self/comm; `/` is a
    // tmpfs the mounts let anyone list.
    let all = bash(
        ws,
        "echo pwned > /proc/self/comm; cat /proc/self/comm; ls /; ls /workspace && echo ws-ok",
    );
    assert_has(&all, "/proc/self/comm: Permission denied");
    assert_has(&all, "ls: cannot open directory '/': Permission denied");
    assert!(!all.contains("pwned"), "{all}");
    assert_has(&all, "ws-ok");
}

/// Nothing of the host's mount tree is reachable from the sandbox's root: no `/oldroot`
/// (where the host root hung during set-up), `..` of `/` is `/`, every mount point lies in
/// the sandbox's own layout, and none of the host's other mount points (this test
/// process's `/proc/self/mountinfo`) appears.
fn attack_find_the_host_root(ws: &Path) {
    let all = bash(
        ws,
        "cut -d' ' -f5 /proc/self/mountinfo; ls -d /oldroot 2>&1; cd / && cd .. && pwd && ls -d oldroot 2>&1",
    );
    assert_has(
        &all,
        "ls: cannot access '/oldroot': No such file or directory",
    );
    assert_has(
        &all,
        "ls: cannot access 'oldroot': No such file or directory",
    );
    let ours = [
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc",
        "/dev",
        "/proc",
        "/tmp",
        "/workspace",
        "/skills",
    ];
    let points: Vec<&str> = all.lines().filter(|l| l.starts_with('/')).collect();
    assert!(points.contains(&"/workspace"), "{all}");
    for point in &points {
        let inside = *point == "/"
            || ours
                .iter()
                .any(|o| point == o || point.starts_with(&format!("{o}/")));
        assert!(inside, "host mount {point} is still attached:\n{all}");
    }
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host_points: Vec<&str> = host.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    assert!(points.len() < host_points.len() + 40, "{all}");
    for p in host_points {
        if ours
            .iter()
            .any(|o| p == *o || p.starts_with(&format!("{o}/")))
            || p == "/"
        {
            continue;
        }
        assert!(
            !points.contains(&p),
            "host mount {p} visible in the sandbox:\n{all}"
        );
    }
}

#[test]
fn the_host_mount_tree_is_detached() {
    let ws = tempfile::tempdir().unwrap();
    attack_find_the_host_root(ws.path());
}

// -------------------------------------------------------------------- privileges

fn attack_mount_and_namespaces(ws: &Path) {
    let all = bash(
        ws,
        "perl -e 'my ($s, $t, $f) = (\"none\", \"/tmp\", \"tmpfs\"); \
         syscall(165, $s, $t, $f, 0, 0) == -1 and print \"mount: $!\\n\"'; \
         perl -e 'my $t = \"/proc\"; syscall(166, $t, 2) == -1 and print \"umount2: $!\\n\"'; \
         unshare -U true; unshare -m true; unshare -n true; \
         perl -e 'syscall(308, 0, 0x40000000) == -1 and print \"setns: $!\\n\"'",
    );
    assert_has(&all, "mount: Operation not permitted");
    assert_has(&all, "umount2: Operation not permitted");
    assert_eq!(
        all.matches("unshare failed: Operation not permitted")
            .count(),
        3,
        "{all}"
    );
    assert_has(&all, "setns: Operation not permitted");
}

#[test]
fn mount_and_new_namespaces_are_refused() {
    let ws = tempfile::tempdir().unwrap();
    attack_mount_and_namespaces(ws.path());
}

fn attack_ptrace_sibling(ws: &Path) {
    let all = bash(
        ws,
        "sleep 30 & pid=$!; \
         perl -e \"syscall(101, 16, $pid, 0, 0) == -1 and print \\\"ptrace: \\$!\\n\\\"\"; \
         strace -p $pid -e trace=none 2>&1 | head -1; \
         perl -e \"syscall(310, $pid, 0, 0, 0, 0, 0) == -1 and print \\\"process_vm_readv: \\$!\\n\\\"\"; \
         kill $pid",
    );
    assert_has(&all, "ptrace: Operation not permitted");
    assert_has(&all, "Operation not permitted"); // strace's attach
    assert!(all.matches("Operation not permitted").count() >= 3, "{all}");
    assert_has(&all, "process_vm_readv: Operation not permitted");
}

#[test]
fn ptrace_of_a_sibling_is_refused() {
    let ws = tempfile::tempdir().unwrap();
    attack_ptrace_sibling(ws.path());
}

#[test]
fn a_setuid_binary_gains_nothing() {
    let ws = tempfile::tempdir().unwrap();
    let all = bash(
        ws.path(),
        "su root -c 'id -u > /workspace/su-ran' < /dev/null; echo rc=$?; \
         grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status",
    );
    assert!(!ws.path().join("su-ran").exists(), "{all}");
    assert!(!all.contains("rc=0"), "{all}");
    assert_has(&all, "CapEff:\t0000000000000000");
    assert_has(&all, "NoNewPrivs:\t1");
}

#[test]
fn kernel_attack_surface_syscalls_are_filtered() {
    let ws = tempfile::tempdir().unwrap();
    // Without the filter these would fail differently (ENOTTY, EFAULT, EINVAL) or succeed.
    let all = bash(
        ws.path(),
        "perl -e 'my $c = \"x\"; ioctl(STDIN, 0x5412, $c) or print \"tiocsti: $!\\n\"' < /dev/null; \
         perl -e 'syscall(435, 0, 0) == -1 and print \"clone3: $!\\n\"'; \
         perl -e 'syscall(250, 0, -1, 0, 0, 0) == -1 and print \"keyctl: $!\\n\"'; \
         perl -e 'syscall(321, 0, 0, 0) == -1 and print \"bpf: $!\\n\"'; \
         perl -e 'syscall(323, 0) == -1 and print \"userfaultfd: $!\\n\"'; \
         perl -e 'syscall(425, 1, 0) == -1 and print \"io_uring_setup: $!\\n\"'; \
         setarch x86_64 -R true; \
         perl -e 'syscall(135, 0xffffffff) >= 0 and print \"query ok\\n\"'; \
         grep -E '^Seccomp' /proc/self/status",
    );
    assert_has(&all, "tiocsti: Operation not permitted");
    assert_has(&all, "clone3: Function not implemented");
    assert_has(&all, "keyctl: Operation not permitted");
    assert_has(&all, "bpf: Operation not permitted");
    assert_has(&all, "userfaultfd: Operation not permitted");
    // Unfiltered, io_uring_setup(1, NULL) fails with EFAULT (io_uring_disabled = 0 here).
    assert_has(&all, "io_uring_setup: Operation not permitted");
    assert_has(&all, "Operation not permitted"); // setarch's personality(ADDR_NO_RANDOMIZE)
    assert_has(&all, "query ok");
    assert_has(&all, "Seccomp:\t2");
}

// -------------------------------------------------------------------- network

fn attack_sockets_and_network(ws: &Path, host_port: u16) {
    let all = bash(
        ws,
        &format!(
            "perl -MSocket -e 'socket(S, PF_INET, SOCK_RAW, 1) or print \"raw: $!\\n\"'; \
             perl -MSocket -e 'socket(S, 17, SOCK_RAW, 0) or print \"packet: $!\\n\"'; \
             perl -MSocket -e 'socket(S, PF_INET, 10, 0) or print \"sock_packet: $!\\n\"'; \
             perl -MSocket -e 'socket(S, PF_NETLINK, SOCK_RAW, 9) or print \"audit: $!\\n\"'; \
             perl -MSocket -e 'socket(S, PF_INET, SOCK_STREAM, 0) and print \"tcp socket ok\\n\"'; \
             exec 3<>/dev/tcp/127.0.0.1/{host_port} && echo reached-host-loopback; \
             timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.169.254/80' && echo reached-metadata; \
             timeout 5 bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' && echo reached-test-net; \
             echo end"
        ),
    );
    assert_has(&all, "raw: Operation not permitted");
    assert_has(&all, "packet: Operation not permitted");
    assert_has(&all, "sock_packet: Operation not permitted");
    assert_has(&all, "audit: Operation not permitted");
    assert_has(&all, "tcp socket ok");
    assert!(!all.contains("reached"), "{all}");
    assert_has(&all, "Connection refused");
    assert_has(&all, "/dev/tcp/169.254.169.254/80: Network is unreachable");
    assert_has(&all, "/dev/tcp/192.0.2.1/80: Network is unreachable");
}

#[test]
fn raw_sockets_and_the_outside_network_are_out_of_reach() {
    let ws = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    attack_sockets_and_network(ws.path(), port);
    assert!(
        listener.accept().is_err(),
        "nothing connected to the host service"
    );
}

// -------------------------------------------------------------------- resources

/// A fork bomb with a generous RLIMIT_NPROC: only the cgroup's pids.max can stop it when
/// the caller is root.
fn attack_fork_bomb(ws: &Path, rlimit: u64) {
    let mut p = profile(ws);
    p.limits.max_processes = rlimit;
    p.limits.cgroup_pids = 32;
    let script = "i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; echo all-started";
    let out = run_with(&p, Duration::from_secs(20), &["bash", "-c", script]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("all-started"), "{all}");
    assert_has(&all, "fork: retry: Resource temporarily unavailable");
    assert_ne!(out.status, ExitStatus::TimedOut);
    // The host still forks.
    assert!(Command::new("true").status().unwrap().success());
}

#[test]
fn a_fork_bomb_is_contained_even_for_host_root() {
    let ws = tempfile::tempdir().unwrap();
    let cgroup_layer = NativeSandbox::new()
        .explain(&profile(ws.path()))
        .layers
        .into_iter()
        .find(|l| l.layer == "cgroup")
        .unwrap();
    if euid() == 0 {
        assert!(
            cgroup_layer.active,
            "as root the cgroup must apply: {cgroup_layer:?}"
        );
        // RLIMIT_NPROC is not enforced for root: pids.max alone must stop it.
        attack_fork_bomb(ws.path(), 100_000);
    } else {
        attack_fork_bomb(ws.path(), 32);
    }
}

#[test]
fn a_memory_bomb_is_stopped_by_rlimit_data() {
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.limits.max_memory = 256 << 20;
    let (out, all) = bash_in(
        &p,
        "perl -e '$x = \"a\" x (1024*1024*1024); print \"survived\\n\"'; echo rc=$?",
    );
    assert!(!all.contains("survived"), "{all}");
    assert_has(&all, "Out of memory");
    assert!(out.status.success());
}

/// The memory limit bounds memory used, not address space reserved: a WebAssembly
/// instance in Node (V8 reserves about 10 GiB of inaccessible address space for its
/// memory) and Node's own `fetch` (whose HTTP parser is WebAssembly) work under the
/// default limits. Under a 4 GiB RLIMIT_AS both failed with "Out of memory".
#[test]
fn a_webassembly_runtime_works_under_the_default_memory_limit() {
    if !["/usr/bin/node", "/bin/node", "/usr/local/bin/node"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        eprintln!("SKIPPED: node is not installed (.ci/run installs npm, which brings it)");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let p = profile(ws.path());
    assert_eq!(p.limits.max_memory, Limits::default().max_memory);
    let out = run_with(
        &p,
        Duration::from_secs(60),
        &[
            "node",
            "-e",
            "WebAssembly.instantiate(new Uint8Array([0,97,115,109,1,0,0,0,5,3,1,0,1]))\
             .then(() => console.log('wasm ok'))\
             .then(() => fetch('data:text/plain,fetched'))\
             .then(r => r.text()).then(t => console.log(t))",
        ],
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout), "wasm ok\nfetched\n", "{all}");
    // Memory actually used is still bounded: a large allocation fails.
    let mut p = profile(ws.path());
    p.limits.max_memory = 256 << 20;
    let out = run_with(
        &p,
        Duration::from_secs(60),
        &[
            "node",
            "-e",
            "const b = []; for (let i = 0; i < 64; i++) b.push(Buffer.alloc(16 << 20, 1)); \
             console.log('survived')",
        ],
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("survived"), "{all}");
}

#[test]
fn a_memory_bomb_is_killed_by_the_cgroup_memory_limit() {
    let ws = tempfile::tempdir().unwrap();
    let mut p = profile(ws.path());
    p.limits.cgroup_memory = 64 << 20;
    let active = NativeSandbox::new()
        .explain(&p)
        .layers
        .iter()
        .any(|l| l.layer == "cgroup" && l.active);
    if !active {
        eprintln!("SKIPPED: no writable cgroup hierarchy (not root?)");
        return;
    }
    let out = run_with(
        &p,
        Duration::from_secs(30),
        &[
            "perl",
            "-e",
            "$x = \"a\" x (512*1024*1024); print \"survived\\n\"",
        ],
    );
    assert!(!text(&out.stdout).contains("survived"));
    assert_eq!(
        out.status,
        ExitStatus::Signaled(libc_sigkill()),
        "OOM-killed"
    );
}

fn libc_sigkill() -> i32 {
    9
}

fn attack_disk_limits(ws: &Path) {
    let mut p = profile(ws);
    p.limits.tmp_size = 8 << 20;
    let (_, all) = bash_in(
        &p,
        "head -c 20M /dev/zero > /tmp/big; head -c 20M /dev/zero > /dev/shm/big",
    );
    assert_eq!(
        all.matches("No space left on device").count(),
        2,
        "/tmp and /dev/shm are capped:\n{all}"
    );
    p.limits.max_file_size = 1 << 20;
    let (_, all) = bash_in(
        &p,
        "trap '' XFSZ; head -c 2M /dev/zero > /workspace/big; echo size=$(stat -c %s /workspace/big)",
    );
    assert_has(&all, "error writing 'standard output': File too large");
    assert_has(&all, "size=1048576");
}

#[test]
fn filling_tmp_or_writing_past_rlimit_fsize_fails() {
    let ws = tempfile::tempdir().unwrap();
    attack_disk_limits(ws.path());
}

fn host_processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| text(&c).replace('\0', " ").contains(marker))
                .unwrap_or(false)
        })
        .count()
}

fn attack_outlive_the_deadline(ws: &Path) {
    let out = run_with(
        &profile(ws),
        Duration::from_millis(500),
        &[
            "sh",
            "-c",
            "trap '' TERM; (sleep 9191 &); (setsid sleep 9191 &); sleep 9191",
        ],
    );
    assert_eq!(out.status, ExitStatus::TimedOut);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        host_processes_with("sleep 9191"),
        0,
        "nothing survives the deadline"
    );
}

#[test]
fn a_process_ignoring_sigterm_and_double_forking_dies_at_the_deadline() {
    let ws = tempfile::tempdir().unwrap();
    attack_outlive_the_deadline(ws.path());
}

// -------------------------------------------------------------------- no collateral damage

/// The layers stop attacks, not ordinary work: renames and links inside the workspace,
/// temp files, truncation, /dev/std* through /proc, name lookup, loopback servers.
#[test]
fn ordinary_work_still_works_under_every_layer() {
    let ws = tempfile::tempdir().unwrap();
    let all = bash(
        ws.path(),
        "echo via-stdout > /dev/stdout; echo x > /dev/null && echo devnull-ok; \
         mkdir -p /workspace/a/b && echo 1 > /workspace/a/f && \
         mv /workspace/a/f /workspace/a/b/g && echo rename-ok; \
         ln -s /workspace/a/b/g /workspace/l && ln /workspace/a/b/g /workspace/h && echo links-ok; \
         t=$(mktemp) && truncate -s 10 \"$t\" && echo trunc-ok; \
         cp /workspace/a/b/g /tmp/x && mv /tmp/x /workspace/y && echo cross-mv-ok; \
         echo shm > /dev/shm/s && echo shm-ok; \
         getent hosts localhost >/dev/null && echo lookup-ok; \
         perl -MSocket -e 'socket(S, PF_INET, SOCK_STREAM, 0) or die; \
           bind(S, pack_sockaddr_in(0, inet_aton(\"127.0.0.1\"))) or die \"$!\"; \
           listen(S, 1) or die; print \"listen-ok\\n\"'; \
         printf '#!/bin/sh\\necho script-ok\\n' > /workspace/s.sh && chmod +x /workspace/s.sh \
           && /workspace/s.sh",
    );
    for ok in [
        "via-stdout",
        "devnull-ok",
        "rename-ok",
        "links-ok",
        "trunc-ok",
        "cross-mv-ok",
        "shm-ok",
        "lookup-ok",
        "listen-ok",
        "script-ok",
    ] {
        assert_has(&all, ok);
    }
}

// -------------------------------------------------------------------- as uid 65534

const INNER_WS: &str = "CORDON_ESCAPE_TEST_WS";
const INNER_SECRET: &str = "CORDON_ESCAPE_TEST_SECRET";

#[test]
fn unprivileged_caller_cannot_escape_either() {
    let Some(run) = support::NobodyRun::prepare() else {
        return;
    };
    let ws = run.owned_dir("ws");
    let (_state, secret) = support::world_readable_secret("TOPSECRET-UNPRIV");
    run.run(
        "unprivileged_escape_inner",
        &[
            (INNER_WS, ws.as_os_str()),
            (INNER_SECRET, secret.as_os_str()),
        ],
    );
}

#[test]
#[ignore = "run by unprivileged_caller_cannot_escape_either under setpriv"]
fn unprivileged_escape_inner() {
    let ws = std::env::var(INNER_WS).expect("run through unprivileged_caller_cannot_escape_either");
    let secret = std::env::var(INNER_SECRET).unwrap();
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    let ws = Path::new(&ws);
    assert!(
        std::fs::read_to_string(&secret)
            .unwrap()
            .contains("TOPSECRET")
    );
    attack_read_host_secrets(ws, Path::new(&secret));
    attack_proc_of_init_and_host(ws);
    attack_write_outside(ws);
    attack_past_the_mounts(ws);
    attack_find_the_host_root(ws);
    attack_hardlinks(ws);
    attack_mount_and_namespaces(ws);
    attack_ptrace_sibling(ws);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    attack_sockets_and_network(ws, listener.local_addr().unwrap().port());
    attack_fork_bomb(ws, 32);
    attack_disk_limits(ws);
    attack_outlive_the_deadline(ws);
}
