//! `NativeSandbox::explain` checked against reality: every claim it makes is verified by a
//! command inside a real sandbox started from the same profile.

mod support;

use support::euid;

use std::path::Path;
use std::time::Duration;

use cordon_sandbox::{
    Access, ExecOutput, ExecRequest, Explanation, Limits, NativeSandbox, Profile, RoBind, Sandbox,
    WorkspaceAccess,
};

fn profile(ws: &Path, access: WorkspaceAccess) -> Profile {
    Profile {
        workspace: ws.to_path_buf(),
        workspace_access: access,
        ro_binds: Vec::new(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Limits::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    }
}

fn run(p: &Profile, script: &str) -> ExecOutput {
    let req = ExecRequest {
        argv: vec!["bash".into(), "-c".into(), script.into()],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(60),
        output_limit: 4 << 20,
    };
    NativeSandbox::new().start(p).unwrap().exec(&req).unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn layer<'a>(e: &'a Explanation, name: &str) -> &'a cordon_sandbox::LayerStatus {
    e.layers
        .iter()
        .find(|l| l.layer == name)
        .unwrap_or_else(|| panic!("no {name} layer in {e:#?}"))
}

/// A shell probe per mount: `path kind writable?`, where a write attempt decides.
fn probe_script(e: &Explanation) -> String {
    let mut s = String::new();
    for m in &e.mounts {
        let p = &m.path;
        // How to try a write without harming anything: a new file in a directory, an
        // append of nothing to a file; symlinks are reported as such.
        s.push_str(&format!(
            "p='{p}'; if [ -L \"$p\" ]; then echo \"$p link\"; \
             elif [ -d \"$p\" ]; then if touch \"$p/.cordon-probe\" 2>/dev/null; \
             then rm -f \"$p/.cordon-probe\"; echo \"$p rw\"; else echo \"$p ro\"; fi; \
             elif [ -e \"$p\" ]; then if (: >> \"$p\") 2>/dev/null; then echo \"$p rw\"; \
             else echo \"$p ro\"; fi; else echo \"$p missing\"; fi\n"
        ));
    }
    s
}

fn check_profile(access: WorkspaceAccess) {
    let ws = tempfile::tempdir().unwrap();
    let skill = tempfile::tempdir().unwrap();
    std::fs::write(skill.path().join("SKILL.md"), "---\nname: s\n---\n").unwrap();
    let mut p = profile(ws.path(), access);
    p.ro_binds = vec![RoBind {
        source: skill.path().to_path_buf(),
        target: "/skills/s".into(),
    }];
    let e = NativeSandbox::new().explain(&p);
    assert_eq!(e.backend, "native");
    assert!(!e.mounts.is_empty(), "{e:#?}");

    // Every listed path exists with the stated access.
    let out = run(&p, &probe_script(&e));
    let stdout = text(&out.stdout);
    let seen: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(p, k)| (p.to_owned(), k.to_owned()))
        .collect();
    assert_eq!(seen.len(), e.mounts.len(), "{stdout}");
    for (m, (path, kind)) in e.mounts.iter().zip(&seen) {
        assert_eq!(&m.path, path);
        assert_ne!(kind, "missing", "{} is listed but missing", m.path);
        if m.path == "/dev/tty" {
            // Usable only with a controlling terminal, which the sandbox never has.
            assert_eq!(m.access, Access::ReadWrite, "{m:?}");
            continue;
        }
        if kind == "link" {
            assert!(m.source.starts_with("symlink"), "{m:?}");
            continue;
        }
        let claimed = match m.access {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        };
        // /proc and masked entries: writing a file beneath is what matters; `touch` in
        // procfs fails for other reasons, so a claimed read-only there must hold as well.
        assert_eq!(
            kind, claimed,
            "access of {} ({}): {stdout}",
            m.path, m.source
        );
    }
    let ws_view = e.mounts.iter().find(|m| m.path == "/workspace").unwrap();
    assert_eq!(ws_view.access == Access::ReadWrite, access.writable());
    assert_eq!(
        ws_view.source.starts_with("host:"),
        access != WorkspaceAccess::None,
        "{ws_view:?}"
    );
    let skill_view = e.mounts.iter().find(|m| m.path == "/skills/s").unwrap();
    assert_eq!(skill_view.access, Access::ReadOnly, "{skill_view:?}");
    let real = skill.path().canonicalize().unwrap();
    assert_eq!(skill_view.source, format!("host:{}", real.display()));

    // Paths not listed do not exist.
    for absent in [
        "/home",
        "/root",
        "/var",
        "/sys",
        "/run",
        "/etc/shadow",
        "/opt",
        "/srv",
    ] {
        assert!(
            !e.mounts.iter().any(|m| m.path == absent),
            "{absent} listed"
        );
    }
    let out = run(
        &p,
        "for p in /home /root /var /sys /run /etc/shadow /opt /srv; do \
         [ -e $p ] && echo \"exists $p\"; done; \
         id -u; id -g; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; \
         ls / >/dev/null 2>&1 && echo ls-root-ok; \
         grep -E ':(pids|memory):' /proc/self/cgroup",
    );
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("exists"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], e.uid.to_string());
    assert_eq!(lines[1], e.gid.to_string());

    // Layers as claimed.
    let seccomp = layer(&e, "seccomp");
    assert!(seccomp.active);
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    let denied: usize = seccomp
        .detail
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(denied > 40, "{seccomp:?}");
    assert!(layer(&e, "no_new_privs").active && stdout.contains("NoNewPrivs:\t1"));
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    let landlock = layer(&e, "landlock");
    if landlock.active {
        // Landlock covers `/` with no rule: listing it is refused.
        assert!(!stdout.contains("ls-root-ok"), "{stdout}");
        assert!(landlock.detail.starts_with("ABI "), "{landlock:?}");
    } else {
        assert!(stdout.contains("ls-root-ok"), "{stdout}");
    }
    for ns in ["user", "mount", "pid", "network", "ipc", "uts", "cgroup"] {
        assert!(layer(&e, &format!("{ns} namespace")).active);
    }
    let cgroup = layer(&e, "cgroup");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:\t0\t"));
    if cgroup.active {
        // The sandbox's processes are in a per-sandbox cordon/ cgroup: seen as
        // `cordon/sandbox-...` when init was moved in after its cgroup namespace was made,
        // or as `/` (the namespace's root, hiding the host path) when init was forked inside
        // it; `tests/teardown.rs` checks the host-side path of a command.
        for c in ["pids", "memory"] {
            let line = lines
                .iter()
                .find(|l| l.contains(&format!(":{c}:")))
                .unwrap_or_else(|| panic!("no {c} line: {stdout}"));
            assert!(
                line.ends_with(":/") || line.contains("cordon/sandbox-"),
                "{stdout}"
            );
        }
        assert!(e.limits.iter().any(|(k, _)| k == "cgroup pids"));
    } else {
        assert!(cgroup.detail.starts_with("not applied: "), "{cgroup:?}");
        assert!(!is_root || e.warnings.iter().any(|w| w.contains("RLIMIT_NPROC")));
    }
    assert!(e.network.starts_with("loopback only"));
    if is_root {
        assert!(e.warnings.iter().any(|w| w.contains("caller is host root")));
    }
    assert!(
        e.limits
            .iter()
            .any(|(k, v)| k == "RLIMIT_NPROC" && *v == p.limits.max_processes.to_string())
    );
}

#[test]
fn every_claim_holds_for_a_writable_workspace() {
    check_profile(WorkspaceAccess::Write);
}

#[test]
fn every_claim_holds_for_a_read_only_workspace() {
    check_profile(WorkspaceAccess::Read);
}

#[test]
fn every_claim_holds_without_a_workspace() {
    check_profile(WorkspaceAccess::None);
}

#[test]
fn explain_serialises_to_json() {
    let ws = tempfile::tempdir().unwrap();
    let e = NativeSandbox::new().explain(&profile(ws.path(), WorkspaceAccess::Write));
    let json = serde_json::to_string_pretty(&e).unwrap();
    eprintln!("{json}");
    assert!(
        json.contains("\"landlock\"") && json.contains("\"/workspace\""),
        "{json}"
    );
}

/// As root, re-runs the claims check as uid 65534 (no cgroup, other id mapping).
#[test]
fn every_claim_holds_for_an_unprivileged_caller() {
    if let Some(run) = support::NobodyRun::prepare() {
        run.run("unprivileged_explain_inner", &[]);
    }
}

#[test]
#[ignore = "run by every_claim_holds_for_an_unprivileged_caller under setpriv"]
fn unprivileged_explain_inner() {
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    let ws = tempfile::tempdir().unwrap();
    let e = NativeSandbox::new().explain(&profile(ws.path(), WorkspaceAccess::Write));
    let cgroup = layer(&e, "cgroup");
    assert!(!cgroup.active, "{cgroup:?}");
    assert!(cgroup.detail.contains("not writable"), "{cgroup:?}");
    assert!(!e.warnings.iter().any(|w| w.contains("host root")));
    check_profile(WorkspaceAccess::Write);
    check_profile(WorkspaceAccess::Read);
    check_profile(WorkspaceAccess::None);
}
