//! Session state: what the runtime keeps per session between tool calls — the sandbox
//! instance, the secret placeholders and egress policy, the boundary marker around
//! untrusted content, the information-flow state ([`SessionFlow`]) and which session
//! spawned which.
//!
//! Guarantees: each piece is made on first use and is the session's own (placeholders
//! and the boundary nonce are new for every session and never shared); a session's label
//! only gets worse until [`Runtime::end_session`], which drops all of it (and tears the
//! sandbox instance down). A poisoned lock is recovered, never a reason to panic.

use std::sync::Arc;

use guard::Labels;

use crate::Runtime;
use crate::flow::SessionFlow;
use crate::hygiene;
use crate::pipeline::{Failure, Stage};
use crate::tools::exec::SharedInstance;

#[derive(Default)]
pub(crate) struct SessionState {
    instance: SharedInstance,
    /// Placeholders and the egress policy of the session, made on first use.
    egress: Option<SessionEgress>,
    /// The marker around the session's untrusted content, made on first use.
    boundary: Option<hygiene::Boundary>,
    /// The session's label and contacted hosts, made on first use.
    flow: Option<Arc<SessionFlow>>,
    /// The overlay directories of the session's commands, made on first use.
    overlay: Option<Arc<crate::checkpoints::OverlayDirs>>,
    /// Files that existed before the session which it deleted or overwrote after
    /// reading untrusted content, not yet reported at the end of a turn.
    overwritten: Vec<String>,
}

/// What a session's traffic is decided with: its own placeholders (unguessable, new
/// for every session) and the policy the proxy applies to its connections.
#[derive(Clone)]
pub(crate) struct SessionEgress {
    pub(crate) env: Vec<(String, String)>,
    /// The policy of the runtime's own requests (`http_fetch`) in this session.
    pub(crate) policy: Arc<egress::EgressPolicy>,
    /// The session's placeholders, for the policy of each sandbox it starts (every
    /// sandbox gets its own connection and byte budget).
    pub(crate) placeholders: Arc<secrets::PlaceholderSet>,
}

impl Runtime {
    fn with_session<R>(&self, session: &str, f: impl FnOnce(&mut SessionState) -> R) -> R {
        let mut sessions = match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(sessions.entry(session.to_string()).or_default())
    }

    /// The session's overlay directories, made with `make` on first use.
    pub(crate) fn session_overlay(
        &self,
        session: &str,
        make: impl FnOnce() -> Result<crate::checkpoints::OverlayDirs, String>,
    ) -> Result<Arc<crate::checkpoints::OverlayDirs>, String> {
        if let Some(o) = self.with_session(session, |s| s.overlay.clone()) {
            return Ok(o);
        }
        let made = Arc::new(make()?);
        Ok(self.with_session(session, |s| s.overlay.get_or_insert(made).clone()))
    }

    /// Note paths for the end of the turn ([`Runtime::take_change_notice`]).
    pub(crate) fn note_overwritten(&self, session: &str, paths: &[String]) {
        self.with_session(session, |s| {
            for p in paths {
                if !s.overwritten.contains(p) {
                    s.overwritten.push(p.clone());
                }
            }
        });
    }

    pub(crate) fn take_overwritten(&self, session: &str) -> Vec<String> {
        self.with_session(session, |s| std::mem::take(&mut s.overwritten))
    }

    /// The session's placeholders and egress policy, made on first use.
    pub(crate) fn session_egress(&self, session: &str) -> Result<SessionEgress, Failure> {
        if let Some(e) = self.with_session(session, |s| s.egress.clone()) {
            return Ok(e);
        }
        let mut set = secrets::PlaceholderSet::new();
        for s in &self.secrets {
            set.insert(&s.name, s.value.clone(), s.hosts.clone())
                .map_err(|e| {
                    Failure::new(Stage::Secrets, format!("cannot make placeholders: {e}"))
                })?;
        }
        let made = SessionEgress {
            env: set.env(),
            policy: Arc::new(self.egress_policy(session, &set)),
            placeholders: Arc::new(set),
        };
        Ok(self.with_session(session, |s| s.egress.get_or_insert(made).clone()))
    }

    /// The session's placeholders `(NAME, placeholder)` if it made them already (a
    /// session that never used egress has none to show or name).
    pub(crate) fn made_placeholders(&self, session: &str) -> Vec<(String, String)> {
        self.with_session(session, |s| s.egress.clone())
            .map(|e| e.env)
            .unwrap_or_default()
    }

    /// The session's placeholders as `(NAME, placeholder)`: what tools and the model use
    /// in place of the agent's secrets. The egress proxy swaps a placeholder for the real
    /// value only in requests to the hosts that secret is bound to.
    pub fn placeholders(&self, session: &str) -> Result<Vec<(String, String)>, String> {
        self.session_egress(session)
            .map(|e| e.env)
            .map_err(|f| f.message)
    }

    pub(crate) fn egress_policy(
        &self,
        session: &str,
        placeholders: &secrets::PlaceholderSet,
    ) -> egress::EgressPolicy {
        egress::EgressPolicy::new(&self.agent, session, self.agent_cfg.egress.allow.clone())
            .with_credentials(placeholders)
            .with_watched_secrets(self.watched_secrets.clone())
    }

    /// The session's information-flow state, made (trusted) on first use.
    pub(crate) fn flow(&self, session: &str) -> Arc<SessionFlow> {
        self.with_session(session, |s| {
            s.flow
                .get_or_insert_with(|| {
                    Arc::new(SessionFlow::new(
                        session,
                        self.ext.depth,
                        self.policy.clone(),
                        self.secret_hosts.clone(),
                        Labels::trusted(),
                        self.audit.clone(),
                    ))
                })
                .clone()
        })
    }

    /// The session's label: the join of everything in its context.
    pub fn session_labels(&self, session: &str) -> Labels {
        self.flow(session).labels()
    }

    /// Add `labels` to the session's label: for context the agent puts there itself (a
    /// resumed session's stored items, memory, a sub-agent's answer).
    pub fn join_labels(&self, session: &str, labels: &Labels) {
        self.flow(session).join(labels);
    }

    /// The session's sandbox instance (shared by its calls when `sandbox.scope = task`).
    pub(crate) fn instance(&self, session: &str) -> SharedInstance {
        self.with_session(session, |s| s.instance.clone())
    }

    /// The marker around the session's untrusted content, made on first use.
    pub(crate) fn boundary(
        &self,
        session: &str,
    ) -> Result<hygiene::Boundary, hygiene::HygieneError> {
        self.with_session(session, |s| match &s.boundary {
            Some(b) => Ok(b.clone()),
            None => hygiene::Boundary::new().map(|b| s.boundary.insert(b).clone()),
        })
    }

    /// Record that sub-agent session `child` was spawned by `parent` (so that what it
    /// asks a human is shown where the human is looking: the top-level session).
    pub fn link_child(&self, child: &str, parent: &str) {
        self.lineage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(child.to_string(), parent.to_string());
    }

    /// The top-level session `session` descends from (itself if it has no parent).
    pub fn root_session(&self, session: &str) -> String {
        let lineage = self
            .lineage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut s = session;
        // Depth is bounded by subagents.max_depth; the bound only guards a cycle.
        for _ in 0..64 {
            match lineage.get(s) {
                Some(p) => s = p,
                None => break,
            }
        }
        s.to_string()
    }

    /// Drop the session's sandbox instance, placeholders, label and lineage.
    pub fn end_session(&self, session: &str) {
        self.lineage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(session);
        let removed = match self.sessions.lock() {
            Ok(mut s) => s.remove(session),
            Err(poisoned) => poisoned.into_inner().remove(session),
        };
        // Dropping the instance tears the sandbox down; do it outside the lock.
        drop(removed);
        self.ext.forget(session);
    }
}
