//! `cordon.toml`: the schema, strict loading and the paths Cordon uses.
//!
//! Guarantees: a config that loads is complete and valid — every key known, every value
//! of the right type and range, every host pattern well formed. Anything else is a
//! [`ConfigError`] naming the file, line, column and dotted key. Secrets never live here:
//! the model key is named by `api_key_env`, never written.
//!
//! Each key is defined once, in the structs of [`schema`], with its documentation next to
//! it; the JSON Schema (`cordon config schema`) and `docs/configuration.md` are generated
//! from those definitions.

mod atomic_file;
mod destination;
mod error;
mod generated;
mod host;
mod load;
mod paths;
mod reference;
pub mod schedule;
pub mod schema;
mod tier;

pub use atomic_file::{AtomicWriteError, atomic_write};
pub use destination::{http_url, is_cleartext_off_host, is_loopback_host, is_loopback_url};
pub use error::ConfigError;
pub use generated::{GeneratedError, GeneratedFile};
pub use host::{HostPattern, HostPatternError};
pub use load::{load, load_str};
pub use paths::{Paths, expand_tilde, home_dir};
pub use reference::{json_schema, reference_markdown};
pub use schema::{
    AgentConfig, AlertFormat, AlertsConfig, AnsweredBy, ApprovalsConfig, AuditConfig,
    AuditExportConfig, ChannelConfig, ChannelIdentity, ChannelKind, ChannelRole, CheckpointsConfig,
    Config, EgressConfig, ExecConfig, ExecMode, GatewayConfig, GatewayEgressConfig,
    HeartbeatConfig, InboundPolicy, LabelsConfig, McpConfig, McpServerConfig, McpToolFilter,
    McpTrust, McpWorkspace, ModelConfig, PolicyConfig, Provider, SandboxBackend, SandboxConfig,
    SandboxScope, ScheduleConfig, SendMessageConfig, SubagentsConfig, Tier, ToolName,
    WebhookConfig,
};
pub use tier::{InitModel, init_files, init_template, init_template_for};
