//! The effect boundary. The agent only *proposes* tool calls; [`Runtime::perform`]
//! decides and executes them, every tool through the same stages:
//!
//! ```text
//! canonicalise -> decide -> approve -> execute (sandbox | workspace fs | http)
//!   -> redact secrets -> label provenance -> record
//! ```
//!
//! Modules, by concern: `runtime` (construction), `session` (per-session state),
//! `pipeline` (the stages, [`Runtime::perform`]), `authorise` (decide and approve),
//! `execute` (sandbox and egress plumbing), `label` (integrity, confidentiality,
//! hygiene), `record` (every audit record), `tools` (the `Tool` trait and the
//! registry; one file per tool under `tools/`).
//!
//! Nothing reaches the world except through here. Every step is recorded in the audit
//! log before the observation is returned. Errors (unknown tool, bad arguments, denial,
//! sandbox failure) become error observations the model can read; they never crash the
//! loop and never fall back to something weaker.

pub mod approval;
mod authorise;
pub mod changes;
mod checkpoints;
mod execute;
mod extensions;
mod flow;
pub mod hygiene;
mod label;
mod mcp_servers;
pub mod memory;
pub mod messenger;
mod model_endpoint;
mod pipeline;
pub mod provenance;
pub mod quarantine;
mod record;
mod runtime;
mod session;
pub mod skills;
pub mod subagent;
mod tools;
pub mod workspace;

pub use approval::{
    ApprovalAnswer, ApprovalKind, ApprovalRequest, Approver, GrantScope, NoHumanApprover,
    StoredApprovals,
};
pub use extensions::MemoryContext;
pub use messenger::Messenger;
pub use model_endpoint::{ModelEndpoint, ModelResponse, TransportError};
pub use runtime::{AgentSecret, McpOptions, Runtime, RuntimeError, RuntimeOptions};
pub use tools::exec::sandbox_profile;
pub use workspace::{
    DirEntry, EntryKind, Listing, WalkLimits, WalkSummary, Workspace, WorkspaceError, WorkspacePath,
};

use serde::{Deserialize, Serialize};

/// A tool call as the model proposed it. `arguments` is the raw JSON text the model
/// produced; it is parsed and validated by the runtime, never trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool as offered to the model: name, description and JSON Schema of the arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

pub use guard::{Confidentiality, Integrity, Labels};

/// Where a piece of context came from, and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `user`, `model`, `system`, `memory`, or `tool:NAME` (with the target, e.g.
    /// `tool:http_fetch https://example.org/`).
    pub source: String,
    pub integrity: Integrity,
    #[serde(default)]
    pub confidentiality: Confidentiality,
    /// Vault secrets (names; `*` for an unknown credential) this content carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl Provenance {
    /// Trusted, public content from `source`.
    pub fn trusted(source: impl Into<String>) -> Provenance {
        Provenance {
            source: source.into(),
            integrity: Integrity::Trusted,
            confidentiality: Confidentiality::Public,
            secrets: Vec::new(),
        }
    }

    /// The item's label (an untrusted item names its source).
    pub fn labels(&self) -> Labels {
        let mut l = if self.integrity == Integrity::Untrusted {
            Labels::untrusted(self.source.clone())
        } else {
            Labels::trusted()
        };
        l.confidentiality = self.confidentiality;
        l.secrets = self.secrets.clone();
        l
    }
}

/// What a tool call produced, ready for the model's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub call_id: String,
    /// Text for the model, already redacted.
    pub content: String,
    /// The call failed or was refused; `content` says why.
    pub is_error: bool,
    pub provenance: Provenance,
}
