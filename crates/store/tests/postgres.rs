//! What only the PostgreSQL backend has: its connection thread (usable from async code),
//! and the URL checks that keep the unencrypted connection on this host.

use cordon_store::{Store, StoreError};
use serde_json::json;
use testkit::PgCluster;

/// The sync client would panic if driven on a Tokio worker; the store's own thread
/// keeps it off the runtime, whatever the flavour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_from_inside_a_multi_thread_runtime() {
    let cluster = PgCluster::start();
    let store = std::sync::Arc::new(Store::connect(&cluster.url(), None).unwrap());
    let session = store.create_session("default").unwrap().id;
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (store, session) = (store.clone(), session.clone());
            tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .append_event(&session, "x", json!({"t": t, "i": i}))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.events_after(&session, 0, 100).unwrap().len(), 40);
    // Dropped inside the runtime too.
    drop(store);
}

#[tokio::test]
async fn the_store_works_from_inside_a_current_thread_runtime() {
    let cluster = PgCluster::start();
    let store = Store::connect(&cluster.url(), None).unwrap();
    let s = store.create_session("default").unwrap();
    store.append_item(&s.id, &json!({"role": "user"})).unwrap();
    assert_eq!(store.load_items(&s.id).unwrap().len(), 1);
    assert!(store.path().is_none());
    assert!(
        store.location().starts_with("postgres://cordon@"),
        "{}",
        store.location()
    );
}

#[test]
fn a_host_that_is_not_loopback_is_refused_before_connecting() {
    for url in [
        "postgres://cordon@db.example.com/cordon",
        "postgres://cordon@10.0.0.5:5432/cordon",
        "postgres://cordon@127.0.0.1,db.example.com/cordon",
        "postgres:///cordon?host=db.example.com",
        "postgres://cordon@localhost/cordon?hostaddr=192.0.2.1",
    ] {
        let err = Store::connect(url, None).err().expect(url);
        assert!(matches!(err, StoreError::BadUrl { .. }), "{url}: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains("[store] url") && shown.contains("TLS"),
            "{shown}"
        );
    }
}

#[test]
fn a_password_in_the_url_is_refused_and_not_shown() {
    let err = Store::connect("postgres://cordon:hunter2@127.0.0.1/cordon", None)
        .err()
        .expect("password in URL");
    let shown = err.to_string();
    assert!(shown.contains("password_env"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn a_server_that_is_not_there_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://cordon@/cordon?host={}", dir.path().display());
    let err = Store::connect(&url, None).err().expect("nothing listens");
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("[store] url"), "{err}");
}

/// The client does not reconnect: once the server dropped the connection, every call is
/// an error that says to restart (never a silent success), and nothing was approved.
#[test]
fn a_lost_connection_is_an_error_that_says_to_restart_and_approves_nothing() {
    let cluster = PgCluster::start();
    let store = Store::connect(&cluster.url(), None).unwrap();
    let id = store
        .create_approval(&cordon_store::NewApproval {
            agent: "default".into(),
            session: "S1".into(),
            kind: cordon_store::ApprovalKind::Action,
            tool: "exec".into(),
            action: "exec: ls".into(),
            fingerprint: "fp:ls".into(),
            argv: Some(vec!["ls".into()]),
            host: None,
            arguments: json!({"command": "ls"}),
            reason: "ask".into(),
            rule: "exec.mode".into(),
            labels: json!({}),
            untrusted_sources: Vec::new(),
            payload: None,
            timeout: std::time::Duration::from_secs(60),
        })
        .unwrap()
        .id;
    cluster.psql(
        "cordon",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'cordon' AND pid <> pg_backend_pid()",
    );
    // The first call may see the server's goodbye; from then on the connection is closed.
    assert!(
        store
            .answer_approval(&id, &cordon_store::Answer::Once, "cli")
            .is_err()
    );
    let err = store
        .answer_approval(&id, &cordon_store::Answer::Once, "cli")
        .unwrap_err();
    assert!(matches!(err, StoreError::ConnectionLost { .. }), "{err}");
    assert!(err.to_string().contains("restart Cordon"), "{err}");
    let again = Store::connect(&cluster.url(), None).unwrap();
    assert_eq!(
        again.get_approval(&id).unwrap().unwrap().status,
        cordon_store::ApprovalStatus::Pending
    );
}
