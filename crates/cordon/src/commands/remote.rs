//! `cordon chat --remote URL`: the terminal conversation, attached to a running gateway
//! through the same API as the web UI (`docs/api.md`): a message is `POST`ed, the
//! session's WebSocket event stream is followed until the turn ends, approvals are
//! answered with `POST /api/approvals/{id}`.
//!
//! Guarantees:
//! - The token comes from `$CORDON_TOKEN` or a prompt without echo, never from the
//!   command line or the URL: a URL with a user name, password, query or fragment is
//!   refused before anything is sent, and its query is never echoed.
//! - The token is sent only as `Authorization: Bearer`, only to the URL's host and
//!   port: over TLS (the webpki roots, plus `--ca`), or over plain HTTP only to a
//!   loopback address (`127.0.0.1`, `[::1]`, or `localhost` resolving only to loopback,
//!   and then to exactly those addresses). No proxy is used and no redirect followed.
//! - A stream that drops is reopened from the last event seen, so nothing of the turn is
//!   missed or shown twice.
//!
//! Does not: pin the gateway's certificate (any certificate a trusted CA issued for the
//! name is accepted), or keep anything on disk.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderValue, ORIGIN};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use zeroize::Zeroizing;

use gateway::events::SessionEvent;

use crate::terminal::{Lines, describe_event, describe_labels};

/// The environment variable the token is read from.
const TOKEN_ENV: &str = "CORDON_TOKEN";
/// The gateway pings every 20 s; this much silence means the connection is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(60);
/// Attempts to reopen a dropped stream (about 30 s in all with the backoff).
const RECONNECT_ATTEMPTS: u32 = 15;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest event message accepted (a tool result is capped well below this).
const MAX_EVENT_BYTES: usize = 8 << 20;

pub async fn chat(
    url: &str,
    agent: &str,
    session: Option<&str>,
    ca: Option<&Path>,
) -> Result<ExitCode> {
    let gateway = GatewayUrl::parse(url)?;
    if ca.is_some() && !gateway.tls {
        bail!(
            "--ca is for an https:// gateway; {} is plain http",
            gateway.origin()
        );
    }
    if let Some(id) = session {
        check_id("--session", id)?;
    }
    let addrs = gateway.resolve().await?;
    let tls = match gateway.tls {
        true => Some(Arc::new(tls_config(ca)?)),
        false => None,
    };
    let token = read_token()?;
    let api = Api::new(gateway, addrs, tls, &token)?;
    drop(token);

    let who: Value = api
        .call(Method::GET, "/api/whoami", None)
        .await
        .map_err(|f| f.explain(&format!("cannot use the gateway at {}", api.url.origin())))?;
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
        api.url.origin()
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
    api: Api,
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
        let mut stream = EventStream::open(&self.api, &self.session.id, self.seen).await?;
        let path = format!("/api/sessions/{}/messages", self.session.id);
        let accepted: Accepted = match self
            .api
            .call(Method::POST, &path, Some(json!({ "text": text })))
            .await
        {
            Ok(a) => a,
            Err(f) if f.is_fatal() => return Err(f.explain("cannot send the message")),
            // 409: a turn sent from elsewhere is running; 422: empty or too long.
            Err(f) => {
                eprintln!("error: cannot send the message: {f}");
                stream.close().await;
                return Ok(());
            }
        };
        let mut turn = Turn {
            streamed: false,
            backlog: VecDeque::new(),
            answered_here: HashSet::new(),
        };
        loop {
            let (seq, event) = match turn.backlog.pop_front() {
                Some(e) => e,
                None => stream.next().await?,
            };
            // Events up to the accepted one are earlier turns (a resumed session's
            // history, or turns sent from elsewhere since our last one).
            if seq <= accepted.seq {
                continue;
            }
            match event {
                Event::TextDelta(t) => turn.text(&t),
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
                    next = stream.next() => {
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
                    return Err(f.explain("cannot answer the approval"));
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
    /// Events read while a question was open, handled after it.
    backlog: VecDeque<(u64, Event)>,
    /// Approvals answered from this terminal (their settlement is not news).
    answered_here: HashSet<String>,
}

impl Turn {
    fn text(&mut self, t: &str) {
        self.streamed = true;
        print!("{t}");
        let _ = std::io::stdout().flush();
    }

    fn end_text(&mut self) {
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
// The URL and the token.

/// The gateway's base URL, checked: http(s), no credentials, no query, no fragment.
struct GatewayUrl {
    tls: bool,
    /// As in the URL: a name, an IPv4 address or `[v6]`.
    host: String,
    port: u16,
    /// `host`, or `host:port` when the port is not the scheme's default: the `Host`
    /// header both clients send, so that `scheme://authority` is the gateway's own origin.
    authority: String,
    /// A path the gateway is mounted under (behind a reverse proxy); usually empty.
    prefix: String,
}

impl GatewayUrl {
    fn parse(text: &str) -> Result<GatewayUrl> {
        // The text itself is not echoed in errors: it may hold a token.
        let url = Url::parse(text.trim()).map_err(|e| {
            anyhow!(
                "--remote: not a URL ({e}); give the gateway's address, e.g. \
                 https://cordon.example:7777 or http://127.0.0.1:7777"
            )
        })?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => bail!(
                "--remote: scheme `{other}` is not supported: use https://HOST[:PORT], or \
                 http://127.0.0.1:PORT for a gateway on this machine"
            ),
        };
        let never_in_url = "the token is read from $CORDON_TOKEN or asked for, never \
                            taken from the URL (a URL ends up in shell history and logs)";
        if !url.username().is_empty() || url.password().is_some() {
            bail!("--remote: the URL carries a user name or password; remove it: {never_in_url}");
        }
        if url.query().is_some() {
            bail!("--remote: the URL has a query (`?…`); remove it: {never_in_url}");
        }
        if url.fragment().is_some() {
            bail!("--remote: the URL has a fragment (`#…`); remove it");
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            bail!("--remote: the URL has no host; e.g. https://cordon.example:7777");
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(GatewayUrl {
            tls,
            host: host.to_string(),
            port,
            authority,
            prefix: url.path().trim_end_matches('/').to_string(),
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// `https://host:port`, what the WebSocket upgrade sends as `Origin`.
    fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }

    fn http(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin(), self.prefix)
    }

    fn ws(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}{path}", self.authority, self.prefix)
    }

    /// The host without IPv6 brackets.
    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The addresses to connect to. Plain HTTP only to loopback: the token would
    /// otherwise cross the network in clear.
    async fn resolve(&self) -> Result<Vec<SocketAddr>> {
        let host = self.bare_host();
        let literal = host.parse::<IpAddr>().ok();
        let refuse = || {
            anyhow!(
                "refusing plain http:// to {}: it is not this machine, and the token would \
                 cross the network unencrypted. Use https:// (serve with [gateway] tls_cert \
                 and tls_key), or a tunnel: `ssh -L 7777:127.0.0.1:7777 HOST`, then \
                 --remote http://127.0.0.1:7777",
                self.host
            )
        };
        if !self.tls {
            // `*.localhost` names are let through here; what they resolve to is checked
            // below.
            if !(config::is_loopback_host(host) || host.ends_with(".localhost")) {
                return Err(refuse());
            }
        }
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, self.port)],
            None => tokio::net::lookup_host((host, self.port))
                .await
                .with_context(|| format!("--remote: cannot resolve {host}"))?
                .collect(),
        };
        if addrs.is_empty() {
            bail!("--remote: {host} has no address");
        }
        if !self.tls && addrs.iter().any(|a| !a.ip().to_canonical().is_loopback()) {
            return Err(refuse());
        }
        Ok(addrs)
    }
}

/// `$CORDON_TOKEN`, or asked on the terminal without echo.
fn read_token() -> Result<Zeroizing<String>> {
    let token = match std::env::var(TOKEN_ENV) {
        Ok(t) => Zeroizing::new(t),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("${TOKEN_ENV} is not valid UTF-8; it should hold a token like cdn_…")
        }
        Err(std::env::VarError::NotPresent) => Zeroizing::new(
            rpassword::prompt_password("gateway token (not shown): ").map_err(|e| {
                anyhow!(
                    "no token: set ${TOKEN_ENV}, or run in a terminal to be asked for it \
                         ({e}); create one on the gateway's host with \
                         `cordon token create --scope operator`"
                )
            })?,
        ),
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

/// The webpki roots, plus the certificates of `ca` (PEM).
fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("--ca {shown}: cannot read PEM certificates: {e}"))?;
        if certs.is_empty() {
            bail!("--ca {shown}: no `BEGIN CERTIFICATE` block in the file");
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| anyhow!("--ca {shown}: not a usable CA certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

// ---------------------------------------------------------------------------------------
// The JSON API.

struct Api {
    http: reqwest::Client,
    url: GatewayUrl,
    addrs: Vec<SocketAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `Bearer cdn_…`, marked sensitive (never shown in debug output).
    bearer: HeaderValue,
}

#[derive(Deserialize)]
struct Session {
    id: String,
    agent: String,
    #[serde(default)]
    labels: Value,
}

#[derive(Deserialize)]
struct SessionView {
    session: Session,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Deserialize)]
struct Accepted {
    seq: u64,
}

/// A request the gateway did not answer with success.
#[derive(Debug)]
enum Failure {
    Refused {
        status: StatusCode,
        error: String,
        request_id: Option<String>,
    },
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused {
                status,
                error,
                request_id,
            } => {
                write!(f, "{} {error}", status.as_u16())?;
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                Ok(())
            }
            Failure::Unreachable(why) => write!(f, "{why}"),
        }
    }
}

impl Failure {
    fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Refused { status, .. } => Some(*status),
            Failure::Unreachable(_) => None,
        }
    }

    /// Nothing further can work: the token, its scope or the session is refused.
    fn is_fatal(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND)
        )
    }

    /// A user-facing error: what failed, the gateway's reason, what to do.
    fn explain(self, doing: &str) -> anyhow::Error {
        match self.status() {
            Some(StatusCode::UNAUTHORIZED) => anyhow!(
                "{doing}: the gateway refused the token ({self}). It is unknown, expired or \
                 revoked: create one on the gateway's host with `cordon token create --scope \
                 operator` and put it in ${TOKEN_ENV}"
            ),
            Some(StatusCode::FORBIDDEN) if self.to_string().contains("scope") => anyhow!(
                "{doing}: refused ({self}). Talking to an agent needs a token with the \
                 `operator` scope (`cordon token create --scope operator`)"
            ),
            Some(StatusCode::FORBIDDEN) => anyhow!("{doing}: refused ({self})"),
            _ => anyhow!("{doing}: {self}"),
        }
    }
}

impl Api {
    fn new(
        url: GatewayUrl,
        addrs: Vec<SocketAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
        token: &str,
    ) -> Result<Api> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token is not a valid header value")?;
        bearer.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(HTTP_TIMEOUT)
            .user_agent(concat!("cordon/", env!("CARGO_PKG_VERSION")));
        if url.bare_host().parse::<IpAddr>().is_err() {
            // Connect to the addresses checked above, not to a second lookup's.
            builder = builder.resolve_to_addrs(url.bare_host(), &addrs);
        }
        if let Some(tls) = &tls {
            builder = builder.use_preconfigured_tls((**tls).clone());
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Api {
            http,
            url,
            addrs,
            tls,
            bearer,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Failure> {
        let mut req = self
            .http
            .request(method, self.url.http(path))
            .header(AUTHORIZATION, self.bearer.clone());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("{}: {}", self.url.origin(), chain(&e))))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::Unreachable(format!("reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Unreachable(format!(
                "the gateway's answer to {path} is not what docs/api.md describes: {e}"
            ))
        })
    }

    async fn create_session(&self, agent: &str) -> Result<Session> {
        self.call(
            Method::POST,
            "/api/sessions",
            Some(json!({ "agent": agent })),
        )
        .await
        .map_err(|f| f.explain(&format!("cannot start a session with agent `{agent}`")))
    }
}

/// An error with its causes (reqwest's own message says only "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The gateway's `{error, request_id}` (or whatever body came instead).
fn refusal(status: StatusCode, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("").to_string()
            } else {
                text.chars().take(300).collect()
            }
        });
    let request_id = parsed.and_then(|v| v["request_id"].as_str().map(str::to_string));
    Failure::Refused {
        status,
        error,
        request_id,
    }
}

// ---------------------------------------------------------------------------------------
// The event stream.

/// A session event, as `docs/api.md` lists them.
enum Event {
    TurnStarted,
    TextDelta(String),
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

#[derive(Deserialize)]
struct Envelope {
    seq: u64,
    kind: String,
    #[serde(default)]
    data: Value,
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
    fn parse(kind: &str, data: Value) -> Result<Event, serde_json::Error> {
        Ok(match SessionEvent::from_parts(kind, data)? {
            SessionEvent::TurnStarted { .. } => Event::TurnStarted,
            SessionEvent::TextDelta { text } => Event::TextDelta(text),
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
        })
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// `GET /api/sessions/{id}/stream?after=N`, reopened from the last event seen when it
/// drops.
struct EventStream<'a> {
    api: &'a Api,
    session: String,
    after: u64,
    socket: Option<Socket>,
}

/// Why a stream could not be opened.
enum OpenError {
    /// The gateway answered the upgrade with a 4xx: retrying cannot help.
    Refused(anyhow::Error),
    Failed(String),
}

impl<'a> EventStream<'a> {
    async fn open(api: &'a Api, session: &str, after: u64) -> Result<EventStream<'a>> {
        let mut stream = EventStream {
            api,
            session: session.to_string(),
            after,
            socket: None,
        };
        stream.socket = Some(match stream.connect().await {
            Ok(s) => s,
            Err(OpenError::Refused(e)) => return Err(e),
            Err(OpenError::Failed(why)) => bail!("cannot open the event stream: {why}"),
        });
        Ok(stream)
    }

    /// The next event after the last one returned.
    async fn next(&mut self) -> Result<(u64, Event)> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                self.reconnect().await?;
                continue;
            };
            let why = match tokio::time::timeout(STREAM_SILENCE, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let env: Envelope = match serde_json::from_str(&text) {
                        Ok(e) => e,
                        Err(e) => {
                            eprintln!("(skipped an event that is not JSON as documented: {e})");
                            continue;
                        }
                    };
                    // A repeat would mean a gateway bug; showing it twice would be ours.
                    if env.seq <= self.after {
                        continue;
                    }
                    self.after = env.seq;
                    match Event::parse(&env.kind, env.data) {
                        Ok(event) => return Ok((env.seq, event)),
                        Err(e) => {
                            eprintln!("(skipped event {} `{}`: {e})", env.seq, env.kind);
                            continue;
                        }
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => match frame {
                    Some(f) if !f.reason.is_empty() => {
                        format!("the gateway closed it ({})", f.reason)
                    }
                    _ => "the gateway closed it".to_string(),
                },
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => e.to_string(),
                Ok(None) => "the connection ended".to_string(),
                Err(_) => format!("nothing received for {} s", STREAM_SILENCE.as_secs()),
            };
            self.socket = None;
            eprintln!(
                "\n(event stream lost: {why}; reopening from event {})",
                self.after
            );
        }
    }

    async fn reconnect(&mut self) -> Result<()> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for _ in 0..RECONNECT_ATTEMPTS {
            tokio::time::sleep(delay).await;
            match self.connect().await {
                Ok(socket) => {
                    self.socket = Some(socket);
                    eprintln!("(event stream reopened)");
                    return Ok(());
                }
                Err(OpenError::Refused(e)) => return Err(e),
                Err(OpenError::Failed(why)) => last = why,
            }
            delay = (delay * 2).min(Duration::from_secs(3));
        }
        bail!(
            "the event stream of session {} could not be reopened ({last}); the turn may \
             still be running on the gateway",
            self.session
        )
    }

    async fn connect(&self) -> Result<Socket, OpenError> {
        let api = self.api;
        let path = format!("/api/sessions/{}/stream?after={}", self.session, self.after);
        let failed =
            |what: &str, e: &dyn std::fmt::Display| OpenError::Failed(format!("{what}: {e}"));
        let mut req = api
            .url
            .ws(&path)
            .into_client_request()
            .map_err(|e| failed("bad stream URL", &e))?;
        // `Host` is the URL's authority, so this is the gateway's own origin.
        let origin =
            HeaderValue::from_str(&api.url.origin()).map_err(|e| failed("bad origin", &e))?;
        req.headers_mut().insert(ORIGIN, origin);
        req.headers_mut().insert(AUTHORIZATION, api.bearer.clone());

        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&api.addrs[..]),
        )
        .await
        .map_err(|_| OpenError::Failed(format!("{}: connect timed out", api.url.origin())))?
        .map_err(|e| failed(&api.url.origin(), &e))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &api.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(api.url.bare_host().to_string())
                    .map_err(|e| failed("TLS server name", &e))?;
                let conn = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| failed("TLS", &e))?;
                Box::new(conn)
            }
        };
        let config = WebSocketConfig::default().max_message_size(Some(MAX_EVENT_BYTES));
        let handshake = tokio_tungstenite::client_async_with_config(req, io, Some(config));
        match tokio::time::timeout(HTTP_TIMEOUT, handshake).await {
            Err(_) => Err(OpenError::Failed("the WebSocket upgrade timed out".into())),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status();
                let failure = refusal(status, resp.body().as_deref().unwrap_or_default());
                if status.is_client_error() {
                    Err(OpenError::Refused(
                        failure.explain("the gateway refused the event stream"),
                    ))
                } else {
                    Err(OpenError::Failed(failure.to_string()))
                }
            }
            Ok(Err(e)) => Err(failed("WebSocket upgrade", &e)),
        }
    }

    /// A polite close; the turn is over, so failures do not matter.
    async fn close(mut self) {
        if let Some(socket) = self.socket.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_secrets_or_other_schemes_are_refused_without_echoing_them() {
        for (url, says) in [
            ("http://127.0.0.1:7777/?token=cdn_SECRET", "query"),
            ("https://cordon.example/#cdn_SECRET", "fragment"),
            ("https://me:cdn_SECRET@cordon.example", "password"),
            ("ftp://cordon.example", "scheme `ftp`"),
            ("ws://127.0.0.1:7777", "scheme `ws`"),
        ] {
            let err = GatewayUrl::parse(url).err().unwrap().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("SECRET"), "{url}: {err}");
        }
    }

    #[test]
    fn origin_matches_the_host_header() {
        let u = GatewayUrl::parse("https://Cordon.Example:443/").unwrap();
        assert_eq!(u.origin(), "https://cordon.example");
        assert_eq!(u.ws("/api/x"), "wss://cordon.example/api/x");
        let u = GatewayUrl::parse("http://[::1]:7777/cordon/").unwrap();
        assert_eq!(u.origin(), "http://[::1]:7777");
        assert_eq!(u.http("/api/x"), "http://[::1]:7777/cordon/api/x");
        assert_eq!(u.bare_host(), "::1");
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        for ok in ["http://127.0.0.1:1", "http://[::1]:1", "http://127.0.0.2:1"] {
            let addrs = GatewayUrl::parse(ok).unwrap().resolve().await.unwrap();
            assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{ok}");
        }
        for bad in [
            "http://192.0.2.1:7777",
            "http://cordon.example:7777",
            "http://127.0.0.1.nip.io:7777",
            "http://[::ffff:10.0.0.1]:7777",
        ] {
            let err = GatewayUrl::parse(bad)
                .unwrap()
                .resolve()
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("refusing plain http://"), "{bad}: {err}");
        }
    }
}
