//! Actions written by a person: the words after `cordon policy explain --` and the
//! `[[case]]` tables of a policy test file.
//!
//! Both spellings become an [`ActionText`] and then an [`Action`] through one function
//! with one set of defaults, the runtime's: `memory_write` writes `MEMORY.md`, a
//! `spawn_agent` child gets the agent's own `max_steps`, a `use_secret` without a host is
//! a placeholder handed to a command (host unknown). So `policy explain` and
//! `policy test` cannot decide the same action differently.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::action::Action;

/// The action kinds a person may write, for error messages.
const KINDS: &str = "exec, connect, read_file, write_file, edit_file, delete_file, list_dir, \
                     search, memory_write, spawn_agent, use_secret, install_skill, load_skill, \
                     run_skill, mcp_call, send_message";

/// One action as written, before its defaults are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ActionText {
    /// The kind: `exec`, `connect` (or `http_fetch`), `read_file`, …
    pub action: String,
    pub command: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub file: Option<String>,
    pub tools: Option<Vec<String>>,
    pub max_steps: Option<u32>,
    pub name: Option<String>,
    pub host: Option<String>,
    pub sha256: Option<String>,
    /// `run_skill`: the skill declares egress hosts.
    pub network: Option<bool>,
    /// `run_skill`: the skill may write the workspace.
    pub writes: Option<bool>,
    /// `mcp_call`: the server.
    pub server: Option<String>,
    /// `mcp_call`: the server's tool.
    pub tool: Option<String>,
    /// `mcp_call`: the arguments, JSON (default `{}`).
    pub arguments: Option<String>,
    /// `send_message`: the conversation, `CHANNEL:CONVERSATION`.
    pub to: Option<String>,
}

impl ActionText {
    /// The command-line form: `exec CMD…`, `connect [METHOD] URL`, `read_file PATH`,
    /// `memory_write [FILE]`, `spawn_agent TOOL…`, `use_secret NAME [HOST]`,
    /// `install_skill NAME [SHA256]`, `load_skill NAME [SHA256]`, `run_skill NAME CMD…`
    /// (a skill without network or workspace writes; the test-file form sets both),
    /// `send_message CHANNEL:CONVERSATION [HOST]` (the channel's API host; without it
    /// the host is unknown, and no private or secret data is bound to it).
    pub fn from_words(words: &[String]) -> Result<ActionText, String> {
        let Some((kind, rest)) = words.split_first() else {
            return Err(
                "name an action after `--`, e.g. `-- exec \"git push origin main\"`".into(),
            );
        };
        let mut t = ActionText {
            action: kind.clone(),
            ..ActionText::default()
        };
        let at_most_one = |what: &str| -> Result<Option<String>, String> {
            match rest {
                [] => Ok(None),
                [x] => Ok(Some(x.clone())),
                _ => Err(format!("`{kind}` takes one {what}, got {}", rest.len())),
            }
        };
        match kind.as_str() {
            "exec" => {
                if rest.is_empty() {
                    return Err("`exec` needs the command, e.g. `-- exec \"make test\"`".into());
                }
                t.command = Some(rest.join(" "));
            }
            "connect" | "http_fetch" => match rest {
                [url] => t.url = Some(url.clone()),
                [method, url] => {
                    t.method = Some(method.clone());
                    t.url = Some(url.clone());
                }
                _ => return Err(format!("`{kind}` takes [METHOD] URL")),
            },
            "read_file" | "write_file" | "edit_file" | "delete_file" | "list_dir" | "search" => {
                t.path = at_most_one("path")?;
            }
            "memory_write" => t.file = at_most_one("memory file")?,
            "spawn_agent" => t.tools = Some(rest.to_vec()),
            "mcp_call" => match rest {
                [server, tool] => {
                    t.server = Some(server.clone());
                    t.tool = Some(tool.clone());
                }
                [server, tool, args @ ..] => {
                    t.server = Some(server.clone());
                    t.tool = Some(tool.clone());
                    t.arguments = Some(args.join(" "));
                }
                _ => return Err("`mcp_call` takes SERVER TOOL [ARGUMENTS_JSON]".into()),
            },
            "send_message" => match rest {
                [to] => t.to = Some(to.clone()),
                [to, host] => {
                    t.to = Some(to.clone());
                    t.host = Some(host.clone());
                }
                _ => return Err("`send_message` takes CHANNEL:CONVERSATION [HOST]".into()),
            },
            "run_skill" => match rest {
                [name, command @ ..] if !command.is_empty() => {
                    t.name = Some(name.clone());
                    t.command = Some(command.join(" "));
                }
                _ => return Err("`run_skill` takes NAME COMMAND…".into()),
            },
            "use_secret" | "install_skill" | "load_skill" => {
                let (name, second) = match rest {
                    [name] => (name, None),
                    [name, second] => (name, Some(second.clone())),
                    _ if kind == "use_secret" => {
                        return Err("`use_secret` takes NAME [HOST]".into());
                    }
                    _ => return Err(format!("`{kind}` takes NAME [SHA256]")),
                };
                t.name = Some(name.clone());
                if kind == "use_secret" {
                    t.host = second;
                } else {
                    t.sha256 = second;
                }
            }
            other => return Err(format!("unknown action `{other}`; use {KINDS}")),
        }
        Ok(t)
    }

    /// The action, with the runtime's defaults; `agent_max_steps` is the `max_steps` of
    /// the agent the action is decided for.
    pub fn to_action(&self, agent_max_steps: u32) -> Result<Action, String> {
        let a = self.action.as_str();
        let need = |v: &Option<String>, key: &str| -> Result<String, String> {
            v.clone()
                .ok_or_else(|| format!("action `{a}` needs `{key}`"))
        };
        let path = || need(&self.path, "path");
        Ok(match a {
            "exec" => Action::Exec {
                command: need(&self.command, "command")?,
            },
            "connect" | "http_fetch" => Action::connect_to(
                self.method.as_deref().unwrap_or("GET"),
                &need(&self.url, "url")?,
            )?,
            "read_file" => Action::ReadFile { path: path()? },
            "write_file" => Action::WriteFile { path: path()? },
            "edit_file" => Action::EditFile { path: path()? },
            "delete_file" => Action::DeleteFile { path: path()? },
            "list_dir" => Action::ListDir { path: path()? },
            "search" => Action::Search { path: path()? },
            "memory_write" => Action::MemoryWrite {
                file: self.file.clone().unwrap_or_else(|| "MEMORY.md".into()),
            },
            "spawn_agent" => Action::SpawnAgent {
                tools: self
                    .tools
                    .clone()
                    .ok_or_else(|| "action `spawn_agent` needs `tools`".to_string())?,
                max_steps: self.max_steps.unwrap_or(agent_max_steps),
                // No task text is given: the hash of the empty task.
                task_sha256: hex::encode(Sha256::digest(b"")),
            },
            "use_secret" => Action::UseSecret {
                name: need(&self.name, "name")?,
                host: self.host.clone().unwrap_or_default(),
            },
            "install_skill" => Action::InstallSkill {
                name: need(&self.name, "name")?,
                sha256: self.sha256.clone().unwrap_or_default(),
            },
            "load_skill" => Action::LoadSkill {
                name: need(&self.name, "name")?,
                sha256: self.sha256.clone().unwrap_or_default(),
            },
            "mcp_call" => {
                let raw = self.arguments.as_deref().unwrap_or("{}");
                let args: serde_json::Value = serde_json::from_str(raw)
                    .map_err(|e| format!("`mcp_call` arguments are not JSON: {e}"))?;
                if !args.is_object() {
                    return Err("`mcp_call` arguments must be a JSON object".into());
                }
                Action::McpCall {
                    server: need(&self.server, "server")?,
                    tool: need(&self.tool, "tool")?,
                    arguments: crate::action::canonical_json(&args),
                    // Unknown here: assume the server can reach the network (the
                    // stricter case).
                    network: self.network.unwrap_or(true),
                }
            }
            "send_message" => Action::SendMessage {
                to: need(&self.to, "to")?,
                host: self.host.clone().unwrap_or_default(),
            },
            "run_skill" => Action::RunSkill {
                name: need(&self.name, "name")?,
                sha256: self.sha256.clone().unwrap_or_default(),
                command: need(&self.command, "command")?,
                network: self.network.unwrap_or(false),
                writes: self.writes.unwrap_or(false),
            },
            other => return Err(format!("unknown action `{other}`; use {KINDS}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    /// `mcp_call SERVER TOOL JSON`: arguments in canonical form (keys sorted), so two
    /// spellings of one call are one action; not-JSON and non-objects are refused.
    #[test]
    fn mcp_calls_are_parsed_with_canonical_arguments() {
        let a =
            ActionText::from_words(&words(&["mcp_call", "git", "log", r#"{"b": 1, "a": [2]}"#]))
                .unwrap()
                .to_action(10)
                .unwrap();
        assert_eq!(
            a,
            Action::McpCall {
                server: "git".into(),
                tool: "log".into(),
                arguments: r#"{"a":[2],"b":1}"#.into(),
                network: true,
            }
        );
        for bad in [r#"{"a":"#, "[1]"] {
            let e = ActionText::from_words(&words(&["mcp_call", "git", "log", bad]))
                .unwrap()
                .to_action(10)
                .unwrap_err();
            assert!(e.contains("mcp_call"), "{e}");
        }
        assert!(ActionText::from_words(&words(&["mcp_call", "git"])).is_err());
    }

    /// The command-line form and the test-file form give the same action, defaults
    /// included (they used to differ: `max_steps` 1 against 10).
    #[test]
    fn both_spellings_agree() {
        let pairs = [
            (
                words(&["spawn_agent", "read_file", "list_dir"]),
                ActionText {
                    action: "spawn_agent".into(),
                    tools: Some(words(&["read_file", "list_dir"])),
                    ..Default::default()
                },
            ),
            (
                words(&["memory_write"]),
                ActionText {
                    action: "memory_write".into(),
                    ..Default::default()
                },
            ),
            (
                words(&["use_secret", "GITHUB_TOKEN"]),
                ActionText {
                    action: "use_secret".into(),
                    name: Some("GITHUB_TOKEN".into()),
                    ..Default::default()
                },
            ),
            (
                words(&["connect", "post", "https://api.github.com/x"]),
                ActionText {
                    action: "connect".into(),
                    method: Some("POST".into()),
                    url: Some("https://api.github.com/x".into()),
                    ..Default::default()
                },
            ),
        ];
        for (w, table) in pairs {
            let from_words = ActionText::from_words(&w).unwrap().to_action(7).unwrap();
            assert_eq!(from_words, table.to_action(7).unwrap(), "{w:?}");
        }
        let Action::SpawnAgent { max_steps, .. } =
            ActionText::from_words(&words(&["spawn_agent", "read_file"]))
                .unwrap()
                .to_action(7)
                .unwrap()
        else {
            panic!("not a spawn");
        };
        assert_eq!(
            max_steps, 7,
            "a child gets the agent's max_steps, as at run time"
        );
    }

    #[test]
    fn bad_words_say_what_is_wrong() {
        for (w, says) in [
            (words(&[]), "name an action"),
            (words(&["exec"]), "needs the command"),
            (words(&["connect"]), "[METHOD] URL"),
            (words(&["read_file", "a", "b"]), "one path"),
            (words(&["use_secret"]), "NAME [HOST]"),
            (words(&["teleport", "x"]), "unknown action `teleport`"),
        ] {
            let e = ActionText::from_words(&w).unwrap_err();
            assert!(e.contains(says), "{w:?}: {e}");
        }
        let e = ActionText::from_words(&words(&["read_file"]))
            .unwrap()
            .to_action(1)
            .unwrap_err();
        assert!(e.contains("needs `path`"), "{e}");
    }
}
