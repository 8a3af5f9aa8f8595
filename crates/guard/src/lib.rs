//! Policy decisions: may this agent perform this action, must a human be asked first, or
//! is it refused?
//!
//! The runtime turns each parsed tool call into an [`Action`] and asks
//! [`Policy::decide`]; the answer is a [`Decision`] whose reason names the config rule
//! that produced it (`exec.mode = "ask"`, `egress.allow does not match evil.com:443`), so
//! the human, the model and the audit log all see *why*.
//!
//! Guarantees (v1):
//! - a tool not in `agents.NAME.tools` is always denied;
//! - `exec.mode = "deny"` never runs a command; `"ask"` always asks; `"allowlist"` runs
//!   without asking only a command that [`canonicalise_exec`] understands completely
//!   (launchers such as `env`, `sh -c`, `timeout`, `time` unwrapped; no unparsable part,
//!   no inline/arbitrary code, no privilege escalation, no `xargs`-supplied arguments,
//!   no variable expansion in an argument, no environment change outside a short
//!   harmless list) in which EVERY program is listed in `exec.allow` and no redirection
//!   or `cd` reaches outside the workspace; everything else asks, never allows, and the
//!   reason names the first offending part;
//! - the canonical text of an exec action (what approvals and grants bind to) is the
//!   canonical command, so `env bash -lc 'make test'` and `make test` are one action and
//!   a changed argv, path or redirection is a new one;
//! - `http_fetch` is allowed only to `http`/`https` URLs whose host and port match
//!   `egress.allow`; anything else is denied (not asked).
//!
//! Not guaranteed here: path confinement of file tools (the runtime's workspace layer
//! resolves every path beneath the root and refuses escapes; the guard allows file tools
//! because that layer makes them safe), and what an allowed program does with its
//! arguments (it runs in the sandbox).

pub mod canonical;
mod shell;

pub use canonical::{CanonicalExec, Redirect, Separator, SimpleCommand, canonicalise_exec};
pub use shell::RedirectOp;

use canonical::command_name;
use config::{AgentConfig, ExecMode, HostPattern, ToolName};
use serde::Serialize;

/// An action a tool call would perform, with the arguments that matter for policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    ReadFile {
        path: String,
    },
    WriteFile {
        path: String,
    },
    EditFile {
        path: String,
    },
    ListDir {
        path: String,
    },
    Search {
        path: String,
    },
    Exec {
        command: String,
    },
    HttpFetch {
        method: String,
        url: String,
        host: String,
        port: u16,
    },
}

impl Action {
    /// The tool that performs this action.
    pub fn tool(&self) -> ToolName {
        match self {
            Action::ReadFile { .. } => ToolName::ReadFile,
            Action::WriteFile { .. } => ToolName::WriteFile,
            Action::EditFile { .. } => ToolName::EditFile,
            Action::ListDir { .. } => ToolName::ListDir,
            Action::Search { .. } => ToolName::Search,
            Action::Exec { .. } => ToolName::Exec,
            Action::HttpFetch { .. } => ToolName::HttpFetch,
        }
    }

    /// The action as shown to humans and used as the key of session grants, e.g.
    /// `exec: rm -rf build` or `http_fetch: GET https://example.org/`. Two actions with
    /// the same canonical text are the same action.
    pub fn canonical(&self) -> String {
        match self {
            Action::ReadFile { path }
            | Action::WriteFile { path }
            | Action::EditFile { path }
            | Action::ListDir { path }
            | Action::Search { path } => format!("{}: {path}", self.tool()),
            Action::Exec { command } => format!("exec: {}", canonicalise_exec(command).text()),
            Action::HttpFetch { method, url, .. } => format!("http_fetch: {method} {url}"),
        }
    }
}

/// The outcome of [`Policy::decide`]. Every variant carries the reason, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    Allow { reason: String },
    Deny { reason: String },
    Ask { reason: String },
}

impl Decision {
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason } | Decision::Deny { reason } | Decision::Ask { reason } => {
                reason
            }
        }
    }

    /// `allow`, `deny` or `ask`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Ask { .. } => "ask",
        }
    }
}

fn allow(reason: impl Into<String>) -> Decision {
    Decision::Allow {
        reason: reason.into(),
    }
}
fn deny(reason: impl Into<String>) -> Decision {
    Decision::Deny {
        reason: reason.into(),
    }
}
fn ask(reason: impl Into<String>) -> Decision {
    Decision::Ask {
        reason: reason.into(),
    }
}

/// One agent's policy, built from its config.
#[derive(Debug, Clone)]
pub struct Policy {
    agent: String,
    tools: Vec<ToolName>,
    exec_mode: ExecMode,
    exec_allow: Vec<String>,
    egress_allow: Vec<HostPattern>,
}

/// Directories the sandbox's fixed `PATH` searches; `/usr/bin/ls` counts as `ls`.
const SYSTEM_BIN_DIRS: [&str; 3] = ["/usr/local/bin/", "/usr/bin/", "/bin/"];

impl Policy {
    pub fn new(agent: &str, cfg: &AgentConfig) -> Policy {
        Policy {
            agent: agent.to_string(),
            tools: cfg.tools.clone(),
            exec_mode: cfg.exec.mode,
            exec_allow: cfg.exec.allow.clone(),
            egress_allow: cfg.egress.allow.clone(),
        }
    }

    /// Decide one action.
    pub fn decide(&self, action: &Action) -> Decision {
        let tool = action.tool();
        if !self.tools.contains(&tool) {
            return deny(format!(
                "tool `{tool}` is not in agents.{}.tools",
                self.agent
            ));
        }
        match action {
            Action::ReadFile { .. }
            | Action::WriteFile { .. }
            | Action::EditFile { .. }
            | Action::ListDir { .. }
            | Action::Search { .. } => allow(format!(
                "`{tool}` is in agents.{}.tools; workspace file tools are confined to the workspace",
                self.agent
            )),
            Action::Exec { command } => self.decide_exec(command),
            Action::HttpFetch {
                url, host, port, ..
            } => self.decide_fetch(url, host, *port),
        }
    }

    fn decide_exec(&self, command: &str) -> Decision {
        match self.exec_mode {
            ExecMode::Deny => deny(format!(
                "exec.mode = \"deny\" for agent `{}`: commands never run",
                self.agent
            )),
            ExecMode::Ask => ask(format!(
                "exec.mode = \"ask\" for agent `{}`: every command needs approval",
                self.agent
            )),
            ExecMode::Auto => allow(format!(
                "exec.mode = \"auto\" for agent `{}` (sandboxed)",
                self.agent
            )),
            ExecMode::Allowlist => self.decide_allowlist(command),
        }
    }

    /// `exec.mode = "allowlist"`: allow only a cleanly canonicalised command whose every
    /// program is listed, with no risky environment, expansion or redirection.
    fn decide_allowlist(&self, command: &str) -> Decision {
        let c = canonicalise_exec(command);
        match self.allowlist_offence(&c) {
            Some(why) => ask(format!("exec.mode = \"allowlist\": {why}, needs approval")),
            None => {
                let mut programs: Vec<&str> = Vec::new();
                for p in c.commands.iter().filter_map(|c| c.argv.first()) {
                    if !programs.contains(&p.as_str()) {
                        programs.push(p);
                    }
                }
                allow(format!(
                    "exec.mode = \"allowlist\": every program ({}) matches exec.allow",
                    programs.join(", ")
                ))
            }
        }
    }

    /// The first part of `c` that keeps it from running without approval.
    fn allowlist_offence(&self, c: &CanonicalExec) -> Option<String> {
        if let Some(why) = &c.unparsable {
            return Some(format!("unparsable: {why}"));
        }
        if let Some(why) = &c.arbitrary_code {
            return Some(why.clone());
        }
        if c.commands.iter().all(|c| c.argv.is_empty()) {
            return Some("empty command".into());
        }
        for cmd in &c.commands {
            if let Some(e) = cmd.env.iter().find(|e| !harmless_env(e)) {
                return Some(format!("changes the environment (`{e}`)"));
            }
            if let Some(program) = cmd.argv.first() {
                if !IMPLICIT.contains(&program.as_str())
                    && !self.exec_allow.iter().any(|a| program_matches(a, program))
                {
                    return Some(format!("`{program}` is not in exec.allow"));
                }
                if cmd.open_ended {
                    return Some(format!(
                        "`xargs` runs `{program}` with arguments read from stdin"
                    ));
                }
                if matches!(
                    command_name(program),
                    Some("cd" | "pushd" | "popd" | "chdir")
                ) {
                    let target = cmd.argv.get(1).map_or("~", String::as_str);
                    if !inside_workspace(target) {
                        return Some(format!("`{program} {target}` leaves the workspace"));
                    }
                }
            }
            if let Some(e) = cmd.expansions.first() {
                return Some(format!("argument depends on the variable expansion `{e}`"));
            }
            // Reads outside the workspace ask too: the issue only requires writes, but
            // `< /etc/x` is rare in ordinary work and keeps the old attack tests meaningful.
            for r in cmd.redirects.iter().filter(|r| {
                !matches!(
                    r.op,
                    RedirectOp::Heredoc | RedirectOp::DupRead | RedirectOp::DupWrite
                )
            }) {
                if r.target_expands {
                    return Some(format!(
                        "redirection target `{}` has an expansion",
                        r.target
                    ));
                }
                if !inside_workspace(&r.target) && !DEVICES.contains(&r.target.as_str()) {
                    let verb = if r.op.writes() { "writes" } else { "reads" };
                    return Some(format!(
                        "redirection `{}{}` {verb} outside the workspace",
                        r.op.as_str(),
                        r.target
                    ));
                }
            }
        }
        None
    }

    fn decide_fetch(&self, url: &str, host: &str, port: u16) -> Decision {
        let scheme_ok = url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
            || url
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
        if !scheme_ok {
            return deny(format!(
                "http_fetch allows only http:// and https:// URLs, not `{url}`"
            ));
        }
        if host.is_empty() {
            return deny(format!("http_fetch: URL `{url}` has no host"));
        }
        match self.egress_allow.iter().find(|p| p.matches(host, port)) {
            Some(p) => allow(format!("egress.allow entry `{p}` matches {host}:{port}")),
            None if self.egress_allow.is_empty() => deny(format!(
                "egress.allow does not match {host}:{port} (agents.{}.egress.allow is empty: no network)",
                self.agent
            )),
            None => deny(format!(
                "egress.allow does not match {host}:{port} (agents.{}.egress.allow)",
                self.agent
            )),
        }
    }
}

/// Where the agent's workspace is mounted inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Device files a redirection may use although they are outside the workspace.
const DEVICES: [&str; 4] = ["/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"];

/// Builtins that need no `exec.allow` entry: no-ops, and `set`, which the canonicaliser
/// only lets through with harmless options (`-e -u -x -o pipefail` …).
const IMPLICIT: [&str; 4] = ["set", "true", "false", ":"];

/// Environment variables a command may set without approval: they change output format
/// or verbosity, never which code runs or where files go. `PATH`, `LD_*`, `GIT_*`,
/// `BASH_ENV`, `PYTHON*` and everything else ask.
const HARMLESS_ENV: [&str; 11] = [
    "RUST_BACKTRACE",
    "RUST_LOG",
    "CARGO_TERM_COLOR",
    "NO_COLOR",
    "CLICOLOR",
    "FORCE_COLOR",
    "CI",
    "LANG",
    "LC_ALL",
    "TZ",
    "TERM",
];

fn harmless_env(change: &str) -> bool {
    change
        .split_once('=')
        .is_some_and(|(name, _)| HARMLESS_ENV.contains(&name))
}

/// A path (relative to the workspace, or absolute) that stays beneath the workspace:
/// no `..` component, no `~`, absolute only under [`WORKSPACE_MOUNT`].
fn inside_workspace(path: &str) -> bool {
    if path.starts_with('~') || path == "-" || path.split('/').any(|c| c == "..") {
        return false;
    }
    if path.starts_with('/') {
        return path == WORKSPACE_MOUNT
            || path
                .strip_prefix(WORKSPACE_MOUNT)
                .is_some_and(|r| r.starts_with('/'));
    }
    true
}

/// An `exec.allow` entry with a `/` must equal the program exactly; one without must be
/// the program itself (found through the sandbox's fixed `PATH`) or that name in one of
/// the system bin directories. `./ls` or `/workspace/ls` never match `ls`.
fn program_matches(entry: &str, program: &str) -> bool {
    if entry.contains('/') {
        return entry == program;
    }
    if entry.is_empty() {
        return false;
    }
    program == entry
        || SYSTEM_BIN_DIRS
            .iter()
            .any(|d| program.strip_prefix(d) == Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::{EgressConfig, ExecConfig};

    fn agent(mode: ExecMode, allow_: &[&str], egress: &[&str]) -> Policy {
        let cfg = AgentConfig {
            workspace: "/tmp/ws".into(),
            tools: ToolName::ALL.to_vec(),
            max_steps: 10,
            instructions: None,
            exec: ExecConfig {
                mode,
                allow: allow_.iter().map(|s| s.to_string()).collect(),
                ..ExecConfig::default()
            },
            egress: EgressConfig {
                allow: egress
                    .iter()
                    .map(|p| HostPattern::parse(p).unwrap())
                    .collect(),
                ..EgressConfig::default()
            },
            labels: Default::default(),
            subagents: Default::default(),
        };
        Policy::new("dev", &cfg)
    }

    fn exec(c: &str) -> Action {
        Action::Exec { command: c.into() }
    }

    fn fetch(url: &str, host: &str, port: u16) -> Action {
        Action::HttpFetch {
            method: "GET".into(),
            url: url.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn tool_not_given_is_denied() {
        let mut p = agent(ExecMode::Auto, &[], &[]);
        p.tools = vec![ToolName::ReadFile];
        let d = p.decide(&exec("ls"));
        assert_eq!(d.kind(), "deny");
        assert!(d.reason().contains("agents.dev.tools"), "{d:?}");
        assert_eq!(
            p.decide(&Action::ReadFile { path: "a".into() }).kind(),
            "allow"
        );
        assert_eq!(
            p.decide(&Action::WriteFile { path: "a".into() }).kind(),
            "deny"
        );
    }

    #[test]
    fn exec_modes() {
        let d = agent(ExecMode::Deny, &["ls"], &[]).decide(&exec("ls"));
        assert!(matches!(d, Decision::Deny { .. }));
        assert!(d.reason().contains("exec.mode = \"deny\""));
        let d = agent(ExecMode::Ask, &["ls"], &[]).decide(&exec("ls"));
        assert!(matches!(d, Decision::Ask { .. }));
        assert!(d.reason().contains("exec.mode = \"ask\""));
        let d = agent(ExecMode::Auto, &[], &[]).decide(&exec("rm -rf / ; curl x | sh"));
        assert!(matches!(d, Decision::Allow { .. }));
        assert!(d.reason().contains("exec.mode = \"auto\""));
    }

    #[test]
    fn allowlist_allows_simple_listed_commands() {
        let p = agent(
            ExecMode::Allowlist,
            &["ls", "/opt/tool/bin/x", "cargo"],
            &[],
        );
        for c in [
            "ls",
            "ls -la src/",
            "  ls\t-l ",
            "/bin/ls -l",
            "/usr/bin/ls",
            "cargo test -p a=b",
        ] {
            let d = p.decide(&exec(c));
            assert!(matches!(d, Decision::Allow { .. }), "{c}: {d:?}");
            assert!(d.reason().contains("exec.allow"), "{c}");
        }
        assert_eq!(p.decide(&exec("/opt/tool/bin/x --y")).kind(), "allow");
    }

    #[test]
    fn allowlist_never_allows_compound_or_tricky_commands() {
        let p = agent(ExecMode::Allowlist, &["ls"], &[]);
        // Spellings the canonicaliser now understands: one listed program, nothing else.
        for c in [
            "ls 'x;rm'",
            "ls \\; rm",
            "(ls)",
            "{ ls; }",
            "ls # comment",
            "ls && ls -la",
        ] {
            let d = p.decide(&exec(c));
            assert!(matches!(d, Decision::Allow { .. }), "{c:?}: {d:?}");
        }
        let attacks = [
            "ls; rm -rf /",
            "ls && curl x",
            "ls || curl x",
            "ls | sh",
            "ls & curl x",
            "$(rm x)",
            "ls $(rm x)",
            "ls `rm x`",
            "ls > /etc/passwd",
            "ls < /etc/shadow",
            "ls\nrm -rf /",
            "ls\rrm -rf /",
            "ls \"$HOME\"",
            "ls ${IFS}",
            "LD_PRELOAD=/workspace/x.so ls",
            "PATH=/workspace ls",
            "./ls",
            "/workspace/ls",
            "/tmp/ls",
            "lsx",
            "ls\u{a0}; rm",
            "",
            "   ",
            "rm -rf /",
        ];
        for c in attacks {
            let d = p.decide(&exec(c));
            assert!(
                matches!(d, Decision::Ask { .. }),
                "{c:?} must ask, got {d:?}"
            );
            assert!(d.reason().contains("exec.mode = \"allowlist\""), "{c:?}");
        }
    }

    #[test]
    fn fetch_only_to_allowed_hosts() {
        let p = agent(
            ExecMode::Ask,
            &[],
            &["api.github.com", "*.pypi.org", "127.0.0.1:8080"],
        );
        assert_eq!(
            p.decide(&fetch("https://api.github.com/x", "api.github.com", 443))
                .kind(),
            "allow"
        );
        assert_eq!(
            p.decide(&fetch("https://files.pypi.org/", "files.pypi.org", 443))
                .kind(),
            "allow"
        );
        assert_eq!(
            p.decide(&fetch("http://127.0.0.1:8080/", "127.0.0.1", 8080))
                .kind(),
            "allow"
        );
        let d = p.decide(&fetch("https://evil.com/", "evil.com", 443));
        assert!(matches!(d, Decision::Deny { .. }));
        assert!(
            d.reason()
                .contains("egress.allow does not match evil.com:443"),
            "{d:?}"
        );
        // Right host, wrong port; bare domain under a wildcard; lookalike.
        assert_eq!(
            p.decide(&fetch(
                "https://api.github.com:8443/",
                "api.github.com",
                8443
            ))
            .kind(),
            "deny"
        );
        assert_eq!(
            p.decide(&fetch("https://pypi.org/", "pypi.org", 443))
                .kind(),
            "deny"
        );
        assert_eq!(
            p.decide(&fetch("http://127.0.0.1:8081/", "127.0.0.1", 8081))
                .kind(),
            "deny"
        );
        // Non-http schemes are denied even for an allowed host.
        let d = p.decide(&fetch("file:///etc/passwd", "api.github.com", 443));
        assert_eq!(d.kind(), "deny");
    }

    #[test]
    fn fetch_with_empty_allowlist_is_denied_not_asked() {
        let p = agent(ExecMode::Ask, &[], &[]);
        let d = p.decide(&fetch("https://example.org/", "example.org", 443));
        assert!(matches!(d, Decision::Deny { .. }));
        assert!(d.reason().contains("is empty"));
    }

    #[test]
    fn canonical_text() {
        assert_eq!(exec("rm -rf build").canonical(), "exec: rm -rf build");
        assert_eq!(
            Action::EditFile { path: "a/b".into() }.canonical(),
            "edit_file: a/b"
        );
        assert_eq!(
            fetch("https://example.org/", "example.org", 443).canonical(),
            "http_fetch: GET https://example.org/"
        );
        // Equivalent spellings are the same action; a different argv is not.
        assert_eq!(exec("ls").canonical(), exec("ls ").canonical());
        assert_eq!(exec("env ls -la").canonical(), exec("ls  -la").canonical());
        assert_ne!(exec("ls -la").canonical(), exec("ls -l").canonical());
        assert_eq!(
            exec("make test; curl evil").canonical(),
            "exec: make test; curl evil"
        );
    }
}
