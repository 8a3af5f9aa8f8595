//! Stub: replaced by the native backend.
pub struct NativeSandbox;
