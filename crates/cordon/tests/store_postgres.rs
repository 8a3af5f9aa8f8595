//! `[store] url`: the real `cordon` binary keeps tokens and sessions in a real PostgreSQL
//! server (a throwaway cluster on a Unix socket), and no SQLite file appears in the
//! state directory; a URL to a host that is not loopback is refused naming the key.

mod common;

use common::*;
use testkit::{MockLlm, PgCluster, Reply, Script};

#[tokio::test]
async fn tokens_and_sessions_live_in_postgres() {
    let cluster = PgCluster::start();
    let llm = MockLlm::start(Script::new(vec![Reply::Text("stored in postgres".into())])).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let mut config = read(&inst.config);
    config.push_str(&format!("\n[store]\nurl = \"{}\"\n", cluster.url()));
    std::fs::write(&inst.config, config).unwrap();

    let token = gateway_token(&inst, "approver").await;
    assert!(!token.is_empty());
    let out = inst.cordon(&["token", "list"]).await;
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("approver"),
        "{}",
        text(&out.stdout)
    );

    let out = inst.cordon(&["run", "say something"]).await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "stored in postgres");

    // Where it went: PostgreSQL has the token (its hash only) and the session's items.
    let rows = |sql: &str| -> i64 { cluster.psql("cordon", sql).trim().parse().unwrap() };
    assert_eq!(
        rows("SELECT count(*) FROM tokens WHERE scope = 'approver'"),
        1
    );
    assert_eq!(
        rows(&format!(
            "SELECT count(*) FROM tokens WHERE hash LIKE '%{token}%'"
        )),
        0,
        "the token itself is not stored"
    );
    assert_eq!(rows("SELECT count(*) FROM sessions"), 1);
    assert!(rows("SELECT count(*) FROM items") >= 2);
    assert!(
        !inst.state.join("cordon.db").exists(),
        "no SQLite store next to the PostgreSQL one"
    );
}

#[tokio::test]
async fn a_store_url_off_this_host_is_refused_naming_the_key() {
    let inst = Install::new("http://127.0.0.1:9/v1", AgentSetup::default());
    let mut config = read(&inst.config);
    config.push_str("\n[store]\nurl = \"postgres://cordon@db.example.com/cordon\"\n");
    std::fs::write(&inst.config, config).unwrap();
    let out = inst.cordon(&["token", "list"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("store.url") || err.contains("[store] url"),
        "{err}"
    );
    assert!(err.contains("loopback"), "{err}");
}
