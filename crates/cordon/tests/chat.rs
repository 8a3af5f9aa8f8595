//! `cordon chat`: approvals asked inline on the terminal, "yes for this session", resume.

mod common;

use common::*;
use serde_json::json;
use testkit::{MockLlm, Reply, Script};

#[tokio::test(flavor = "multi_thread")]
async fn approvals_inline_and_session_grants() {
    let llm = MockLlm::start(Script::new(vec![
        // Turn 1: the same command twice (asked once, then covered by the session grant),
        // then a different command (asked again, and refused).
        tool("exec", json!({"command": "echo one >> log.txt"})),
        tool("exec", json!({"command": "echo one >> log.txt"})),
        tool("exec", json!({"command": "touch other.txt"})),
        Reply::Text("turn one done".into()),
        // Turn 2.
        Reply::Text("turn two done".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    // Answers: `s` (session) for the first question, `n` for the other command.
    let out = inst
        .cordon_stdin(&["chat"], "append to the log\ns\nn\nand again\n/exit\n")
        .await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stdout.contains("turn one done") && stdout.contains("turn two done"),
        "{stdout}"
    );
    assert_eq!(stderr.matches("approval needed").count(), 2, "{stderr}");
    assert!(stderr.contains("echo one >> log.txt") && stderr.contains("touch other.txt"));
    assert_eq!(read(&inst.workspace.join("log.txt")), "one\none\n");
    assert!(!inst.workspace.join("other.txt").exists());

    let records = inst.audit().await;
    let answers: Vec<String> = of_kind(&records, "approval")
        .iter()
        .filter(|r| r["data"]["state"] == "decided")
        .map(|r| r["data"].to_string())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(
        answers[0].contains("session") && answers[1].contains("deny"),
        "{answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_resumes_the_last_session_and_new_starts_fresh() {
    let llm = MockLlm::start(Script::new(vec![
        Reply::Text("first".into()),
        Reply::Text("second".into()),
        Reply::Text("third".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    assert_ok(
        &inst
            .cordon_stdin(&["chat"], "remember the word PAPAYA\n")
            .await,
    );
    let out = inst.cordon_stdin(&["chat"], "what was the word?\n").await;
    assert_ok(&out);
    assert!(text(&out.stderr).contains("resuming session"));
    // The resumed conversation carried the first turn to the model.
    let requests = llm.requests();
    assert!(
        requests[1].to_string().contains("PAPAYA"),
        "history was resumed"
    );
    let out = inst.cordon_stdin(&["chat", "--new"], "hello\n").await;
    assert_ok(&out);
    assert!(
        !llm.requests()[2].to_string().contains("PAPAYA"),
        "--new starts clean"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_works_while_a_chat_is_open() {
    use tokio::io::AsyncWriteExt;
    let llm = MockLlm::start(Script::new(vec![
        Reply::Text("from chat".into()),
        Reply::Text("from run".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let mut chat = inst
        .command()
        .arg("chat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    // Wait until the chat turn reached the model, then run a task beside it.
    for _ in 0..100 {
        if !llm.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = inst.cordon(&["run", "beside the chat"]).await;
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "from run");
    drop(stdin);
    let chat_out = chat.wait_with_output().await.unwrap();
    assert_ok(&chat_out);
    assert_ok(&inst.cordon(&["log", "verify"]).await);
    let records = inst.audit().await;
    assert_eq!(
        of_kind(&records, "session_start").len(),
        2,
        "both sessions recorded"
    );
}

/// Lines of a running `cordon chat`, stdout and stderr merged in arrival order.
struct Terminal {
    stdin: tokio::process::ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Terminal {
    fn start(inst: &Install) -> (tokio::process::Child, Terminal) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = inst
            .command()
            .arg("chat")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        tokio::spawn(async move {
            let mut l = BufReader::new(out).lines();
            while let Ok(Some(line)) = l.next_line().await {
                let _ = tx.send(line);
            }
        });
        tokio::spawn(async move {
            let mut l = BufReader::new(err).lines();
            while let Ok(Some(line)) = l.next_line().await {
                let _ = tx2.send(line);
            }
        });
        let stdin = child.stdin.take().unwrap();
        (
            child,
            Terminal {
                stdin,
                lines,
                seen: Vec::new(),
            },
        )
    }

    async fn say(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Lines up to and including the first that contains `needle`.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no `{needle}` after:\n{}", self.seen.join("\n")))
                .unwrap_or_else(|| {
                    panic!("chat ended before `{needle}`:\n{}", self.seen.join("\n"))
                });
            self.seen.push(line.clone());
            let done = line.contains(needle);
            got.push(line);
            if done {
                return got;
            }
        }
    }
}

/// A turn that changes files ends with what it changed, each with its call; `/undo CALL`
/// puts back one call's change, `/undo` the rest — except a file a human changed since,
/// which is left alone and reported — and each undo is audited as made by `chat`.
#[tokio::test(flavor = "multi_thread")]
async fn a_turns_changes_are_listed_and_undone_from_the_chat() {
    let llm = MockLlm::start(Script::new(vec![
        tool(
            "write_file",
            json!({"path": "notes.txt", "content": "new\n"}),
        ),
        tool(
            "write_file",
            json!({"path": "plan.md", "content": "# plan\n"}),
        ),
        tool(
            "write_file",
            json!({"path": "keep.txt", "content": "mine\n"}),
        ),
        Reply::Text("wrote them".into()),
        Reply::Text("just talking".into()),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    std::fs::write(inst.workspace.join("notes.txt"), "old\n").unwrap();
    std::fs::write(inst.workspace.join("keep.txt"), "keep\n").unwrap();
    let (child, mut term) = Terminal::start(&inst);

    term.say("write the files").await;
    // The summary follows the answer on stderr: a heading, then one line per path.
    term.until("changed this turn").await;
    let mut summary = Vec::new();
    while summary.len() < 3 {
        let line = term.until(" (call ").await.pop().unwrap();
        if line.starts_with("  ") {
            summary.push(line);
        }
    }
    let summary = summary.join("\n");
    assert!(summary.contains("changed notes.txt"), "{summary}");
    assert!(summary.contains("added plan.md"), "{summary}");
    assert!(summary.contains("changed keep.txt"), "{summary}");
    let plan_call = summary
        .lines()
        .find(|l| l.contains("plan.md"))
        .and_then(|l| l.split("(call ").nth(1))
        .map(|c| c.trim_end_matches(')').to_string())
        .unwrap();

    // One call's change, by its id.
    term.say(&format!("/undo {plan_call}")).await;
    term.until("restored plan.md").await;
    assert!(!inst.workspace.join("plan.md").exists());
    assert_eq!(read(&inst.workspace.join("notes.txt")), "new\n");

    // A human changes keep.txt; undoing the session leaves it alone.
    std::fs::write(inst.workspace.join("keep.txt"), "human\n").unwrap();
    term.say("/undo").await;
    let report = term.until("left alone keep.txt").await.join("\n");
    let report = if report.contains("restored notes.txt") {
        report
    } else {
        format!(
            "{report}\n{}",
            term.until("restored notes.txt").await.join("\n")
        )
    };
    assert!(report.contains("changed since"), "{report}");
    assert_eq!(read(&inst.workspace.join("notes.txt")), "old\n");
    assert_eq!(read(&inst.workspace.join("keep.txt")), "human\n");

    // An unknown call is a clear error; a turn that changes nothing lists nothing.
    term.say("/undo no-such-call").await;
    term.until("no call \"no-such-call\"").await;
    let quiet_from = term.seen.len();
    term.say("talk only").await;
    term.until("just talking").await;
    term.say("/exit").await;
    let out = child.wait_with_output().await.unwrap();
    assert_ok(&out);
    let mut rest = Vec::new();
    while let Ok(Some(line)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), term.lines.recv()).await
    {
        rest.push(line);
    }
    rest.extend(term.seen.drain(quiet_from..));
    assert!(
        !rest.iter().any(|l| l.contains("changed this turn")),
        "a turn that changed nothing listed changes: {rest:?}"
    );

    let records = inst.audit().await;
    let undone: Vec<_> = of_kind(&records, "checkpoint")
        .into_iter()
        .filter(|r| r["data"]["action"] == "undone")
        .collect();
    assert_eq!(undone.len(), 2, "{undone:?}");
    assert_eq!(undone[0]["data"]["call_id"], plan_call.as_str());
    assert_eq!(undone[0]["data"]["by"], "chat");
    assert!(
        undone[1]["data"]["conflicts"]
            .to_string()
            .contains("keep.txt"),
        "{}",
        undone[1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_is_shown_as_it_streams_marked_and_apart_from_the_answer() {
    // A model that reasons in `reasoning_content`, then one whose `<think>` block is in
    // its text, both streamed.
    let llm = MockLlm::start(Script::new(vec![
        testkit::recording("deepseek-reasoning.sse").reply(),
        testkit::recording("ollama-think-split-tags.sse").reply(),
    ]))
    .await;
    let inst = Install::new(
        &llm.base_url(),
        AgentSetup {
            extra_model: "max_retries = 0\nstream = true",
            ..Default::default()
        },
    );
    let out = inst
        .cordon_stdin(&["chat"], "which is larger\nand 17 * 3\n/exit\n")
        .await;
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // The answers on stdout, without their reasoning.
    assert!(
        stdout.contains("9.9 is larger.") && stdout.contains("17 * 3 = 51."),
        "{stdout}"
    );
    assert!(
        !stdout.contains("compare tenths") && !stdout.contains("the user wants"),
        "{stdout}"
    );
    assert!(!stdout.contains("think>"), "{stdout}");
    // Not a terminal: the reasoning on stderr, once, each stretch after its mark, and
    // no escape codes anywhere.
    assert!(
        stderr.contains("[reasoning]\n9.11 and 9.9: compare tenths, 1 < 9.\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[reasoning]\n\nOkay, the user wants 17 * 3.\n"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("compare tenths").count(), 1, "{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stdout.contains('\x1b'),
        "{stderr:?}"
    );
}
