//! Sub-agents (`spawn_agent`): [`ChildAgents`] implements the runtime's
//! [`SubagentRunner`]. A child is a new [`Agent`] with its own session (recorded in the
//! store and in the audit log's `session_start` with its parent and depth), its own
//! context holding only the task (no parent context, no memory), the child runtime the
//! runtime made (tools narrowed; same sandbox backend, egress proxy, approver and audit
//! log) and the same model.
//!
//! The child's answer goes back with the child's label, read from the child runtime (so
//! a child that fetched untrusted content returns an untrusted result).

use std::sync::Arc;

use async_trait::async_trait;
use runtime::Runtime;
use runtime::subagent::{SubagentResult, SubagentRunner, SubagentSpec};
use store::Store;

use crate::agent_loop::{Agent, AgentOptions, Lineage, system_prompt};
use crate::provider::{ChatRequest, Delta, ModelReply, Provider, ProviderError};

/// One provider shared by the agent, its children and the quarantined reader.
pub struct SharedProvider(pub Arc<dyn Provider>);

#[async_trait]
impl Provider for SharedProvider {
    fn describe(&self) -> String {
        self.0.describe()
    }

    async fn complete(
        &self,
        req: &ChatRequest<'_>,
        on_delta: &mut (dyn for<'t> FnMut(Delta<'t>) + Send),
    ) -> Result<ModelReply, ProviderError> {
        self.0.complete(req, on_delta).await
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.0.check().await
    }
}

/// Runs `spawn_agent` children.
pub struct ChildAgents {
    provider: Arc<dyn Provider>,
    store: Arc<Store>,
    audit: audit::AgentLog,
    record_content: bool,
}

impl ChildAgents {
    pub fn new(
        provider: Arc<dyn Provider>,
        store: Arc<Store>,
        audit: impl Into<audit::AgentLog>,
        record_content: bool,
    ) -> ChildAgents {
        ChildAgents {
            provider,
            store,
            audit: audit.into(),
            record_content,
        }
    }
}

const CHILD_INSTRUCTIONS: &str = "You are a sub-agent: another agent gave you the task in the \
     user message. You see nothing of its conversation. Do the task with your tools and end \
     with your result as your answer; that answer is all the other agent receives.";

#[async_trait]
impl SubagentRunner for ChildAgents {
    async fn run(&self, runtime: Arc<Runtime>, spec: SubagentSpec) -> SubagentResult {
        let prompt = system_prompt(
            runtime.agent(),
            &runtime.tool_specs(),
            Some(CHILD_INSTRUCTIONS),
        );
        let agent = Agent::new(AgentOptions {
            provider: Box::new(SharedProvider(self.provider.clone())),
            runtime: runtime.clone(),
            store: self.store.clone(),
            audit: self.audit.clone(),
            max_steps: spec.max_steps,
            system_prompt: prompt,
            record_content: self.record_content,
        });
        let lineage = Lineage {
            parent: spec.parent_session.clone(),
            call_id: spec.call_id.clone(),
            depth: spec.depth,
            tools: spec.tools.iter().map(|t| t.as_str().to_string()).collect(),
        };
        let mut session = match agent.start_session(Some(&lineage)) {
            Ok(s) => s,
            Err(e) => {
                return SubagentResult {
                    session: String::new(),
                    answer: format!("the sub-agent could not start: {e}"),
                    is_error: true,
                    labels: spec.labels.clone(),
                    steps: 0,
                };
            }
        };
        // The task carries the label of the parent that wrote it.
        runtime.join_labels(&session.id, &spec.labels);
        runtime.link_child(&session.id, &spec.parent_session);
        let outcome = agent.run_turn(&mut session, &spec.task, &mut |_| {}).await;
        let labels = runtime.session_labels(&session.id);
        agent.end_session(&session);
        let (answer, is_error, steps) = match outcome {
            // A child whose model refused (or was filtered) did not do its task.
            Ok(t) => (t.answer, t.ending.withheld(), t.steps),
            Err(e) => (format!("the sub-agent failed: {e}"), true, spec.max_steps),
        };
        SubagentResult {
            session: session.id,
            answer,
            is_error,
            labels,
            steps,
        }
    }
}
