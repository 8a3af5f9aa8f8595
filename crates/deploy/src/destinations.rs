//! Where a deployed gateway must be able to connect: the model endpoint and each agent's
//! `egress.allow` hosts, as addresses, for rules that only take addresses (a Kubernetes
//! NetworkPolicy takes CIDRs, never names).
//!
//! Guarantees: a destination that cannot be expressed as addresses — a wildcard pattern,
//! a name that does not resolve, an address the egress proxy would refuse anyway — gets
//! no rule and a reason, never a wider rule. Names are resolved once, here, now; the
//! result says so, because the answers can change.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use crate::DeployError;
use crate::firewall::METADATA_V6;
use crate::plan::{ModelHost, Plan};

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Destination {
    /// What needs it, e.g. "model endpoint" or "agent `default`".
    pub purpose: String,
    /// As written in the config: `api.github.com`, `*.pypi.org:8443`, an address.
    pub host: String,
    /// TCP ports.
    pub ports: Vec<u16>,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// Allowed to these addresses. `how` says where they came from; `refused` lists
    /// answers left out, with the reason.
    Addresses {
        addrs: Vec<IpAddr>,
        how: String,
        refused: Vec<(IpAddr, String)>,
    },
    /// No rule, for this reason.
    NoRule(String),
}

pub async fn resolve(plan: &Plan) -> Result<Vec<Destination>, DeployError> {
    let cfg = &plan.config;
    // The same ranges the proxy exempts from its private-address refusal, parsed by the
    // proxy's own code (with the CA files as found here, which it also reads).
    let mut egress_cfg = cfg.egress.clone();
    egress_cfg.upstream_ca_files = plan.ca_files.iter().map(|f| f.source.clone()).collect();
    let allow_ranges = egress::ProxyConfig::from_config(&egress_cfg)?.allow_ranges;
    let in_ranges = |ip: &IpAddr| allow_ranges.iter().any(|n| n.contains(ip));

    let mut out = Vec::new();
    let model = &plan.model;
    let outcome = match &model.host {
        ModelHost::Ip(ip) => model_outcome(vec![*ip], "an address in model.base_url".into()),
        ModelHost::Name(name) => match lookup(name).await {
            Ok(addrs) => model_outcome(addrs, format!("resolved from {name} when generated")),
            Err(e) => Outcome::NoRule(format!("{name} does not resolve here ({e})")),
        },
    };
    out.push(Destination {
        purpose: "model endpoint".into(),
        host: model.host.to_string(),
        ports: vec![model.port],
        outcome,
    });

    for (agent, a) in &cfg.agents {
        for pattern in &a.egress.allow {
            let ports = match pattern.port() {
                Some(p) => vec![p],
                None => vec![80, 443],
            };
            let host = pattern.host();
            let outcome = if pattern.is_wildcard() {
                Outcome::NoRule(
                    "a wildcard names no addresses; add ipBlocks for the hosts it should reach"
                        .into(),
                )
            } else {
                let found = if let Ok(ip) = host.parse::<IpAddr>() {
                    Ok((vec![ip], "an address in egress.allow".to_string()))
                } else if let Some((_, ip)) = cfg
                    .egress
                    .resolve
                    .iter()
                    .find(|(name, _)| name.trim_end_matches('.').eq_ignore_ascii_case(host))
                {
                    Ok((vec![*ip], "egress.resolve".to_string()))
                } else {
                    lookup(host)
                        .await
                        .map(|a| (a, format!("resolved from {host} when generated")))
                };
                match found {
                    Err(e) => Outcome::NoRule(format!("{host} does not resolve here ({e})")),
                    Ok((addrs, how)) => {
                        let (mut ok, mut refused) = (Vec::new(), Vec::new());
                        for ip in addrs {
                            match egress::address::refusal(ip) {
                                Some(why) if !in_ranges(&ip) => refused.push((
                                    ip,
                                    format!(
                                        "{why}, which the egress proxy refuses \
                                         (egress.allow_ranges can exempt a range)"
                                    ),
                                )),
                                _ => ok.push(ip),
                            }
                        }
                        if ok.is_empty() && refused.is_empty() {
                            Outcome::NoRule(format!("{host} resolved to no address"))
                        } else {
                            Outcome::Addresses {
                                addrs: ok,
                                how,
                                refused,
                            }
                        }
                    }
                }
            };
            out.push(Destination {
                purpose: format!("agent `{agent}`"),
                host: pattern.to_string(),
                ports,
                outcome,
            });
        }
    }
    Ok(out)
}

/// The model connection does not go through the egress proxy (private addresses are
/// normal for a local model server), but loopback means the pod itself, and link-local
/// and AWS's IPv6 metadata address are where the metadata service lives. Each address is
/// judged in its IPv4 form where it has one, so `::ffff:169.254.169.254` is refused too.
fn model_outcome(addrs: Vec<IpAddr>, how: String) -> Outcome {
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for ip in addrs {
        let canonical = ip.to_canonical();
        let link_local = match canonical {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if canonical.is_loopback() {
            refused.push((ip, "loopback: inside a pod that is the pod itself".into()));
        } else if link_local || canonical == IpAddr::V6(METADATA_V6) {
            refused.push((ip, "cloud metadata address (link-local or AWS IPv6)".into()));
        } else {
            ok.push(ip);
        }
    }
    Outcome::Addresses {
        addrs: ok,
        how,
        refused,
    }
}

async fn lookup(host: &str) -> Result<Vec<IpAddr>, String> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Err(_) => Err(format!("no answer in {} s", LOOKUP_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(addrs)) => Ok(addrs
            .map(|a| a.ip())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        let ip: IpAddr = ip.parse().unwrap();
        match model_outcome(vec![ip], String::new()) {
            Outcome::Addresses { addrs, refused, .. } => {
                assert_eq!(addrs.is_empty(), refused.len() == 1, "{ip}");
                addrs.is_empty()
            }
            Outcome::NoRule(_) => panic!("{ip}: no rule"),
        }
    }

    #[test]
    fn the_model_endpoint_never_opens_the_pod_or_the_metadata_service() {
        for ip in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
        ] {
            assert!(refused(ip), "{ip} would get an ipBlock");
        }
        // A model server on a private network is normal.
        for ip in [
            "10.0.0.7",
            "192.168.1.2",
            "fd00::7",
            "203.0.113.7",
            "2001:db8::7",
        ] {
            assert!(!refused(ip), "{ip} was refused");
        }
    }
}
