//! The commented `cordon.toml` that `cordon init --tier T` writes.
//!
//! Guarantees: every template loads with [`crate::load_str`] (tested), and a stricter tier
//! never has looser values than a laxer one. Templates contain no secrets: the model key
//! is named by `api_key_env`.

use crate::Tier;

/// Values that differ between tiers.
struct Preset {
    tier: &'static str,
    model_timeout_secs: u64,
    max_retries: u32,
    max_steps: u32,
    exec_timeout_secs: u64,
    exec_output_limit: usize,
    max_processes: u64,
    max_open_files: u64,
    max_file_size_mb: u64,
    max_cpu_secs: u64,
    max_memory_mb: u64,
    tmp_size_mb: u64,
    /// `sandbox.scope`: one sandbox per task, or a fresh one per call.
    scope: &'static str,
    /// Files `cordon init` writes next to the config, listed in `[policy] files`.
    policy_files: &'static [(&'static str, &'static str)],
}

/// The organisation's rules an enterprise install starts from (Cedar, validated against
/// Cordon's schema when the agent loads): deleting files and installing skills need a
/// human, and nothing pushes to a protected branch.
const ENTERPRISE_POLICY: &str = r#"// Organisation rules, added to what cordon.toml compiles to and to Cordon's built-in
// rules. A plain `forbid` denies (it wins over every permit); a `forbid` annotated
// @ask("why") asks a human instead. See docs/policy.md; check changes with
// `cordon policy test` and `cordon policy explain`.

@id("org.ask_delete")
@ask("deleting files needs a human (organisation policy)")
forbid (principal, action == Action::"delete_file", resource);

@id("org.no_push_protected")
@reason("agents never push to main or release branches (organisation policy)")
forbid (principal, action == Action::"exec", resource)
when {
  context.programs.contains("git") &&
  (context.command like "*push*main*" || context.command like "*push*release*")
};
"#;

fn preset(tier: Tier) -> Preset {
    match tier {
        Tier::Personal => Preset {
            tier: "personal",
            model_timeout_secs: 120,
            max_retries: 3,
            max_steps: 24,
            exec_timeout_secs: 60,
            exec_output_limit: 64 * 1024,
            max_processes: 256,
            max_open_files: 1024,
            max_file_size_mb: 1024,
            max_cpu_secs: 300,
            max_memory_mb: 4096,
            tmp_size_mb: 256,
            scope: "task",
            policy_files: &[],
        },
        Tier::Team => Preset {
            tier: "team",
            model_timeout_secs: 120,
            max_retries: 3,
            max_steps: 16,
            exec_timeout_secs: 30,
            exec_output_limit: 32 * 1024,
            max_processes: 128,
            max_open_files: 512,
            max_file_size_mb: 256,
            max_cpu_secs: 120,
            max_memory_mb: 2048,
            tmp_size_mb: 128,
            scope: "task",
            policy_files: &[],
        },
        Tier::Enterprise => Preset {
            tier: "enterprise",
            model_timeout_secs: 60,
            max_retries: 2,
            max_steps: 12,
            exec_timeout_secs: 30,
            exec_output_limit: 16 * 1024,
            max_processes: 64,
            max_open_files: 256,
            max_file_size_mb: 128,
            max_cpu_secs: 60,
            max_memory_mb: 1024,
            tmp_size_mb: 64,
            scope: "call",
            policy_files: &[("policy/organisation.cedar", ENTERPRISE_POLICY)],
        },
    }
}

/// `[policy] files` naming the tier's policy files (empty for none).
fn policy_section(p: &Preset) -> String {
    if p.policy_files.is_empty() {
        return String::new();
    }
    let names: Vec<String> = p
        .policy_files
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect();
    format!(
        "\n[policy]\n# Cedar policy files (relative to this file), required by tier enterprise.\n\
         files = [{}]\n",
        names.join(", ")
    )
}

/// The files besides the config that `cordon init --tier T` writes (path relative to the
/// config file's directory, contents).
pub fn init_files(tier: Tier) -> &'static [(&'static str, &'static str)] {
    preset(tier).policy_files
}

/// The text `cordon init --tier T` writes.
pub fn init_template(tier: Tier) -> String {
    init_template_for(tier, &InitModel::default())
}

/// The model server `cordon init` writes into `[model]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitModel {
    /// `model.base_url`.
    pub base_url: String,
    /// `model.model`.
    pub model: String,
}

impl Default for InitModel {
    /// Ollama's default address and a model it commonly serves.
    fn default() -> Self {
        InitModel {
            base_url: "http://127.0.0.1:11434/v1".to_string(),
            model: "qwen2.5:7b".to_string(),
        }
    }
}

/// [`init_template`] with `[model] base_url` and `model` set to `m` (quoted as TOML
/// strings, whatever they contain).
pub fn init_template_for(tier: Tier, m: &InitModel) -> String {
    let p = preset(tier);
    let base_url = toml::Value::String(m.base_url.clone()).to_string();
    let model_name = toml::Value::String(m.model.clone()).to_string();
    format!(
        r#"# cordon.toml: written by `cordon init --tier {tier}`.
# Every key is documented in docs/configuration.md (`cordon config schema` prints the
# JSON Schema). Unknown keys are errors. Never put secrets in this file.

# Security tier this deployment declares: personal | team | enterprise.
tier = "{tier}"

[model]
# Wire protocol: "openai" (any OpenAI-compatible server, e.g. Ollama) or "anthropic".
provider = "openai"
# Base URL of the API; the only host the model connection may reach.
base_url = {base_url}
# Model name sent to the provider.
model = {model_name}
# Name of the environment variable holding the API key (not the key itself).
api_key_env = "OPENAI_API_KEY"
# Stream replies as they are generated.
stream = true
# Seconds before one model request is abandoned (1-3600).
timeout_secs = {model_timeout_secs}
# Retries on HTTP 429/5xx and connection errors (0-10).
max_retries = {max_retries}
# Most tokens the model may generate per reply.
max_tokens = 4096

[agents.default]
# Directory the agent works on; `/workspace` inside the sandbox.
workspace = "~/cordon-workspace/default"
# Tools this agent is given; a tool not listed does not exist for the model.
tools = [
  "read_file", "write_file", "edit_file", "list_dir", "search", "exec", "http_fetch",
  "memory_write", "spawn_agent",
]
# Most model replies in one task before it is stopped (1-200).
max_steps = {max_steps}

[agents.default.exec]
# When commands run without a human: deny | ask | allowlist | auto.
mode = "ask"
# Programs that run without asking in `allowlist` mode, e.g. ["ls", "cargo"].
allow = []
# Seconds before the command's whole process tree is killed (1-86400).
timeout_secs = {exec_timeout_secs}
# Bytes of stdout and of stderr kept per command (1024-16777216).
output_limit = {exec_output_limit}

[agents.default.egress]
# Hosts this agent may reach, e.g. ["api.github.com", "*.pypi.org"]. Empty: no network.
allow = []

[sandbox]
# Isolation backend: native (Linux namespaces).
backend = "native"
# "task": one sandbox per task, reused by its calls; "call": a fresh one per call.
scope = "{scope}"
# Most processes the sandbox may have.
max_processes = {max_processes}
# Most open files per process.
max_open_files = {max_open_files}
# Largest file a process may write, in MiB.
max_file_size_mb = {max_file_size_mb}
# CPU seconds per process.
max_cpu_secs = {max_cpu_secs}
# Address space per process, in MiB.
max_memory_mb = {max_memory_mb}
# Size of the sandbox's private /tmp, in MiB.
tmp_size_mb = {tmp_size_mb}

[approvals]
# Seconds a pending approval waits for an answer before it is denied.
timeout_secs = 300
# Who may answer: "anyone" (this terminal, `cordon approvals` here, or an approver token)
# or "approvers" (only approver tokens through the gateway: web UI, `cordon chat --remote`).
answered_by = "{answered_by}"

[audit]
# Record full prompts and model output (otherwise sizes and digests only).
record_content = true
{export}{alerts}{store}{policy}"#,
        tier = p.tier,
        scope = p.scope,
        answered_by = if p.tier == "personal" {
            "anyone"
        } else {
            "approvers"
        },
        policy = policy_section(&p),
        export = if p.tier == "personal" {
            ""
        } else {
            "\n# This tier ships the audit log to a central collector: uncomment and set.\n\
             # [audit.export]\n\
             # url = \"https://logs.example.com/cordon\"\n\
             # token_env = \"CORDON_AUDIT_TOKEN\"\n"
        },
        alerts = if p.tier == "enterprise" {
            "\n# This tier delivers alerts to people: uncomment and set (a Slack or Mattermost\n\
             # incoming webhook works; its URL is a credential, keep this file 0600).\n\
             # [alerts]\n\
             # webhook_url = \"https://hooks.example.com/cordon\"\n\
             # token_env = \"CORDON_ALERTS_TOKEN\"\n"
        } else {
            ""
        },
        store = if p.tier == "enterprise" {
            "\n# Several processes or hosts share one store in PostgreSQL: uncomment and set.\n\
             # Only a Unix socket or a loopback host (no TLS to PostgreSQL yet).\n\
             # [store]\n\
             # url = \"postgres://cordon@/cordon?host=/run/postgresql\"\n\
             # password_env = \"CORDON_STORE_PASSWORD\"\n"
        } else {
            ""
        },
        model_timeout_secs = p.model_timeout_secs,
        max_retries = p.max_retries,
        max_steps = p.max_steps,
        exec_timeout_secs = p.exec_timeout_secs,
        exec_output_limit = p.exec_output_limit,
        max_processes = p.max_processes,
        max_open_files = p.max_open_files,
        max_file_size_mb = p.max_file_size_mb,
        max_cpu_secs = p.max_cpu_secs,
        max_memory_mb = p.max_memory_mb,
        tmp_size_mb = p.tmp_size_mb,
    )
}
