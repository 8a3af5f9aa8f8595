//! Checks of the config file's text, read leniently: a config that Cordon refuses to
//! load is reported as `config.invalid` *and* still checked key by key, so a dangerous
//! setting is named even when another mistake stops the loader first.
//!
//! Guarantees: a credential-looking value is reported by kind and line, never quoted;
//! every finding names the key (`agents.NAME.egress.allow`) it is about.

use std::net::SocketAddr;
use std::path::Path;

use secrets::detect_credentials;
use toml::{Table, Value};

use crate::{Finding, Severity};

/// Suffixes under which anyone can publish content (a wildcard over them lets an agent
/// reach pages an attacker wrote, or upload to the attacker's bucket).
pub(crate) const USER_CONTENT: &[&str] = &[
    "github.io",
    "githubusercontent.com",
    "gitlab.io",
    "s3.amazonaws.com",
    "amazonaws.com",
    "cloudfront.net",
    "blob.core.windows.net",
    "azurewebsites.net",
    "storage.googleapis.com",
    "appspot.com",
    "web.app",
    "firebaseapp.com",
    "herokuapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "ngrok.io",
    "ngrok-free.app",
    "pastebin.com",
    "glitch.me",
    "repl.co",
    "blogspot.com",
    "wordpress.com",
];

/// The tier a config declares (`personal` when absent or unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Personal,
    Team,
    Enterprise,
}

impl Tier {
    fn of(table: &Table) -> Tier {
        match table.get("tier").and_then(Value::as_str) {
            Some("team") => Tier::Team,
            Some("enterprise") => Tier::Enterprise,
            _ => Tier::Personal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Personal => "personal",
            Tier::Team => "team",
            Tier::Enterprise => "enterprise",
        }
    }
}

fn get<'a>(table: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(*p)?.as_table()?;
    }
    t.get(*last)
}

fn str_at<'a>(table: &'a Table, path: &[&str]) -> Option<&'a str> {
    get(table, path).and_then(Value::as_str)
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Everything the config's text says about the deployment. `path` is only shown.
pub fn check(text: &str, path: &Path) -> (Option<Tier>, Vec<Finding>) {
    let mut out = Vec::new();
    plaintext_secrets(text, path, &mut out);
    let table: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::new(
                "config.unparsable",
                Severity::Critical,
                "the config file is not valid TOML",
                format!("{}: {e}", path.display()),
                "fix the syntax; `cordon config check` names the line",
            ));
            return (None, out);
        }
    };
    if let Err(e) = config::load_str(text, path) {
        out.push(Finding::new(
            "config.invalid",
            Severity::Critical,
            "Cordon refuses to load this config",
            e.to_string(),
            "fix what the error names; `cordon config check` shows it",
        ));
    }
    let tier = Tier::of(&table);
    gateway(&table, tier, &mut out);
    sandbox(&table, tier, &mut out);
    model(&table, &mut out);
    allow_ranges(&table, &mut out);
    channels(&table, &mut out);
    webhooks(&table, &mut out);
    out.extend(crate::mcp::servers(&table));
    if tier == Tier::Enterprise
        && get(&table, &["policy", "files"])
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    {
        out.push(Finding::new(
            "tier.policy_files_missing",
            Severity::Warn,
            "tier enterprise requires Cedar policy files",
            "[policy] files is empty",
            "write the organisation's rules as Cedar and list them in [policy] files \
             (docs/policy.md)",
        ));
    }
    if tier >= Tier::Team && str_at(&table, &["approvals", "answered_by"]) != Some("approvers") {
        out.push(Finding::new(
            "tier.approvals_not_routed",
            Severity::Warn,
            format!(
                "tier {} routes approvals to approvers, but the terminal running the agent \
                 may answer its own requests",
                tier.as_str()
            ),
            format!(
                "approvals.answered_by = \"{}\"",
                str_at(&table, &["approvals", "answered_by"]).unwrap_or("anyone")
            ),
            "set [approvals] answered_by = \"approvers\" and give approver tokens to the \
             people who review (`cordon token create --scope approver`)",
        ));
    }
    if tier >= Tier::Team && get(&table, &["audit", "export"]).is_none() {
        out.push(Finding::new(
            "tier.no_log_export",
            Severity::Warn,
            format!(
                "tier {} requires the audit log to be shipped to a central collector",
                tier.as_str()
            ),
            "no [audit.export]",
            "set [audit.export] url (https) and token_env; `cordon serve` then ships every \
             record, and `cordon log export` ships what is pending",
        ));
    }
    if tier == Tier::Enterprise && get(&table, &["alerts"]).is_none() {
        out.push(Finding::new(
            "tier.no_alert_delivery",
            Severity::Warn,
            "tier enterprise requires alerts to be delivered to people, not only recorded",
            "no [alerts]",
            "set [alerts] webhook_url (https; a Slack or Mattermost incoming webhook works) \
             and, if the receiver needs one, token_env; `cordon serve` then posts every \
             `alert` record",
        ));
    }
    if tier == Tier::Enterprise && get(&table, &["store", "url"]).is_none() {
        out.push(Finding::new(
            "tier.store_not_shared",
            Severity::Info,
            "tier enterprise usually runs several Cordon processes or hosts on one store, \
             but sessions and approvals are in this host's SQLite file",
            "no [store] url",
            "set [store] url to a PostgreSQL database (a Unix socket or loopback host) and \
             password_env if it needs a password",
        ));
    }
    if let Some(agents) = table.get("agents").and_then(Value::as_table) {
        for (name, agent) in agents {
            if let Some(agent) = agent.as_table() {
                self::agent(name, agent, tier, &mut out);
            }
        }
    }
    (Some(tier), out)
}

/// The safe fix for `gateway.bind_public_without_tls`: `[gateway] bind` moved to
/// `127.0.0.1` on the same port, every other line (comments included) unchanged. `None`
/// when there is nothing to fix or the line cannot be found exactly.
pub fn tighten_bind(text: &str) -> Option<(String, String)> {
    let table: Table = text.parse().ok()?;
    let bind = str_at(&table, &["gateway", "bind"])?;
    let addr: SocketAddr = bind.parse().ok()?;
    let tls = str_at(&table, &["gateway", "tls_cert"]).is_some()
        && str_at(&table, &["gateway", "tls_key"]).is_some();
    if addr.ip().to_canonical().is_loopback() || tls {
        return None;
    }
    let new_bind = format!("127.0.0.1:{}", addr.port());
    let mut section = String::new();
    let mut done = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']', ' ']).to_string();
        }
        let is_bind = section == "gateway"
            && t.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "bind" && v.trim().trim_matches('"') == bind);
        if is_bind && !done {
            let indent = &line[..line.len() - line.trim_start().len()];
            let end = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!("{indent}bind = \"{new_bind}\"{end}"));
            done = true;
        } else {
            out.push_str(line);
        }
    }
    let check: Table = out.parse().ok()?;
    (done && str_at(&check, &["gateway", "bind"]) == Some(new_bind.as_str())).then(|| {
        (
            out,
            format!("[gateway] bind \"{bind}\" -> \"{new_bind}\" (no TLS was configured)"),
        )
    })
}

fn plaintext_secrets(text: &str, path: &Path, out: &mut Vec<Finding>) {
    for f in detect_credentials(text) {
        out.push(Finding::new(
            "config.plaintext_secret",
            Severity::Critical,
            format!("a {} is written in the config file", f.kind),
            format!("{} line {}", path.display(), line_of(text, f.range.start)),
            "remove it from the file and rotate it (it may be in backups and history); \
             store it with `cordon secrets set NAME --hosts HOST`",
        ));
    }
    // Cordon's own gateway tokens: `cdn_` + 43 base64url characters.
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("cdn_") {
        let start = from + i;
        let body = &bytes[start + 4..];
        let n = body
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
            .count();
        let boundary = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if n >= 40 && boundary {
            out.push(Finding::new(
                "config.plaintext_token",
                Severity::Critical,
                "a gateway token is written in the config file",
                format!("{} line {}", path.display(), line_of(text, start)),
                "revoke it (`cordon token revoke ID`) and create a new one; tokens are \
                 shown once and never belong in a file",
            ));
        }
        from = start + 4;
    }
}

fn gateway(table: &Table, tier: Tier, out: &mut Vec<Finding>) {
    let bind = str_at(table, &["gateway", "bind"]).unwrap_or("127.0.0.1:7777");
    let Ok(addr) = bind.parse::<SocketAddr>() else {
        return;
    };
    let ip = addr.ip().to_canonical();
    if ip.is_loopback() {
        return;
    }
    let tls = str_at(table, &["gateway", "tls_cert"]).is_some()
        && str_at(table, &["gateway", "tls_key"]).is_some();
    if !tls {
        out.push(Finding::new(
            "gateway.bind_public_without_tls",
            Severity::Critical,
            "the gateway is set to listen on the network without TLS",
            format!("[gateway] bind = \"{bind}\", no tls_cert/tls_key"),
            "bind 127.0.0.1 (reach it over SSH or a reverse proxy), or set [gateway] \
             tls_cert and tls_key and create a token (`cordon serve` refuses to start \
             otherwise)",
        ));
    } else if tier == Tier::Personal {
        out.push(Finding::new(
            "tier.personal_remote_access",
            Severity::Warn,
            "tier personal is loopback only, but the gateway listens on the network",
            format!("tier = \"personal\", [gateway] bind = \"{bind}\""),
            "bind 127.0.0.1, or declare tier = \"team\" and configure its protections",
        ));
    }
    if ip.is_unspecified()
        && tier >= Tier::Team
        && get(table, &["gateway", "trusted_proxies"])
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    {
        out.push(Finding::new(
            "gateway.no_trusted_proxies",
            Severity::Info,
            "no trusted proxies: forwarded headers are ignored",
            format!("[gateway] bind = \"{bind}\", trusted_proxies = []"),
            "if a reverse proxy fronts the gateway, list its address in \
             [gateway] trusted_proxies so lockouts apply per real client",
        ));
    }
}

fn sandbox(table: &Table, tier: Tier, out: &mut Vec<Finding>) {
    if str_at(table, &["sandbox", "backend"]) == Some("none") {
        out.push(Finding::new(
            "sandbox.backend_none",
            Severity::Critical,
            "tool commands run on the host without any isolation",
            "[sandbox] backend = \"none\"",
            "use backend = \"native\" (needs user namespaces) or \"docker\"/\"podman\"; \
             `cordon sandbox explain` shows what this host supports",
        ));
    }
    let scope = str_at(table, &["sandbox", "scope"]).unwrap_or("task");
    if tier == Tier::Enterprise && scope != "call" {
        out.push(Finding::new(
            "tier.sandbox_scope",
            Severity::Warn,
            "tier enterprise requires a fresh sandbox per call",
            format!("[sandbox] scope = \"{scope}\""),
            "set [sandbox] scope = \"call\"",
        ));
    }
}

/// `[egress] allow_ranges` exempts addresses from the proxy's private-address block.
fn allow_ranges(table: &Table, out: &mut Vec<Finding>) {
    let Some(ranges) = get(table, &["egress", "allow_ranges"]).and_then(Value::as_array) else {
        return;
    };
    let metadata: [std::net::IpAddr; 2] = [
        std::net::Ipv4Addr::new(169, 254, 169, 254).into(),
        "fd00:ec2::254"
            .parse()
            .unwrap_or(std::net::Ipv6Addr::UNSPECIFIED.into()),
    ];
    for r in ranges.iter().filter_map(Value::as_str) {
        let Ok(net) = r.parse::<ipnet::IpNet>() else {
            continue;
        };
        if metadata.iter().any(|ip| net.contains(ip)) {
            out.push(Finding::new(
                "egress.allow_ranges_metadata",
                Severity::Critical,
                "the egress proxy may reach the cloud metadata service (instance credentials)",
                format!("[egress] allow_ranges contains \"{r}\""),
                "remove it, or narrow it to the exact internal addresses agents need",
            ));
        } else if net.prefix_len() < if net.addr().is_ipv4() { 16 } else { 48 } {
            out.push(Finding::new(
                "egress.allow_ranges_broad",
                Severity::Warn,
                "a wide private range is exempt from the proxy's private-address block",
                format!("[egress] allow_ranges contains \"{r}\""),
                "list the exact hosts or the narrowest range agents need",
            ));
        }
    }
}

fn model(table: &Table, out: &mut Vec<Finding>) {
    let Some(url) = str_at(table, &["model", "base_url"]) else {
        return;
    };
    if config::is_cleartext_off_host(url) {
        out.push(Finding::new(
            "model.plaintext_endpoint",
            Severity::Warn,
            "prompts, tool output and the API key go to the model in clear text",
            format!("[model] base_url = \"{url}\""),
            "use https:// (or a model on this machine)",
        ));
    }
}

/// A vault secret's name as the loader accepts it; anything else in a `*_secret` key may
/// be the token itself.
fn is_secret_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Whether agent `name` is given `exec` (every tool when `tools` is absent), and its
/// `exec.mode`. `None` when no such agent is configured (the loader names that).
fn agent_exec<'a>(table: &'a Table, name: &str) -> Option<(bool, &'a str)> {
    let agent = get(table, &["agents", name])?.as_table()?;
    let exec = match agent.get("tools").and_then(Value::as_array) {
        Some(tools) => tools.iter().any(|t| t.as_str() == Some("exec")),
        None => true,
    };
    Some((exec, str_at(agent, &["exec", "mode"]).unwrap_or("ask")))
}

/// `[channels.NAME]`: who reaches an agent through a chat platform, and its token.
fn channels(table: &Table, out: &mut Vec<Finding>) {
    let Some(channels) = table.get("channels").and_then(Value::as_table) else {
        return;
    };
    for (name, c) in channels {
        let Some(c) = c.as_table() else {
            continue;
        };
        let agent = str_at(c, &["agent"]).unwrap_or("default");
        if str_at(c, &["inbound"]) == Some("open") {
            out.push(Finding::new(
                "channels.open_inbound",
                Severity::Critical,
                format!(
                    "anyone who can message the {name} bot talks to agent `{agent}`: no \
                     pairing, no allowlist"
                ),
                format!("channels.{name}.inbound = \"open\""),
                format!(
                    "use inbound = \"pairing\" (unknown senders get a code you approve with \
                     `cordon pairing approve`) or \"allowlist\" with the ids in \
                     channels.{name}.allow"
                ),
            ));
        }
        let groups = c
            .get("groups")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if groups > 0
            && let Some((true, mode)) = agent_exec(table, agent)
        {
            out.push(Finding::new(
                "channels.groups_reach_exec",
                if mode == "auto" {
                    Severity::Critical
                } else {
                    Severity::Warn
                },
                format!(
                    "members of {groups} {name} group(s) can drive agent `{agent}`, which can \
                     run commands{}",
                    if mode == "auto" {
                        " without asking"
                    } else {
                        ""
                    }
                ),
                format!(
                    "channels.{name}.groups has {groups} entr{}; agents.{agent}.tools has exec \
                     (exec.mode = \"{mode}\")",
                    if groups == 1 { "y" } else { "ies" }
                ),
                format!(
                    "answer groups with an agent without exec (channels.{name}.agent), or \
                     empty channels.{name}.groups"
                ),
            ));
        }
        for key in ["token_secret", "app_token_secret"] {
            if let Some(v) = str_at(c, &[key])
                && !is_secret_name(v)
            {
                out.push(Finding::new(
                    "channels.token_in_config",
                    Severity::Critical,
                    format!("the {name} channel's {key} is not a vault secret name: it may be the token itself"),
                    format!("channels.{name}.{key} (value not shown)"),
                    format!(
                        "rotate the token if it is one, store it with `cordon secrets set \
                         NAME` and set channels.{name}.{key} = \"NAME\""
                    ),
                ));
            }
        }
    }
}

/// `[webhooks.NAME]`: each needs its own HMAC secret, from the vault.
fn webhooks(table: &Table, out: &mut Vec<Finding>) {
    let Some(hooks) = table.get("webhooks").and_then(Value::as_table) else {
        return;
    };
    for (name, w) in hooks {
        let Some(w) = w.as_table() else {
            continue;
        };
        match str_at(w, &["secret"]) {
            None => out.push(Finding::new(
                "webhooks.no_secret",
                Severity::Warn,
                format!(
                    "webhook `{name}` has no secret: every delivery to POST /hooks/{name} is \
                     refused"
                ),
                format!("no webhooks.{name}.secret"),
                format!(
                    "store an HMAC key with `cordon secrets set NAME`, set webhooks.{name}.secret \
                     = \"NAME\" and give the sender the same key"
                ),
            )),
            Some(v) if !is_secret_name(v) => out.push(Finding::new(
                "webhooks.secret_in_config",
                Severity::Critical,
                format!(
                    "webhook `{name}`'s secret is not a vault secret name: it may be the key itself"
                ),
                format!("webhooks.{name}.secret (value not shown)"),
                format!(
                    "make a new key, store it with `cordon secrets set NAME` and set \
                     webhooks.{name}.secret = \"NAME\""
                ),
            )),
            Some(_) => {}
        }
    }
}

/// Channel tokens and webhook secrets named in the config but missing from the vault
/// (`vault`: the names it holds): the channel cannot start, the hook refuses everything.
pub fn secrets_outside_vault(cfg: &config::Config, vault: &[String]) -> Vec<Finding> {
    let missing = |name: &str| !vault.iter().any(|v| v == name);
    let mut out = Vec::new();
    for (kind, c) in &cfg.channels {
        let named = std::iter::once(("token_secret", c.token_secret.as_str())).chain(
            c.app_token_secret
                .as_deref()
                .map(|s| ("app_token_secret", s)),
        );
        for (key, secret) in named.filter(|(_, s)| missing(s)) {
            out.push(Finding::new(
                "channels.secret_missing",
                Severity::Warn,
                format!(
                    "the {kind} channel's token is to come from secret {secret}, which is not \
                     in the vault: the channel cannot start"
                ),
                format!("channels.{kind}.{key} names {secret}"),
                format!("store the token with `cordon secrets set {secret}`"),
            ));
        }
    }
    for (name, w) in &cfg.webhooks {
        if let Some(secret) = w.secret.as_deref().filter(|s| missing(s)) {
            out.push(Finding::new(
                "webhooks.secret_missing",
                Severity::Warn,
                format!(
                    "webhook `{name}`'s key is to come from secret {secret}, which is not in \
                     the vault: every delivery is refused"
                ),
                format!("webhooks.{name}.secret names {secret}"),
                format!("store the key with `cordon secrets set {secret}`"),
            ));
        }
    }
    out
}

fn agent(name: &str, agent: &Table, tier: Tier, out: &mut Vec<Finding>) {
    let mode = str_at(agent, &["exec", "mode"]).unwrap_or("ask");
    let allow: Vec<&str> = get(agent, &["egress", "allow"])
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let key = format!("agents.{name}.egress.allow");
    let mut open = false;
    for pattern in &allow {
        let p = pattern.trim().to_ascii_lowercase();
        let host = p.split(':').next().unwrap_or("");
        if host == "*" {
            open = true;
            out.push(Finding::new(
                "egress.allow_any",
                Severity::Critical,
                format!("agent `{name}` may connect to any host"),
                format!("{key} contains \"{pattern}\""),
                "list the hosts the agent needs (e.g. \"api.github.com\")",
            ));
        } else if let Some(rest) = host.strip_prefix("*.") {
            if !rest.contains('.') {
                open = true;
                out.push(Finding::new(
                    "egress.allow_tld",
                    Severity::Critical,
                    format!("agent `{name}` may connect to a whole top-level domain"),
                    format!("{key} contains \"{pattern}\""),
                    "list the hosts the agent needs",
                ));
            } else if USER_CONTENT
                .iter()
                .any(|s| rest == *s || rest.ends_with(&format!(".{s}")))
            {
                out.push(Finding::new(
                    "egress.wildcard_user_content",
                    Severity::Warn,
                    format!(
                        "agent `{name}` may reach any site under `{rest}`, where anyone can \
                         publish (a place to fetch instructions from or upload data to)"
                    ),
                    format!("{key} contains \"{pattern}\""),
                    "name the exact host (e.g. \"myorg.github.io\")",
                ));
            }
        }
    }
    match mode {
        "auto" if open => out.push(Finding::new(
            "exec.auto_with_open_egress",
            Severity::Critical,
            format!(
                "agent `{name}` runs any command without asking and may connect anywhere: a \
                 prompt injection is one step from exfiltration"
            ),
            format!("agents.{name}.exec.mode = \"auto\" with {key} = {allow:?}"),
            "use exec.mode = \"allowlist\" or \"ask\", and list exact hosts",
        )),
        "auto" => out.push(Finding::new(
            "exec.auto",
            if tier == Tier::Personal {
                Severity::Warn
            } else {
                Severity::Info
            },
            format!("agent `{name}` runs any command without asking (still sandboxed)"),
            format!("agents.{name}.exec.mode = \"auto\""),
            "tier personal presets exec.mode = \"ask\"; use \"allowlist\" for the commands \
             the agent needs",
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        check(text, Path::new("cordon.toml"))
            .1
            .iter()
            .map(|f| f.id)
            .collect()
    }

    #[test]
    fn a_model_reached_over_plain_http_off_this_machine_is_named() {
        let model = |url: &str| ids(&format!("[model]\nbase_url = \"{url}\"\n"));
        for off_host in [
            "http://10.0.0.5:11434/v1",
            "http://localhost@evil.example/v1",
            "http://localhost.evil.example/v1",
        ] {
            assert!(
                model(off_host).contains(&"model.plaintext_endpoint"),
                "{off_host}"
            );
        }
        for local in [
            "http://127.0.0.1:11434/v1",
            "http://localhost:11434/v1",
            "http://[::1]:11434/v1",
            "https://api.example.com/v1",
        ] {
            assert!(
                !model(local).contains(&"model.plaintext_endpoint"),
                "{local}"
            );
        }
    }

    #[test]
    fn dangerous_settings_are_named_even_when_the_loader_refuses_the_file() {
        let found = ids(
            "[agents.a]\nworkspace = \"/w\"\n[agents.a.exec]\nmode = \"auto\"\n\
             [agents.a.egress]\nallow = [\"*\"]\n",
        );
        assert!(found.contains(&"config.invalid"), "{found:?}");
        assert!(found.contains(&"egress.allow_any"), "{found:?}");
        assert!(found.contains(&"exec.auto_with_open_egress"), "{found:?}");
        let found = ids(
            "[agents.a]\nworkspace = \"/w\"\n[agents.a.egress]\nallow = [\"*.com\", \"*.github.io\"]\n",
        );
        assert!(found.contains(&"egress.allow_tld"), "{found:?}");
        assert!(found.contains(&"egress.wildcard_user_content"), "{found:?}");
    }

    #[test]
    fn public_bind_sandbox_none_and_plaintext_credentials() {
        let text = format!(
            "[gateway]\nbind = \"0.0.0.0:7777\"\n[sandbox]\nbackend = \"none\"\n\
             # token = \"cdn_{}\"\n# key = \"ghp_{}\"\n",
            "A".repeat(43),
            "a1B2".repeat(9)
        );
        let (_, findings) = check(&text, Path::new("c.toml"));
        let found: Vec<_> = findings.iter().map(|f| f.id).collect();
        for id in [
            "gateway.bind_public_without_tls",
            "sandbox.backend_none",
            "config.plaintext_token",
            "config.plaintext_secret",
        ] {
            assert!(found.contains(&id), "{id} missing from {found:?}");
        }
        let token = findings
            .iter()
            .find(|f| f.id == "config.plaintext_token")
            .unwrap();
        assert_eq!(token.evidence, "c.toml line 5");
        assert!(findings.iter().all(|f| !f.evidence.contains("ghp_")));
        let key = findings
            .iter()
            .find(|f| f.id == "config.plaintext_secret")
            .unwrap();
        assert_eq!(key.evidence, "c.toml line 6");
        // TLS configured: no longer critical, but below tier personal.
        let found = ids("[gateway]\nbind = \"0.0.0.0:7777\"\ntls_cert = \"c\"\ntls_key = \"k\"\n");
        assert!(
            !found.contains(&"gateway.bind_public_without_tls"),
            "{found:?}"
        );
        assert!(found.contains(&"tier.personal_remote_access"), "{found:?}");
    }

    #[test]
    fn allow_ranges_over_the_metadata_address_are_critical() {
        let found =
            ids("[egress]\nallow_ranges = [\"169.254.0.0/16\", \"10.0.0.0/8\", \"10.1.2.0/24\"]\n");
        assert_eq!(
            found,
            [
                "config.invalid",
                "egress.allow_ranges_metadata",
                "egress.allow_ranges_broad"
            ],
            "{found:?}"
        );
    }

    #[test]
    fn tightening_the_bind_changes_that_line_only() {
        let text =
            "# mine\n[gateway]\n  bind = \"0.0.0.0:8080\" \n[agents.a]\nworkspace = \"/w\"\n";
        let (new, what) = tighten_bind(text).unwrap();
        assert_eq!(
            new,
            "# mine\n[gateway]\n  bind = \"127.0.0.1:8080\"\n[agents.a]\nworkspace = \"/w\"\n"
        );
        assert!(what.contains("127.0.0.1:8080"));
        assert!(tighten_bind(&new).is_none());
        let tls = "[gateway]\nbind = \"0.0.0.0:1\"\ntls_cert = \"c\"\ntls_key = \"k\"\n";
        assert!(
            tighten_bind(tls).is_none(),
            "a TLS bind is a choice, not a mistake"
        );
    }

    #[test]
    fn enterprise_needs_alert_delivery_and_team_does_not() {
        let agent = "[agents.a]\nworkspace = \"/w\"\n";
        let found = ids(&format!("tier = \"enterprise\"\n{agent}"));
        assert!(found.contains(&"tier.no_alert_delivery"), "{found:?}");
        let found = ids(&format!(
            "tier = \"enterprise\"\n[alerts]\nwebhook_url = \"https://hooks.example.com/x\"\n{agent}"
        ));
        assert!(!found.contains(&"tier.no_alert_delivery"), "{found:?}");
        let found = ids(&format!("tier = \"team\"\n{agent}"));
        assert!(!found.contains(&"tier.no_alert_delivery"), "{found:?}");
        assert!(found.contains(&"tier.no_log_export"), "{found:?}");
    }

    #[test]
    fn enterprise_without_a_shared_store_is_told() {
        let agent = "[agents.a]\nworkspace = \"/w\"\n";
        let found = ids(&format!("tier = \"enterprise\"\n{agent}"));
        assert!(found.contains(&"tier.store_not_shared"), "{found:?}");
        let found = ids(&format!(
            "tier = \"enterprise\"\n[store]\nurl = \"postgres://cordon@/cordon?host=/run/postgresql\"\n{agent}"
        ));
        assert!(!found.contains(&"tier.store_not_shared"), "{found:?}");
        let found = ids(&format!("tier = \"team\"\n{agent}"));
        assert!(!found.contains(&"tier.store_not_shared"), "{found:?}");
    }

    const AGENTS: &str = "[agents.default]\nworkspace = \"/w\"\n\
                          [agents.chat]\nworkspace = \"/w\"\ntools = [\"read_file\"]\n\
                          [agents.wild]\nworkspace = \"/w\"\n[agents.wild.exec]\nmode = \"auto\"\n";

    fn severity_of(text: &str, id: &str) -> Vec<Severity> {
        check(text, Path::new("c.toml"))
            .1
            .iter()
            .filter(|f| f.id == id)
            .map(|f| f.severity)
            .collect()
    }

    #[test]
    fn an_open_channel_is_critical_and_pairing_or_allowlist_is_not_named() {
        let channel = |inbound: &str| {
            format!("{AGENTS}[channels.telegram]\ntoken_secret = \"TG\"\ninbound = \"{inbound}\"\n")
        };
        assert_eq!(
            severity_of(&channel("open"), "channels.open_inbound"),
            [Severity::Critical]
        );
        for quiet in ["pairing", "allowlist"] {
            assert!(
                !ids(&channel(quiet)).contains(&"channels.open_inbound"),
                "{quiet}"
            );
        }
        let found = ids(&format!(
            "{AGENTS}[channels.slack]\ntoken_secret = \"S\"\napp_token_secret = \"A\"\n"
        ));
        assert!(
            !found.contains(&"channels.open_inbound"),
            "pairing is the default"
        );
    }

    #[test]
    fn groups_answered_by_an_agent_that_can_exec_are_named() {
        let groups = |agent: &str, groups: &str| {
            format!(
                "{AGENTS}[channels.telegram]\ntoken_secret = \"TG\"\nagent = \"{agent}\"\ngroups = {groups}\n"
            )
        };
        // `default` lists no tools: it has every tool, exec included (asking).
        assert_eq!(
            severity_of(
                &groups("default", "[\"-100\"]"),
                "channels.groups_reach_exec"
            ),
            [Severity::Warn]
        );
        assert_eq!(
            severity_of(
                &groups("wild", "[\"-100\", \"-200\"]"),
                "channels.groups_reach_exec"
            ),
            [Severity::Critical]
        );
        assert!(
            severity_of(&groups("chat", "[\"-100\"]"), "channels.groups_reach_exec").is_empty()
        );
        assert!(severity_of(&groups("default", "[]"), "channels.groups_reach_exec").is_empty());
    }

    #[test]
    fn a_token_or_webhook_key_in_the_file_is_critical_and_never_quoted() {
        let token = "123456789:AAEhBP0av28MWFa7yfIGdsTbOkY3aByyR8U";
        let text = format!(
            "{AGENTS}[channels.telegram]\ntoken_secret = \"{token}\"\n\
             [webhooks.ci]\nsecret = \"s3cr3t-hmac-key\"\ntask = \"t\"\n"
        );
        let (_, findings) = check(&text, Path::new("c.toml"));
        let found: Vec<_> = findings.iter().map(|f| f.id).collect();
        for id in ["channels.token_in_config", "webhooks.secret_in_config"] {
            let f = findings
                .iter()
                .find(|f| f.id == id)
                .unwrap_or_else(|| panic!("{id}: {found:?}"));
            assert_eq!(f.severity, Severity::Critical);
        }
        for f in &findings {
            let all = format!("{} {} {}", f.title, f.evidence, f.remedy);
            assert!(!all.contains("AAEhBP0") && !all.contains("s3cr3t"), "{f:?}");
        }
    }

    #[test]
    fn a_webhook_without_a_secret_is_named() {
        let found = ids(&format!("{AGENTS}[webhooks.ci]\ntask = \"t\"\n"));
        assert!(found.contains(&"webhooks.no_secret"), "{found:?}");
        let found = ids(&format!(
            "{AGENTS}[webhooks.ci]\nsecret = \"CI_HOOK\"\ntask = \"t\"\n"
        ));
        assert!(!found.contains(&"webhooks.no_secret"), "{found:?}");
        assert!(!found.contains(&"webhooks.secret_in_config"), "{found:?}");
    }

    #[test]
    fn channel_tokens_and_webhook_keys_missing_from_the_vault_are_named() {
        let text = format!(
            "{}[channels.slack]\ntoken_secret = \"SLACK_BOT\"\napp_token_secret = \"SLACK_APP\"\n\
             [webhooks.ci]\nsecret = \"CI_HOOK\"\ntask = \"t\"\n",
            config::init_template(config::Tier::Personal)
        );
        let cfg = config::load_str(&text, Path::new("c.toml")).unwrap();
        let found = secrets_outside_vault(&cfg, &["SLACK_BOT".to_string()]);
        let evidence: Vec<_> = found.iter().map(|f| (f.id, f.evidence.as_str())).collect();
        assert_eq!(
            evidence,
            [
                (
                    "channels.secret_missing",
                    "channels.slack.app_token_secret names SLACK_APP"
                ),
                (
                    "webhooks.secret_missing",
                    "webhooks.ci.secret names CI_HOOK"
                ),
            ]
        );
        let all = ["SLACK_BOT", "SLACK_APP", "CI_HOOK"].map(String::from);
        assert!(secrets_outside_vault(&cfg, &all).is_empty());
    }

    #[test]
    fn every_init_template_has_no_critical_finding() {
        for tier in [
            config::Tier::Personal,
            config::Tier::Team,
            config::Tier::Enterprise,
        ] {
            let text = config::init_template(tier);
            let (_, findings) = check(&text, Path::new("cordon.toml"));
            let critical: Vec<_> = findings
                .iter()
                .filter(|f| f.severity == Severity::Critical)
                .collect();
            assert!(critical.is_empty(), "{tier:?}: {critical:?}");
        }
    }
}
