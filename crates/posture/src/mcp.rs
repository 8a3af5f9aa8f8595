//! MCP servers (`[mcp.servers.NAME]`) and their approvals (`mcp.lock`) as an attacker
//! would look at them.
//!
//! "A server without an egress allowlist", in Cordon's terms. A stdio server's `egress`
//! is its whole allowlist through the proxy, and an empty one means no network at all —
//! the safe default, not a finding. Host patterns admitting any host (`*`) or a whole
//! top-level domain (`*.com`) are refused by the loader, and `*.co.uk`-style wildcards over
//! a public suffix load but admit as much: all three are `mcp.egress_open` (critical),
//! read from the config's text so they are named even when the loader refuses the file. A
//! wildcard over a suffix where anyone can publish (`*.github.io`) is
//! `mcp.egress_user_content` (warn). An HTTP server (`url`) off this machine runs on
//! someone else's host: nothing Cordon sets limits what it reaches or keeps of the
//! arguments it is sent (`mcp.remote`, info). Secrets widen none of this — the proxy swaps a
//! placeholder only on a connection to a host the secret is bound to — so a server's
//! secrets are checked for being usable at all (`mcp.secret_missing`,
//! `mcp.secret_unreachable`), not for breadth (`secrets.bound_too_widely` covers that).
//!
//! `trust = "trusted"` (`mcp.trusted`): the server's results do not label the session
//! untrusted, so text it relays is treated like the user's; warn when the server can
//! reach the network (it can relay anyone's text), info otherwise.
//!
//! Approvals: only pinned tools are offered, so a tool never approved is unusable, not
//! dangerous (`mcp.no_approved_tools`, `mcp.included_not_approved`, info). Pins are keyed
//! by server name, so pins left for a server no longer configured approve the same tools
//! of whatever server is configured under that name later, its code never reviewed
//! (`mcp.stale_pins`, warn). A lock Cordon refuses to load (a hash that no longer matches
//! its description: edited by hand) stops every start (`mcp.lock_invalid`, critical).
//!
//! Pure: the caller reads the config, `mcp.lock` and the vault.

use std::collections::BTreeMap;

use config::{HostPattern, McpServerConfig};
use toml::{Table, Value};

use crate::config_checks::USER_CONTENT;
use crate::{Finding, Severity};

/// Second-level labels under which a country-code TLD sells names to anyone
/// (`co.uk`, `com.au`, `or.jp`): a wildcard over `LABEL.CC` is a wildcard over a public
/// suffix.
const GENERIC_SECOND_LEVEL: &[&str] = &[
    "ac", "biz", "co", "com", "edu", "go", "gob", "gov", "info", "ltd", "mil", "ne", "net", "nic",
    "nom", "or", "org", "plc", "sch",
];

/// How much of the network one egress pattern admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breadth {
    /// `*`, `*.com`, `*.co.uk`: any host, or any under a public suffix.
    Open,
    /// `*.github.io`: any site under a suffix where anyone can publish.
    UserContent,
    /// Named hosts, or a wildcard under one owner's domain.
    Narrow,
}

fn breadth(pattern: &str) -> Breadth {
    let p = pattern.trim().to_ascii_lowercase();
    let host = p.split(':').next().unwrap_or("").trim_end_matches('.');
    if host == "*" || host.is_empty() {
        return Breadth::Open;
    }
    let Some(rest) = host.strip_prefix("*.") else {
        return Breadth::Narrow;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    let public_suffix = match labels.as_slice() {
        [_] => true,
        [second, cc] => cc.len() == 2 && GENERIC_SECOND_LEVEL.contains(second),
        _ => false,
    };
    if public_suffix {
        Breadth::Open
    } else if USER_CONTENT
        .iter()
        .any(|s| rest == *s || rest.ends_with(&format!(".{s}")))
    {
        Breadth::UserContent
    } else {
        Breadth::Narrow
    }
}

/// Findings from the `[mcp.servers.NAME]` tables of the config's text, read leniently
/// (a value of the wrong type is skipped; the loader's `config.invalid` names it).
pub fn servers(table: &Table) -> Vec<Finding> {
    let Some(servers) = table
        .get("mcp")
        .and_then(Value::as_table)
        .and_then(|m| m.get("servers"))
        .and_then(Value::as_table)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, server) in servers {
        if let Some(server) = server.as_table() {
            one_server(name, server, &mut out);
        }
    }
    out
}

fn one_server(name: &str, server: &Table, out: &mut Vec<Finding>) {
    let key = format!("mcp.servers.{name}");
    let egress: Vec<&str> = server
        .get("egress")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for pattern in &egress {
        match breadth(pattern) {
            Breadth::Open => out.push(Finding::new(
                "mcp.egress_open",
                Severity::Critical,
                format!("MCP server `{name}` may connect to any host: it has no egress allowlist"),
                format!("{key}.egress contains \"{pattern}\""),
                "list the exact hosts the server needs (e.g. \"api.github.com\"); leave \
                 `egress` empty for a server that needs no network",
            )),
            Breadth::UserContent => out.push(Finding::new(
                "mcp.egress_user_content",
                Severity::Warn,
                format!(
                    "MCP server `{name}` may reach any site under `{}`, where anyone can \
                     publish (a place to fetch instructions from or upload data to)",
                    pattern
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .trim_start_matches("*.")
                ),
                format!("{key}.egress contains \"{pattern}\""),
                "name the exact host (e.g. \"myorg.github.io\")",
            )),
            Breadth::Narrow => {}
        }
    }
    let url = server.get("url").and_then(Value::as_str);
    let remote = url.and_then(|u| config::http_url(u).ok()).and_then(|u| {
        (!config::is_loopback_url(&u)).then(|| u.host_str().unwrap_or_default().to_string())
    });
    if let (Some(url), Some(host)) = (url, &remote) {
        out.push(Finding::new(
            "mcp.remote",
            Severity::Info,
            format!(
                "MCP server `{name}` runs on `{host}`, off this machine: Cordon cannot limit \
                 what it reaches or keeps of what it is sent"
            ),
            format!("{key}.url = \"{url}\""),
            "use it only if you trust its operator with every argument the agent may send \
             it; a server you can run yourself is better as a stdio server (`command`) in \
             Cordon's sandbox",
        ));
    }
    if server.get("trust").and_then(Value::as_str) == Some("trusted") {
        let networked = !egress.is_empty() || url.is_some();
        out.push(Finding::new(
            "mcp.trusted",
            if networked {
                Severity::Warn
            } else {
                Severity::Info
            },
            if networked {
                format!(
                    "MCP server `{name}` is trusted and reaches the network: text it relays \
                     from elsewhere does not mark the session untrusted"
                )
            } else {
                format!(
                    "MCP server `{name}` is trusted: its results do not mark the session untrusted"
                )
            },
            if networked {
                format!(
                    "{key}.trust = \"trusted\" with {}",
                    url.map_or_else(
                        || format!("egress {}", egress.join(", ")),
                        |u| format!("url {u}")
                    )
                )
            } else {
                format!("{key}.trust = \"trusted\"")
            },
            "remove `trust = \"trusted\"` unless you wrote and control the server and \
             everything its results can contain",
        ));
    }
}

/// The patterns one `(host, port)` set of a pattern covers overlap another's: some
/// host:port matches both.
fn overlaps(a: &HostPattern, b: &HostPattern) -> bool {
    let ports = |p: &HostPattern| p.port().map_or(vec![80, 443], |p| vec![p]);
    let port_ok = ports(a).iter().any(|p| ports(b).contains(p));
    let under = |sub: &str, parent: &str| sub.ends_with(&format!(".{parent}"));
    let hosts_ok = match (a.is_wildcard(), b.is_wildcard()) {
        (false, false) => a.host() == b.host(),
        (true, false) => under(b.host(), a.host()),
        (false, true) => under(a.host(), b.host()),
        (true, true) => {
            a.host() == b.host() || under(a.host(), b.host()) || under(b.host(), a.host())
        }
    };
    port_ok && hosts_ok
}

/// The hosts `server` can reach: its `egress` and, for an HTTP server, the URL's host.
fn reachable(server: &McpServerConfig) -> Vec<HostPattern> {
    let mut hosts = server.egress.clone();
    if let Some(u) = server.url.as_deref().and_then(|u| config::http_url(u).ok()) {
        let pattern = match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => HostPattern::parse(&format!("{h}:{p}")).ok(),
            _ => None,
        };
        hosts.extend(pattern);
    }
    hosts
}

/// Each server's secrets against the vault (`vault`: each secret's name and bound hosts).
pub fn secret_bindings(
    servers: &BTreeMap<String, McpServerConfig>,
    vault: &[(String, Vec<HostPattern>)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, server) in servers {
        let reach = reachable(server);
        for secret in &server.secrets {
            let key = format!("mcp.servers.{name}.secrets");
            let Some((_, bound)) = vault.iter().find(|(n, _)| n == secret) else {
                out.push(Finding::new(
                    "mcp.secret_missing",
                    Severity::Warn,
                    format!(
                        "MCP server `{name}` is given secret {secret}, which is not in the \
                         vault: Cordon refuses to start any agent"
                    ),
                    format!("{key} names {secret}"),
                    format!(
                        "add it with `cordon secrets set {secret} --hosts HOST`, or remove it \
                         from {key}"
                    ),
                ));
                continue;
            };
            if !bound.iter().any(|b| reach.iter().any(|r| overlaps(b, r))) {
                let list = |h: &[HostPattern]| {
                    if h.is_empty() {
                        "nothing".to_string()
                    } else {
                        h.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                out.push(Finding::new(
                    "mcp.secret_unreachable",
                    Severity::Info,
                    format!(
                        "MCP server `{name}` is given secret {secret} but can reach none of \
                         the hosts it is bound to: the server only ever sees a placeholder"
                    ),
                    format!(
                        "{secret} is bound to {}; the server may reach {}",
                        list(bound),
                        list(&reach)
                    ),
                    format!(
                        "add the API host to mcp.servers.{name}.egress, bind the secret to the \
                         host the server calls, or remove it from {key}"
                    ),
                ));
            }
        }
    }
    out
}

/// Configured servers against the tools pinned in `mcp.lock` (`pinned`: server name to
/// its pinned tool names).
pub fn approvals(
    servers: &BTreeMap<String, McpServerConfig>,
    pinned: &BTreeMap<String, Vec<String>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, server) in servers {
        let tools: Vec<&String> = pinned
            .get(name)
            .map(|t| t.iter().filter(|t| server.tools.allows(t)).collect())
            .unwrap_or_default();
        if tools.is_empty() {
            out.push(Finding::new(
                "mcp.no_approved_tools",
                Severity::Info,
                format!("MCP server `{name}` has no approved tool: agents cannot use it"),
                format!(
                    "mcp.lock pins no tool of `{name}`{}",
                    if pinned.get(name).is_some_and(|t| !t.is_empty()) {
                        " that its tools filter lets through"
                    } else {
                        ""
                    }
                ),
                format!(
                    "review its tools with `cordon mcp tools {name}` and approve those it needs \
                     with `cordon mcp approve {name} TOOL…`, or remove the server"
                ),
            ));
            continue;
        }
        let missing: Vec<&str> = server
            .tools
            .include
            .iter()
            .filter(|t| !tools.contains(t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            out.push(Finding::new(
                "mcp.included_not_approved",
                Severity::Info,
                format!(
                    "tools of MCP server `{name}` named in its tools.include were never \
                     approved: {}",
                    missing.join(", ")
                ),
                format!(
                    "mcp.servers.{name}.tools.include names {}; mcp.lock does not pin them",
                    missing.join(", ")
                ),
                format!(
                    "approve them with `cordon mcp approve {name} {}` after `cordon mcp tools \
                     {name}`, or drop them from tools.include",
                    missing.join(" ")
                ),
            ));
        }
    }
    for (name, tools) in pinned {
        if servers.contains_key(name) || tools.is_empty() {
            continue;
        }
        out.push(Finding::new(
            "mcp.stale_pins",
            Severity::Warn,
            format!(
                "mcp.lock approves tools of `{name}`, which is no longer configured: a server \
                 configured later under that name gets them approved without review"
            ),
            format!("mcp.lock pins {} of server `{name}`", tools.join(", ")),
            format!(
                "delete the [[server]] entry named \"{name}\" from mcp.lock (the other \
                 servers' pins are unaffected)"
            ),
        ));
    }
    out
}

/// `mcp.lock` could not be loaded (`error` names the file and line).
pub fn lock_invalid(error: impl std::fmt::Display) -> Finding {
    Finding::new(
        "mcp.lock_invalid",
        Severity::Critical,
        "Cordon refuses to load mcp.lock: no agent can start",
        error.to_string(),
        "find out who changed it; restore it from version control, or delete the named \
         server's entry and approve its tools again with `cordon mcp approve`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.id).collect()
    }

    fn parsed(text: &str) -> Table {
        text.parse().expect("toml")
    }

    fn server(toml_text: &str) -> McpServerConfig {
        toml::from_str(toml_text).expect("server")
    }

    fn hosts(list: &[&str]) -> Vec<HostPattern> {
        list.iter()
            .map(|h| HostPattern::parse(h).expect("pattern"))
            .collect()
    }

    #[test]
    fn egress_that_admits_any_host_is_critical_and_an_empty_one_is_fine() {
        let f = servers(&parsed(
            r#"
[mcp.servers.open]
command = "x"
egress = ["api.github.com", "*", "*.com", "*.co.uk:8443", "*.github.io", "*.example.com"]
[mcp.servers.none]
command = "x"
[mcp.servers.narrow]
command = "x"
egress = ["api.github.com", "*.bbc.co.uk", "*.ibm.com"]
"#,
        ));
        assert_eq!(
            ids(&f),
            [
                "mcp.egress_open",
                "mcp.egress_open",
                "mcp.egress_open",
                "mcp.egress_user_content"
            ]
        );
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f.iter().all(|f| f.title.contains("`open`")), "{f:#?}");
        assert_eq!(f[1].evidence, "mcp.servers.open.egress contains \"*.com\"");
        assert!(f[3].title.contains("`github.io`"), "{}", f[3].title);
    }

    #[test]
    fn a_trusted_server_is_worse_with_network_and_a_remote_one_is_named() {
        let f = servers(&parsed(
            r#"
[mcp.servers.local]
command = "x"
trust = "trusted"
[mcp.servers.fetcher]
command = "x"
egress = ["api.example.com"]
trust = "trusted"
[mcp.servers.saas]
url = "https://mcp.example.com/mcp"
[mcp.servers.here]
url = "http://127.0.0.1:9000/mcp"
trust = "untrusted"
"#,
        ));
        let got: Vec<(&str, Severity, &str)> = f
            .iter()
            .map(|f| (f.id, f.severity, f.evidence.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "mcp.trusted",
                    Severity::Warn,
                    "mcp.servers.fetcher.trust = \"trusted\" with egress api.example.com"
                ),
                (
                    "mcp.trusted",
                    Severity::Info,
                    "mcp.servers.local.trust = \"trusted\""
                ),
                (
                    "mcp.remote",
                    Severity::Info,
                    "mcp.servers.saas.url = \"https://mcp.example.com/mcp\""
                ),
            ]
        );
        assert!(f[2].title.contains("`mcp.example.com`"), "{}", f[2].title);
        assert!(servers(&parsed("[mcp]\n")).is_empty());
        assert!(
            servers(&parsed("mcp = 3\n")).is_empty(),
            "wrong types are the loader's"
        );
    }

    #[test]
    fn a_secret_missing_from_the_vault_or_bound_to_hosts_out_of_reach_is_named() {
        let servers: BTreeMap<String, McpServerConfig> = [
            (
                "gh".to_string(),
                server(
                    "command = \"x\"\negress = [\"*.github.com\"]\nsecrets = [\"GH\", \"NOPE\"]\n",
                ),
            ),
            (
                "offline".to_string(),
                server("command = \"x\"\nsecrets = [\"GH\"]\n"),
            ),
            (
                "saas".to_string(),
                server("url = \"https://mcp.example.com/mcp\"\nsecrets = [\"SAAS\"]\n"),
            ),
            (
                "wrongport".to_string(),
                server("command = \"x\"\negress = [\"api.github.com:8443\"]\nsecrets = [\"GH\"]\n"),
            ),
        ]
        .into();
        let vault = vec![
            ("GH".to_string(), hosts(&["api.github.com"])),
            ("SAAS".to_string(), hosts(&["mcp.example.com"])),
        ];
        let f = secret_bindings(&servers, &vault);
        let got: Vec<(&str, &str)> = f.iter().map(|f| (f.id, f.title.as_str())).collect();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(f[0].id, "mcp.secret_missing");
        assert!(f[0].title.contains("`gh`") && f[0].title.contains("NOPE"));
        assert_eq!(f[1].id, "mcp.secret_unreachable");
        assert!(f[1].title.contains("`offline`"), "{}", f[1].title);
        assert_eq!(
            f[1].evidence,
            "GH is bound to api.github.com; the server may reach nothing"
        );
        assert_eq!(f[2].id, "mcp.secret_unreachable");
        assert!(f[2].title.contains("`wrongport`"), "{}", f[2].title);
    }

    #[test]
    fn pattern_overlap_follows_wildcards_and_ports() {
        let p = |s: &str| HostPattern::parse(s).expect("pattern");
        assert!(overlaps(&p("api.github.com"), &p("*.github.com")));
        assert!(overlaps(&p("*.github.com"), &p("api.github.com")));
        assert!(overlaps(&p("*.a.github.com"), &p("*.github.com")));
        assert!(overlaps(&p("api.github.com:443"), &p("api.github.com")));
        assert!(!overlaps(&p("github.com"), &p("*.github.com")));
        assert!(!overlaps(&p("evilgithub.com"), &p("*.github.com")));
        assert!(!overlaps(&p("api.github.com:8443"), &p("api.github.com")));
    }

    #[test]
    fn unapproved_tools_and_pins_of_a_server_no_longer_configured_are_reported() {
        let servers: BTreeMap<String, McpServerConfig> = [
            ("fresh".to_string(), server("command = \"x\"\n")),
            (
                "partly".to_string(),
                server("command = \"x\"\n[tools]\ninclude = [\"read\", \"write\"]\n"),
            ),
            (
                "filtered".to_string(),
                server("command = \"x\"\n[tools]\nexclude = [\"only\"]\n"),
            ),
            ("done".to_string(), server("command = \"x\"\n")),
        ]
        .into();
        let pinned: BTreeMap<String, Vec<String>> = [
            ("partly".to_string(), vec!["read".to_string()]),
            ("filtered".to_string(), vec!["only".to_string()]),
            ("done".to_string(), vec!["a".to_string()]),
            ("gone".to_string(), vec!["x".to_string(), "y".to_string()]),
            ("emptied".to_string(), vec![]),
        ]
        .into();
        let f = approvals(&servers, &pinned);
        let got: Vec<(&str, &str)> = f.iter().map(|f| (f.id, f.evidence.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "mcp.no_approved_tools",
                    "mcp.lock pins no tool of `filtered` that its tools filter lets through"
                ),
                ("mcp.no_approved_tools", "mcp.lock pins no tool of `fresh`"),
                (
                    "mcp.included_not_approved",
                    "mcp.servers.partly.tools.include names write; mcp.lock does not pin them"
                ),
                ("mcp.stale_pins", "mcp.lock pins x, y of server `gone`"),
            ]
        );
        assert_eq!(f[3].severity, Severity::Warn);
        assert!(f[2].remedy.contains("cordon mcp approve partly write"));
    }
}
