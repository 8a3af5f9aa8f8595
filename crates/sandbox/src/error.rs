use std::fmt;

/// The isolation layer that failed to set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    UserNamespace,
    IdMapping,
    MountNamespace,
    RootFilesystem,
    PidNamespace,
    NetworkNamespace,
    UtsNamespace,
    Capabilities,
    Rlimits,
    Seccomp,
    Landlock,
    /// The overlay over the workspace ([`crate::WorkspaceOverlay`]).
    WorkspaceOverlay,
    Exec,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::UserNamespace => "user namespace",
            Layer::IdMapping => "uid/gid mapping",
            Layer::MountNamespace => "mount namespace",
            Layer::RootFilesystem => "root filesystem",
            Layer::PidNamespace => "pid namespace",
            Layer::NetworkNamespace => "network namespace",
            Layer::UtsNamespace => "uts namespace",
            Layer::Capabilities => "capabilities",
            Layer::Rlimits => "resource limits",
            Layer::Seccomp => "seccomp",
            Layer::Landlock => "landlock",
            Layer::WorkspaceOverlay => "workspace overlay",
            Layer::Exec => "exec",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A layer could not be set up; the command did not run.
    #[error("sandbox setup failed at the {layer} layer: {detail}")]
    Setup { layer: Layer, detail: String },
    /// The profile or request is unusable (missing workspace, empty argv…).
    #[error("invalid sandbox request: {0}")]
    Invalid(String),
    /// The command could not be started inside a working sandbox (e.g. not found).
    #[error("could not start `{program}` in the sandbox: {detail}")]
    Exec { program: String, detail: String },
    #[error("sandbox I/O error: {0}")]
    Io(#[from] std::io::Error),
}
