//! Rows damaged behind the store's back (by hand, a bad restore, an attacker with the
//! file) are reported as errors naming the row, on both backends, and never decoded
//! into something else or acted on.

mod backend;

use std::time::Duration;

use backend::Db;
use cordon_store::{
    Answer, ApprovalFilter, ApprovalKind, GrantQuery, GrantScope, NewApproval, StoreError,
};
use serde_json::json;

fn request(session: &str) -> NewApproval {
    NewApproval {
        agent: "default".into(),
        session: session.into(),
        kind: ApprovalKind::Action,
        tool: "exec".into(),
        action: "exec: git push".into(),
        fingerprint: "fp:git push".into(),
        argv: Some(vec!["git".into(), "push".into()]),
        host: None,
        arguments: json!({"command": "git push"}),
        reason: "ask".into(),
        rule: "exec.mode".into(),
        labels: json!({}),
        untrusted_sources: Vec::new(),
        payload: None,
        timeout: Duration::from_secs(60),
    }
}

fn bad_row(err: StoreError, table: &str, id: &str, column: &str) {
    let shown = err.to_string();
    match err {
        StoreError::BadRow {
            table: t, id: i, ..
        } => {
            assert_eq!((t, i.as_str()), (table, id));
            assert!(shown.contains(column), "{shown}");
        }
        other => panic!("expected a damaged {table} row, got {other}"),
    }
}

fn damaged_items_and_events_name_their_seq(db: &Db) {
    let store = db.open();
    let s = store.create_session("default").unwrap().id;
    for i in 0..3 {
        store.append_item(&s, &json!({"n": i})).unwrap();
        store.append_event(&s, "x", json!({"n": i})).unwrap();
    }
    db.exec(&format!(
        "UPDATE items SET item = 'not json' WHERE session = '{s}' AND seq = 2;
         UPDATE events SET data = '{{' WHERE session = '{s}' AND seq = 3;"
    ));
    match store.load_items(&s).unwrap_err() {
        StoreError::BadItem { session, seq, .. } => assert_eq!((session, seq), (s.clone(), 2)),
        other => panic!("{other}"),
    }
    assert_eq!(store.events_after(&s, 0, 2).unwrap().len(), 2);
    match store.events_after(&s, 0, 10).unwrap_err() {
        StoreError::BadItem { session, seq, .. } => assert_eq!((session, seq), (s, 3)),
        other => panic!("{other}"),
    }
}

/// A damaged request can be neither read nor answered; it stays pending.
fn a_damaged_approval_is_an_error_and_is_not_answered(db: &Db) {
    let store = db.open();
    let id = store.create_approval(&request("S1")).unwrap().id;
    db.exec(&format!(
        "UPDATE approvals SET argv = 'not json' WHERE id = '{id}';"
    ));
    bad_row(
        store.get_approval(&id).unwrap_err(),
        "approvals",
        &id,
        "argv",
    );
    bad_row(
        store
            .list_approvals(&ApprovalFilter::default())
            .unwrap_err(),
        "approvals",
        &id,
        "argv",
    );
    bad_row(
        store
            .answer_approval(&id, &Answer::Once, "cli")
            .unwrap_err(),
        "approvals",
        &id,
        "argv",
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM approvals WHERE id = '{id}' AND status = 'pending'"
        )),
        1
    );
}

/// A damaged grant covers nothing, cannot be listed, and is not revoked by a call that
/// could not read it.
fn a_damaged_grant_is_an_error_and_covers_nothing(db: &Db) {
    let store = db.open();
    let id = store.create_approval(&request("S1")).unwrap().id;
    let grant = store
        .answer_approval(
            &id,
            &Answer::Agent {
                days: 1,
                scope: GrantScope::Prefix(vec!["git".into()]),
            },
            "cli",
        )
        .unwrap()
        .grant
        .unwrap();
    db.exec(&format!(
        "UPDATE grants SET argv_prefix = '[\"git\"' WHERE id = '{}';",
        grant.id
    ));
    bad_row(
        store.get_grant(&grant.id).unwrap_err(),
        "grants",
        &grant.id,
        "argv_prefix",
    );
    bad_row(
        store.list_grants(None, true).unwrap_err(),
        "grants",
        &grant.id,
        "argv_prefix",
    );
    let argv = vec!["git".to_string(), "push".to_string()];
    let q = GrantQuery {
        agent: "default",
        session: "S1",
        kind: ApprovalKind::Action,
        tool: "exec",
        fingerprint: "fp:other",
        argv: Some(&argv),
        host: None,
    };
    bad_row(
        store.find_grant(&q).unwrap_err(),
        "grants",
        &grant.id,
        "argv_prefix",
    );
    bad_row(
        store.revoke_grant(&grant.id).unwrap_err(),
        "grants",
        &grant.id,
        "argv_prefix",
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM grants WHERE id = '{}' AND revoked_at IS NULL",
            grant.id
        )),
        1
    );
}

on_both!(
    damaged_items_and_events_name_their_seq,
    a_damaged_approval_is_an_error_and_is_not_answered,
    a_damaged_grant_is_an_error_and_covers_nothing,
);
