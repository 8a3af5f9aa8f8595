//! Setup failure reports from the sandbox child to the parent.
//!
//! The child cannot allocate, so a failure is a fixed 12-byte record (stage, index,
//! errno): init sends it on the control channel (its own steps, and the command's, which
//! the command's process leaves in init's memory before exiting). The parent turns it into
//! a [`SandboxError`](crate::SandboxError) using the descriptions it prepared before
//! cloning.

/// Length of one encoded report.
pub(crate) const REPORT_LEN: usize = 12;

/// Which step of the child's setup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    /// Init's own process settings: 1 non-dumpable, 2 setsid, 3 SIGCHLD signalfd.
    InitPrctl = 1,
    Hostname,
    Loopback,
    Mount,
    Fork,
    Stdio,
    Chdir,
    Rlimit,
    CloseFds,
    SetIds,
    CapBound,
    Ambient,
    NoNewPrivs,
    Capset,
    Exec,
    /// The egress listener: 0 socket, 1 bind, 2 listen.
    Egress,
    /// A request on the control channel that init could not parse.
    Request,
    /// Index: the Landlock rule (`landlock::RULES`), or its length for the ruleset itself.
    Landlock,
    Seccomp,
    /// The workspace overlay: 0 the mount at setup, 1 the mount before a command.
    Overlay,
}

impl Stage {
    const ALL: [Stage; 20] = [
        Stage::InitPrctl,
        Stage::Hostname,
        Stage::Loopback,
        Stage::Mount,
        Stage::Fork,
        Stage::Stdio,
        Stage::Chdir,
        Stage::Rlimit,
        Stage::CloseFds,
        Stage::SetIds,
        Stage::CapBound,
        Stage::Ambient,
        Stage::NoNewPrivs,
        Stage::Capset,
        Stage::Exec,
        Stage::Egress,
        Stage::Request,
        Stage::Landlock,
        Stage::Seccomp,
        Stage::Overlay,
    ];

    fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == v)
    }
}

/// A decoded failure report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    pub stage: Stage,
    /// Step index within the stage (mount step, rlimit, capability); 0 otherwise.
    pub index: u32,
    pub errno: i32,
}

impl Report {
    pub(crate) fn encode(self) -> [u8; REPORT_LEN] {
        let mut out = [0u8; REPORT_LEN];
        out[..4].copy_from_slice(&(self.stage as u32).to_ne_bytes());
        out[4..8].copy_from_slice(&self.index.to_ne_bytes());
        out[8..].copy_from_slice(&self.errno.to_ne_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8; REPORT_LEN]) -> Option<Report> {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = *bytes;
        Some(Report {
            stage: Stage::from_u32(u32::from_ne_bytes([a, b, c, d]))?,
            index: u32::from_ne_bytes([e, f, g, h]),
            errno: i32::from_ne_bytes([i, j, k, l]),
        })
    }
}

/// The calling thread's errno, without allocating.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_stages() {
        let r = Report {
            stage: Stage::Mount,
            index: 7,
            errno: libc::EPERM,
        };
        assert_eq!(Report::decode(&r.encode()), Some(r));
        let mut bad = r.encode();
        bad[..4].copy_from_slice(&999u32.to_ne_bytes());
        assert_eq!(Report::decode(&bad), None);
    }
}
