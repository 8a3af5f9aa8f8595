//! One parser per concept, seen from the command line: `policy explain` and `policy test`
//! read an action the same way (with the runtime's defaults), and `config check` judges a
//! URL by the host the HTTP client would really connect to.

mod common;

use common::*;

/// An install whose agent has `max_steps = 8`, may spawn sub-agents, and has a user rule
/// that forbids children with more than 5 steps.
fn install() -> Install {
    let inst = Install::new(
        "http://127.0.0.1:9/v1",
        AgentSetup {
            tools: r#"["read_file", "list_dir", "spawn_agent"]"#,
            ..AgentSetup::default()
        },
    );
    let text =
        read(&inst.config).replacen("[agents.default]\n", "[agents.default]\nmax_steps = 8\n", 1);
    let text = format!("{text}\n[policy]\nfiles = [\"limits.cedar\"]\n");
    std::fs::write(&inst.config, text).unwrap();
    std::fs::write(
        inst.config.parent().unwrap().join("limits.cedar"),
        "@id(\"short-children\") @reason(\"children get at most 5 steps\")\n\
         forbid (principal, action == Action::\"spawn_agent\", resource)\n\
         when { context.max_steps > 5 };\n",
    )
    .unwrap();
    inst
}

/// Before one parser, `explain` gave a child 1 step and `test` gave it 10: the same
/// action was allowed by one and denied by the other. Both now give it the agent's 8,
/// as the runtime does.
#[tokio::test]
async fn policy_explain_and_policy_test_decide_alike() {
    let inst = install();
    let out = inst
        .cordon(&[
            "policy",
            "explain",
            "--json",
            "--",
            "spawn_agent",
            "read_file",
        ])
        .await;
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "deny", "{v}");
    assert_eq!(v["rule"], "short-children", "{v}");

    let cases = inst.dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nagent = \"default\"\naction = \"spawn_agent\"\ntools = [\"read_file\"]\n\
         expect = \"deny\"\n\n\
         [[case]]\nagent = \"default\"\naction = \"spawn_agent\"\ntools = [\"read_file\"]\n\
         max_steps = 5\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = inst
        .cordon(&["policy", "test", cases.to_str().unwrap()])
        .await;
    assert_ok(&out);
}

/// `config check` refuses plain http to a host that is not this machine, however the
/// URL is spelled; the WHATWG reading is the one the alert and export clients use.
#[tokio::test]
async fn config_check_judges_urls_by_the_host_really_contacted() {
    let inst = install();
    let base = read(&inst.config);
    for url in [
        r"http://evil.example\\@127.0.0.1:9000/hook",
        "http://127.0.0.1@evil.example/hook",
        "HTTP://evil.example/hook",
        "http://evil.example#@127.0.0.1/",
    ] {
        for (table, key) in [("alerts", "webhook_url"), ("audit.export", "url")] {
            std::fs::write(
                &inst.config,
                format!("{base}\n[{table}]\n{key} = \"{url}\"\n"),
            )
            .unwrap();
            let out = inst.cordon(&["config", "check"]).await;
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{table}.{key} = {url} was accepted");
            assert!(
                err.contains(&format!("{table}.{key}")) && err.contains("clear text"),
                "{url}: {err}"
            );
        }
    }
    std::fs::write(
        &inst.config,
        format!("{base}\n[alerts]\nwebhook_url = \"http://evil.example@127.0.0.1:9000/hook\"\n"),
    )
    .unwrap();
    assert_ok(&inst.cordon(&["config", "check"]).await);
}
