//! `cordon chat --remote URL`: the terminal conversation, attached to a running gateway
//! through the same API as the web UI (`docs/api.md`): a message is `POST`ed, the
//! session's WebSocket event stream is followed until the turn ends, approvals are
//! answered with `POST /api/approvals/{id}`.
//!
//! Guarantees:
//! - The token comes from `$CORDON_TOKEN` or a prompt without echo, never from the
//!   command line or the URL.
//! - Everything sent goes through [`gateway::remote`], which keeps the token out of the
//!   URL, sends it only over TLS or to loopback, and reopens a dropped stream from the
//!   last event seen, so nothing of the turn is missed or shown twice.
//!
//! Does not: keep anything on disk.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use gateway::events::SessionEvent;
use gateway::remote::{
    Accepted, Client, EventStream, GatewayUrl, Session, SessionView, StreamNotice, TOKEN_ENV,
    tls_config,
};

use crate::terminal::{Lines, describe_event, describe_labels};

pub async fn chat(
    url: &str,
    agent: &str,
    session: Option<&str>,
    ca: Option<&Path>,
) -> Result<ExitCode> {
    let gateway = GatewayUrl::parse(url)?;
    if ca.is_some() && !gateway.is_tls() {
        bail!(
            "--ca is for an https:// gateway; {} is plain http",
            gateway.origin()
        );
    }
    if let Some(id) = session {
        check_id("--session", id)?;
    }
    let addrs = gateway.resolve().await?;
    let tls = match gateway.is_tls() {
        true => Some(Arc::new(tls_config(ca)?)),
        false => None,
    };
    let token = read_token()?;
    let api = Client::new(gateway, addrs, tls, &token)?;
    drop(token);

    let who: Value = api
        .call(Method::GET, "/api/whoami", None)
        .await
        .map_err(|f| f.explain(&format!("cannot use the gateway at {}", api.url().origin())))?;
    let scope = who["scope"].as_str().unwrap_or("?").to_string();
    let lines = Lines::stdin();
    let session = match session {
        Some(id) => {
            let found: SessionView = api
                .call(Method::GET, &format!("/api/sessions/{id}"), None)
                .await
                .map_err(|f| f.explain(&format!("cannot resume session {id}")))?;
            let s = found.session;
            eprintln!(
                "resuming session {} of agent `{}` ({} items)",
                s.id,
                s.agent,
                found.items.len()
            );
            s
        }
        None => {
            let s = api.create_session(agent).await?;
            eprintln!("new session {}", s.id);
            s
        }
    };
    eprintln!(
        "agent `{}` · gateway {} (token scope {scope}) · /exit to leave",
        session.agent,
        api.url().origin()
    );
    let mut chat = RemoteChat {
        api,
        lines,
        session,
        // A resumed session's history is replayed by the first stream and skipped.
        seen: 0,
    };
    chat.run().await?;
    Ok(ExitCode::SUCCESS)
}

struct RemoteChat {
    api: Client,
    lines: Lines,
    session: Session,
    /// The last event of this session the stream delivered.
    seen: u64,
}

impl RemoteChat {
    async fn run(&mut self) -> Result<()> {
        loop {
            let prompt = format!("[{}] you> ", prompt_label(&self.session.labels));
            let Some(line) = self.lines.next(&prompt).await else {
                return Ok(());
            };
            let text = line.trim();
            match text {
                "" => continue,
                "/exit" | "/quit" => return Ok(()),
                "/new" => {
                    self.session = self.api.create_session(&self.session.agent).await?;
                    self.seen = 0;
                    eprintln!("new session {}", self.session.id);
                    continue;
                }
                _ => {}
            }
            self.turn(text).await?;
        }
    }

    /// Send one message and follow its turn to the end. `Err` only when nothing more
    /// can work (the token is refused, the session is gone, the stream cannot reopen).
    async fn turn(&mut self, text: &str) -> Result<()> {
        // Opened before sending, so a refused stream stops us before the turn starts.
        let mut stream =
            EventStream::open(&self.api, &self.session.id, self.seen, show_notice).await?;
        let path = format!("/api/sessions/{}/messages", self.session.id);
        let accepted: Accepted = match self
            .api
            .call(Method::POST, &path, Some(json!({ "text": text })))
            .await
        {
            Ok(a) => a,
            Err(f) if f.is_fatal() => return Err(f.explain("cannot send the message").into()),
            // 409: a turn sent from elsewhere is running; 422: empty or too long.
            Err(f) => {
                eprintln!("error: cannot send the message: {f}");
                stream.close().await;
                return Ok(());
            }
        };
        let mut turn = Turn {
            streamed: false,
            reasoning: false,
            backlog: VecDeque::new(),
            answered_here: HashSet::new(),
        };
        loop {
            let (seq, event) = match turn.backlog.pop_front() {
                Some(e) => e,
                None => next_event(&mut stream).await?,
            };
            // Events up to the accepted one are earlier turns (a resumed session's
            // history, or turns sent from elsewhere since our last one).
            if seq <= accepted.seq {
                continue;
            }
            match event {
                Event::TextDelta(t) => turn.text(&t),
                Event::ReasoningDelta(r) => turn.reasoning(&r),
                Event::ToolCall(call) => {
                    turn.note(describe_event(&agent::AgentEvent::ToolCall(call)));
                }
                Event::ToolResult(r) => turn.note(describe_event(&agent::AgentEvent::ToolResult(
                    runtime::Observation {
                        call_id: r.call_id,
                        content: r.content,
                        is_error: r.is_error,
                        // Not in the event; describe_event shows only content and
                        // is_error.
                        provenance: runtime::Provenance::trusted(format!(
                            "tool:{}",
                            r.name.unwrap_or_default()
                        )),
                    },
                ))),
                Event::ApprovalRequested(ask) => {
                    turn.end_text();
                    self.ask(&ask, &mut stream, &mut turn).await?;
                }
                Event::ApprovalSettled(s) => {
                    if !turn.answered_here.contains(&s.id) {
                        turn.note(Some(format!(
                            "  ({} was answered elsewhere: {}, by {})",
                            s.id,
                            s.answer(),
                            s.by.as_deref().unwrap_or("someone")
                        )));
                    }
                }
                Event::TurnFinished { answer, labels } => {
                    if turn.streamed {
                        println!();
                    } else {
                        println!("{answer}");
                    }
                    if !labels.is_null() {
                        self.session.labels = labels;
                    }
                    self.seen = seq;
                    break;
                }
                Event::TurnFailed { error } => {
                    turn.end_text();
                    eprintln!("error: {error}");
                    self.seen = seq;
                    break;
                }
                Event::TurnStarted | Event::Other => {}
            }
        }
        stream.close().await;
        Ok(())
    }

    /// Ask the person at the terminal, unless someone answers elsewhere first.
    async fn ask(
        &self,
        ask: &ApprovalAsk,
        stream: &mut EventStream<'_>,
        turn: &mut Turn,
    ) -> Result<()> {
        eprintln!();
        eprintln!(
            "┌ approval needed ─ agent `{}`, session {}",
            self.session.agent, self.session.id
        );
        eprintln!("│ action: {}", ask.action);
        eprintln!("│ why:    {} [{}]", ask.reason, ask.rule);
        if !ask.labels.is_null() {
            eprintln!("│ labels: {}", describe_labels(&ask.labels));
        }
        if !ask.untrusted_sources.is_empty() {
            eprintln!("│ untrusted content in context from:");
            for s in &ask.untrusted_sources {
                eprintln!("│   - {s}");
            }
        }
        eprintln!("│ id:     {} (or answer it in the web UI)", ask.id);
        let settled_elsewhere = |turn: &Turn| {
            turn.backlog
                .iter()
                .any(|(_, e)| matches!(e, Event::ApprovalSettled(s) if s.id == ask.id))
        };
        loop {
            if settled_elsewhere(turn) {
                // Shown when the settled event is taken from the backlog.
                return Ok(());
            }
            let line = self.lines.next("└ allow? [y]es once / [s]ession / [n]o: ");
            tokio::pin!(line);
            let line = loop {
                tokio::select! {
                    line = &mut line => break line,
                    next = next_event(stream) => {
                        turn.backlog.push_back(next?);
                        if settled_elsewhere(turn) {
                            eprintln!();
                            return Ok(());
                        }
                    }
                }
            };
            let answer = match line.as_deref().map(|l| l.trim().to_ascii_lowercase()) {
                None => {
                    eprintln!("  (end of input: denied)");
                    "deny"
                }
                Some(l) => match l.as_str() {
                    "y" | "yes" => "once",
                    "s" | "session" => "session",
                    "n" | "no" | "" => "deny",
                    other => {
                        eprintln!("  `{other}` is not an answer: type y, s or n");
                        continue;
                    }
                },
            };
            let path = format!("/api/approvals/{}", ask.id);
            match self
                .api
                .call::<Value>(Method::POST, &path, Some(json!({ "answer": answer })))
                .await
            {
                Ok(_) => {
                    turn.answered_here.insert(ask.id.clone());
                }
                Err(f) if f.status() == Some(StatusCode::CONFLICT) => {
                    eprintln!("  ({} was already answered by someone else)", ask.id);
                }
                Err(f) if f.status() == Some(StatusCode::UNAUTHORIZED) => {
                    return Err(f.explain("cannot answer the approval").into());
                }
                Err(f) => eprintln!(
                    "  cannot answer {}: {f}; it stays pending for someone who can",
                    ask.id
                ),
            }
            return Ok(());
        }
    }
}

/// What one turn has shown so far.
struct Turn {
    /// Answer text is on stdout and its line is not finished.
    streamed: bool,
    /// Reasoning is on stderr and its line is not finished.
    reasoning: bool,
    /// Events read while a question was open, handled after it.
    backlog: VecDeque<(u64, Event)>,
    /// Approvals answered from this terminal (their settlement is not news).
    answered_here: HashSet<String>,
}

impl Turn {
    fn text(&mut self, t: &str) {
        self.end_reasoning();
        self.streamed = true;
        print!("{t}");
        let _ = std::io::stdout().flush();
    }

    /// The model's reasoning on stderr, as the local chat shows it: dimmed on a terminal,
    /// after a `[reasoning]` line elsewhere.
    fn reasoning(&mut self, r: &str) {
        use std::io::IsTerminal;
        if self.streamed {
            println!();
            self.streamed = false;
        }
        let piece =
            crate::terminal::reasoning_piece(r, std::io::stderr().is_terminal(), !self.reasoning);
        eprint!("{piece}");
        let _ = std::io::stderr().flush();
        self.reasoning = true;
    }

    fn end_reasoning(&mut self) {
        if std::mem::take(&mut self.reasoning) {
            eprintln!();
        }
    }

    fn end_text(&mut self) {
        self.end_reasoning();
        if self.streamed {
            println!();
            self.streamed = false;
        }
    }

    fn note(&mut self, line: Option<String>) {
        if let Some(line) = line {
            self.end_text();
            eprintln!("{line}");
        }
    }
}

/// `trusted`, or `untrusted private`, as the local chat's prompt shows it.
fn prompt_label(labels: &Value) -> String {
    let integrity = labels["integrity"].as_str().unwrap_or("?");
    match labels["confidentiality"].as_str() {
        None | Some("public") => integrity.to_string(),
        Some(c) => format!("{integrity} {c}"),
    }
}

/// Ids go into URL paths: letters, digits, `-` and `_` only.
fn check_id(what: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("{what} `{id}` is not a session id (letters, digits, `-` and `_`)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The token.

/// `$CORDON_TOKEN`, or asked on the terminal without echo.
fn read_token() -> Result<Zeroizing<String>> {
    let token = match std::env::var(TOKEN_ENV) {
        Ok(t) => Zeroizing::new(t),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("${TOKEN_ENV} is not valid UTF-8; it should hold a token like cdn_…")
        }
        Err(std::env::VarError::NotPresent) => {
            crate::terminal::read_hidden("gateway token (not shown): ").map_err(|e| {
                anyhow!(
                    "no token: set ${TOKEN_ENV}, or run in a terminal to be asked for it \
                         ({e}); create one on the gateway's host with \
                         `cordon token create --scope operator`"
                )
            })?
        }
    };
    let trimmed = token.trim();
    if !trimmed.starts_with("cdn_") || !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "the token does not look like a Cordon token (`cdn_` followed by letters and \
             digits); create one with `cordon token create --scope operator`"
        );
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

// ---------------------------------------------------------------------------------------
// The events as shown.

/// A session event, as `docs/api.md` lists them.
enum Event {
    TurnStarted,
    TextDelta(String),
    ReasoningDelta(String),
    ToolCall(runtime::ToolCall),
    ToolResult(ToolResultData),
    ApprovalRequested(ApprovalAsk),
    ApprovalSettled(Settled),
    TurnFinished {
        answer: String,
        labels: Value,
    },
    TurnFailed {
        error: String,
    },
    /// A kind this client does not know: skipped.
    Other,
}

struct ToolResultData {
    call_id: String,
    /// `None` when the gateway did not see the call.
    name: Option<String>,
    content: String,
    is_error: bool,
}

struct ApprovalAsk {
    id: String,
    action: String,
    reason: String,
    rule: String,
    labels: Value,
    untrusted_sources: Vec<String>,
}

struct Settled {
    id: String,
    /// The runtime's answer: `{"answer": "once"}`, `{"answer": "agent", "detail": …}`.
    answer: Value,
    by: Option<String>,
}

impl Settled {
    /// `once`, `deny`, `expired`…
    fn answer(&self) -> &str {
        SessionEvent::settled_answer(&self.answer)
    }
}

impl Event {
    /// The gateway's event (`gateway::events::SessionEvent`, the type the hub writes) as
    /// this client shows it.
    fn from_gateway(event: SessionEvent) -> Event {
        match event {
            SessionEvent::TurnStarted { .. } => Event::TurnStarted,
            SessionEvent::TextDelta { text } => Event::TextDelta(text),
            SessionEvent::ReasoningDelta { text } => Event::ReasoningDelta(text),
            SessionEvent::ToolCall {
                id,
                name,
                arguments,
            } => Event::ToolCall(runtime::ToolCall {
                id,
                name,
                arguments,
            }),
            SessionEvent::ToolResult {
                call_id,
                name,
                content,
                is_error,
            } => Event::ToolResult(ToolResultData {
                call_id,
                name,
                content,
                is_error,
            }),
            SessionEvent::ApprovalRequested {
                id,
                action,
                reason,
                rule,
                labels,
                untrusted_sources,
                ..
            } => Event::ApprovalRequested(ApprovalAsk {
                id: id.unwrap_or_default(),
                action,
                reason,
                rule,
                labels,
                untrusted_sources,
            }),
            SessionEvent::ApprovalSettled { id, answer, by, .. } => {
                Event::ApprovalSettled(Settled {
                    id: id.unwrap_or_default(),
                    answer,
                    by,
                })
            }
            SessionEvent::TurnFinished { answer, labels, .. } => {
                Event::TurnFinished { answer, labels }
            }
            SessionEvent::TurnFailed { error } => Event::TurnFailed { error },
            SessionEvent::Unknown => Event::Other,
        }
    }
}

/// The next event of the turn's stream, as this client shows it.
async fn next_event(stream: &mut EventStream<'_>) -> Result<(u64, Event)> {
    let (seq, event) = stream.next().await?;
    Ok((seq, Event::from_gateway(event)))
}

/// What the stream skipped, or that it reconnects.
fn show_notice(notice: &StreamNotice) {
    match notice {
        StreamNotice::Lost { .. } => eprintln!("\n({notice})"),
        _ => eprintln!("({notice})"),
    }
}
