//! Where the gateway may listen.
//!
//! Guarantees: a loopback address (127.0.0.0/8, ::1, and their IPv4-mapped forms) is
//! always allowed; any other address, including the wildcards `0.0.0.0` and `::`, is
//! refused unless TLS is configured *and* at least one usable token exists, with an error
//! naming exactly what is missing. There is no override.
//!
//! Does not: check that a reverse proxy in front of a loopback gateway is safe, or that
//! the certificate names match the host clients use.

use std::net::SocketAddr;

use crate::error::GatewayError;

/// Who can reach the gateway at its bind address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Only this machine.
    Loopback,
    /// Other machines: TLS and tokens are in place.
    Network,
}

/// Decide whether the gateway may listen on `addr` with `tls` configured and
/// `usable_tokens` unrevoked, unexpired tokens.
pub fn check_exposure(
    addr: SocketAddr,
    tls: bool,
    usable_tokens: usize,
) -> Result<Exposure, GatewayError> {
    if addr.ip().to_canonical().is_loopback() {
        return Ok(Exposure::Loopback);
    }
    let mut missing = Vec::new();
    if !tls {
        missing
            .push("TLS (set `tls_cert` and `tls_key` under [gateway] in cordon.toml to PEM files)");
    }
    if usable_tokens == 0 {
        missing.push(
            "a token (none is unrevoked and unexpired; create one with \
             `cordon token create --scope operator`)",
        );
    }
    if missing.is_empty() {
        Ok(Exposure::Network)
    } else {
        Err(GatewayError::PublicBindRefused {
            addr,
            missing: missing.join(" and "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_always_allowed() {
        for a in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(
                check_exposure(addr(a), false, 0).unwrap(),
                Exposure::Loopback
            );
        }
    }

    #[test]
    fn network_needs_tls_and_a_token() {
        for a in [
            "0.0.0.0:7777",
            "[::]:7777",
            "192.168.1.5:7777",
            "[::ffff:10.0.0.1]:1",
        ] {
            let e = check_exposure(addr(a), false, 0).unwrap_err().to_string();
            assert!(
                e.contains("tls_cert") && e.contains("cordon token create"),
                "{e}"
            );
            let e = check_exposure(addr(a), true, 0).unwrap_err().to_string();
            assert!(
                !e.contains("tls_cert") && e.contains("cordon token create"),
                "{e}"
            );
            let e = check_exposure(addr(a), false, 3).unwrap_err().to_string();
            assert!(
                e.contains("tls_cert") && !e.contains("cordon token create"),
                "{e}"
            );
            assert_eq!(check_exposure(addr(a), true, 1).unwrap(), Exposure::Network);
        }
    }
}
