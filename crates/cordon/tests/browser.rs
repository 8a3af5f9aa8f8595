//! The web UI end to end in a real headless Chromium driven over WebDriver: the real
//! `cordon serve`, a scripted model, a real sandboxed `exec` that waits for a human, who
//! approves it by clicking in the page; the streamed answer appears; the audit view shows
//! the decision and the approval. Also: a link carrying a server address and a token
//! neither logs in nor makes the page contact that address, and the page logs no console
//! errors (a CSP violation would be one). The pairing panel: a Telegram stranger's code
//! (`testkit::FakeTelegram`) is approved with a role by clicking, after which their
//! messages reach the model, and another is denied; a hostile display name stays text.
//!
//! Needs `chromium` and `chromedriver` (CI installs them): without them the test fails,
//! saying so, rather than skipping.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{AgentSetup, Install, assert_ok, of_kind, read, set_secret, text, tool};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use testkit::telegram::{SentCall, TgUser};
use testkit::{FakeTelegram, MockLlm, Reply, Script};
use tokio::io::{AsyncBufReadExt, BufReader};

const COMMAND: &str = "touch browser-approved.txt";
const ANSWER: &str = "Done: browser-approved.txt exists now.";
const WAIT: Duration = Duration::from_secs(20);
const NOTES_ANSWER: &str = "Wrote the notes.";

/// `name` as an absolute path: `/usr/bin/NAME` or the first match on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let usr = Path::new("/usr/bin").join(name);
    if usr.is_file() {
        return Some(usr);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn required(name: &str, package: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed (looked in /usr/bin and PATH): the browser test needs a \
             real Chromium and its WebDriver. Install them (Debian/Ubuntu: `apt-get install \
             {package}`; CI does this) and run again"
        )
    })
}

/// `chromedriver --port=0`, and the port it reports.
async fn start_chromedriver(path: &Path) -> (tokio::process::Child, u16) {
    let mut child = tokio::process::Command::new(path)
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').trim().parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("chromedriver did not report its port within 15 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

async fn start_browser(port: u16, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--no-default-browser-check", "--window-size=1280,900"],
            "binary": chromium.to_string_lossy(),
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}", chromium.display()))
}

/// `cordon serve --bind 127.0.0.1:0` and the URL it printed.
async fn serve(inst: &Install) -> (tokio::process::Child, String) {
    common::serve_gateway(inst, &["--bind", "127.0.0.1:0"]).await
}

async fn create_token(inst: &Install) -> String {
    let out = inst
        .cordon(&[
            "token", "create", "--scope", "operator", "--name", "browser",
        ])
        .await;
    assert_ok(&out);
    text(&out.stdout).trim().to_string()
}

/// Run `script` in the page every 100 ms until it returns something other than `null`
/// (or `false`); fails after [`WAIT`] naming `what` and showing the page's text.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap_or(Value::Null);
        if !v.is_null() && v != Value::Bool(false) {
            return v;
        }
        if start.elapsed() > WAIT {
            let page = c
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "waited {}s for {what}; the page shows:\n{}",
                WAIT.as_secs(),
                page.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn visible(c: &Client, id: &str) {
    until(
        c,
        &format!("#{id} to be visible"),
        &format!("const e = document.getElementById('{id}'); return !!e && !e.hidden;"),
    )
    .await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// The browser's console entries since the last call (chromedriver's log endpoint).
async fn console(driver: u16, c: &Client) -> Vec<Value> {
    let id = c.session_id().await.unwrap().expect("a session id");
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{driver}/session/{id}/se/log"))
        .json(&json!({ "type": "browser" }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["value"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("chromedriver gave no browser log: {v}"))
}

/// A Chrome DevTools Protocol command through chromedriver.
async fn cdp(driver: u16, c: &Client, cmd: &str, params: Value) -> Value {
    let id = c.session_id().await.unwrap().expect("a session id");
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{driver}/session/{id}/goog/cdp/execute"
        ))
        .json(&json!({ "cmd": cmd, "params": params }))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "CDP {cmd}: {}",
        r.text().await.unwrap()
    );
    r.json().await.unwrap()
}

/// Keeps every WebSocket the page opens in `window.__sockets`, so the test can see their
/// URLs and cut one to exercise the page's reconnect. (Injected by DevTools, which the
/// page's CSP does not govern; the page itself cannot add such a script.)
const RECORD_SOCKETS: &str = "(() => { const W = window.WebSocket; window.__sockets = []; \
    window.WebSocket = class extends W { constructor(...a) { super(...a); window.__sockets.push(this); } }; })();";

/// Console errors, except the 401 of `GET /api/whoami` that a logged-out page expects.
fn errors(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .filter(|m| !(m.contains("/api/whoami") && m.contains("401")))
        .collect()
}

/// A TCP listener standing in for the attacker's server; counts connections.
async fn evil_listener() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_approve_in_the_page_and_find_it_in_the_audit_view() {
    let chromium = required("chromium", "chromium");
    let chromedriver = required("chromedriver", "chromium-driver");

    let llm = MockLlm::start(Script::new(vec![
        tool("exec", json!({ "command": COMMAND })),
        Reply::Text(ANSWER.into()),
        tool(
            "write_file",
            json!({ "path": "readme.txt", "content": "changed by the agent\n" }),
        ),
        tool(
            "write_file",
            json!({ "path": "notes.md", "content": "# notes\n" }),
        ),
        Reply::Text(NOTES_ANSWER.into()),
        testkit::recording("deepseek-reasoning.sse").reply(),
    ]))
    .await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    std::fs::write(inst.workspace.join("readme.txt"), "original\n").unwrap();
    let mut cfg = read(&inst.config);
    cfg.push_str("\n[approvals]\ntimeout_secs = 60\n");
    std::fs::write(&inst.config, cfg).unwrap();
    // A text-only skill, listed in the skills view.
    let skill = inst.dir.path().join("notes-skill");
    std::fs::create_dir_all(&skill).unwrap();
    std::fs::write(
        skill.join("SKILL.md"),
        "---\nname: notes\ndescription: Keep tidy notes.\n---\nWrite notes in notes/.\n",
    )
    .unwrap();
    assert_ok(
        &inst
            .cordon(&["skills", "add", skill.to_str().unwrap(), "--yes"])
            .await,
    );
    let token = create_token(&inst).await;
    let (_server, url) = serve(&inst).await;
    let (_driver, port) = start_chromedriver(&chromedriver).await;
    let c = start_browser(port, &chromium).await;

    // Always end the browser session, also when an assertion fails.
    let flow = std::panic::AssertUnwindSafe(flow(&c, port, &inst, &url, &token)).catch_unwind();
    let outcome = tokio::time::timeout(Duration::from_secs(60), flow).await;
    let _ = c.clone().close().await;
    match outcome {
        Err(_) => panic!("the browser flow took more than 60 s"),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Ok(Ok(())) => {}
    }
}

async fn flow(c: &Client, driver: u16, inst: &Install, url: &str, token: &str) {
    cdp(
        driver,
        c,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": RECORD_SOCKETS }),
    )
    .await;

    // 1. A link carrying a server address and a (valid!) token: the page ignores both.
    let (evil_port, hits) = evil_listener().await;
    let logins_before = login_records(inst).await;
    c.goto(&format!(
        "{url}/?gatewayUrl=ws://127.0.0.1:{evil_port}&token={token}#gatewayUrl=ws://127.0.0.1:{evil_port}&token={token}"
    ))
    .await
    .unwrap();
    visible(c, "view-login").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let nav_hidden = c
        .execute("return document.getElementById('nav').hidden", vec![])
        .await
        .unwrap();
    assert_eq!(nav_hidden, Value::Bool(true), "logged in from the URL");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the page contacted the address in its URL"
    );
    assert_eq!(
        login_records(inst).await,
        logins_before,
        "a login was attempted from the URL"
    );
    let entries = console(driver, c).await;
    // The log is really read: the logged-out page's expected 401 is in it.
    assert!(
        entries.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("/api/whoami"))),
        "no console entry for the expected 401 of /api/whoami: {entries:?}"
    );
    let errs = errors(&entries);
    assert!(
        errs.is_empty(),
        "console errors on the login page: {errs:?}"
    );

    // 2. Log in through the form.
    login(c, url, token).await;
    let field = c
        .execute(
            "return document.getElementById('login-token').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(field, json!(""), "the token stayed in the form");
    let stored = c
        .execute(
            "return JSON.stringify([localStorage.length, sessionStorage.length, document.cookie])",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        stored,
        json!("[0,0,\"\"]"),
        "credentials readable by page script"
    );
    until(
        c,
        "the agent list",
        "return [...document.querySelectorAll('#agent-select option')].some(o => o.value === 'default')",
    )
    .await;

    // 3. A new session, its labels, a live stream; then a message.
    click(c, "#new-session").await;
    let integrity = until(
        c,
        "the session's labels",
        "const l = document.getElementById('session-labels'); \
         return l.hidden ? null : l.dataset.integrity || null",
    )
    .await;
    assert_eq!(integrity, json!("trusted"));
    until(
        c,
        "a live event stream",
        "return document.getElementById('stream-status').dataset.state === 'live'",
    )
    .await;
    c.find(Locator::Id("message-input"))
        .await
        .unwrap()
        .send_keys("Please create browser-approved.txt")
        .await
        .unwrap();
    click(c, "#send").await;
    until(
        c,
        "the user's message",
        "const m = document.querySelector('[data-testid=msg-user]'); \
         return m ? m.textContent : null",
    )
    .await;

    // 4. The tool call and the pending approval appear; nothing has run yet.
    let call = until(
        c,
        "the exec tool call",
        "const e = document.querySelector('[data-testid=tool-call][data-tool=exec]'); \
         return e ? e.textContent : null",
    )
    .await;
    assert!(call.as_str().unwrap().contains(COMMAND), "{call}");
    let approval = until(
        c,
        "the pending approval",
        "const e = document.querySelector('[data-testid=approval][data-state=pending]'); \
         return e ? [e.dataset.approvalId, e.textContent] : null",
    )
    .await;
    let approval_id = approval[0].as_str().unwrap().to_string();
    let shown = approval[1].as_str().unwrap();
    assert!(
        shown.contains(COMMAND) && shown.contains("Rule"),
        "the approval card lacks the action or rule: {shown}"
    );
    assert!(!inst.workspace.join("browser-approved.txt").exists());

    // The approvals inbox lists the same request, with its rule and labels.
    click(c, "#nav-approvals").await;
    let card = until(
        c,
        "the request in the approvals inbox",
        &format!(
            "const e = document.querySelector(\"[data-testid=approval-card][data-approval-id='{approval_id}']\"); \
             return e ? e.textContent : null"
        ),
    )
    .await;
    let card = card.as_str().unwrap();
    assert!(
        card.contains(COMMAND) && card.contains("exec.ask") && card.contains("trusted"),
        "{card}"
    );
    let badge = c
        .execute(
            "return document.getElementById('approvals-badge').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(badge, json!("1"));
    click(c, "#nav-chat").await;
    visible(c, "view-chat").await;

    // The stream drops: the page reconnects from the last event it saw and misses nothing.
    let seen = until(
        c,
        "the approval's seq",
        "const e = document.querySelector('[data-testid=approval]'); return e ? Number(e.dataset.seq) : null",
    )
    .await;
    c.execute(
        "window.__sockets[window.__sockets.length - 1].close()",
        vec![],
    )
    .await
    .unwrap();
    let reopened = until(
        c,
        "a reconnected stream",
        "return window.__sockets.length >= 2 && window.__sockets[window.__sockets.length - 1].readyState === 1 \
         ? window.__sockets.map(s => s.url) : null",
    )
    .await;
    let last = reopened
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(
        last.ends_with(&format!("/stream?after={seen}")),
        "reconnected as {last}, not after seq {seen}"
    );
    assert!(
        last.starts_with(&format!("ws://{}/", url.trim_start_matches("http://"))),
        "{last}"
    );

    // 5. Approve once by clicking; the tool runs; the final answer streams in.
    click(
        c,
        &format!("[data-approval-id='{approval_id}'] button[data-answer=once]"),
    )
    .await;
    let result = until(
        c,
        "the tool result",
        "const e = document.querySelector('[data-testid=tool-result]'); \
         return e ? e.dataset.error : null",
    )
    .await;
    assert_eq!(result, json!("false"), "the approved exec failed");
    let answer = until(
        c,
        "the final answer",
        "const e = document.querySelector('[data-testid=msg-assistant][data-final=true]'); \
         return e ? e.textContent : null",
    )
    .await;
    assert_eq!(answer, json!(ANSWER));
    assert!(
        inst.workspace.join("browser-approved.txt").exists(),
        "the approved command did not run"
    );
    // No event shown twice and none missing across the reconnect.
    let seqs = c
        .execute(
            "return [...document.querySelectorAll('#transcript [data-seq]')].map(e => Number(e.dataset.seq))",
            vec![],
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = serde_json::from_value(seqs).unwrap();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "events shown twice or out of order: {seqs:?}"
    );
    let calls = c
        .execute(
            "return [document.querySelectorAll('[data-testid=tool-call]').length, \
             document.querySelectorAll('[data-testid=tool-result]').length, \
             document.querySelectorAll('[data-testid=turn-finished]').length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(calls, json!([1, 1, 1]));
    until(
        c,
        "the approval card to show the answer",
        &format!(
            "const e = document.querySelector(\"[data-approval-id='{approval_id}']\"); \
             return e && e.dataset.state === 'once'"
        ),
    )
    .await;

    // 5b. A turn that changes files (no approval: each change is journaled) ends with
    // the files it changed and their diffs; a human changes one of them; "Undo" puts back
    // the other and reports the changed one as left alone.
    c.find(Locator::Id("message-input"))
        .await
        .unwrap()
        .send_keys("Write the notes")
        .await
        .unwrap();
    click(c, "#send").await;
    let files = until(
        c,
        "the turn's changed files",
        "const b = [...document.querySelectorAll('[data-testid=changes]')].find(b =>            b.querySelector('[data-path=\"notes.md\"]'));          return b ? [...b.querySelectorAll('[data-testid=change]')]            .map(d => d.dataset.kind + ' ' + d.dataset.path) : null",
    )
    .await;
    assert_eq!(files, json!(["added notes.md", "changed readme.txt"]));
    click(c, "[data-testid=change][data-path='readme.txt'] summary").await;
    let diff = until(
        c,
        "the expanded diff of readme.txt",
        "const d = document.querySelector('[data-testid=change][data-path=\"readme.txt\"]');          return d && d.open ? d.querySelector('[data-testid=diff]').innerText : null",
    )
    .await;
    let diff = diff.as_str().unwrap();
    assert!(
        diff.contains("-original") && diff.contains("+changed by the agent"),
        "{diff}"
    );
    std::fs::write(inst.workspace.join("notes.md"), "edited by a human\n").unwrap();
    // (The first turn's command may have its own card, when its changes were journaled.)
    c.execute(
        "[...document.querySelectorAll('[data-testid=changes]')]            .find(b => b.querySelector('[data-path=\"notes.md\"]'))            .querySelector('[data-testid=undo]').click()",
        vec![],
    )
    .await
    .unwrap();
    let report = until(
        c,
        "the undo report",
        "const r = document.querySelector('[data-testid=undo-report][data-complete]');          return r ? [r.dataset.complete, r.innerText] : null",
    )
    .await;
    let shown = report[1].as_str().unwrap();
    assert_eq!(report[0], json!("false"), "{shown}");
    assert!(shown.contains("restored readme.txt"), "{shown}");
    assert!(
        shown.contains("left alone notes.md") && shown.contains("changed since"),
        "{shown}"
    );
    assert_eq!(read(&inst.workspace.join("readme.txt")), "original\n");
    assert_eq!(
        read(&inst.workspace.join("notes.md")),
        "edited by a human\n"
    );
    let undone: Vec<Value> = inst
        .audit()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "checkpoint" && r["data"]["action"] == "undone")
        .collect();
    assert!(
        !undone.is_empty()
            && undone.iter().all(|r| r["data"]["by"]
                .as_str()
                .unwrap()
                .starts_with("gateway token ")),
        "{undone:?}"
    );

    // 5b. A reasoning model: its reasoning streams into a block of its own, apart from
    // the answer, which carries none of it.
    c.find(Locator::Id("message-input"))
        .await
        .unwrap()
        .send_keys("Which is larger?")
        .await
        .unwrap();
    click(c, "#send").await;
    let shown = until(
        c,
        "the reasoning and the answer",
        "const r = [...document.querySelectorAll('[data-testid=msg-reasoning]')]; \
         const a = [...document.querySelectorAll('[data-testid=msg-assistant]')] \
           .find(m => m.textContent.includes('9.9 is larger.')); \
         return r.length && a ? [r.map(x => x.textContent).join(''), a.textContent] : null",
    )
    .await;
    assert!(
        shown[0].as_str().unwrap().contains("compare tenths"),
        "{shown}"
    );
    assert!(
        !shown[1].as_str().unwrap().contains("compare tenths"),
        "the reasoning is in the answer: {shown}"
    );

    // 6. The audit view: the `ask` decision for the command, the approval answered here.
    click(c, "#nav-audit").await;
    visible(c, "view-audit").await;
    c.find(Locator::Id("audit-decision"))
        .await
        .unwrap()
        .select_by_value("ask")
        .await
        .unwrap();
    click(c, "#audit-apply").await;
    until(
        c,
        "the ask decision for the command in the audit view",
        &format!(
            "return [...document.querySelectorAll('[data-testid=audit-record][data-kind=decision][data-decision=ask]')]\
             .some(r => r.textContent.includes({}))",
            json!(COMMAND)
        ),
    )
    .await;
    c.find(Locator::Id("audit-decision"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();
    c.find(Locator::Id("audit-kind"))
        .await
        .unwrap()
        .select_by_value("approval")
        .await
        .unwrap();
    click(c, "#audit-apply").await;
    until(
        c,
        "the answered approval in the audit view",
        &format!(
            "return [...document.querySelectorAll('[data-testid=audit-record][data-kind=approval]')]\
             .some(r => r.textContent.includes('{approval_id}') && r.textContent.includes('answered'))"
        ),
    )
    .await;
    click(c, "#audit-verify").await;
    until(
        c,
        "the audit chain to verify",
        "return document.getElementById('audit-verify-status').dataset.ok === 'true'",
    )
    .await;

    // 7. The sessions list and the config view; then log out, and stay out on reload.
    click(c, "#nav-sessions").await;
    until(
        c,
        "the session in the sessions list",
        "return document.querySelectorAll('[data-testid=session-row]').length === 1",
    )
    .await;
    click(c, "#nav-skills").await;
    until(
        c,
        "the installed skill with its hash, verdict and capabilities",
        "const r = document.querySelector('[data-testid=skill-row][data-skill=notes]'); \
         return r && r.dataset.intact === 'true' && \
           r.querySelector('[data-testid=skill-sha256]').textContent.length === 64 && \
           r.querySelector('[data-testid=skill-verdict]').textContent === 'clean' && \
           r.querySelector('[data-testid=skill-capabilities]').textContent.includes('egress none') \
           ? true : null",
    )
    .await;
    click(c, "#nav-config").await;
    let tier = until(
        c,
        "the config view",
        "const t = document.getElementById('config-tier').textContent; \
         const j = document.getElementById('config-json').textContent; \
         return t && j.includes('agents') ? t : null",
    )
    .await;
    assert!(!tier.as_str().unwrap().is_empty());
    click(c, "#logout").await;
    visible(c, "view-login").await;
    c.refresh().await.unwrap();
    visible(c, "view-login").await;

    let errs = errors(&console(driver, c).await);
    assert!(errs.is_empty(), "console errors: {errs:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

/// How many `gateway_login` decisions the audit log holds.
async fn login_records(inst: &Install) -> usize {
    inst.audit()
        .await
        .iter()
        .filter(|r| r["data"]["action"] == "gateway_login")
        .count()
}

const TG_TOKEN: &str = "4242:browser-bot-token";
const PAIRED_ANSWER: &str = "Hello, newly paired sender.";
/// A display name that would run script if the page rendered it as HTML.
const HOSTILE_NAME: &str = "<img src=x onerror=\"window.__pwned=1\">";
/// The second sender's name: markup of another kind.
const HOSTILE_NAME_2: &str = "</code><script>window.__pwned=2</script>";

#[tokio::test(flavor = "multi_thread")]
async fn pairing_panel_approves_with_a_role_and_denies_and_escapes_names() {
    let chromium = required("chromium", "chromium");
    let chromedriver = required("chromedriver", "chromium-driver");

    let llm = MockLlm::start(Script::new(vec![Reply::Text(PAIRED_ANSWER.into())])).await;
    let tg = FakeTelegram::start(TG_TOKEN).await;
    let inst = Install::new(&llm.base_url(), AgentSetup::default());
    let mut cfg = read(&inst.config);
    cfg.push_str(&format!(
        "\n[channels.telegram]\ntoken_secret = \"TG_TOKEN\"\napi_url = \"{}\"\n",
        tg.base_url()
    ));
    std::fs::write(&inst.config, cfg).unwrap();
    set_secret(&inst, "TG_TOKEN", "api.telegram.org", TG_TOKEN).await;
    let token = create_token(&inst).await;
    let (_server, url) = serve(&inst).await;
    let (_driver, port) = start_chromedriver(&chromedriver).await;
    let c = start_browser(port, &chromium).await;

    let flow = std::panic::AssertUnwindSafe(pairing_flow(&c, port, &inst, &url, &token, &tg, &llm))
        .catch_unwind();
    let outcome = tokio::time::timeout(Duration::from_secs(90), flow).await;
    let _ = c.clone().close().await;
    match outcome {
        Err(_) => panic!("the pairing flow took more than 90 s"),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Ok(Ok(())) => {}
    }
}

/// Wait until the bot sent `chat` a message satisfying `pred`.
async fn sent_to(tg: &FakeTelegram, chat: i64, pred: impl Fn(&SentCall) -> bool) -> SentCall {
    common::sent_matching(tg, &format!("to {chat}"), |s| s.chat_id == chat && pred(s)).await
}

/// The pairing code the bot gave `who` (8 upper-case letters and digits).
async fn code_for(tg: &FakeTelegram, who: &TgUser) -> String {
    let msg = sent_to(tg, who.id, |s| s.text.contains("pairing code")).await;
    let code: String = msg
        .text
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
        .find(|w| w.len() == 8)
        .unwrap_or_else(|| panic!("no code in {:?}", msg.text))
        .to_string();
    code
}

/// `GET /api/pairing` with the operator token: the pairing of `sender`.
async fn pairing_of(url: &str, token: &str, sender: &str) -> Value {
    let v: Value = reqwest::Client::new()
        .get(format!("{url}/api/pairing"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["pairings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sender"] == sender)
        .cloned()
        .unwrap_or_else(|| panic!("no pairing of {sender}: {v}"))
}

fn card(code: &str) -> String {
    format!("[data-testid=pairing-card][data-code='{code}']")
}

async fn login(c: &Client, url: &str, token: &str) {
    c.goto(url).await.unwrap();
    visible(c, "view-login").await;
    c.find(Locator::Id("login-token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(c, "#login-submit").await;
    visible(c, "view-chat").await;
}

async fn pairing_flow(
    c: &Client,
    driver: u16,
    inst: &Install,
    url: &str,
    token: &str,
    tg: &FakeTelegram,
    llm: &MockLlm,
) {
    // 1. Two strangers write to the bot; each gets a code and the model hears nothing.
    let hostile = TgUser::new(2001, HOSTILE_NAME);
    let other = TgUser::new(2002, HOSTILE_NAME_2);
    tg.message(&hostile).text("hello <b>bot</b>").push();
    let first = code_for(tg, &hostile).await;
    tg.message(&other).text("me too").push();
    let second = code_for(tg, &other).await;
    assert_ne!(first, second);
    assert!(
        llm.requests().is_empty(),
        "an unpaired sender reached the model"
    );

    // 2. After login, the panel lists both requests: channel, sender id, code.
    login(c, url, token).await;
    click(c, "#nav-approvals").await;
    visible(c, "view-approvals").await;
    for (code, sender, name) in [
        (&first, "2001", HOSTILE_NAME),
        (&second, "2002", HOSTILE_NAME_2),
    ] {
        let shown = until(
            c,
            &format!("the pairing card of {code}"),
            &format!(
                "const e = document.querySelector(\"{}[data-state=pending]\"); \
                 return e ? e.textContent : null",
                card(code)
            ),
        )
        .await;
        let shown = shown.as_str().unwrap();
        assert!(
            shown.contains(code.as_str()) && shown.contains("telegram") && shown.contains(sender),
            "{shown}"
        );
        // The hostile name is shown as the text it is.
        assert!(shown.contains(name), "{shown}");
    }
    let injected = c
        .execute(
            "return [document.querySelectorAll('#pairing-list img, #pairing-list script').length, \
             typeof window.__pwned]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        injected,
        json!([0, "undefined"]),
        "markup from a name was rendered"
    );

    // 3. Approve the first as an approver, by clicking.
    c.find(Locator::Css(&format!(
        "{} [data-testid=pairing-role]",
        card(&first)
    )))
    .await
    .unwrap()
    .select_by_value("approver")
    .await
    .unwrap();
    click(
        c,
        &format!("{} button[data-decision=approve]", card(&first)),
    )
    .await;
    let status = until(
        c,
        "the approved card",
        &format!(
            "const e = document.querySelector(\"{}\"); \
             return e && e.dataset.state === 'approved' ? e.querySelector('.answer-status').textContent : null",
            card(&first)
        ),
    )
    .await;
    assert_eq!(status, json!("approved as approver"));
    let paired = pairing_of(url, token, "2001").await;
    assert_eq!(paired["status"], "approved", "{paired}");
    assert_eq!(paired["role"], "approver", "{paired}");
    assert_eq!(paired["channel"], "telegram", "{paired}");
    // The sender's next message reaches the model, and the answer reaches them.
    tg.message(&hostile).text("can you hear me now?").push();
    sent_to(tg, 2001, |s| s.text == PAIRED_ANSWER).await;
    assert_eq!(llm.requests().len(), 1);

    // 4. Deny the second: its request is gone, and its sender still reaches nothing.
    click(c, &format!("{} button[data-decision=deny]", card(&second))).await;
    until(
        c,
        "the denied card",
        &format!(
            "const e = document.querySelector(\"{}\"); return e && e.dataset.state === 'denied'",
            card(&second)
        ),
    )
    .await;
    assert_eq!(pairing_of(url, token, "2002").await["status"], "denied");
    c.refresh().await.unwrap();
    visible(c, "view-chat").await;
    click(c, "#nav-approvals").await;
    until(
        c,
        "an empty pairing panel",
        "const e = document.getElementById('pairing-empty'); \
         return !e.hidden && document.querySelectorAll('[data-testid=pairing-card]').length === 0",
    )
    .await;
    tg.message(&other).text("let me in").push();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(llm.requests().len(), 1, "a denied sender reached the model");

    // 5. Both decisions are in the audit log, made by the web user's token.
    let records = inst.audit().await;
    let decisions: Vec<(String, String, String, String)> = of_kind(&records, "channel")
        .into_iter()
        .filter(|r| r["data"]["action"] == "pairing" && r["data"]["decision"] != "requested")
        .map(|r| {
            let d = &r["data"];
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (s("sender"), s("decision"), s("role"), s("by"))
        })
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert_eq!(
        (
            decisions[0].0.as_str(),
            decisions[0].1.as_str(),
            decisions[0].2.as_str()
        ),
        ("2001", "approved", "approver")
    );
    assert_eq!(
        (decisions[1].0.as_str(), decisions[1].1.as_str()),
        ("2002", "denied")
    );
    assert!(
        decisions.iter().all(|d| d.3.starts_with("gateway token ")),
        "{decisions:?}"
    );

    let errs = errors(&console(driver, c).await);
    assert!(errs.is_empty(), "console errors: {errs:?}");
    let pwned = c
        .execute("return typeof window.__pwned", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!("undefined"));
}
