//! Stub: replaced by the runtime implementation.
pub struct Runtime;
pub struct RuntimeOptions;
#[derive(Debug, thiserror::Error)]
#[error("runtime")]
pub struct RuntimeError;
