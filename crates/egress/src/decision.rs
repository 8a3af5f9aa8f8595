//! The egress decision: allowlist, IP-literal rule, one resolution, SSRF guard.
//!
//! Guarantees: a target is allowed only when its name (or IP literal) matches the
//! policy's allowlist AND every address it resolves to passes
//! [`crate::address::refusal`] or lies in the operator's `allow_ranges`. The returned
//! [`Verdict`] carries the vetted addresses; the proxy dials only those, never
//! resolving again. Does not guarantee anything about what an allowed host does.

use std::net::IpAddr;

use audit::event::ProxyEgress;

use crate::address::refusal;
use crate::policy::EgressPolicy;
use crate::proxy::Proxy;

/// The outcome of a decision, with the reason in words and the addresses vetted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: String,
    /// Normalised host name (lower case, no trailing dot, no brackets).
    pub host: String,
    pub port: u16,
    /// Every address the name resolved to (all vetted when `allowed`).
    pub addresses: Vec<IpAddr>,
}

impl Verdict {
    fn deny(host: &str, port: u16, addresses: Vec<IpAddr>, reason: String) -> Verdict {
        Verdict {
            allowed: false,
            reason,
            host: host.to_string(),
            port,
            addresses,
        }
    }

    /// The `egress` record of this verdict for a step of `kind` (`connect`, `http`, …);
    /// the caller adds what the step knows (method, address, sizes).
    pub(crate) fn record(&self, policy: &EgressPolicy, kind: impl Into<String>) -> ProxyEgress {
        ProxyEgress {
            host: Some(self.host.clone()),
            port: Some(self.port),
            addresses: Some(self.addresses.iter().map(IpAddr::to_string).collect()),
            decision: if self.allowed { "allow" } else { "deny" }.into(),
            reason: self.reason.clone(),
            ..connection_record(policy, kind, "")
        }
    }
}

/// An `egress` record about a client connection (no target yet): `decision` and
/// `reason` as given, everything target-related absent.
pub(crate) fn connection_record(
    policy: &EgressPolicy,
    kind: impl Into<String>,
    decision: &str,
) -> ProxyEgress {
    ProxyEgress {
        agent: policy.agent.clone(),
        session: policy.session.clone(),
        kind: kind.into(),
        host: None,
        port: None,
        addresses: None,
        decision: decision.into(),
        reason: String::new(),
        method: None,
        address: None,
        credentials: None,
        status: None,
        bytes_up: None,
        bytes_down: None,
    }
}

/// Lower case, no trailing dot, IPv6 brackets removed.
pub(crate) fn normalise_host(raw: &str) -> String {
    let h = raw.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Split `url`, `host:port`, `[v6]:port` or `host` (port 443) for `cordon egress test`.
pub(crate) fn parse_target(input: &str) -> Result<(String, u16), String> {
    let s = input.trim();
    if s.contains("://") {
        let uri: http::Uri = s
            .parse()
            .map_err(|e| format!("`{s}` is not a valid URL: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("`{s}` has no host"))?
            .to_string();
        let port = match (uri.port_u16(), uri.scheme_str()) {
            (Some(p), _) => p,
            (None, Some("http")) => 80,
            (None, Some("https")) => 443,
            (None, other) => {
                return Err(format!(
                    "`{s}`: scheme {other:?} has no default port; give one"
                ));
            }
        };
        return Ok((host, port));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: missing `]`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{s}`: bad port"))?,
            None => 443,
        };
        return Ok((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p
                .parse()
                .map_err(|_| format!("`{s}`: port must be a number 1-65535"))?;
            Ok((h.to_string(), port))
        }
        // No port, or a bare IPv6 address: the default.
        _ => Ok((s.to_string(), 443)),
    }
}

impl Proxy {
    /// Decide `host:port` for `policy` (allowlist, the session's gate, one resolution,
    /// SSRF guard); a connection allowed is reported to the gate as contacted.
    pub(crate) async fn decide(
        &self,
        policy: &EgressPolicy,
        raw_host: &str,
        port: u16,
        kind: &str,
    ) -> Verdict {
        let v = self.decide_target(policy, raw_host, port, kind).await;
        if v.allowed
            && let Some(gate) = policy.gate()
        {
            gate.contacted(&v.host);
        }
        v
    }

    async fn decide_target(
        &self,
        policy: &EgressPolicy,
        raw_host: &str,
        port: u16,
        kind: &str,
    ) -> Verdict {
        let host = normalise_host(raw_host);
        if host.is_empty() || port == 0 {
            return Verdict::deny(&host, port, vec![], "empty host or port 0".into());
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !self.in_allowed_ranges(ip) {
                return Verdict::deny(
                    &host,
                    port,
                    vec![ip],
                    format!(
                        "IP literal {ip} refused: addresses are reached by allowlisted host name only \
                         (an operator can open a range with `allow_ranges`)"
                    ),
                );
            }
            if !policy.allows(&host, port) {
                return Verdict::deny(&host, port, vec![ip], not_listed(policy, &host, port));
            }
            if let Some(Err(why)) = policy.gate().map(|g| g.admit(&host, port, kind)) {
                return Verdict::deny(&host, port, vec![ip], why);
            }
            return Verdict {
                allowed: true,
                reason: format!("{ip} is in allow_ranges and on the allowlist"),
                host,
                port,
                addresses: vec![ip],
            };
        }
        let Some(pattern) = policy.allow.iter().find(|p| p.matches(&host, port)) else {
            return Verdict::deny(&host, port, vec![], not_listed(policy, &host, port));
        };
        if let Some(Err(why)) = policy.gate().map(|g| g.admit(&host, port, kind)) {
            return Verdict::deny(&host, port, vec![], why);
        }
        let addresses = match self.cfg.resolve.get(&host) {
            Some(ip) => vec![*ip],
            None => match tokio::time::timeout(
                crate::proxy::RESOLVE_TIMEOUT,
                self.cfg.resolver.lookup(&host, port),
            )
            .await
            {
                Ok(Ok(a)) => a,
                Err(_) => {
                    return Verdict::deny(
                        &host,
                        port,
                        vec![],
                        format!(
                            "resolving {host} timed out after {:?}",
                            crate::proxy::RESOLVE_TIMEOUT
                        ),
                    );
                }
                Ok(Err(e)) => {
                    return Verdict::deny(
                        &host,
                        port,
                        vec![],
                        format!("could not resolve {host}: {e}"),
                    );
                }
            },
        };
        if addresses.is_empty() {
            return Verdict::deny(&host, port, vec![], format!("{host} has no address"));
        }
        for ip in &addresses {
            if self.in_allowed_ranges(*ip) {
                continue;
            }
            if let Some(why) = refusal(*ip) {
                let reason = format!(
                    "{host} resolves to {ip}, {why}: internal addresses are refused (SSRF guard)"
                );
                return Verdict::deny(&host, port, addresses.clone(), reason);
            }
        }
        Verdict {
            allowed: true,
            reason: format!("allowed by allowlist entry `{pattern}`"),
            host,
            port,
            addresses,
        }
    }

    fn in_allowed_ranges(&self, ip: IpAddr) -> bool {
        self.cfg.allow_ranges.iter().any(|n| n.contains(&ip))
    }

    /// The decision alone, for `cordon egress test`: resolves, does not connect.
    pub async fn check(&self, policy: &EgressPolicy, url_or_host_port: &str) -> Verdict {
        match parse_target(url_or_host_port) {
            Ok((host, port)) => self.decide(policy, &host, port, "connect").await,
            Err(reason) => Verdict::deny(url_or_host_port, 0, vec![], reason),
        }
    }
}

fn not_listed(policy: &EgressPolicy, host: &str, port: u16) -> String {
    format!(
        "{host}:{port} is not on the egress allowlist of agent `{}`; add it to the agent's \
         `egress.allow` to permit it",
        policy.agent
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("http://Ex.org/x").unwrap(),
            ("Ex.org".into(), 80)
        );
        assert_eq!(
            parse_target("https://ex.org:8443").unwrap(),
            ("ex.org".into(), 8443)
        );
        assert_eq!(parse_target("ex.org:81").unwrap(), ("ex.org".into(), 81));
        assert_eq!(parse_target("ex.org").unwrap(), ("ex.org".into(), 443));
        assert_eq!(parse_target("[::1]:80").unwrap(), ("::1".into(), 80));
        assert!(parse_target("ex.org:notaport").is_err());
        assert_eq!(normalise_host("[::FFFF:127.0.0.1]"), "::ffff:127.0.0.1");
        assert_eq!(normalise_host("Api.Example.COM."), "api.example.com");
    }
}
