//! The Matrix client against a real Synapse (testkit): messages in DMs and groups, mentions,
//! files and the download cap, buttons as reply commands, edits, an unreachable server
//! and recovery with nothing lost, a 429, a refused token, unreadable and unknown events,
//! and a burst longer than one sync's timeline.

use std::time::{Duration, Instant};

use cordon_channels::matrix::Matrix;
use cordon_channels::{Button, ChannelError, ChatService, FileRef, Inbound, InboundKind};
use serde_json::json;
use testkit::{MatrixUser, Synapse};

struct World {
    server: Synapse,
    bot_user: MatrixUser,
    alice: MatrixUser,
    bot: Matrix,
}

async fn world() -> World {
    let server = Synapse::start();
    let bot_user = server.register("cordon").await;
    let alice = server.register("alice").await;
    let bot = Matrix::new(
        server.url(),
        bot_user.access_token.clone(),
        reqwest::Client::new(),
    );
    let identity = bot.connect().await.expect("connect");
    assert_eq!(identity.user_id, "@cordon:localhost");
    World {
        server,
        bot_user,
        alice,
        bot,
    }
}

/// Call `next` until `n` updates arrived (or 30 s passed), then once more to see that no
/// extra update follows.
async fn collect(bot: &Matrix, n: usize) -> Vec<Inbound> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(bot.next(Duration::from_millis(500)).await.expect("next"));
    }
    got.extend(bot.next(Duration::from_millis(200)).await.expect("next"));
    assert_eq!(got.len(), n, "updates: {got:#?}");
    got
}

/// A DM from alice to the bot, joined by the bot. Returns the room id.
async fn dm(w: &World) -> String {
    let room = w.server.create_room(&w.alice, true, &[&w.bot_user]).await;
    collect(&w.bot, 0).await;
    let members = w.server.joined_members(&w.alice, &room).await;
    assert!(members.contains(&w.bot_user.user_id), "the bot joined");
    room
}

fn text(inbound: &Inbound) -> (&str, bool) {
    match &inbound.kind {
        InboundKind::Text {
            text,
            mentioned,
            forwarded,
            link_preview,
        } => {
            assert!(!forwarded && link_preview.is_none());
            (text, *mentioned)
        }
        other => panic!("not a text: {other:?}"),
    }
}

#[tokio::test]
async fn direct_and_group_messages_with_and_without_mention() {
    let w = world().await;
    let room = dm(&w).await;
    let sent = w.server.send_text(&w.alice, &room, "hello").await;
    // A reaction and a state change are not messages.
    w.server.react(&w.alice, &room, &sent, "👍").await;
    w.server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.notice", "body": "second"}),
        )
        .await;
    let got = collect(&w.bot, 2).await;
    assert_eq!(got[0].event_id, sent);
    assert_eq!(got[0].sender.as_deref(), Some("@alice:localhost"));
    assert_eq!(got[0].conversation.id, room);
    assert!(!got[0].conversation.group);
    assert_eq!(text(&got[0]), ("hello", false));
    assert_eq!(text(&got[1]), ("second", false));

    // A room of three is a group; the bot is mentioned by m.mentions or by its id.
    let carol = w.server.register("carol").await;
    let group = w
        .server
        .create_room(&w.alice, false, &[&w.bot_user, &carol])
        .await;
    w.server.join(&carol, &group).await;
    collect(&w.bot, 0).await;
    w.server.send_text(&w.alice, &group, "just chatting").await;
    w.server
        .send_event(
            &carol,
            &group,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "Cordon: summarise",
                   "m.mentions": {"user_ids": ["@cordon:localhost"]}}),
        )
        .await;
    w.server
        .send_text(&w.alice, &group, "@cordon:localhost what now?")
        .await;
    let got = collect(&w.bot, 3).await;
    assert!(
        got.iter()
            .all(|i| i.conversation.group && i.conversation.id == group)
    );
    assert_eq!(text(&got[0]), ("just chatting", false));
    assert_eq!(text(&got[1]), ("Cordon: summarise", true));
    assert_eq!(got[1].sender.as_deref(), Some("@carol:localhost"));
    assert_eq!(text(&got[2]), ("@cordon:localhost what now?", true));

    // The bot's own messages do not come back.
    w.bot.send(&room, "from the bot", &[]).await.expect("send");
    collect(&w.bot, 0).await;
}

#[tokio::test]
async fn a_file_is_downloaded_within_the_cap_and_refused_beyond_it() {
    let w = world().await;
    let room = dm(&w).await;
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let (event, mxc) = w
        .server
        .send_file(
            &w.alice,
            &room,
            "data.bin",
            bytes.clone(),
            Some("numbers for you"),
        )
        .await;
    let got = collect(&w.bot, 1).await;
    assert_eq!(got[0].event_id, event);
    let InboundKind::File {
        file,
        caption,
        mentioned,
        forwarded,
    } = &got[0].kind
    else {
        panic!("not a file: {:?}", got[0].kind);
    };
    assert_eq!(file.id, mxc);
    assert_eq!(file.name.as_deref(), Some("data.bin"));
    assert_eq!(file.size, Some(10_000));
    assert_eq!(caption.as_deref(), Some("numbers for you"));
    assert!(!mentioned && !forwarded);

    assert_eq!(w.bot.download(file, 10_000).await.expect("download"), bytes);
    // Refused on the announced size, and while streaming when no size was announced.
    assert!(matches!(
        w.bot.download(file, 9_999).await,
        Err(ChannelError::TooLarge { cap: 9_999, .. })
    ));
    let unannounced = FileRef {
        size: None,
        ..file.clone()
    };
    assert!(matches!(
        w.bot.download(&unannounced, 4_096).await,
        Err(ChannelError::TooLarge { cap: 4_096, .. })
    ));
    // A media id that does not exist is an API error, not bytes.
    let missing = FileRef {
        id: "mxc://localhost/doesnotexist".into(),
        name: None,
        size: None,
    };
    assert!(matches!(
        w.bot.download(&missing, 1_000).await,
        Err(ChannelError::Api { .. })
    ));
}

#[tokio::test]
async fn buttons_are_reply_commands_and_an_edit_replaces_the_text() {
    let w = world().await;
    let room = dm(&w).await;
    let buttons = [
        Button {
            label: "Approve".into(),
            data: "appr:01JZ/ok".into(),
        },
        Button {
            label: "Deny".into(),
            data: "appr:01JZ/no".into(),
        },
    ];
    let sent = w
        .bot
        .send(&room, "Run `ls`?", &buttons)
        .await
        .expect("send");
    assert_eq!(sent.conversation, room);
    let shown = w.server.event(&w.alice, &room, &sent.message_id).await;
    assert_eq!(
        shown["content"]["body"],
        "Run `ls`?\n\nApprove: reply !press appr:01JZ/ok\nDeny: reply !press appr:01JZ/no"
    );

    // A Matrix reply naming the message, and the command typed on its own.
    w.server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "!press appr:01JZ/ok",
                   "m.relates_to": {"m.in_reply_to": {"event_id": sent.message_id}}}),
        )
        .await;
    w.server
        .send_text(&w.alice, &room, "!press appr:01JZ/no")
        .await;
    let got = collect(&w.bot, 2).await;
    for (inbound, data) in got.iter().zip(["appr:01JZ/ok", "appr:01JZ/no"]) {
        assert_eq!(inbound.sender.as_deref(), Some("@alice:localhost"));
        assert_eq!(
            inbound.kind,
            InboundKind::Button {
                data: data.into(),
                message_id: sent.message_id.clone(),
                ack: None
            }
        );
    }
    w.bot.ack_button("", "noted").await.expect("ack is a no-op");

    w.bot.edit(&sent, "Approved.").await.expect("edit");
    let latest = &w.server.messages(&w.alice, &room, 1).await[0];
    assert_eq!(latest["content"]["m.new_content"]["body"], "Approved.");
    assert_eq!(latest["content"]["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(
        latest["content"]["m.relates_to"]["event_id"],
        sent.message_id.as_str()
    );
    // The bot's own edit is not an update; alice's edit of her message is a text.
    let hers = w.server.send_text(&w.alice, &room, "typo").await;
    w.server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "* fixed",
                   "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": hers}}),
        )
        .await;
    let got = collect(&w.bot, 2).await;
    assert_eq!(text(&got[0]).0, "typo");
    assert_eq!(text(&got[1]).0, "fixed");
}

/// A loopback TCP forwarder that can be cut: the bot talks to Synapse through it, so the
/// server stays up (others keep writing) while the bot cannot reach it.
struct Gate {
    port: u16,
    target: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    async fn open(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the gate");
        self.port = listener.local_addr().expect("addr").port();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Refuse new connections and cut open ones.
    async fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_and_nothing_is_lost() {
    let mut server = Synapse::start();
    let bot_user = server.register("cordon").await;
    let alice = server.register("alice").await;
    let mut gate = Gate {
        port: 0,
        target: server.port(),
        task: None,
    };
    gate.open().await;
    let base = url::Url::parse(&format!("http://127.0.0.1:{}/", gate.port)).expect("url");
    let bot = Matrix::new(
        base.clone(),
        bot_user.access_token.clone(),
        reqwest::Client::new(),
    );
    bot.connect().await.expect("connect");
    let room = server.create_room(&alice, true, &[&bot_user]).await;
    collect(&bot, 0).await;

    gate.close().await;
    let cursor = bot.since();
    for _ in 0..2 {
        match bot.next(Duration::from_millis(300)).await {
            Err(ChannelError::Unreachable { url, .. }) => assert_eq!(url, base.as_str()),
            other => panic!("expected unreachable, got {other:?}"),
        }
    }
    for n in 1..=3 {
        server
            .send_text(&alice, &room, &format!("while down {n}"))
            .await;
    }
    assert!(bot.next(Duration::from_millis(300)).await.is_err());
    assert_eq!(
        bot.since(),
        cursor,
        "a failed sync does not move the cursor"
    );

    gate.open().await;
    let got = collect(&bot, 3).await;
    let texts: Vec<&str> = got.iter().map(|i| text(i).0).collect();
    assert_eq!(texts, ["while down 1", "while down 2", "while down 3"]);

    // A client resumed from the persisted token gets what came after, and only that.
    server.send_text(&alice, &room, "after the restart").await;
    let resumed = Matrix::new(base, bot_user.access_token.clone(), reqwest::Client::new())
        .with_since(bot.since());
    resumed.connect().await.expect("connect");
    let got = collect(&resumed, 1).await;
    assert_eq!(text(&got[0]).0, "after the restart");

    // The homeserver itself stops and comes back (the client's pooled connections die).
    server.stop();
    assert!(matches!(
        resumed.next(Duration::from_millis(300)).await,
        Err(ChannelError::Unreachable { .. })
    ));
    server.restart();
    server.send_text(&alice, &room, "back again").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        // A connection pooled before the restart may fail once more: an Err, then recovery.
        if let Ok(updates) = resumed.next(Duration::from_millis(500)).await {
            got = updates;
        }
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(text(&got[0]).0, "back again");
}

#[tokio::test]
async fn a_429_carries_the_wait_and_a_refused_token_is_unauthorized() {
    let w = world().await;
    let room = dm(&w).await;
    let admin = w.server.register_admin("admin").await;
    w.server.limit_messages(&admin, &w.bot_user, 1, 1).await;
    let mut limited = None;
    for n in 0..20 {
        if let Err(e) = w.bot.send(&room, &format!("flood {n}"), &[]).await {
            limited = Some(e);
            break;
        }
    }
    match limited {
        Some(ChannelError::Api {
            retry_after: Some(wait),
            detail,
            ..
        }) => {
            assert!(wait >= 1, "{wait}");
            assert!(detail.contains("429"), "{detail}");
        }
        other => panic!("expected a 429 with a wait, got {other:?}"),
    }

    let refused = Matrix::new(
        w.server.url(),
        "syt_not_a_token".into(),
        reqwest::Client::new(),
    );
    assert!(matches!(
        refused.connect().await,
        Err(ChannelError::Unauthorized { .. })
    ));
    assert!(matches!(
        refused.next(Duration::from_millis(100)).await,
        Err(ChannelError::Unauthorized { .. })
    ));
    assert!(matches!(
        refused.send(&room, "hi", &[]).await,
        Err(ChannelError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn unreadable_and_unknown_events_are_malformed_and_the_next_one_arrives() {
    let w = world().await;
    let room = dm(&w).await;
    w.server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            // Synapse insists on string `body` and `msgtype`, not on the rest.
            json!({"msgtype": "m.file", "body": "f", "url": 42}),
        )
        .await;
    w.server
        .send_event(&w.alice, &room, "com.example.poke", json!({"hard": true}))
        .await;
    let location = w
        .server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.location", "body": "here", "geo_uri": "geo:0,0"}),
        )
        .await;
    w.server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.file", "body": "x", "url": "https://elsewhere.example/x"}),
        )
        .await;
    w.server
        .send_event(
            &w.alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "* edit",
                   "m.relates_to": {"rel_type": "m.replace", "event_id": location}}),
        )
        .await;
    w.server.send_text(&w.alice, &room, "still here").await;
    let got = collect(&w.bot, 6).await;
    let reasons: Vec<String> = got[..5]
        .iter()
        .map(|i| match &i.kind {
            InboundKind::Malformed { reason, raw_bytes } => {
                assert!(*raw_bytes > 0);
                assert_eq!(i.sender.as_deref(), Some("@alice:localhost"));
                reason.clone()
            }
            other => panic!("not malformed: {other:?}"),
        })
        .collect();
    assert!(reasons[0].contains("content.url"), "{reasons:?}");
    assert!(reasons[1].contains("com.example.poke"), "{reasons:?}");
    assert!(reasons[2].contains("m.location"), "{reasons:?}");
    assert!(reasons[3].contains("mxc://"), "{reasons:?}");
    assert!(reasons[4].contains("m.new_content"), "{reasons:?}");
    assert_eq!(text(&got[5]).0, "still here");
}

#[tokio::test]
async fn a_burst_longer_than_one_sync_is_delivered_whole_and_in_order() {
    let w = world().await;
    let room = dm(&w).await;
    for n in 0..130 {
        w.server.send_text(&w.alice, &room, &format!("m{n}")).await;
    }
    let got = collect(&w.bot, 130).await;
    let texts: Vec<String> = got.iter().map(|i| text(i).0.to_string()).collect();
    let expected: Vec<String> = (0..130).map(|n| format!("m{n}")).collect();
    assert_eq!(texts, expected);
}
