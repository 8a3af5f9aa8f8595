//! Inside `exec`, the host user's files, the state dir and host loopback services are out
//! of reach — through the agent's tool and through `cordon sandbox exec`.

mod common;

use std::io::Read;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

struct Bait {
    listener: std::net::TcpListener,
    port: u16,
}

fn plant(inst: &Install) -> Bait {
    std::fs::create_dir_all(inst.home.join(".ssh")).unwrap();
    std::fs::write(inst.home.join(".ssh/id_rsa"), "PRIVATE-KEY-MATERIAL").unwrap();
    std::fs::create_dir_all(&inst.state).unwrap();
    std::fs::write(inst.state.join("bait.txt"), "STATE-DIR-CONTENT").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    Bait { listener, port }
}

fn attacks(inst: &Install, bait: &Bait) -> Vec<String> {
    vec![
        format!("cat {}/.ssh/id_rsa", inst.home.display()),
        "cat ~/.ssh/id_rsa".to_string(),
        "ls -la /root".to_string(),
        "ls /home".to_string(),
        format!("cat {}/bait.txt", inst.state.display()),
        format!("ls {}", inst.state.display()),
        format!("cat {}", inst.audit_file().display()),
        "cat /etc/shadow".to_string(),
        format!(
            "exec 3<>/dev/tcp/127.0.0.1/{} && echo CONNECTED-TO-HOST",
            bait.port
        ),
    ]
}

fn assert_no_leak(output: &str) {
    for secret in [
        "PRIVATE-KEY-MATERIAL",
        "STATE-DIR-CONTENT",
        "CONNECTED-TO-HOST",
        "config_loaded",
        "root:",
    ] {
        assert!(!output.contains(secret), "{secret} leaked into: {output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_exec_cannot_reach_host_secrets_or_services() {
    let probe = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let bait = plant(&probe);
    let mut replies: Vec<Reply> = attacks(&probe, &bait)
        .into_iter()
        .map(|c| tool("exec", json!({"command": c})))
        .collect();
    replies.push(Reply::Text("done".into()));
    let llm = MockLlm::start(Script::new(replies)).await;
    // Same directories, now pointing at the live LLM.
    let cfg = read(&probe.config)
        .replace("http://127.0.0.1:9/v1", &llm.base_url())
        .replace("mode = \"ask\"", "mode = \"auto\"");
    std::fs::write(&probe.config, cfg).unwrap();

    assert_ok(&probe.cordon(&["run", "look around"]).await);
    let seen = tool_results_seen_by_model(&llm.requests());
    assert_eq!(
        seen.len(),
        attacks(&probe, &bait).len(),
        "every attack ran and reported back"
    );
    for result in &seen {
        assert_no_leak(result);
    }
    let mut buf = [0u8; 1];
    assert!(
        bait.listener
            .accept()
            .map(|(mut s, _)| s.read(&mut buf))
            .is_err(),
        "no connection reached the host"
    );
    // Every command is recorded with its result.
    let records = probe.audit().await;
    assert_eq!(of_kind(&records, "tool_result").len(), seen.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_exec_cannot_reach_host_secrets_or_services() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let bait = plant(&inst);
    for attack in attacks(&inst, &bait) {
        let out = inst
            .cordon(&["sandbox", "exec", "--", "/bin/sh", "-c", &attack])
            .await;
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_no_leak(&all);
        assert!(!out.status.success(), "{attack} should fail: {all}");
    }
    assert!(
        bait.listener.accept().is_err(),
        "no connection reached the host"
    );
    let records = inst.audit().await;
    assert_eq!(
        of_kind(&records, "sandbox_exec").len(),
        attacks(&inst, &bait).len()
    );
}

/// `sandbox exec` asks nobody, so it opens the session store only if something needs it:
/// on a fresh state directory it leaves no database (nor SQLite's `-wal`/`-shm`) behind,
/// still records its run, and the next command that needs the store creates it.
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_exec_opens_no_store_it_does_not_need() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let out = inst.cordon(&["sandbox", "exec", "--", "/bin/true"]).await;
    assert_ok(&out);
    for name in ["cordon.db", "cordon.db-wal", "cordon.db-shm"] {
        assert!(!inst.state.join(name).exists(), "{name} was created");
    }
    let records = inst.audit().await;
    assert_eq!(of_kind(&records, "config_loaded").len(), 1);
    assert_eq!(of_kind(&records, "sandbox_exec").len(), 1);
    let out = inst.cordon(&["approvals", "list"]).await;
    assert_ok(&out);
    assert!(inst.state.join("cordon.db").exists());
}

/// `sandbox exec` makes its sandbox's cgroup while it builds its runtime, before the
/// start: whether the command ran or the command failed after that, nothing of it is left.
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_exec_leaves_no_cgroup_whether_it_ran_or_failed_before_the_start() {
    let bases: Vec<std::path::PathBuf> = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(c)
                .join("cordon")
        })
        .chain([std::path::PathBuf::from("/sys/fs/cgroup/cordon")])
        .collect();
    let left_by = |pid: u32| -> Vec<String> {
        let prefix = format!("sandbox-{pid}-");
        bases
            .iter()
            .filter_map(|b| std::fs::read_dir(b).ok())
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    // Without a v1 hierarchy root can write, no cgroup is made and "none left" says nothing.
    if !std::path::Path::new("/sys/fs/cgroup/pids").is_dir()
        || !rustix::process::geteuid().is_root()
    {
        eprintln!("SKIPPED: needs root and a cgroup v1 hierarchy");
        return;
    }
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let spawn = |args: &'static [&'static str]| {
        let mut cmd = inst.command();
        cmd.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        (child.id().unwrap(), child)
    };
    // While the command runs, its sandbox's cgroup exists; after the exit, nothing is left.
    let (pid, child) = spawn(&["sandbox", "exec", "--", "/bin/sleep", "1"]);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while left_by(pid).is_empty() {
        assert!(
            std::time::Instant::now() < until,
            "no cgroup of the running sandbox exec seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = child.wait_with_output().await.unwrap();
    assert_ok(&out);
    assert!(left_by(pid).is_empty(), "left: {:?}", left_by(pid));
    // The agent names a secret the vault lacks: the runtime refuses after the sandbox
    // was prepared, before it starts.
    let config = std::fs::read_to_string(&inst.config).unwrap();
    std::fs::write(
        &inst.config,
        config.replace(
            "[agents.default.egress]",
            "[agents.default.egress]\nsecrets = [\"NOT_IN_VAULT\"]",
        ),
    )
    .unwrap();
    let (pid, child) = spawn(&["sandbox", "exec", "--", "/bin/true"]);
    let out = child.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("NOT_IN_VAULT"),
        "{}",
        text(&out.stderr)
    );
    assert!(left_by(pid).is_empty(), "left: {:?}", left_by(pid));
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_exec_passes_status_and_output_through() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let out = inst
        .cordon(&[
            "sandbox",
            "exec",
            "--",
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ])
        .await;
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    let out = inst
        .cordon(&["sandbox", "exec", "--timeout", "1s", "--", "sleep", "30"])
        .await;
    assert_eq!(out.status.code(), Some(124));
    assert!(text(&out.stderr).contains("deadline"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unprivileged_user_gets_the_same_sandbox() {
    let llm = MockLlm::start(Script::new(vec![
        tool(
            "exec",
            json!({"command": "id -u > who.txt; cat /proc/self/status | grep CapEff"}),
        ),
        tool("exec", json!({"command": "cat /etc/shadow; ls /root"})),
        Reply::Text("done".into()),
    ]))
    .await;
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            exec_mode: "auto",
            ..Default::default()
        },
    );
    let bait = plant(&inst);
    let Some(mut cmd) = inst.command_unprivileged() else {
        eprintln!("skipped: needs root (to become uid 65534) and /usr/bin/setpriv");
        return;
    };
    let out = cmd.args(["run", "who am i"]).output().await.unwrap();
    assert_ok(&out);
    use std::os::unix::fs::MetadataExt;
    let who = inst.workspace.join("who.txt");
    assert_eq!(read(&who).trim(), "1000", "uid inside the sandbox");
    assert_eq!(
        std::fs::metadata(&who).unwrap().uid(),
        65534,
        "files belong to the calling user"
    );
    let seen = tool_results_seen_by_model(&llm.requests());
    assert!(
        seen[0].contains("CapEff:\t0000000000000000"),
        "no capabilities: {}",
        seen[0]
    );
    assert_no_leak(&seen.join("\n"));
    assert!(bait.listener.accept().is_err());

    let mut cmd = inst.command_unprivileged().unwrap();
    let probe = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{} && echo CONNECTED-TO-HOST",
        bait.port
    );
    let out = cmd
        .args(["sandbox", "exec", "--", "/bin/sh", "-c", &probe])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert_no_leak(&format!("{}{}", text(&out.stdout), text(&out.stderr)));
    let mut cmd = inst.command_unprivileged().unwrap();
    assert_ok(&cmd.args(["log", "verify"]).output().await.unwrap());
}
