//! Execution plumbing the tools share: running a command in the session's sandbox with
//! the session's egress, and the way out for the runtime's own requests. Tools reach
//! the world only through these (files through [`crate::Workspace`]).
//!
//! Guarantees: a command runs only through the sandbox backend, with the profile of
//! `[sandbox]`, the session's placeholders and an egress policy whose connections are
//! decided by the session's flow ([`crate::flow`]); how it ran (backend, whether it was
//! isolated) is recorded as `sandbox_exec`. If the sandbox cannot be started the
//! command does not run. A request of the runtime's own goes through the egress proxy
//! under the session's policy, never through a direct socket.

use std::sync::Arc;

use crate::Runtime;
use crate::pipeline::{Cx, Failure, Stage};
use crate::record;
use crate::tools::ToolOutput;
use crate::tools::exec::{EgressSetup, SharedInstance};
use crate::tools::http_fetch::transport::Via;

impl Runtime {
    /// Run `command` (`/bin/sh -c`) in the session's sandbox instance and record how it
    /// ran; the output formatted for the model.
    ///
    /// With checkpoints on and a backend that can, the command sees the workspace through
    /// the session's overlay, and its changes are journaled and applied after it ends
    /// ([`Runtime::apply_command_changes`]) — also when it failed or timed out.
    pub(crate) async fn run_command(
        &self,
        cx: &Cx<'_>,
        auth: &crate::authorise::Authorization,
        command: &str,
    ) -> Result<ToolOutput, Failure> {
        let instance = self.instance(cx.session);
        let mut profile = crate::tools::exec::sandbox_profile(&self.config, self.workspace.root());
        let overlay = self.command_overlay(cx.session)?;
        if let Some(o) = &overlay {
            profile.workspace_overlay = Some(o.profile());
        }
        let egress = self.egress_setup(cx.session)?;
        let scope = self.config.sandbox.scope;
        let ran = self
            .run_recorded(cx, (instance, scope), profile, egress, command)
            .await;
        self.after_overlay(cx, auth, overlay, ran).await
    }

    /// After a command that ran with `overlay` (if any): its changes journaled and
    /// applied ([`Runtime::apply_command_changes`]), their note added to its output.
    async fn after_overlay(
        &self,
        cx: &Cx<'_>,
        auth: &crate::authorise::Authorization,
        overlay: Option<Arc<crate::checkpoints::OverlayDirs>>,
        ran: Result<ToolOutput, Failure>,
    ) -> Result<ToolOutput, Failure> {
        let Some(o) = overlay else {
            return ran;
        };
        let note = self.apply_command_changes(cx, auth, &o).await?;
        let mut out = ran?;
        if let Some(note) = note {
            out.content = format!("{}\n{note}", out.content);
        }
        Ok(out)
    }

    /// Run `command` in `instance` (or a sandbox of its own for `SandboxScope::Call`),
    /// record `sandbox_exec`, and format the output for the model.
    async fn run_recorded(
        &self,
        cx: &Cx<'_>,
        (instance, scope): (SharedInstance, config::SandboxScope),
        profile: sandbox::Profile,
        egress: EgressSetup,
        command: &str,
    ) -> Result<ToolOutput, Failure> {
        let req = crate::tools::exec::request(command, &self.agent_cfg.exec);
        let out = crate::tools::exec::run(
            self.sandbox.clone(),
            instance,
            scope,
            profile,
            Some(egress),
            req,
        )
        .await
        .map_err(|m| Failure::new(Stage::Sandbox, m))?;
        record::sandbox_exec(
            &self.audit,
            cx.session,
            cx.call,
            self.sandbox.backend(),
            self.sandbox.isolation(),
            &out,
        );
        Ok(crate::tools::exec::format(&out, &self.agent_cfg.exec))
    }

    /// Run `command`, a run of `skill`'s script, in a sandbox of its own: the skill's tree
    /// read-only at `/skills/NAME`, the skill's workspace access, its approved hosts as
    /// the whole egress allowlist (decided by the session's flow with the skill's scope)
    /// and its approved secrets as placeholders, under their own names and the
    /// `requires.env` names mapped to them. None of the agent's secrets or hosts.
    ///
    /// A skill with write access sees the workspace through the session's overlay, its
    /// changes journaled and applied like any command's.
    pub(crate) async fn run_skill_command(
        &self,
        cx: &Cx<'_>,
        auth: &crate::authorise::Authorization,
        skill: &crate::skills::InstalledSkill,
        command: &str,
    ) -> Result<ToolOutput, Failure> {
        let mut profile = crate::tools::exec::sandbox_profile(&self.config, self.workspace.root());
        crate::tools::exec::confine_to_skill(&mut profile, skill);
        let overlay = match profile.workspace_access {
            sandbox::WorkspaceAccess::Write => self.command_overlay(cx.session)?,
            _ => None,
        };
        if let Some(o) = &overlay {
            profile.workspace_overlay = Some(o.profile());
        }
        let mut set = secrets::PlaceholderSet::new();
        for s in &skill.secrets {
            set.insert(&s.name, s.value.clone(), s.hosts.clone())
                .map_err(|e| {
                    Failure::new(Stage::Secrets, format!("cannot make placeholders: {e}"))
                })?;
        }
        let mut env = set.env();
        for (var, secret) in &skill.env {
            if let Some((_, placeholder)) = env.iter().find(|(n, _)| n == secret).cloned() {
                env.push((var.clone(), placeholder));
            }
        }
        let gate: Arc<dyn egress::ConnectGate> = Arc::new(crate::flow::SkillFlow {
            flow: self.flow(cx.session),
            scope: guard::SkillScope {
                name: skill.name.clone(),
                egress: skill.egress.clone(),
            },
        });
        let policy = egress::EgressPolicy::new(
            format!("{} (skill {})", self.agent, skill.name),
            cx.session,
            skill.egress.clone(),
        )
        .with_credentials(&set)
        .with_watched_secrets(self.watched_secrets.clone())
        .with_gate(gate);
        let egress = EgressSetup {
            proxy: self.egress.clone(),
            policy,
            env,
            ca_bundle: self.ca_bundle.clone(),
        };
        // A sandbox of its own: its mounts, workspace access and egress are the skill's.
        let own = (SharedInstance::default(), config::SandboxScope::Call);
        let ran = self.run_recorded(cx, own, profile, egress, command).await;
        self.after_overlay(cx, auth, overlay, ran).await
    }

    /// Whether commands run on the host, unisolated: their output may then come from the
    /// network without the proxy seeing it.
    pub(crate) fn runs_unisolated(&self) -> bool {
        self.sandbox.isolation() == sandbox::Isolation::None
    }

    fn egress_setup(&self, session: &str) -> Result<EgressSetup, Failure> {
        let e = self.session_egress(session)?;
        // Commands' connections are decided by the same policy, with the session's label.
        let gate: Arc<dyn egress::ConnectGate> = self.flow(session);
        Ok(EgressSetup {
            proxy: self.egress.clone(),
            policy: self.egress_policy(session, &e.placeholders).with_gate(gate),
            env: e.env,
            ca_bundle: self.ca_bundle.clone(),
        })
    }

    /// The way out for the session's own requests: the proxy, the session's policy and
    /// the TLS settings, with the session's placeholders.
    pub(crate) fn fetch_via(
        &self,
        session: &str,
    ) -> Result<(Via<'_>, Vec<(String, String)>), Failure> {
        let egress = self.session_egress(session)?;
        let via = Via {
            proxy: &self.egress,
            policy: egress.policy,
            tls: &self.http_tls,
        };
        Ok((via, egress.env))
    }

    /// Run `argv` in this agent's sandbox exactly as the `exec` tool would (same profile,
    /// egress, placeholders), without the guard: for `cordon sandbox exec`, where a human
    /// typed the command. The caller records it in the audit log.
    pub async fn sandbox_exec(
        &self,
        session: &str,
        argv: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<sandbox::ExecOutput, String> {
        let profile = crate::tools::exec::sandbox_profile(&self.config, self.workspace.root());
        let egress = self.egress_setup(session).map_err(|f| f.message)?;
        let req = sandbox::ExecRequest {
            argv,
            cwd: None,
            stdin: Vec::new(),
            timeout,
            output_limit: self.agent_cfg.exec.output_limit,
        };
        // `scope = call`: a sandbox of its own, never the session's instance.
        crate::tools::exec::run(
            self.sandbox.clone(),
            SharedInstance::default(),
            config::SandboxScope::Call,
            profile,
            Some(egress),
            req,
        )
        .await
    }
}
