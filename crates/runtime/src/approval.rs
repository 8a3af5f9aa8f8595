//! Asking a human. The runtime never decides an `Ask` by itself: it asks an [`Approver`].
//! Where no human can answer (`cordon run`), [`NoHumanApprover`] answers
//! [`ApprovalAnswer::Unavailable`] and the action is denied.

use async_trait::async_trait;
use serde::Serialize;

/// What a human is asked to approve.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    pub session: String,
    pub agent: String,
    pub tool: String,
    /// The action as it will be executed, e.g. `exec: rm -rf build`.
    pub action: String,
    /// The parsed arguments.
    pub arguments: serde_json::Value,
    /// Why approval is needed (the rule that asked).
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "answer", content = "detail")]
pub enum ApprovalAnswer {
    /// Run this action this one time.
    Once,
    /// Run this exact action without asking again for the rest of the session.
    Session,
    /// Do not run it.
    Deny,
    /// Nobody can answer; treated as a denial.
    Unavailable(String),
}

#[async_trait]
pub trait Approver: Send + Sync {
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer;
}

/// For non-interactive runs: every question is answered "nobody is here".
pub struct NoHumanApprover;

#[async_trait]
impl Approver for NoHumanApprover {
    async fn ask(&self, _req: &ApprovalRequest) -> ApprovalAnswer {
        ApprovalAnswer::Unavailable(
            "approval required but this is a non-interactive run (`cordon run`); use `cordon chat`, or allow it in the agent's config".into(),
        )
    }
}
