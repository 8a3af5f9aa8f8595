//! File provenance on both backends.

mod backend;

use backend::Db;
use cordon_store::StoreError;
use guard::{Confidentiality, Labels};

fn tainted() -> Labels {
    let mut l = Labels::untrusted("tool:http_fetch http://127.0.0.1:1/page");
    l.join(&Labels {
        confidentiality: Confidentiality::Secret,
        secrets: vec!["GH_TOKEN".into()],
        ..Labels::default()
    });
    l
}

/// A label round-trips whole (integrity, confidentiality, sources, secret names), a
/// second write replaces it, another handle sees it, and trusting removes it once.
fn a_file_label_round_trips_is_replaced_and_cleared(db: &Db) {
    let store = db.open();
    let ws = "/home/u/ws";
    assert!(store.file_label(ws, "run.sh").unwrap().is_none());
    let first = store
        .set_file_label(ws, "run.sh", Some("aa"), &tainted(), "s1")
        .unwrap();
    assert_eq!(first.labels, tainted());
    store
        .set_file_label("/other", "run.sh", Some("bb"), &Labels::trusted(), "s9")
        .unwrap();
    store
        .set_file_label(ws, "gone.txt", None, &tainted(), "s1")
        .unwrap();
    let got = db.open().file_label(ws, "run.sh").unwrap().unwrap();
    assert_eq!(got, first);
    assert_eq!(got.sha256.as_deref(), Some("aa"));
    assert_eq!(got.session, "s1");
    let mut worse = tainted();
    worse.join(&Labels::untrusted("tool:exec (network) curl x"));
    store
        .set_file_label(ws, "run.sh", Some("cc"), &worse, "s2")
        .unwrap();
    let got = store.file_label(ws, "run.sh").unwrap().unwrap();
    assert_eq!(
        (got.sha256.as_deref(), got.session.as_str()),
        (Some("cc"), "s2")
    );
    assert_eq!(got.labels.untrusted_sources.len(), 2);
    let all: Vec<(String, String)> = store
        .file_labels(None)
        .unwrap()
        .into_iter()
        .map(|r| (r.workspace, r.path))
        .collect();
    assert_eq!(
        all,
        [
            ("/home/u/ws".to_string(), "gone.txt".to_string()),
            ("/home/u/ws".into(), "run.sh".into()),
            ("/other".into(), "run.sh".into()),
        ]
    );
    assert_eq!(store.file_labels(Some(ws)).unwrap().len(), 2);
    assert!(store.file_labels(Some(ws)).unwrap()[0].sha256.is_none());
    let removed = store.clear_file_label(ws, "run.sh").unwrap();
    assert_eq!(removed.sha256.as_deref(), Some("cc"));
    assert!(store.file_label(ws, "run.sh").unwrap().is_none());
    let err = store.clear_file_label(ws, "run.sh").unwrap_err();
    assert!(matches!(err, StoreError::NoFileLabel { .. }), "{err}");
    assert!(err.to_string().contains("cordon files labels"), "{err}");
    assert!(store.file_label("/other", "run.sh").unwrap().is_some());
}

/// A row whose labels were damaged is an error naming the file: never read as trusted.
fn a_damaged_label_is_an_error_not_a_trusted_file(db: &Db) {
    let store = db.open();
    store
        .set_file_label("/ws", "x.py", Some("aa"), &tainted(), "s1")
        .unwrap();
    db.exec("UPDATE file_labels SET labels = '{\"integrity\":\"sort-of\"}';");
    let err = store.file_label("/ws", "x.py").unwrap_err();
    assert!(err.to_string().contains("/ws:x.py"), "{err}");
    assert!(store.file_labels(None).is_err());
}

on_both!(
    a_file_label_round_trips_is_replaced_and_cleared,
    a_damaged_label_is_an_error_not_a_trusted_file
);
