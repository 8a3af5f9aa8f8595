//! The network: hard-coded hosts and IP literals not among the declared egress
//! patterns, known paste and exfiltration sites, homoglyph and punycode hosts, network
//! use in scripts (HTTP libraries, sockets, `curl`/`wget`) and DNS lookups of names built
//! at run time (the way stolen tokens leave through DNS when HTTP is blocked).
//!
//! Hosts are found in URLs (any scheme), as bare domains under common top-level
//! domains, and as IPv4/IPv6 literals. Reserved names (`localhost`, `example.com`,
//! `*.example`, `*.test`, `*.invalid`, `*.local`) are never reported: they reach nothing.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use config::HostPattern;
use regex::Regex;

use super::rules::{Hit, Level, Rule, marked};
use super::source::Source;
use super::{Findings, Severity};
use crate::manifest::Capabilities;

const WHY_HTTP: &str = "uses an HTTP client: it reaches the network, which only declared hosts may";
const WHY_SOCKET: &str =
    "opens raw sockets: network use outside HTTP, which only declared hosts may";
const WHY_CURL: &str = "runs curl or wget: it reaches the network, which only declared hosts may";
const WHY_DNS: &str = "looks up a DNS name built at run time: data encoded into subdomains leaves through DNS even when HTTP is blocked";
const WHY_HOST: &str = "a hard-coded host the skill does not declare: its scripts may not reach it, and a reviewer should know why it is there";
const WHY_HOST_PROSE: &str = "a host the skill mentions but does not declare";
const WHY_IP: &str = "a hard-coded IP address: bypasses name-based review and is typical of command-and-control servers";
const WHY_LOCAL_IP: &str =
    "a hard-coded local or private IP address: a skill reaching services on the host or LAN";
const WHY_EXFIL: &str =
    "a paste, tunnel or webhook site: where stolen data is usually sent or payloads fetched";
const WHY_HOMOGLYPH: &str = "a host name with non-ASCII letters or punycode: it can imitate a trusted name letter for letter";

pub(crate) static RULES: &[Rule] = &[
    // Lines that may hold a bare domain; [`BARE`] then runs on them only.
    Rule::new(
        "mark.tld",
        Level::Mark,
        "",
        &[
            ".com", ".net", ".org", ".io", ".ai", ".dev", ".app", ".co", ".me", ".xyz", ".ru", ".cn",
            ".in", ".us", ".uk", ".de", ".fr", ".jp", ".su", ".pw", ".tk", ".ly", ".gd", ".gg", ".is",
            ".info", ".biz", ".site", ".online", ".top", ".icu", ".ws", ".sh", ".st", ".lt",
        ],
        None,
    ),
    Rule::new(
        "net.http_client",
        Level::Network,
        WHY_HTTP,
        &[
            "requests.", "urllib", "http.client", "httpx", "aiohttp", "fetch(", "axios", "net/http",
            "http.get", "http.request", "https.get", "https.request", "lwp::", "http::tiny", "net::http",
            "open-uri", "httparty", "faraday", "invoke-webrequest", "invoke-restmethod", "iwr ", "irm ",
            "webclient", "xmlhttprequest", "node-fetch", "urlopen", "pycurl", "websocket", "http.newrequest",
        ],
        Some(r"(?i)\brequests\.(?:get|post|put|delete|patch|head|request|session)\b|\burllib[23]?\b|\bhttp\.client\b|\bhttpx\b|\baiohttp\b|\bfetch\s*\(|\baxios\b|net/http|\bhttps?\.(?:get|request|newrequest)\b|\bLWP::|\bHTTP::Tiny\b|\bNet::HTTP\b|\bopen-uri\b|\bHTTParty\b|\bFaraday\b|\bInvoke-(?:WebRequest|RestMethod)\b|\b(?:iwr|irm)\s|\bWebClient\b|\bXMLHttpRequest\b|\bnode-fetch\b|\burlopen\s*\(|\bpycurl\b|\bWebSocket\b"),
    )
    .once(),
    Rule::new(
        "net.socket",
        Level::Network,
        WHY_SOCKET,
        &["socket", "/dev/tcp", "/dev/udp", "tcpclient", "net.connect", "net.createconnection", "net.dial", "nc ", "ncat", "netcat", "telnet"],
        Some(r"(?i)\bsocket\.(?:socket|create_connection)\b|\bnet\.(?:connect|createConnection|Socket|Dial)\b|\bIO::Socket|\bTCPSocket\b|\bTcpClient\b|/dev/(?:tcp|udp)/|(?:^|[\s;&|(])(?:nc|ncat|netcat|telnet)\s+-?\w"),
    )
    .once(),
    Rule::new(
        "net.curl_wget",
        Level::Network,
        WHY_CURL,
        &["curl", "wget"],
        Some(r#"(?:^|[\s;&|(`"'$])(?:curl|wget)(?:\s|$)"#),
    )
    .once(),
    Rule::new(
        "net.dns_exfil",
        Level::Fixed(Severity::High),
        WHY_DNS,
        &["nslookup", "dig ", "host ", "drill", "ping", "gethostbyname", "getaddrinfo", "dns.", "resolve-dnsname", "resolver"],
        Some(concat!(
            // shell: a lookup whose name has a variable or substitution before a domain
            r"(?i)\b(?:nslookup|dig|host|drill|ping)\b[^\n]*(?:\$\{?\w|\$\()[^\n]*\.[a-z0-9-]+\.[a-z]{2,}",
            r#"|\bgethostbyname(?:_ex)?\s*\(\s*(?:f["'][^"'\n]*\{|[^)\n]*(?:\+|%|\.format\(|\.join\())"#,
            r#"|\bgetaddrinfo\s*\(\s*(?:f["'][^"'\n]*\{|[^,)\n]*\+)"#,
            r"|\bdns\.(?:resolve\w*|lookup)\s*\(\s*(?:`[^`\n]*\$\{|[^,)\n]*\+)",
            r#"|\bresolver\.(?:resolve|query)\s*\(\s*(?:f["']|[^,)\n]*\+)"#,
            r"|\bresolve-dnsname\b[^\n]*\$",
        )),
    ),
];

/// A skill's declared capabilities, parsed once for the scan.
pub(crate) struct Declared {
    egress: Vec<HostPattern>,
    secrets: Vec<String>,
    bins: Vec<String>,
}

impl Declared {
    /// Unparsable egress patterns are left out (so they allow nothing here); the
    /// manifest parser reports them.
    pub fn new(caps: &Capabilities) -> Declared {
        Declared {
            egress: caps
                .egress
                .iter()
                .filter_map(|p| HostPattern::parse(p).ok())
                .collect(),
            secrets: caps
                .secrets
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            bins: caps.bins.clone(),
        }
    }

    pub fn has_egress(&self) -> bool {
        !self.egress.is_empty()
    }

    /// Whether `host:port` is covered by a declared egress pattern.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.egress.iter().any(|p| p.matches(host, port))
    }

    pub(crate) fn allows_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    pub(crate) fn allows_bin(&self, bin: &str) -> bool {
        self.bins.iter().any(|b| {
            let base = b.rsplit('/').next().unwrap_or(b);
            base == bin
        })
    }
}

/// Whether `host` (as written in a skill, with an optional `:port`) is covered by
/// the `egress` patterns of `caps`. Without a port, 443 is assumed.
pub fn host_declared(caps: &Capabilities, host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, port),
            Err(_) => return false,
        },
        _ => (host, 443),
    };
    Declared::new(caps).allows_host(name, port)
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    super::rules::compile(r#"(?i)\b(https?|ftps?|wss?|sftp|ssh|git|tcp|udp|smb|ldap|rtmp)://(?:[^\s/@"'<>`]*@)?(\[[0-9a-f:.]+\]|[^\s/:?#"'<>()\[\]{}\\`,;|*]+)(?::(\d{1,5}))?"#)
        .expect("URL pattern")
});

/// A bare domain under a common top-level domain, on a line with a TLD trigger. What
/// precedes the name is checked by hand (a name inside a URL or a path is not bare).
static BARE: LazyLock<Regex> = LazyLock::new(|| {
    super::rules::compile(r"(?i)\b((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|ai|dev|app|co|me|xyz|ru|cn|in|us|uk|de|fr|jp|su|pw|tk|ly|gd|gg|is|info|biz|site|online|top|icu|ws|sh|st|lt))(?::([0-9]{1,5}))?\b")
        .expect("bare domain pattern")
});

static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    super::rules::compile(r"(?:^|[^\w.])((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})(?::(\d{1,5}))?\b")
        .expect("IPv4 pattern")
});

static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    super::rules::compile(
        r"(?i)(?:^|[^\w:.\[])([0-9a-f]{0,4}(?::[0-9a-f]{0,4}){3,7})(?:$|[^\w:.\]])",
    )
    .expect("IPv6 pattern")
});

/// First labels that make `a.b.com`-looking text code, not a host (`self.info`).
const CODE_RECEIVERS: &[&str] = &[
    "self", "this", "os", "sys", "process", "window", "document", "console", "logger", "logging",
    "log", "math", "json", "np", "pd", "path", "fs", "ctx", "req", "res", "module", "exports",
    "args", "config", "cfg", "options", "opts", "settings", "env", "response", "request", "client",
    "session", "app", "obj", "data", "result", "item", "user", "e", "err", "event",
];

/// Domains where stolen data goes or payloads come from (paste sites, tunnels,
/// request catchers, anonymous file drops, link shorteners).
const EXFIL_SITES: &[&str] = &[
    "pastebin.com",
    "paste.ee",
    "hastebin.com",
    "ghostbin.com",
    "rentry.co",
    "rentry.org",
    "dpaste.org",
    "dpaste.com",
    "termbin.com",
    "ix.io",
    "sprunge.us",
    "controlc.com",
    "ngrok.io",
    "ngrok-free.app",
    "ngrok.app",
    "ngrok.dev",
    "webhook.site",
    "requestbin.com",
    "requestbin.net",
    "pipedream.net",
    "m.pipedream.net",
    "beeceptor.com",
    "hookbin.com",
    "transfer.sh",
    "file.io",
    "0x0.st",
    "temp.sh",
    "bashupload.com",
    "gofile.io",
    "anonfiles.com",
    "catbox.moe",
    "interact.sh",
    "oast.fun",
    "oast.live",
    "oast.me",
    "oast.pro",
    "oast.site",
    "burpcollaborator.net",
    "oastify.com",
    "dnslog.cn",
    "ceye.io",
    "trycloudflare.com",
    "serveo.net",
    "loca.lt",
    "localtunnel.me",
    "pagekite.me",
    "gist.githubusercontent.com",
    "api.telegram.org",
    "bit.ly",
    "tinyurl.com",
    "is.gd",
    "cutt.ly",
];

/// Top-level domains that are also common file extensions: as bare words they are
/// file names (`install.sh`), so only known exfiltration sites count.
const FILE_LIKE_TLDS: &[&str] = &["sh", "st", "lt", "is", "in", "me", "co"];

/// Where a host was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Url,
    Bare,
    Ip,
}

struct HostRef<'a> {
    host: &'a str,
    port: u16,
    start: usize,
    end: usize,
    kind: Kind,
}

fn hosts<'a>(text: &'a str, tld_lines: impl Iterator<Item = (usize, usize)>) -> Vec<HostRef<'a>> {
    let mut out = Vec::new();
    for c in URL.captures_iter(text) {
        let (Some(scheme), Some(h)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let default = match scheme.as_str().to_ascii_lowercase().as_str() {
            "http" | "ws" => 80,
            "ftp" | "ftps" => 21,
            "ssh" | "sftp" => 22,
            _ => 443,
        };
        let port = c
            .get(3)
            .and_then(|p| p.as_str().parse().ok())
            .unwrap_or(default);
        let host = h.as_str().trim_start_matches('[').trim_end_matches(']');
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            continue;
        }
        let kind = if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
            Kind::Ip
        } else {
            Kind::Url
        };
        out.push(HostRef {
            host,
            port,
            start: h.start(),
            end: h.end(),
            kind,
        });
    }
    for (ls, le) in tld_lines {
        for c in BARE.captures_iter(&text[ls..le]) {
            let Some(h) = c.get(1) else { continue };
            let (start, end) = (ls + h.start(), ls + h.end());
            // Inside a URL, a path or an e-mail address: not bare. After a `.` it is the
            // end of a name built at run time (`f"{data}.t.evil.io"`), which counts.
            let before = text[..start].chars().next_back();
            if before.is_some_and(|b| {
                b.is_alphanumeric() || matches!(b, '@' | '/' | ':' | '\\' | '-' | '_')
            }) {
                continue;
            }
            let after = text[end..].chars().next();
            // `logger.info(`, `foo.com_bar`: code, not a host.
            if matches!(after, Some('(' | '_' | '=')) {
                continue;
            }
            let host = h.as_str();
            let first = host.split('.').next().unwrap_or("");
            if CODE_RECEIVERS.iter().any(|r| r.eq_ignore_ascii_case(first)) {
                continue;
            }
            let tld = host.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            if FILE_LIKE_TLDS.contains(&tld.as_str()) && exfil_site(host).is_none() {
                continue;
            }
            let port = c
                .get(2)
                .and_then(|p| p.as_str().parse().ok())
                .unwrap_or(443);
            out.push(HostRef {
                host,
                port,
                start,
                end,
                kind: Kind::Bare,
            });
        }
    }
    for c in IPV4.captures_iter(text) {
        let Some(h) = c.get(1) else { continue };
        // `1.2.3.4.5` is a version, not an address.
        if text[h.end()..].starts_with('.') {
            continue;
        }
        let port = c
            .get(2)
            .and_then(|p| p.as_str().parse().ok())
            .unwrap_or(443);
        out.push(HostRef {
            host: h.as_str(),
            port,
            start: h.start(),
            end: h.end(),
            kind: Kind::Ip,
        });
    }
    for c in IPV6.captures_iter(text) {
        let Some(h) = c.get(1) else { continue };
        let digits = h.as_str().bytes().filter(u8::is_ascii_hexdigit).count();
        if digits >= 4 && h.as_str().parse::<Ipv6Addr>().is_ok() {
            out.push(HostRef {
                host: h.as_str(),
                port: 443,
                start: h.start(),
                end: h.end(),
                kind: Kind::Ip,
            });
        }
    }
    out.sort_by_key(|h| h.start);
    out
}

/// The exfiltration site `host` is or is under.
fn exfil_site(host: &str) -> Option<&'static str> {
    let host = host.to_ascii_lowercase();
    EXFIL_SITES.iter().copied().find(|site| {
        host == *site || (host.ends_with(site) && host[..host.len() - site.len()].ends_with('.'))
    })
}

/// Names reserved for documentation and local use (RFC 2606, 6761, 6762).
fn reserved(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    let under = |suffix: &str| h == suffix || h.ends_with(&format!(".{suffix}"));
    ["localhost", "example", "test", "invalid", "local"]
        .iter()
        .any(|s| under(s))
        || ["example.com", "example.org", "example.net"]
            .iter()
            .any(|s| under(s))
}

fn ip_is_public(host: &str) -> bool {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return !(ip.is_loopback()
            || ip.is_private()
            || ip.is_unspecified()
            || ip.is_link_local()
            || ip.is_broadcast()
            || ip.is_documentation());
    }
    if let Ok(ip) = host.parse::<Ipv6Addr>() {
        let seg = ip.segments()[0];
        let unique_local = (seg & 0xfe00) == 0xfc00;
        let link_local = (seg & 0xffc0) == 0xfe80;
        let documentation = seg == 0x2001 && ip.segments()[1] == 0x0db8;
        return !(ip.is_loopback()
            || ip.is_unspecified()
            || unique_local
            || link_local
            || documentation);
    }
    false
}

/// Hosts and IP literals of `src` against the declared egress.
pub(crate) fn check(src: &Source<'_>, hits: &[Hit], declared: &Declared, out: &mut Findings) {
    let tld_lines = marked(hits, "mark.tld").map(|h| src.line_range(h.line));
    for h in hosts(src.text, tld_lines) {
        let lower = h.host.to_ascii_lowercase();
        let homoglyph = !h.host.is_ascii() || lower.split('.').any(|l| l.starts_with("xn--"));
        if homoglyph {
            out.push_keyed(
                src,
                "obf.homoglyph_host",
                &lower,
                Severity::High,
                h.start,
                h.end,
                WHY_HOMOGLYPH,
            );
            continue;
        }
        if reserved(&lower) || declared.allows_host(&lower, h.port) {
            continue;
        }
        let discord_hook = matches!(
            lower.as_str(),
            "discord.com" | "discordapp.com" | "canary.discord.com"
        ) && src.text[h.end..].starts_with("/api/webhooks");
        if exfil_site(&lower).is_some() || discord_hook {
            out.push_keyed(
                src,
                "net.exfil_host",
                &lower,
                Severity::High,
                h.start,
                h.end,
                WHY_EXFIL,
            );
            continue;
        }
        match h.kind {
            Kind::Ip if ip_is_public(&lower) => out.push_keyed(
                src,
                "net.ip_literal",
                &lower,
                Severity::High,
                h.start,
                h.end,
                WHY_IP,
            ),
            Kind::Ip => out.push_keyed(
                src,
                "net.ip_literal",
                &lower,
                Severity::Medium,
                h.start,
                h.end,
                WHY_LOCAL_IP,
            ),
            Kind::Url | Kind::Bare if src.is_code(h.start) => out.push_keyed(
                src,
                "net.host_undeclared",
                &lower,
                Severity::Medium,
                h.start,
                h.end,
                WHY_HOST,
            ),
            Kind::Url | Kind::Bare => out.push_keyed(
                src,
                "net.host_undeclared",
                &lower,
                Severity::Low,
                h.start,
                h.end,
                WHY_HOST_PROSE,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(egress: &[&str]) -> Capabilities {
        Capabilities {
            egress: egress.iter().map(|s| s.to_string()).collect(),
            ..Capabilities::default()
        }
    }

    #[test]
    fn exact_pattern_covers_only_that_host() {
        let c = caps(&["api.weather.com"]);
        assert!(host_declared(&c, "api.weather.com"));
        assert!(host_declared(&c, "API.Weather.com."));
        assert!(!host_declared(&c, "weather.com"));
        assert!(!host_declared(&c, "api.weather.com.evil.io"));
        assert!(!host_declared(&c, "evilapi.weather.com"));
        assert!(!host_declared(&c, "api.weather.com:8443"));
    }

    #[test]
    fn wildcard_covers_strict_subdomains_only() {
        let c = caps(&["*.example-cdn.net"]);
        assert!(host_declared(&c, "a.example-cdn.net"));
        assert!(host_declared(&c, "a.b.example-cdn.net"));
        assert!(!host_declared(&c, "example-cdn.net"));
        assert!(!host_declared(&c, "evilexample-cdn.net"));
        assert!(!host_declared(&c, "example-cdn.net.attacker.io"));
    }

    #[test]
    fn ports_must_be_declared() {
        let c = caps(&["db.internal.io:5432"]);
        assert!(host_declared(&c, "db.internal.io:5432"));
        assert!(!host_declared(&c, "db.internal.io"));
    }

    #[test]
    fn nothing_declared_covers_nothing() {
        assert!(!host_declared(&caps(&[]), "api.weather.com"));
        // An invalid pattern (`*` alone) is no licence for every host.
        assert!(!host_declared(&caps(&["*"]), "api.weather.com"));
    }

    #[test]
    fn hosts_are_found_in_urls_bare_names_and_literals() {
        let text = "x = 'https://api.a-b.com:8443/p'\nhost evil.io; logger.info('x') run install.sh\nconnect 203.0.113.9:4444 v1.2.3.4.5\n[2001:db8::1] and fe80:0:0:0:1:2:3:4\n";
        // Every line is a candidate here (the scan passes only lines with a TLD).
        let lines = text.match_indices('\n').scan(0, |start, (i, _)| {
            let range = (*start, i);
            *start = i + 1;
            Some(range)
        });
        let found: Vec<(&str, u16, Kind)> = hosts(text, lines)
            .iter()
            .map(|h| (h.host, h.port, h.kind))
            .collect();
        assert_eq!(
            found,
            vec![
                ("api.a-b.com", 8443, Kind::Url),
                ("evil.io", 443, Kind::Bare),
                ("203.0.113.9", 4444, Kind::Ip),
                ("fe80:0:0:0:1:2:3:4", 443, Kind::Ip),
            ],
        );
    }

    #[test]
    fn exfil_sites_match_their_subdomains_only() {
        assert_eq!(exfil_site("abc.ngrok.io"), Some("ngrok.io"));
        assert_eq!(exfil_site("PASTEBIN.com"), Some("pastebin.com"));
        assert_eq!(exfil_site("notpastebin.com"), None);
    }
}
