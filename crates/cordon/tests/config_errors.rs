//! Bad configs fail with file:line and the key; `config schema` prints JSON Schema;
//! `init` writes a config that checks clean.

mod common;

use common::*;

async fn check_error(inst: &Install, body: &str) -> String {
    std::fs::write(&inst.config, body).unwrap();
    let out = inst.cordon(&["config", "check"]).await;
    assert!(!out.status.success(), "accepted a bad config:\n{body}");
    text(&out.stderr)
}

const GOOD: &str = r#"[model]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "m"

[agents.default]
workspace = "/tmp"

[agents.default.exec]
mode = "ask"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_file_line_and_key() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    std::fs::write(&inst.config, GOOD).unwrap();
    assert_ok(&inst.cordon(&["config", "check"]).await);
    let file = inst.config.display().to_string();

    let cases = [
        // (bad config, line, key fragment)
        (
            GOOD.replace("model = \"m\"", "model = \"m\"\nmodle = \"x\""),
            5,
            "modle",
        ),
        (
            GOOD.replace("mode = \"ask\"", "mode = \"sometimes\""),
            10,
            "mode",
        ),
        (
            GOOD.replace(
                "[agents.default.exec]",
                "max_steps = \"ten\"\n\n[agents.default.exec]",
            ),
            9,
            "max_steps",
        ),
        (
            GOOD.replace("provider = \"openai\"", "provider = 7"),
            2,
            "provider",
        ),
        (
            GOOD.replace("mode = \"ask\"", "mode = \"ask\"\nallow = [\"ls\", 3]"),
            11,
            "allow",
        ),
        (
            GOOD.replace(
                "[agents.default.exec]",
                "[agents.default.egress]\nallow = [\"*\"]\n\n[agents.default.exec]",
            ),
            10,
            "allow",
        ),
        (
            GOOD.replace("model = \"m\"", "model = \"m\"\napi_key = \"sk-live-123\""),
            5,
            "api_key",
        ),
    ];
    for (body, line, key) in cases {
        let err = check_error(&inst, &body).await;
        assert!(
            err.contains(&format!("{file}:{line}")),
            "expected {file}:{line} in: {err}"
        );
        assert!(err.contains(key), "expected key `{key}` in: {err}");
    }
    // A syntax error also names the line.
    let err = check_error(&inst, "[model\nprovider = 1").await;
    assert!(err.contains(&format!("{file}:1")), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_a_valid_private_setup() {
    use std::os::unix::fs::PermissionsExt;
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    std::fs::remove_file(&inst.config).unwrap();
    for tier in ["personal", "team", "enterprise"] {
        let out = inst.cordon(&["init", "--tier", tier, "--force"]).await;
        assert_ok(&out);
        assert_ok(&inst.cordon(&["config", "check"]).await);
        let cfg = read(&inst.config);
        assert!(
            cfg.contains("api_key_env"),
            "the key is named, never stored"
        );
    }
    // Refuses to clobber without --force.
    let out = inst.cordon(&["init"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--force"));
    let mode = std::fs::metadata(&inst.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(
        inst.home.join("cordon-workspace/default").is_dir(),
        "workspace created under HOME"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_is_json_schema() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let out = inst.cordon(&["config", "schema"]).await;
    assert_ok(&out);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = schema.to_string();
    for key in ["model", "agents", "api_key_env", "egress", "allowlist"] {
        assert!(s.contains(key), "schema mentions {key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_cli_arguments_are_named() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let out = inst.cordon(&["run", "--agent", "nobody", "hi"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no agent `nobody`"),
        "{}",
        text(&out.stderr)
    );
    let out = inst
        .cordon(&["sandbox", "exec", "--timeout", "soon", "--", "true"])
        .await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("soon"));
}
