//! The typed audit records: [`Event`], one payload type per [`EventKind`].
//!
//! A record's `data` is the JSON of its payload; `kind` names the variant. Writers build an
//! [`Event`] and hand it to [`crate::Log::append_event`] or [`crate::Log::record_event`], so
//! every record of a kind has the shape its type declares, whichever crate wrote it.
//! Readers may turn a [`crate::Record`] back into an [`Event`] with [`Event::from_record`].
//!
//! The shapes are published in `docs/audit-events.md`, generated from these types and
//! their doc comments by [`reference_markdown`](crate::reference_markdown) (a test keeps
//! the document current): the
//! doc comments are what SIEM users read, so they say what each field means.
//!
//! Compatibility: fields are only ever added. A kind that several writers record in
//! different shapes has one enum variant per shape (told apart by a tag field such as
//! `state` or `alert`, or by the fields present).
//!
//! Values that come from other crates' types (labels, approval answers, grant scopes, exit
//! statuses) are carried as JSON exactly as those types serialise; their shape is
//! described in the field's documentation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{EventKind, Record};

/// One audit record: its kind and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// The configuration file was read and accepted (written by every command that opens
    /// the state).
    ConfigLoaded(ConfigLoaded),
    /// An agent session began (a top-level session or a sub-agent's).
    SessionStart(SessionStart),
    /// The user's message that starts a turn.
    UserMessage(UserMessage),
    /// What a model answered: the agent's model, or a quarantined reader.
    ModelOutput(ModelOutput),
    /// The model asked for a tool call; written before anything is decided.
    ToolProposed(ToolProposed),
    /// A policy decision: a tool action judged by the guard, or a gateway login.
    Decision(Decision),
    /// A step of a human approval: requested, decided, answered, granted, revoked,
    /// expired, or a memory change.
    Approval(Approval),
    /// What a tool call produced (sizes and digest, never the content), or the agent's
    /// memory being loaded.
    ToolResult(ToolResult),
    /// A command ran in the sandbox (or, with backend `none`, on the host).
    SandboxExec(SandboxExec),
    /// A network connection or request: through the egress proxy, or an `http_fetch`.
    Egress(Egress),
    /// Something failed: a tool call, the model, the agent loop, a delivery, or the audit
    /// log itself (a record that could not be written).
    Error(ErrorEvent),
    /// Something an operator should look at now; delivered to `[alerts] webhook_url`.
    Alert(Alert),
    /// A vault secret or a gateway token was added, replaced, removed or revoked (names,
    /// hosts and scopes, never values).
    SecretChange(SecretChange),
    /// A skill was added, updated or removed (by a human at the CLI), or loaded, used or
    /// refused (by the runtime).
    Skill(SkillEvent),
    /// A human approved tools of an MCP server, pinning their descriptions and schemas
    /// (`cordon mcp approve`).
    McpApproval(McpApproval),
    /// A call of an MCP server's tool that the server answered.
    McpCall(McpCall),
    /// Workspace changes journaled (undoable), applied without a checkpoint, or undone.
    Checkpoint(CheckpointEvent),
    /// A human cleared the provenance label of a workspace file (`cordon files trust`).
    FileTrusted(FileTrusted),
    /// A chat channel's traffic: each inbound message or button press (accepted or why
    /// not), each message the bot sent, each pairing step, each queued message taken up
    /// after a restart or refused.
    Channel(ChannelEvent),
    /// A task started without a person asking: a schedule's run or a webhook delivery
    /// (accepted or why not).
    Trigger(TriggerEvent),
}

impl Event {
    /// The kind of record this event becomes.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ConfigLoaded(_) => EventKind::ConfigLoaded,
            Event::SessionStart(_) => EventKind::SessionStart,
            Event::UserMessage(_) => EventKind::UserMessage,
            Event::ModelOutput(_) => EventKind::ModelOutput,
            Event::ToolProposed(_) => EventKind::ToolProposed,
            Event::Decision(_) => EventKind::Decision,
            Event::Approval(_) => EventKind::Approval,
            Event::ToolResult(_) => EventKind::ToolResult,
            Event::SandboxExec(_) => EventKind::SandboxExec,
            Event::Egress(_) => EventKind::Egress,
            Event::Error(_) => EventKind::Error,
            Event::Alert(_) => EventKind::Alert,
            Event::SecretChange(_) => EventKind::SecretChange,
            Event::Skill(_) => EventKind::Skill,
            Event::McpApproval(_) => EventKind::McpApproval,
            Event::McpCall(_) => EventKind::McpCall,
            Event::Checkpoint(_) => EventKind::Checkpoint,
            Event::FileTrusted(_) => EventKind::FileTrusted,
            Event::Channel(_) => EventKind::Channel,
            Event::Trigger(_) => EventKind::Trigger,
        }
    }

    /// The record's `data`: the payload as JSON.
    pub fn data(&self) -> Result<Value, serde_json::Error> {
        match self {
            Event::ConfigLoaded(p) => serde_json::to_value(p),
            Event::SessionStart(p) => serde_json::to_value(p),
            Event::UserMessage(p) => serde_json::to_value(p),
            Event::ModelOutput(p) => serde_json::to_value(p),
            Event::ToolProposed(p) => serde_json::to_value(p),
            Event::Decision(p) => serde_json::to_value(p),
            Event::Approval(p) => serde_json::to_value(p),
            Event::ToolResult(p) => serde_json::to_value(p),
            Event::SandboxExec(p) => serde_json::to_value(p),
            Event::Egress(p) => serde_json::to_value(p),
            Event::Error(p) => serde_json::to_value(p),
            Event::Alert(p) => serde_json::to_value(p),
            Event::SecretChange(p) => serde_json::to_value(p),
            Event::Skill(p) => serde_json::to_value(p),
            Event::McpApproval(p) => serde_json::to_value(p),
            Event::McpCall(p) => serde_json::to_value(p),
            Event::Checkpoint(p) => serde_json::to_value(p),
            Event::FileTrusted(p) => serde_json::to_value(p),
            Event::Channel(p) => serde_json::to_value(p),
            Event::Trigger(p) => serde_json::to_value(p),
        }
    }

    /// Read a record's kind and data back as an event. Fails when the data does not have
    /// a shape of its kind (a record written by a foreign tool, or damaged).
    pub fn from_record(record: &Record) -> Result<Event, serde_json::Error> {
        Event::from_parts(record.kind, record.data.clone())
    }

    /// Read a kind and its data as an event.
    pub fn from_parts(kind: EventKind, data: Value) -> Result<Event, serde_json::Error> {
        let mut tagged = serde_json::Map::new();
        tagged.insert("kind".into(), Value::String(kind.as_str().into()));
        tagged.insert("data".into(), data);
        serde_json::from_value(Value::Object(tagged))
    }
}

macro_rules! into_event {
    ($($payload:ident => $variant:ident),* $(,)?) => {
        $(impl From<$payload> for Event {
            fn from(p: $payload) -> Event {
                Event::$variant(p)
            }
        })*
    };
}

into_event! {
    ConfigLoaded => ConfigLoaded,
    SessionStart => SessionStart,
    UserMessage => UserMessage,
    ModelOutput => ModelOutput,
    ToolProposed => ToolProposed,
    Decision => Decision,
    Approval => Approval,
    ToolResult => ToolResult,
    SandboxExec => SandboxExec,
    Egress => Egress,
    ErrorEvent => Error,
    Alert => Alert,
    SecretChange => SecretChange,
    SkillEvent => Skill,
    McpApproval => McpApproval,
    McpCall => McpCall,
    CheckpointEvent => Checkpoint,
    FileTrusted => FileTrusted,
    ChannelEvent => Channel,
    TriggerEvent => Trigger,
}

// ---------------------------------------------------------------------------------------
// config_loaded

/// `config_loaded`: the configuration in force from here on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigLoaded {
    /// Path of the configuration file read.
    pub path: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// The security tier: `personal`, `team` or `enterprise`.
    pub tier: config::Tier,
    /// Names of the configured agents, in name order.
    pub agents: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// session_start

/// `session_start`: a new session; the record's `session` is its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStart {
    /// The agent's name.
    pub agent: String,
    /// The model, as the provider describes itself (`openai gpt-4o at https://…`).
    pub model: String,
    /// A sub-agent's parent session id. Absent for a top-level session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The parent's `spawn_agent` call that started this sub-agent. Absent for a
    /// top-level session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_call_id: Option<String>,
    /// Nesting depth of a sub-agent (1 for a child of a top-level session). Absent for a
    /// top-level session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// The tools a sub-agent may use. Absent for a top-level session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------
// user_message

/// `user_message`: the user's text, or only its size (`[audit] record_content = false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserMessage {
    /// The text, present only with `[audit] record_content = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Length of the text in bytes (UTF-8).
    pub bytes: u64,
    /// Where untrusted content in the message came from (a chat group member, a
    /// forwarded message, a webhook's body…); absent: the user's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

// ---------------------------------------------------------------------------------------
// model_output

/// `model_output`: one of two shapes, told apart by the `quarantine` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelOutput {
    /// A quarantined reader (`http_fetch` with `extract`) answered: a model without tools
    /// that read an untrusted page and returned a schema-checked answer.
    Quarantine(QuarantineReading),
    /// The agent's model answered one step of a turn.
    Reply(ModelReply),
}

/// One step's answer of the agent's model (text redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelReply {
    /// The answer's text, present only with `[audit] record_content = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Length of the answer's text in bytes (0 when it only calls tools).
    pub bytes: u64,
    /// The tool calls the model asked for, in order (empty when it answered the user).
    pub tool_calls: Vec<ModelToolCall>,
    /// The step of the turn, from 1.
    pub step: u32,
    /// Tokens used, when the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// How the answer ended when not normally: `refused` (the model declined; the turn
    /// ended), `cut_off` (it reached the token limit, `model.max_tokens`) or `filtered`
    /// (the provider's content filter stopped it; the turn ended). Absent when it ended
    /// normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<ReplyEnding>,
    /// The model's stated reason for refusing, redacted, present only with `[audit]
    /// record_content = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Length in bytes of the reasoning the model showed apart from its answer. Absent when
    /// it showed none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_bytes: Option<u64>,
    /// The reasoning the model showed apart from its answer, redacted, present only with
    /// `[audit] record_content = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Tool calls the token limit cut before their arguments were whole: dropped, never
    /// run, and the model told. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut_calls: Vec<CutToolCall>,
}

/// A tool call the token limit cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CutToolCall {
    /// The call id the model gave (no other record names it: the call never ran).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as far as they came (incomplete), redacted.
    pub partial_arguments: String,
}

/// How a model's answer ended, when not normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyEnding {
    Refused,
    CutOff,
    Filtered,
}

/// A tool call as the model wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelToolCall {
    /// The call id; `call_id` of the records the call produces.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them (a JSON text), redacted.
    pub arguments: String,
}

/// Tokens a model call consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenUsage {
    /// Tokens of the request (prompt and context).
    pub input_tokens: u64,
    /// Tokens of the answer.
    pub output_tokens: u64,
}

/// A quarantined reader's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuarantineReading {
    /// The `http_fetch` call whose page was read.
    pub call_id: String,
    /// Always `true`: this record is a quarantined reader's.
    pub quarantine: bool,
    /// The page's final URL (after redirects).
    pub url: String,
    /// What the reader was asked to extract, redacted.
    pub instruction: String,
    /// The answer (JSON matching the caller's schema); `null` when it failed.
    pub answer: Option<Value>,
    /// Why no valid answer was produced; `null` when it succeeded.
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------
// tool_proposed

/// `tool_proposed`: a tool call the model asked for, before any decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolProposed {
    /// The call id, shared by every record about this call.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The arguments, redacted: a JSON object, or the model's text when it is not JSON.
    pub arguments: Value,
}

// ---------------------------------------------------------------------------------------
// decision

/// `decision`: one of two shapes, told apart by `action` (`gateway_login`) and `call_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Decision {
    /// The guard judged a tool action (or one hop of a redirect, or a sub-agent spawn).
    Tool(ToolDecision),
    /// The gateway judged a login with a token.
    Login(LoginDecision),
}

/// The guard's verdict on one canonical action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolDecision {
    /// The tool call this decision is about.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The canonical action text (what policies match), redacted, e.g.
    /// `exec: ls -la` or `connect: GET https://example.org/ (http_fetch)`.
    pub action: String,
    /// The action's kind: `exec`, `read_file`, `write_file`, `connect`, `use_secret`,
    /// `memory_write`, `spawn_agent`, ….
    pub action_kind: String,
    /// Stable fingerprint of the canonical action (the key of stored grants).
    pub fingerprint: String,
    /// `allow`, `deny` or `ask` (a human is asked, or a stored grant answers).
    pub decision: String,
    /// The reason in words.
    pub reason: String,
    /// The id of the deciding rule or policy (`default.*`, `label.*`, `secret.*`,
    /// `policy:<id>`, `subagent.*`, …).
    pub rule: String,
    /// Every policy that matched, as `effect:id` (`permit:p1`, `forbid:p2`); empty when
    /// none did.
    pub matched: Vec<String>,
    /// The session's labels when it was decided: `{integrity: "trusted"|"untrusted",
    /// confidentiality: "public"|"private", untrusted_sources: [..], secrets: [..]}`.
    pub labels: Value,
    /// The stored grant that answered an `ask` without asking. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// With `grant_id`: `true` when that grant is this session's, `false` when it is the
    /// agent's. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_grant: Option<bool>,
    /// `true` when this decides a redirect hop of `http_fetch` (only `allow` proceeds).
    /// Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<bool>,
    /// `true` when the action's workspace changes are journaled and can be undone (the
    /// policy's `checkpointed`). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpointed: Option<bool>,
}

/// A login to the gateway with a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginDecision {
    /// Always `gateway_login`.
    pub action: LoginAction,
    /// `allow` or `deny`.
    pub decision: String,
    /// Why it was denied (`invalid token`). Absent when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The client's address as the gateway saw it.
    pub client: String,
    /// The token's id (never the token). Absent when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The token's scope: `read`, `approve` or `admin`. Absent when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The action of a login decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginAction {
    GatewayLogin,
}

// ---------------------------------------------------------------------------------------
// approval

/// `approval`: a step of a human approval, told apart by `state`; a memory write that was
/// not held for review has no `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Approval {
    /// A step of an approval request or grant.
    State(ApprovalState),
    /// The outcome of a `memory_write` call.
    MemoryWrite(MemoryWrite),
}

/// A step of an approval request or of a grant, by `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    /// A request was stored and is waiting for an answer (nobody may approve what the log
    /// does not show was asked).
    Requested(ApprovalRequested),
    /// The outcome for the tool call that asked (written by the runtime once the answer
    /// arrived or the request expired).
    Decided(ApprovalDecided),
    /// A human answered (from the terminal, `cordon approvals`, or the gateway).
    Answered(ApprovalAnswered),
    /// An answer created a standing grant.
    Granted(GrantChange),
    /// A grant was revoked.
    Revoked(GrantChange),
    /// Nobody answered in time: a denial.
    Expired(ApprovalExpired),
}

/// `state: requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequested {
    /// The request's id (a ULID): what `cordon approvals approve ID` takes.
    pub approval_id: String,
    /// `action` (a tool action) or `memory_write` (a memory change to review).
    pub kind: String,
    /// The tool that asked.
    pub tool: String,
    /// The canonical action, redacted.
    pub action: String,
    /// Fingerprint of the canonical action.
    pub fingerprint: String,
    /// The rule that asked.
    pub rule: String,
    /// Why a human is asked.
    pub reason: String,
    /// The session's labels (shape as in `decision`).
    pub labels: Value,
    /// Where the session's untrusted content came from.
    pub untrusted_sources: Vec<String>,
    /// When the request expires unanswered (RFC 3339).
    pub expires_at: String,
}

/// `state: decided`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecided {
    /// The tool call that waited.
    pub call_id: String,
    /// The canonical action, redacted.
    pub action: String,
    /// Fingerprint of the canonical action.
    pub fingerprint: String,
    /// The rule that asked.
    pub rule: String,
    /// The session's labels (shape as in `decision`).
    pub labels: Value,
    /// The answer: `{"answer": "once"|"session"|"deny"|"expired"}`,
    /// `{"answer": "agent", "detail": {"days": N, "scope": SCOPE}}` or
    /// `{"answer": "unavailable", "detail": "why nobody can answer"}`; SCOPE as in
    /// `granted`.
    pub answer: Value,
}

/// `state: answered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalAnswered {
    /// The request answered.
    pub approval_id: String,
    /// The canonical action, redacted.
    pub action: String,
    /// The request's status now: `approved` or `denied`.
    pub status: String,
    /// How far an approval reaches: `once`, `session` or `agent`; `null` for a denial.
    pub answer: Option<String>,
    /// The grant the answer created; `null` when none.
    pub grant_id: Option<String>,
    /// Who answered (`terminal`, `cli`, `gateway:<token id>`, …); `null` when unknown.
    pub by: Option<String>,
    /// For a memory change: `memory_write`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For a memory change: the memory file (`MEMORY.md`, …). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For an approved memory change: the id of the memory entry written. Absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// `state: granted` or `state: revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantChange {
    /// The grant's id.
    pub grant_id: String,
    /// The approval whose answer created it.
    pub approval_id: String,
    /// The agent it applies to.
    pub agent: String,
    /// The session it is limited to; `null`: every session of the agent.
    pub session: Option<String>,
    /// The tool it covers.
    pub tool: String,
    /// What it covers: `{"scope": "exact"}` (the same action),
    /// `{"scope": "prefix", "value": ["git", "status"]}` (a simple command starting with
    /// these words) or `{"scope": "host", "value": "example.org"}` (connections to this
    /// host).
    pub scope: Value,
    /// Fingerprint of the action, for an `exact` grant; otherwise `null`.
    pub fingerprint: Option<String>,
    /// The canonical action of the approval that created it.
    pub action: String,
    /// When it ends (RFC 3339); `null`: until revoked (a session grant ends with its
    /// session).
    pub expires_at: Option<String>,
    /// Who granted it; for `revoked`, who revoked it (`cli`, `gateway token ID`).
    pub by: String,
    /// When it was revoked (RFC 3339); `null` while it stands.
    pub revoked_at: Option<String>,
}

/// `state: expired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalExpired {
    /// The request that expired.
    pub approval_id: String,
    /// `timeout` when a command or the gateway expired an overdue request. Absent when
    /// the waiting runtime expired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The canonical action, when the waiting runtime expired it. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `{"answer": "expired"}`, when the waiting runtime expired it. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Value>,
}

/// The outcome of a `memory_write` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryWrite {
    /// `submitted` when the change is held for a human's review (then `approval_id` names
    /// the request); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The `memory_write` call.
    pub call_id: String,
    /// Always `memory_write`.
    pub kind: String,
    /// The memory file written (`MEMORY.md`, …).
    pub file: String,
    /// `appended` (written to memory) or `pending` (held for a human's review).
    pub outcome: String,
    /// The entry written, or the review request's id when pending.
    pub id: String,
    /// The writing session's labels (shape as in `decision`), which the entry keeps.
    pub labels: Value,
    /// The review request, when `state` is `submitted`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

// ---------------------------------------------------------------------------------------
// tool_result

/// `tool_result`: one of two shapes, told apart by `call_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ToolResult {
    /// What a tool call returned to the model.
    Call(CallResult),
    /// The agent's memory was loaded into a new session.
    MemoryLoad(MemoryLoad),
}

/// What a tool call returned, after redaction (never the content itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallResult {
    /// The tool call.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// `true` when the call failed or was refused.
    pub is_error: bool,
    /// The exit status (`exec`: `{"exit_code": N}`, `{"signal": N}` or
    /// `{"timeout": true}`) or HTTP status (`http_fetch`: a number); `null` otherwise.
    pub status: Option<Value>,
    /// Milliseconds from proposal to result.
    pub duration_ms: u64,
    /// Size in bytes of what the model was given.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of what the model was given.
    pub sha256: String,
    /// The output was cut to a limit.
    pub truncated: bool,
    /// Names of vault secrets whose values were redacted from it.
    pub redacted: Vec<String>,
    /// The labels the result carries (shape as in `decision`).
    pub labels: Value,
    /// Where the content came from, as its provenance in the context: `tool:NAME`, with
    /// the target (`tool:http_fetch URL`), or `skill:NAME@SHA256` for a skill's
    /// instructions. Absent in records written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The agent's memory, loaded at the start of a top-level session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryLoad {
    /// Always `memory_load`.
    pub tool: String,
    /// Number of entries loaded.
    pub entries: u64,
    /// The join of the entries' labels (shape as in `decision`).
    pub labels: Value,
    /// Entries that could not be read, in words.
    pub problems: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// sandbox_exec

/// `sandbox_exec`: one of three shapes, told apart by `call_id`, `status` and `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SandboxExec {
    /// The agent's `exec` tool ran a command.
    Tool(ToolExec),
    /// `cordon sandbox exec` ran a command.
    Command(CommandExec),
    /// `cordon sandbox exec` could not run the command.
    CommandFailed(CommandExecFailed),
}

/// An `exec` tool call's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolExec {
    /// The tool call.
    pub call_id: String,
    /// The sandbox backend: `native`, `docker`, `podman` or `none`.
    pub backend: String,
    /// `sandboxed`, or with backend `none` a sentence saying the command ran on the host
    /// without isolation.
    pub isolation: String,
    /// `{"exit_code": N}`, `{"signal": N}` or `{"timeout": true}`.
    pub status: Value,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Bytes the command wrote to stdout (including any dropped at the limit).
    pub stdout_bytes: u64,
    /// Bytes the command wrote to stderr (including any dropped at the limit).
    pub stderr_bytes: u64,
}

/// A command `cordon sandbox exec` ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandExec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// The sandbox backend.
    pub backend: config::SandboxBackend,
    /// The workspace directory it ran in.
    pub workspace: String,
    /// The exit status in words (`exit code 0`, `killed by signal 9`, `killed at the
    /// deadline`).
    pub status: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Bytes of stdout kept.
    pub stdout_bytes: u64,
    /// Bytes of stderr kept.
    pub stderr_bytes: u64,
}

/// A command `cordon sandbox exec` could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandExecFailed {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// The sandbox backend.
    pub backend: config::SandboxBackend,
    /// Why it did not run.
    pub error: String,
}

// ---------------------------------------------------------------------------------------
// egress

/// `egress`: one of two shapes, told apart by `call_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Egress {
    /// `http_fetch` fetched a URL (after the guard allowed every hop).
    Fetch(FetchEgress),
    /// The egress proxy (between sandboxed commands and the network) judged or carried a
    /// connection or request.
    Proxy(ProxyEgress),
}

/// A page `http_fetch` fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FetchEgress {
    /// The tool call.
    pub call_id: String,
    /// The final URL (after redirects).
    pub url: String,
    /// The HTTP status; `null` when none.
    pub status: Option<Value>,
}

/// One step of the egress proxy. Which fields are present depends on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProxyEgress {
    /// The agent whose command connected.
    pub agent: String,
    /// Its session (also the record's `session`).
    pub session: String,
    /// `connection` (a client connection to the proxy: refused at the connection limit,
    /// or ended), `connect` (a CONNECT tunnel), `connect-terminated` (a CONNECT the proxy
    /// terminates to inject a credential), `http` / `https` (a request forwarded), or
    /// `http-response` / `https-response` (its response, when fully delivered).
    pub kind: String,
    /// The target host, normalised (lower case, no trailing dot, no brackets). Absent for
    /// `connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The target port. Absent for `connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Every address the host resolved to. Absent for `connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// `allow` or `deny`; for `connection`: `deny` (over the limit), `end` (closed) or
    /// `limit` (cut at the byte limit).
    pub decision: String,
    /// The reason in words.
    pub reason: String,
    /// The HTTP method, for `http`, `https` and their responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The address actually dialled (`ip:port`), for allowed `connect` and requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Names of the vault credentials the proxy injected into a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<String>>,
    /// The upstream's HTTP status, for responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes sent upstream (a request body, or a whole connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_up: Option<u64>,
    /// Bytes received (a response body, or a whole connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_down: Option<u64>,
}

// ---------------------------------------------------------------------------------------
// error

/// `error`: one of two shapes, told apart by `call_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ErrorEvent {
    /// A tool call failed or was refused; the model sees `message`.
    Tool(ToolFailure),
    /// Something outside a tool call failed.
    Other(Failure),
}

/// A tool call that failed or was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolFailure {
    /// The tool call.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// Where it failed: `tool` (unknown tool), `arguments`, `decision`, `approval`,
    /// `audit`, `secrets`, `sandbox`, `http_fetch`, `extract`, `memory`, ….
    pub stage: String,
    /// What the model was told, redacted.
    pub message: String,
}

/// A failure outside a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// Where it failed: `model` (the provider call), `loop` (the step limit),
    /// `alert_delivery` (the alert webhook), `audit` (a record could not be written).
    pub stage: String,
    /// What went wrong, redacted.
    pub error: String,
    /// The alert webhook (without credentials), for `alert_delivery`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The kind of the record that could not be written, for `audit`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_kind: Option<EventKind>,
}

impl Failure {
    /// A failure at `stage` with `error` and nothing else.
    pub fn new(stage: impl Into<String>, error: impl Into<String>) -> Failure {
        Failure {
            stage: stage.into(),
            error: error.into(),
            webhook: None,
            record_kind: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// alert

/// `alert`: one of two shapes; most carry their name in `alert`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Alert {
    /// An alert named by its `alert` field.
    Named(NamedAlert),
    /// The egress proxy blocked a request that carried a credential where it must not go
    /// (the real value of a vault secret, or a placeholder sent to a host it is not bound
    /// to). Same fields as a proxy `egress` record of kind `http`/`https`, with
    /// `decision: deny` and the credentials concerned; it has no `alert` field.
    Credential(CredentialAlert),
}

/// An alert named by its `alert` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum NamedAlert {
    /// Private or secret-labelled data was headed for a host it may not go to (from a
    /// tool call, or from inside a command): an exfiltration attempt, refused.
    DataExfiltrationBlocked(ExfiltrationBlocked),
    /// Repeated failed logins from one client reached the limit; it is locked out.
    LoginBurst(LoginBurst),
    /// The previous writer of the audit log stopped between writing records and
    /// anchoring them (crash or kill); the log was repaired on open.
    AuditLogRecovered(LogRecovered),
    /// Delivering the audit log to `[audit.export] url` is failing.
    AuditExportFailing(ExportFailing),
    /// An installed skill's files no longer hash to the pin in `skills.lock`: the skill
    /// was refused.
    SkillDrifted(SkillDrifted),
    /// An MCP server now describes an approved tool differently than when a human
    /// approved it (`mcp.lock`): the tool is refused until approved again.
    McpToolChanged(McpToolChanged),
    /// A session that had read untrusted content deleted or overwrote files that existed
    /// before it began. The changes are journaled: `undo` restores them.
    WorkspaceOverwritten(WorkspaceOverwritten),
}

/// `alert: workspace_overwritten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceOverwritten {
    /// The tool call that made the changes.
    pub call_id: String,
    /// Workspace-relative paths deleted or overwritten, in order.
    pub paths: Vec<String>,
    /// Where the session's untrusted content came from.
    pub untrusted_sources: Vec<String>,
    /// The command that restores them (`cordon undo SESSION --call CALL`).
    pub undo: String,
}

/// `alert: mcp_tool_changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpToolChanged {
    /// The server's name.
    pub server: String,
    /// The tool's name.
    pub tool: String,
    /// The pinned hash of its name, description and schema.
    pub pinned: String,
    /// The hash of what the server lists now.
    pub now: String,
    /// The difference of description and schema, line by line (`-` pinned, `+` now).
    pub diff: String,
}

/// `alert: skill_drifted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillDrifted {
    /// The skill's name.
    pub skill: String,
    /// The pinned canonical tree hash.
    pub expected: String,
    /// What the installed tree hashes to now; absent when it is missing or unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// Files added, removed or changed since the install.
    pub files: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// `alert: data_exfiltration_blocked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExfiltrationBlocked {
    /// The tool call. Absent when a command inside the sandbox connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The refused action, redacted (`connect: host:port (kind, from a command)` for a
    /// command's connection).
    pub action: String,
    /// The rule that refused it (`label.*` or `secret.*`).
    pub rule: String,
    /// The session's labels (shape as in `decision`).
    pub labels: Value,
}

/// `alert: login_burst`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginBurst {
    /// The client (address or network) locked out.
    pub client: String,
    /// Failed logins counted.
    pub failures: u64,
    /// The limit (`[gateway] login_max_failures`).
    pub max_failures: u64,
    /// How long it is locked out, in seconds.
    pub lockout_secs: u64,
}

/// `alert: audit_log_recovered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogRecovered {
    /// What happened, in words.
    pub detail: String,
    /// Complete records past the anchor that were adopted.
    pub adopted_records: u64,
    /// Bytes of a torn last record that were cut off.
    pub dropped_bytes: u64,
}

/// `alert: audit_export_failing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExportFailing {
    /// The collector (without credentials).
    pub url: String,
    /// Why delivery failed.
    pub error: String,
}

/// A request the egress proxy refused because of a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CredentialAlert {
    /// The agent whose command sent it.
    pub agent: String,
    /// Its session.
    pub session: String,
    /// `http` or `https`.
    pub kind: String,
    /// The target host.
    pub host: String,
    /// The target port.
    pub port: u16,
    /// Every address the host resolved to.
    pub addresses: Vec<String>,
    /// Always `deny`.
    pub decision: String,
    /// Why, in words (names the credential, never its value).
    pub reason: String,
    /// The HTTP method.
    pub method: String,
    /// Names of the credentials concerned.
    pub credentials: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// secret_change

/// `secret_change`: told apart by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SecretChange {
    /// A vault secret was stored or replaced (`cordon secrets set`).
    SecretSet(SecretSet),
    /// A vault secret was removed (`cordon secrets rm`).
    SecretRemoved(SecretRemoved),
    /// A gateway token was created (`cordon token create`).
    TokenCreated(TokenCreated),
    /// A gateway token was revoked.
    TokenRevoked(TokenRevoked),
}

/// `action: secret_set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretSet {
    /// The secret's name (never its value).
    pub name: String,
    /// The hosts it may be sent to.
    pub hosts: Vec<String>,
    /// `true` when it replaced a secret of the same name.
    pub replaced: bool,
    /// Who changed it (`cli`).
    pub by: String,
}

/// `action: secret_removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretRemoved {
    /// The secret's name.
    pub name: String,
    /// The hosts it was bound to; `null` when unknown.
    pub hosts: Option<Vec<String>>,
    /// Who removed it (`cli`).
    pub by: String,
}

/// `action: token_created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenCreated {
    /// The token's id (never the token).
    pub id: String,
    /// The token's name.
    pub name: String,
    /// `read`, `approve` or `admin`.
    pub scope: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Who created it.
    pub by: String,
}

/// `action: token_revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenRevoked {
    /// The token's id.
    pub id: String,
    /// The token's name.
    pub name: String,
    /// `read`, `approve` or `admin`.
    pub scope: String,
    /// Who revoked it.
    pub by: String,
}

// ---------------------------------------------------------------------------------------
// skill

/// `skill`: told apart by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SkillEvent {
    /// A human installed a skill (`cordon skills add`).
    Added(SkillInstalled),
    /// A human replaced an installed skill with a new tree (`cordon skills update`).
    Updated(SkillInstalled),
    /// A human removed a skill (`cordon skills remove`).
    Removed(SkillRemoved),
    /// A skill's instructions entered a session's context (`load_skill`).
    Loaded(SkillUse),
    /// A command ran one of a skill's scripts with the skill's capabilities.
    Used(SkillUse),
    /// A skill, or a use of it, was refused: its tree drifted from the pin, an install
    /// had critical or unaccepted findings, or a command went beyond its capabilities.
    Refused(SkillRefused),
}

/// `action: added` / `updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillInstalled {
    /// The skill's name.
    pub skill: String,
    /// Where it came from (folder, archive, or `https://…#sha256=…`).
    pub source: String,
    /// The canonical tree hash now pinned in `skills.lock`.
    pub sha256: String,
    /// The hash it replaced (updates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The scan verdict: `clean` or the worst severity found.
    pub verdict: String,
    /// Number of findings, by severity name.
    pub findings: std::collections::BTreeMap<String, usize>,
    /// A human accepted high findings.
    pub accepted_risk: bool,
    /// The approved capabilities (`egress`, `secrets`, `bins`, `workspace`), and the
    /// approved `requires.env` mapping under `env`.
    pub capabilities: Value,
    /// Agents it is enabled for; empty means every agent.
    pub agents: Vec<String>,
    /// Who approved it (`cli` at a terminal, or `cli --yes`).
    pub by: String,
}

/// `action: removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillRemoved {
    /// The skill's name.
    pub skill: String,
    /// The hash it had.
    pub sha256: String,
    /// Who removed it.
    pub by: String,
}

/// `action: loaded` / `used`; the record's `session` is the session's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillUse {
    /// The skill's name.
    pub skill: String,
    /// The verified tree hash.
    pub sha256: String,
    /// The tool call (`load_skill`, or the `exec` that ran its script).
    pub call_id: String,
    /// The command that ran (`used` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// `action: refused`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillRefused {
    /// The skill's name (or the name a refused install would have had).
    pub skill: String,
    /// The hash concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where the refusal happened: `install`, `load` or `run`.
    pub stage: String,
    /// Why, in words.
    pub reason: String,
    /// The tool call, when a call was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

// ---------------------------------------------------------------------------------------
// mcp_approval

/// `mcp_approval`: tools of one server approved by a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpApproval {
    /// The server's name (`[mcp.servers.NAME]`).
    pub server: String,
    /// Each approved tool and the pinned hash of its name, description and schema.
    pub tools: Vec<McpPinned>,
    /// Tools not approved because their descriptions carry high or critical findings.
    pub refused: Vec<String>,
    /// Who approved them (`cli`).
    pub by: String,
}

/// One pinned tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpPinned {
    /// The tool's name as the server lists it.
    pub tool: String,
    /// SHA-256 of the canonical JSON of its name, description and input schema.
    pub sha256: String,
}

// ---------------------------------------------------------------------------------------
// mcp_call

/// `mcp_call`: an MCP server answered a call of one of its tools (digests and sizes,
/// never the content). Written before the call's `tool_result`; a call that failed is an
/// `error` at stage `mcp` instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpCall {
    /// The tool call.
    pub call_id: String,
    /// The server's name (`[mcp.servers.NAME]`).
    pub server: String,
    /// The tool's name as the server lists it.
    pub tool: String,
    /// `serverInfo.name` and `serverInfo.version` the server gave when it started.
    pub server_info: String,
    /// The protocol version negotiated with it.
    pub protocol_version: String,
    /// Lower-case hex SHA-256 of the canonical JSON of the arguments sent.
    pub arguments_sha256: String,
    /// Lower-case hex SHA-256 of the result's text as Cordon kept it (after any cut at
    /// the result limit, before redaction).
    pub result_sha256: String,
    /// Size in bytes of the whole result text the server sent.
    pub result_bytes: u64,
    /// The server marked the result as an error (`isError`).
    pub is_error: bool,
    /// Milliseconds the server took to answer.
    pub duration_ms: u64,
}

// ---------------------------------------------------------------------------------------
// checkpoint

/// `checkpoint`: told apart by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CheckpointEvent {
    /// A tool call's workspace changes were journaled with what they replaced, then
    /// applied.
    Recorded(CheckpointRecorded),
    /// A tool call's workspace changes were applied without a checkpoint (the journal
    /// was full and a human approved, or journaling is off): they cannot be undone.
    Unjournaled(CheckpointRecorded),
    /// A session's (or one call's) changes were undone (`cordon undo`, `/undo` in
    /// `cordon chat`, or the gateway's `POST /api/sessions/{id}/undo`).
    Undone(CheckpointUndone),
}

/// `action: recorded` / `unjournaled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointRecorded {
    /// The tool call that made the changes.
    pub call_id: String,
    /// Each path changed and how.
    pub changes: Vec<PathChange>,
    /// Bytes of earlier content the journal stored for them (0 when unjournaled).
    pub stored_bytes: u64,
}

/// One path's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PathChange {
    /// Relative to the workspace.
    pub path: String,
    /// `added`, `changed`, `deleted` or `mode` (only the mode changed).
    pub change: String,
}

/// `action: undone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointUndone {
    /// The session whose changes were undone (the record's own session is absent).
    pub undone_session: String,
    /// Only this call's changes, when one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Paths restored to what they were before.
    pub restored: Vec<String>,
    /// Paths left alone because they changed since (each with why).
    pub conflicts: Vec<String>,
    /// Who undid them (`cli`, `chat`, or `gateway token ID`).
    pub by: String,
}

// ---------------------------------------------------------------------------------------
// file_trusted

/// `file_trusted`: a human cleared the provenance label of a workspace file after
/// reviewing it (`cordon files trust PATH`); sessions that read or run it from now on are
/// not tainted by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileTrusted {
    /// The workspace root (absolute).
    pub workspace: String,
    /// The file, relative to the workspace root.
    pub path: String,
    /// The label it carried: the `Labels` JSON (`integrity`, `confidentiality`,
    /// `untrusted_sources`, `secrets`).
    pub labels: Value,
    /// The session that last wrote it.
    pub written_by: String,
    /// Lower-case hex SHA-256 of the content that session left (absent: it deleted the
    /// file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_sha256: Option<String>,
    /// Lower-case hex SHA-256 of the content when it was trusted (absent: no such file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Who trusted it (`cli`).
    pub by: String,
}

// ---------------------------------------------------------------------------------------
// channel

/// `channel`: told apart by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ChannelEvent {
    /// A message, file or button press arrived from a chat platform.
    Inbound(ChannelInbound),
    /// The bot sent (or failed to send) a message.
    Outbound(ChannelOutbound),
    /// A pairing step: a code issued or refused, or a human's decision.
    Pairing(ChannelPairing),
    /// A queued message taken up after a restart, given up, or refused for a full queue.
    Queue(ChannelQueue),
}

/// `action: inbound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelInbound {
    /// The channel (`telegram`, `slack`, `matrix`).
    pub channel: String,
    /// The platform's id of the update.
    pub event_id: String,
    /// The platform's id of the conversation.
    pub conversation: String,
    /// Written in a group (not a direct conversation with the bot).
    pub group: bool,
    /// The sender's immutable platform id (absent: an update that named none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// `text`, `file`, `button` or `malformed`.
    pub kind: String,
    /// Size of the message's text (or file) in bytes.
    pub bytes: u64,
    /// Whether it went on (to the agent, or as an approval answer).
    pub accepted: bool,
    /// How it reached the agent: `user` (the person speaking) or `untrusted` (content
    /// from someone else: a group member, a forwarded message, a file, a link preview).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Why it was refused, or why it is untrusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The agent session it went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// `action: outbound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelOutbound {
    /// The channel (`telegram`, `slack`, `matrix`).
    pub channel: String,
    /// The conversation it went to.
    pub conversation: String,
    /// `answer`, `pairing_code`, `approval_request`, `approval_settled`, `notice`,
    /// `refusal` or `send_message` (the agent's tool).
    pub purpose: String,
    /// Bytes of text sent.
    pub bytes: u64,
    /// The platform accepted it.
    pub delivered: bool,
    /// Why it was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The session it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// `action: pairing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelPairing {
    /// The channel (`telegram`, `slack`, `matrix`).
    pub channel: String,
    /// The sender's immutable platform id.
    pub sender: String,
    /// `requested` (a code was issued), `refused` (too many pending), `approved`,
    /// `denied` or `removed`.
    pub decision: String,
    /// The role given on approval (`owner`, `approver`, `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who decided (`cli`, `gateway token ID`, `channel` for a code issued).
    pub by: String,
}

/// `action: queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelQueue {
    /// The channel (`telegram`, `slack`, `matrix`).
    pub channel: String,
    /// The platform's id of the conversation.
    pub conversation: String,
    /// The platform's id of the update the message came in.
    pub event_id: String,
    /// `resumed`: queued before the process stopped and run now (with `attempts` above 1
    /// its turn had started and is run once more); `abandoned`: the process stopped
    /// during its turn twice, so it is not run again; `full`: refused, the conversation
    /// already had as many messages waiting as it may.
    pub state: String,
    /// How many times its turn has been started, this one included.
    pub attempts: u64,
    /// The sender's immutable platform id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

// ---------------------------------------------------------------------------------------
// trigger

/// `trigger`: told apart by `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TriggerEvent {
    /// A schedule (or the heartbeat) started a task, or could not.
    Schedule(ScheduleRun),
    /// A delivery to `POST /hooks/NAME`, accepted or refused.
    Webhook(WebhookDelivery),
}

/// `source: schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleRun {
    /// The schedule's name (`heartbeat` for the heartbeat).
    pub name: String,
    /// The agent that ran it.
    pub agent: String,
    /// `schedule` (its time came) or `cli` (`cordon schedules run`).
    pub by: String,
    /// The session it ran in, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Where its answer goes (`CHANNEL:CONVERSATION`); absent: only the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Why it could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `source: webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookDelivery {
    /// The hook's name (`/hooks/NAME`).
    pub hook: String,
    /// Body size in bytes (as announced when refused before reading it).
    pub bytes: u64,
    /// Whether the task was started.
    pub accepted: bool,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The session its task ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The client address.
    pub client: String,
}
