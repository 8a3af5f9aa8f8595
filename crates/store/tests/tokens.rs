//! Gateway tokens on both backends.

mod backend;

use std::sync::{Arc, Barrier};

use backend::Db;
use cordon_store::{NewToken, Revoked, TokenScope};
use time::{Duration, OffsetDateTime};

fn new(name: &str, scope: TokenScope, ttl: Duration) -> NewToken {
    NewToken {
        name: name.into(),
        scope,
        hash: format!("{:064x}", name.len()),
        expires_at: OffsetDateTime::now_utc() + ttl,
    }
}

fn create_list_revoke(db: &Db) {
    let s = db.open();
    let a = s
        .create_token(&new("laptop", TokenScope::Operator, Duration::days(30)))
        .unwrap();
    assert_eq!(s.active_tokens().unwrap().len(), 1);
    assert_eq!(s.active_tokens().unwrap()[0].scope, TokenScope::Operator);
    assert_eq!(s.list_tokens(false).unwrap(), vec![a.clone()]);
    assert_eq!(s.get_token(&a.id).unwrap(), Some(a.clone()));
    let Revoked::Now(r) = s.revoke_token(&a.id).unwrap() else {
        panic!("not revoked")
    };
    assert!(r.revoked_at.is_some());
    assert!(matches!(
        s.revoke_token(&a.id).unwrap(),
        Revoked::AlreadyRevoked(_)
    ));
    assert_eq!(s.revoke_token("nope").unwrap(), Revoked::NotFound);
    assert!(s.active_tokens().unwrap().is_empty());
    assert!(s.list_tokens(false).unwrap().is_empty());
    assert_eq!(s.list_tokens(true).unwrap().len(), 1);
}

fn expired_tokens_are_not_active(db: &Db) {
    let s = db.open();
    s.create_token(&new("old", TokenScope::Admin, Duration::seconds(-1)))
        .unwrap();
    assert!(s.active_tokens().unwrap().is_empty());
    assert!(s.list_tokens(false).unwrap().is_empty());
    assert_eq!(s.list_tokens(true).unwrap().len(), 1);
}

fn touch_records_last_use(db: &Db) {
    let s = db.open();
    let a = s
        .create_token(&new("x", TokenScope::Read, Duration::days(1)))
        .unwrap();
    s.touch_token(&a.id, OffsetDateTime::now_utc()).unwrap();
    assert!(s.get_token(&a.id).unwrap().unwrap().last_used_at.is_some());
}

/// Two handles revoke at once: exactly one reports that it revoked.
fn concurrent_revocations_revoke_once(db: &Db) {
    let first = db.open();
    let a = first
        .create_token(&new("shared", TokenScope::Admin, Duration::days(1)))
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let results: Vec<Revoked> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, id) = (barrier.clone(), a.id.clone());
                scope.spawn(move || {
                    let store = db.open();
                    barrier.wait();
                    store.revoke_token(&id).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let now = results
        .iter()
        .filter(|r| matches!(r, Revoked::Now(_)))
        .count();
    assert_eq!(now, 1, "{results:?}");
}

#[test]
fn scopes_are_ordered() {
    assert!(TokenScope::Read < TokenScope::Approver);
    assert!(TokenScope::Approver < TokenScope::Operator);
    assert!(TokenScope::Operator < TokenScope::Admin);
    for s in TokenScope::ALL {
        assert_eq!(TokenScope::parse(s.as_str()), Some(s));
    }
}

on_both!(
    create_list_revoke,
    expired_tokens_are_not_active,
    touch_records_last_use,
    concurrent_revocations_revoke_once,
);
