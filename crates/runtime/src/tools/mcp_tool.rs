//! `SERVER__TOOL`: one approved tool of an MCP server, registered like any built-in.
//!
//! Guarantees: the model sees the description and schema that were approved (pinned in
//! `mcp.lock`), cleaned of invisible characters and HTML comments; arguments must be a
//! JSON object; the call is decided as `mcp_call` with canonical arguments; the result is
//! untrusted unless the server is configured `trust = "trusted"` — then all of it, first
//! lines included, is inside the session's untrusted-content boundary (it is the
//! server's own text, not an HTTP response with Cordon's status line) — and is capped
//! and redacted by the pipeline like any result.

use std::sync::Arc;

use async_trait::async_trait;
use guard::Action;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Executed, Origin, Tool, ToolOutput};
use crate::authorise::Authorization;
use crate::mcp_servers::McpServer;
use crate::pipeline::{Cx, Failure, Stage};

pub(crate) struct McpTool {
    server: Arc<McpServer>,
    tool: String,
    /// `SERVER__TOOL`.
    name: String,
    description: String,
    schema: Value,
}

impl McpTool {
    pub(crate) fn new(server: Arc<McpServer>, pin: &mcp::ToolPin) -> McpTool {
        let schema = serde_json::from_str(&pin.input_schema)
            .unwrap_or_else(|_| serde_json::json!({"type": "object"}));
        McpTool {
            name: format!("{}__{}", server.name, pin.name),
            tool: pin.name.clone(),
            description: mcp::model_facing(&pin.description),
            schema,
            server,
        }
    }
}

#[async_trait]
impl Tool for McpTool {
    type Args = Map<String, Value>;
    type Plan = Map<String, Value>;

    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.schema.clone()
    }

    fn origin(&self) -> Origin {
        match self.server.cfg.trust {
            config::McpTrust::Trusted => Origin::Local,
            config::McpTrust::Untrusted => Origin::Remote,
        }
    }

    /// Registered only for the agents that use the server, and offered to the agent
    /// itself, never to its sub-agents: a child gets exactly the built-in tools its parent
    /// named for it (`spawn_agent` narrows by those names).
    fn offered(&self, rt: &crate::Runtime) -> bool {
        rt.ext.depth == 0
    }

    fn canonicalise(&self, _cx: &Cx<'_>, args: Self::Args) -> Result<Self::Plan, Failure> {
        Ok(args)
    }

    fn action(&self, _cx: &Cx<'_>, args: &Self::Plan) -> Action {
        Action::McpCall {
            server: self.server.name.clone(),
            tool: self.tool.clone(),
            arguments: guard::canonical_json(&Value::Object(args.clone())),
            network: self.server.networked(),
        }
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        args: &Self::Plan,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let arguments = Value::Object(args.clone());
        let (outcome, info) = cx
            .rt
            .mcp_call(&self.server, &self.tool, arguments.clone())
            .await?;
        let record = audit::event::McpCall {
            call_id: cx.call.id.clone(),
            server: self.server.name.clone(),
            tool: self.tool.clone(),
            server_info: format!("{} {}", info.name, info.version).trim().to_string(),
            protocol_version: info.protocol_version,
            arguments_sha256: hex::encode(Sha256::digest(guard::canonical_json(&arguments))),
            result_sha256: hex::encode(Sha256::digest(&outcome.text)),
            result_bytes: outcome.cut.map_or(outcome.text.len(), |c| c.total) as u64,
            is_error: outcome.is_error,
            duration_ms: outcome.duration.as_millis() as u64,
        };
        // Made durable with the call's `tool_result`, written next.
        cx.rt
            .audit
            .append_event(Some(cx.session), record)
            .map_err(|e| Failure::new(Stage::Audit, format!("cannot record the call: {e}")))?;
        let output = ToolOutput {
            content: outcome.text,
            is_error: outcome.is_error,
            status: None,
            truncated: outcome.cut.is_some(),
        };
        let source = format!("mcp:{}/{}", self.server.name, self.tool);
        Ok(match self.server.cfg.trust {
            config::McpTrust::Trusted => Executed {
                source,
                ..Executed::new(cx, output)
            },
            config::McpTrust::Untrusted => Executed::untrusted(output, source),
        })
    }
}
