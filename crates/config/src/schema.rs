//! Every configuration key, defined once with its documentation.
//!
//! The doc comments here are user documentation: they become the JSON Schema
//! descriptions and `docs/configuration.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::host::HostPattern;

/// The whole `cordon.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Security tier this deployment declares. `cordon audit` reports where the config
    /// falls below it.
    #[serde(default)]
    pub tier: Tier,
    /// The language model every agent talks to.
    pub model: ModelConfig,
    /// Agents by name. `cordon run --agent NAME` selects one; `default` otherwise.
    /// Names are 1-32 characters of `a-z`, `0-9`, `-`, `_`.
    pub agents: BTreeMap<String, AgentConfig>,
    /// How tool processes are isolated.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// The tamper-evident audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Deliver every `alert` audit record (login bursts, blocked exfiltration, audit
    /// export failing…) to a webhook (Slack, Mattermost, a pager bridge); required by
    /// tier enterprise. `cordon serve` looks for new alerts every 2 seconds, and `cordon
    /// log export` delivers what is pending. Delivery is at least once and in order, from
    /// a cursor in the state directory (`alerts-delivery.json`): a failed POST is logged
    /// and retried, never skipped, and a restart resumes after the last alert the webhook
    /// accepted. Only `alert` records are sent; a failing webhook is recorded as an
    /// `error` record, not as another alert.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
    /// The egress proxy every outbound connection of tools goes through.
    #[serde(default)]
    pub egress: GatewayEgressConfig,
    /// Extra Cedar policies added to the ones compiled from this file.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How approval requests are kept and answered.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// The HTTP gateway (`cordon serve`).
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Where sessions, approvals, grants, gateway tokens and session events are kept:
    /// SQLite in the state directory (`STATE/cordon.db`) unless `url` names a PostgreSQL
    /// database, which several Cordon processes or hosts can share. TLS to PostgreSQL is
    /// not implemented: `url` must name a Unix socket directory or a loopback host
    /// (`localhost`, `127.0.0.1`, `::1`), and any other host is refused, because the
    /// store holds conversation content and token hashes.
    #[serde(default)]
    pub store: StoreConfig,
    /// MCP servers the agents may use, each behind the same boundary as the agent's own
    /// tools.
    #[serde(default)]
    pub mcp: McpConfig,
    /// The journal of workspace changes that makes them undoable (`cordon changes`,
    /// `cordon undo`).
    #[serde(default)]
    pub checkpoints: CheckpointsConfig,
    /// Chat channels `cordon serve` runs, by platform: `[channels.telegram]`,
    /// `[channels.slack]`, `[channels.matrix]`.
    #[serde(default)]
    pub channels: BTreeMap<ChannelKind, ChannelConfig>,
    /// Inbound webhooks, by name: `POST /hooks/NAME` on the gateway starts the hook's
    /// task with the request body as untrusted content.
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// Tasks `cordon serve` runs on a schedule (`[[schedules]]`).
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// A periodic check-in: the agent is asked, every `every_mins`, whether anything needs
    /// attention; an answer of `HEARTBEAT_OK` is not delivered.
    #[serde(default)]
    pub heartbeat: Option<HeartbeatConfig>,
}

/// A chat platform (`[channels.NAME]`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Telegram's Bot API (long polling).
    Telegram,
    /// Slack's Web API and Socket Mode.
    Slack,
    /// A Matrix homeserver's client-server API (sync and send).
    Matrix,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Telegram => "telegram",
            ChannelKind::Slack => "slack",
            ChannelKind::Matrix => "matrix",
        }
    }

    /// The platform's public API, used when `api_url` is not set; Matrix has none (each
    /// homeserver is its own).
    pub fn default_api_url(self) -> Option<&'static str> {
        match self {
            ChannelKind::Telegram => Some("https://api.telegram.org/"),
            ChannelKind::Slack => Some("https://slack.com/api/"),
            ChannelKind::Matrix => None,
        }
    }

    /// Parse a channel's name as written in `reply_to` and on the command line.
    pub fn parse(name: &str) -> Option<ChannelKind> {
        [
            ChannelKind::Telegram,
            ChannelKind::Slack,
            ChannelKind::Matrix,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[channels.NAME]`: one chat platform. A message from a sender nobody paired never
/// reaches the agent: the sender is given a one-time code for `cordon pairing approve`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The vault secret holding the bot's token (`cordon secrets set NAME`): Telegram's
    /// bot token, Slack's bot token (`xoxb-…`), or a Matrix access token. Never the token
    /// itself.
    pub token_secret: String,
    /// Slack only: the vault secret holding the app-level token (`xapp-…`) Socket Mode
    /// connects with.
    #[serde(default)]
    pub app_token_secret: Option<String>,
    /// The platform's API base URL. Default: the public service (Telegram
    /// `https://api.telegram.org`, Slack `https://slack.com/api`); required for Matrix
    /// (your homeserver). Plain `http` only to loopback.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The agent that answers (default `default`).
    #[serde(default = "defaults::agent_name")]
    pub agent: String,
    /// Who reaches the agent: `pairing` (unknown senders get a code a human approves),
    /// `allowlist` (only ids in `allow`; others are refused without a code) or `open`
    /// (anyone, as role `user`; `cordon audit` reports it).
    #[serde(default)]
    pub inbound: InboundPolicy,
    /// Identities allowed without pairing: the platform's immutable user ids (Telegram's
    /// numeric id, Slack's `U…`, Matrix's `@user:server`), never display names.
    #[serde(default)]
    pub allow: Vec<ChannelIdentity>,
    /// Group conversations (chat, channel or room ids) the bot answers in, and there only
    /// when mentioned. Empty: groups are off. A message from anyone but an owner in a group
    /// is untrusted content.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Messages accepted per sender per minute (1-600); more are refused and recorded.
    #[serde(default = "defaults::channel_rate_per_min")]
    pub rate_per_min: u32,
    /// Largest message text accepted, in bytes (1-65536); longer ones are refused.
    #[serde(default = "defaults::channel_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Largest attachment kept, in bytes (0-104857600; 0: attachments refused). Kept ones
    /// land in the workspace's `.cordon-inbox/` and are untrusted.
    #[serde(default = "defaults::channel_max_file_bytes")]
    pub max_file_bytes: u64,
}

/// `channels.NAME.inbound`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InboundPolicy {
    /// Unknown senders get a one-time code; `cordon pairing approve CODE` admits them.
    #[default]
    Pairing,
    /// Only the ids in `allow` (and ones paired earlier).
    Allowlist,
    /// Anyone, as role `user`.
    Open,
}

/// An identity allowed on a channel without pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelIdentity {
    /// The platform's immutable user id.
    pub id: String,
    /// `owner` (their words are the user speaking; may answer approvals), `approver` (may
    /// answer approvals; their messages in groups are untrusted) or `user`.
    #[serde(default)]
    pub role: ChannelRole,
}

/// What a paired identity may do.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelRole {
    /// Talks to the agent; cannot answer approvals.
    #[default]
    User,
    /// Talks to the agent and answers approvals in the chat.
    Approver,
    /// The person the agent works for: their words are the user speaking, in groups too.
    Owner,
}

impl ChannelRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelRole::User => "user",
            ChannelRole::Approver => "approver",
            ChannelRole::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelRole> {
        [ChannelRole::User, ChannelRole::Approver, ChannelRole::Owner]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// `[webhooks.NAME]`: `POST /hooks/NAME` starts `task` with the body as untrusted
/// content. A delivery must carry `X-Cordon-Timestamp` (Unix seconds, within
/// `window_secs` of now) and `X-Cordon-Signature: sha256=HEX`, the HMAC-SHA256 of
/// `TIMESTAMP.BODY` with the secret; a signature seen before is refused (replay).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The vault secret holding the HMAC key. Without one, every delivery is refused and
    /// `cordon audit` reports the hook.
    #[serde(default)]
    pub secret: Option<String>,
    /// The agent that runs the task (default `default`).
    #[serde(default = "defaults::agent_name")]
    pub agent: String,
    /// What the agent is asked to do with the delivery.
    pub task: String,
    /// Where the answer goes: `CHANNEL:CONVERSATION` (e.g. `telegram:123456`). Absent:
    /// only the log and the session.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Largest body accepted, in bytes (1-1048576).
    #[serde(default = "defaults::webhook_max_body_bytes")]
    pub max_body_bytes: u64,
    /// How far the timestamp may be from now, in seconds (10-3600).
    #[serde(default = "defaults::webhook_window_secs")]
    pub window_secs: u64,
}

/// `[[schedules]]`: a task run at the times of a cron expression.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Its name (`cordon schedules run NAME`): 1-32 of `a-z`, `0-9`, `-`, `_`.
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), e.g. `0 8 * * 1-5`.
    pub cron: String,
    /// The IANA time zone the expression is read in (default `UTC`).
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    /// The agent that runs it (default `default`).
    #[serde(default = "defaults::agent_name")]
    pub agent: String,
    /// What the agent is asked to do.
    pub task: String,
    /// Where the answer goes: `CHANNEL:CONVERSATION`. Absent: only the log.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// `[heartbeat]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// Minutes between check-ins (5-1440).
    #[serde(default = "defaults::heartbeat_every_mins")]
    pub every_mins: u64,
    /// The agent that is asked (default `default`).
    #[serde(default = "defaults::agent_name")]
    pub agent: String,
    /// What it is asked; it answers `HEARTBEAT_OK` when nothing needs attention.
    #[serde(default = "defaults::heartbeat_task")]
    pub task: String,
    /// Where an answer other than `HEARTBEAT_OK` goes: `CHANNEL:CONVERSATION`.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// `[checkpoints]`: every change a tool makes in a workspace is journaled with what it
/// replaced, in `STATE/checkpoints` (content-addressed, deduplicated), so `cordon undo`
/// can restore it exactly. A journaled change needs no approval even in a session that
/// has read untrusted content; what leaves the machine or cannot be undone still asks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsConfig {
    /// Journal workspace changes. Off: every change outside `labels.scratch` in an
    /// untrusted session asks, as before checkpoints existed.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Largest size of the journal's stored content, in MiB (1-1048576). A change whose
    /// earlier content would not fit is not checkpointed, so it asks (in an untrusted
    /// session) like any change that cannot be undone; a command's change set that turns
    /// out not to fit asks before any of it is applied (discarded if refused).
    #[serde(default = "defaults::checkpoint_max_mb")]
    pub max_mb: u64,
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        CheckpointsConfig {
            enabled: true,
            max_mb: defaults::checkpoint_max_mb(),
        }
    }
}

/// `[mcp]`: MCP servers, by name (`[mcp.servers.NAME]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Servers by name: 1-32 characters of `a-z`, `0-9`, `-`, without `__` (the model
    /// sees a server's tool as `NAME__TOOL`).
    #[serde(default)]
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// `[mcp.servers.NAME]`: one MCP server. Either `command` (stdio: started in a sandbox
/// of its own) or `url` (streamable HTTP: reached only through the egress proxy).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program of a stdio server (`npx`, `uvx`, `/usr/bin/mcp-server-git` …),
    /// run in its own sandbox with the limits of `[sandbox]`.
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The endpoint of a streamable-HTTP server: `https://`, or `http://` on this
    /// machine only.
    #[serde(default)]
    pub url: Option<String>,
    /// Hosts the server may reach through the egress proxy (`api.github.com`,
    /// `*.example.com`, with an optional `:port`). Empty: no network. An HTTP server's
    /// own host is reachable without being listed.
    #[serde(default)]
    pub egress: Vec<HostPattern>,
    /// Vault secrets given to the server as placeholders (environment variables of the
    /// same name for a stdio server), swapped by the egress proxy only for their bound
    /// hosts.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Headers sent with every request to an HTTP server, e.g.
    /// `{ Authorization = "Bearer ${GITHUB_TOKEN}" }`: `${NAME}` names one of its
    /// `secrets` and is sent as that secret's placeholder, which the egress proxy swaps
    /// for the value only on the way to the secret's bound hosts.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The server's access to the agent's workspace: `none`, `read` or `write`.
    #[serde(default)]
    pub workspace: McpWorkspace,
    /// Which of its tools are offered at all (before any approval).
    #[serde(default)]
    pub tools: McpToolFilter,
    /// `untrusted` (results label the session untrusted) or `trusted`.
    #[serde(default)]
    pub trust: McpTrust,
    /// Agents that use it; empty: every agent.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Seconds one tool call may take before it is cancelled.
    #[serde(default = "default_mcp_timeout")]
    pub timeout_secs: u64,
}

fn default_mcp_timeout() -> u64 {
    60
}

/// An MCP server's workspace access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpWorkspace {
    /// No workspace: an empty, read-only `/workspace`.
    #[default]
    None,
    Read,
    Write,
}

/// Whether an MCP server's results are trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpTrust {
    /// Its results label the session untrusted, as fetched web content does.
    #[default]
    Untrusted,
    /// Its results are trusted (a server you wrote and control).
    Trusted,
}

/// `[mcp.servers.NAME.tools]`: tool names to offer (`include`, empty: all) and to never
/// offer (`exclude`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpToolFilter {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl McpToolFilter {
    /// Whether tool `name` passes the filter.
    pub fn allows(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|t| t == name))
            && !self.exclude.iter().any(|t| t == name)
    }
}

/// `[store]`: the session store. Without `url`, SQLite at `STATE/cordon.db`.
///
/// PostgreSQL is reached without TLS (not implemented yet), so the URL must name a Unix
/// socket directory or a loopback host (`localhost`, `127.0.0.1`, `::1`); any other host
/// is refused. The database holds conversation content and token hashes: give the role
/// access to that database only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A PostgreSQL database instead of SQLite: `postgres://USER@HOST[:PORT]/DB` with a
    /// loopback HOST, or `postgres://USER@/DB?host=/run/postgresql` for a Unix socket
    /// directory. No password in the URL: use `password_env`. Cordon creates its tables
    /// in an empty database and refuses one that has other tables or a newer Cordon
    /// schema.
    #[serde(default)]
    pub url: Option<String>,
    /// Name of the environment variable holding the PostgreSQL password (not the password
    /// itself); unset sends none (peer or trust authentication on a socket).
    #[serde(default)]
    pub password_env: Option<String>,
}

/// `[gateway]`: the HTTP API and web UI served by `cordon serve`. A bind address that is
/// not loopback is refused unless `tls_cert` and `tls_key` are set and at least one
/// unrevoked, unexpired token exists (`cordon token create`); nothing turns that refusal
/// into a warning.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address and port to listen on, e.g. `127.0.0.1:7777` or `[::1]:7777`.
    /// `cordon serve --bind` overrides it.
    #[serde(default = "defaults::gateway_bind")]
    pub bind: String,
    /// TLS certificate chain (PEM file; a relative path is relative to the directory of
    /// this config file). Set together with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM file, PKCS#8, PKCS#1 or SEC1; relative like `tls_cert`).
    /// Set together with `tls_cert`. Keep it readable only by the Cordon user.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (CIDRs, e.g. `10.0.0.5/32`) whose `X-Forwarded-For` header is
    /// believed. From any other peer the header is ignored and the socket address is the
    /// client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Extra origins (`https://cordon.example.com`, scheme://host[:port], no path) whose
    /// pages may send state-changing requests; the gateway's own origin always may.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// A browser session ends after this many seconds without a request (60-86400).
    #[serde(default = "defaults::session_idle_secs")]
    pub session_idle_secs: u64,
    /// A browser session ends this many seconds after login, however active (60-604800,
    /// at least `session_idle_secs`).
    #[serde(default = "defaults::session_max_secs")]
    pub session_max_secs: u64,
    /// Failed logins from one client address before it is locked out (1-1000).
    #[serde(default = "defaults::login_max_failures")]
    pub login_max_failures: u32,
    /// Seconds a locked-out address stays locked out; failures older than this are
    /// forgotten (1-86400).
    #[serde(default = "defaults::login_lockout_secs")]
    pub login_lockout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            bind: defaults::gateway_bind(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            session_idle_secs: defaults::session_idle_secs(),
            session_max_secs: defaults::session_max_secs(),
            login_max_failures: defaults::login_max_failures(),
            login_lockout_secs: defaults::login_lockout_secs(),
        }
    }
}

/// `[policy]`: user policies in Cedar, on top of the policies Cordon compiles from this
/// file (`cordon policy explain` prints both). They are validated against Cordon's
/// Cedar schema when the config is loaded; a `forbid` always wins over a `permit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `.cedar` files, relative to the directory of this config file. A policy annotated
    /// `@ask("reason")` on a `forbid` asks a human instead of denying; `@reason("...")`
    /// gives the text shown for its decision.
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// `[approvals]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Seconds a pending approval waits for an answer (from `cordon chat`,
    /// `cordon approvals approve|deny`, or the web UI) before it expires and the action
    /// is denied (1-86400).
    #[serde(default = "defaults::approval_timeout_secs")]
    pub timeout_secs: u64,
    /// Longest lifetime, in days, of an "always for this agent" grant (1-365).
    #[serde(default = "defaults::grant_max_days")]
    pub grant_max_days: u64,
    /// Who may answer: `anyone` (the terminal that asked, `cordon approvals` on this
    /// machine, or an approver token through the gateway) or `approvers` (only a person
    /// holding an `approver`, `operator` or `admin` token, through the gateway: the web
    /// UI or `cordon chat --remote`; the terminal running the agent shows the request and
    /// waits). Tiers team and enterprise use `approvers`.
    #[serde(default)]
    pub answered_by: AnsweredBy,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            timeout_secs: defaults::approval_timeout_secs(),
            grant_max_days: defaults::grant_max_days(),
            answered_by: AnsweredBy::default(),
        }
    }
}

/// `approvals.answered_by`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnsweredBy {
    /// The asking terminal, the local CLI, or an approver token.
    #[default]
    Anyone,
    /// Only approver tokens, through the gateway.
    Approvers,
}

/// Security tier presets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// One person on one machine: loopback only, exec asks.
    #[default]
    Personal,
    /// A team behind TLS and scoped tokens.
    Team,
    /// Team plus mandatory policy files and per-call sandboxes.
    Enterprise,
}

/// LLM provider wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, llama.cpp, OpenRouter…).
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

/// `[model]`: the LLM endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Wire protocol: `openai` or `anthropic`.
    pub provider: Provider,
    /// Base URL of the API, e.g. `http://127.0.0.1:11434/v1` or `https://api.anthropic.com/v1`.
    /// Must be `http://` or `https://`. This is the only host the model connection may reach.
    pub base_url: String,
    /// Model name sent to the provider.
    pub model: String,
    /// Name of the environment variable holding the API key. The key itself never goes in
    /// this file. Omit for local servers that need no key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Stream responses (server-sent events).
    #[serde(default = "defaults::yes")]
    pub stream: bool,
    /// Seconds the model may stay silent (no response bytes) before the request is
    /// abandoned (1-3600). A long streamed answer that keeps arriving is not cut.
    #[serde(default = "defaults::model_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries on HTTP 429/5xx and connection errors, with exponential backoff (0-10).
    #[serde(default = "defaults::model_max_retries")]
    pub max_retries: u32,
    /// Upper bound on tokens the model may generate per reply (at least 1). An answer that
    /// reaches it ends with a note that it was cut off, and a tool call it cut is never
    /// run: the model is told and may make it again.
    #[serde(default = "defaults::max_tokens")]
    pub max_tokens: u32,
}

/// A tool an agent may be given.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ToolName {
    /// Read a workspace file.
    ReadFile,
    /// Create or replace a workspace file.
    WriteFile,
    /// Exact search/replace in a workspace file.
    EditFile,
    /// List a workspace directory.
    ListDir,
    /// Regex search over workspace files.
    Search,
    /// Run a shell command in the sandbox.
    Exec,
    /// HTTP GET/POST to an allowed host; with `extract`, a quarantined model reads the
    /// page and only its schema-checked answer comes back.
    HttpFetch,
    /// Write to the agent's long-term memory (`MEMORY.md`, `memory/*.md`). From a session
    /// that has read untrusted content the write waits for a human.
    MemoryWrite,
    /// Start a sub-agent with a task and a subset of this agent's tools.
    SpawnAgent,
    /// Send a message to a chat conversation (`CHANNEL:CONVERSATION`) through a
    /// configured channel. Asks a human unless the conversation is in
    /// `send_message.allow`; refused while the session holds private data, or secret data
    /// not bound to the channel's API host. Not in the default tools: list it to give it.
    SendMessage,
}

impl ToolName {
    pub const ALL: [ToolName; 10] = [
        ToolName::ReadFile,
        ToolName::WriteFile,
        ToolName::EditFile,
        ToolName::ListDir,
        ToolName::Search,
        ToolName::Exec,
        ToolName::HttpFetch,
        ToolName::MemoryWrite,
        ToolName::SpawnAgent,
        ToolName::SendMessage,
    ];

    /// The tools an agent gets when `tools` is not written: all but `send_message`,
    /// which reaches people beyond the one who asked and is given only on purpose.
    pub const DEFAULT: [ToolName; 9] = [
        ToolName::ReadFile,
        ToolName::WriteFile,
        ToolName::EditFile,
        ToolName::ListDir,
        ToolName::Search,
        ToolName::Exec,
        ToolName::HttpFetch,
        ToolName::MemoryWrite,
        ToolName::SpawnAgent,
    ];

    /// The name the model uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::ReadFile => "read_file",
            ToolName::WriteFile => "write_file",
            ToolName::EditFile => "edit_file",
            ToolName::ListDir => "list_dir",
            ToolName::Search => "search",
            ToolName::Exec => "exec",
            ToolName::HttpFetch => "http_fetch",
            ToolName::MemoryWrite => "memory_write",
            ToolName::SpawnAgent => "spawn_agent",
            ToolName::SendMessage => "send_message",
        }
    }

    pub fn parse(name: &str) -> Option<ToolName> {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[agents.NAME]`: one agent's identity, workspace and permissions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Directory the agent works on. `~` expands to `$HOME`. Created by `cordon init`.
    /// Inside the sandbox it appears as `/workspace`.
    pub workspace: PathBuf,
    /// Tools this agent is given. A tool not listed does not exist for the model.
    #[serde(default = "defaults::tools")]
    pub tools: Vec<ToolName>,
    /// Most model steps (model replies) in one task before it is stopped (1-200).
    #[serde(default = "defaults::max_steps")]
    pub max_steps: u32,
    /// Extra instructions appended to Cordon's system prompt.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Shell command execution.
    #[serde(default)]
    pub exec: ExecConfig,
    /// Outbound network.
    #[serde(default)]
    pub egress: EgressConfig,
    /// Which workspace content is labelled private, and where an untrusted session may
    /// still write without approval.
    #[serde(default)]
    pub labels: LabelsConfig,
    /// Limits on sub-agents started with the `spawn_agent` tool.
    #[serde(default)]
    pub subagents: SubagentsConfig,
    /// Where the `send_message` tool may send without asking.
    #[serde(default)]
    pub send_message: SendMessageConfig,
}

/// `[agents.NAME.send_message]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageConfig {
    /// Conversations (`CHANNEL:CONVERSATION`, e.g. `telegram:123456`) a message may be sent
    /// to without asking, from a session that has read nothing untrusted. Every other
    /// conversation asks a human. The data rules apply either way.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// `[agents.NAME.labels]`: information-flow labels of workspace content.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelsConfig {
    /// Workspace paths whose content is private (glob patterns relative to the workspace,
    /// e.g. `finance/**`, `*.key`, `.env`). Reading one labels the session `private`;
    /// a private session may not send data to any host.
    #[serde(default)]
    pub private: Vec<String>,
    /// Workspace directories (relative, e.g. `scratch`) a session that has read untrusted
    /// content may still write to without approval. Writes anywhere else ask.
    #[serde(default = "defaults::scratch")]
    pub scratch: Vec<String>,
}

impl Default for LabelsConfig {
    fn default() -> Self {
        LabelsConfig {
            private: Vec::new(),
            scratch: defaults::scratch(),
        }
    }
}

/// `[agents.NAME.subagents]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubagentsConfig {
    /// How deep sub-agents may nest: 1 lets this agent start children that cannot start
    /// their own (0-4; 0 disables `spawn_agent`).
    #[serde(default = "defaults::subagent_max_depth")]
    pub max_depth: u32,
    /// Most sub-agents one session may start (1-32).
    #[serde(default = "defaults::subagent_max_children")]
    pub max_children: u32,
    /// Refuse to start a sub-agent unless tool processes are sandboxed
    /// (`sandbox.backend` is not `none`).
    #[serde(default = "defaults::yes")]
    pub require_sandbox: bool,
}

impl Default for SubagentsConfig {
    fn default() -> Self {
        SubagentsConfig {
            max_depth: defaults::subagent_max_depth(),
            max_children: defaults::subagent_max_children(),
            require_sandbox: true,
        }
    }
}

/// When `exec` may run without a human.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Never run commands.
    Deny,
    /// Ask a human before every command.
    #[default]
    Ask,
    /// Run commands whose program is in `allow`; ask for the rest.
    Allowlist,
    /// Run every command without asking (still sandboxed).
    Auto,
}

/// `[agents.NAME.exec]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// `deny` | `ask` | `allowlist` | `auto`.
    #[serde(default)]
    pub mode: ExecMode,
    /// Programs (first word, e.g. `ls`, `cargo`, `/usr/bin/git`) that run without asking
    /// in `allowlist` mode.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Wall-clock seconds before the command's whole process tree is killed (1-86400).
    #[serde(default = "defaults::exec_timeout_secs")]
    pub timeout_secs: u64,
    /// Bytes of stdout and of stderr kept per command; the rest is cut and the cut reported
    /// (1024-16777216, i.e. 1 KiB-16 MiB).
    #[serde(default = "defaults::exec_output_limit")]
    pub output_limit: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            mode: ExecMode::default(),
            allow: Vec::new(),
            timeout_secs: defaults::exec_timeout_secs(),
            output_limit: defaults::exec_output_limit(),
        }
    }
}

/// `[agents.NAME.egress]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Host patterns this agent may reach: `api.github.com`, `*.pypi.org` (one leading
    /// `*.` covers subdomains, not the domain itself), optionally with `:port`
    /// (default 80 and 443). Empty: no network at all.
    #[serde(default)]
    pub allow: Vec<HostPattern>,
    /// Vault secrets (`cordon secrets set NAME --hosts …`) this agent may use. The agent
    /// and its tools only ever see a placeholder; the egress proxy swaps in the real value
    /// in requests to the secret's bound hosts.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// `[egress]`: the gateway-wide egress proxy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayEgressConfig {
    /// Static name -> address answers, like `curl --resolve`
    /// (`{ "mirror.internal" = "10.0.0.5" }`). Still subject to the private-address block
    /// unless the address is in `allow_ranges`.
    #[serde(default)]
    pub resolve: BTreeMap<String, std::net::IpAddr>,
    /// CIDRs exempted from the private-address block (e.g. an on-prem mirror,
    /// `10.0.0.0/24`). Keep it as narrow as possible.
    #[serde(default)]
    pub allow_ranges: Vec<String>,
    /// Extra certificate authorities (PEM files) trusted when the proxy verifies an
    /// upstream server it terminates TLS for (hosts with bound secrets), in addition to
    /// the public web roots: e.g. an internal API's private CA.
    #[serde(default)]
    pub upstream_ca_files: Vec<std::path::PathBuf>,
    /// Concurrent outbound connections per sandbox (1-10000).
    #[serde(default = "defaults::egress_max_connections")]
    pub max_connections: u32,
    /// Bytes per sandbox in both directions together, in MiB (1-1048576).
    #[serde(default = "defaults::egress_max_mb")]
    pub max_mb: u64,
}

impl Default for GatewayEgressConfig {
    fn default() -> Self {
        GatewayEgressConfig {
            resolve: BTreeMap::new(),
            allow_ranges: Vec::new(),
            upstream_ca_files: Vec::new(),
            max_connections: defaults::egress_max_connections(),
            max_mb: defaults::egress_max_mb(),
        }
    }
}

/// Sandbox backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxBackend {
    /// Linux namespaces, seccomp, Landlock, rlimits and cgroups; built in, needs nothing
    /// installed.
    #[default]
    Native,
    /// The same profile through a Docker engine (`docker run` with the hardening flags).
    Docker,
    /// The same profile through Podman.
    Podman,
    /// No isolation at all. Refused unless `i_understand_this_disables_isolation = true`;
    /// every use is recorded in the audit log and reported by `cordon sandbox explain`.
    None,
}

/// How long a sandbox lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxScope {
    /// One sandbox per task (session), reused by its tool calls and destroyed at the end
    /// with its scratch state (`/tmp`). No process of one call survives into the next.
    #[default]
    Task,
    /// A fresh sandbox for every call.
    Call,
}

/// `[sandbox]`: limits applied to every tool process. Every limit must be at least 1.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Isolation backend: `native`, `docker`, `podman` or `none`.
    #[serde(default)]
    pub backend: SandboxBackend,
    /// Required, and only allowed, with `backend = "none"`: an explicit acknowledgement
    /// that tool processes will run on the host without isolation.
    #[serde(default)]
    pub i_understand_this_disables_isolation: bool,
    /// `task`: one sandbox per task, reused by its calls; `call`: a fresh one per call.
    #[serde(default)]
    pub scope: SandboxScope,
    /// Container image for the `docker` and `podman` backends.
    #[serde(default = "defaults::container_image")]
    pub image: String,
    /// Most processes (threads included) the sandbox user may have (RLIMIT_NPROC).
    #[serde(default = "defaults::max_processes")]
    pub max_processes: u64,
    /// Most open files per process (RLIMIT_NOFILE).
    #[serde(default = "defaults::max_open_files")]
    pub max_open_files: u64,
    /// Largest file a process may write, in MiB (RLIMIT_FSIZE).
    #[serde(default = "defaults::max_file_size_mb")]
    pub max_file_size_mb: u64,
    /// CPU seconds per process (RLIMIT_CPU).
    #[serde(default = "defaults::max_cpu_secs")]
    pub max_cpu_secs: u64,
    /// Private writable memory per process, in MiB (RLIMIT_DATA; address space a runtime
    /// only reserves does not count).
    #[serde(default = "defaults::max_memory_mb")]
    pub max_memory_mb: u64,
    /// Size of the sandbox's private `/tmp`, in MiB.
    #[serde(default = "defaults::tmp_size_mb")]
    pub tmp_size_mb: u64,
    /// Memory of the whole sandbox, in MiB (cgroup `memory.max`), where a cgroup
    /// hierarchy is writable.
    #[serde(default = "defaults::cgroup_memory_mb")]
    pub cgroup_memory_mb: u64,
    /// Tasks (processes and threads) in the whole sandbox (cgroup `pids.max`), where a
    /// cgroup hierarchy is writable. Unlike RLIMIT_NPROC this also holds for host root.
    #[serde(default = "defaults::cgroup_pids")]
    pub cgroup_pids: u64,
    /// CPU bandwidth of the whole sandbox in percent of one core (cgroup `cpu.max`),
    /// where a cgroup hierarchy is writable (1-10000).
    #[serde(default = "defaults::cgroup_cpu_percent")]
    pub cgroup_cpu_percent: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            backend: SandboxBackend::default(),
            i_understand_this_disables_isolation: false,
            scope: SandboxScope::default(),
            image: defaults::container_image(),
            max_processes: defaults::max_processes(),
            max_open_files: defaults::max_open_files(),
            max_file_size_mb: defaults::max_file_size_mb(),
            max_cpu_secs: defaults::max_cpu_secs(),
            max_memory_mb: defaults::max_memory_mb(),
            tmp_size_mb: defaults::tmp_size_mb(),
            cgroup_memory_mb: defaults::cgroup_memory_mb(),
            cgroup_pids: defaults::cgroup_pids(),
            cgroup_cpu_percent: defaults::cgroup_cpu_percent(),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Record full prompts and model output in the log (otherwise sizes and digests only).
    #[serde(default = "defaults::yes")]
    pub record_content: bool,
    /// Ship every audit record to a central collector (required by tiers team and
    /// enterprise): `cordon serve` sends new records as they are written, and `cordon log
    /// export` sends what is pending. Delivery is at least once, in order, resumed from a
    /// cursor in the state directory after a restart or an outage.
    #[serde(default)]
    pub export: Option<AuditExportConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            record_content: true,
            export: None,
        }
    }
}

/// `[audit.export]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditExportConfig {
    /// Where records are POSTed, as `application/x-ndjson` batches of the exact stored
    /// lines (so the collector can check the hash chain): `https://…`, or `http://` to a
    /// loopback address only (e.g. a local log shipper).
    pub url: String,
    /// Name of the environment variable holding a bearer token for the collector (not
    /// the token itself).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Seconds between shipments while `cordon serve` runs (1-3600).
    #[serde(default = "defaults::export_interval_secs")]
    pub interval_secs: u64,
    /// Most records per request (1-10000).
    #[serde(default = "defaults::export_batch")]
    pub batch: usize,
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where each alert is POSTed: `https://…`, or `http://` to a loopback address only.
    /// An incoming-webhook URL (Slack, Mattermost) is itself a credential: Cordon never
    /// logs or records more of it than its host.
    pub webhook_url: String,
    /// Name of the environment variable holding a bearer token for the webhook (not the
    /// token itself); unset sends no `Authorization` header.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Body of each POST.
    #[serde(default)]
    pub format: AlertFormat,
}

/// `alerts.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// One POST per alert, `application/json`: `{"text": "<one-line summary>", "record":
    /// <the audit record exactly as stored>}`. The `text` field is what Slack and
    /// Mattermost incoming webhooks display; `record` carries `seq` and `hash` to
    /// deduplicate by and check against the log.
    #[default]
    Json,
}

pub(crate) mod defaults {
    pub fn agent_name() -> String {
        "default".into()
    }
    pub fn timezone() -> String {
        "UTC".into()
    }
    pub fn channel_rate_per_min() -> u32 {
        20
    }
    pub fn channel_max_message_bytes() -> u64 {
        16 * 1024
    }
    pub fn channel_max_file_bytes() -> u64 {
        10 << 20
    }
    pub fn webhook_max_body_bytes() -> u64 {
        64 * 1024
    }
    pub fn webhook_window_secs() -> u64 {
        300
    }
    pub fn heartbeat_every_mins() -> u64 {
        30
    }
    pub fn heartbeat_task() -> String {
        "Heartbeat: if HEARTBEAT.md exists in the workspace, read it and do what it says. If \
         nothing needs attention, answer exactly HEARTBEAT_OK."
            .into()
    }
    pub fn export_interval_secs() -> u64 {
        5
    }
    pub fn export_batch() -> usize {
        500
    }
    use super::ToolName;

    pub fn yes() -> bool {
        true
    }
    pub fn model_timeout_secs() -> u64 {
        120
    }
    pub fn model_max_retries() -> u32 {
        3
    }
    pub fn max_tokens() -> u32 {
        4096
    }
    pub fn tools() -> Vec<ToolName> {
        ToolName::DEFAULT.to_vec()
    }
    pub fn max_steps() -> u32 {
        24
    }
    pub fn approval_timeout_secs() -> u64 {
        300
    }
    pub fn grant_max_days() -> u64 {
        30
    }
    pub fn scratch() -> Vec<String> {
        vec!["scratch".to_string()]
    }
    pub fn subagent_max_depth() -> u32 {
        1
    }
    pub fn subagent_max_children() -> u32 {
        4
    }
    pub fn exec_timeout_secs() -> u64 {
        60
    }
    pub fn exec_output_limit() -> usize {
        64 * 1024
    }
    pub fn max_processes() -> u64 {
        256
    }
    pub fn max_open_files() -> u64 {
        1024
    }
    pub fn max_file_size_mb() -> u64 {
        1024
    }
    pub fn max_cpu_secs() -> u64 {
        300
    }
    pub fn max_memory_mb() -> u64 {
        4096
    }
    pub fn egress_max_connections() -> u32 {
        64
    }
    pub fn egress_max_mb() -> u64 {
        1024
    }
    pub fn container_image() -> String {
        "debian:stable-slim".into()
    }
    pub fn cgroup_memory_mb() -> u64 {
        2048
    }
    pub fn cgroup_pids() -> u64 {
        512
    }
    pub fn cgroup_cpu_percent() -> u32 {
        200
    }
    pub fn checkpoint_max_mb() -> u64 {
        1024
    }

    pub fn tmp_size_mb() -> u64 {
        256
    }
    pub fn gateway_bind() -> String {
        "127.0.0.1:7777".into()
    }
    pub fn session_idle_secs() -> u64 {
        1800
    }
    pub fn session_max_secs() -> u64 {
        12 * 3600
    }
    pub fn login_max_failures() -> u32 {
        10
    }
    pub fn login_lockout_secs() -> u64 {
        900
    }
}
