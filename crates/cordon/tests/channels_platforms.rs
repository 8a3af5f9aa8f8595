//! Slack (a Web API and Socket Mode double) and Matrix (a real Synapse homeserver) through
//! the real `cordon serve`: the same gate and runner as Telegram (`channels.rs`), checked
//! on each platform's own protocol; a Slack socket URL elsewhere is refused and recorded.

mod common;

use std::time::Duration;

use common::{AgentSetup, Install, of_kind, serve_gateway, set_secret, tool};
use serde_json::{Value, json};
use testkit::slack::{SLACK_APP_TOKEN, SLACK_BOT_TOKEN};
use testkit::{FakeSlack, MockLlm, Reply, Script, Synapse};

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_dm_with_an_approval_answered_by_its_button() {
    let llm = MockLlm::start(Script::new(vec![
        tool("exec", json!({ "command": "ls" })),
        Reply::Text("Listed it.".into()),
    ]))
    .await;
    let slack = FakeSlack::start().await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    cfg.push_str(&format!(
        r#"
[channels.slack]
token_secret = "SLACK_BOT"
app_token_secret = "SLACK_APP"
api_url = "{}"
allow = [{{ id = "UOWNER", role = "owner" }}, {{ id = "UUSER", role = "user" }}]
"#,
        slack.api_url()
    ));
    std::fs::write(&inst.config, cfg).unwrap();
    set_secret(&inst, "SLACK_BOT", "slack.com", SLACK_BOT_TOKEN).await;
    set_secret(&inst, "SLACK_APP", "slack.com", SLACK_APP_TOKEN).await;
    let (_serve, _url) = serve_gateway(&inst, &["--bind", "127.0.0.1:0"]).await;

    // A stranger's DM gets a pairing code, and the model hears nothing.
    slack.push_dm("USTRANGER", "hello");
    let dm = FakeSlack::dm_channel("UOWNER");
    let code = until("a pairing code", || {
        slack
            .sent()
            .into_iter()
            .find(|s| s.channel == FakeSlack::dm_channel("USTRANGER"))
    })
    .await;
    assert!(code.text.contains("pairing code"), "{}", code.text);
    assert!(llm.requests().is_empty());

    slack.push_dm("UOWNER", "list the workspace");
    let ask = until("an approval request", || {
        slack
            .sent()
            .into_iter()
            .find(|s| s.channel == dm && s.text.starts_with("Approval needed"))
    })
    .await;
    let buttons = ask.buttons();
    assert_eq!(buttons.len(), 2, "{:#?}", ask.blocks);
    // A user who may not answer approvals presses; then the owner.
    slack.push_block_action(&dm, "UUSER", &ask.ts, &buttons[0].1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    slack.push_block_action(&dm, "UOWNER", &ask.ts, &buttons[0].1);
    until("the answer", || {
        slack
            .sent()
            .into_iter()
            .find(|s| s.channel == dm && s.text == "Listed it.")
    })
    .await;
    let records = inst.audit().await;
    let answered: Vec<&Value> = of_kind(&records, "approval")
        .into_iter()
        .filter(|r| r["data"]["state"] == "answered")
        .collect();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["data"]["by"], "slack:UOWNER");
    let refused = of_kind(&records, "channel")
        .into_iter()
        .find(|r| r["data"]["sender"] == "UUSER")
        .expect("the user's press is recorded");
    assert_eq!(refused["data"]["accepted"], false);
    assert!(
        refused["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("may not answer approvals")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_socket_url_elsewhere_is_refused_and_recorded() {
    let llm = MockLlm::start(Script::new(vec![])).await;
    let slack = FakeSlack::start().await;
    // The attacker's listener: `localhost` is the same machine as the API's 127.0.0.1,
    // but not the API host.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    slack.answer_socket_url(Some(&format!(
        "ws://localhost:{port}/link/?ticket=secret-ticket"
    )));
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    cfg.push_str(&format!(
        "\n[channels.slack]\ntoken_secret = \"SLACK_BOT\"\napp_token_secret = \"SLACK_APP\"\napi_url = \"{}\"\n",
        slack.api_url()
    ));
    std::fs::write(&inst.config, cfg).unwrap();
    set_secret(&inst, "SLACK_BOT", "slack.com", SLACK_BOT_TOKEN).await;
    set_secret(&inst, "SLACK_APP", "slack.com", SLACK_APP_TOKEN).await;
    let (_serve, _url) = serve_gateway(&inst, &["--bind", "127.0.0.1:0"]).await;

    let mut error = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while error.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no error recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let records = inst.audit().await;
        error = of_kind(&records, "error")
            .into_iter()
            .find(|r| r["data"]["stage"] == "channel slack")
            .map(|r| r["data"]["error"].as_str().unwrap_or_default().to_string());
    }
    let error = error.unwrap();
    assert!(
        error.contains("socket URL ws://localhost/link/")
            && error.contains("not the channel's API host `127.0.0.1`"),
        "{error}"
    );
    assert!(!error.contains("secret-ticket"), "{error}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(slack.connections(), 0);
}

#[test]
fn matrix_against_a_real_homeserver() {
    // Synapse is started on the test's own thread (it dies with the thread that started it).
    let synapse = Synapse::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let llm = MockLlm::start(Script::new(vec![Reply::Text("hello from cordon".into())])).await;
        let bot = synapse.register("cordonbot").await;
        let owner = synapse.register("owner").await;
        let stranger = synapse.register("stranger").await;
        let inst = Install::new(&llm.base_url(), AgentSetup::default());
        let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
        cfg.push_str(&format!(
            "\n[channels.matrix]\ntoken_secret = \"MATRIX_TOKEN\"\napi_url = \"{}\"\nallow = [{{ id = \"{}\", role = \"owner\" }}]\n",
            synapse.url(),
            owner.user_id
        ));
        std::fs::write(&inst.config, cfg).unwrap();
        set_secret(&inst, "MATRIX_TOKEN", "localhost", &bot.access_token).await;
        let (_serve, _url) = serve_gateway(&inst, &["--bind", "127.0.0.1:0"]).await;

        let room = synapse.create_room(&owner, true, &[&bot]).await;
        let other = synapse.create_room(&stranger, true, &[&bot]).await;
        // The bot joins the invites; wait until it is in both rooms.
        for (who, r) in [(&owner, &room), (&stranger, &other)] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
            while !synapse.joined_members(who, r).await.contains(&bot.user_id) {
                assert!(tokio::time::Instant::now() < deadline, "the bot never joined {r}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        synapse.send_text(&stranger, &other, "do something for me").await;
        synapse.send_text(&owner, &room, "hi bot").await;
        let bodies = |user, room: String| {
            let s = &synapse;
            async move {
                s.messages(user, &room, 50)
                    .await
                    .into_iter()
                    .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
                    .collect::<Vec<String>>()
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let owner_room = bodies(&owner, room.clone()).await;
            let stranger_room = bodies(&stranger, other.clone()).await;
            if owner_room.iter().any(|b| b == "hello from cordon")
                && stranger_room.iter().any(|b| b.contains("pairing code"))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "owner's room: {owner_room:?}; stranger's: {stranger_room:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(llm.requests().len(), 1, "only the owner reached the model");
        let records = inst.audit().await;
        let inbound: Vec<&Value> = of_kind(&records, "channel")
            .into_iter()
            .filter(|r| r["data"]["action"] == "inbound" && r["data"]["channel"] == "matrix")
            .collect();
        assert!(
            inbound
                .iter()
                .any(|r| r["data"]["sender"] == owner.user_id.as_str() && r["data"]["label"] == "user"),
            "{inbound:#?}"
        );
        assert!(
            inbound
                .iter()
                .any(|r| r["data"]["sender"] == stranger.user_id.as_str() && r["data"]["accepted"] == false),
            "{inbound:#?}"
        );
    });
    drop(synapse);
}
