//! Information flow of one session: its label (the join of everything its context holds)
//! and the hosts it has contacted, and the gate that applies the same policy to the
//! connections its sandboxed commands open through the egress proxy.
//!
//! Guarantees: a session's label only gets worse (joins) until the session ends; the
//! label used for a decision is a snapshot taken at decision time; every connection a
//! command opens is decided by the agent's [`guard::Policy`] as a `connect` action with
//! the session's current label and contacted hosts, so a command cannot reach a host the
//! same session could not reach with `http_fetch`. An `ask` for a command's connection
//! passes only while a human-approved command of this session runs (the approval of the
//! command covers the hosts it contacts); otherwise it is refused (a proxy connection
//! cannot wait for a human) and the refusal is audited by the proxy with the rule.
//!
//! Labels carried by workspace files between sessions are [`crate::provenance`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use config::HostPattern;
use guard::{Action, Decision, Labels, LazyPolicy, SessionView, SkillScope, Verdict};

/// The label and contacts of one session.
pub(crate) struct SessionFlow {
    session: String,
    depth: u32,
    policy: Arc<LazyPolicy>,
    secret_hosts: Arc<BTreeMap<String, Vec<HostPattern>>>,
    labels: Mutex<Labels>,
    contacted: Mutex<BTreeSet<String>>,
    /// Set while a command a human approved runs.
    approved_exec: AtomicBool,
    /// Connections the proxy allowed for this session (all time).
    connections: AtomicU64,
    /// Where a refused exfiltration attempt raises an alert.
    audit: Arc<audit::Log>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl SessionFlow {
    pub(crate) fn new(
        session: &str,
        depth: u32,
        policy: Arc<LazyPolicy>,
        secret_hosts: Arc<BTreeMap<String, Vec<HostPattern>>>,
        labels: Labels,
        audit: Arc<audit::Log>,
    ) -> SessionFlow {
        SessionFlow {
            session: session.to_string(),
            depth,
            policy,
            secret_hosts,
            labels: Mutex::new(labels),
            contacted: Mutex::new(BTreeSet::new()),
            approved_exec: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            audit,
        }
    }

    pub(crate) fn labels(&self) -> Labels {
        lock(&self.labels).clone()
    }

    /// Add what entered the context.
    pub(crate) fn join(&self, other: &Labels) {
        lock(&self.labels).join(other);
    }

    pub(crate) fn contacted_hosts(&self) -> BTreeSet<String> {
        lock(&self.contacted).clone()
    }

    /// Record `host` as contacted (an allowed or approved connection).
    pub(crate) fn contact(&self, host: &str) {
        lock(&self.contacted).insert(host.to_ascii_lowercase());
    }

    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Decide `action` with the session's current label and contacts.
    pub(crate) fn decide(&self, action: &Action) -> Verdict {
        self.decide_in(action, None, false, &[])
    }

    /// Decide a call's `action`: its workspace changes are journaled when
    /// `checkpointed`; it would run the labelled workspace files `labelled_code`.
    pub(crate) fn decide_call(
        &self,
        action: &Action,
        checkpointed: bool,
        labelled_code: &[String],
    ) -> Verdict {
        self.decide_in(action, None, checkpointed, labelled_code)
    }

    /// Decide `action`, a connection a skill's script opened when `skill` is given.
    fn decide_in(
        &self,
        action: &Action,
        skill: Option<&SkillScope>,
        checkpointed: bool,
        labelled_code: &[String],
    ) -> Verdict {
        let labels = self.labels();
        let contacted = self.contacted_hosts();
        let view = SessionView {
            session: &self.session,
            labels: &labels,
            contacted: &contacted,
            depth: self.depth,
            secret_hosts: &self.secret_hosts,
            skill,
            checkpointed,
            labelled_code,
        };
        self.policy.evaluate(action, &view)
    }

    /// Mark a human-approved command as running until the guard is dropped.
    pub(crate) fn approved_exec(self: &Arc<Self>) -> ApprovedExec {
        self.approved_exec.store(true, Ordering::SeqCst);
        ApprovedExec(self.clone())
    }
}

/// While alive, connections of the session's commands that would ask are let through.
pub(crate) struct ApprovedExec(Arc<SessionFlow>);

impl Drop for ApprovedExec {
    fn drop(&mut self) {
        self.0.approved_exec.store(false, Ordering::SeqCst);
    }
}

/// The gate of a command that runs a skill's script: the session's flow, deciding each
/// connection with the skill's approved hosts (`skill.egress`, `skill.undeclared_host`).
pub(crate) struct SkillFlow {
    pub(crate) flow: Arc<SessionFlow>,
    pub(crate) scope: SkillScope,
}

impl egress::ConnectGate for SkillFlow {
    fn admit(&self, host: &str, port: u16, kind: &str) -> Result<(), String> {
        self.flow.admit_in(host, port, kind, Some(&self.scope))
    }

    fn contacted(&self, host: &str) {
        egress::ConnectGate::contacted(self.flow.as_ref(), host);
    }
}

impl egress::ConnectGate for SessionFlow {
    fn admit(&self, host: &str, port: u16, kind: &str) -> Result<(), String> {
        self.admit_in(host, port, kind, None)
    }

    fn contacted(&self, host: &str) {
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.contact(host);
    }
}

impl SessionFlow {
    fn admit_in(
        &self,
        host: &str,
        port: u16,
        kind: &str,
        skill: Option<&SkillScope>,
    ) -> Result<(), String> {
        let action = Action::Connect {
            host: host.to_string(),
            port,
            // A CONNECT tunnel is decided as https (the allowlist port rules still apply).
            scheme: if kind == "http" { "http" } else { "https" }.to_string(),
            // An empty method marks a connection a command opened (tool `exec`).
            method: String::new(),
            url: String::new(),
        };
        let v = self.decide_in(&action, skill, false, &[]);
        match &v.decision {
            Decision::Allow { .. } => Ok(()),
            Decision::Ask { .. } if self.approved_exec.load(Ordering::SeqCst) => Ok(()),
            Decision::Ask { reason } => Err(format!(
                "{reason} [rule {}; labels {}] — a command's {kind} connection cannot wait for \
                 approval: ask for the command to be approved, or use http_fetch",
                v.rule, v.labels
            )),
            Decision::Deny { reason } => {
                if crate::authorise::is_exfiltration_rule(&v.rule) {
                    // Private or secret data headed for an unbound host from inside a
                    // command: an exfiltration attempt.
                    crate::record::exfiltration_blocked(
                        &self.audit,
                        &self.session,
                        None,
                        &format!("connect: {host}:{port} ({kind}, from a command)"),
                        &v,
                    );
                }
                Err(format!("{reason} [rule {}; labels {}]", v.rule, v.labels))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use egress::ConnectGate;

    use super::*;

    /// A flow of a session that read untrusted content and contacted `docs.test`; both
    /// `docs.test` and `other.test` are allowlisted.
    fn tainted_flow(dir: &std::path::Path) -> Arc<SessionFlow> {
        let toml = format!(
            "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
             model = \"m\"\n[agents.dev]\nworkspace = \"{}\"\n\
             tools = [\"exec\", \"http_fetch\"]\n[agents.dev.egress]\n\
             allow = [\"docs.test\", \"other.test\"]\n",
            dir.display()
        );
        let config = config::load_str(&toml, std::path::Path::new("t.toml")).unwrap();
        let policy = Arc::new(LazyPolicy::compiled(
            guard::Policy::load(&config, dir, "dev").unwrap(),
        ));
        let audit = Arc::new(audit::Log::open(&dir.join("audit")).unwrap());
        let flow = Arc::new(SessionFlow::new(
            "s1",
            0,
            policy,
            Arc::default(),
            Labels::untrusted("tool:http_fetch https://docs.test/"),
            audit,
        ));
        flow.contact("docs.test");
        flow
    }

    #[test]
    fn a_commands_new_host_passes_only_while_an_approved_command_runs() {
        let dir = tempfile::tempdir().unwrap();
        let flow = tainted_flow(dir.path());
        assert!(flow.admit("docs.test", 443, "connect").is_ok(), "contacted");
        let refused = flow.admit("other.test", 443, "connect").unwrap_err();
        assert!(
            refused.contains("taint.connect_new_host") && refused.contains("approved"),
            "{refused}"
        );
        {
            let _approved = flow.approved_exec();
            assert!(flow.admit("other.test", 443, "connect").is_ok());
        }
        // The approval covered that command only: the next one is refused again.
        assert!(flow.admit("other.test", 443, "connect").is_err());
    }
}
