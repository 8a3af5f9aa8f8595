//! `cordon pairing`, driven through the real binary against a real SQLite store: codes
//! the inbound gate issued are listed, approved with a role or denied once; a bad,
//! decided or expired code is an error naming it and changes nothing; every decision is
//! a `channel`/`pairing` audit record with `by: "cli"`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use store::{NewPairing, PairingRequest, Store};

fn install() -> Install {
    Install::new("http://127.0.0.1:9", AgentSetup::default())
}

/// Issue a code to `sender` as the inbound gate would (`ttl` zero: already expired).
fn issue(inst: &Install, channel: &str, sender: &str, name: &str, code: &str, ttl: Duration) {
    let store = Store::open(&inst.state.join("cordon.db")).unwrap();
    let asked = store
        .request_pairing(&NewPairing {
            channel,
            sender,
            sender_name: Some(name),
            code,
            ttl,
            max_pending: 3,
        })
        .unwrap();
    assert!(matches!(asked, PairingRequest::Issued(_)), "{asked:?}");
}

async fn list_json(inst: &Install, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["pairing", "list", "--json"];
    all.extend_from_slice(args);
    let out = inst.cordon(&all).await;
    assert_ok(&out);
    serde_json::from_str::<Value>(&text(&out.stdout))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn pairing_records(records: &[Value]) -> Vec<Value> {
    of_kind(records, "channel")
        .into_iter()
        .filter(|r| r["data"]["action"] == "pairing")
        .map(|r| r["data"].clone())
        .collect()
}

#[tokio::test]
async fn codes_are_listed_approved_with_a_role_denied_and_removed_each_audited() {
    let inst = install();
    // The state directory is made by the first command.
    let out = inst.cordon(&["pairing", "list"]).await;
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("no pairings"),
        "{}",
        text(&out.stdout)
    );
    let hour = Duration::from_secs(3600);
    issue(&inst, "telegram", "1001", "Alice", "ABCD2345", hour);
    issue(&inst, "telegram", "1002", "Mallory", "WXYZ6789", hour);
    issue(&inst, "slack", "U0BOB", "bob", "BBBB2222", hour);

    let out = inst.cordon(&["pairing", "list"]).await;
    assert_ok(&out);
    let shown = text(&out.stdout);
    for needle in [
        "pending:",
        "ABCD2345",
        "1001",
        "\"Alice\"",
        "expires ",
        "U0BOB",
    ] {
        assert!(shown.contains(needle), "{needle} missing from:\n{shown}");
    }
    let telegram = list_json(&inst, &["--channel", "telegram"]).await;
    assert_eq!(telegram.len(), 2, "{telegram:?}");
    assert!(telegram.iter().all(|p| p["channel"] == "telegram"));

    // Approve as owner, typed in lower case; deny another; default role is user.
    let out = inst
        .cordon(&["pairing", "approve", "abcd2345", "--role", "owner"])
        .await;
    assert_ok(&out);
    let said = text(&out.stdout);
    assert!(
        said.contains("approved ABCD2345") && said.contains("1001") && said.contains("owner"),
        "{said}"
    );
    let out = inst.cordon(&["pairing", "deny", "WXYZ6789"]).await;
    assert_ok(&out);
    assert!(text(&out.stdout).contains("denied WXYZ6789"));
    let out = inst.cordon(&["pairing", "approve", "BBBB2222"]).await;
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("as user"),
        "{}",
        text(&out.stdout)
    );

    let all = list_json(&inst, &[]).await;
    let of = |sender: &str| all.iter().find(|p| p["sender"] == sender).unwrap().clone();
    assert_eq!(of("1001")["status"], "approved");
    assert_eq!(of("1001")["role"], "owner");
    assert_eq!(of("1001")["decided_by"], "cli");
    assert_eq!(of("1001")["code"], Value::Null, "a decided code is cleared");
    assert_eq!(of("1002")["status"], "denied");
    assert_eq!(of("U0BOB")["role"], "user");
    let shown = text(&inst.cordon(&["pairing", "list"]).await.stdout);
    assert!(
        shown.contains("approved:") && shown.contains("role owner") && shown.contains("denied:"),
        "{shown}"
    );

    // A code decides once.
    let out = inst.cordon(&["pairing", "approve", "ABCD2345"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ABCD2345") && err.contains("no pending pairing"),
        "{err}"
    );

    let out = inst
        .cordon(&["pairing", "remove", "telegram", "1002"])
        .await;
    assert_ok(&out);
    assert!(text(&out.stdout).contains("removed the denied pairing"));
    let out = inst
        .cordon(&["pairing", "remove", "telegram", "1002"])
        .await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no pairing of sender `1002`"));
    let out = inst.cordon(&["pairing", "remove", "irc", "1002"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("`irc` is not a channel"));

    let decisions: Vec<(String, String, Option<String>, String)> =
        pairing_records(&inst.audit().await)
            .iter()
            .map(|d| {
                (
                    d["decision"].as_str().unwrap().to_string(),
                    d["sender"].as_str().unwrap().to_string(),
                    d["role"].as_str().map(str::to_string),
                    d["by"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    assert_eq!(
        decisions,
        [
            (
                "approved".into(),
                "1001".into(),
                Some("owner".into()),
                "cli".into()
            ),
            ("denied".into(), "1002".into(), None, "cli".into()),
            (
                "approved".into(),
                "U0BOB".into(),
                Some("user".into()),
                "cli".into()
            ),
            ("removed".into(), "1002".into(), None, "cli".into()),
        ]
    );
}

#[tokio::test]
async fn unknown_and_expired_codes_are_errors_naming_the_code_and_change_nothing() {
    let inst = install();
    assert_ok(&inst.cordon(&["pairing", "list"]).await);
    issue(
        &inst,
        "matrix",
        "@eve:example.org",
        "Eve",
        "EXPD3333",
        Duration::ZERO,
    );

    let out = inst.cordon(&["pairing", "list"]).await;
    assert!(
        text(&out.stdout).contains("expired "),
        "{}",
        text(&out.stdout)
    );

    for (args, needle) in [
        (
            ["pairing", "approve", "EXPD3333"],
            "pairing code `EXPD3333` expired",
        ),
        (
            ["pairing", "deny", "EXPD3333"],
            "pairing code `EXPD3333` expired",
        ),
        (
            ["pairing", "approve", "NOPE9999"],
            "no pending pairing with code `NOPE9999`",
        ),
        (
            ["pairing", "deny", "NOPE9999"],
            "no pending pairing with code `NOPE9999`",
        ),
    ] {
        let out = inst.cordon(&args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let all = list_json(&inst, &[]).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]["status"], "pending",
        "an expired code decided something"
    );
    assert!(pairing_records(&inst.audit().await).is_empty());

    let out = inst.cordon(&["pairing", "approve", "--help"]).await;
    assert!(
        text(&out.stdout).contains("[default: user]"),
        "{}",
        text(&out.stdout)
    );
}
