//! Typed actions: what a tool call would do, in the form policies decide on.
//!
//! Guarantees: [`Action::canonical`] and [`Action::fingerprint`] depend only on what the
//! action does, not on how it was spelled: an exec command is canonicalised with
//! [`canonicalise_exec`] (so `env bash -lc 'make test'` and `make test` share a
//! fingerprint), host names are lower-cased without a trailing dot. A changed argv, path,
//! host, port, method or URL is a different fingerprint.
//!
//! Not guaranteed: path resolution (the runtime resolves paths before building actions).

use config::ToolName;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::canonical::canonicalise_exec;

/// An action a tool call would perform, with the arguments that matter for policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    ReadFile {
        path: String,
    },
    WriteFile {
        path: String,
    },
    EditFile {
        path: String,
    },
    DeleteFile {
        path: String,
    },
    ListDir {
        path: String,
    },
    Search {
        path: String,
    },
    /// A shell command line as the model wrote it; canonicalised inside the guard.
    Exec {
        command: String,
    },
    /// An outbound connection. `method` is the HTTP method of an `http_fetch` call; an
    /// empty `method` is a connection opened by an exec'd process through the egress
    /// proxy (then `url` may be empty too).
    Connect {
        host: String,
        port: u16,
        scheme: String,
        method: String,
        url: String,
    },
    SpawnAgent {
        tools: Vec<String>,
        max_steps: u32,
        task_sha256: String,
    },
    MemoryWrite {
        file: String,
    },
    /// `host` is empty when unknown (a secret placeholder passed to exec).
    UseSecret {
        name: String,
        host: String,
    },
    InstallSkill {
        name: String,
        sha256: String,
    },
    /// A skill's instructions entering the context (`load_skill`): an installed, pinned
    /// skill enabled for the agent.
    LoadSkill {
        name: String,
        sha256: String,
    },
    /// A command that runs one of a skill's scripts, with the skill's capabilities
    /// instead of the agent's. `network`: the skill declares egress hosts; `writes`: it
    /// may write the workspace.
    RunSkill {
        name: String,
        sha256: String,
        command: String,
        network: bool,
        writes: bool,
    },
    /// A call of tool `tool` of MCP server `server` with `arguments` (canonical JSON
    /// text: keys sorted). `network`: the server can reach the network (it has egress
    /// hosts, or it is an HTTP server).
    McpCall {
        server: String,
        tool: String,
        arguments: String,
        network: bool,
    },
    /// A message sent with `send_message` to `to` (`CHANNEL:CONVERSATION`) through the
    /// channel whose platform API is at `host` (empty when unknown: private or secret
    /// data is then bound to it by nothing).
    SendMessage {
        to: String,
        host: String,
    },
}

impl Action {
    /// The `connect` of a request to `url`, parsed by WHATWG rules (ports default to the
    /// scheme's: 80 for http, 443 for https). For `cordon policy explain` and policy test
    /// cases; the runtime builds its own from the same parser's URL.
    pub fn connect_to(method: &str, url: &str) -> Result<Action, String> {
        // The WHATWG parser the HTTP client uses, so the host decided on is the host
        // connected to (`http://a\@b/` goes to `a`).
        let parsed = match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => config::http_url(url)?,
            Ok(u) => u,
            Err(e) => return Err(format!("`{url}` is not a URL (scheme://host/…): {e}")),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => name.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(format!("`{url}` has no host")),
        };
        let port = parsed.port_or_known_default().ok_or_else(|| {
            format!(
                "`{url}`: scheme `{}` has no default port; give one",
                parsed.scheme()
            )
        })?;
        Ok(Action::Connect {
            host: host.trim_end_matches('.').to_string(),
            port,
            scheme: parsed.scheme().to_string(),
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
        })
    }

    /// The Cedar action name: `exec`, `read_file`, `connect`, `spawn_agent`, …
    pub fn name(&self) -> &'static str {
        match self {
            Action::ReadFile { .. } => "read_file",
            Action::WriteFile { .. } => "write_file",
            Action::EditFile { .. } => "edit_file",
            Action::DeleteFile { .. } => "delete_file",
            Action::ListDir { .. } => "list_dir",
            Action::Search { .. } => "search",
            Action::Exec { .. } => "exec",
            Action::Connect { .. } => "connect",
            Action::SpawnAgent { .. } => "spawn_agent",
            Action::MemoryWrite { .. } => "memory_write",
            Action::UseSecret { .. } => "use_secret",
            Action::InstallSkill { .. } => "install_skill",
            Action::LoadSkill { .. } => "load_skill",
            Action::RunSkill { .. } => "run_skill",
            Action::McpCall { .. } => "mcp_call",
            Action::SendMessage { .. } => "send_message",
        }
    }

    /// The tool that must be in `agents.NAME.tools` for this action, if any. A connect
    /// made by an exec'd process needs `exec`; `delete_file` needs `write_file`;
    /// `use_secret` and `install_skill` need no tool (policies decide them alone).
    pub fn tool(&self) -> Option<ToolName> {
        Some(match self {
            Action::ReadFile { .. } => ToolName::ReadFile,
            Action::WriteFile { .. } | Action::DeleteFile { .. } => ToolName::WriteFile,
            Action::EditFile { .. } => ToolName::EditFile,
            Action::ListDir { .. } => ToolName::ListDir,
            Action::Search { .. } => ToolName::Search,
            Action::Exec { .. } => ToolName::Exec,
            Action::Connect { method, .. } if method.is_empty() => ToolName::Exec,
            Action::Connect { .. } => ToolName::HttpFetch,
            Action::SpawnAgent { .. } => ToolName::SpawnAgent,
            Action::MemoryWrite { .. } => ToolName::MemoryWrite,
            Action::RunSkill { .. } => ToolName::Exec,
            Action::SendMessage { .. } => ToolName::SendMessage,
            Action::UseSecret { .. }
            | Action::InstallSkill { .. }
            | Action::LoadSkill { .. }
            | Action::McpCall { .. } => {
                return None;
            }
        })
    }

    /// The action as shown to humans, e.g. `exec: rm -rf build`,
    /// `connect: GET https://h/p`.
    pub fn canonical(&self) -> String {
        match self {
            Action::ReadFile { path }
            | Action::WriteFile { path }
            | Action::EditFile { path }
            | Action::DeleteFile { path }
            | Action::ListDir { path }
            | Action::Search { path } => format!("{}: {path}", self.name()),
            Action::Exec { command } => format!("exec: {}", canonicalise_exec(command).text()),
            Action::Connect {
                host,
                port,
                method,
                url,
                ..
            } => {
                if method.is_empty() || url.is_empty() {
                    format!("connect: {}:{port}", normalise_host(host))
                } else {
                    format!("connect: {method} {url}")
                }
            }
            Action::SpawnAgent {
                tools,
                max_steps,
                task_sha256,
            } => format!(
                "spawn_agent: tools [{}], max_steps {max_steps}, task sha256 {task_sha256}",
                tools.join(", ")
            ),
            Action::MemoryWrite { file } => format!("memory_write: {file}"),
            Action::UseSecret { name, host } if host.is_empty() => {
                format!("use_secret: {name}")
            }
            Action::UseSecret { name, host } => format!("use_secret: {name} -> {host}"),
            Action::InstallSkill { name, sha256 } => {
                format!("install_skill: {name} (sha256 {sha256})")
            }
            Action::LoadSkill { name, sha256 } => {
                format!("load_skill: {name} (sha256 {sha256})")
            }
            Action::RunSkill {
                name,
                sha256,
                command,
                ..
            } => format!(
                "run_skill: {name} (sha256 {sha256}): {}",
                canonicalise_exec(command).text()
            ),
            Action::McpCall {
                server,
                tool,
                arguments,
                ..
            } => format!("mcp_call: {server}__{tool} {arguments}"),
            Action::SendMessage { to, .. } => format!("send_message: {to}"),
        }
    }

    /// Lowercase hex SHA-256 of the canonical JSON of the action: its kind and its
    /// canonical fields (an exec's canonical command text, a normalised host, …).
    pub fn fingerprint(&self) -> String {
        let canonical = self.canonical_json();
        let mut h = Sha256::new();
        h.update(b"cordon-action-v1\0");
        h.update(canonical.to_string().as_bytes());
        hex::encode(h.finalize())
    }

    /// The canonical JSON the fingerprint is computed over (keys sorted).
    pub fn canonical_json(&self) -> serde_json::Value {
        use serde_json::json;
        let kind = self.name();
        match self {
            Action::ReadFile { path }
            | Action::WriteFile { path }
            | Action::EditFile { path }
            | Action::DeleteFile { path }
            | Action::ListDir { path }
            | Action::Search { path } => json!({"kind": kind, "path": path}),
            Action::Exec { command } => {
                json!({"kind": kind, "command": canonicalise_exec(command).text()})
            }
            Action::Connect { .. } => {
                let c = ConnectParts::of(self);
                json!({
                    "kind": kind,
                    "host": c.host,
                    "port": c.port,
                    "scheme": c.scheme,
                    "method": c.method,
                    "url": c.url,
                })
            }
            Action::SpawnAgent {
                tools,
                max_steps,
                task_sha256,
            } => {
                let mut tools = tools.clone();
                tools.sort();
                tools.dedup();
                json!({"kind": kind, "tools": tools, "max_steps": max_steps, "task_sha256": task_sha256})
            }
            Action::MemoryWrite { file } => json!({"kind": kind, "file": file}),
            Action::UseSecret { name, host } => {
                json!({"kind": kind, "name": name, "host": normalise_host(host)})
            }
            Action::InstallSkill { name, sha256 } | Action::LoadSkill { name, sha256 } => {
                json!({"kind": kind, "name": name, "sha256": sha256.to_ascii_lowercase()})
            }
            Action::RunSkill {
                name,
                sha256,
                command,
                network,
                writes,
            } => json!({
                "kind": kind,
                "name": name,
                "sha256": sha256.to_ascii_lowercase(),
                "command": canonicalise_exec(command).text(),
                "network": network,
                "writes": writes,
            }),
            Action::McpCall {
                server,
                tool,
                arguments,
                network,
            } => json!({
                "kind": kind,
                "server": server,
                "tool": tool,
                "arguments": arguments,
                "network": network,
            }),
            Action::SendMessage { to, host } => {
                json!({"kind": kind, "to": to, "host": normalise_host(host)})
            }
        }
    }
}

/// JSON text with every object's keys sorted and no whitespace: one spelling per value,
/// whatever order the keys came in (serde_json keeps insertion order in this workspace).
/// The form an MCP call's arguments are decided, fingerprinted and approved in.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

/// Lower case, no trailing dot.
pub(crate) fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The fields of a connect, whichever variant spelled it.
pub(crate) struct ConnectParts<'a> {
    pub host: String,
    pub port: u16,
    pub scheme: String,
    pub method: &'a str,
    pub url: &'a str,
}

impl<'a> ConnectParts<'a> {
    /// Panics never; returns empty parts for a non-connect action.
    pub(crate) fn of(action: &'a Action) -> ConnectParts<'a> {
        match action {
            Action::Connect {
                host,
                port,
                scheme,
                method,
                url,
            } => ConnectParts {
                host: normalise_host(host),
                port: *port,
                scheme: scheme.to_ascii_lowercase(),
                method,
                url,
            },
            _ => ConnectParts {
                host: String::new(),
                port: 0,
                scheme: String::new(),
                method: "",
                url: "",
            },
        }
    }
}

#[cfg(test)]
mod connect_to_tests {
    use super::Action;

    fn parts(url: &str) -> (String, u16, String) {
        match Action::connect_to("get", url).unwrap() {
            Action::Connect {
                host,
                port,
                scheme,
                method,
                ..
            } => {
                assert_eq!(method, "GET");
                (host, port, scheme)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_split_into_host_port_and_scheme() {
        assert_eq!(
            parts("https://Docs.RS/x"),
            ("docs.rs".into(), 443, "https".into())
        );
        assert_eq!(parts("http://h:8080?q"), ("h".into(), 8080, "http".into()));
        assert_eq!(parts("https://u:p@h/"), ("h".into(), 443, "https".into()));
        assert_eq!(parts("http://[::1]:81/"), ("::1".into(), 81, "http".into()));
        // The host the HTTP client connects to, whatever the spelling.
        assert_eq!(
            parts("http://evil.example\\@127.0.0.1:9000/"),
            ("evil.example".into(), 80, "http".into())
        );
        assert_eq!(
            parts("http://127.1/"),
            ("127.0.0.1".into(), 80, "http".into())
        );
        for bad in [
            "docs.rs",
            "https:///x",
            "git+ssh://h/",
            "http://h:99999/",
            "http://[::1/",
        ] {
            let e = Action::connect_to("GET", bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
