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
}
