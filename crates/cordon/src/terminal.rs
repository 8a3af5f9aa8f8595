//! The terminal: reading lines (shared by the chat prompt and approval questions),
//! asking for approvals, and showing what the agent does.

use std::io::{BufRead, Write};
use std::sync::Arc;

use async_trait::async_trait;
use runtime::{ApprovalAnswer, ApprovalRequest, Approver, GrantScope};
use tokio::sync::{Mutex, mpsc};

/// Lines from stdin, read on a dedicated thread so the async runtime never blocks.
/// `None` means end of input.
#[derive(Clone)]
pub struct Lines {
    rx: Arc<Mutex<mpsc::Receiver<String>>>,
}

impl Lines {
    pub fn stdin() -> Lines {
        let (tx, rx) = mpsc::channel(16);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx: Arc::new(Mutex::new(rx)),
        }
    }

    pub async fn next(&self, prompt: &str) -> Option<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        self.rx.lock().await.recv().await
    }
}

/// Asks the person at the terminal. The same request can be answered from another
/// terminal (`cordon approvals approve ID`); then this question is dropped and
/// [`Approver::settled_elsewhere`] says so.
pub struct TerminalApprover {
    pub lines: Lines,
    /// `approvals.answered_by = "approvers"`: show the request, let an approver answer
    /// through the gateway, never answer here.
    pub approvers_only: bool,
}

/// How a request is answered when only approvers may answer it.
pub fn approvers_only_hint(id: &str) -> String {
    format!(
        "approvals.answered_by = \"approvers\": request {id} waits for a person with an \
         approver token (web UI, or `cordon chat --remote URL`); it cannot be answered on \
         this machine"
    )
}

/// Days an "always for this agent" answer lasts (capped by `approvals.grant_max_days`).
const AGENT_GRANT_DAYS: u64 = 30;

#[async_trait]
impl Approver for TerminalApprover {
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer {
        eprintln!();
        eprintln!(
            "┌ approval needed ─ agent `{}`, session {}",
            req.agent, req.session
        );
        eprintln!("│ action: {}", req.action);
        eprintln!("│ why:    {} [{}]", req.reason, req.rule);
        if !req.labels.is_null() {
            eprintln!("│ labels: {}", describe_labels(&req.labels));
        }
        if !req.untrusted_sources.is_empty() {
            eprintln!("│ untrusted content in context from:");
            for s in &req.untrusted_sources {
                eprintln!("│   - {s}");
            }
        }
        if self.approvers_only {
            let id = req.id.as_deref().unwrap_or("?");
            eprintln!("└ {}", approvers_only_hint(id));
            return ApprovalAnswer::Unavailable("only approvers may answer".into());
        }
        if let Some(id) = &req.id {
            eprintln!("│ id:     {id} (or answer with `cordon approvals approve|deny {id}`)");
        }
        loop {
            let Some(answer) = self
                .lines
                .next("└ allow? [y]es once / [s]ession / [a]lways for this agent / [n]o: ")
                .await
            else {
                return ApprovalAnswer::Unavailable(
                    "end of input while asking for approval".into(),
                );
            };
            match answer.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => return ApprovalAnswer::Once,
                "s" | "session" => return ApprovalAnswer::Session,
                "a" | "always" => {
                    return ApprovalAnswer::Agent {
                        days: AGENT_GRANT_DAYS,
                        scope: GrantScope::Exact,
                    };
                }
                "n" | "no" | "" => return ApprovalAnswer::Deny,
                other => eprintln!("  `{other}` is not an answer: type y, s, a or n"),
            }
        }
    }

    fn settled_elsewhere(&self, req: &ApprovalRequest, answer: &ApprovalAnswer, by: &str) {
        let what = if answer.approves() {
            "approved"
        } else {
            "denied"
        };
        eprintln!();
        eprintln!(
            "  ({} was {what} by {by}: {}; no need to answer here)",
            req.id.as_deref().unwrap_or("the request"),
            serde_json::to_string(answer).unwrap_or_default()
        );
    }
}

/// `untrusted, public, secrets: A, B` from the labels' JSON.
pub fn describe_labels(labels: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for key in ["integrity", "confidentiality"] {
        if let Some(v) = labels.get(key).and_then(|v| v.as_str()) {
            parts.push(v.to_string());
        }
    }
    if let Some(secrets) = labels.get("secrets").and_then(|v| v.as_array())
        && !secrets.is_empty()
    {
        let names: Vec<&str> = secrets.iter().filter_map(|s| s.as_str()).collect();
        parts.push(format!("secrets: {}", names.join(", ")));
    }
    if parts.is_empty() {
        labels.to_string()
    } else {
        parts.join(", ")
    }
}

/// One line describing an event, for stderr.
pub fn describe_event(event: &agent::AgentEvent) -> Option<String> {
    match event {
        agent::AgentEvent::TextDelta(_) => None,
        agent::AgentEvent::ToolCall(call) => {
            Some(format!("→ {} {}", call.name, shorten(&call.arguments, 160)))
        }
        agent::AgentEvent::ToolResult(obs) => {
            let first = obs.content.lines().next().unwrap_or("");
            let mark = if obs.is_error { "✗" } else { "←" };
            Some(format!("{mark} {}", shorten(first, 160)))
        }
    }
}

/// The model's reasoning, for stderr: dimmed when stderr is a terminal, plain otherwise.
pub fn show_reasoning(reasoning: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[2m{reasoning}\x1b[0m");
    } else {
        eprintln!("{reasoning}");
    }
}

fn shorten(s: &str, max: usize) -> String {
    let one_line: String = s.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Print `prompt` on the controlling terminal and read one line from it without echo.
/// Echo is turned off *before* the prompt is shown, so nothing typed once the prompt is
/// visible can be echoed (reading with echo turned off only after printing left a window
/// in which a quick typist's or a paste's text appeared); the terminal's settings are
/// restored on every path. The line is returned without its line ending.
pub fn read_hidden(prompt: &str) -> std::io::Result<zeroize::Zeroizing<String>> {
    use rustix::termios::{self, LocalModes, OptionalActions};

    /// Restores the saved settings when dropped.
    struct Restore<'a>(&'a std::fs::File, termios::Termios);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = termios::tcsetattr(self.0, OptionalActions::Now, &self.1);
        }
    }

    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = termios::tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    // The newline the user types still moves the cursor on.
    quiet.local_modes.insert(LocalModes::ECHONL);
    termios::tcsetattr(&tty, OptionalActions::Now, &quiet)?;
    let _restore = Restore(&tty, saved);
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::BufReader::new(&tty).read_line(&mut line)?;
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    Ok(line)
}
