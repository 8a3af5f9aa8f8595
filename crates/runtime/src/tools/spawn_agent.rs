//! `spawn_agent`: hand a task to a child agent through the attached
//! [`crate::subagent::SubagentRunner`]. The runtime's own limits (tools a subset of the
//! parent's, steps, depth, `require_sandbox`, `max_children`) refuse a call before the
//! guard decides `spawn_agent` (tools, steps, task digest); the child's answer carries
//! the child's whole label into the parent session (see [`crate::subagent`]).

use async_trait::async_trait;
use config::ToolName;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::Digest;

use super::{Executed, Tool};
use crate::authorise::{Authorization, Refusal};
use crate::pipeline::{Cx, Failure, Stage};

pub(crate) struct SpawnAgent;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpawnAgentArgs {
    /// The task, complete and self-contained
    pub task: String,
    /// Tools for the child (subset of yours; default: your read-only file tools)
    pub tools: Option<Vec<String>>,
    /// Step limit of the child
    #[schemars(range(min = 1))]
    pub max_steps: Option<u32>,
}

/// The child as asked for: its task, tools and step limit.
pub(crate) struct Child {
    pub(crate) task: String,
    pub(crate) tools: Vec<ToolName>,
    pub(crate) max_steps: u32,
}

#[async_trait]
impl Tool for SpawnAgent {
    type Args = SpawnAgentArgs;
    type Plan = Child;

    fn name(&self) -> &str {
        "spawn_agent"
    }

    fn description(&self) -> &str {
        "Start a sub-agent with its own empty context to do a task, and get its final answer. It gets only the tools you list (a subset of yours) and at most your step limit. Its answer carries its trust label."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: SpawnAgentArgs) -> Result<Child, Failure> {
        let tools = crate::subagent::child_tools(cx.rt.agent_cfg(), args.tools.as_deref())
            .map_err(|m| {
                Failure::new(
                    Stage::Arguments,
                    format!("invalid arguments for spawn_agent: {m}"),
                )
            })?;
        Ok(Child {
            max_steps: args.max_steps.unwrap_or(cx.rt.max_steps()),
            task: args.task,
            tools,
        })
    }

    fn action(&self, _cx: &Cx<'_>, child: &Child) -> Action {
        Action::SpawnAgent {
            tools: child.tools.iter().map(|t| t.as_str().to_string()).collect(),
            max_steps: child.max_steps,
            task_sha256: hex::encode(sha2::Sha256::digest(child.task.as_bytes())),
        }
    }

    fn refuse(&self, cx: &Cx<'_>, child: &Child) -> Option<Refusal> {
        cx.rt.spawn_refusal(cx.session, child)
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        child: &Child,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        cx.rt.spawn_agent(cx, child).await
    }
}
