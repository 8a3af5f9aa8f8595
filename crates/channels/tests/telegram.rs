//! The Telegram client against `testkit::FakeTelegram`, a Bot API server on loopback.

use std::time::{Duration, Instant};

use cordon_channels::telegram::{ALLOWED_UPDATES, Telegram};
use cordon_channels::{Button, ChannelError, ChatService, FileRef, Inbound, InboundKind, Sent};
use serde_json::json;
use testkit::FakeTelegram;
use testkit::telegram::TgUser;

const TOKEN: &str = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const QUIET: Duration = Duration::from_secs(0);

fn client(tg: &FakeTelegram, token: &str) -> Telegram {
    Telegram::new(
        url::Url::parse(&tg.base_url()).unwrap(),
        token.to_string(),
        reqwest::Client::new(),
    )
}

async fn setup() -> (FakeTelegram, Telegram) {
    let tg = FakeTelegram::start(TOKEN).await;
    let bot = client(&tg, TOKEN);
    bot.connect().await.unwrap();
    (tg, bot)
}

fn alice() -> TgUser {
    TgUser::new(31337, "Alice").with_username("alice")
}

fn bob() -> TgUser {
    TgUser::new(4242, "Bob")
}

/// Poll until `n` updates arrived (each poll short), failing after a few seconds.
async fn collect(bot: &Telegram, n: usize) -> Vec<Inbound> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n}: {out:?}",
            out.len()
        );
        out.extend(bot.next(Duration::from_secs(1)).await.unwrap());
    }
    out
}

async fn one(bot: &Telegram) -> Inbound {
    let mut got = collect(bot, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

fn text(i: &Inbound) -> (&str, bool, bool, Option<&str>) {
    match &i.kind {
        InboundKind::Text {
            text,
            mentioned,
            forwarded,
            link_preview,
        } => (text, *mentioned, *forwarded, link_preview.as_deref()),
        other => panic!("not text: {other:?}"),
    }
}

fn malformed(i: &Inbound) -> &str {
    match &i.kind {
        InboundKind::Malformed { reason, .. } => reason,
        other => panic!("not malformed: {other:?}"),
    }
}

#[tokio::test]
async fn connect_learns_the_bots_id_and_mention() {
    let (tg, bot) = setup().await;
    let me = bot.connect().await.unwrap();
    assert_eq!(me.user_id, "7000000001");
    assert_eq!(me.mention.as_deref(), Some("@cordon_test_bot"));
    // Learnt once.
    assert_eq!(tg.requests("getMe"), 1);
}

#[tokio::test]
async fn a_direct_message_arrives_with_the_senders_id() {
    let (tg, bot) = setup().await;
    let id = tg.message(&alice()).text("hello").push();
    let i = one(&bot).await;
    assert_eq!(i.event_id, id.to_string());
    assert_eq!(i.sender.as_deref(), Some("31337"));
    assert_eq!(i.sender_name.as_deref(), Some("Alice (@alice)"));
    assert_eq!(i.conversation.id, "31337");
    assert!(!i.conversation.group);
    assert_eq!(text(&i), ("hello", false, false, None));
    assert_eq!(bot.offset(), id + 1);
}

#[tokio::test]
async fn group_messages_say_whether_the_bot_was_mentioned() {
    let (tg, bot) = setup().await;
    let group = -1001234567890;
    tg.message(&alice())
        .in_group(group, "Team")
        .text("just chatting")
        .push();
    tg.message(&alice())
        .in_group(group, "Team")
        .text("hey 👋")
        .mention_bot()
        .push();
    tg.message(&bob())
        .in_group(group, "Team")
        .text("ask")
        .mention("alice")
        .push();
    tg.message(&bob())
        .in_group(-77, "Small")
        .text("you,")
        .text_mention_bot()
        .push();
    let got = collect(&bot, 4).await;
    let seen: Vec<(&str, bool, bool)> = got
        .iter()
        .map(|i| (i.conversation.id.as_str(), i.conversation.group, text(i).1))
        .collect();
    assert_eq!(
        seen,
        [
            ("-1001234567890", true, false),
            ("-1001234567890", true, true),
            ("-1001234567890", true, false),
            ("-77", true, true),
        ]
    );
    assert_eq!(text(&got[1]).0, "hey 👋 @cordon_test_bot");
}

#[tokio::test]
async fn forwarded_messages_and_link_previews_are_marked() {
    let (tg, bot) = setup().await;
    tg.message(&alice())
        .forwarded_from(&bob())
        .text("bob said this")
        .push();
    tg.message(&alice())
        .forwarded_from_hidden("Someone")
        .text("and this")
        .push();
    tg.message(&alice())
        .text("read https://example.com/x")
        .link_preview("https://example.com/x")
        .push();
    let got = collect(&bot, 3).await;
    // The sender of a forward is the one who forwarded it, never the original author.
    assert_eq!(got[0].sender.as_deref(), Some("31337"));
    assert_eq!(text(&got[0]), ("bob said this", false, true, None));
    assert!(text(&got[1]).2);
    assert_eq!(
        text(&got[2]),
        (
            "read https://example.com/x",
            false,
            false,
            Some("https://example.com/x")
        )
    );
}

#[tokio::test]
async fn a_file_is_downloaded_within_its_cap() {
    let (tg, bot) = setup().await;
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    tg.message(&alice())
        .in_group(-5, "G")
        .document("../../report.pdf", &bytes)
        .caption("summarise")
        .mention_bot()
        .push();
    tg.message(&alice()).photo(b"\xff\xd8jpeg").push();
    let got = collect(&bot, 2).await;
    let InboundKind::File {
        file,
        caption,
        mentioned,
        forwarded,
    } = &got[0].kind
    else {
        panic!("{got:?}")
    };
    assert_eq!(file.name.as_deref(), Some("../../report.pdf"));
    assert_eq!(file.size, Some(100_000));
    assert_eq!(caption.as_deref(), Some("summarise @cordon_test_bot"));
    assert!(*mentioned && !*forwarded);
    assert_eq!(bot.download(file, 100_000).await.unwrap(), bytes);

    // Announced over the cap: refused before anything is fetched.
    let downloads = tg.requests("file");
    let e = bot.download(file, 99_999).await.unwrap_err();
    assert!(
        matches!(e, ChannelError::TooLarge { cap: 99_999, .. }),
        "{e}"
    );
    assert_eq!(tg.requests("file"), downloads);

    let InboundKind::File { file: photo, .. } = &got[1].kind else {
        panic!("{got:?}")
    };
    assert_eq!(bot.download(photo, 1024).await.unwrap(), b"\xff\xd8jpeg");
}

#[tokio::test]
async fn an_unannounced_size_is_capped_while_streaming() {
    let (tg, bot) = setup().await;
    let bytes = vec![7u8; 200_000];
    tg.message(&alice())
        .document("big.bin", &bytes)
        .without_file_size()
        .push();
    let i = one(&bot).await;
    let InboundKind::File { file, .. } = &i.kind else {
        panic!("{i:?}")
    };
    assert_eq!(file.size, None);
    let e = bot.download(file, 50_000).await.unwrap_err();
    assert!(
        matches!(e, ChannelError::TooLarge { cap: 50_000, .. }),
        "{e}"
    );
    // It was fetched (nothing said it was too large) and cut short.
    assert_eq!(tg.requests("file"), 1);
    assert_eq!(bot.download(file, 200_000).await.unwrap().len(), 200_000);
    // A file id Telegram does not know.
    let bogus = FileRef {
        id: "nope".into(),
        name: None,
        size: None,
    };
    let e = bot.download(&bogus, 10).await.unwrap_err();
    assert!(e.to_string().contains("invalid file_id"), "{e}");
}

#[tokio::test]
async fn buttons_are_sent_pressed_acknowledged_and_removed_by_an_edit() {
    let (tg, bot) = setup().await;
    tg.message(&alice()).text("run it").push();
    one(&bot).await;
    let buttons = [
        Button {
            label: "Approve".into(),
            data: "ap:01JABC:allow".into(),
        },
        Button {
            label: "Deny".into(),
            data: "ap:01JABC:deny".into(),
        },
    ];
    let sent = bot
        .send("31337", "exec `rm -rf build`: approve?", &buttons)
        .await
        .unwrap();
    assert_eq!(sent.conversation, "31337");
    let calls = tg.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(calls[0].method, "sendMessage");
    assert_eq!(calls[0].chat_id, 31337);
    assert_eq!(calls[0].message_id.to_string(), sent.message_id);
    assert_eq!(calls[0].text, "exec `rm -rf build`: approve?");
    let pressed: Vec<(&str, &str)> = calls[0]
        .buttons
        .iter()
        .flatten()
        .map(|b| (b.text.as_str(), b.callback_data.as_str()))
        .collect();
    assert_eq!(
        pressed,
        [("Approve", "ap:01JABC:allow"), ("Deny", "ap:01JABC:deny")]
    );
    // Plain text, no previews: the agent's words cannot become markup or make Telegram
    // fetch a URL.
    assert!(calls[0].link_preview_disabled);
    assert_eq!(calls[0].parse_mode, None);

    let message_id: i64 = sent.message_id.parse().unwrap();
    let query = tg.press(&alice(), 31337, message_id, "ap:01JABC:allow");
    let i = one(&bot).await;
    assert_eq!(i.sender.as_deref(), Some("31337"));
    assert_eq!(i.conversation.id, "31337");
    assert_eq!(
        i.kind,
        InboundKind::Button {
            data: "ap:01JABC:allow".into(),
            message_id: sent.message_id.clone(),
            ack: Some(query.clone()),
        }
    );
    bot.ack_button(&query, "Approved").await.unwrap();
    let answered = tg.answered();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].callback_query_id, query);
    assert_eq!(answered[0].text.as_deref(), Some("Approved"));

    bot.edit(&sent, "Approved by Alice").await.unwrap();
    let calls = tg.wait_for_sent(2, Duration::from_secs(5)).await;
    assert_eq!(calls[1].method, "editMessageText");
    assert_eq!(calls[1].message_id, message_id);
    assert_eq!(calls[1].text, "Approved by Alice");
    assert!(calls[1].buttons.is_empty());
    // Editing to what it already says is done, not an error.
    bot.edit(&sent, "Approved by Alice").await.unwrap();
    assert_eq!(tg.sent().len(), 2);
}

#[tokio::test]
async fn forged_button_data_is_returned_verbatim() {
    let (tg, bot) = setup().await;
    tg.message(&alice()).text("hi").push();
    one(&bot).await;
    let sent = bot.send("31337", "q", &[]).await.unwrap();
    let forged = "ap:01JOTHER:allow\u{0}💥";
    tg.press(&bob(), 31337, sent.message_id.parse().unwrap(), forged);
    let i = one(&bot).await;
    assert_eq!(i.sender.as_deref(), Some("4242"));
    let InboundKind::Button { data, .. } = &i.kind else {
        panic!("{i:?}")
    };
    assert_eq!(data, forged);
}

#[tokio::test]
async fn sending_errors_are_reported() {
    let (tg, bot) = setup().await;
    // A chat the bot has never seen.
    let e = bot.send("999", "hello", &[]).await.unwrap_err();
    assert!(e.to_string().contains("chat not found"), "{e}");
    tg.message(&alice()).text("hi").push();
    one(&bot).await;
    // Button data over Telegram's 64 bytes: refused before sending.
    let long = Button {
        label: "x".into(),
        data: "d".repeat(65),
    };
    let e = bot.send("31337", "q", &[long]).await.unwrap_err();
    assert!(e.to_string().contains("65 bytes"), "{e}");
    assert_eq!(tg.requests("sendMessage"), 1);
    // Over 4096 characters: Telegram's own refusal reaches the caller.
    let e = bot.send("31337", &"é".repeat(4097), &[]).await.unwrap_err();
    assert!(e.to_string().contains("message is too long"), "{e}");
    // Editing a message the bot never sent.
    let e = bot
        .edit(
            &Sent {
                conversation: "31337".into(),
                message_id: "1".into(),
            },
            "x",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("message to edit not found"), "{e}");
    // Acknowledging a press twice.
    let sent = bot.send("31337", "q", &[]).await.unwrap();
    let q = tg.press(&alice(), 31337, sent.message_id.parse().unwrap(), "d");
    one(&bot).await;
    bot.ack_button(&q, "").await.unwrap();
    let e = bot.ack_button(&q, "").await.unwrap_err();
    assert!(e.to_string().contains("query is too old"), "{e}");
}

#[tokio::test]
async fn a_server_that_is_down_loses_nothing() {
    let (tg, bot) = setup().await;
    tg.message(&alice()).text("before").push();
    assert_eq!(text(&one(&bot).await).0, "before");
    tg.set_down(true);
    let e = bot.next(QUIET).await.unwrap_err();
    assert!(e.to_string().contains("HTTP 502"), "{e}");
    let e = bot.send("31337", "x", &[]).await.unwrap_err();
    assert!(matches!(e, ChannelError::Api { .. }), "{e}");
    let ids: Vec<i64> = (1..=3)
        .map(|n| tg.message(&alice()).text(&format!("while down {n}")).push())
        .collect();
    // Still down: errors, and the cursor has not moved.
    let offset = bot.offset();
    assert!(bot.next(QUIET).await.is_err());
    assert_eq!(bot.offset(), offset);
    tg.set_down(false);
    let got = collect(&bot, 3).await;
    let texts: Vec<&str> = got.iter().map(|i| text(i).0).collect();
    assert_eq!(texts, ["while down 1", "while down 2", "while down 3"]);
    let got_ids: Vec<String> = got.iter().map(|i| i.event_id.clone()).collect();
    let want: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    assert_eq!(got_ids, want);
    // Nothing twice.
    assert!(bot.next(QUIET).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_without_the_token() {
    let tg = FakeTelegram::start(TOKEN).await;
    let bot = client(&tg, TOKEN);
    let base = tg.base_url();
    drop(tg);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = bot.next(QUIET).await.unwrap_err();
    assert!(matches!(e, ChannelError::Unreachable { .. }), "{e}");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains(base.trim_end_matches('/')), "{shown}");
    assert!(!shown.contains("AAHdqTcv"), "the token leaked: {shown}");
}

#[tokio::test]
async fn a_429_says_how_long_to_wait() {
    let (tg, bot) = setup().await;
    tg.message(&alice()).text("hi").push();
    tg.rate_limit_next(7);
    let e = bot.next(QUIET).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(7), "{e}");
    assert!(matches!(e, ChannelError::Api { .. }));
    assert_eq!(text(&one(&bot).await).0, "hi");
    tg.rate_limit_next(3);
    let e = bot.send("31337", "x", &[]).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(3), "{e}");
}

#[tokio::test]
async fn a_refused_token_is_unauthorized() {
    let tg = FakeTelegram::start(TOKEN).await;
    let bot = client(&tg, "7000000001:wrong");
    let e = bot.connect().await.unwrap_err();
    assert!(matches!(e, ChannelError::Unauthorized { .. }), "{e}");
    let e = bot.next(QUIET).await.unwrap_err();
    assert!(matches!(e, ChannelError::Unauthorized { .. }), "{e}");
    assert!(!format!("{e}").contains("wrong"));
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn malformed_updates_and_unknown_types_do_not_stop_the_next_good_one() {
    let (tg, bot) = setup().await;
    tg.push_raw(
        json!({"message": {"message_id": 1, "date": 1, "chat": "not a chat", "text": "x"}}),
    );
    tg.push_raw(json!({"message": {"message_id": 2, "date": 1,
        "from": {"id": "31337", "is_bot": false, "first_name": "A"},
        "chat": {"id": 31337, "type": "private"}, "text": "x"}}));
    tg.push_update(
        "channel_post",
        json!({"message_id": 3, "date": 1, "chat": {"id": -1009, "type": "channel", "title": "News"}, "text": "x"}),
    );
    tg.push_update(
        "edited_message",
        json!({"message_id": 4, "date": 1, "edit_date": 2,
            "from": {"id": 31337, "is_bot": false, "first_name": "Alice"},
            "chat": {"id": 31337, "type": "private"}, "text": "changed"}),
    );
    tg.message(&alice()).text("still here").push();
    let got = collect(&bot, 5).await;
    assert_eq!(malformed(&got[0]), "message.chat: not an object");
    assert_eq!(got[0].sender, None);
    assert_eq!(malformed(&got[1]), "message.from.id: not an integer");
    assert_eq!(got[1].conversation.id, "31337");
    assert_eq!(malformed(&got[2]), "channel_post is not handled");
    assert_eq!(malformed(&got[3]), "edited_message is not handled");
    assert_eq!(got[3].sender.as_deref(), Some("31337"));
    assert_eq!(text(&got[4]).0, "still here");
    for i in &got[..4] {
        let InboundKind::Malformed { raw_bytes, .. } = i.kind else {
            unreachable!()
        };
        assert!(raw_bytes > 20, "{i:?}");
    }
    // Each was returned once.
    assert!(bot.next(QUIET).await.unwrap().is_empty());
    assert_eq!(tg.pending_updates(), 0);
}

#[tokio::test]
async fn types_not_asked_for_are_not_delivered() {
    let (tg, bot) = setup().await;
    assert!(!ALLOWED_UPDATES.contains(&"poll_answer"));
    tg.push_update(
        "poll_answer",
        json!({"poll_id": "1", "user": {"id": 5}, "option_ids": [0]}),
    );
    tg.message(&alice()).text("after").push();
    let got = collect(&bot, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]).0, "after");
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_update_arrives_without_busy_polling() {
    let (tg, bot) = setup().await;
    // A quiet period is one request, however long it waits.
    let start = Instant::now();
    assert!(bot.next(Duration::from_secs(1)).await.unwrap().is_empty());
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(tg.requests("getUpdates"), 1);

    let start = Instant::now();
    let poll = bot.next(Duration::from_secs(20));
    let push = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tg.message(&alice()).text("now").push();
    };
    let (got, ()) = tokio::join!(poll, push);
    let got = got.unwrap();
    assert_eq!(text(&got[0]).0, "now");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(tg.requests("getUpdates"), 2);
}

#[tokio::test]
async fn the_offset_can_be_persisted_and_resumed() {
    let (tg, bot) = setup().await;
    tg.message(&alice()).text("one").push();
    tg.message(&alice()).text("two").push();
    let got = collect(&bot, 2).await;
    assert_eq!(got.len(), 2);
    let saved = bot.offset();
    tg.message(&alice()).text("three").push();

    // A restarted client that resumes from the saved offset gets only what is new.
    let resumed = client(&tg, TOKEN);
    resumed.set_offset(saved);
    let got = collect(&resumed, 1).await;
    assert_eq!(text(&got[0]).0, "three");
    // Its next poll confirms "three".
    assert!(resumed.next(QUIET).await.unwrap().is_empty());

    // One that forgets it is given again what was never confirmed: nothing is lost.
    tg.message(&alice()).text("four").push();
    let a = client(&tg, TOKEN);
    let first = collect(&a, 1).await;
    let fresh = client(&tg, TOKEN);
    let again = collect(&fresh, 1).await;
    assert_eq!(text(&first[0]).0, "four");
    assert_eq!(first, again);
}

#[tokio::test]
async fn a_second_instance_polling_the_same_bot_is_a_conflict() {
    let (tg, bot) = setup().await;
    let other = client(&tg, TOKEN);
    other.connect().await.unwrap();
    let older = bot.next(Duration::from_secs(10));
    let newer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        other.next(QUIET).await
    };
    let (older, newer) = tokio::join!(older, newer);
    let e = older.unwrap_err();
    assert!(e.to_string().contains("409 Conflict"), "{e}");
    assert!(newer.unwrap().is_empty());
}
