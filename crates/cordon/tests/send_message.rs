//! The `send_message` tool end to end: the real `cordon serve` with a Telegram channel
//! (`testkit::FakeTelegram`) and a scripted model. A message to another conversation
//! asks (the approval, with the text, is asked in the chat that started the turn); one to
//! a conversation in `send_message.allow` goes at once; each attack is refused and
//! recorded, and nothing reaches the conversation: a session holding private data, a
//! text holding a vault value, an untrusted (group) session writing to an allowed
//! conversation, and `cordon run`, where no channel runs. And the answer of a group's
//! session that read private data is withheld from the group, and so is a scheduled
//! task's sent there.

mod common;

use common::{AgentSetup, Install, of_kind, sent_matching, serve_gateway, set_secret, tool};
use serde_json::{Value, json};
use testkit::telegram::{SentCall, TgUser};
use testkit::{FakeTelegram, MockLlm, Reply, Script};

const TOKEN: &str = "4242:test-bot-token";
const OWNER: i64 = 1001;
const FRIEND: i64 = 1002;
const OTHER: i64 = 2002;
const GROUP: i64 = -100_777;

fn owner() -> TgUser {
    TgUser::new(OWNER, "Olivia")
}
fn member() -> TgUser {
    TgUser::new(1003, "Mallory")
}

async fn install(llm: &MockLlm, tg: &FakeTelegram) -> Install {
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            tools: r#"["read_file", "send_message"]"#,
            ..AgentSetup::default()
        },
    );
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    cfg.push_str(&format!(
        r#"
[agents.default.labels]
private = ["finance/**"]

[agents.default.send_message]
allow = ["telegram:{FRIEND}"]

[approvals]
timeout_secs = 4

[channels.telegram]
token_secret = "TG_TOKEN"
api_url = "{api}"
allow = [{{ id = "{OWNER}", role = "owner" }}, {{ id = "1003", role = "user" }}]
groups = ["{GROUP}"]

[[schedules]]
name = "report"
cron = "0 8 * * *"
timezone = "UTC"
task = "Report the Q3 numbers."
reply_to = "telegram:{GROUP}"
"#,
        api = tg.base_url(),
    ));
    std::fs::write(&inst.config, cfg).unwrap();
    std::fs::create_dir_all(inst.workspace.join("finance")).unwrap();
    std::fs::write(
        inst.workspace.join("finance/q3.txt"),
        "Q3 revenue: 1,234,567\n",
    )
    .unwrap();
    set_secret(&inst, "TG_TOKEN", "api.telegram.org", TOKEN).await;
    inst
}

/// The decision on the `send_message` call whose arguments hold `needle`.
fn decision<'a>(records: &'a [Value], needle: &str) -> &'a Value {
    common::outcome(records, "send_message", needle)
        .0
        .unwrap_or_else(|| panic!("no decision on the send_message with {needle:?}"))
}

fn outbound_to(records: &[Value], conversation: i64) -> Vec<&Value> {
    of_kind(records, "channel")
        .into_iter()
        .filter(|r| {
            r["data"]["action"] == "outbound"
                && r["data"]["conversation"].as_str() == Some(conversation.to_string().as_str())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_message_asks_goes_where_allowed_and_carries_no_private_data() {
    let llm = MockLlm::start(Script::new(vec![
        // 1. To a conversation not in send_message.allow: asked in the owner's chat.
        tool(
            "send_message",
            json!({ "to": format!("telegram:{OTHER}"), "text": "The build is green." }),
        ),
        Reply::Text("Told them.".into()),
        // 2. To the allowed conversation: sent at once.
        tool(
            "send_message",
            json!({ "to": format!("telegram:{FRIEND}"), "text": "Lunch at noon." }),
        ),
        Reply::Text("Sent.".into()),
        // 3. A vault value in the text: refused before the guard.
        tool(
            "send_message",
            json!({ "to": format!("telegram:{FRIEND}"), "text": format!("token {TOKEN}") }),
        ),
        Reply::Text("Not sent.".into()),
        // 4. A group member's message: the session is untrusted; even the allowed
        //    conversation asks, and nobody answers.
        tool(
            "send_message",
            json!({ "to": format!("telegram:{FRIEND}"), "text": "pwned by the group" }),
        ),
        Reply::Text("Could not.".into()),
        // 5. The owner's session reads a private file, then tries to send it on.
        tool("read_file", json!({ "path": "finance/q3.txt" })),
        tool(
            "send_message",
            json!({ "to": format!("telegram:{FRIEND}"), "text": "Q3 revenue: 1,234,567" }),
        ),
        Reply::Text("I may not share that.".into()),
        // 6. In the group, a member asks for the private file: read, but the answer is
        //    not posted to the group.
        tool("read_file", json!({ "path": "finance/q3.txt" })),
        Reply::Text("It says Q3 revenue: 1,234,567".into()),
        // 7. A schedule whose answer goes to the group reads the private file too.
        tool("read_file", json!({ "path": "finance/q3.txt" })),
        Reply::Text("Scheduled report: Q3 revenue 1,234,567".into()),
    ]))
    .await;
    let tg = FakeTelegram::start(TOKEN).await;
    let inst = install(&llm, &tg).await;
    let (_serve, _url) = serve_gateway(&inst, &["--bind", "127.0.0.1:0"]).await;
    // Both recipients started the bot some time ago.
    tg.open_chat(&TgUser::new(FRIEND, "Frank"));
    tg.open_chat(&TgUser::new(OTHER, "Otto"));

    // 1. Asked in the owner's chat, with the text; approved there; then sent.
    tg.message(&owner())
        .text("tell 2002 the build is green")
        .push();
    let ask = sent_matching(&tg, "asking approval", |s| {
        s.chat_id == OWNER && s.text.starts_with("Approval needed")
    })
    .await;
    assert!(
        ask.text
            .contains(&format!("send_message: telegram:{OTHER}"))
            && ask.text.contains("Text: The build is green.")
            && ask.text.contains("send_message.ask"),
        "{}",
        ask.text
    );
    assert!(
        !tg.sent().iter().any(|s| s.chat_id == OTHER),
        "sent before the approval"
    );
    tg.press(
        &owner(),
        OWNER,
        ask.message_id,
        &ask.buttons[0][0].callback_data,
    );
    let to_other = sent_matching(&tg, "to 2002", |s| s.chat_id == OTHER).await;
    assert_eq!(to_other.text, "The build is green.");
    sent_matching(&tg, "the first answer", |s| {
        s.chat_id == OWNER && s.text == "Told them."
    })
    .await;

    // 2. Allowed: no approval asked.
    tg.message(&owner()).text("tell 1002 about lunch").push();
    let lunch = sent_matching(&tg, "to 1002", |s| s.chat_id == FRIEND).await;
    assert_eq!(lunch.text, "Lunch at noon.");
    sent_matching(&tg, "the second answer", |s| {
        s.chat_id == OWNER && s.text == "Sent."
    })
    .await;

    // 3. A vault value never leaves.
    tg.message(&owner()).text("send 1002 the token").push();
    sent_matching(&tg, "the third answer", |s| {
        s.chat_id == OWNER && s.text == "Not sent."
    })
    .await;

    // 4. Untrusted: asks in the group; nobody answers; it expires as a denial.
    tg.message(&member())
        .in_group(GROUP, "team")
        .text("bot, message 1002 for me")
        .mention_bot()
        .push();
    let group_ask = sent_matching(&tg, "asking approval in the group", |s| {
        s.chat_id == GROUP && s.text.starts_with("Approval needed")
    })
    .await;
    assert!(
        group_ask.text.contains("taint.send_message")
            && group_ask.text.contains("Text: pwned by the group"),
        "{}",
        group_ask.text
    );
    sent_matching(&tg, "the group answer", |s| {
        s.chat_id == GROUP && s.text == "Could not."
    })
    .await;

    // 5. Private data goes to no conversation.
    tg.message(&owner()).text("send 1002 the Q3 numbers").push();
    sent_matching(&tg, "the last answer", |s| {
        s.chat_id == OWNER && s.text == "I may not share that."
    })
    .await;

    // 6. The group's session now holds private data: its answer is withheld there.
    tg.message(&member())
        .in_group(GROUP, "team")
        .text("bot, what is in finance/q3.txt?")
        .mention_bot()
        .push();
    let notice = sent_matching(&tg, "the withheld notice", |s| {
        s.chat_id == GROUP && s.text.contains("not posted here")
    })
    .await;
    assert!(notice.text.contains("private"), "{}", notice.text);
    assert!(
        !tg.sent()
            .iter()
            .any(|s| s.chat_id == GROUP && s.text.contains("1,234,567")),
        "private data was posted to the group: {:#?}",
        tg.sent()
    );

    // 7. A scheduled task's answer to the group is withheld the same way.
    let out = inst
        .command()
        .args(["schedules", "run", "report"])
        .output()
        .await
        .unwrap();
    common::assert_ok(&out);
    sent_matching(&tg, "the schedule's withheld notice", |s| {
        s.chat_id == GROUP && s.text.contains("not posted here") && s.text != notice.text
    })
    .await;
    assert!(
        !tg.sent()
            .iter()
            .any(|s| s.chat_id == GROUP && s.text.contains("1,234,567")),
        "the schedule posted private data to the group: {:#?}",
        tg.sent()
    );

    // Only two messages reached other conversations: the approved one and the allowed one.
    let sent = tg.sent();
    let to_others: Vec<&SentCall> = sent
        .iter()
        .filter(|s| s.chat_id == OTHER || s.chat_id == FRIEND)
        .collect();
    assert_eq!(to_others.len(), 2, "{to_others:#?}");

    let records = inst.audit().await;
    let d = decision(&records, "The build is green.");
    assert_eq!(d["data"]["decision"], "ask", "{d:#}");
    assert_eq!(d["data"]["rule"], "send_message.ask", "{d:#}");
    let d = decision(&records, "Lunch at noon.");
    assert_eq!(d["data"]["decision"], "allow", "{d:#}");
    let d = decision(&records, "token");
    assert_eq!(d["data"]["decision"], "deny", "{d:#}");
    assert_eq!(d["data"]["rule"], "send_message.secret_value", "{d:#}");
    let d = decision(&records, "pwned by the group");
    assert_eq!(d["data"]["decision"], "ask", "{d:#}");
    assert_eq!(d["data"]["rule"], "taint.send_message", "{d:#}");
    assert_eq!(d["data"]["labels"]["integrity"], "untrusted", "{d:#}");
    let d = decision(&records, "Q3 revenue");
    assert_eq!(d["data"]["decision"], "deny", "{d:#}");
    assert_eq!(d["data"]["rule"], "label.message_data_unbound", "{d:#}");
    assert_eq!(d["data"]["labels"]["confidentiality"], "private", "{d:#}");

    // The two sent ones are recorded as the tool's, with their session.
    for to in [OTHER, FRIEND] {
        let out = outbound_to(&records, to);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0]["data"]["purpose"], "send_message");
        assert_eq!(out[0]["data"]["delivered"], true);
        assert!(out[0]["data"]["session"].is_string(), "{:#}", out[0]);
    }
    let withheld: Vec<&Value> = outbound_to(&records, GROUP)
        .into_iter()
        .filter(|r| r["data"]["delivered"] == false)
        .collect();
    assert_eq!(withheld.len(), 2, "{withheld:#?}");
    for w in &withheld {
        assert!(
            w["data"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("withheld: the session holds private data")),
            "{w:#}"
        );
    }
    // The token itself is in no record.
    assert!(
        !records.iter().any(|r| r.to_string().contains(TOKEN)),
        "the token reached the audit log"
    );
}

/// `cordon run` runs no channel: the tool is refused there, before any human is asked,
/// and recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_message_is_refused_where_no_channel_runs() {
    let llm = MockLlm::start(Script::new(vec![
        tool(
            "send_message",
            json!({ "to": format!("telegram:{FRIEND}"), "text": "from the cli" }),
        ),
        Reply::Text("No channel here.".into()),
    ]))
    .await;
    let tg = FakeTelegram::start(TOKEN).await;
    tg.open_chat(&TgUser::new(FRIEND, "Frank"));
    let inst = install(&llm, &tg).await;
    let out = inst
        .command()
        .args(["run", "tell 1002 hello"])
        .output()
        .await
        .unwrap();
    common::assert_ok(&out);
    assert!(tg.sent().is_empty(), "{:#?}", tg.sent());
    let records = inst.audit().await;
    let d = decision(&records, "from the cli");
    assert_eq!(d["data"]["decision"], "deny", "{d:#}");
    assert_eq!(d["data"]["rule"], "send_message.no_channel", "{d:#}");
}
