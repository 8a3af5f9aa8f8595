//! `cordon.toml` -> Cedar policy text, one policy per setting, each with `@id` and
//! `@reason` (or `@ask` on an asking `forbid`), so `cordon policy explain` can print
//! exactly what was decided with.
//!
//! Guarantees: every string from the config is embedded as an escaped Cedar string
//! literal (it cannot change the policy's structure); host patterns keep
//! [`config::HostPattern`] semantics (`*.x` covers strict subdomains of `x` only; no
//! port means 80 and 443); only `http`/`https` http_fetch connects are permitted by `egress.allow` (a
//! connection from an exec'd process through the egress proxy may be any TCP stream).

use std::fmt::Write as _;

use config::{AgentConfig, ExecMode, HostPattern, ToolName};

use crate::exec_facts::{IMPLICIT, program_name};

/// Which actions each tool permits.
const TOOL_ACTIONS: [(ToolName, &[&str]); 8] = [
    (ToolName::ReadFile, &["read_file"]),
    (ToolName::WriteFile, &["write_file", "delete_file"]),
    (ToolName::EditFile, &["edit_file"]),
    (ToolName::ListDir, &["list_dir"]),
    (ToolName::Search, &["search"]),
    (ToolName::MemoryWrite, &["memory_write"]),
    (ToolName::SpawnAgent, &["spawn_agent"]),
    (ToolName::SendMessage, &["send_message"]),
];

/// A Cedar string literal.
pub(crate) fn lit(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}

fn actions(names: &[&str]) -> String {
    let list: Vec<String> = names
        .iter()
        .map(|n| format!("Action::{}", lit(n)))
        .collect();
    if list.len() == 1 {
        format!("action == {}", list[0])
    } else {
        format!("action in [{}]", list.join(", "))
    }
}

fn policy(out: &mut String, id: &str, note: (&str, &str), effect: &str, scope: &str, cond: &str) {
    let _ = writeln!(out, "@id({})", lit(id));
    let _ = writeln!(out, "@{}({})", note.0, lit(note.1));
    let _ = write!(out, "{effect} (principal, {scope}, resource)");
    if !cond.is_empty() {
        let _ = write!(out, "\n{cond}");
    }
    out.push_str(";\n\n");
}

/// The Cedar condition of one `egress.allow` pattern.
fn host_condition(p: &HostPattern) -> String {
    let host = if p.is_wildcard() {
        format!(
            "(context.host like {} && context.host != {})",
            lit(&format!("*.{}", p.host())),
            lit(&format!(".{}", p.host()))
        )
    } else {
        format!("context.host == {}", lit(p.host()))
    };
    let port = match p.port() {
        Some(port) => format!("context.port == {port}"),
        None => "(context.port == 80 || context.port == 443)".into(),
    };
    format!("({host} && {port})")
}

/// Compile agent `name`'s settings; `mcp_servers` are the `[mcp.servers.NAME]` it uses.
pub(crate) fn compile(name: &str, cfg: &AgentConfig, mcp_servers: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// Compiled from cordon.toml, [agents.{name}].\n");

    // Tools: a permit per given tool, a forbid per missing one (forbid wins over any
    // user permit).
    for (tool, acts) in TOOL_ACTIONS {
        let id = format!("tools.{tool}");
        if cfg.tools.contains(&tool) {
            let why = format!("`{tool}` is in agents.{name}.tools");
            policy(
                &mut out,
                &id,
                ("reason", &why),
                "permit",
                &actions(acts),
                "",
            );
        } else {
            let why = format!("tool `{tool}` is not in agents.{name}.tools");
            policy(
                &mut out,
                &id,
                ("reason", &why),
                "forbid",
                &actions(acts),
                "",
            );
        }
    }
    if !cfg.tools.contains(&ToolName::HttpFetch) {
        let why = format!("tool `http_fetch` is not in agents.{name}.tools");
        let cond = "when { context.via == \"http_fetch\" }";
        let scope = actions(&["connect"]);
        policy(
            &mut out,
            "tools.http_fetch",
            ("reason", &why),
            "forbid",
            &scope,
            cond,
        );
    }

    // Exec.
    let exec = actions(&["exec"]);
    if !cfg.tools.contains(&ToolName::Exec) {
        let why = format!("tool `exec` is not in agents.{name}.tools");
        policy(
            &mut out,
            "tools.exec",
            ("reason", &why),
            "forbid",
            &exec,
            "",
        );
        let cond = "when { context.via == \"exec\" }";
        let scope = actions(&["connect"]);
        let why = format!("tool `exec` is not in agents.{name}.tools (connection from a command)");
        policy(
            &mut out,
            "tools.exec.connect",
            ("reason", &why),
            "forbid",
            &scope,
            cond,
        );
    }
    match cfg.exec.mode {
        ExecMode::Deny => {
            let why = format!("exec.mode = \"deny\" for agent `{name}`: commands never run");
            policy(&mut out, "exec.mode", ("reason", &why), "forbid", &exec, "");
        }
        ExecMode::Ask => {
            let why =
                format!("exec.mode = \"ask\" for agent `{name}`: commands run after approval");
            policy(&mut out, "exec.mode", ("reason", &why), "permit", &exec, "");
            let why =
                format!("exec.mode = \"ask\" for agent `{name}`: every command needs approval");
            policy(&mut out, "exec.ask", ("ask", &why), "forbid", &exec, "");
        }
        ExecMode::Auto => {
            let why = format!("exec.mode = \"auto\" for agent `{name}` (sandboxed)");
            policy(&mut out, "exec.mode", ("reason", &why), "permit", &exec, "");
        }
        ExecMode::Allowlist => {
            let mut list: Vec<String> = Vec::new();
            for p in IMPLICIT
                .iter()
                .copied()
                .chain(cfg.exec.allow.iter().map(|a| program_name(a)))
            {
                let l = lit(p);
                if !list.contains(&l) {
                    list.push(l);
                }
            }
            let listed = format!(
                "context.clean && [{}].containsAll(context.programs)",
                list.join(", ")
            );
            let why = "exec.mode = \"allowlist\": every program matches exec.allow";
            let cond = format!("when {{ {listed} }}");
            policy(
                &mut out,
                "exec.allowlist",
                ("reason", why),
                "permit",
                &exec,
                &cond,
            );
            let why = "exec.mode = \"allowlist\": other commands run after approval";
            policy(&mut out, "exec.mode", ("reason", why), "permit", &exec, "");
            let why = "exec.mode = \"allowlist\": needs approval";
            let cond = format!("unless {{ {listed} }}");
            policy(
                &mut out,
                "exec.allowlist.ask",
                ("ask", why),
                "forbid",
                &exec,
                &cond,
            );
        }
    }

    // Egress.
    if !cfg.egress.allow.is_empty() {
        let hosts: Vec<String> = cfg.egress.allow.iter().map(host_condition).collect();
        let shown: Vec<String> = cfg.egress.allow.iter().map(|p| p.to_string()).collect();
        let why = format!("agents.{name}.egress.allow ({}) matches", shown.join(", "));
        let cond = format!(
            "when {{\n  (context.via == \"exec\" || context.scheme == \"http\" || context.scheme == \"https\") &&\n  ({})\n}}",
            hosts.join(" ||\n   ")
        );
        policy(
            &mut out,
            "egress.allow",
            ("reason", &why),
            "permit",
            &actions(&["connect"]),
            &cond,
        );
    }
    if !cfg.egress.secrets.is_empty() {
        let names: Vec<String> = cfg.egress.secrets.iter().map(|s| lit(s)).collect();
        let why = format!("the secret is in agents.{name}.egress.secrets");
        let cond = format!("when {{ [{}].contains(context.name) }}", names.join(", "));
        let scope = actions(&["use_secret"]);
        policy(
            &mut out,
            "egress.secrets",
            ("reason", &why),
            "permit",
            &scope,
            &cond,
        );
    }
    // Messages: every conversation asks, unless listed in send_message.allow.
    let allow: Vec<String> = cfg.send_message.allow.iter().map(|t| lit(t)).collect();
    let why = if allow.is_empty() {
        format!(
            "a message to a chat conversation waits for a human (agents.{name}.send_message.allow is empty)"
        )
    } else {
        format!(
            "the conversation is not in agents.{name}.send_message.allow: the message waits for a human"
        )
    };
    let cond = if allow.is_empty() {
        String::new()
    } else {
        format!("unless {{ [{}].contains(context.to) }}", allow.join(", "))
    };
    policy(
        &mut out,
        "send_message.ask",
        ("ask", &why),
        "forbid",
        &actions(&["send_message"]),
        &cond,
    );

    // MCP servers: calls of a server the agent uses are permitted; the built-in label
    // rules, approvals of tools and `[policy] files` still apply.
    for server in mcp_servers {
        let why = format!("[mcp.servers.{server}] is configured for agent `{name}`");
        policy(
            &mut out,
            &format!("mcp.{server}"),
            ("reason", &why),
            "permit",
            &actions(&["mcp_call"]),
            &format!("when {{ context.server == {} }}", lit(server)),
        );
    }
    out
}
