//! Approvals and grants on both backends (real SQLite files, a real PostgreSQL server),
//! several handles at once.

mod backend;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use backend::Db;
use cordon_store::{
    Answer, AnswerReach, ApprovalFilter, ApprovalKind, ApprovalStatus, GrantQuery, GrantScope,
    NewApproval, Store, StoreError,
};
use serde_json::json;

fn exec_request(session: &str, argv: &[&str], timeout: Duration) -> NewApproval {
    let command = argv.join(" ");
    NewApproval {
        agent: "default".into(),
        session: session.into(),
        kind: ApprovalKind::Action,
        tool: "exec".into(),
        action: format!("exec: {command}"),
        fingerprint: format!("fp:{command}"),
        argv: Some(argv.iter().map(|s| s.to_string()).collect()),
        host: None,
        arguments: json!({"command": command}),
        reason: "network-enabled command while the session is untrusted".into(),
        rule: "taint.exec_network".into(),
        labels: json!({"integrity": "untrusted", "confidentiality": "public"}),
        untrusted_sources: vec!["http_fetch https://evil.test/".into()],
        payload: None,
        timeout,
    }
}

fn connect_request(session: &str, host: &str) -> NewApproval {
    NewApproval {
        tool: "http_fetch".into(),
        action: format!("connect: GET https://{host}/x"),
        fingerprint: format!("fp:connect:{host}"),
        argv: None,
        host: Some(host.into()),
        arguments: json!({"url": format!("https://{host}/x")}),
        ..exec_request(session, &["unused"], Duration::from_secs(60))
    }
}

fn query<'a>(
    session: &'a str,
    tool: &'a str,
    fingerprint: &'a str,
    argv: Option<&'a [String]>,
    host: Option<&'a str>,
) -> GrantQuery<'a> {
    GrantQuery {
        agent: "default",
        session,
        kind: ApprovalKind::Action,
        tool,
        fingerprint,
        argv,
        host,
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn a_request_round_trips_and_survives_reopen(db: &Db) {
    let created = {
        let store = db.open();
        let mut req = exec_request("S1", &["git", "push"], Duration::from_secs(60));
        req.kind = ApprovalKind::MemoryWrite;
        req.payload = Some(json!({"file": "MEMORY.md", "entry": "hello"}));
        store.create_approval(&req).unwrap()
    };
    let store = db.open();
    let got = store.get_approval(&created.id).unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(got.status, ApprovalStatus::Pending);
    assert_eq!(got.kind, ApprovalKind::MemoryWrite);
    assert_eq!(got.payload.unwrap()["entry"], "hello");
    assert_eq!(got.untrusted_sources, vec!["http_fetch https://evil.test/"]);
    assert!(got.expires_at > got.created_at);
    assert!(store.get_approval("01NOPE").unwrap().is_none());
}

fn two_concurrent_answers_one_wins_the_other_is_told(db: &Db) {
    for round in 0..10 {
        let first = db.open();
        let id = first
            .create_approval(&exec_request("S1", &["make"], Duration::from_secs(60)))
            .unwrap()
            .id;
        // Separate connections, as separate processes would have.
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = [Answer::Once, Answer::Deny]
                .into_iter()
                .enumerate()
                .map(|(i, answer)| {
                    let (id, barrier) = (id.clone(), barrier.clone());
                    scope.spawn(move || {
                        let store = db.open();
                        barrier.wait();
                        store.answer_approval(&id, &answer, &format!("answerer{i}"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(wins.len(), 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        match loser {
            StoreError::AlreadyAnswered { id: lost, by, .. } => {
                assert_eq!(lost, &id);
                assert_eq!(by, wins[0].approval.answered_by.as_ref().unwrap());
            }
            other => panic!("round {round}: wrong error {other}"),
        }
        assert!(loser.to_string().contains(&id), "{loser}");
        // The stored answer is the winner's.
        let stored = first.get_approval(&id).unwrap().unwrap();
        assert_eq!(stored, wins[0].approval);
    }
}

fn unknown_answered_and_expired_ids_are_clear_errors(db: &Db) {
    let store = db.open();
    let err = store
        .answer_approval("01UNKNOWN", &Answer::Once, "cli")
        .unwrap_err();
    assert!(matches!(err, StoreError::NoApproval { .. }));
    assert!(err.to_string().contains("01UNKNOWN"), "{err}");

    let a = store
        .create_approval(&exec_request("S1", &["ls"], Duration::from_secs(60)))
        .unwrap();
    store.answer_approval(&a.id, &Answer::Deny, "cli").unwrap();
    let err = store
        .answer_approval(&a.id, &Answer::Once, "cli")
        .unwrap_err();
    assert!(err.to_string().contains(&a.id) && err.to_string().contains("denied by cli"));
    assert_eq!(
        store.get_approval(&a.id).unwrap().unwrap().status,
        ApprovalStatus::Denied
    );

    let b = store
        .create_approval(&exec_request("S1", &["ls"], Duration::from_millis(50)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let err = store
        .answer_approval(&b.id, &Answer::Once, "cli")
        .unwrap_err();
    assert!(matches!(err, StoreError::ApprovalExpired { .. }), "{err}");
    assert!(err.to_string().contains(&b.id));
    // The late answer did not approve it: it is expired now, for good.
    let stored = store.get_approval(&b.id).unwrap().unwrap();
    assert_eq!(stored.status, ApprovalStatus::Expired);
    assert!(stored.grant_id.is_none());
    let err = store
        .answer_approval(&b.id, &Answer::Session, "cli")
        .unwrap_err();
    assert!(matches!(err, StoreError::ApprovalExpired { .. }), "{err}");
}

fn expire_due_marks_only_overdue_pending_requests(db: &Db) {
    let store = db.open();
    let short = store
        .create_approval(&exec_request("S1", &["a"], Duration::from_secs(1)))
        .unwrap();
    let long = store
        .create_approval(&exec_request("S1", &["b"], Duration::from_secs(3600)))
        .unwrap();
    let answered = store
        .create_approval(&exec_request("S1", &["c"], Duration::from_secs(1)))
        .unwrap();
    store
        .answer_approval(&answered.id, &Answer::Once, "cli")
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    assert_eq!(store.expire_due(later).unwrap(), vec![short.id.clone()]);
    assert!(store.expire_due(later).unwrap().is_empty(), "idempotent");
    let pending = store
        .list_approvals(&ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        pending.iter().map(|a| &a.id).collect::<Vec<_>>(),
        vec![&long.id]
    );
    assert_eq!(
        store.get_approval(&answered.id).unwrap().unwrap().status,
        ApprovalStatus::Approved
    );
    // expire_approval: the waiting runtime's timeout, which never overrides an answer.
    assert_eq!(
        store.expire_approval(&answered.id).unwrap().status,
        ApprovalStatus::Approved
    );
    assert_eq!(
        store.expire_approval(&long.id).unwrap().status,
        ApprovalStatus::Expired
    );
}

fn list_filters_by_status_agent_and_session(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&exec_request("S1", &["a"], Duration::from_secs(60)))
        .unwrap();
    let mut other = exec_request("S2", &["b"], Duration::from_secs(60));
    other.agent = "other".into();
    let b = store.create_approval(&other).unwrap();
    let all = store.list_approvals(&ApprovalFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, a.id, "oldest first");
    let only = |f: ApprovalFilter| -> Vec<String> {
        store
            .list_approvals(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(
        only(ApprovalFilter {
            agent: Some("other".into()),
            ..Default::default()
        }),
        vec![b.id.clone()]
    );
    assert_eq!(
        only(ApprovalFilter {
            session: Some("S1".into()),
            ..Default::default()
        }),
        vec![a.id.clone()]
    );
    assert!(
        only(ApprovalFilter {
            status: Some(ApprovalStatus::Denied),
            ..Default::default()
        })
        .is_empty()
    );
}

fn a_session_grant_covers_the_exact_action_in_its_session_only(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&exec_request(
            "S1",
            &["git", "push", "origin", "main"],
            Duration::from_secs(60),
        ))
        .unwrap();
    let answered = store
        .answer_approval(&a.id, &Answer::Session, "terminal")
        .unwrap();
    assert_eq!(answered.approval.answer, Some(AnswerReach::Session));
    let grant = answered.grant.unwrap();
    assert_eq!(
        answered.approval.grant_id.as_deref(),
        Some(grant.id.as_str())
    );
    assert_eq!(grant.session.as_deref(), Some("S1"));
    assert_eq!(grant.scope, GrantScope::Exact);
    assert!(grant.expires_at.is_none());
    let argv = words("git push origin main");
    let fp = "fp:git push origin main";
    let found = store
        .find_grant(&query("S1", "exec", fp, Some(&argv), None))
        .unwrap();
    assert_eq!(found.unwrap().id, grant.id);
    // Another session, another fingerprint, another tool: not covered.
    for q in [
        query("S2", "exec", fp, Some(&argv), None),
        query("S1", "exec", "fp:git push origin evil", Some(&argv), None),
        query("S1", "http_fetch", fp, None, None),
    ] {
        assert!(store.find_grant(&q).unwrap().is_none(), "{q:?}");
    }
    let mut other_agent = query("S1", "exec", fp, Some(&argv), None);
    other_agent.agent = "other";
    assert!(store.find_grant(&other_agent).unwrap().is_none());
    let mut memory = query("S1", "exec", fp, Some(&argv), None);
    memory.kind = ApprovalKind::MemoryWrite;
    assert!(store.find_grant(&memory).unwrap().is_none());
}

fn an_agent_prefix_grant_covers_longer_argv_in_every_session_and_nothing_else(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&exec_request(
            "S1",
            &["git", "push", "origin", "main"],
            Duration::from_secs(60),
        ))
        .unwrap();
    let grant = store
        .answer_approval(
            &a.id,
            &Answer::Agent {
                days: 7,
                scope: GrantScope::Prefix(words("git push")),
            },
            "cli",
        )
        .unwrap()
        .grant
        .unwrap();
    assert!(grant.session.is_none());
    assert!(grant.fingerprint.is_none());
    assert_eq!(grant.lifetime_days(), Some(7));
    let expires = grant.expires_at.clone().unwrap();
    let in_six = time::OffsetDateTime::now_utc() + time::Duration::days(6);
    let in_eight = time::OffsetDateTime::now_utc() + time::Duration::days(8);
    assert!(
        expires.as_str() > in_six.date().to_string().as_str()
            && expires.as_str() < in_eight.date().to_string().as_str(),
        "{expires}"
    );
    let covered = words("git push origin feature");
    assert!(
        store
            .find_grant(&query("S9", "exec", "fp:other", Some(&covered), None))
            .unwrap()
            .is_some()
    );
    for argv in [
        words("git pull origin main"),
        words("git"),
        words("gitpush origin"),
        words("sh -c git push"),
    ] {
        assert!(
            store
                .find_grant(&query("S9", "exec", "fp:x", Some(&argv), None))
                .unwrap()
                .is_none(),
            "{argv:?}"
        );
    }
    // A compound command (the caller passes no argv) is never covered by a prefix.
    assert!(
        store
            .find_grant(&query("S9", "exec", "fp:x", None, None))
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_grants(Some("default"), false).unwrap().len(), 1);
}

fn a_grant_wider_than_the_asked_action_is_refused(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&exec_request(
            "S1",
            &["rm", "-rf", "build"],
            Duration::from_secs(60),
        ))
        .unwrap();
    for scope in [
        GrantScope::Prefix(words("curl")),
        GrantScope::Prefix(vec![]),
        GrantScope::Host("evil.test".into()),
    ] {
        let err = store
            .answer_approval(&a.id, &Answer::Agent { days: 1, scope }, "cli")
            .unwrap_err();
        assert!(matches!(err, StoreError::BadScope { .. }), "{err}");
        assert!(err.to_string().contains(&a.id));
    }
    let err = store
        .answer_approval(
            &a.id,
            &Answer::Agent {
                days: 0,
                scope: GrantScope::Exact,
            },
            "cli",
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::BadScope { .. }), "{err}");
    // Nothing was granted and it is still pending.
    assert!(store.list_grants(None, true).unwrap().is_empty());
    assert_eq!(
        store.get_approval(&a.id).unwrap().unwrap().status,
        ApprovalStatus::Pending
    );
    let mut compound = exec_request("S1", &["x"], Duration::from_secs(60));
    compound.argv = None;
    let c = store.create_approval(&compound).unwrap();
    let err = store
        .answer_approval(
            &c.id,
            &Answer::Agent {
                days: 1,
                scope: GrantScope::Prefix(words("x")),
            },
            "cli",
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("not a single simple command"),
        "{err}"
    );
}

fn a_host_grant_matches_that_host_exactly_and_revoke_ends_it(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&connect_request("S1", "Docs.Example.org"))
        .unwrap();
    assert_eq!(a.host.as_deref(), Some("docs.example.org"));
    let grant = store
        .answer_approval(
            &a.id,
            &Answer::Agent {
                days: 30,
                scope: GrantScope::Host("docs.example.org".into()),
            },
            "cli",
        )
        .unwrap()
        .grant
        .unwrap();
    let hit = |host: &str| {
        store
            .find_grant(&query("S2", "http_fetch", "fp:any", None, Some(host)))
            .unwrap()
            .is_some()
    };
    assert!(hit("docs.example.org"));
    assert!(hit("DOCS.example.org"));
    assert!(!hit("evil.docs.example.org"));
    assert!(!hit("docs.example.org.evil.test"));
    assert!(!hit("example.org"));
    // The same host through another tool is not covered.
    assert!(
        store
            .find_grant(&query(
                "S2",
                "exec",
                "fp:any",
                None,
                Some("docs.example.org")
            ))
            .unwrap()
            .is_none()
    );

    // Revoked from another handle (another process): the first one sees it at once.
    let other = db.open();
    let revoked = other.revoke_grant(&grant.id).unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!hit("docs.example.org"));
    assert!(
        store
            .list_grants(Some("default"), false)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_grants(Some("default"), true).unwrap().len(), 1);
    let err = store.revoke_grant(&grant.id).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyRevoked { .. }));
    assert!(err.to_string().contains(&grant.id));
    let err = store.revoke_grant("01NOGRANT").unwrap_err();
    assert!(err.to_string().contains("01NOGRANT"), "{err}");
}

#[test]
fn a_database_from_before_approvals_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.db");
    {
        // A version-1 database: sessions only.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, agent TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                items INTEGER NOT NULL DEFAULT 0) STRICT;
             CREATE INDEX sessions_agent_updated ON sessions (agent, updated_at);
             CREATE TABLE items (session TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                seq INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (session, seq))
                STRICT, WITHOUT ROWID;
             INSERT INTO sessions VALUES ('S1', 'default', 'x', 'x', 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(store.get_session("S1").unwrap().is_some());
    store
        .create_approval(&exec_request("S1", &["ls"], Duration::from_secs(5)))
        .unwrap();
}

/// A memory change: `apply` runs inside the answer; when it fails nothing is written and
/// the request stays pending, when it succeeds the request is approved.
fn an_applying_answer_commits_only_when_apply_succeeds(db: &Db) {
    let store = db.open();
    let mut req = exec_request("S1", &["unused"], Duration::from_secs(60));
    req.kind = ApprovalKind::MemoryWrite;
    req.payload = Some(json!({"file": "MEMORY.md", "entry": "hello"}));
    let a = store.create_approval(&req).unwrap();
    let failed = store
        .answer_approval_applying(&a.id, &Answer::Once, "cli", |r| {
            assert_eq!(r.status, ApprovalStatus::Pending);
            Err("disk full")
        })
        .unwrap();
    assert_eq!(failed.unwrap_err(), "disk full");
    assert_eq!(
        store.get_approval(&a.id).unwrap().unwrap().status,
        ApprovalStatus::Pending
    );
    // The store is usable right after the rolled-back answer.
    let mut seen = None;
    let done = store
        .answer_approval_applying(&a.id, &Answer::Once, "cli", |r| {
            seen = Some(r.id.clone());
            Ok::<_, &str>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(seen.as_deref(), Some(a.id.as_str()));
    assert_eq!(done.approval.status, ApprovalStatus::Approved);
    let err = store
        .answer_approval(&a.id, &Answer::Once, "cli")
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyAnswered { .. }), "{err}");
}

/// SQLite creates the file on first open: race that twenty times.
#[test]
fn many_handles_creating_a_new_sqlite_file_at_once_all_succeed() {
    for _ in 0..20 {
        many_handles_opening_a_new_database_at_once_all_succeed(&Db::sqlite());
    }
}

fn many_handles_opening_a_new_database_at_once_all_succeed(db: &Db) {
    // `cordon run` creating the database while `cordon approvals list` opens it.
    let barrier = Arc::new(Barrier::new(6));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    db.try_open().map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
}

fn an_expired_agent_grant_covers_nothing(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&exec_request(
            "S1",
            &["make", "test"],
            Duration::from_secs(60),
        ))
        .unwrap();
    let grant = store
        .answer_approval(
            &a.id,
            &Answer::Agent {
                days: 1,
                scope: GrantScope::Exact,
            },
            "cli",
        )
        .unwrap()
        .grant
        .unwrap();
    let argv = words("make test");
    let q = query("S2", "exec", "fp:make test", Some(&argv), None);
    assert!(store.find_grant(&q).unwrap().is_some(), "live grant covers");
    // Age the grant past its expiry, as a day having passed would.
    db.exec(&format!(
        "UPDATE grants SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = '{}'",
        grant.id
    ));
    assert!(
        store.find_grant(&q).unwrap().is_none(),
        "expired grant covers nothing"
    );
}

fn a_request_whose_expiry_does_not_read_as_a_time_cannot_be_approved(db: &Db) {
    let store = db.open();
    let a = store
        .create_approval(&exec_request("S1", &["ls"], Duration::from_secs(60)))
        .unwrap();
    // Text that sorts after any real timestamp but is no time at all.
    db.exec(&format!(
        "UPDATE approvals SET expires_at = 'zzzz' WHERE id = '{}'",
        a.id
    ));
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM approvals WHERE expires_at = 'zzzz' AND id = '{}'",
            a.id
        )),
        1
    );
    let err = store
        .answer_approval(&a.id, &Answer::Once, "cli")
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

/// Two handles revoke one grant at once: exactly one revokes it, the other is told it
/// already was (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the grant's row lock).
fn two_concurrent_revocations_of_a_grant_one_wins(db: &Db) {
    let store = db.open();
    for round in 0..5 {
        let a = store
            .create_approval(&exec_request("S1", &["make"], Duration::from_secs(60)))
            .unwrap();
        let grant = store
            .answer_approval(&a.id, &Answer::Session, "cli")
            .unwrap()
            .grant
            .unwrap();
        assert_eq!(store.get_grant(&grant.id).unwrap(), Some(grant.clone()));
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (id, barrier) = (grant.id.clone(), barrier.clone());
                    scope.spawn(move || {
                        let store = db.open();
                        barrier.wait();
                        store.revoke_grant(&id)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let revoked: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(revoked.len(), 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        match loser {
            StoreError::AlreadyRevoked { id, at } => {
                assert_eq!(id, &grant.id);
                assert_eq!(Some(at), revoked[0].revoked_at.as_ref());
            }
            other => panic!("round {round}: wrong error {other}"),
        }
        assert_eq!(
            store.get_grant(&grant.id).unwrap().as_ref(),
            Some(revoked[0])
        );
    }
    assert!(store.get_grant("01NOGRANT").unwrap().is_none());
    assert!(matches!(
        store.revoke_grant("01NOGRANT"),
        Err(StoreError::NoGrant { .. })
    ));
}

on_both!(
    two_concurrent_revocations_of_a_grant_one_wins,
    an_applying_answer_commits_only_when_apply_succeeds,
    a_request_round_trips_and_survives_reopen,
    two_concurrent_answers_one_wins_the_other_is_told,
    unknown_answered_and_expired_ids_are_clear_errors,
    expire_due_marks_only_overdue_pending_requests,
    list_filters_by_status_agent_and_session,
    a_session_grant_covers_the_exact_action_in_its_session_only,
    an_agent_prefix_grant_covers_longer_argv_in_every_session_and_nothing_else,
    a_grant_wider_than_the_asked_action_is_refused,
    a_host_grant_matches_that_host_exactly_and_revoke_ends_it,
    an_expired_agent_grant_covers_nothing,
    a_request_whose_expiry_does_not_read_as_a_time_cannot_be_approved,
    many_handles_opening_a_new_database_at_once_all_succeed,
);
