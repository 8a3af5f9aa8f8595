//! `cordon policy test`: case files decide through the real engine, mismatches are
//! reported, malformed files are FILE:LINE:COL errors.

use std::path::Path;

use cordon_guard::policy_test::run;

const CONFIG: &str = r#"
[model]
provider = "openai"
base_url = "http://127.0.0.1:1/v1"
model = "m"

[agents.dev]
workspace = "/tmp/cordon-policy-test-ws"
[agents.dev.exec]
mode = "allowlist"
allow = ["git", "ls"]
[agents.dev.egress]
allow = ["docs.rs", "*.example.com"]
"#;

fn config() -> (tempfile::TempDir, config::Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let cfg = config::load(&path).unwrap();
    (dir, cfg)
}

const CASES: &str = r#"
[[case]]
agent = "dev"
action = "exec"
command = "git push origin main"
labels = { integrity = "untrusted", confidentiality = "public" }
expect = "ask"

[[case]]
agent = "dev"
action = "exec"
command = "env bash -lc 'ls -la'"
expect = "allow"

[[case]]
agent = "dev"
action = "connect"
url = "https://leak-abc.docs.example.com/"
labels = { integrity = "untrusted" }
contacted = ["docs.example.com"]
expect = "ask"

[[case]]
agent = "dev"
action = "connect"
url = "https://evil.org/"
expect = "allow"   # wrong on purpose

[[case]]
agent = "dev"
action = "memory_write"
labels = { integrity = "untrusted" }
expect = "ask"
"#;

#[test]
fn cases_run_and_mismatches_are_reported() {
    let (dir, cfg) = config();
    let report = run(&cfg, dir.path(), CASES, Path::new("cases.toml")).unwrap();
    assert_eq!(report.rows.len(), 5);
    assert!(!report.passed());
    let bad = report.mismatches();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0].case, 4);
    assert_eq!(bad[0].got, "deny");
    assert_eq!(bad[0].rule, "no_permit");
    assert_eq!(report.rows[0].rule, "taint.exec_code");
    assert_eq!(report.rows[1].action, "exec: ls -la");
    assert_eq!(report.rows[2].rule, "taint.connect_new_host");
    let table = report.to_string();
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .starts_with("#  agent  action"),
        "{table}"
    );
    assert!(table.contains("deny MISMATCH"), "{table}");
    assert!(table.contains("1 of 5 cases MISMATCHED"), "{table}");
    assert!(
        table.contains("case 4 (connect: GET https://evil.org/)"),
        "{table}"
    );

    let ok = CASES.replace(
        "expect = \"allow\"   # wrong on purpose",
        "expect = \"deny\"",
    );
    let report = run(&cfg, dir.path(), &ok, Path::new("cases.toml")).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.to_string().contains("all 5 cases passed"));
}

#[test]
fn bad_case_files_name_file_line_col() {
    let (dir, cfg) = config();
    let err = |text: &str| {
        run(&cfg, dir.path(), text, Path::new("c.toml"))
            .err()
            .unwrap()
            .to_string()
    };
    let unknown_key =
        "[[case]]\nagent = \"dev\"\naction = \"exec\"\ncommnd = \"ls\"\nexpect = \"allow\"\n";
    let e = err(unknown_key);
    assert!(e.starts_with("c.toml:4:1:") && e.contains("commnd"), "{e}");
    let bad_expect =
        "[[case]]\nagent = \"dev\"\naction = \"exec\"\ncommand = \"ls\"\nexpect = \"maybe\"\n";
    let e = err(bad_expect);
    assert!(e.starts_with("c.toml:5:"), "{e}");
    let missing = "\n\n[[case]]\nagent = \"dev\"\naction = \"exec\"\nexpect = \"allow\"\n";
    let e = err(missing);
    assert!(e.starts_with("c.toml:3:1:") && e.contains("command"), "{e}");
    let agent =
        "[[case]]\nagent = \"ops\"\naction = \"exec\"\ncommand = \"ls\"\nexpect = \"allow\"\n";
    let e = err(agent);
    assert!(
        e.starts_with("c.toml:1:1:") && e.contains("no agent `ops`"),
        "{e}"
    );
    let e = err("");
    assert!(e.contains("no [[case]]"), "{e}");
}
