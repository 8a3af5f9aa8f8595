//! Every command-line flag, defined once with its documentation (`--help` is generated
//! from these doc comments).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Cordon: a self-hosted AI agent with its hardening guide built in.
///
/// Files: the config is `$CORDON_CONFIG` (default ~/.config/cordon/cordon.toml); state
/// (sessions, audit log) lives in `$CORDON_STATE_DIR` (default ~/.local/state/cordon).
#[derive(Debug, Parser)]
#[command(name = "cordon", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a config for a security tier, create the state directory (0700) and workspaces.
    Init {
        /// Security tier preset.
        #[arg(long, value_enum, default_value_t = TierArg::Personal)]
        tier: TierArg,
        /// Overwrite an existing config file.
        #[arg(long)]
        force: bool,
        /// Model to write into `[model]` (default: the first model of the first local
        /// server found; the server that lists this one is chosen).
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
    },
    /// Run one task non-interactively and print the final answer. An action that needs a
    /// human's approval waits, for `approvals.timeout_secs`, for an answer given from
    /// another terminal (`cordon approvals list`, `cordon approvals approve ID`); if none
    /// comes it expires and is denied. Exits non-zero when the model refused the task (the
    /// answer says so) or the run failed.
    Run {
        /// Agent to use (from `[agents.NAME]`).
        #[arg(long, default_value = "default")]
        agent: String,
        /// The task, in plain words.
        #[arg(required = true, num_args = 1.., value_name = "TASK")]
        task: Vec<String>,
    },
    /// Talk to an agent in the terminal; approvals are asked inline. Resumes the agent's
    /// last session unless --new. Type /new for a fresh session, /exit to leave.
    ///
    /// With --remote, talk to an agent of a running gateway (`cordon serve`) instead, as
    /// the web UI does; a new session unless --session. The token is read from
    /// $CORDON_TOKEN or asked for without echo, never from the command line or the URL.
    Chat {
        /// Agent to use (from `[agents.NAME]`).
        #[arg(long, default_value = "default")]
        agent: String,
        /// Start a new session instead of resuming the last one.
        #[arg(long)]
        new: bool,
        /// The gateway's URL, e.g. https://cordon.example:7777. Plain http:// only to
        /// this machine (127.0.0.1, [::1], localhost). No query, fragment or credentials.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// With --remote: resume this session (an id from the web UI) instead of
        /// starting one.
        #[arg(long, value_name = "ID", requires = "remote", conflicts_with = "new")]
        session: Option<String>,
        /// With --remote: also trust this CA certificate (PEM file) for the gateway's
        /// TLS, besides the built-in web roots.
        #[arg(long, value_name = "FILE", requires = "remote")]
        ca: Option<PathBuf>,
    },
    /// The audit log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// The configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run commands exactly as the agent's exec tool would.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// The encrypted secret vault: credentials the egress proxy injects for their bound
    /// hosts. Values are never printed.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// The egress proxy's decisions.
    Egress {
        #[command(subcommand)]
        command: EgressCommand,
    },
    /// Pending approval requests (from any running `cordon run`/`chat`), answers and
    /// the grants they created. Every answer, grant and revocation is audited.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Scheduled tasks (`[[schedules]]` and `[heartbeat]`): when each runs next, and
    /// running one now. `cordon serve` runs them at their times.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Who may talk to agents through chat channels: pending pairing codes (an unknown
    /// sender is given one), approved senders with their role, denied ones. Every
    /// decision is audited.
    Pairing {
        #[command(subcommand)]
        command: PairingCommand,
    },
    /// The policy decisions (Cedar, compiled from cordon.toml plus `[policy] files`).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// An agent's long-term memory and the memory changes waiting for a human.
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
    /// Provenance labels of workspace files: files written or changed by sessions that
    /// had read untrusted content (or held private or secret data) carry that label to
    /// every session that reads or runs them.
    Files {
        #[command(subcommand)]
        command: FilesCommand,
    },
    /// Run the gateway (HTTP API) until SIGINT/SIGTERM. Listens on `[gateway] bind`
    /// (default 127.0.0.1:7777). An address that is not loopback is refused unless
    /// `[gateway] tls_cert` and `tls_key` are set and a usable token exists; no flag
    /// changes that.
    Serve {
        /// Address and port to listen on, overriding `[gateway] bind`.
        #[arg(long, value_name = "ADDR:PORT")]
        bind: Option<std::net::SocketAddr>,
    },
    /// Skills (OpenClaw SKILL.md folders): scanned, pinned by hash in `skills.lock` beside
    /// the config, installed read-only, and held to the capabilities a human approved.
    Skills {
        #[command(subcommand)]
        command: SkillsCommand,
    },
    /// What sessions changed in their agent's workspace, journaled by `[checkpoints]`:
    /// with SESSION each file as a diff (text) or a line (binary); without, the
    /// sessions that changed something.
    Changes {
        /// A session id (as `cordon run` prints it, or from `cordon changes`).
        session: Option<String>,
    },
    /// Restore exactly what SESSION changed in the workspace (only call ID's changes with
    /// --call). A file changed since by anything else is reported and left alone. Exits
    /// 1 when something could not be restored.
    Undo {
        /// A session id (as `cordon run` prints it, or from `cordon changes`).
        session: String,
        /// Undo only this tool call's changes.
        #[arg(long, value_name = "ID")]
        call: Option<String>,
    },
    /// MCP servers (`[mcp.servers.NAME]`): their tools, and which a human approved.
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
    /// API tokens for the gateway: shown once at creation, stored only as hashes.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check this deployment the way an attacker would look at it: config, files, what
    /// listens, the host. Exits 1 on any critical finding.
    Audit {
        /// Findings as JSON.
        #[arg(long, global = true)]
        json: bool,
        /// Apply the safe, local fixes (file modes) and report each.
        #[arg(long)]
        fix: bool,
        /// Also check the sandbox layers this kernel applies and Docker's published
        /// ports (slower).
        #[arg(long)]
        deep: bool,
        #[command(subcommand)]
        command: Option<AuditCommand>,
    },
    /// Hardened deployment files generated from the config and its tier: a compose
    /// project, a systemd unit, Kubernetes manifests or host firewall rules. Each comes
    /// with its own cordon.toml (the config with only paths, bind and TLS moved) and
    /// comments on every setting the native sandbox needs relaxed, and why. Prints to
    /// stdout unless --out.
    Deploy {
        /// What to generate.
        #[arg(value_enum)]
        target: DeployTarget,
        /// Write the files into DIR (created 0755 if missing; files 0644) and print each
        /// path, instead of printing the files.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// With --out: replace files whose contents differ (otherwise nothing is written).
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Watch a prompt-injection attack meet Cordon, offline with a scripted model, in a
    /// throwaway directory (deleted afterwards unless --keep).
    Demo {
        /// Keep the demo's config, state (audit log, store, vault) and workspace in DIR,
        /// which must not exist yet.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

/// A `cordon deploy` target.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeployTarget {
    /// compose.yaml, Dockerfile, cordon-seccomp.json and cordon.toml: one hardened
    /// container, published on 127.0.0.1.
    Compose,
    /// cordon.service (systemd sandboxing on) and cordon.toml.
    Systemd,
    /// cordon-k8s.yaml: Namespace, ConfigMap, PVC, Deployment, Service, NetworkPolicy.
    Kubernetes,
    /// nftables and iptables rules dropping traffic to the cloud metadata service,
    /// DOCKER-USER included.
    Firewall,
}

impl From<DeployTarget> for ::deploy::Target {
    fn from(t: DeployTarget) -> ::deploy::Target {
        match t {
            DeployTarget::Compose => ::deploy::Target::Compose,
            DeployTarget::Systemd => ::deploy::Target::Systemd,
            DeployTarget::Kubernetes => ::deploy::Target::Kubernetes,
            DeployTarget::Firewall => ::deploy::Target::Firewall,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// What a fully compromised agent could reach: hosts, secrets and where they can be
    /// sent, writable paths, actions without a human — from the effective policy.
    BlastRadius {
        /// Only this agent (default: every agent).
        #[arg(long)]
        agent: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (on stdout, alone; details on stderr).
    Create {
        /// What it may do: `read` (look), `approver` (+ answer approvals), `operator`
        /// (+ talk to agents), `admin` (everything).
        #[arg(long, value_enum)]
        scope: TokenScopeArg,
        /// Lifetime: `30d`, `12h`, `90m` (1 minute to 365 days).
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// A name to recognise it by (e.g. the device it is for).
        #[arg(long, default_value = "token")]
        name: String,
    },
    /// List tokens (never the tokens themselves): id, name, scope, dates, state.
    List {
        /// Also revoked and expired tokens.
        #[arg(long)]
        all: bool,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once, and so do browser sessions made with it.
    Revoke {
        /// The token's id (from `cordon token list`).
        id: String,
    },
}

/// A token's scope.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenScopeArg {
    Read,
    Approver,
    Operator,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// Pending codes (with sender id, shown name and expiry), approved senders with their
    /// role, and denied ones.
    List {
        /// Only this channel (`telegram`, `slack`, `matrix`).
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Admit the sender holding CODE. Exit 1, naming the code, if it is unknown, decided
    /// or expired.
    Approve {
        /// The 8-character code the sender was given (case does not matter).
        code: String,
        /// What the sender may do: `user` (talks to the agent; the default), `approver`
        /// (+ answers approvals in the chat) or `owner` (+ their words in groups are the
        /// user speaking).
        #[arg(long, value_enum, default_value_t = PairingRoleArg::User)]
        role: PairingRoleArg,
    },
    /// Refuse the sender holding CODE: their later messages are ignored. Exit 1 as for
    /// approve.
    Deny {
        /// The code the sender was given.
        code: String,
    },
    /// Forget a sender's pairing (approved or denied): they must pair again.
    Remove {
        /// The channel (`telegram`, `slack`, `matrix`).
        channel: String,
        /// The sender's platform id, as `cordon pairing list` shows it.
        sender: String,
    },
}

/// A paired sender's role.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PairingRoleArg {
    User,
    Approver,
    Owner,
}

impl From<PairingRoleArg> for config::ChannelRole {
    fn from(r: PairingRoleArg) -> config::ChannelRole {
        match r {
            PairingRoleArg::User => config::ChannelRole::User,
            PairingRoleArg::Approver => config::ChannelRole::Approver,
            PairingRoleArg::Owner => config::ChannelRole::Owner,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Decide one action as the runtime would: which policies matched, the decision and
    /// the reason. Actions: `exec CMD`, `connect [METHOD] URL`, `read_file PATH`,
    /// `write_file PATH`, `edit_file PATH`, `delete_file PATH`, `list_dir PATH`,
    /// `search PATH`, `memory_write FILE`, `spawn_agent TOOL…`, `use_secret NAME HOST`,
    /// `install_skill NAME SHA256`.
    ///
    /// Example: `cordon policy explain --agent default --labels untrusted -- exec "git push"`
    Explain {
        #[arg(long, default_value = "default")]
        agent: String,
        /// The session's labels, comma-separated: `trusted|untrusted`,
        /// `public|private|secret` (default: trusted,public).
        #[arg(long)]
        labels: Option<String>,
        /// Secrets the session's data carries (implies `secret`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        secrets: Vec<String>,
        /// Untrusted sources to name in the labels.
        #[arg(long = "source")]
        sources: Vec<String>,
        /// A host the session already contacted (repeatable).
        #[arg(long)]
        contacted: Vec<String>,
        /// A vault secret's bound hosts, `NAME=HOST[,HOST…]` (repeatable).
        #[arg(long = "secret-host")]
        secret_hosts: Vec<String>,
        /// Sub-agent depth of the session (0 = top level).
        #[arg(long, default_value_t = 0)]
        depth: u32,
        /// The action's workspace changes would be journaled (undoable), as the runtime
        /// decides a file tool's write when `[checkpoints]` is on and has room.
        #[arg(long)]
        checkpointed: bool,
        /// A workspace file with an untrusted provenance label that the command runs
        /// (repeatable; `cordon files labels` lists them): `context.runs_labelled_file`.
        #[arg(long = "runs-labelled", value_name = "PATH")]
        runs_labelled: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The action, after `--`.
        #[arg(last = true, required = true)]
        action: Vec<String>,
    },
    /// Run a table of actions with their expected decisions (`[[case]]` entries: agent,
    /// action, command/url/path/…, labels, contacted, expect); exit 1 on any mismatch.
    Test {
        /// The cases file (TOML).
        file: PathBuf,
    },
    /// Print every policy of an agent, compiled and user-written, in evaluation order.
    Show {
        #[arg(long, default_value = "default")]
        agent: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Print every memory entry with the session and label that wrote it.
    Show {
        #[arg(long, default_value = "default")]
        agent: String,
    },
    /// List memory writes waiting for a human (from sessions that read untrusted
    /// content): the `memory_write` requests of `cordon approvals list`.
    Pending {
        #[arg(long, default_value = "default")]
        agent: String,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Accept a pending memory write (same as `cordon approvals approve ID`): it is
    /// appended with the writer's (untrusted) label.
    Accept {
        /// Refuse unless the change belongs to this agent.
        #[arg(long)]
        agent: Option<String>,
        /// The id shown by `cordon memory pending` or `cordon approvals list`.
        id: String,
    },
    /// Reject a pending memory write (same as `cordon approvals deny ID`): it is
    /// discarded.
    Reject {
        /// Refuse unless the change belongs to this agent.
        #[arg(long)]
        agent: Option<String>,
        /// The id shown by `cordon memory pending` or `cordon approvals list`.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Every labelled file of the agent's workspace: its label, the session that wrote it,
    /// and whether its content changed since (a changed file keeps its label).
    Labels {
        #[arg(long, default_value = "default")]
        agent: String,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Clear the label of one file after reviewing it (recorded in the audit log as
    /// `file_trusted`): sessions that read or run it are no longer tainted by it.
    Trust {
        #[arg(long, default_value = "default")]
        agent: String,
        /// The file, relative to the workspace (or absolute, inside it).
        path: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Each schedule: its cron expression and time zone, agent, where its answer goes,
    /// and its next run (local time and UTC).
    List {
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run schedule NAME (or `heartbeat`) now, in a new session, and print its answer
    /// (also sent to its `reply_to`). Its approval requests wait for an approver
    /// (`cordon approvals`, the web UI) and expire as denials: the task never answers
    /// them itself. Exit 1 if it could not start or its turn failed.
    Run {
        /// The schedule's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Pending requests: id, age, agent, session, the canonical action, why it was asked
    /// (rule and reason), the session's labels and its untrusted sources.
    List {
        /// Also answered and expired requests.
        #[arg(long)]
        all: bool,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request: once (default), for its session, or for every session
    /// of its agent. A memory change (kind `memory_write`) is appended to the agent's
    /// memory and takes no grant options. Exit 1, naming the id, if it is unknown,
    /// answered or expired (or a memory change could not be written: it stays pending).
    Approve {
        /// The request's id (from `cordon approvals list`).
        id: String,
        /// Also allow this exact action for the rest of the request's session.
        #[arg(long, conflicts_with = "agent")]
        session: bool,
        /// Also allow it in every session of the agent, for --days days.
        #[arg(long)]
        agent: bool,
        /// Lifetime of an --agent grant in days (default 30, at most
        /// approvals.grant_max_days).
        #[arg(long, requires = "agent")]
        days: Option<u64>,
        /// Widen an --agent grant to every single command starting with these words,
        /// e.g. "git push"; must be a prefix of the asked command.
        #[arg(long, requires = "agent", conflicts_with = "host")]
        prefix: Option<String>,
        /// Widen an --agent grant to every request to the asked host.
        #[arg(long, requires = "agent")]
        host: bool,
    },
    /// Deny a pending request (a memory change is discarded).
    Deny {
        /// The request's id.
        id: String,
    },
    /// Active grants (exact action, argv prefix or host) and their expiry.
    Grants {
        /// Also revoked and expired grants.
        #[arg(long)]
        all: bool,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant: the action asks again.
    Revoke {
        /// The grant's id (from `cordon approvals grants`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check the hash chain; exit 1 and name the first bad record if anything changed.
    Verify,
    /// Print records.
    Show {
        /// Only this session's records.
        #[arg(long)]
        session: Option<String>,
        /// Only records of this kind (e.g. decision, tool_result, error).
        #[arg(long)]
        kind: Option<String>,
        /// One JSON record per line instead of text.
        #[arg(long)]
        json: bool,
        /// Only the last N matching records.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Deliver what is pending now (`cordon serve` does it continuously): the records not
    /// yet shipped to `[audit.export] url`, and the alerts not yet sent to `[alerts]
    /// webhook_url`. Exit 1 if either did not take them.
    Export,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file; errors name file:line and key.
    Check {
        /// Config file to check instead of $CORDON_CONFIG.
        file: Option<PathBuf>,
    },
    /// Print the JSON Schema of cordon.toml.
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// What a sandboxed process of this agent sees and may do: layers, mounts, limits,
    /// network — as it would be set up on this machine now.
    Explain {
        /// Agent whose workspace and limits to use.
        #[arg(long, default_value = "default")]
        agent: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run CMD in a fresh sandbox with the agent's workspace and limits.
    Exec {
        /// Agent whose workspace and limits to use.
        #[arg(long, default_value = "default")]
        agent: String,
        /// Use this directory as the workspace instead of the agent's.
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Wall-clock limit, e.g. 30s, 2m (default: the agent's exec.timeout_secs).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1.., last = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store (or replace) a secret. The value is read from the terminal without echo, or
    /// from stdin (one line, trailing newline removed) when stdin is not a terminal.
    Set {
        /// Secret name: 1-64 characters A-Z, 0-9 and `_`, starting with a letter
        /// (e.g. GITHUB_TOKEN).
        name: String,
        /// Hosts the value may be sent to, comma-separated host patterns
        /// (`api.github.com`, `*.example.com`, optionally `:port`).
        #[arg(
            long,
            required = true,
            value_delimiter = ',',
            value_parser = config::HostPattern::parse
        )]
        hosts: Vec<config::HostPattern>,
    },
    /// Names, bound hosts, creation and last-use times. Never values.
    List {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret; exit 1 if there is none by that name.
    Rm {
        /// Name of the secret to delete.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EgressCommand {
    /// Would a request to URL be allowed, and why: host, port, resolved addresses,
    /// decision, reason. Resolves the name but never connects. Exit 0 if allowed, 1 if
    /// denied.
    Test {
        /// Agent whose egress allowlist to use.
        #[arg(long, default_value = "default")]
        agent: String,
        /// A URL (`https://api.github.com/user`), `host:port`, `[v6]:port` or a host
        /// (port 443).
        url: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    Personal,
    Team,
    Enterprise,
}

impl From<TierArg> for config::Tier {
    fn from(t: TierArg) -> config::Tier {
        match t {
            TierArg::Personal => config::Tier::Personal,
            TierArg::Team => config::Tier::Team,
            TierArg::Enterprise => config::Tier::Enterprise,
        }
    }
}

/// `30`, `30s`, `5m`, `1h`, `500ms`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s, 2m, 1h"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if d.is_zero() {
        return Err("the timeout must be greater than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum SkillsCommand {
    /// Scan a skill, show its findings and the capabilities it asks for, and install it
    /// after a human confirms at the terminal. Critical findings are never installed;
    /// high ones need --accept-risk and the skill's name typed at the terminal.
    Add {
        /// A folder, a .zip / .tar.gz / .tgz archive, or an https:// archive URL with its
        /// pin: `https://host/skill.tar.gz#sha256=HEX`.
        source: String,
        /// Enable it only for this agent (repeatable); default: every agent.
        #[arg(long = "agent", value_name = "NAME")]
        agents: Vec<String>,
        /// Accept a skill with no high or critical finding without asking.
        #[arg(long)]
        yes: bool,
        /// Allow installing a skill with high findings (still asks at the terminal).
        #[arg(long)]
        accept_risk: bool,
        /// Give the skill's `requires.env` variable VAR the vault secret SECRET (as a
        /// placeholder, only for the secret's hosts). Repeatable.
        #[arg(long = "env", value_name = "VAR=SECRET")]
        env: Vec<String>,
        /// Also trust this CA certificate (PEM) when downloading an https:// source.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Installed skills: name, version, hash, verdict, agents and capabilities.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One installed skill in full: lock entry, files, and its findings rescanned.
    Show {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Uninstall a skill: its lock entry and its stored tree.
    Remove { name: String },
    /// Replace an installed skill with a new version: shows which files changed and the
    /// capability difference, scans again; new capabilities need a human again.
    Update {
        name: String,
        /// Where the new version comes from (as for `add`).
        source: String,
        /// Accept without asking when nothing is high or critical and no capability is new.
        #[arg(long)]
        yes: bool,
        /// Allow high findings (still asks at the terminal).
        #[arg(long)]
        accept_risk: bool,
        /// Also trust this CA certificate (PEM) when downloading an https:// source.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Re-hash every installed skill against skills.lock; exit 1 on any drift.
    Verify,
    /// Run the scanner alone on a folder or archive: exit 0 when nothing is high or
    /// critical, 1 otherwise.
    Scan {
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// The configured servers: how each runs, its egress, trust and approved tools.
    List,
    /// Start a server (in its sandbox), list its tools with their descriptions and
    /// schemas, whether each is approved or changed since, and scanner findings; stop it.
    Tools {
        name: String,
        /// Agent whose sandbox and workspace to start it with.
        #[arg(long, default_value = "default")]
        agent: String,
    },
    /// Approve TOOLs of a server (all it lists when none is named): pins their
    /// descriptions and schemas in mcp.lock. Tools with high or critical scanner
    /// findings are refused.
    Approve {
        name: String,
        tools: Vec<String>,
        #[arg(long, default_value = "default")]
        agent: String,
    },
    /// Start a server, list its tools, stop it: exit 0 when it answers.
    Test {
        name: String,
        #[arg(long, default_value = "default")]
        agent: String,
    },
}
