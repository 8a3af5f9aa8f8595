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
}

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
        },
    }
}

/// The text `cordon init --tier T` writes.
pub fn init_template(tier: Tier) -> String {
    let p = preset(tier);
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
base_url = "http://127.0.0.1:11434/v1"
# Model name sent to the provider.
model = "qwen2.5:7b"
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

[audit]
# Record full prompts and model output (otherwise sizes and digests only).
record_content = true
"#,
        tier = p.tier,
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
