//! `cordon demo` end to end: offline, the injected exfiltration is stopped, the summary
//! is written, the audit log verifies, and nothing is left behind but what `--keep`
//! keeps.

mod common;

use common::{AgentSetup, Install, text};

fn install() -> Install {
    // The user's own installation: the demo must not touch it.
    Install::new("http://127.0.0.1:9/v1", AgentSetup::default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_stops_the_attack_and_leaves_nothing_behind() {
    let inst = install();
    let tmp = inst.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = inst
        .command()
        .arg("demo")
        .env("TMPDIR", &tmp)
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("requests that reached attacker.example: 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("summary written: scratch/summary.md"),
        "{stdout}"
    );
    assert!(stdout.contains("hash chain intact"), "{stdout}");
    assert!(stdout.contains("untrusted"), "{stdout}");
    assert!(
        stdout.contains("the attack was stopped and the task was done"),
        "{stdout}"
    );
    // The refused attempts are shown with their rule.
    assert!(stdout.contains("attacker.example"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| (l.contains(" deny ") || l.contains(" ask ")) && l.contains("rule")),
        "{stdout}"
    );
    // Nothing left in the temporary directory, and the user's install untouched.
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "left behind in TMPDIR"
    );
    assert!(
        !inst.state.exists(),
        "the demo wrote into the user's state directory"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kept_demo_state_has_a_verifying_audit_log() {
    let inst = install();
    let keep = inst.dir.path().join("kept");
    let out = inst
        .command()
        .args(["demo", "--keep"])
        .arg(&keep)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(keep.join("workspace/scratch/summary.md").exists());
    let verify = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["log", "verify"])
        .env("CORDON_CONFIG", keep.join("cordon.toml"))
        .env("CORDON_STATE_DIR", keep.join("state"))
        .output()
        .await
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(text(&verify.stdout).contains("chain intact"));
    // A --keep target that exists is refused before anything runs.
    let again = inst
        .command()
        .args(["demo", "--keep"])
        .arg(&keep)
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
}
