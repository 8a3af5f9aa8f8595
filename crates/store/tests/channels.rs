//! Chat channels' pairings, cursors and conversations, and the webhook replay guard, on
//! both backends.

mod backend;

use std::time::Duration;

use backend::Db;
use cordon_store::{NewPairing, PairingRequest, PairingStatus, StoreError};

fn ask<'a>(sender: &'a str, code: &'a str) -> NewPairing<'a> {
    NewPairing {
        channel: "telegram",
        sender,
        sender_name: Some("Alice"),
        code,
        ttl: Duration::from_secs(3600),
        max_pending: 3,
    }
}

fn a_code_is_issued_once_capped_per_channel_and_decides_once(db: &Db) {
    let s = db.open();
    let PairingRequest::Issued(first) = s.request_pairing(&ask("1", "AAAA1111")).unwrap() else {
        panic!("not issued")
    };
    assert_eq!(first.code.as_deref(), Some("AAAA1111"));
    // Asking again keeps the same code.
    let PairingRequest::Pending(again) = s.request_pairing(&ask("1", "BBBB2222")).unwrap() else {
        panic!("not pending")
    };
    assert_eq!(again.code.as_deref(), Some("AAAA1111"));
    s.request_pairing(&ask("2", "CCCC3333")).unwrap();
    s.request_pairing(&ask("3", "DDDD4444")).unwrap();
    assert_eq!(
        s.request_pairing(&ask("4", "EEEE5555")).unwrap(),
        PairingRequest::TooMany
    );
    // Another channel has its own cap.
    let other = NewPairing {
        channel: "slack",
        ..ask("4", "FFFF6666")
    };
    assert!(matches!(
        s.request_pairing(&other).unwrap(),
        PairingRequest::Issued(_)
    ));

    let approved = s.decide_pairing("AAAA1111", Some("owner"), "cli").unwrap();
    assert_eq!(approved.status, PairingStatus::Approved);
    assert_eq!(approved.role.as_deref(), Some("owner"));
    assert_eq!(approved.code, None, "the code is spent");
    assert!(matches!(
        s.decide_pairing("AAAA1111", None, "cli"),
        Err(StoreError::NoPairing { .. })
    ));
    assert!(matches!(
        s.request_pairing(&ask("1", "GGGG7777")).unwrap(),
        PairingRequest::Decided(_)
    ));
    let denied = s.decide_pairing("CCCC3333", None, "cli").unwrap();
    assert_eq!(denied.status, PairingStatus::Denied);
    assert_eq!(s.pairings(Some("telegram")).unwrap().len(), 3);
    assert!(s.remove_pairing("telegram", "1").unwrap().is_some());
    assert!(s.pairing("telegram", "1").unwrap().is_none());
}

fn an_expired_code_decides_nothing_and_frees_its_place(db: &Db) {
    let s = db.open();
    let short = NewPairing {
        ttl: Duration::from_millis(1),
        max_pending: 1,
        ..ask("1", "AAAA1111")
    };
    s.request_pairing(&short).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert!(matches!(
        s.decide_pairing("AAAA1111", Some("owner"), "cli"),
        Err(StoreError::NoPairing { .. })
    ));
    // The expired one no longer counts against the cap, and its sender gets a new code.
    let PairingRequest::Issued(r) = s
        .request_pairing(&NewPairing {
            max_pending: 1,
            ..ask("1", "BBBB2222")
        })
        .unwrap()
    else {
        panic!("not issued")
    };
    assert_eq!(r.code.as_deref(), Some("BBBB2222"));
}

fn a_webhook_signature_is_accepted_once(db: &Db) {
    let s = db.open();
    let keep = Duration::from_secs(600);
    assert!(s.note_webhook_delivery("ci", "abc", keep).unwrap());
    assert!(!s.note_webhook_delivery("ci", "abc", keep).unwrap());
    assert!(s.note_webhook_delivery("other", "abc", keep).unwrap());
}

fn cursors_and_conversations_are_kept(db: &Db) {
    let s = db.open();
    assert_eq!(s.channel_cursor("telegram").unwrap(), None);
    s.set_channel_cursor("telegram", "17").unwrap();
    s.set_channel_cursor("telegram", "18").unwrap();
    assert_eq!(s.channel_cursor("telegram").unwrap().as_deref(), Some("18"));
    s.set_conversation_session("telegram", "42", "s1").unwrap();
    assert_eq!(
        s.conversation_session("telegram", "42").unwrap().as_deref(),
        Some("s1")
    );
}

/// Many processes asking at once never hold more than `max_pending` codes, and two
/// answers to one code decide it once.
fn concurrent_requests_keep_the_cap_and_a_code_decides_once(db: &Db) {
    let issued: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                sc.spawn(move || {
                    let s = db.open();
                    let sender = format!("u{i}");
                    let code = format!("CODE{i:04}");
                    matches!(
                        s.request_pairing(&ask(&sender, &code)).unwrap(),
                        PairingRequest::Issued(_)
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(issued, 3);
    let s = db.open();
    let pending = s.pairings(Some("telegram")).unwrap();
    let code = pending[0].code.clone().unwrap();
    let wins: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let code = code.clone();
                sc.spawn(move || {
                    usize::from(db.open().decide_pairing(&code, Some("user"), "cli").is_ok())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
}

on_both!(
    a_code_is_issued_once_capped_per_channel_and_decides_once,
    an_expired_code_decides_nothing_and_frees_its_place,
    a_webhook_signature_is_accepted_once,
    cursors_and_conversations_are_kept,
    concurrent_requests_keep_the_cap_and_a_code_decides_once
);
