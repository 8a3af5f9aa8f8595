//! Sub-agents: the `spawn_agent` tool hands a task to a child agent through a
//! [`SubagentRunner`] (implemented by the agent crate, which owns the agent loop).
//!
//! What the runtime guarantees before a runner is called: the child's tools are a subset
//! of the parent's, its step limit is at most the parent's, the nesting depth stays below
//! `agents.NAME.subagents.max_depth`, a session starts at most `max_children` children,
//! and with `require_sandbox` no child starts while `sandbox.backend = "none"`. The
//! child's [`Runtime`] comes from [`Runtime::child`]: same agent config, sandbox backend,
//! egress proxy, approver and audit log, tools narrowed.
//!
//! What it takes from the runner: the child's answer and the child's label; the parent's
//! observation carries that label (a child that read untrusted content returns an
//! untrusted result).

use std::sync::Arc;

use async_trait::async_trait;
use config::ToolName;

use crate::authorise::Refusal;
use crate::pipeline::{Cx, Failure, Stage};
use crate::tools::spawn_agent::Child;
use crate::tools::{Executed, ToolOutput};
use crate::{Integrity, Labels, Runtime};

/// What the parent asked for, checked against the parent's limits.
#[derive(Debug, Clone)]
pub struct SubagentSpec {
    /// The parent's session id.
    pub parent_session: String,
    /// The tool call of the parent that started the child.
    pub call_id: String,
    pub task: String,
    pub tools: Vec<ToolName>,
    pub max_steps: u32,
    /// The child's depth (1 for a child of a top-level session).
    pub depth: u32,
    /// The label of the task: the parent session's label when it wrote it. The child's
    /// session starts with it (a task written by a tainted parent taints the child).
    pub labels: Labels,
}

/// What came back from the child.
#[derive(Debug, Clone)]
pub struct SubagentResult {
    /// The child's session id.
    pub session: String,
    /// The child's final answer, or why it has none.
    pub answer: String,
    pub is_error: bool,
    /// The child session's label: untrusted once it read anything untrusted, private or
    /// secret once it held such data (its answer may carry it).
    pub labels: Labels,
    pub steps: u32,
}

/// Runs a child agent to its final answer.
#[async_trait]
pub trait SubagentRunner: Send + Sync {
    /// `runtime` is the child's runtime (made by [`Runtime::child`]); every effect of the
    /// child must go through it.
    async fn run(&self, runtime: Arc<Runtime>, spec: SubagentSpec) -> SubagentResult;
}

/// The child's tools as named by the model (`None`: the parent's read-only file tools).
/// Unknown names are an argument error; tools the parent lacks are kept, so the decision
/// can deny them by name.
pub(crate) fn child_tools(
    parent: &config::AgentConfig,
    names: Option<&[String]>,
) -> Result<Vec<ToolName>, String> {
    let Some(names) = names else {
        return Ok([ToolName::ReadFile, ToolName::ListDir, ToolName::Search]
            .into_iter()
            .filter(|t| parent.tools.contains(t))
            .collect());
    };
    let mut out = Vec::new();
    for n in names {
        let t = ToolName::parse(n).ok_or_else(|| {
            format!(
                "unknown tool `{n}` in `tools`; known tools: {}",
                ToolName::ALL.map(|t| t.as_str()).join(", ")
            )
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

impl Runtime {
    /// The runtime's own limits on a child (tools a subset of this agent's, steps, depth,
    /// `require_sandbox`, `max_children`): the refusal, recorded by the pipeline as a
    /// `deny` decision. A call within them takes one of the session's child slots.
    pub(crate) fn spawn_refusal(&self, session: &str, child: &Child) -> Option<Refusal> {
        let cfg = self.agent_cfg();
        let agent = self.agent();
        let max_steps = child.max_steps;
        let depth = self.depth() + 1;
        let lacking: Vec<&str> = child
            .tools
            .iter()
            .filter(|t| !cfg.tools.contains(t))
            .map(|t| t.as_str())
            .collect();
        let (rule, reason) = if !lacking.is_empty() {
            (
                "subagent.tools_subset",
                format!(
                    "the child would get tools this agent does not have ({}); a sub-agent only gets a subset of its parent's tools",
                    lacking.join(", ")
                ),
            )
        } else if max_steps > cfg.max_steps {
            (
                "subagent.max_steps",
                format!(
                    "max_steps {max_steps} is more than this agent's {} (agents.{agent}.max_steps)",
                    cfg.max_steps
                ),
            )
        } else if depth > cfg.subagents.max_depth {
            (
                "subagent.max_depth",
                format!(
                    "a child here would be at depth {depth}; agents.{agent}.subagents.max_depth is {}",
                    cfg.subagents.max_depth
                ),
            )
        } else if cfg.subagents.require_sandbox && self.isolation() == sandbox::Isolation::None {
            (
                "subagent.require_sandbox",
                format!(
                    "agents.{agent}.subagents.require_sandbox is set and sandbox.backend = \"none\": children run only sandboxed"
                ),
            )
        } else if !self
            .ext
            .take_child_slot(session, cfg.subagents.max_children)
        {
            (
                "subagent.max_children",
                format!(
                    "this session already started {} sub-agents (agents.{agent}.subagents.max_children)",
                    cfg.subagents.max_children
                ),
            )
        } else {
            return None;
        };
        Some(Refusal { rule, reason })
    }

    /// Run the child (after its limits and the guard allowed it) and return its answer;
    /// the child's whole label comes with it (its untrusted sources name the child).
    pub(crate) async fn spawn_agent(
        &self,
        cx: &Cx<'_>,
        child: &Child,
    ) -> Result<Executed, Failure> {
        let Some(runner) = self.ext.subagents.get().cloned() else {
            return Err(Failure::new(
                Stage::SpawnAgent,
                "spawn_agent is unavailable: no sub-agent runner is attached to this runtime",
            ));
        };
        let runtime = self
            .child(child.tools.clone(), child.max_steps)
            .map_err(|e| Failure::new(Stage::SpawnAgent, e.to_string()))?;
        let spec = SubagentSpec {
            parent_session: cx.session.to_string(),
            call_id: cx.call.id.clone(),
            task: child.task.clone(),
            tools: child.tools.clone(),
            max_steps: child.max_steps,
            depth: self.depth() + 1,
            labels: self.session_labels(cx.session),
        };
        let result = runner.run(Arc::new(runtime), spec).await;
        // The answer carries the child's whole label: integrity and confidentiality.
        let mut labels = result.labels.clone();
        if labels.is_tainted() {
            labels.join(&Labels::untrusted(format!(
                "spawn_agent {}",
                result.session
            )));
        }
        let content = format!(
            "sub-agent (session {}, {} steps, {}){}:\n{}",
            result.session,
            result.steps,
            match result.labels.integrity {
                Integrity::Trusted => "trusted",
                Integrity::Untrusted => "untrusted: it read untrusted content",
            },
            if result.is_error {
                " failed"
            } else {
                " answered"
            },
            result.answer
        );
        let output = ToolOutput {
            content,
            is_error: result.is_error,
            ..Default::default()
        };
        Ok(Executed {
            output,
            source: format!("tool:spawn_agent {}", result.session),
            integrity: result.labels.integrity,
            private: false,
            carries: Some(labels),
        })
    }
}
