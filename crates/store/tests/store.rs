//! The session store on both backends: real SQLite files and a real PostgreSQL server.

mod backend;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use backend::Db;
use cordon_store::{Store, StoreError};
use serde_json::json;

fn sessions_and_items_round_trip_and_survive_reopen(db: &Db) {
    let (a, b) = {
        let store = db.open();
        let a = store.create_session("default").unwrap();
        let b = store.create_session("default").unwrap();
        assert_eq!(a.id.len(), 26, "ULID: {}", a.id);
        assert!(ulid::Ulid::from_string(&a.id).is_ok());
        assert_ne!(a.id, b.id);
        assert_eq!(a.items, 0);
        for i in 0..5 {
            let seq = store
                .append_item(&a.id, &json!({"role": "user", "n": i}))
                .unwrap();
            assert_eq!(seq, i + 1);
        }
        (a, b)
    };
    let store = db.open();
    let items = store.load_items(&a.id).unwrap();
    assert_eq!(
        items,
        (0..5)
            .map(|i| json!({"role": "user", "n": i}))
            .collect::<Vec<_>>()
    );
    assert!(store.load_items(&b.id).unwrap().is_empty());
    let got = store.get_session(&a.id).unwrap().unwrap();
    assert_eq!(got.items, 5);
    assert_eq!(got.agent, "default");
    assert!(got.updated_at > got.created_at, "{got:?}");
    // `a` was used last, so it is the one to resume.
    assert_eq!(store.latest_session("default").unwrap().unwrap().id, a.id);
    store.append_item(&b.id, &json!("x")).unwrap();
    assert_eq!(store.latest_session("default").unwrap().unwrap().id, b.id);
    assert!(store.latest_session("other").unwrap().is_none());
    assert!(store.get_session("01NOPE").unwrap().is_none());
}

fn list_sessions_filters_by_agent(db: &Db) {
    let store = db.open();
    let x = store.create_session("x").unwrap();
    let y = store.create_session("y").unwrap();
    let x2 = store.create_session("x").unwrap();
    let all = store.list_sessions(None).unwrap();
    assert_eq!(all.len(), 3);
    let xs: Vec<String> = store
        .list_sessions(Some("x"))
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(xs, vec![x2.id.clone(), x.id.clone()], "most recent first");
    assert_eq!(store.list_sessions(Some("y")).unwrap()[0].id, y.id);
    assert!(store.list_sessions(Some("z")).unwrap().is_empty());
}

fn unknown_session_is_an_error(db: &Db) {
    let store = db.open();
    let err = store.append_item("missing", &json!(1)).unwrap_err();
    assert!(matches!(err, StoreError::NoSession { .. }), "{err}");
    assert!(err.to_string().contains("missing"));
    assert!(matches!(
        store.load_items("missing"),
        Err(StoreError::NoSession { .. })
    ));
}

fn two_handles_interleave_appends_safely(db: &Db) {
    let first = Arc::new(db.open());
    let second = Arc::new(db.open());
    let session = first.create_session("default").unwrap().id;
    let mut threads = Vec::new();
    for (h, store) in [first.clone(), second.clone(), first.clone(), second.clone()]
        .into_iter()
        .enumerate()
    {
        let session = session.clone();
        threads.push(std::thread::spawn(move || {
            let mut seqs = Vec::new();
            for i in 0..100 {
                seqs.push(
                    store
                        .append_item(&session, &json!({"h": h, "i": i}))
                        .unwrap(),
                );
            }
            seqs
        }));
    }
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=400).collect::<Vec<_>>(),
        "every seq exactly once"
    );
    let items = second.load_items(&session).unwrap();
    assert_eq!(items.len(), 400);
    for h in 0..4 {
        let is: Vec<u64> = items
            .iter()
            .filter(|v| v["h"] == json!(h))
            .map(|v| v["i"].as_u64().unwrap())
            .collect();
        assert_eq!(is, (0..100).collect::<Vec<_>>(), "handle {h} order kept");
    }
    assert_eq!(first.get_session(&session).unwrap().unwrap().items, 400);
}

#[test]
fn file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.db");
    let store = Store::open(&path).unwrap();
    store.create_session("a").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn newer_schema_version_is_refused(db: &Db) {
    drop(db.open());
    db.set_schema_version(99);
    let err = db.try_open().err().expect("newer schema must be refused");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer Cordon"), "{err}");
}

fn foreign_database_is_refused_not_migrated(db: &Db) {
    db.exec("CREATE TABLE precious (x INTEGER); INSERT INTO precious VALUES (1);");
    let err = db
        .try_open()
        .err()
        .expect("foreign database must be refused");
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotCordon { .. }
        ),
        "{err}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM precious"),
        1,
        "the foreign database was not touched"
    );
}

fn missing_table_is_reported(db: &Db) {
    drop(db.open());
    db.exec("DROP TABLE items;");
    let err = db.try_open().err().expect("damaged schema must be refused");
    assert!(err.to_string().contains("`items` is missing"), "{err}");
}

#[test]
fn garbage_file_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&path).err().expect("garbage must be refused");
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("move it aside"), "{shown}");
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

/// Runs only as a child of `two_processes_append_to_one_session`.
#[test]
fn child_appender() {
    let (Ok(session), Ok(tag)) = (
        std::env::var("CORDON_STORE_CHILD_SESSION"),
        std::env::var("CORDON_STORE_CHILD_TAG"),
    ) else {
        return;
    };
    let Some(store) = backend::open_from_env() else {
        return;
    };
    for i in 0..150 {
        store
            .append_item(&session, &json!({"p": tag, "i": i}))
            .unwrap();
    }
}

fn two_processes_append_to_one_session(db: &Db) {
    let store = db.open();
    let (var, value) = db.env();
    let session = store.create_session("default").unwrap().id;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tag| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_appender", "--test-threads=1"])
                .env(var, &value)
                .env("CORDON_STORE_CHILD_SESSION", &session)
                .env("CORDON_STORE_CHILD_TAG", tag)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for i in 0..150 {
        store
            .append_item(&session, &json!({"p": "parent", "i": i}))
            .unwrap();
    }
    for mut child in children {
        assert!(
            child.wait().unwrap().success(),
            "a child process failed to append"
        );
    }
    let items = store.load_items(&session).unwrap();
    assert_eq!(items.len(), 450);
    for tag in ["a", "b", "parent"] {
        let is: Vec<u64> = items
            .iter()
            .filter(|v| v["p"] == json!(tag))
            .map(|v| v["i"].as_u64().unwrap())
            .collect();
        assert_eq!(is, (0..150).collect::<Vec<_>>(), "{tag}'s items in order");
    }
    assert_eq!(store.get_session(&session).unwrap().unwrap().items, 450);
}

/// A store opened on first use opens nothing until a call needs the database; that call
/// opens and migrates it, and what it writes is what an eagerly opened handle reads.
fn opened_on_first_use_is_opened_by_the_first_call_that_needs_it(db: &Db) {
    let lazy = db.on_first_use();
    assert!(!lazy.is_open());
    if let Db::Sqlite { path, .. } = db {
        assert_eq!(lazy.path(), Some(path.as_path()));
        assert_eq!(lazy.location(), path.display().to_string());
        assert!(!path.exists(), "nothing is created before the first use");
    } else {
        assert_eq!(lazy.path(), None);
        assert!(
            lazy.location().starts_with("postgres://"),
            "{}",
            lazy.location()
        );
    }
    let session = lazy.create_session("default").unwrap();
    assert!(lazy.is_open());
    lazy.append_item(&session.id, &json!("first")).unwrap();
    let eager = db.open();
    assert_eq!(eager.load_items(&session.id).unwrap(), vec![json!("first")]);
    // And the other way round, through the same (now open) lazy handle.
    eager.append_item(&session.id, &json!("second")).unwrap();
    assert_eq!(lazy.get_session(&session.id).unwrap().unwrap().items, 2);
    if let Db::Sqlite { path, .. } = db {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// A database an eager open refuses is refused by the first use of a lazy handle with the
/// same error, and by every use after it: never an empty or default store instead.
fn opened_on_first_use_refuses_what_an_eager_open_refuses(db: &Db) {
    drop(db.open());
    let version = db.count(match db {
        Db::Sqlite { .. } => "PRAGMA user_version",
        Db::Postgres(_) => "SELECT version FROM cordon_schema",
    });
    db.set_schema_version(99);
    let lazy = db.on_first_use();
    for _ in 0..2 {
        let err = lazy.create_session("default").expect_err("must be refused");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
        assert!(!lazy.is_open());
    }
    assert!(lazy.list_sessions(None).is_err());
    // A failed open is not remembered: once the database is usable, the next use opens it.
    db.set_schema_version(version);
    lazy.create_session("default").unwrap();
    assert!(lazy.is_open());
}

/// Many threads' first uses at once: the database is opened (and migrated) once, and
/// every call is answered.
fn opened_on_first_use_by_many_threads_at_once(db: &Db) {
    let lazy = Arc::new(db.on_first_use());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let lazy = lazy.clone();
            std::thread::spawn(move || lazy.create_session(&format!("agent{i}")).unwrap().id)
        })
        .collect();
    let ids: std::collections::BTreeSet<String> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(db.open().list_sessions(None).unwrap().len(), 8);
}

on_both!(
    opened_on_first_use_is_opened_by_the_first_call_that_needs_it,
    opened_on_first_use_refuses_what_an_eager_open_refuses,
    opened_on_first_use_by_many_threads_at_once,
    a_failed_write_leaves_no_transaction_open,
    list_sessions_filters_by_agent,
    unknown_session_is_an_error,
    two_handles_interleave_appends_safely,
    newer_schema_version_is_refused,
    foreign_database_is_refused_not_migrated,
    missing_table_is_reported,
    two_processes_append_to_one_session,
    sessions_and_items_round_trip_and_survive_reopen,
);

/// Every write that fails after its transaction began (unknown session, a refused
/// answer, an `apply` that fails, an unknown grant) rolls back and lets go: the same
/// handle writes again at once, and so does another one (on SQLite, a transaction left
/// open would hold the file's write lock and make both wait, then fail).
fn a_failed_write_leaves_no_transaction_open(db: &Db) {
    let first = db.open();
    let second = db.open();
    let session = first.create_session("default").unwrap().id;
    let request = |store: &Store| {
        store
            .create_approval(&cordon_store::NewApproval {
                agent: "default".into(),
                session: session.clone(),
                kind: cordon_store::ApprovalKind::Action,
                tool: "exec".into(),
                action: "exec: make".into(),
                fingerprint: "fp:make".into(),
                argv: Some(vec!["make".into()]),
                host: None,
                arguments: json!({"command": "make"}),
                reason: "ask".into(),
                rule: "exec.mode".into(),
                labels: json!({}),
                untrusted_sources: Vec::new(),
                payload: None,
                timeout: std::time::Duration::from_secs(60),
            })
            .unwrap()
            .id
    };
    let id = request(&first);
    let started = std::time::Instant::now();
    assert!(matches!(
        first.append_item("missing", &json!(1)),
        Err(StoreError::NoSession { .. })
    ));
    assert!(matches!(
        first.append_event("missing", "x", json!({})),
        Err(StoreError::NoSession { .. })
    ));
    let zero_days = cordon_store::Answer::Agent {
        days: 0,
        scope: cordon_store::GrantScope::Exact,
    };
    assert!(matches!(
        first.answer_approval(&id, &zero_days, "cli"),
        Err(StoreError::BadScope { .. })
    ));
    let failed = first
        .answer_approval_applying(&id, &cordon_store::Answer::Once, "cli", |_| Err("no"))
        .unwrap();
    assert_eq!(failed.unwrap_err(), "no");
    assert!(matches!(
        first.revoke_grant("01NOGRANT"),
        Err(StoreError::NoGrant { .. })
    ));
    assert!(matches!(
        first.answer_approval("01NOPE", &cordon_store::Answer::Once, "cli"),
        Err(StoreError::NoApproval { .. })
    ));
    // Another handle, then the same one, write and answer.
    assert_eq!(second.append_item(&session, &json!("b")).unwrap(), 1);
    assert_eq!(first.append_item(&session, &json!("a")).unwrap(), 2);
    assert_eq!(
        second.append_event(&session, "x", json!({})).unwrap().seq,
        1
    );
    let answered = second
        .answer_approval(&id, &cordon_store::Answer::Once, "cli")
        .unwrap();
    assert_eq!(
        answered.approval.status,
        cordon_store::ApprovalStatus::Approved
    );
    let other = request(&first);
    first
        .answer_approval(&other, &cordon_store::Answer::Deny, "cli")
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a write waited on a lock nobody should hold: {:?}",
        started.elapsed()
    );
}
