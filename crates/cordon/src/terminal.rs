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
    /// Cleared before the question is shown.
    pub status: Status,
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
        self.status.clear();
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
        agent::AgentEvent::TextDelta(_) | agent::AgentEvent::ReasoningDelta(_) => None,
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

/// One status line on stderr — a spinner, what the agent waits for, and for how long —
/// redrawn in place while the model thinks or a command runs. Only when both stdout and
/// stderr are terminals: piped output never carries it. Whoever prints must
/// [`Status::clear`] it first, so text never lands in the middle of the line.
#[derive(Clone)]
pub struct Status {
    shown: Option<Arc<std::sync::Mutex<Option<Shown>>>>,
}

struct Shown {
    what: String,
    since: std::time::Instant,
}

/// How often the spinner turns.
const STATUS_TICK: std::time::Duration = std::time::Duration::from_millis(100);

impl Status {
    /// A status line when stdout and stderr are terminals, otherwise one that shows
    /// nothing.
    pub fn for_terminal() -> Status {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Status::drawn()
        } else {
            Status { shown: None }
        }
    }

    fn drawn() -> Status {
        let shown = Arc::new(std::sync::Mutex::new(None::<Shown>));
        let weak = Arc::downgrade(&shown);
        // The line is redrawn by its own thread, under the lock `clear` takes: once
        // `clear` returns, nothing draws until the next `show`.
        std::thread::spawn(move || {
            let mut frame = 0usize;
            while let Some(shown) = weak.upgrade() {
                if let Some(s) = &*shown.lock().unwrap_or_else(|p| p.into_inner()) {
                    let line = status_line(frame, &s.what, s.since.elapsed(), terminal_width());
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(line.as_bytes());
                    let _ = err.flush();
                    frame += 1;
                }
                drop(shown);
                std::thread::sleep(STATUS_TICK);
            }
        });
        Status { shown: Some(shown) }
    }

    /// Show `what` (e.g. "waiting for the model"), with the time since this call.
    pub fn show(&self, what: impl Into<String>) {
        if let Some(shown) = &self.shown {
            *shown.lock().unwrap_or_else(|p| p.into_inner()) = Some(Shown {
                what: what.into(),
                since: std::time::Instant::now(),
            });
        }
    }

    /// Erase the line (if shown), so what is printed next starts a clean line.
    pub fn clear(&self) {
        if let Some(shown) = &self.shown {
            let mut s = shown.lock().unwrap_or_else(|p| p.into_inner());
            if s.take().is_some() {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(CLEAR_LINE.as_bytes());
                let _ = err.flush();
            }
        }
    }

    /// Whether this status line is drawn at all (stdout and stderr are terminals).
    pub fn on_terminal(&self) -> bool {
        self.shown.is_some()
    }
}

/// Back to the line's start, erase to its end.
const CLEAR_LINE: &str = "\r\x1b[K";

/// The status line for spinner frame `frame`: it starts at the line's start and erases
/// what an earlier, longer line left; cut to `width` columns so it never wraps (a wrapped
/// line could not be redrawn in place).
fn status_line(frame: usize, what: &str, elapsed: std::time::Duration, width: usize) -> String {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let secs = elapsed.as_secs();
    let text = if secs > 0 {
        format!("{} {what} … {secs}s", FRAMES[frame % FRAMES.len()])
    } else {
        format!("{} {what} …", FRAMES[frame % FRAMES.len()])
    };
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut: String = one_line
        .chars()
        .take(width.saturating_sub(1).max(1))
        .collect();
    format!("\r{cut}\x1b[K")
}

/// Columns of the terminal on stderr (80 when unknown).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .map(|w| usize::from(w.ws_col))
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(80)
}

/// What the status line says while `call` runs: `running exec: ls -la`.
pub fn running(call: &runtime::ToolCall) -> String {
    format!("running {} {}", call.name, shorten(&call.arguments, 60))
}

/// What the status line says when a model request failed and will be retried.
pub fn retrying(r: &agent::provider::Retrying<'_>) -> String {
    format!(
        "the model did not answer ({}); retrying in {:.1}s, attempt {} of {}",
        r.error.brief(),
        r.delay.as_secs_f64(),
        r.attempt + 1,
        r.attempts
    )
}

/// Shows a turn as it happens: streamed text on stdout and the model's reasoning on
/// stderr (when asked to stream), tool calls and results on stderr, and the status line
/// between them.
///
/// Reasoning is dimmed when stderr is a terminal. Elsewhere (a script driving `cordon
/// chat`, a log) it carries no escape codes and each stretch of it starts with
/// [`REASONING_MARK`] on a line of its own, so it can be told from the answer even when
/// stdout and stderr are read together.
pub struct TurnView {
    status: Status,
    stream_text: bool,
    /// Whether stderr is a terminal (reasoning is dimmed there).
    dim: bool,
    /// Text was printed since the last line on stderr (a newline ends it first).
    streamed: bool,
    /// Reasoning is being printed on stderr (a newline ends it before anything else).
    reasoning_open: bool,
    /// Reasoning was shown this turn.
    reasoning_shown: bool,
}

/// What a [`TurnView`] already showed of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnShown {
    /// The answer's text, as it came: only what the loop added to it remains to print.
    pub text: bool,
    /// The model's reasoning, as it came: not to be shown again.
    pub reasoning: bool,
}

/// The line that starts a stretch of reasoning on stderr when it is not a terminal.
pub const REASONING_MARK: &str = "[reasoning]";

impl TurnView {
    pub fn new(status: Status, stream_text: bool) -> TurnView {
        use std::io::IsTerminal;
        TurnView {
            status,
            stream_text,
            dim: std::io::stderr().is_terminal(),
            streamed: false,
            reasoning_open: false,
            reasoning_shown: false,
        }
    }

    /// The turn's prompt went to the model.
    pub fn start(&mut self) {
        self.streamed = false;
        self.reasoning_open = false;
        self.reasoning_shown = false;
        self.status.show(WAITING_FOR_MODEL);
    }

    pub fn on_event(&mut self, event: &agent::AgentEvent) {
        if let agent::AgentEvent::ReasoningDelta(r) = event {
            if self.stream_text {
                self.show_reasoning(r);
            }
            return;
        }
        self.end_reasoning();
        if let agent::AgentEvent::TextDelta(d) = event {
            if self.stream_text {
                self.status.clear();
                self.streamed = true;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(d.as_bytes());
                let _ = out.flush();
            }
            return;
        }
        if let Some(line) = describe_event(event) {
            self.status.clear();
            if self.streamed {
                println!();
                self.streamed = false;
            }
            eprintln!("{line}");
        }
        match event {
            agent::AgentEvent::ToolCall(call) => self.status.show(running(call)),
            agent::AgentEvent::ToolResult(_) => self.status.show(WAITING_FOR_MODEL),
            agent::AgentEvent::TextDelta(_) | agent::AgentEvent::ReasoningDelta(_) => {}
        }
    }

    /// A piece of reasoning on stderr: dimmed on a terminal (each piece ends the dimming,
    /// so nothing stays dim if the turn stops), after [`REASONING_MARK`] elsewhere.
    fn show_reasoning(&mut self, r: &str) {
        self.status.clear();
        if self.streamed {
            println!();
            self.streamed = false;
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(reasoning_piece(r, self.dim, !self.reasoning_open).as_bytes());
        let _ = err.flush();
        self.reasoning_open = true;
        self.reasoning_shown = true;
    }

    /// Reasoning shown so far ends its line.
    fn end_reasoning(&mut self) {
        if std::mem::take(&mut self.reasoning_open) {
            eprintln!();
        }
    }

    /// The turn is over: the status line is gone, and what was already shown as it came.
    pub fn finish(&mut self) -> TurnShown {
        self.end_reasoning();
        self.status.clear();
        TurnShown {
            text: std::mem::take(&mut self.streamed),
            reasoning: std::mem::take(&mut self.reasoning_shown),
        }
    }
}

/// A piece of reasoning as written to stderr: dimmed on a terminal (`dim`), else after
/// [`REASONING_MARK`] when it starts a stretch (`opens`).
pub(crate) fn reasoning_piece(r: &str, dim: bool, opens: bool) -> String {
    if dim {
        format!("\x1b[2m{r}\x1b[0m")
    } else if opens {
        format!("{REASONING_MARK}\n{r}")
    } else {
        r.to_string()
    }
}

const WAITING_FOR_MODEL: &str = "waiting for the model";

/// Each retry of a model request: on a terminal, the status line says so (one line,
/// redrawn); elsewhere one short line on stderr.
pub fn retry_reporter(status: &Status) -> agent::provider::OnRetry {
    let status = status.clone();
    Arc::new(move |r| {
        if status.on_terminal() {
            status.show(retrying(r));
        } else {
            eprintln!("{}", retrying(r));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_status_line_is_redrawn_in_place_and_never_wraps() {
        let line = status_line(0, "waiting for the model", Duration::ZERO, 80);
        assert_eq!(line, "\r⠋ waiting for the model …\x1b[K");
        let later = status_line(11, "waiting for the model", Duration::from_secs(3), 80);
        assert_eq!(later, "\r⠙ waiting for the model … 3s\x1b[K");
        let long = status_line(0, &"x".repeat(500), Duration::ZERO, 40);
        let shown = long.trim_start_matches('\r').trim_end_matches("\x1b[K");
        assert_eq!(shown.chars().count(), 39, "{long:?}");
        // A newline in what is shown (a command's arguments) would break the line.
        let args = status_line(0, "running exec {\"cmd\":\"a\nb\"}", Duration::ZERO, 80);
        assert!(!args.contains('\n'), "{args:?}");
    }

    #[test]
    fn a_retry_says_why_when_and_which_attempt_in_one_line() {
        let error = agent::provider::ProviderError::Http {
            url: "http://127.0.0.1:11434/v1/chat/completions".into(),
            status: 503,
            excerpt: "loading model".into(),
            what_to_do: "the server failed: try again later or check its logs",
        };
        let text = retrying(&agent::provider::Retrying {
            attempt: 1,
            attempts: 4,
            delay: Duration::from_millis(500),
            error: &error,
        });
        assert_eq!(
            text,
            "the model did not answer (HTTP 503); retrying in 0.5s, attempt 2 of 4"
        );
    }

    #[test]
    fn reasoning_is_dimmed_on_a_terminal_and_marked_elsewhere() {
        assert_eq!(reasoning_piece("hm", true, true), "\x1b[2mhm\x1b[0m");
        assert_eq!(reasoning_piece("hm", true, false), "\x1b[2mhm\x1b[0m");
        assert_eq!(reasoning_piece("hm", false, true), "[reasoning]\nhm");
        assert_eq!(reasoning_piece(" more", false, false), " more");
    }

    #[test]
    fn a_status_line_off_a_terminal_shows_nothing() {
        let status = Status { shown: None };
        status.show("waiting for the model");
        status.clear();
        assert!(!status.on_terminal());
    }
}
