//! Policy decisions: may this agent perform this action, must a human be asked first, or
//! is it refused?
//!
//! The runtime turns each tool call into a typed [`Action`] and asks
//! [`Policy::evaluate`] with a [`SessionView`] (the session's [`Labels`], the hosts it
//! has contacted, its depth). The policy is Cedar: the agent's `cordon.toml` settings are
//! compiled into Cedar policies, Cordon's built-in label rules (`builtin.cedar`) and the
//! user's `[policy] files` are added, all validated against `cordon.cedarschema` at
//! load. The answer is a [`Verdict`]: a [`Decision`] whose reason names the deciding
//! policy (`exec.mode = "ask"`, `egress.allow does not match evil.com:443`,
//! `taint.connect_new_host`), the rule id, every matched policy and the labels used.
//!
//! Guarantees:
//! - a tool not in `agents.NAME.tools` is always denied (a compiled `forbid`);
//! - `exec.mode = "deny"` never runs a command; `"ask"` always asks; `"allowlist"` runs
//!   without asking only a command that [`canonicalise_exec`] understands completely
//!   (launchers such as `env`, `sh -c`, `timeout`, `time` unwrapped; no unparsable part,
//!   no inline/arbitrary code, no privilege escalation, no `xargs`-supplied arguments,
//!   no variable expansion in an argument, no environment change outside a short
//!   harmless list) in which EVERY program is listed in `exec.allow` and no redirection
//!   or `cd` reaches outside the workspace; everything else asks, and the reason names
//!   the first offending part;
//! - the canonical text and fingerprint of an action (what approvals and grants bind
//!   to) come from the canonical form, so `env bash -lc 'make test'` and `make test` are
//!   one action and a changed argv, path, host or port is a new one;
//! - connects (`http_fetch`) are permitted only to `http`/`https` URLs whose host and
//!   port match `egress.allow`; anything else is denied (not asked);
//! - while the session is untrusted-tainted, the built-in rules ask before a connect to
//!   a host not yet contacted, exec of arbitrary code or a network-enabled command,
//!   writes outside the scratch area, memory writes, sub-agents and secret use; data
//!   labelled private or secret never goes to a host not bound to it (deny);
//! - whatever the session's label, an `exec` that runs a workspace file a session holding
//!   untrusted content wrote ([`SessionView::labelled_code`], found with [`FileUses`])
//!   asks (`taint.run_labelled_file`);
//! - a `forbid` always wins over a `permit`.
//!
//! Not guaranteed here: path confinement of file tools (the runtime's workspace layer
//! resolves every path beneath the root and refuses escapes), what an allowed program
//! does with its arguments (it runs in the sandbox), and that the runtime labels context
//! correctly.

mod action;
mod action_text;
pub mod canonical;
mod compile;
mod exec_facts;
mod file_uses;
pub mod labels;
mod lazy;
mod policy;
pub mod policy_test;
mod shell;

pub use action::{Action, canonical_json};
pub use action_text::ActionText;
pub use canonical::{CanonicalExec, Redirect, Separator, SimpleCommand, canonicalise_exec};
pub use exec_facts::{ExecFacts, NETWORK_CLIENTS, WORKSPACE_MOUNT, program_name};
pub use file_uses::{FileSet, FileUses};
pub use labels::{Confidentiality, Integrity, Labels};
pub use lazy::LazyPolicy;
pub use policy::{
    BUILTIN, Effect, MatchedPolicy, ORIGIN_BUILTIN, ORIGIN_CONFIG, Policy, PolicyError, SCHEMA,
    SessionView, SkillScope, Verdict,
};
pub use shell::RedirectOp;

use serde::Serialize;

/// The outcome of a decision. Every variant carries the reason, naming the rule.
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

#[cfg(test)]
mod tests {
    use super::*;
    use config::{AgentConfig, EgressConfig, ExecConfig, ExecMode, HostPattern, ToolName};

    /// The decision for a trusted session that has contacted nothing.
    pub(crate) trait DecideTrusted {
        fn decide(&self, action: &Action) -> Decision;
    }

    impl DecideTrusted for Policy {
        fn decide(&self, action: &Action) -> Decision {
            let labels = Labels::trusted();
            let none = std::collections::BTreeSet::new();
            let view = SessionView {
                session: "test",
                labels: &labels,
                contacted: &none,
                depth: 0,
                secret_hosts: &std::collections::BTreeMap::new(),
                skill: None,
                checkpointed: false,
                labelled_code: &[],
            };
            self.evaluate(action, &view).decision
        }
    }

    /// The agent's policy as `cordon.toml` alone builds it (tier personal, no user files).
    pub(crate) fn policy_for(cfg: &AgentConfig) -> Policy {
        Policy::build(
            "dev",
            cfg,
            "personal",
            !cfg.egress.allow.is_empty(),
            &[],
            Vec::new(),
        )
        .expect("the test policy builds")
    }

    fn agent(mode: ExecMode, allow_: &[&str], egress: &[&str]) -> Policy {
        agent_with(mode, allow_, egress, ToolName::ALL.to_vec())
    }

    pub(crate) fn agent_with(
        mode: ExecMode,
        allow_: &[&str],
        egress: &[&str],
        tools: Vec<ToolName>,
    ) -> Policy {
        let cfg = AgentConfig {
            workspace: "/tmp/ws".into(),
            tools,
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
            send_message: Default::default(),
        };
        policy_for(&cfg)
    }

    fn exec(c: &str) -> Action {
        Action::Exec { command: c.into() }
    }

    /// An http_fetch of `url`; `host` and `port` are given apart so a test can make
    /// them disagree with the URL.
    fn fetch(url: &str, host: &str, port: u16) -> Action {
        Action::Connect {
            host: host.into(),
            port,
            scheme: url.split("://").next().unwrap_or_default().into(),
            method: "GET".into(),
            url: url.into(),
        }
    }

    #[test]
    fn tool_not_given_is_denied() {
        let p = agent_with(ExecMode::Auto, &[], &[], vec![ToolName::ReadFile]);
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
            "connect: GET https://example.org/"
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

#[cfg(test)]
mod escaping {
    use super::tests::{DecideTrusted, policy_for};
    use super::*;
    use config::{AgentConfig, ExecConfig, ExecMode, ToolName};

    /// Config strings become Cedar string literals: quotes, backslashes, non-ASCII and
    /// would-be Cedar syntax stay data.
    #[test]
    fn config_strings_cannot_change_policy_structure() {
        let allow = ["it's", "lś", "a\"b", "x\\y", "\" || true || \""];
        let cfg = AgentConfig {
            workspace: "/tmp/ws".into(),
            tools: ToolName::ALL.to_vec(),
            max_steps: 10,
            instructions: None,
            exec: ExecConfig {
                mode: ExecMode::Allowlist,
                allow: allow.iter().map(|s| s.to_string()).collect(),
                ..ExecConfig::default()
            },
            egress: Default::default(),
            labels: Default::default(),
            subagents: Default::default(),
            send_message: Default::default(),
        };
        let p = policy_for(&cfg);
        for (cmd, kind) in [
            ("\"it's\" -x", "allow"),
            ("lś", "allow"),
            ("'a\"b'", "allow"),
            ("'x\\y'", "allow"),
            ("rm -rf /", "ask"),
            ("true", "allow"),
        ] {
            let d = p.decide(&Action::Exec {
                command: cmd.into(),
            });
            assert_eq!(d.kind(), kind, "{cmd}: {d:?}");
        }
    }
}
