//! Session event logs on both backends.

mod backend;

use std::sync::Arc;

use backend::Db;
use cordon_store::StoreError;
use serde_json::json;

/// Four writer threads on one handle and, on PostgreSQL, two handles (connections).
fn events_are_numbered_without_gaps_and_replay_from_any_seq(db: &Db) {
    let store = Arc::new(db.open());
    let second = Arc::new(db.open());
    let s = store.create_session("a").unwrap().id;
    let other = store.create_session("a").unwrap().id;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = if t % 2 == 0 {
                store.clone()
            } else {
                second.clone()
            };
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .append_event(&s, "text_delta", json!({"t": t, "i": i}))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store
        .append_event(&other, "turn_started", json!({}))
        .unwrap();
    let all = store.events_after(&s, 0, 1000).unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
    for t in 0..4 {
        let is: Vec<i64> = all
            .iter()
            .filter(|e| e.data["t"] == json!(t))
            .map(|e| e.data["i"].as_i64().unwrap())
            .collect();
        assert_eq!(is, (0..25).collect::<Vec<_>>(), "writer {t} in order");
    }
    let tail = store.events_after(&s, 97, 1000).unwrap();
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [98, 99, 100]
    );
    assert_eq!(store.events_after(&s, 10, 5).unwrap().len(), 5);
    assert_eq!(store.events_after(&other, 0, 10).unwrap()[0].seq, 1);
    assert!(matches!(
        store.append_event("nope", "x", json!({})),
        Err(StoreError::NoSession { .. })
    ));
}

on_both!(events_are_numbered_without_gaps_and_replay_from_any_seq);
