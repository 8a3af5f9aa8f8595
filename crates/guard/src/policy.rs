//! The policy engine: Cedar policies compiled from `cordon.toml`, Cordon's built-in label
//! rules and the user's `.cedar` files, evaluated per action with the session's labels.
//!
//! Decision procedure (three effects: `permit`, `forbid`, and `forbid` annotated
//! `@ask("reason")`): any matching plain `forbid` denies (forbid wins); otherwise, with no
//! matching `permit`, the action is denied ("no policy permits …"); otherwise any
//! matching `@ask` forbid asks a human; otherwise it is allowed. A policy that fails to
//! evaluate counts as matching if it is a forbid (fail closed) and as not matching if it
//! is a permit.
//!
//! Guarantees: every policy is validated against the embedded schema in strict mode at
//! load; a bad user file is a [`PolicyError`] naming FILE:LINE:COL, never a panic. Policy
//! ids are unique across all sources. Not guaranteed: anything about actions the runtime
//! does not submit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Authorizer, Context, Effect as CedarEffect, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use config::{AgentConfig, Config, ExecMode, HostPattern, SandboxBackend, Tier, ToolName};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::Decision;
use crate::action::{Action, ConnectParts, normalise_host};
use crate::canonical::canonicalise_exec;
use crate::compile::compile;
use crate::exec_facts::{ExecFacts, in_scratch, offence, workspace_relative};
use crate::labels::{Confidentiality, Labels};

/// The Cedar schema user policies are validated against.
pub const SCHEMA: &str = include_str!("cordon.cedarschema");
/// Cordon's built-in label rules.
pub const BUILTIN: &str = include_str!("builtin.cedar");

/// Origin name of the policies compiled from the config.
pub const ORIGIN_CONFIG: &str = "cordon.toml";
/// Origin name of the built-in rules.
pub const ORIGIN_BUILTIN: &str = "builtin";

/// What the deciding session looks like.
#[derive(Debug, Clone, Copy)]
pub struct SessionView<'a> {
    pub session: &'a str,
    pub labels: &'a Labels,
    /// Lower-case hosts this session already connected to (allowed connections).
    pub contacted: &'a BTreeSet<String>,
    /// 0 for a top-level session, 1 for a child …
    pub depth: u32,
    /// Vault secret name -> bound hosts (for the agent's secrets).
    pub secret_hosts: &'a BTreeMap<String, Vec<HostPattern>>,
    /// The skill whose script is running, for the connections it opens; `None` for
    /// every other decision.
    pub skill: Option<&'a SkillScope>,
    /// The workspace changes of the action decided are journaled and can be undone
    /// exactly (`cordon undo`): a file tool's write, or a command whose sandbox shows
    /// the workspace through an overlay. Cedar context `checkpointed`.
    pub checkpointed: bool,
    /// Workspace files the action would run that a session holding untrusted content
    /// wrote (file provenance, looked up by the runtime with [`crate::FileUses`]); empty
    /// for every action but `exec`.
    pub labelled_code: &'a [String],
}

/// A running skill script's network scope: its name and the egress hosts approved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillScope {
    pub name: String,
    pub egress: Vec<HostPattern>,
}

/// How a policy acts when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Permit,
    Forbid,
    Ask,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
            Effect::Ask => "ask",
        }
    }
}

/// One policy that matched a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedPolicy {
    pub id: String,
    pub effect: Effect,
    /// `cordon.toml`, `builtin`, or the policy file as listed in `[policy] files`.
    pub origin: String,
    pub reason: String,
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// Id of the deciding policy (`taint.connect_new_host`, `exec.allowlist`, …);
    /// `no_permit` when nothing permitted the action.
    pub rule: String,
    /// Every policy that matched, in load order.
    pub matched: Vec<MatchedPolicy>,
    /// The labels it was decided with.
    pub labels: Labels,
}

/// Why policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("no agent `{agent}` in the config (agents: {known})")]
    UnknownAgent { agent: String, known: String },
    #[error(
        "{file}: cannot read policy file: {source} ([policy] files are relative to the \
         directory of cordon.toml)"
    )]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}")]
    Invalid {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("agents.{agent}.labels.private: invalid glob `{pattern}`: {message}")]
    Glob {
        agent: String,
        pattern: String,
        message: String,
    },
    #[error("internal error in Cordon's {what}: {message} (this is a bug; please report it)")]
    Internal { what: String, message: String },
}

#[derive(Debug, Clone)]
struct PolicyInfo {
    id: String,
    effect: Effect,
    origin: String,
    reason: String,
}

/// Entity type names and action uids, parsed once.
#[derive(Debug, Clone)]
struct Names {
    session: EntityTypeName,
    command: EntityTypeName,
    path: EntityTypeName,
    host: EntityTypeName,
    memory: EntityTypeName,
    secret: EntityTypeName,
    skill: EntityTypeName,
    task: EntityTypeName,
    mcp_tool: EntityTypeName,
    conversation: EntityTypeName,
    actions: HashMap<&'static str, EntityUid>,
}

const ACTION_NAMES: [&str; 16] = [
    "read_file",
    "write_file",
    "edit_file",
    "delete_file",
    "list_dir",
    "search",
    "exec",
    "connect",
    "spawn_agent",
    "memory_write",
    "use_secret",
    "install_skill",
    "load_skill",
    "run_skill",
    "mcp_call",
    "send_message",
];

fn internal(what: &str, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Internal {
        what: what.into(),
        message: e.to_string(),
    }
}

impl Names {
    fn new() -> Result<Names, PolicyError> {
        let t = |n: &str| EntityTypeName::from_str(n).map_err(|e| internal("schema names", e));
        let action = t("Action")?;
        let actions = ACTION_NAMES
            .iter()
            .map(|a| {
                (
                    *a,
                    EntityUid::from_type_name_and_id(action.clone(), EntityId::new(a)),
                )
            })
            .collect();
        Ok(Names {
            session: t("Session")?,
            command: t("Command")?,
            path: t("Path")?,
            host: t("Host")?,
            memory: t("Memory")?,
            secret: t("Secret")?,
            skill: t("Skill")?,
            task: t("Task")?,
            mcp_tool: t("McpTool")?,
            conversation: t("Conversation")?,
            actions,
        })
    }
}

/// One agent's policy.
#[derive(Debug, Clone)]
pub struct Policy {
    agent: String,
    tools: Vec<ToolName>,
    exec_mode: ExecMode,
    exec_allow: Vec<String>,
    egress_allow: Vec<HostPattern>,
    egress_secrets: Vec<String>,
    sandbox_network: bool,
    scratch: Vec<String>,
    private: GlobSet,
    max_depth: u32,
    tier: &'static str,
    /// Per action name, every policy whose scope can match it, as a `permit` with its
    /// real id, so one authorization call reports all that match; `infos` says what each
    /// really is.
    eval: HashMap<&'static str, PolicySet>,
    infos: HashMap<String, usize>,
    order: Vec<PolicyInfo>,
    texts: Vec<(String, String)>,
    agent_entity: Entity,
    agent_uid: EntityUid,
    names: Names,
    authorizer: Authorizer,
    /// The entity sets of the last few sessions (agent + session entity), keyed by what
    /// the session entity holds: rebuilt only when a session's labels change.
    entities: Arc<Mutex<EntityCache>>,
}

/// Byte offset -> 1-based line and column (in characters).
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, col)
}

/// A cedar diagnostic as a FILE:LINE:COL error.
fn diag_error(file: &str, text: &str, d: &dyn miette::Diagnostic, msg: String) -> PolicyError {
    let offset = d
        .labels()
        .and_then(|mut l| l.next())
        .map_or(0, |l| l.offset());
    let (line, col) = line_col(text, offset);
    let mut message = msg;
    if let Some(help) = d.help() {
        message = format!("{message} (help: {help})");
    }
    PolicyError::Invalid {
        file: file.to_string(),
        line,
        col,
        message,
    }
}

fn build_globs(agent: &str, patterns: &[String]) -> Result<GlobSet, PolicyError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_start_matches("./");
        let mut add = |pat: &str| -> Result<(), PolicyError> {
            let g = GlobBuilder::new(pat)
                .literal_separator(true)
                .build()
                .map_err(|e| PolicyError::Glob {
                    agent: agent.into(),
                    pattern: p.into(),
                    message: e.to_string(),
                })?;
            b.add(g);
            Ok(())
        };
        add(p)?;
        let dir = p.trim_end_matches('/');
        add(&format!("{dir}/**"))?;
        if !p.contains('/') {
            // Like .gitignore: a pattern without `/` matches the name at any depth.
            add(&format!("**/{p}"))?;
            add(&format!("**/{p}/**"))?;
        }
    }
    b.build().map_err(|e| PolicyError::Glob {
        agent: agent.into(),
        pattern: patterns.join(", "),
        message: e.to_string(),
    })
}

pub(crate) struct Source {
    origin: String,
    text: String,
}

impl Policy {
    /// Load agent `agent`'s policy: compile its settings, add the built-in rules and the
    /// `[policy] files` (relative to `config_dir`), validate everything.
    pub fn load(config: &Config, config_dir: &Path, agent: &str) -> Result<Policy, PolicyError> {
        let cfg = config
            .agents
            .get(agent)
            .ok_or_else(|| PolicyError::UnknownAgent {
                agent: agent.into(),
                known: config.agents.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let mut user = Vec::new();
        for f in &config.policy.files {
            let origin = f.display().to_string();
            let text = std::fs::read_to_string(config_dir.join(f)).map_err(|source| {
                PolicyError::Read {
                    file: origin.clone(),
                    source,
                }
            })?;
            user.push(Source { origin, text });
        }
        let tier = match config.tier {
            Tier::Personal => "personal",
            Tier::Team => "team",
            Tier::Enterprise => "enterprise",
        };
        let network =
            !cfg.egress.allow.is_empty() || config.sandbox.backend == SandboxBackend::None;
        let mcp: Vec<String> = config
            .mcp
            .servers
            .iter()
            .filter(|(_, s)| s.agents.is_empty() || s.agents.iter().any(|a| a == agent))
            .map(|(name, _)| name.clone())
            .collect();
        Policy::build(agent, cfg, tier, network, &mcp, user)
    }

    pub(crate) fn build(
        agent: &str,
        cfg: &AgentConfig,
        tier: &'static str,
        sandbox_network: bool,
        mcp_servers: &[String],
        user: Vec<Source>,
    ) -> Result<Policy, PolicyError> {
        let (schema, _) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| internal("schema", e))?;
        let validator = Validator::new(schema);
        let mut sources = vec![
            Source {
                origin: ORIGIN_CONFIG.into(),
                text: compile(agent, cfg, mcp_servers),
            },
            Source {
                origin: ORIGIN_BUILTIN.into(),
                text: BUILTIN.into(),
            },
        ];
        sources.extend(user);

        let mut eval: HashMap<&'static str, PolicySet> = ACTION_NAMES
            .iter()
            .map(|a| (*a, PolicySet::new()))
            .collect();
        let mut infos = HashMap::new();
        let mut order: Vec<PolicyInfo> = Vec::new();
        for src in &sources {
            let file = src.origin.as_str();
            let parsed = PolicySet::from_str(&src.text)
                .map_err(|e| diag_error(file, &src.text, &e, e.to_string()))?;
            if parsed.templates().next().is_some() {
                return Err(PolicyError::Invalid {
                    file: file.into(),
                    line: 1,
                    col: 1,
                    message: "templates (policies with ?principal/?resource slots) are not \
                              supported; write static policies"
                        .into(),
                });
            }
            let result = validator.validate(&parsed, ValidationMode::Strict);
            if let Some(e) = result.validation_errors().next() {
                // Name the policy by its @id, not Cedar's internal `policyN`.
                let cedar_id = e.policy_id();
                let mut msg = e.to_string();
                if let Some(id) = parsed.annotation(cedar_id, "id") {
                    msg = msg.replace(&format!("`{cedar_id}`"), &format!("`{id}`"));
                }
                return Err(diag_error(file, &src.text, e, msg));
            }
            let mut policies: Vec<_> = parsed.policies().collect();
            // Cedar names them policy0, policy1 … in source order.
            policies.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<usize>()
                    .unwrap_or(usize::MAX)
            });
            for (n, p) in policies.into_iter().enumerate() {
                let id = match p.annotation("id") {
                    Some(id) => id.to_string(),
                    None => format!("{file}#{}", n + 1),
                };
                let at = |needle: &str| {
                    let (line, col) = src
                        .text
                        .find(needle)
                        .map_or((1, 1), |o| line_col(&src.text, o));
                    (line, col)
                };
                if infos.contains_key(&id) {
                    let (line, col) = at(&format!("\"{id}\""));
                    return Err(PolicyError::Invalid {
                        file: file.into(),
                        line,
                        col,
                        message: format!(
                            "policy id `{id}` is already used (ids must be unique across \
                             cordon.toml, the built-in rules and all policy files)"
                        ),
                    });
                }
                let ask = p.annotation("ask");
                let effect = match (p.effect(), ask) {
                    (CedarEffect::Permit, None) => Effect::Permit,
                    (CedarEffect::Forbid, None) => Effect::Forbid,
                    (CedarEffect::Forbid, Some(_)) => Effect::Ask,
                    (CedarEffect::Permit, Some(_)) => {
                        let (line, col) = at("@ask");
                        return Err(PolicyError::Invalid {
                            file: file.into(),
                            line,
                            col,
                            message: format!(
                                "policy `{id}`: @ask is only meaningful on a `forbid` (a \
                                 matching @ask forbid asks a human); remove it or make the \
                                 policy a forbid"
                            ),
                        });
                    }
                };
                let reason = ask
                    .or_else(|| p.annotation("reason"))
                    .map_or_else(|| format!("policy `{id}` ({file})"), str::to_string);
                let mut json = p.to_json().map_err(|e| internal("policy conversion", e))?;
                if let Some(e) = json.get_mut("effect") {
                    *e = serde_json::Value::String("permit".into());
                }
                let as_permit = cedar_policy::Policy::from_json(Some(PolicyId::new(&id)), json)
                    .map_err(|e| internal("policy conversion", e))?;
                // Cordon's schema has no action groups, so `action in [..]` is membership.
                let applies = |name: &str| match p.action_constraint() {
                    cedar_policy::ActionConstraint::Eq(uid) => uid.id().unescaped() == name,
                    cedar_policy::ActionConstraint::In(uids) => {
                        uids.iter().any(|u| u.id().unescaped() == name)
                    }
                    _ => true,
                };
                for (name, set) in eval.iter_mut() {
                    if applies(name) {
                        set.add(as_permit.clone())
                            .map_err(|e| internal("policy set", e))?;
                    }
                }
                infos.insert(id.clone(), order.len());
                order.push(PolicyInfo {
                    id,
                    effect,
                    origin: file.into(),
                    reason,
                });
            }
        }

        let names = Names::new()?;
        let agent_uid = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("Agent").map_err(|e| internal("schema names", e))?,
            EntityId::new(agent),
        );
        let private = build_globs(agent, &cfg.labels.private)?;
        Ok(Policy {
            agent: agent.into(),
            tools: cfg.tools.clone(),
            exec_mode: cfg.exec.mode,
            exec_allow: cfg.exec.allow.clone(),
            egress_allow: cfg.egress.allow.clone(),
            egress_secrets: cfg.egress.secrets.clone(),
            sandbox_network,
            scratch: cfg.labels.scratch.clone(),
            private,
            max_depth: cfg.subagents.max_depth,
            tier,
            eval,
            infos,
            order,
            texts: sources.into_iter().map(|s| (s.origin, s.text)).collect(),
            agent_entity: Entity::new_no_attrs(agent_uid.clone(), HashSet::new()),
            agent_uid,
            names,
            authorizer: Authorizer::new(),
            entities: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The agent this policy is for.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Every policy source, in evaluation order: (`cordon.toml` | `builtin` | file, text).
    pub fn policy_text(&self) -> Vec<(String, String)> {
        self.texts.clone()
    }

    /// Decide one action for one session (the contract's `decide(&Action, &SessionView)`).
    pub fn evaluate(&self, action: &Action, session: &SessionView) -> Verdict {
        let verdict = |decision, rule: &str, matched| Verdict {
            decision,
            rule: rule.into(),
            matched,
            labels: session.labels.clone(),
        };
        let facts = match self.request(action, session) {
            Ok(f) => f,
            Err(why) => {
                return verdict(
                    Decision::Deny {
                        reason: format!("cannot evaluate the policy: {why}"),
                    },
                    "evaluation_error",
                    Vec::new(),
                );
            }
        };
        let Prepared {
            request,
            entities,
            exec,
        } = facts;
        let Some(set) = self.eval.get(action.name()) else {
            return verdict(
                Decision::Deny {
                    reason: format!("no policies for action `{}`", action.name()),
                },
                "evaluation_error",
                Vec::new(),
            );
        };
        let response = self.authorizer.is_authorized(&request, set, &entities);
        let mut hit: Vec<usize> = response
            .diagnostics()
            .reason()
            .filter_map(|id| self.infos.get(id.to_string().as_str()).copied())
            .collect();
        let mut errors: Vec<String> = Vec::new();
        for e in response.diagnostics().errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            let id = e.policy_id().to_string();
            if let Some(&i) = self.infos.get(id.as_str()) {
                // Fail closed: a forbid that cannot be evaluated counts as matching.
                if self.order[i].effect != Effect::Permit {
                    hit.push(i);
                    errors.push(format!("policy `{id}` failed to evaluate: {e}"));
                }
            }
        }
        hit.sort_unstable();
        hit.dedup();
        let matched: Vec<MatchedPolicy> = hit
            .iter()
            .map(|&i| {
                let p = &self.order[i];
                MatchedPolicy {
                    id: p.id.clone(),
                    effect: p.effect,
                    origin: p.origin.clone(),
                    reason: p.reason.clone(),
                }
            })
            .collect();
        let first = |effect: Effect| matched.iter().find(|m| m.effect == effect);
        let (decision, rule) = if let Some(m) = first(Effect::Forbid) {
            let reason = self.detail(m, action, session, exec.as_ref(), &errors);
            (Decision::Deny { reason }, m.id.clone())
        } else if first(Effect::Permit).is_none() {
            let reason = self.no_permit(action);
            (Decision::Deny { reason }, "no_permit".to_string())
        } else if let Some(m) = first(Effect::Ask) {
            let reason = self.detail(m, action, session, exec.as_ref(), &errors);
            (Decision::Ask { reason }, m.id.clone())
        } else if response.decision() != cedar_policy::Decision::Allow {
            // Cedar itself denies although no known forbid matched (e.g. a policy id
            // missing from our index): never turn that into an allow.
            let reason = format!(
                "Cedar denies {} but no known forbid matched: refused (report this)",
                action.name()
            );
            (Decision::Deny { reason }, "evaluation_error".to_string())
        } else {
            let m = first(Effect::Permit).map_or_else(|| matched[0].clone(), Clone::clone);
            let reason = self.detail(&m, action, session, exec.as_ref(), &errors);
            (Decision::Allow { reason }, m.id)
        };
        verdict(decision, &rule, matched)
    }

    /// The reason of the deciding policy, with detail computed here where it helps.
    fn detail(
        &self,
        m: &MatchedPolicy,
        action: &Action,
        s: &SessionView,
        exec: Option<&(crate::CanonicalExec, ExecFacts)>,
        errors: &[String],
    ) -> String {
        let mut reason = m.reason.clone();
        match m.id.as_str() {
            "exec.allowlist.ask" => {
                if let Some((c, _)) = exec {
                    let why = offence(c, Some(&self.exec_allow))
                        .unwrap_or_else(|| "not every program matches exec.allow".into());
                    reason = format!("exec.mode = \"allowlist\": {why}, needs approval");
                }
            }
            "exec.allowlist" => {
                if let Some((_, f)) = exec {
                    reason = format!(
                        "exec.mode = \"allowlist\": every program ({}) matches exec.allow",
                        f.programs.join(", ")
                    );
                }
            }
            "egress.allow" => {
                let c = ConnectParts::of(action);
                if let Some(p) = self
                    .egress_allow
                    .iter()
                    .find(|p| p.matches(&c.host, c.port))
                {
                    reason = format!("egress.allow entry `{p}` matches {}:{}", c.host, c.port);
                }
            }
            "label.data_unbound" => {
                let c = ConnectParts::of(action);
                reason = format!(
                    "{reason}: {}:{} (session label {})",
                    c.host, c.port, s.labels
                );
            }
            "taint.run_labelled_file" => {
                reason = format!(
                    "{reason}: {} (see `cordon files labels`; `cordon files trust PATH` after \
                     reviewing it)",
                    s.labelled_code.join(", ")
                );
            }
            id if id.starts_with("taint.") && !s.labels.untrusted_sources.is_empty() => {
                reason = format!(
                    "{reason} (untrusted sources: {})",
                    s.labels.untrusted_sources.join(", ")
                );
            }
            _ => {}
        }
        if !errors.is_empty() {
            reason = format!("{reason}; {}", errors.join("; "));
        }
        reason
    }

    fn no_permit(&self, action: &Action) -> String {
        let hint = match action {
            Action::Connect { .. } => {
                let c = ConnectParts::of(action);
                if c.scheme != "http" && c.scheme != "https" && !c.method.is_empty() {
                    format!(
                        "http_fetch allows only http:// and https:// URLs, not `{}`",
                        c.url
                    )
                } else if c.host.is_empty() {
                    format!("`{}` has no host", c.url)
                } else if self.egress_allow.is_empty() {
                    format!(
                        "egress.allow does not match {}:{} (agents.{}.egress.allow is empty: \
                         no network)",
                        c.host, c.port, self.agent
                    )
                } else {
                    format!(
                        "egress.allow does not match {}:{} (agents.{}.egress.allow)",
                        c.host, c.port, self.agent
                    )
                }
            }
            Action::UseSecret { name, .. } => format!(
                "secret `{name}` is not in agents.{}.egress.secrets ({})",
                self.agent,
                self.egress_secrets.join(", ")
            ),
            Action::InstallSkill { .. } => {
                "installing skills needs a permit policy in a [policy] file".into()
            }
            _ => match action.tool() {
                Some(t) if !self.tools.contains(&t) => {
                    format!("tool `{t}` is not in agents.{}.tools", self.agent)
                }
                _ => format!("no permit policy matches `{}`", action.name()),
            },
        };
        format!("no policy permits {}: {hint}", action.name())
    }

    fn request(&self, action: &Action, s: &SessionView) -> Result<Prepared, String> {
        let n = &self.names;
        let string = |v: &str| RestrictedExpression::new_string(v.to_string());
        let boolean = RestrictedExpression::new_bool;
        let long = |v: i64| RestrictedExpression::new_long(v);
        let mut exec = None;
        let (res_type, res_id, ctx): (&EntityTypeName, String, Vec<(&str, RestrictedExpression)>) =
            match action {
                Action::ReadFile { path }
                | Action::WriteFile { path }
                | Action::EditFile { path }
                | Action::DeleteFile { path }
                | Action::ListDir { path }
                | Action::Search { path } => {
                    let private = self.is_private(path);
                    (
                        &n.path,
                        path.clone(),
                        vec![
                            ("path", string(path)),
                            ("in_scratch", boolean(in_scratch(path, &self.scratch))),
                            ("private", boolean(private)),
                            ("checkpointed", boolean(s.checkpointed)),
                        ],
                    )
                }
                Action::Exec { command } => {
                    let c = canonicalise_exec(command);
                    let f = ExecFacts::of(&c, self.sandbox_network, &self.scratch);
                    let text = c.text();
                    let ctx = vec![
                        ("command", string(&text)),
                        (
                            "programs",
                            RestrictedExpression::new_set(f.programs.iter().map(|p| string(p))),
                        ),
                        ("clean", boolean(f.clean)),
                        ("arbitrary_code", boolean(f.arbitrary_code)),
                        ("network", boolean(f.network)),
                        ("writes_outside_scratch", boolean(f.writes_outside_scratch)),
                        ("checkpointed", boolean(s.checkpointed)),
                        ("runs_labelled_file", boolean(!s.labelled_code.is_empty())),
                    ];
                    exec = Some((c, f));
                    (&n.command, text, ctx)
                }
                Action::Connect { .. } => {
                    let c = ConnectParts::of(action);
                    let bound = self.data_bound(s, &c.host, c.port);
                    let ctx = vec![
                        ("host", string(&c.host)),
                        ("port", long(i64::from(c.port))),
                        ("scheme", string(&c.scheme)),
                        ("method", string(c.method)),
                        ("url", string(c.url)),
                        ("new_host", boolean(!s.contacted.contains(&c.host))),
                        ("data_bound", boolean(bound)),
                        ("skill", string(s.skill.map_or("", |k| k.name.as_str()))),
                        (
                            "skill_declared",
                            boolean(s.skill.is_some_and(|k| {
                                k.egress.iter().any(|p| p.matches(&c.host, c.port))
                            })),
                        ),
                        (
                            "via",
                            string(if c.method.is_empty() {
                                "exec"
                            } else {
                                "http_fetch"
                            }),
                        ),
                    ];
                    (&n.host, c.host.clone(), ctx)
                }
                Action::SpawnAgent {
                    tools,
                    max_steps,
                    task_sha256,
                } => {
                    let narrows = tools
                        .iter()
                        .all(|t| ToolName::parse(t).is_some_and(|t| self.tools.contains(&t)));
                    let ctx = vec![
                        (
                            "tools",
                            RestrictedExpression::new_set(tools.iter().map(|t| string(t))),
                        ),
                        ("narrows", boolean(narrows)),
                        ("depth", long(i64::from(s.depth) + 1)),
                        ("max_depth", long(i64::from(self.max_depth))),
                        ("max_steps", long(i64::from(*max_steps))),
                    ];
                    (&n.task, task_sha256.clone(), ctx)
                }
                Action::MemoryWrite { file } => {
                    (&n.memory, file.clone(), vec![("file", string(file))])
                }
                Action::UseSecret { name, host } => {
                    let host = normalise_host(host);
                    let bound = s.secret_hosts.get(name).is_some_and(|ps| {
                        ps.iter().any(|p| p.matches(&host, p.port().unwrap_or(443)))
                    });
                    let ctx = vec![
                        ("name", string(name)),
                        ("host", string(&host)),
                        ("bound", boolean(bound)),
                    ];
                    (&n.secret, name.clone(), ctx)
                }
                Action::InstallSkill { name, sha256 } | Action::LoadSkill { name, sha256 } => (
                    &n.skill,
                    name.clone(),
                    vec![("name", string(name)), ("sha256", string(sha256))],
                ),
                Action::McpCall {
                    server,
                    tool,
                    arguments,
                    network,
                } => {
                    // Private data goes nowhere and secret data only to bound hosts: to
                    // a server that can reach the network, neither (a server's traffic
                    // is not tied to one host the way a request is).
                    let bound = s.labels.confidentiality == Confidentiality::Public || !network;
                    (
                        &n.mcp_tool,
                        format!("{server}__{tool}"),
                        vec![
                            ("server", string(server)),
                            ("tool", string(tool)),
                            ("arguments", string(arguments)),
                            ("network", boolean(*network)),
                            ("data_bound", boolean(bound)),
                        ],
                    )
                }
                Action::SendMessage { to, host } => {
                    let host = normalise_host(host);
                    // An unknown host (empty) is bound to no secret: only public data.
                    let bound = self.data_bound(s, &host, 443);
                    let channel = to.split_once(':').map_or("", |(c, _)| c);
                    (
                        &n.conversation,
                        to.clone(),
                        vec![
                            ("to", string(to)),
                            ("channel", string(channel)),
                            ("host", string(&host)),
                            ("data_bound", boolean(bound)),
                        ],
                    )
                }
                Action::RunSkill {
                    name,
                    sha256,
                    command,
                    network,
                    writes,
                } => (
                    &n.skill,
                    name.clone(),
                    vec![
                        ("name", string(name)),
                        ("sha256", string(sha256)),
                        ("command", string(&canonicalise_exec(command).text())),
                        ("network", boolean(*network)),
                        ("writes", boolean(*writes)),
                    ],
                ),
            };
        let action_uid = n
            .actions
            .get(action.name())
            .ok_or_else(|| format!("unknown action `{}`", action.name()))?
            .clone();
        let resource = EntityUid::from_type_name_and_id(res_type.clone(), EntityId::new(res_id));
        let principal =
            EntityUid::from_type_name_and_id(n.session.clone(), EntityId::new(s.session));
        let context = Context::from_pairs(ctx.into_iter().map(|(k, v)| (k.to_string(), v)))
            .map_err(|e| e.to_string())?;
        let request = Request::new(principal.clone(), action_uid, resource, context, None)
            .map_err(|e| e.to_string())?;
        let key = EntityKey {
            session: s.session.to_string(),
            integrity: s.labels.integrity.as_str(),
            confidentiality: s.labels.confidentiality.as_str(),
            depth: s.depth,
        };
        let entities = self.entities(key, principal)?;
        Ok(Prepared {
            request,
            entities,
            exec,
        })
    }

    /// The entities for a session (cached: a session decides many actions with the same
    /// labels).
    fn entities(&self, key: EntityKey, principal: EntityUid) -> Result<Arc<Entities>, String> {
        // A poisoned lock only means another thread panicked mid-update; the cache is
        // still a valid list.
        let mut cache = self.entities.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, e)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(e.clone());
        }
        let string = |v: &str| RestrictedExpression::new_string(v.to_string());
        let attrs = HashMap::from([
            ("integrity".to_string(), string(key.integrity)),
            ("confidentiality".to_string(), string(key.confidentiality)),
            ("tier".to_string(), string(self.tier)),
            (
                "depth".to_string(),
                RestrictedExpression::new_long(i64::from(key.depth)),
            ),
        ]);
        let session = Entity::new(principal, attrs, HashSet::from([self.agent_uid.clone()]))
            .map_err(|e| e.to_string())?;
        let entities = Arc::new(
            Entities::from_entities([self.agent_entity.clone(), session], None)
                .map_err(|e| e.to_string())?,
        );
        if cache.len() >= ENTITY_CACHE {
            cache.remove(0);
        }
        cache.push((key, entities.clone()));
        Ok(entities)
    }

    /// Whether the session's data may be sent to `host:port`: public data anywhere;
    /// secret data only to a host bound to every secret in the labels; private data
    /// nowhere.
    fn data_bound(&self, s: &SessionView, host: &str, port: u16) -> bool {
        match s.labels.confidentiality {
            Confidentiality::Public => true,
            Confidentiality::Private => false,
            Confidentiality::Secret => {
                !s.labels.secrets.is_empty()
                    && s.labels.secrets.iter().all(|name| {
                        s.secret_hosts
                            .get(name)
                            .is_some_and(|ps| ps.iter().any(|p| p.matches(host, port)))
                    })
            }
        }
    }

    /// Whether reading `path` (workspace-relative or under `/workspace`) labels the
    /// session private: it matches `agents.NAME.labels.private`.
    pub fn is_private(&self, path: &str) -> bool {
        workspace_relative(path).is_some_and(|r| self.private.is_match(r))
    }

    /// What the policies see of an exec command; `network` says whether its output must
    /// be labelled untrusted (a network-enabled command in a sandbox with network).
    pub fn exec_facts(&self, command: &str) -> ExecFacts {
        ExecFacts::of(
            &canonicalise_exec(command),
            self.sandbox_network,
            &self.scratch,
        )
    }

    /// The exec mode this policy was compiled from.
    pub fn exec_mode(&self) -> ExecMode {
        self.exec_mode
    }
}

/// Recent sessions' entity sets, oldest first.
type EntityCache = Vec<(EntityKey, Arc<Entities>)>;

/// How many sessions' entity sets are kept.
const ENTITY_CACHE: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityKey {
    session: String,
    integrity: &'static str,
    confidentiality: &'static str,
    depth: u32,
}

struct Prepared {
    request: Request,
    entities: Arc<Entities>,
    exec: Option<(crate::CanonicalExec, ExecFacts)>,
}
