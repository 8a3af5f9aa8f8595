//! Teardown off the caller's thread: dropping an instance kills it at once, and the
//! background worker always reaps init and removes the cgroup; pooled cgroups are removed
//! at exit, and those of dead owners by the next process.
//!
//! Its own test binary (one process): the zombie check counts all children of this process.

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cordon_sandbox::{ExecRequest, ExitStatus, NativeSandbox, Profile, Sandbox};

const INNER: &str = "CORDON_TEARDOWN_INNER";
const POOL_SIZE: usize = 2;

fn profile(ws: &Path) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: cordon_sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Default::default(),
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
        timeout: Duration::from_secs(20),
        output_limit: 4096,
    }
}

/// Pids whose parent is `parent` (any state, zombies included).
fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            let pid = head.split_whitespace().next().unwrap().parse().unwrap();
            out.push((pid, fields[0].to_owned()));
        }
    }
    out
}

fn cgroup_bases() -> Vec<PathBuf> {
    ["memory", "pids", "cpu"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("cordon"))
        .chain([PathBuf::from("/sys/fs/cgroup/cordon")])
        .filter(|p| p.is_dir())
        .collect()
}

/// Per-sandbox cgroup directories owned by `owner`.
fn cgroups_of(owner: u32) -> Vec<PathBuf> {
    let prefix = format!("sandbox-{owner}-");
    let mut out = Vec::new();
    for base in cgroup_bases() {
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                out.push(e.path());
            }
        }
    }
    out
}

fn cgroup_applies(ws: &Path) -> bool {
    NativeSandbox::new()
        .explain(&profile(ws))
        .layers
        .iter()
        .any(|l| l.layer == "cgroup" && l.active)
}

#[test]
fn two_hundred_fresh_sandboxes_leave_no_zombie_and_no_cgroup_behind() {
    let ws = tempfile::tempdir().unwrap();
    let p = profile(ws.path());
    let native = NativeSandbox::new();
    for i in 0..200 {
        let mut sb = native
            .start(&p)
            .unwrap_or_else(|e| panic!("start {i}: {e}"));
        let out = sb.exec(&req(&["/bin/true"])).unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0));
        drop(sb);
    }
    let me = std::process::id();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let children = children_of(me);
        // Only the pool may remain: at most POOL_SIZE unused cgroups per hierarchy, plus the
        // one holding the armed thread (a thread of ours, nothing else).
        let dirs = cgroups_of(me);
        let busy: Vec<&PathBuf> = dirs
            .iter()
            .filter(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.trim() != me.to_string())
            })
            .collect();
        let bases = cgroup_bases().len().max(1);
        let done = children.is_empty() && busy.is_empty() && dirs.len() <= (POOL_SIZE + 1) * bases;
        if done {
            break;
        }
        assert!(
            Instant::now() < until,
            "after 200 fresh sandboxes: children {children:?}, cgroups {dirs:?} (with tasks: \
             {busy:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nothing_of_a_dropped_sandbox_keeps_running() {
    let ws = tempfile::tempdir().unwrap();
    let mut sb = NativeSandbox::new().start(&profile(ws.path())).unwrap();
    // A background writer that outlives the call would keep appending.
    let out = sb
        .exec(&req(&[
            "/bin/bash",
            "-c",
            "setsid bash -c 'while :; do echo x >> /workspace/tick; sleep 0.005; done' \
             </dev/null >/dev/null 2>&1 & sleep 0.3; exit 0",
        ]))
        .unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    drop(sb);
    std::thread::sleep(Duration::from_millis(100));
    let tick = ws.path().join("tick");
    let len = std::fs::metadata(&tick).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::metadata(&tick).map(|m| m.len()).unwrap_or(0),
        len,
        "something of the dropped sandbox still writes"
    );
}

/// A process that used the pool removes its pooled cgroups when it exits, and the first
/// pool fill of a process removes the leftovers of owners that are gone.
#[test]
fn pooled_cgroups_go_at_exit_and_dead_owners_leftovers_are_swept() {
    let ws = tempfile::tempdir().unwrap();
    if !cgroup_applies(ws.path()) {
        eprintln!("SKIPPED: no writable cgroup hierarchy (not root?)");
        return;
    }
    // A pid that is certainly dead: a reaped child of ours.
    let mut dead = Command::new("/bin/true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let base = cgroup_bases().into_iter().next().unwrap();
    let leftover = base.join(format!("sandbox-{dead_pid}-0"));
    std::fs::create_dir(&leftover).unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "inner_uses_the_pool", "--include-ignored"])
        .env(INNER, ws.path())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "inner run failed: {out:?}");
    let left = cgroups_of(child_pid);
    assert!(left.is_empty(), "left by the exited process: {left:?}");
    let swept = !leftover.exists();
    let _ = std::fs::remove_dir(&leftover);
    assert!(
        swept,
        "{} of a dead owner was not swept",
        leftover.display()
    );
}

#[test]
#[ignore = "run by pooled_cgroups_go_at_exit_and_dead_owners_leftovers_are_swept"]
fn inner_uses_the_pool() {
    let ws = std::env::var(INNER).expect("run through the outer test");
    let p = profile(Path::new(&ws));
    for _ in 0..20 {
        let mut sb = NativeSandbox::new().start(&p).unwrap();
        assert_eq!(
            sb.exec(&req(&["/bin/true"])).unwrap().status,
            ExitStatus::Exited(0)
        );
    }
    // Let the pool fill again: these are the directories the exit handler must remove.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!cgroups_of(std::process::id()).is_empty());
}

/// As root, every sandbox's processes are in its own `cordon/sandbox-<our pid>-<n>`
/// cgroup (seen from the host), whether init was forked inside a pooled cgroup or moved
/// into one; two sandboxes never share one.
#[test]
fn each_sandbox_runs_in_its_own_cgroup_seen_from_the_host() {
    let ws = tempfile::tempdir().unwrap();
    if !cgroup_applies(ws.path()) {
        eprintln!("SKIPPED: no writable cgroup hierarchy (not root?)");
        return;
    }
    let native = NativeSandbox::new();
    let p = profile(ws.path());
    let prefix = format!("/cordon/sandbox-{}-", std::process::id());
    let mut seen = Vec::new();
    for i in 0..6 {
        let mut sb = native.start(&p).unwrap();
        let marker = format!("sleep 0.6{i}{}", std::process::id() % 1000);
        let argv: Vec<String> = marker.split(' ').map(str::to_owned).collect();
        // The command runs on another thread while we look at it from the host.
        let call = std::thread::spawn(move || {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = sb.exec(&req(&argv)).unwrap();
            (sb, out)
        });
        let until = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Some(pid) = find_process(&marker) {
                break pid;
            }
            assert!(Instant::now() < until, "{marker} not found");
            std::thread::sleep(Duration::from_millis(5));
        };
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let mut per_controller = Vec::new();
        for c in ["memory", "pids", "cpu"] {
            let line = cg
                .lines()
                .find(|l| {
                    l.split(':')
                        .nth(1)
                        .is_some_and(|cs| cs.split(',').any(|x| x == c))
                })
                .unwrap_or_else(|| panic!("no {c} in {cg}"));
            let path = line.splitn(3, ':').nth(2).unwrap().to_owned();
            assert!(path.starts_with(&prefix), "{c}: {path} (want {prefix}*)");
            per_controller.push(path);
        }
        assert!(
            per_controller.iter().all(|p| *p == per_controller[0]),
            "{per_controller:?}"
        );
        assert!(
            !seen.contains(&per_controller[0]),
            "cgroup reused: {seen:?}"
        );
        seen.push(per_controller[0].clone());
        let (sb, out) = call.join().unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0));
        drop(sb);
        // Spaced out, like an agent's calls: the pool refills in between.
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn find_process(cmdline: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if text.join(" ") == cmdline {
            return Some(pid);
        }
    }
    None
}

/// As root, starts after the first fork init from the armed thread, into a network
/// namespace made in advance: it must be the sandbox's own (only `lo`, up; the host's
/// loopback unreachable; not shared between two live sandboxes) and still serve a low
/// egress port.
#[test]
fn a_network_namespace_made_in_advance_is_as_isolated_and_serves_the_egress_port() {
    use std::io::Read;
    use std::net::TcpListener;
    let ws = tempfile::tempdir().unwrap();
    if !cgroup_applies(ws.path()) {
        eprintln!("SKIPPED: no writable cgroup hierarchy (not root?)");
        return;
    }
    // A service on the host's loopback that the sandbox must not reach.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port();
    let mut p = profile(ws.path());
    // Below 1024: binding it needs the unprivileged port range to start at 0.
    p.egress_port = Some(81);
    let native = NativeSandbox::new();
    let script = format!(
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
         tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
         cat /sys/class/net/lo/operstate 2>/dev/null; \
         readlink /proc/self/ns/net; \
         (exec 3<>/dev/tcp/127.0.0.1/{host_port}) 2>/dev/null && echo HOST-REACHED; \
         exec 3<>/dev/tcp/127.0.0.1/81 && echo egress >&3 && echo sent"
    );
    let mut premade = 0;
    let mut live = Vec::new();
    let mut namespaces = Vec::new();
    for _ in 0..5 {
        // Spaced out: the worker re-arms in between.
        std::thread::sleep(Duration::from_millis(60));
        let mut sb = native.start(&p).unwrap();
        let listener = TcpListener::from(sb.egress_listener().expect("egress listener"));
        listener.set_nonblocking(false).unwrap();
        let acceptor = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = String::new();
            conn.read_to_string(&mut got).unwrap();
            got
        });
        let out = sb.exec(&req(&["/bin/bash", "-c", &script])).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(acceptor.join().unwrap(), "egress\n", "{stdout}");
        assert!(!stdout.contains("HOST-REACHED"), "{stdout}");
        assert_eq!(lines.get(1), Some(&"lo"), "only lo: {stdout}");
        assert!(lines.last() == Some(&"sent"), "{stdout}");
        let ns = lines
            .iter()
            .find(|l| l.starts_with("net:["))
            .unwrap_or_else(|| panic!("{stdout}"))
            .to_string();
        assert!(!namespaces.contains(&ns), "shared network namespace {ns}");
        namespaces.push(ns);
        if lines.first() == Some(&"0") {
            premade += 1;
        }
        // Loopback is up: a listener inside is reachable from inside.
        let out = sb
            .exec(&req(&[
                "/usr/bin/python3",
                "-c",
                "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); \
                 c=socket.create_connection(s.getsockname()); print('LO-OK')",
            ]))
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("LO-OK"),
            "{out:?}"
        );
        live.push(sb);
    }
    assert!(
        premade >= 3,
        "only {premade} of 5 starts used a premade namespace"
    );
    drop(host);
}

const AHEAD: &str = "CORDON_TEARDOWN_AHEAD";

/// `Sandbox::prepare` on a backend that pools nothing (`cordon sandbox exec`'s): the
/// start's cgroup (and armed thread) is made before the start, with the profile's limits,
/// and the start uses it instead of making another; one made for other limits is removed
/// and the start gets its own; one never used is removed when the process exits.
#[test]
fn a_start_prepared_ahead_uses_what_was_made_and_an_unused_one_goes_at_exit() {
    let ws = tempfile::tempdir().unwrap();
    // Arming ahead needs a thread that can move itself into a cgroup: v1 `tasks`, as root.
    if !cgroup_applies(ws.path()) || !Path::new("/sys/fs/cgroup/pids").is_dir() {
        eprintln!("SKIPPED: no writable cgroup v1 hierarchy (not root?)");
        return;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "inner_prepares_ahead", "--include-ignored"])
        .env(AHEAD, ws.path())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "inner run failed: {out:?}");
    let left = cgroups_of(child_pid);
    assert!(left.is_empty(), "left by the exited process: {left:?}");
}

/// Poll `f` until it returns something (at most 5 s).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "waited 5 s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// This process's per-sandbox `pids` cgroups with their `pids.max` and whether a task
/// other than one of our threads is inside.
fn pids_cgroups() -> Vec<(PathBuf, String, bool)> {
    let me = std::process::id();
    cgroups_of(me)
        .into_iter()
        .filter(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .map(|d| {
            let max = std::fs::read_to_string(d.join("pids.max")).unwrap_or_default();
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            let used = procs.lines().any(|l| l.trim() != me.to_string());
            (d, max.trim().to_owned(), used)
        })
        .collect()
}

/// Run `/bin/true` in `sb`, drop it, and wait until its cgroup is gone.
fn run_and_drop(mut sb: Box<dyn cordon_sandbox::Instance>) {
    let out = sb.exec(&req(&["/bin/true"])).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    drop(sb);
    wait_for("the used cgroup to go", || {
        pids_cgroups().is_empty().then_some(())
    });
}

#[test]
#[ignore = "run by a_start_prepared_ahead_uses_what_was_made_and_an_unused_one_goes_at_exit"]
fn inner_prepares_ahead() {
    use cordon_sandbox::Pooling;
    let ws = std::env::var(AHEAD).expect("run through the outer test");
    let native = NativeSandbox::with_pooling(Pooling::Off);
    let mut p = profile(Path::new(&ws));
    p.limits.cgroup_pids = 91;

    // Made ahead: before any start, with the profile's limits, nothing inside yet.
    native.prepare(&p);
    let made = wait_for("the cgroup made ahead", || {
        let c = pids_cgroups();
        (!c.is_empty()).then_some(c)
    });
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].1, "91");
    assert!(
        !made[0].2,
        "a task other than ours in it before the start: {made:?}"
    );
    // The start takes it: no other cgroup is made, and the sandbox runs inside this one.
    let sb = native.start(&p).unwrap();
    let live = pids_cgroups();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        live[0].0, made[0].0,
        "the start made its own cgroup: {live:?}"
    );
    assert!(
        live[0].2,
        "the sandbox's init is not in the cgroup made ahead"
    );
    run_and_drop(sb);

    // Made ahead for other limits: the start makes its own with its limits, and the one
    // made ahead is removed.
    native.prepare(&p);
    wait_for("the second cgroup made ahead", || {
        (pids_cgroups().len() == 1).then_some(())
    });
    let mut q = p.clone();
    q.limits.cgroup_pids = 92;
    let sb = native.start(&q).unwrap();
    let live = wait_for("only the start's own cgroup", || {
        let c = pids_cgroups();
        (c.len() == 1).then_some(c)
    });
    assert_eq!(live[0].1, "92", "{live:?}");
    assert!(live[0].2, "the sandbox's init is not in its cgroup");
    run_and_drop(sb);

    // Made ahead and never used: the exit handler removes it (the outer test checks).
    native.prepare(&p);
    wait_for("the third cgroup made ahead", || {
        (pids_cgroups().len() == 1).then_some(())
    });
}
