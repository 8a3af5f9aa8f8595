//! Authorisation: the guard's decision on a call's action, made durable, then a human's
//! answer when the decision is `ask`.
//!
//! Guarantees: every action is decided with the session's current label and contacts
//! ([`crate::flow::SessionFlow::decide`]), or refused by the runtime's own limit for it
//! ([`Refusal`]), and the decision is recorded (`Log::record`) before anything executes;
//! if the log cannot record it, the action does not run. `Ask` never runs without a
//! human's `Once`/`Session`/`Agent` answer or a stored grant for the exact same
//! canonical action (noted as `grant_id`/`session_grant` on the decision record;
//! `approval` records are written only when a human was actually asked), except for a
//! tool that turns an `ask` into a request reviewed later ([`OnAsk::Review`]), which no
//! grant covers. Each agent secret a call names is a `use_secret` action decided on its
//! own. A denial for a label or secret rule raises a `data_exfiltration_blocked` alert.
//! A redirect hop is decided like a connection but never put to a human.

use guard::{Action, Decision, Verdict};
use serde_json::Value;

use crate::Runtime;
use crate::approval::{ApprovalAnswer, ApprovalKind, ApprovalRequest};
use crate::pipeline::{Cx, Failure, Stage};
use crate::record::{self, DecisionNote};
use crate::tools::{OnAsk, Sends};

/// What is decided for one call: its action, a runtime limit that refuses it, what an
/// `ask` means for it, and what it sends where.
pub(crate) struct Check<'p> {
    pub(crate) action: Action,
    pub(crate) refusal: Option<Refusal>,
    pub(crate) on_ask: OnAsk,
    pub(crate) sends: Option<Sends<'p>>,
    /// The call's workspace changes are journaled (see [`crate::tools::Tool::checkpointed`]).
    pub(crate) checkpointed: bool,
    /// Labelled workspace files the action would run (see [`crate::provenance`]).
    pub(crate) labelled_code: Vec<String>,
}

/// A runtime limit (not a policy) that refuses a call: recorded as a `deny` decision
/// with this rule, like any other.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) rule: &'static str,
    pub(crate) reason: String,
}

/// Who let an action run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authorized {
    /// The policy allowed it.
    Policy,
    /// A human approved it (now, or by a grant).
    Human,
    /// The policy asked; the tool files its effect for a human to review later.
    Review,
}

/// The outcome of authorising a call: who let it run and the verdict on its action.
pub(crate) struct Authorization {
    pub(crate) by: Authorized,
    pub(crate) verdict: Verdict,
}

impl Runtime {
    /// Decide (and where asked, approve) a call's action and each secret it names.
    pub(crate) async fn authorise(
        &self,
        cx: &Cx<'_>,
        check: Check<'_>,
    ) -> Result<Authorization, Failure> {
        let args_json: Value = serde_json::from_str(&cx.call.arguments).unwrap_or(Value::Null);
        let auth = self
            .authorise_action(
                cx,
                (&check.action, &check.labelled_code),
                check.refusal,
                check.on_ask,
                check.checkpointed,
                &args_json,
            )
            .await?;
        // Each of the agent's secrets the call names is a `use_secret` action of its own
        // (tainted sessions ask; a host the secret is not bound to is denied).
        for use_secret in self.secret_uses(cx.session, check.sends.as_ref()) {
            self.authorise_action(
                cx,
                (&use_secret, &[]),
                None,
                OnAsk::Human,
                false,
                &args_json,
            )
            .await?;
        }
        if let Action::Connect { host, .. } = &check.action {
            // Allowed or approved: the host is now one this session contacts.
            self.flow(cx.session).contact(host);
        }
        Ok(auth)
    }

    /// Guard decision (durably audited, with the rule and the session's labels), then
    /// approval when asked.
    async fn authorise_action(
        &self,
        cx: &Cx<'_>,
        (action, labelled_code): (&Action, &[String]),
        refusal: Option<Refusal>,
        on_ask: OnAsk,
        checkpointed: bool,
        args_json: &Value,
    ) -> Result<Authorization, Failure> {
        let (session, call, tool) = (cx.session, cx.call, cx.call.name.as_str());
        let flow = self.flow(session);
        let verdict = match refusal {
            Some(r) => Verdict {
                decision: Decision::Deny { reason: r.reason },
                rule: r.rule.to_string(),
                matched: Vec::new(),
                labels: flow.labels(),
            },
            None => flow.decide_call(action, checkpointed, labelled_code),
        };
        let canonical = self.redact(&action.canonical());
        let asks_human = matches!(verdict.decision, Decision::Ask { .. }) && on_ask == OnAsk::Human;
        // What a human would be asked; also the key of stored grants.
        let req = asks_human.then(|| ApprovalRequest {
            session: session.to_string(),
            agent: self.agent.clone(),
            kind: ApprovalKind::Action,
            tool: tool.to_string(),
            action: canonical.clone(),
            fingerprint: action.fingerprint(),
            argv: simple_argv(action),
            host: action_host(action),
            arguments: args_json.clone(),
            reason: verdict.decision.reason().to_string(),
            rule: verdict.rule.clone(),
            labels: serde_json::to_value(&verdict.labels).unwrap_or(Value::Null),
            untrusted_sources: verdict.labels.untrusted_sources.clone(),
            root_session: Some(self.root_session(session)).filter(|r| r != session),
            ..Default::default()
        });
        // A stored grant (this session's, or the agent's) answers an `Ask` without a new
        // question; the decision record names it. A store error means "no grant": ask.
        let grant = req.as_ref().and_then(|req| {
            self.approvals.find_grant(req).unwrap_or_else(|e| {
                tracing::warn!("grant lookup failed, asking instead: {e}");
                None
            })
        });
        let note = match &grant {
            Some(g) => DecisionNote::Grant {
                id: &g.id,
                session: g.session.is_some(),
            },
            None => DecisionNote::None,
        };
        record::decision(
            &self.audit,
            session,
            call,
            record::Decided {
                canonical: &canonical,
                action,
                verdict: &verdict,
                checkpointed,
            },
            note,
        )
        .map_err(|e| {
            Failure::new(
                Stage::Audit,
                format!("{tool} not run: the audit log cannot record the decision: {e}"),
            )
        })?;
        let reason = match &verdict.decision {
            Decision::Allow { .. } => {
                return Ok(Authorization {
                    by: Authorized::Policy,
                    verdict,
                });
            }
            Decision::Deny { reason } => {
                if is_exfiltration_rule(&verdict.rule) {
                    // Private or secret data headed for an unbound host: an exfiltration
                    // attempt, whoever asked for it.
                    record::exfiltration_blocked(
                        &self.audit,
                        session,
                        Some(&call.id),
                        &canonical,
                        &verdict,
                    );
                }
                // A secondary action (a secret the call names) says which one it was.
                let what = match action {
                    Action::UseSecret { .. } => format!(" ({canonical})"),
                    _ => String::new(),
                };
                return Err(Failure::new(
                    Stage::Decision,
                    format!("{tool} denied: {reason}{what} [rule {}]", verdict.rule),
                ));
            }
            Decision::Ask { reason } => reason.clone(),
        };
        let Some(req) = req else {
            return Ok(Authorization {
                by: Authorized::Review,
                verdict,
            });
        };
        if grant.is_some() {
            return Ok(Authorization {
                by: Authorized::Human,
                verdict,
            });
        }
        let answer = self.approvals.ask(&req, self.approver.as_ref()).await;
        record::approval_decided(
            &self.audit,
            session,
            call,
            &canonical,
            &req.fingerprint,
            &verdict,
            &answer,
        )
        .map_err(|e| Failure::new(Stage::Audit, format!("{tool} not run: {e}")))?;
        match answer {
            ApprovalAnswer::Once | ApprovalAnswer::Session | ApprovalAnswer::Agent { .. } => {
                Ok(Authorization {
                    by: Authorized::Human,
                    verdict,
                })
            }
            ApprovalAnswer::Deny => Err(Failure::new(
                Stage::Approval,
                format!("{tool} denied: the human refused ({reason})"),
            )),
            ApprovalAnswer::Expired => Err(Failure::new(
                Stage::Approval,
                format!(
                    "{tool} denied: approval required ({reason}) and nobody answered \
                     within approvals.timeout_secs; it expired. In a non-interactive \
                     run (`cordon run`) answer from another terminal with `cordon \
                     approvals list` and `cordon approvals approve ID`"
                ),
            )),
            ApprovalAnswer::Unavailable(why) => Err(Failure::new(
                Stage::Approval,
                format!(
                    "{tool} denied: approval required ({reason}) but no human can answer: {why}"
                ),
            )),
        }
    }

    /// Decide one redirect hop of the call's request (a `connect` action); only `Allow`
    /// proceeds (a redirect is not put to a human: the model did not ask for that host).
    pub(crate) fn authorise_redirect(&self, cx: &Cx<'_>, action: &Action) -> Result<(), String> {
        let tool = &cx.call.name;
        let flow = self.flow(cx.session);
        let verdict = flow.decide(action);
        let canonical = self.redact(&action.canonical());
        record::decision(
            &self.audit,
            cx.session,
            cx.call,
            record::Decided {
                canonical: &canonical,
                action,
                verdict: &verdict,
                checkpointed: false,
            },
            DecisionNote::Redirect,
        )
        .map_err(|e| format!("{tool} stopped: the audit log cannot record the redirect: {e}"))?;
        let url = match action {
            Action::Connect { url, .. } => url.as_str(),
            _ => canonical.as_str(),
        };
        match verdict.decision {
            Decision::Allow { .. } => {
                if let Action::Connect { host, .. } = action {
                    flow.contact(host);
                }
                Ok(())
            }
            Decision::Deny { reason } | Decision::Ask { reason } => Err(format!(
                "{tool} redirect to {url} denied: {reason} [rule {}]",
                verdict.rule
            )),
        }
    }

    /// The `use_secret` actions of a call: every agent secret that what it sends names
    /// (`$NAME`, `${NAME}`, or the session's placeholder itself), with the destination
    /// host (empty when unknown until it connects, as for exec).
    fn secret_uses(&self, session: &str, sends: Option<&Sends<'_>>) -> Vec<Action> {
        let Some(sends) = sends else {
            return Vec::new();
        };
        let placeholders = self.made_placeholders(session);
        self.secrets
            .iter()
            .filter(|s| {
                let placeholder = placeholders
                    .iter()
                    .find(|(n, _)| n == &s.name)
                    .map(|(_, p)| p.as_str());
                sends.texts.iter().any(|t| {
                    names_variable(t, &s.name) || placeholder.is_some_and(|p| t.contains(p))
                })
            })
            .map(|s| Action::UseSecret {
                name: s.name.clone(),
                host: sends.host.clone(),
            })
            .collect()
    }
}

/// Rules whose denial means private or secret data was headed where it may not go.
pub(crate) fn is_exfiltration_rule(rule: &str) -> bool {
    rule.starts_with("label.") || rule.starts_with("secret.")
}

/// The argv of an exec that is one plain command (no `;`/pipe/redirection/env change/
/// expansion/xargs/arbitrary code): the only actions an argv-prefix grant may cover.
fn simple_argv(action: &Action) -> Option<Vec<String>> {
    let Action::Exec { command } = action else {
        return None;
    };
    let c = guard::canonicalise_exec(command);
    if c.unparsable.is_some() || c.arbitrary_code.is_some() {
        return None;
    }
    match c.commands.as_slice() {
        [one]
            if !one.argv.is_empty()
                && one.redirects.is_empty()
                && one.env.is_empty()
                && one.expansions.is_empty()
                && !one.open_ended =>
        {
            Some(one.argv.clone())
        }
        _ => None,
    }
}

/// The host of a connection, for host grants.
fn action_host(action: &Action) -> Option<String> {
    match action {
        Action::Connect { host, .. } => Some(host.to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether `text` names the variable `name` as `${name}` or as `$name` not followed by
/// another name character.
fn names_variable(text: &str, name: &str) -> bool {
    if text.contains(&format!("${{{name}}}")) {
        return true;
    }
    let bare = format!("${name}");
    text.match_indices(&bare).any(|(i, _)| {
        !text[i + bare.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}
