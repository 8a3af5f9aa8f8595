//! [`Runtime::perform`]: one tool call from proposal to labelled, redacted, audited
//! observation, through the same stages for every tool in the registry:
//!
//! ```text
//! record proposal -> look up -> canonicalise -> decide -> approve -> execute
//!   -> redact -> label -> record result
//! ```
//!
//! Guarantees: the proposal is audited before anything else (a proposal the log refuses
//! does not run); a tool the agent is not given does not exist for it; arguments are
//! parsed strictly into the tool's type and canonicalised (paths resolved beneath the
//! workspace, URLs parsed) before the guard sees them; nothing executes before its
//! decision is durable ([`crate::authorise`]); every result, failures included, is
//! redacted, labelled ([`crate::label`]) and audited with a digest. A failure at any
//! stage becomes an error observation and an `error` record naming its [`Stage`];
//! nothing panics. There are no per-tool branches here: what differs between tools is
//! declared by their [`Tool`] implementation.

use std::time::Instant;

use serde_json::Value;

use crate::tools::{Executed, Origin, Registered, Tool};
use crate::{Observation, Runtime, ToolCall, record};

/// The stage at which a call ended without (successful) execution; named in the audit
/// `error` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// No such tool, or not one the agent is given.
    Tool,
    /// The arguments do not parse or do not make sense.
    Arguments,
    /// A workspace path or file operation failed.
    Workspace,
    /// The guard (or a runtime limit) denied the call.
    Decision,
    /// A human refused, or nobody could answer.
    Approval,
    /// The audit log could not record a step, so the call did not go on.
    Audit,
    /// The session's secret placeholders could not be made.
    Secrets,
    /// The sandbox could not run the command.
    Sandbox,
    /// The request failed (it may quote what a server answered).
    HttpFetch,
    /// The quarantined reader gave no valid answer.
    Extract,
    /// The memory store failed or is missing.
    Memory,
    /// The sub-agent could not be started.
    SpawnAgent,
    /// A skill was refused (drifted from its pin, or used beyond its capabilities).
    Skill,
    /// An MCP server could not start, its tool changed since approval, or the call failed.
    Mcp,
    /// A chat message could not be sent.
    Message,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Tool => "tool",
            Stage::Arguments => "arguments",
            Stage::Workspace => "workspace",
            Stage::Decision => "decision",
            Stage::Approval => "approval",
            Stage::Audit => "audit",
            Stage::Secrets => "secrets",
            Stage::Sandbox => "sandbox",
            Stage::HttpFetch => "http_fetch",
            Stage::Extract => "extract",
            Stage::Memory => "memory",
            Stage::Skill => "skill",
            Stage::Mcp => "mcp",
            Stage::SpawnAgent => "spawn_agent",
            Stage::Message => "send_message",
        }
    }

    /// A refusal before anything was sent: the message is Cordon's own words.
    pub(crate) fn is_refusal(self) -> bool {
        matches!(
            self,
            Stage::Tool
                | Stage::Arguments
                | Stage::Decision
                | Stage::Approval
                | Stage::Audit
                | Stage::Secrets
        )
    }
}

/// Why a call ended without (successful) execution: the text for the model and the
/// stage for the audit `error` record.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(stage: Stage, message: impl Into<String>) -> Failure {
        Failure {
            stage,
            message: message.into(),
        }
    }
}

/// One call in flight: what every stage and every tool is handed.
pub(crate) struct Cx<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) session: &'a str,
    pub(crate) call: &'a ToolCall,
}

impl Runtime {
    /// Decide, execute, redact, label and audit one proposed tool call.
    pub async fn perform(&self, session: &str, call: &ToolCall) -> Observation {
        let started = Instant::now();
        let cx = Cx {
            rt: self,
            session,
            call,
        };
        let origin = self
            .registry
            .get(&call.name)
            .map_or(Origin::Local, |t| t.origin());
        let arguments = self.redacted_arguments(&call.arguments);
        let outcome = match record::tool_proposed(&self.audit, session, call, arguments) {
            Ok(()) => match self.offered(&call.name) {
                Ok(tool) => tool.run(&cx).await,
                Err(f) => Err(f),
            },
            Err(e) => Err(Failure::new(
                Stage::Audit,
                format!(
                    "{} not run: the audit log cannot record the proposal: {e}",
                    call.name
                ),
            )),
        };
        let (executed, responded) = match outcome {
            Ok(done) => (done, true),
            Err(f) => (self.failed(&cx, origin, f), false),
        };
        self.finish(&cx, started, origin, executed, responded)
    }

    /// The registered tool called `name`, if the agent is given it.
    fn offered(&self, name: &str) -> Result<&dyn Registered, Failure> {
        let available = || {
            self.agent_cfg
                .tools
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.registry.get(name) {
            Some(tool) if tool.offered(self) => Ok(tool),
            Some(_) => Err(Failure::new(
                Stage::Tool,
                format!(
                    "tool `{name}` is not available to agent `{}`; available tools: {}",
                    self.agent,
                    available()
                ),
            )),
            None => Err(Failure::new(
                Stage::Tool,
                format!("unknown tool `{name}`; available tools: {}", available()),
            )),
        }
    }

    /// Canonicalise a workspace path (`None`: the workspace root) beneath the root.
    pub(crate) fn resolve(&self, path: Option<&str>) -> Result<crate::WorkspacePath, Failure> {
        self.workspace
            .resolve(path.unwrap_or("."))
            .map_err(|e| Failure::new(Stage::Workspace, e.to_string()))
    }

    /// The model's arguments for the audit log: redacted, and as JSON when they parse
    /// (the raw redacted text otherwise).
    fn redacted_arguments(&self, raw: &str) -> Value {
        let text = self.redact(raw);
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// The stages of one call to `tool` between its lookup and its result: canonicalise,
/// decide and approve, execute. The same for every tool.
pub(crate) async fn run<T: Tool>(tool: &T, cx: &Cx<'_>) -> Result<Executed, Failure> {
    // Canonicalise: typed arguments, targets resolved.
    let args: T::Args = crate::tools::parse_args(tool.name(), &cx.call.arguments)
        .map_err(|m| Failure::new(Stage::Arguments, m))?;
    let plan = tool.canonicalise(cx, args)?;
    // Decide and approve.
    let check = crate::authorise::Check {
        action: tool.action(cx, &plan),
        refusal: tool.refuse(cx, &plan),
        on_ask: tool.on_ask(),
        sends: tool.sends(&plan),
        checkpointed: tool.checkpointed(cx, &plan),
        labelled_code: tool.runs_labelled(cx, &plan),
    };
    let auth = cx.rt.authorise(cx, check).await?;
    // Execute.
    let mut done = tool.execute(cx, &plan, &auth).await?;
    done.private = tool.shows_private(cx, &plan, &done.output.content);
    Ok(done)
}

impl Runtime {
    /// A failed call as a result: its `error` record written, its message redacted and
    /// labelled by where it came from.
    fn failed(&self, cx: &Cx<'_>, origin: Origin, f: Failure) -> Executed {
        let message = self.redact(&f.message);
        record::error(&self.audit, cx.session, cx.call, f.stage, &message);
        let output = crate::tools::ToolOutput {
            content: message,
            is_error: true,
            ..Default::default()
        };
        Executed {
            integrity: crate::label::failure_integrity(origin, f.stage),
            ..Executed::new(cx, output)
        }
    }

    /// Redact, label and record a result (or a failure), and make it the observation.
    fn finish(
        &self,
        cx: &Cx<'_>,
        started: Instant,
        origin: Origin,
        mut done: Executed,
        responded: bool,
    ) -> Observation {
        if done.integrity == crate::Integrity::Untrusted {
            let response = responded && origin == Origin::Response;
            self.hygiene(cx.session, &done.source, response, &mut done.output);
        }
        let redacted = self.redactor.redact(&done.output.content);
        let labels = self.result_labels(cx.session, &done, &redacted);
        let flow = self.flow(cx.session);
        if let Some(carried) = &done.carries {
            flow.join(carried);
        }
        flow.join(&labels);
        let elapsed = started.elapsed();
        let result = record::tool_result(
            &self.audit,
            cx.session,
            cx.call,
            &done.output,
            &redacted,
            elapsed,
            (&labels, &self.redactor.redact(&done.source).text),
        );
        let (content, is_error) = match result {
            Ok(()) => (redacted.text, done.output.is_error),
            Err(e) => (
                format!(
                    "{}\n[warning: the audit log could not record this result: {e}]",
                    redacted.text
                ),
                true,
            ),
        };
        Observation {
            call_id: cx.call.id.clone(),
            content,
            is_error,
            provenance: crate::Provenance {
                source: done.source,
                integrity: done.integrity,
                confidentiality: labels.confidentiality,
                secrets: labels.secrets,
            },
        }
    }
}
