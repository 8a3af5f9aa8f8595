//! The tools, as registrations: each is one type implementing [`Tool`] in its own file
//! under `tools/`, listed once in `builtin_tools!` (one line: module and type). The pipeline ([`crate::pipeline`]) runs
//! every tool through the same stages; a tool only declares what differs — its typed
//! arguments (the JSON Schema the model sees is generated from them), how they are
//! canonicalised, the guard [`Action`] it is decided as, what an `ask` means for it,
//! what it sends where and what its result may show (for labels), and how it executes.
//!
//! Guarantees: arguments are parsed with `deny_unknown_fields` into the tool's type
//! before anything else happens; a missing, extra or wrong-typed field is an error
//! naming the tool and the field. Implementations reach the world only through
//! [`crate::Workspace`] (files), the sandbox (`exec`) or the egress proxy
//! ([`crate::execute`]), each of which enforces its own confinement.

use async_trait::async_trait;
use guard::{Action, Integrity, Labels};
use schemars::JsonSchema;
use schemars::transform::Transform as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ToolSpec;
use crate::authorise::{Authorization, Refusal};
use crate::pipeline::{Cx, Failure};

/// Declares each built-in tool's module and registers the tool, in the order tools are
/// offered to the model.
pub(crate) mod mcp_tool;

macro_rules! builtin_tools {
    ($($module:ident :: $tool:ident),* $(,)?) => {
        $(pub(crate) mod $module;)*

        /// Every built-in tool.
        pub(crate) fn builtin() -> Registry {
            Registry::default()$(.with($module::$tool))*
        }
    };
}

builtin_tools! {
    read_file::ReadFile,
    write_file::WriteFile,
    edit_file::EditFile,
    list_dir::ListDir,
    search::Search,
    exec::Exec,
    http_fetch::HttpFetch,
    memory_write::MemoryWrite,
    spawn_agent::SpawnAgent,
    send_message::SendMessage,
    load_skill::LoadSkill,
}

/// One tool. See the module documentation for what the pipeline does around it.
#[async_trait]
pub(crate) trait Tool: Send + Sync + 'static {
    /// The arguments as the model writes them (`#[serde(deny_unknown_fields)]`; field
    /// doc comments are the descriptions the model reads).
    type Args: DeserializeOwned + JsonSchema + Send;
    /// The call canonicalised: arguments with their targets resolved (paths beneath the
    /// workspace, URLs parsed). What the guard decides on and what executes.
    type Plan: Send + Sync;

    /// The name the model calls it by (and `agents.NAME.tools` lists).
    fn name(&self) -> &str;
    /// What the model is told it does.
    fn description(&self) -> &str;
    /// The JSON Schema of the arguments the model is shown: by default generated from
    /// [`Tool::Args`]. A tool whose arguments are known only at run time (an MCP server's
    /// tool) takes `Args = serde_json::Map<String, Value>` and returns its own schema.
    fn parameters(&self) -> Value {
        schema_of::<Self::Args>()
    }
    /// Where its results come from, for their integrity.
    fn origin(&self) -> Origin {
        Origin::Local
    }
    /// What an `ask` decision on its action means.
    fn on_ask(&self) -> OnAsk {
        OnAsk::Human
    }
    /// Whether the runtime's agent is given this tool: by default, when
    /// `agents.NAME.tools` lists its name.
    fn offered(&self, rt: &crate::Runtime) -> bool {
        config::ToolName::parse(self.name()).is_some_and(|t| rt.agent_cfg.tools.contains(&t))
    }

    /// Check the arguments and resolve their targets.
    fn canonicalise(&self, cx: &Cx<'_>, args: Self::Args) -> Result<Self::Plan, Failure>;
    /// The guard action the call is decided as.
    fn action(&self, cx: &Cx<'_>, plan: &Self::Plan) -> Action;
    /// A runtime limit (beyond the policy) that refuses this call; checked right before
    /// the guard and recorded as a `deny` decision.
    fn refuse(&self, _cx: &Cx<'_>, _plan: &Self::Plan) -> Option<Refusal> {
        None
    }
    /// Whether the call's workspace changes will be journaled, so `cordon undo` can
    /// restore them exactly (the guard's `checkpointed`: such a change needs no approval
    /// in an untrusted session). False for tools that change nothing in the workspace.
    fn checkpointed(&self, _cx: &Cx<'_>, _plan: &Self::Plan) -> bool {
        false
    }
    /// Workspace files with an untrusted provenance label the call would run as code
    /// (`context.runs_labelled_file`; see [`crate::provenance`]).
    fn runs_labelled(&self, _cx: &Cx<'_>, _plan: &Self::Plan) -> Vec<String> {
        Vec::new()
    }
    /// What the call sends out and to which host: each agent secret these texts name
    /// is decided as a `use_secret` action.
    fn sends<'p>(&self, _plan: &'p Self::Plan) -> Option<Sends<'p>> {
        None
    }
    /// Whether a result (`content`, before redaction) shows a workspace file matching
    /// `labels.private`: the result is then labelled `private`.
    fn shows_private(&self, _cx: &Cx<'_>, _plan: &Self::Plan, _content: &str) -> bool {
        false
    }
    /// Carry out the authorised call.
    async fn execute(
        &self,
        cx: &Cx<'_>,
        plan: &Self::Plan,
        auth: &Authorization,
    ) -> Result<Executed, Failure>;
}

/// Where a tool's results come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This machine (the workspace, the runtime, a sandboxed command): trusted unless
    /// the execution found otherwise.
    Local,
    /// A third party's HTTP response (`http_fetch`): untrusted, cleaned and wrapped as a
    /// response (the status and URL lines, Cordon's own, outside the block); a failure
    /// after sending may quote it.
    Response,
    /// A third party's answer that is all its own (an MCP server's tool result):
    /// untrusted, cleaned and wrapped whole; a failure after sending may quote it.
    Remote,
}

/// What an `ask` decision on a tool's action means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnAsk {
    /// Wait for a human's answer (or a stored grant) before executing.
    Human,
    /// Execute at once with the verdict: the tool files its effect for a human to review
    /// later instead of blocking the session (`memory_write`). No grant covers it.
    Review,
}

/// What a call sends out: texts that may name the agent's secrets, and the host they go
/// to (empty when unknown before the call runs, as for a command).
pub(crate) struct Sends<'p> {
    pub(crate) texts: Vec<&'p str>,
    pub(crate) host: String,
}

/// What an executed tool produced, before redaction and labelling.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolOutput {
    pub content: String,
    pub is_error: bool,
    /// Exit status (exec) or HTTP status (fetch), for the audit record.
    pub status: Option<serde_json::Value>,
    /// Output was cut to a limit.
    pub truncated: bool,
}

impl ToolOutput {
    pub fn ok(content: String) -> ToolOutput {
        ToolOutput {
            content,
            ..ToolOutput::default()
        }
    }
}

/// A tool's result with what its label is made from.
#[derive(Debug, Clone)]
pub(crate) struct Executed {
    pub(crate) output: ToolOutput,
    /// Where the content came from: `tool:NAME`, or with the target
    /// (`tool:http_fetch URL`), the provenance source of the observation.
    pub(crate) source: String,
    pub(crate) integrity: Integrity,
    /// The result shows a private workspace file (set from [`Tool::shows_private`]).
    pub(crate) private: bool,
    /// A label the result brings into the session besides its own (a sub-agent's
    /// whole label).
    pub(crate) carries: Option<Labels>,
}

impl Executed {
    /// A trusted result of the call's tool, sourced `tool:NAME`.
    pub(crate) fn new(cx: &Cx<'_>, output: ToolOutput) -> Executed {
        Executed {
            output,
            source: format!("tool:{}", cx.call.name),
            integrity: Integrity::Trusted,
            private: false,
            carries: None,
        }
    }

    /// An untrusted result from `source`.
    pub(crate) fn untrusted(output: ToolOutput, source: String) -> Executed {
        Executed {
            output,
            source,
            integrity: Integrity::Untrusted,
            private: false,
            carries: None,
        }
    }
}

/// A tool as the registry holds it: the object-safe face of a [`Tool`].
#[async_trait]
pub(crate) trait Registered: Send + Sync {
    fn name(&self) -> &str;
    fn origin(&self) -> Origin;
    fn offered(&self, rt: &crate::Runtime) -> bool;
    /// Name, description and the JSON Schema generated from the arguments' type.
    fn spec(&self) -> ToolSpec;
    /// Canonicalise, decide, approve and execute one call.
    async fn run(&self, cx: &Cx<'_>) -> Result<Executed, Failure>;
}

struct Entry<T>(T);

#[async_trait]
impl<T: Tool> Registered for Entry<T> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn origin(&self) -> Origin {
        self.0.origin()
    }

    fn offered(&self, rt: &crate::Runtime) -> bool {
        self.0.offered(rt)
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.0.name().to_string(),
            description: self.0.description().to_string(),
            parameters: self.0.parameters(),
        }
    }

    async fn run(&self, cx: &Cx<'_>) -> Result<Executed, Failure> {
        crate::pipeline::run(&self.0, cx).await
    }
}

/// The tools a runtime can run, by name.
#[derive(Default)]
pub(crate) struct Registry {
    tools: Vec<Box<dyn Registered>>,
}

impl Registry {
    /// Register `tool`. A second tool of the same name is a programming error.
    pub(crate) fn with<T: Tool>(mut self, tool: T) -> Registry {
        assert!(
            self.get(tool.name()).is_none(),
            "tool `{}` registered twice",
            tool.name()
        );
        self.tools.push(Box::new(Entry(tool)));
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<&dyn Registered> {
        self.tools
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.as_ref())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &dyn Registered> {
        self.tools.iter().map(|t| t.as_ref())
    }
}

/// Parse the model's raw argument text for `tool`. Empty text means `{}`.
pub(crate) fn parse_args<A: DeserializeOwned>(tool: &str, raw: &str) -> Result<A, String> {
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    serde_json::from_str(raw).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; for one-line JSON it is noise.
        let msg = match msg.rsplit_once(" at line ") {
            Some((head, _)) if !raw.contains('\n') => head.to_string(),
            _ => msg,
        };
        format!("invalid arguments for {tool}: {msg}")
    })
}

/// The JSON Schema of `A` as the model sees it: inlined, without the meta-schema,
/// titles or Rust integer formats, and with optional fields simply not required (the
/// model leaves them out rather than sending `null`).
pub(crate) fn schema_of<A: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.meta_schema = None;
        s.inline_subschemas = true;
    });
    let mut schema = settings.into_generator().into_root_schema_for::<A>();
    schemars::transform::RecursiveTransform(model_facing).transform(&mut schema);
    schema.to_value()
}

fn model_facing(schema: &mut schemars::Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    obj.remove("title");
    if obj.get("additionalProperties") == Some(&Value::Bool(true)) {
        obj.remove("additionalProperties");
    }
    if obj
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
    {
        obj.remove("format");
    }
    // `Option<T>`: `"type": [T, "null"]`, a `null` among the `enum` values, or
    // `anyOf: [T, {"type": "null"}]`.
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    let inner = match obj.get("anyOf") {
        Some(Value::Array(any)) if any.len() == 2 => {
            let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
            match (is_null(&any[0]), is_null(&any[1])) {
                (false, true) => Some(any[0].clone()),
                (true, false) => Some(any[1].clone()),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(Value::Object(inner)) = inner {
        obj.remove("anyOf");
        for (k, v) in inner {
            // The field's own keywords (its description) win over the type's.
            obj.entry(k).or_insert(v);
        }
        model_facing(schema);
    }
}

/// Cut `s` to at most `max` bytes on a char boundary. Returns whether it was cut.
pub(crate) fn truncate_utf8(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::edit_file::EditFileArgs;
    use crate::tools::exec::ExecArgs;
    use crate::tools::http_fetch::HttpFetchArgs;
    use crate::tools::list_dir::ListDirArgs;
    use crate::tools::read_file::ReadFileArgs;

    /// A tool known only at run time (as an MCP server's tools are): name, description
    /// and schema come from data.
    struct Dynamic {
        name: String,
        description: String,
        schema: Value,
    }

    #[async_trait]
    impl Tool for Dynamic {
        type Args = serde_json::Map<String, Value>;
        type Plan = serde_json::Map<String, Value>;

        fn name(&self) -> &str {
            &self.name
        }
        fn description(&self) -> &str {
            &self.description
        }
        fn parameters(&self) -> Value {
            self.schema.clone()
        }
        fn canonicalise(&self, _: &Cx<'_>, args: Self::Args) -> Result<Self::Plan, Failure> {
            Ok(args)
        }
        fn action(&self, _: &Cx<'_>, _: &Self::Plan) -> Action {
            Action::ListDir {
                path: String::new(),
            }
        }
        async fn execute(
            &self,
            cx: &Cx<'_>,
            _: &Self::Plan,
            _: &Authorization,
        ) -> Result<Executed, Failure> {
            Ok(Executed::new(cx, ToolOutput::ok(String::new())))
        }
    }

    /// The seam takes tools whose names and schemas are data, not code: the model sees
    /// exactly the given schema, and their arguments still parse strictly (an object).
    #[test]
    fn a_tool_known_only_at_run_time_registers_like_a_built_in() {
        let schema = json!({
            "type": "object",
            "properties": {"repo": {"type": "string"}},
            "required": ["repo"]
        });
        let registry = builtin().with(Dynamic {
            name: "github__list_issues".into(),
            description: "List the issues of a repository.".into(),
            schema: schema.clone(),
        });
        let spec = registry.get("github__list_issues").unwrap().spec();
        assert_eq!(spec.name, "github__list_issues");
        assert_eq!(spec.description, "List the issues of a repository.");
        assert_eq!(spec.parameters, schema);
        type Object = serde_json::Map<String, Value>;
        assert!(parse_args::<Object>("github__list_issues", r#"{"repo": "a/b"}"#).is_ok());
        let e = parse_args::<Object>("github__list_issues", "[1]").unwrap_err();
        assert!(
            e.starts_with("invalid arguments for github__list_issues: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn strict_parsing_names_the_problem() {
        let e = parse_args::<EditFileArgs>("edit_file", r#"{"path":"a","new_string":"b"}"#)
            .unwrap_err();
        assert_eq!(
            e,
            "invalid arguments for edit_file: missing field `old_string`"
        );
        let e = parse_args::<ReadFileArgs>("read_file", r#"{"path":"a","mode":"x"}"#).unwrap_err();
        assert!(e.contains("unknown field `mode`"), "{e}");
        let e = parse_args::<ExecArgs>("exec", r#"{"command": 5}"#).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        let e = parse_args::<ExecArgs>("exec", "{not json").unwrap_err();
        assert!(e.starts_with("invalid arguments for exec:"), "{e}");
        let e =
            parse_args::<HttpFetchArgs>("http_fetch", r#"{"url":"http://x","method":"DELETE"}"#)
                .unwrap_err();
        assert!(e.contains("unknown variant `DELETE`"), "{e}");
        assert!(parse_args::<ListDirArgs>("list_dir", "").is_ok());
    }

    /// The schemas generated from the argument types are the ones the model was given
    /// when they were written by hand: strict (`additionalProperties: false`, nested
    /// too), the same required fields, types, bounds and descriptions.
    #[test]
    fn generated_schemas_are_the_hand_written_ones() {
        let registry = builtin();
        let names: Vec<&str> = registry
            .iter()
            .map(|t| t.name())
            .filter(|n| *n != "load_skill")
            .collect();
        assert_eq!(
            names,
            config::ToolName::ALL.map(|t| t.as_str()),
            "every built-in tool listable in agents.NAME.tools, in the config's order"
        );
        for tool in registry.iter() {
            let expected = match tool.name() {
                "read_file" => json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the workspace"},
                        "offset": {"type": "integer", "minimum": 1, "description": "First line to return, from 1"},
                        "limit": {"type": "integer", "minimum": 1, "description": "Most lines to return"}
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                "write_file" => json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the workspace"},
                        "content": {"type": "string", "description": "The complete new content"}
                    },
                    "required": ["path", "content"],
                    "additionalProperties": false
                }),
                "edit_file" => json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the workspace"},
                        "old_string": {"type": "string", "description": "Exact text to replace"},
                        "new_string": {"type": "string", "description": "Replacement text"},
                        "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)", "default": false}
                    },
                    "required": ["path", "old_string", "new_string"],
                    "additionalProperties": false
                }),
                "list_dir" => json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "Directory relative to the workspace (default: the workspace root)"}
                    },
                    "additionalProperties": false
                }),
                "search" => json!({
                    "type": "object",
                    "properties": {
                        "pattern": {"type": "string", "description": "Regular expression (Rust regex syntax)"},
                        "path": {"type": "string", "description": "File or directory to search beneath (default: the whole workspace)"}
                    },
                    "required": ["pattern"],
                    "additionalProperties": false
                }),
                "exec" => json!({
                    "type": "object",
                    "properties": {
                        "command": {"type": "string", "description": "The shell command"}
                    },
                    "required": ["command"],
                    "additionalProperties": false
                }),
                "http_fetch" => json!({
                    "type": "object",
                    "properties": {
                        "url": {"type": "string", "description": "http:// or https:// URL"},
                        "method": {"type": "string", "enum": ["GET", "POST"], "description": "Default GET"},
                        "body": {"type": "string", "description": "Request body (POST)"},
                        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra request headers"},
                        "extract": {
                            "type": "object",
                            "description": "Instead of returning the page, have a separate model without tools read it and return only a JSON answer matching `schema` (safer for untrusted pages)",
                            "properties": {
                                "instruction": {"type": "string", "description": "What to extract"},
                                "schema": {"type": "object", "description": "JSON Schema of the answer"}
                            },
                            "required": ["instruction", "schema"],
                            "additionalProperties": false
                        }
                    },
                    "required": ["url"],
                    "additionalProperties": false
                }),
                "memory_write" => json!({
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "description": "MEMORY.md or NAME.md (letters, digits, -, _)"},
                        "content": {"type": "string", "description": "The entry (markdown)"}
                    },
                    "required": ["content"],
                    "additionalProperties": false
                }),
                "spawn_agent" => json!({
                    "type": "object",
                    "properties": {
                        "task": {"type": "string", "description": "The task, complete and self-contained"},
                        "tools": {"type": "array", "items": {"type": "string"}, "description": "Tools for the child (subset of yours; default: your read-only file tools)"},
                        "max_steps": {"type": "integer", "minimum": 1, "description": "Step limit of the child"}
                    },
                    "required": ["task"],
                    "additionalProperties": false
                }),
                "send_message" => json!({
                    "type": "object",
                    "properties": {
                        "to": {"type": "string", "description": "The conversation: CHANNEL:CONVERSATION, e.g. telegram:123456"},
                        "text": {"type": "string", "description": "The message text"}
                    },
                    "required": ["to", "text"],
                    "additionalProperties": false
                }),
                "load_skill" => json!({
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "The skill's name, as listed in the system prompt"}
                    },
                    "required": ["name"],
                    "additionalProperties": false
                }),
                other => panic!("no expected schema for `{other}`"),
            };
            assert_eq!(
                tool.spec().parameters,
                expected,
                "schema of {}",
                tool.name()
            );
        }
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_is_registered_once() {
        let _ = builtin().with(crate::tools::exec::Exec);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "héllo".to_string();
        assert!(truncate_utf8(&mut s, 2));
        assert_eq!(s, "h");
        let mut s = "abc".to_string();
        assert!(!truncate_utf8(&mut s, 3));
    }
}
