//! `load_skill`: bring an enabled skill's instructions into the context.
//!
//! Guarantees: only a skill pinned in `skills.lock` for this agent can be named; its
//! installed tree is verified against the pin right before its `SKILL.md` is read (a
//! drifted tree refuses the load and raises an `alert`); the instructions enter the
//! context with provenance `skill:NAME@HASH`. They are trusted: a human reviewed the
//! scan and approved exactly this tree. `{baseDir}` (OpenClaw's placeholder for the
//! skill's folder) reads `/skills/NAME`, where commands find its files.

use std::sync::Arc;

use async_trait::async_trait;
use guard::{Action, Integrity};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Executed, Tool, ToolOutput};
use crate::authorise::Authorization;
use crate::pipeline::{Cx, Failure, Stage};
use crate::skills::{self, InstalledSkill};

pub(crate) struct LoadSkill;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadSkillArgs {
    /// The skill's name, as listed in the system prompt
    pub name: String,
}

#[async_trait]
impl Tool for LoadSkill {
    type Args = LoadSkillArgs;
    type Plan = Arc<InstalledSkill>;

    fn name(&self) -> &str {
        "load_skill"
    }

    fn description(&self) -> &str {
        "Load the instructions of one of your installed skills (listed in the system prompt) before doing a job it covers. Its files are at /skills/NAME, read-only."
    }

    /// Offered when at least one skill is enabled for the agent.
    fn offered(&self, rt: &crate::Runtime) -> bool {
        !rt.skills.is_empty()
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: LoadSkillArgs) -> Result<Self::Plan, Failure> {
        cx.rt
            .skills
            .iter()
            .find(|s| s.name == args.name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = cx.rt.skills.iter().map(|s| s.name.as_str()).collect();
                Failure::new(
                    Stage::Arguments,
                    format!(
                        "no skill `{}` is enabled for this agent; enabled: {}",
                        args.name,
                        known.join(", ")
                    ),
                )
            })
    }

    fn action(&self, _cx: &Cx<'_>, skill: &Self::Plan) -> Action {
        Action::LoadSkill {
            name: skill.name.clone(),
            sha256: skill.sha256.clone(),
        }
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        skill: &Self::Plan,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let tree = verified(cx, skill)?;
        let manifest = tree
            .get(::skills::manifest::FILE)
            .and_then(|f| std::str::from_utf8(&f.contents).ok())
            .ok_or_else(|| Failure::new(Stage::Skill, "the skill's SKILL.md is unreadable"))
            .and_then(|text| {
                ::skills::manifest::parse(::skills::manifest::FILE, text)
                    .map_err(|e| Failure::new(Stage::Skill, e.to_string()))
            })?;
        let mount = skill.mount();
        let body = manifest.body.replace("{baseDir}", &mount);
        let files: Vec<&str> = tree.files().iter().map(|f| f.path.as_str()).collect();
        let caps = &skill.capabilities;
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut env: Vec<String> = caps.secrets.clone();
        env.extend(skill.env.keys().cloned());
        let content = format!(
            "Skill `{}` (sha256 {}), files at {mount} (read-only): {}\n\
             Its scripts run with: hosts {}; secrets as environment variables {}; programs \
             {}; workspace {}.\n\n{body}",
            skill.name,
            skill.sha256,
            files.join(", "),
            list(&caps.egress),
            list(&env),
            list(&caps.bins),
            caps.workspace.as_str(),
        );
        skills::used(&cx.rt.audit, cx.session, skill, &cx.call.id, None);
        Ok(Executed {
            output: ToolOutput::ok(content),
            source: format!("skill:{}@{}", skill.name, skill.sha256),
            integrity: Integrity::Trusted,
            private: false,
            carries: None,
        })
    }
}

/// The skill's tree, verified against its pin; a drift is refused and alerted.
pub(crate) fn verified(cx: &Cx<'_>, skill: &InstalledSkill) -> Result<::skills::Tree, Failure> {
    skill.verify().map_err(|d| {
        skills::record_drift(&cx.rt.audit, Some(cx.session), &skill.name, &d);
        Failure::new(
            Stage::Skill,
            format!(
                "skill `{}` refused: {}; reinstall it with `cordon skills update`",
                skill.name,
                skills::drift_reason(&d)
            ),
        )
    })
}
