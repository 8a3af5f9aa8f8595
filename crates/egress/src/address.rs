//! The SSRF guard: which resolved addresses the proxy refuses to dial.
//!
//! Guarantees: every address the proxy dials has passed [`refusal`] (or lies inside the
//! operator's `allow_ranges`). Loopback, private, link-local (cloud metadata
//! 169.254.169.254), CGNAT, unspecified, broadcast, multicast, reserved, benchmark and
//! documentation ranges are refused, and so is every IPv6 form that can carry an IPv4
//! address to a translator or tunnel (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo),
//! because what they reach depends on the network, not on the address.
//!
//! Does not guarantee: that a public address is harmless; only the allowlist decides that.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` must not be dialled, or `None` when it is an ordinary public address.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "\"this network\" 0.0.0.0/8"),
        ([10, 0, 0, 0], 8, "private 10.0.0.0/8"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT 100.64.0.0/10"),
        ([127, 0, 0, 0], 8, "loopback 127.0.0.0/8"),
        (
            [169, 254, 0, 0],
            16,
            "link-local 169.254.0.0/16 (cloud metadata)",
        ),
        ([172, 16, 0, 0], 12, "private 172.16.0.0/12"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments 192.0.0.0/24"),
        ([192, 0, 2, 0], 24, "documentation 192.0.2.0/24"),
        ([192, 88, 99, 0], 24, "6to4 relay anycast 192.88.99.0/24"),
        ([192, 168, 0, 0], 16, "private 192.168.0.0/16"),
        ([198, 18, 0, 0], 15, "benchmarking 198.18.0.0/15"),
        ([198, 51, 100, 0], 24, "documentation 198.51.100.0/24"),
        ([203, 0, 113, 0], 24, "documentation 203.0.113.0/24"),
        ([224, 0, 0, 0], 4, "multicast 224.0.0.0/4"),
        ([240, 0, 0, 0], 4, "reserved 240.0.0.0/4 (incl. broadcast)"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("IPv6 unspecified ::");
    }
    if ip.is_loopback() {
        return Some("IPv6 loopback ::1");
    }
    if s[0..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return Some("IPv4-mapped IPv6 ::ffff:0:0/96");
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return Some("IPv4-compatible IPv6 ::/96");
    }
    if s[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some("NAT64 64:ff9b::/96");
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 64:ff9b:1::/48");
    }
    if s[0] == 0x2002 {
        return Some("6to4 2002::/16 (embeds an IPv4 address)");
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("Teredo 2001::/32 (embeds an IPv4 address)");
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("documentation 2001:db8::/32");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Some("unique local fc00::/7");
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Some("link-local fe80::/10");
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return Some("site-local fec0::/10");
    }
    if s[0] & 0xff00 == 0xff00 {
        return Some("multicast ff00::/8");
    }
    if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        return Some("discard-only 100::/64");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        refusal(s.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_v4_ranges_are_refused() {
        for a in [
            "0.0.0.0",
            "10.0.0.5",
            "100.64.1.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(a), "{a} must be refused");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
        ] {
            assert!(!refused(a), "{a} is public");
        }
    }

    #[test]
    fn v6_forms_that_reach_v4_or_local_are_refused() {
        for a in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(refused(a), "{a} must be refused");
        }
        for a in ["2606:4700:4700::1111", "2a00:1450:4001::200e"] {
            assert!(!refused(a), "{a} is public");
        }
    }
}
