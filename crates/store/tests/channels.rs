//! Chat channels' pairings, cursors, conversations and queued turns, and the webhook
//! replay guard, on both backends.

mod backend;

use std::time::Duration;

use backend::Db;
use cordon_store::{
    ApprovalMessage, ChatTurnOutcome, NewChatTurn, NewPairing, PairingRequest, PairingStatus,
    StoreError,
};
use serde_json::json;

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

fn turn<'a>(
    conversation: &'a str,
    event_id: &'a str,
    body: &'a serde_json::Value,
) -> NewChatTurn<'a> {
    NewChatTurn {
        conversation,
        event_id,
        turn: body,
    }
}

/// Turns are queued with the cursor, capped per conversation, taken oldest first with
/// their attempts counted, and closed once; another handle (a restarted process) sees
/// what was left open.
fn queued_turns_survive_a_new_handle_in_order(db: &Db) {
    let s = db.open();
    let (a, b, c) = (
        json!({"text": "a"}),
        json!({"text": "b"}),
        json!({"text": "c"}),
    );
    let ids = s
        .accept_chat_turns(
            "telegram",
            &[
                turn("42", "1", &a),
                turn("42", "2", &b),
                turn("42", "3", &c),
                turn("7", "4", &a),
            ],
            2,
            Some("5"),
        )
        .unwrap();
    assert!(
        ids[0].is_some() && ids[1].is_some() && ids[3].is_some(),
        "{ids:?}"
    );
    assert_eq!(
        ids[2], None,
        "the third turn of conversation 42 is over the cap"
    );
    assert_eq!(s.channel_cursor("telegram").unwrap().as_deref(), Some("5"));
    assert!(ids[0] < ids[1]);

    let first = s.start_chat_turn("telegram", "42").unwrap().unwrap();
    assert_eq!((first.id, first.attempts), (ids[0].unwrap(), 1));
    assert_eq!(first.turn, a);
    assert_eq!(first.event_id, "1");
    // The process stops here. A new handle finds both rows of 42 open, the first taken once.
    drop(s);
    let s = db.open();
    let open = s.open_chat_turns("telegram").unwrap();
    let shown: Vec<(&str, u64)> = open
        .iter()
        .map(|r| (r.event_id.as_str(), r.attempts))
        .collect();
    assert_eq!(shown, [("1", 1), ("2", 0), ("4", 0)]);
    assert!(open[0].started_at.is_some() && open[1].started_at.is_none());
    // Taking again gives the same row, its second attempt.
    let again = s.start_chat_turn("telegram", "42").unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (first.id, 2));
    assert!(
        s.finish_chat_turn(again.id, ChatTurnOutcome::Answered, None)
            .unwrap()
    );
    assert!(
        !s.finish_chat_turn(again.id, ChatTurnOutcome::Failed, Some("late"))
            .unwrap(),
        "a row is closed once"
    );
    let second = s.start_chat_turn("telegram", "42").unwrap().unwrap();
    assert_eq!(second.event_id, "2");
    // A closed row frees its place under the cap.
    let d = json!({"text": "d"});
    let more = s
        .accept_chat_turns("telegram", &[turn("42", "6", &d)], 2, None)
        .unwrap();
    assert!(more[0].is_some());
    assert_eq!(
        s.channel_cursor("telegram").unwrap().as_deref(),
        Some("5"),
        "no cursor given"
    );
    s.finish_chat_turn(second.id, ChatTurnOutcome::Failed, Some("model down"))
        .unwrap();
    let last = s.start_chat_turn("telegram", "42").unwrap().unwrap();
    assert_eq!(last.event_id, "6");
    s.finish_chat_turn(last.id, ChatTurnOutcome::Abandoned, None)
        .unwrap();
    assert_eq!(s.start_chat_turn("telegram", "42").unwrap(), None);
    assert_eq!(
        s.start_chat_turn("slack", "7").unwrap(),
        None,
        "per channel"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM chat_queue WHERE outcome = 'failed' AND error = 'model down'"
        ),
        1
    );
}

/// A failed batch leaves neither its rows nor its cursor: the platform sends the updates
/// again rather than their turns being lost.
fn a_batch_and_its_cursor_are_one_transaction(db: &Db) {
    let s = db.open();
    s.set_channel_cursor("telegram", "10").unwrap();
    // A trigger that refuses the batch's second row stands in for a crash between the
    // rows and the cursor.
    db.exec(match db {
        Db::Sqlite { .. } => {
            "CREATE TRIGGER no_x BEFORE INSERT ON chat_queue WHEN NEW.event_id = 'x' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        }
        Db::Postgres(_) => {
            "CREATE FUNCTION no_x() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.event_id = 'x' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER no_x BEFORE INSERT ON chat_queue FOR EACH ROW EXECUTE FUNCTION no_x();"
        }
    });
    let a = json!({"text": "a"});
    let err = s.accept_chat_turns(
        "telegram",
        &[turn("1", "ok", &a), turn("1", "x", &a)],
        16,
        Some("12"),
    );
    assert!(err.is_err());
    assert_eq!(s.channel_cursor("telegram").unwrap().as_deref(), Some("10"));
    assert!(s.open_chat_turns("telegram").unwrap().is_empty());
}

/// The message an approval was posted on is found again by a new handle (a restarted
/// process), per channel, and forgotten once: only one caller edits it.
fn approval_messages_are_kept_and_forgotten_once(db: &Db) {
    let s = db.open();
    let m = |approval: &str, channel: &str| ApprovalMessage {
        approval: approval.into(),
        channel: channel.into(),
        conversation: "42".into(),
        message_id: format!("{approval}-{channel}"),
    };
    s.note_approval_message(&m("A1", "telegram")).unwrap();
    s.note_approval_message(&m("A2", "telegram")).unwrap();
    s.note_approval_message(&m("A1", "slack")).unwrap();
    drop(s);
    let s = db.open();
    assert_eq!(
        s.approval_message("A1", "telegram").unwrap(),
        Some(m("A1", "telegram"))
    );
    let kept: Vec<String> = s
        .approval_messages("telegram")
        .unwrap()
        .into_iter()
        .map(|m| m.approval)
        .collect();
    assert_eq!(kept, ["A1", "A2"]);
    assert!(s.forget_approval_message("A1", "telegram").unwrap());
    assert!(!s.forget_approval_message("A1", "telegram").unwrap());
    assert_eq!(s.approval_message("A1", "telegram").unwrap(), None);
    assert!(s.approval_message("A1", "slack").unwrap().is_some());
}

on_both!(
    a_code_is_issued_once_capped_per_channel_and_decides_once,
    an_expired_code_decides_nothing_and_frees_its_place,
    a_webhook_signature_is_accepted_once,
    cursors_and_conversations_are_kept,
    concurrent_requests_keep_the_cap_and_a_code_decides_once,
    queued_turns_survive_a_new_handle_in_order,
    a_batch_and_its_cursor_are_one_transaction,
    approval_messages_are_kept_and_forgotten_once
);
