//! Which address a request comes from.
//!
//! Guarantees: the socket peer address is the client unless that peer is inside one of
//! `trusted_proxies`; only then is `X-Forwarded-For` read, right to left, and the first
//! address not itself a trusted proxy is the client. A malformed header from a trusted
//! proxy leaves the proxy as the client (all its clients share one login budget: fail
//! closed). IPv6 clients are keyed by their /64 for rate limiting, since one host
//! commonly owns a whole /64.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The remote socket address of a connection (set by [`crate::conn`] on every request).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn parse(cidrs: &[String]) -> Result<TrustedProxies, String> {
        cidrs
            .iter()
            .map(|c| c.parse::<IpNet>().map_err(|e| format!("`{c}`: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.ip().to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            for part in text.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(ip.to_canonical()),
                    Err(_) => return peer,
                }
            }
        }
        hops.iter()
            .rev()
            .find(|ip| !self.contains(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

impl TrustedProxies {
    /// Whether a request from `peer` reached the proxy over HTTPS: only a trusted proxy
    /// is believed, and only the value it set (the last `X-Forwarded-Proto` entry).
    pub fn forwarded_https(&self, peer: SocketAddr, headers: &HeaderMap) -> bool {
        if !self.contains(peer.ip()) {
            return false;
        }
        headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }
}

/// The key rate limits are kept under: the address, or its /64 for IPv6.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_header_is_ignored_from_untrusted_peers() {
        let t = TrustedProxies::parse(&["10.0.0.5/32".into()]).unwrap();
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(t.client(peer, &headers("198.51.100.7")), peer.ip());
        let none = TrustedProxies::default();
        assert_eq!(none.client(peer, &headers("198.51.100.7")), peer.ip());
    }

    #[test]
    fn forwarded_header_from_a_trusted_proxy_is_read_right_to_left() {
        let t = TrustedProxies::parse(&["10.0.0.0/24".into()]).unwrap();
        let peer: SocketAddr = "10.0.0.5:5000".parse().unwrap();
        // The client may prepend anything; the rightmost untrusted hop is the client.
        let ip = t.client(peer, &headers("1.1.1.1, 198.51.100.7, 10.0.0.9"));
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(t.client(peer, &headers("garbage")), peer.ip());
        assert_eq!(t.client(peer, &HeaderMap::new()), peer.ip());
    }

    #[test]
    fn forwarded_proto_is_believed_only_from_trusted_proxies() {
        let p = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut h = HeaderMap::new();
        h.append("x-forwarded-proto", "http".parse().unwrap());
        h.append("x-forwarded-proto", "https".parse().unwrap());
        let proxy: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let stranger: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        assert!(p.forwarded_https(proxy, &h));
        assert!(!p.forwarded_https(stranger, &h));
        let mut spoofed = HeaderMap::new();
        spoofed.insert("x-forwarded-proto", "https, http".parse().unwrap());
        assert!(
            !p.forwarded_https(proxy, &spoofed),
            "the proxy's own entry is the last"
        );
        assert!(!p.forwarded_https(proxy, &HeaderMap::new()));
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        let v4: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limit_key(v4), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
