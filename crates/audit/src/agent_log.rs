//! [`AgentLog`]: the audit handle of the agent loop, which can write only the kinds an agent
//! produces — `session_start`, `user_message`, `model_output` (the model's reply) and
//! `error` — so the agent crate cannot write decisions, approvals or anything else the
//! runtime and the front ends vouch for. The restriction is in the types: there is no
//! method that takes another kind, and the wrapped [`Log`] is not reachable through it.

use std::sync::Arc;

use crate::error::AuditError;
use crate::event::{Event, Failure, ModelOutput, ModelReply, SessionStart, UserMessage};
use crate::log::Log;

/// A record the agent loop may write.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    SessionStart(SessionStart),
    UserMessage(UserMessage),
    /// The agent's model answered (a quarantined reader's answer is the runtime's).
    ModelOutput(ModelReply),
    /// The model call or the loop failed.
    Error(Failure),
}

impl From<AgentEvent> for Event {
    fn from(e: AgentEvent) -> Event {
        match e {
            AgentEvent::SessionStart(p) => Event::SessionStart(p),
            AgentEvent::UserMessage(p) => Event::UserMessage(p),
            AgentEvent::ModelOutput(p) => Event::ModelOutput(ModelOutput::Reply(p)),
            AgentEvent::Error(p) => Event::Error(crate::event::ErrorEvent::Other(p)),
        }
    }
}

/// The agent loop's handle on the shared log. Cheap to clone.
///
/// It takes only [`AgentEvent`]s; any other record does not compile:
///
/// ```compile_fail
/// # fn f(log: &cordon_audit::AgentLog, d: cordon_audit::event::Decision) {
/// log.record("S1", cordon_audit::Event::Decision(d));
/// # }
/// ```
#[derive(Clone)]
pub struct AgentLog(Arc<Log>);

impl From<Arc<Log>> for AgentLog {
    fn from(log: Arc<Log>) -> AgentLog {
        AgentLog(log)
    }
}

impl AgentLog {
    /// Append and sync a record of `session`.
    pub fn record(&self, session: &str, event: AgentEvent) -> Result<(), AuditError> {
        self.0.record_event(Some(session), event)
    }
}

impl std::fmt::Debug for AgentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AgentLog").field(&self.0.dir()).finish()
    }
}
