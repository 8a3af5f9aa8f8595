//! The agent: LLM providers and the agent loop. It talks to the world only through
//! `runtime`: it opens no file, socket or process itself (`tests/no_direct_io.rs`
//! keeps it that way). Model HTTP goes through `runtime::ModelEndpoint`.

mod agent_loop;
mod context;
pub mod provider;
mod quarantine;
mod subagent;

pub use agent_loop::{
    Agent, AgentError, AgentEvent, AgentOptions, Session, TurnInput, TurnOutcome, system_prompt,
};
pub use context::{ContextItem, session_labels};
pub use quarantine::ProviderQuarantine;
pub use subagent::{ChildAgents, SharedProvider};
