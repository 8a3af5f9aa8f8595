//! Stub.
pub struct Workspace;
#[derive(Debug, thiserror::Error)]
#[error("workspace")]
pub struct WorkspaceError;
