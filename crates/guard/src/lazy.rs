//! An agent's policy compiled when it is first needed. Compiling (Cedar: parse the
//! schema, compile and validate every policy) is most of what building a runtime costs,
//! and a process that decides nothing — `cordon sandbox exec` of a command that connects
//! nowhere — should not pay for it.
//!
//! Guarantees: the policy is compiled at most once, at the first [`LazyPolicy::evaluate`]
//! or [`LazyPolicy::get`] (or never); if compiling fails or panics, it is not tried
//! again and every decision is a deny whose reason names the compile error (rule
//! [`LazyPolicy::COMPILE_ERROR_RULE`]) and every path counts as private: fail closed,
//! never an empty or default policy. Not guaranteed: that a broken policy is reported
//! before the first decision; a command that must report it at start compiles it there
//! (`LazyPolicy::compiled`).

use std::sync::{Mutex, OnceLock};

use crate::Decision;
use crate::action::Action;
use crate::policy::{Policy, SessionView, Verdict};

type Compile = Box<dyn FnOnce() -> Result<Policy, String> + Send>;

/// A [`Policy`] compiled on first use, shared by everything that decides for one agent.
pub struct LazyPolicy {
    agent: String,
    /// The compiled policy, or why it could not be compiled.
    cell: OnceLock<Result<Policy, String>>,
    /// Taken by the one compile (a second attempt after a panic finds it gone).
    compile: Mutex<Option<Compile>>,
}

impl LazyPolicy {
    /// The rule id of every decision made while the policy cannot be compiled.
    pub const COMPILE_ERROR_RULE: &'static str = "policy_error";

    /// Agent `agent`'s policy, compiled by `compile` when first needed. Its error is the
    /// whole user-facing message (where the policy is and what is wrong).
    pub fn new(
        agent: &str,
        compile: impl FnOnce() -> Result<Policy, String> + Send + 'static,
    ) -> LazyPolicy {
        LazyPolicy {
            agent: agent.to_string(),
            cell: OnceLock::new(),
            compile: Mutex::new(Some(Box::new(compile))),
        }
    }

    /// A policy compiled already.
    pub fn compiled(policy: Policy) -> LazyPolicy {
        LazyPolicy {
            agent: policy.agent().to_string(),
            cell: OnceLock::from(Ok(policy)),
            compile: Mutex::new(None),
        }
    }

    /// Whether it has been compiled (successfully or not); compiles nothing.
    pub fn is_compiled(&self) -> bool {
        self.cell.get().is_some()
    }

    /// The policy, compiled now if it was not yet; or why it cannot be compiled.
    pub fn get(&self) -> Result<&Policy, &str> {
        self.cell
            .get_or_init(|| {
                let compile = self
                    .compile
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                match compile {
                    Some(compile) => compile(),
                    // Only after a compile that panicked (the cell stayed empty).
                    None => Err("compiling it failed earlier in this process".into()),
                }
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// [`Policy::evaluate`]; a deny naming the error when the policy cannot be compiled.
    pub fn evaluate(&self, action: &Action, session: &SessionView) -> Verdict {
        match self.get() {
            Ok(policy) => policy.evaluate(action, session),
            Err(e) => Verdict {
                decision: Decision::Deny {
                    reason: format!(
                        "the policy of agent `{}` cannot be compiled, so nothing is \
                         allowed: {e}",
                        self.agent
                    ),
                },
                rule: Self::COMPILE_ERROR_RULE.into(),
                matched: Vec::new(),
                labels: session.labels.clone(),
            },
        }
    }

    /// [`Policy::is_private`]; every path when the policy cannot be compiled.
    pub fn is_private(&self, path: &str) -> bool {
        self.get().map_or(true, |p| p.is_private(path))
    }
}

impl std::fmt::Debug for LazyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyPolicy")
            .field("agent", &self.agent)
            .field("compiled", &self.cell.get().map(Result::is_ok))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn decide(p: &LazyPolicy, action: &Action) -> Verdict {
        let labels = Labels::trusted();
        let view = SessionView {
            session: "test",
            labels: &labels,
            contacted: &BTreeSet::new(),
            depth: 0,
            secret_hosts: &BTreeMap::new(),
            skill: None,
            checkpointed: false,
            labelled_code: &[],
        };
        p.evaluate(action, &view)
    }

    fn read() -> Action {
        Action::ReadFile {
            path: "notes.txt".into(),
        }
    }

    #[test]
    fn nothing_is_compiled_until_the_first_decision_and_then_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let p = LazyPolicy::new("dev", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(crate::tests::agent_with(
                config::ExecMode::Allowlist,
                &["ls"],
                &[],
                config::ToolName::ALL.to_vec(),
            ))
        });
        assert!(!p.is_compiled());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let first = decide(&p, &read());
        let second = decide(&p, &read());
        assert!(p.is_compiled());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(first, second);
        assert_ne!(first.rule, LazyPolicy::COMPILE_ERROR_RULE);
    }

    #[test]
    fn a_policy_that_does_not_compile_denies_everything_naming_the_error() {
        let p = LazyPolicy::new("dev", || {
            Err("policies/extra.cedar:3:7: unexpected token `permt`".into())
        });
        let actions = [
            read(),
            Action::Exec {
                command: "true".into(),
            },
            Action::Connect {
                host: "example.com".into(),
                port: 443,
                scheme: "https".into(),
                method: "GET".into(),
                url: "https://example.com/".into(),
            },
        ];
        for action in &actions {
            let v = decide(&p, action);
            let Decision::Deny { reason } = &v.decision else {
                panic!("{action:?} was not denied: {v:?}");
            };
            assert!(reason.contains("policies/extra.cedar:3:7"), "{reason}");
            assert!(reason.contains("agent `dev`"), "{reason}");
            assert_eq!(v.rule, LazyPolicy::COMPILE_ERROR_RULE);
            assert!(v.matched.is_empty());
        }
        assert!(p.is_private("anything.txt"));
        assert_eq!(
            p.get().unwrap_err(),
            "policies/extra.cedar:3:7: unexpected token `permt`"
        );
    }

    #[test]
    fn a_compile_that_panicked_is_not_retried_and_denies() {
        let p = LazyPolicy::new("dev", || panic!("compiler bug"));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.get().is_ok()));
        assert!(caught.is_err());
        let v = decide(&p, &read());
        assert!(matches!(v.decision, Decision::Deny { .. }), "{v:?}");
        assert_eq!(v.rule, LazyPolicy::COMPILE_ERROR_RULE);
    }
}
