//! Where the cloud metadata service is probed: its real address, or a loopback stand-in.
//!
//! `cordon audit` checks whether the metadata service answers from the host and, with
//! `--deep`, from a sandbox. Both probes take their target from [`MetadataTarget`], and
//! only from there, so that a test suite can point every audit it runs at a listener of
//! its own instead of sending packets to 169.254.169.254.
//!
//! The hidden override `CORDON_METADATA_PROBE_ADDR=IP:PORT` is accepted only for a
//! loopback address: it exists for tests, and must not turn `cordon audit` into a tool
//! that connects wherever an environment variable says. Anything else is an error, never
//! a silent fallback to either address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::{Finding, Severity};

/// The cloud metadata service (AWS, GCP, Azure, most others), port 80.
pub const METADATA: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), 80);

/// The environment variable that points the probes at a loopback stand-in.
pub const METADATA_PROBE_ENV: &str = "CORDON_METADATA_PROBE_ADDR";

/// The address both metadata probes connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataTarget(SocketAddr);

/// A stand-in address that is not allowed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{METADATA_PROBE_ENV}={value:?}: {why}; it only points the metadata probe at a loopback \
     stand-in (tests). Unset it to probe the real metadata service"
)]
pub struct MetadataTargetError {
    value: String,
    why: &'static str,
}

impl MetadataTarget {
    /// The real metadata service.
    pub const REAL: MetadataTarget = MetadataTarget(METADATA);

    /// The real service, or the stand-in named by [`METADATA_PROBE_ENV`].
    pub fn from_env() -> Result<MetadataTarget, MetadataTargetError> {
        match std::env::var(METADATA_PROBE_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(MetadataTarget::REAL),
            Err(std::env::VarError::NotUnicode(v)) => Err(MetadataTargetError {
                value: v.to_string_lossy().into_owned(),
                why: "not UTF-8",
            }),
            Ok(v) => MetadataTarget::stand_in(&v),
        }
    }

    /// A stand-in `IP:PORT`, which must be a loopback address.
    pub fn stand_in(value: &str) -> Result<MetadataTarget, MetadataTargetError> {
        let fail = |why| MetadataTargetError {
            value: value.to_string(),
            why,
        };
        let addr: SocketAddr = value.parse().map_err(|_| fail("not an IP:PORT"))?;
        let loopback = match addr.ip() {
            IpAddr::V4(ip) => ip.is_loopback(),
            IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        if !loopback {
            return Err(fail("not a loopback address"));
        }
        Ok(MetadataTarget(addr))
    }

    pub fn addr(self) -> SocketAddr {
        self.0
    }

    /// What a sandboxed `curl` asks for (`http://169.254.169.254/latest/meta-data/`).
    pub fn url(self) -> String {
        let authority = match (self.0.port(), self.0.ip()) {
            (80, IpAddr::V4(ip)) => ip.to_string(),
            (80, IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.0.to_string(),
        };
        format!("http://{authority}/latest/meta-data/")
    }
}

/// How a probe is made: directly (bypassing the proxy variables) or through the egress
/// proxy. The sandbox must block both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbePath {
    Direct,
    Proxy,
}

impl ProbePath {
    pub const BOTH: [ProbePath; 2] = [ProbePath::Direct, ProbePath::Proxy];

    fn how(self) -> &'static str {
        match self {
            ProbePath::Direct => "directly",
            ProbePath::Proxy => "through the egress proxy",
        }
    }
}

impl MetadataTarget {
    /// The `curl` command a sandbox runs to probe the target: headers and then the status
    /// code on stdout (the proxy marks every response it makes itself, a refusal or an
    /// unreachable upstream, with `x-cordon-egress`).
    pub fn curl_probe(self, path: ProbePath) -> Vec<String> {
        let mut argv: Vec<String> = [
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
        ]
        .map(String::from)
        .to_vec();
        // Direct: past the proxy variables. Through the proxy: even for an address the
        // sandbox's NO_PROXY exempts (a loopback stand-in in tests).
        let bypass = match path {
            ProbePath::Direct => "*",
            ProbePath::Proxy => "",
        };
        argv.extend(["--noproxy".into(), bypass.into()]);
        argv.push(self.url());
        argv
    }
}

/// How the sandboxed `curl` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurlExit {
    /// It exited with this status.
    Code(i32),
    /// It did not exit on its own (killed, timed out), as described.
    Other(String),
}

/// What one curl probe of the metadata address showed.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// The metadata service answered, with this HTTP status (any status: a 401 or 403
    /// from IMDSv2 or GCP still means the connection got through).
    Reached(String),
    /// No connection, or the egress proxy refused it.
    Blocked,
    /// curl did not run, so the probe says nothing.
    DidNotRun(String),
}

/// Read a [`MetadataTarget::curl_probe`]: `stdout` is curl's `-D -` headers followed by
/// `-w %{http_code}`.
pub fn read_probe(exit: &CurlExit, stdout: &str) -> Probe {
    match exit {
        CurlExit::Code(0) => {}
        // 1-3: curl refused its own arguments; 126/127: it is not there to run.
        CurlExit::Code(c @ (1..=3 | 126 | 127)) => {
            return Probe::DidNotRun(format!("exit status {c}"));
        }
        // Could not resolve, connect, or got no answer in time.
        CurlExit::Code(_) => return Probe::Blocked,
        CurlExit::Other(what) => return Probe::DidNotRun(what.clone()),
    }
    let code = stdout.lines().last().unwrap_or("").trim();
    let from_proxy = stdout
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("x-cordon-egress:"));
    if from_proxy || code.is_empty() || code == "000" {
        Probe::Blocked
    } else {
        Probe::Reached(code.to_string())
    }
}

/// The finding for one probe from the sandbox of `agent` (none when it was blocked).
pub fn sandbox_probe_finding(
    target: MetadataTarget,
    path: ProbePath,
    agent: &str,
    probe: Probe,
) -> Option<Finding> {
    let how = path.how();
    match probe {
        Probe::Blocked => None,
        Probe::Reached(code) => Some(Finding::new(
            "sandbox.metadata_reachable",
            Severity::Critical,
            format!("a sandboxed command reaches the cloud metadata service {how}"),
            format!(
                "curl {} in the sandbox of agent `{agent}`: HTTP {code}",
                target.url()
            ),
            "check [egress] allow_ranges and the sandbox backend (`cordon sandbox explain`)",
        )),
        Probe::DidNotRun(why) => Some(Finding::not_checked(
            format!("whether a sandboxed command reaches the metadata service {how}"),
            format!("curl in the sandbox of agent `{agent}`: {why}"),
            "make curl available inside the sandbox (`cordon sandbox explain` shows what it \
             mounts) and run `cordon audit --deep` again",
        )),
    }
}

/// `sandbox.unavailable`: no command could be run in a sandbox to probe from.
pub fn sandbox_unavailable(why: impl Into<String>) -> Finding {
    Finding::new(
        "sandbox.unavailable",
        Severity::Warn,
        "cannot run a command in the sandbox to probe the metadata address",
        why,
        "see `cordon sandbox explain`",
    )
}

/// `sandbox.metadata_probe_skipped`: there is no curl to probe with.
pub fn curl_missing() -> Finding {
    Finding::new(
        "sandbox.metadata_probe_skipped",
        Severity::Info,
        "curl is not installed: the metadata probe from a sandbox was skipped",
        "no curl on PATH",
        "install curl and run `cordon audit --deep` again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_stand_in_is_accepted() {
        for ok in [
            "127.0.0.1:8080",
            "127.3.4.5:1",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            let t = MetadataTarget::stand_in(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(t.addr(), ok.parse::<SocketAddr>().unwrap());
        }
        for bad in [
            "169.254.169.254:80",
            "192.0.2.1:80",
            "[fd00:ec2::254]:80",
            "[::ffff:169.254.169.254]:80",
            "0.0.0.0:80",
            "localhost:80",
            "127.0.0.1",
            "",
        ] {
            let e = MetadataTarget::stand_in(bad).unwrap_err().to_string();
            assert!(e.contains(METADATA_PROBE_ENV), "{bad}: {e}");
        }
    }

    #[test]
    fn the_real_target_is_the_metadata_service() {
        assert_eq!(
            MetadataTarget::REAL.addr().to_string(),
            "169.254.169.254:80"
        );
        assert_eq!(
            MetadataTarget::REAL.url(),
            "http://169.254.169.254/latest/meta-data/"
        );
        assert_eq!(
            MetadataTarget::stand_in("[::1]:9").unwrap().url(),
            "http://[::1]:9/latest/meta-data/"
        );
    }

    #[test]
    fn a_metadata_answer_of_any_status_is_reached_and_a_curl_that_did_not_run_is_not_blocked() {
        let imds_v2 = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n401";
        assert_eq!(
            read_probe(&CurlExit::Code(0), imds_v2),
            Probe::Reached("401".into())
        );
        let refused = "HTTP/1.1 403 Forbidden\r\nx-cordon-egress: refused\r\n\r\n403";
        assert_eq!(read_probe(&CurlExit::Code(0), refused), Probe::Blocked);
        assert_eq!(read_probe(&CurlExit::Code(7), "000"), Probe::Blocked);
        assert_eq!(read_probe(&CurlExit::Code(28), "000"), Probe::Blocked);
        for exit in [CurlExit::Code(127), CurlExit::Other("Signaled(31)".into())] {
            assert!(
                matches!(read_probe(&exit, ""), Probe::DidNotRun(_)),
                "{exit:?}"
            );
        }
    }

    #[test]
    fn the_direct_probe_bypasses_the_proxy_variables_and_both_ask_the_target() {
        let t = MetadataTarget::stand_in("127.0.0.1:4").unwrap();
        let direct = t.curl_probe(ProbePath::Direct);
        assert!(direct.windows(2).any(|w| w == ["--noproxy", "*"]));
        assert_eq!(
            direct.last().unwrap(),
            "http://127.0.0.1:4/latest/meta-data/"
        );
        let proxied = t.curl_probe(ProbePath::Proxy);
        assert!(proxied.windows(2).any(|w| w == ["--noproxy", ""]));
        assert_eq!(proxied.last(), direct.last());
    }
}
