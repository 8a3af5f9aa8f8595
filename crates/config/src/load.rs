//! Strict loading: TOML text -> [`Config`], or a [`ConfigError`] at `FILE:LINE:COLUMN`.
//!
//! Guarantees: the returned config passed every check of [`validate`]; every error names
//! the line and the dotted key (`agents.default.tools[2]`) it is about. Spans come from
//! the TOML parser's span-carrying tree ([`toml::de::DeTable`]), parsed once and used both
//! to deserialize (with `serde_path_to_error` tracking the key path) and to locate keys
//! for the semantic checks. Does not: resolve or create workspaces on disk (only `~` is
//! expanded), or check that hosts and models exist.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::destination::{check_store_url, http_url, is_cleartext_off_host};
use crate::paths::expand_tilde;
use crate::{Config, ConfigError, McpServerConfig};

/// Load and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Validate config text; `path` is used in error messages only.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let doc = Doc { text, path };
    let tree = DeTable::parse(text).map_err(|e| {
        let (line, column) = doc.line_col(e.span().map_or(0, |s| s.start));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: first_line(e.message()),
        }
    })?;
    let de = toml::de::Deserializer::from(tree.clone());
    let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let mut key = KeyPath::from_serde(e.path());
        let mut message = first_line(e.inner().message());
        if looks_like_secret_key(&key) {
            message.push_str(
                "; secrets never go in cordon.toml: put the key in an environment variable \
                 and name that variable in `model.api_key_env`",
            );
        }
        // serde reports a missing field at its parent; name the field itself.
        if let Some(field) = missing_field(&message) {
            key.0.push(Seg::Key(field));
        }
        // Prefer the key as written (an array element for `tools[2]`); the parser's span
        // of a failed element can be the whole array.
        let (found, complete) = doc.locate(tree.get_ref(), &key);
        let start = match e.inner().span() {
            Some(span) if !complete => span.start,
            _ => found.start,
        };
        doc.invalid(start, &key, message)
    })?;
    if let Err((key, message)) = validate(&config) {
        let start = doc.locate(tree.get_ref(), &key).0.start;
        return Err(doc.invalid(start, &key, message));
    }
    for agent in config.agents.values_mut() {
        agent.workspace = expand_tilde(&agent.workspace);
    }
    Ok(config)
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path such as `agents.default.tools[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn from_serde(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment;
        KeyPath(
            path.iter()
                .filter_map(|s| match s {
                    Segment::Map { key } => Some(Seg::Key(key.clone())),
                    Segment::Seq { index } => Some(Seg::Index(*index)),
                    Segment::Enum { .. } | Segment::Unknown => None,
                })
                .collect(),
        )
    }

    fn of(keys: &[&str]) -> KeyPath {
        KeyPath(keys.iter().map(|k| Seg::Key((*k).to_string())).collect())
    }

    fn key(mut self, k: &str) -> KeyPath {
        self.0.push(Seg::Key(k.to_string()));
        self
    }

    fn index(mut self, i: usize) -> KeyPath {
        self.0.push(Seg::Index(i));
        self
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?
                    } else {
                        write!(f, "{k:?}")?
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

struct Doc<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Doc<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    fn invalid(&self, start: usize, key: &KeyPath, message: String) -> ConfigError {
        let (line, column) = self.line_col(start);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message,
        }
    }

    /// The span of the deepest part of `key` present in the file: the key itself for a
    /// table entry, the element for an array index. Keys filled by defaults resolve to
    /// their nearest written parent; the flag says whether the whole path was found.
    fn locate(&self, root: &DeTable<'_>, key: &KeyPath) -> (Range<usize>, bool) {
        let mut best = 0..0;
        let mut table = Some(root);
        let mut value: Option<&DeValue<'_>> = None;
        let mut found = 0;
        for seg in &key.0 {
            match seg {
                Seg::Key(k) => {
                    let Some(t) = table else { break };
                    let Some((name, v)) = t.iter().find(|(name, _)| name.get_ref().as_ref() == k)
                    else {
                        break;
                    };
                    best = name.span();
                    value = Some(v.get_ref());
                }
                Seg::Index(i) => {
                    let Some(DeValue::Array(items)) = value else {
                        break;
                    };
                    let Some(item) = items.get(*i) else { break };
                    best = item.span();
                    value = Some(item.get_ref());
                }
            }
            found += 1;
            table = match value {
                Some(DeValue::Table(t)) => Some(t),
                _ => None,
            };
        }
        (best, found == key.0.len())
    }
}

/// An unknown key whose name suggests someone pasted a credential into the file.
fn looks_like_secret_key(key: &KeyPath) -> bool {
    let Some(Seg::Key(last)) = key.0.last() else {
        return false;
    };
    let last = last.to_ascii_lowercase();
    ["key", "token", "secret", "password", "passwd", "credential"]
        .iter()
        .any(|w| last.contains(w))
        && !matches!(last.as_str(), "api_key_env")
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

type Problem = (KeyPath, String);

fn range<T: PartialOrd + std::fmt::Display>(
    key: KeyPath,
    value: T,
    min: T,
    max: T,
) -> Result<(), Problem> {
    if value < min || value > max {
        return Err((key, format!("{value} is out of range; use {min}-{max}")));
    }
    Ok(())
}

fn positive(key: KeyPath, value: u64) -> Result<(), Problem> {
    if value == 0 {
        return Err((key, "must be greater than 0".to_string()));
    }
    Ok(())
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_secret_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_agent_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_url(url: &str) -> Result<(), String> {
    http_url(url).map(drop)
}

/// A URL that audit data is sent to off the host: `https://`, or `http://` to a loopback
/// address only (`what` crossing the network in clear text is refused).
fn check_off_host_url(url: &str, what: &str) -> Result<(), String> {
    check_url(url)?;
    if !is_cleartext_off_host(url) {
        return Ok(());
    }
    Err(format!(
        "`{url}`: {what} would cross the network in clear text; use https:// (plain http \
         only to a loopback address)"
    ))
}

/// A name of a vault secret (`KEY` under `at`).
fn check_secret_name(at: KeyPath, name: &str) -> Result<(), Problem> {
    if is_secret_name(name) {
        return Ok(());
    }
    Err((
        at,
        // Not quoted: a value that is no name may be the token itself.
        format!(
            "not a secret name (`A-Z`, `0-9`, `_`, starting with a letter, at most {} \
             characters long{}); store the token with `cordon secrets set NAME` and give its \
             name here (a token written here must be rotated)",
            64,
            if name.is_empty() {
                ", got an empty string"
            } else {
                ""
            }
        ),
    ))
}

/// An agent named by a channel, webhook or schedule exists.
fn check_agent_exists(config: &Config, at: KeyPath, agent: &str) -> Result<(), Problem> {
    if config.agents.contains_key(agent) {
        return Ok(());
    }
    let known: Vec<&str> = config.agents.keys().map(String::as_str).collect();
    Err((
        at,
        format!(
            "no agent `{agent}`; configured agents: {}",
            known.join(", ")
        ),
    ))
}

/// `reply_to = "CHANNEL:CONVERSATION"` names a configured channel.
fn check_reply_to(config: &Config, at: KeyPath, reply_to: &str) -> Result<(), Problem> {
    let Some((channel, conversation)) = reply_to.split_once(':') else {
        return Err((
            at,
            format!("`{reply_to}` must be `CHANNEL:CONVERSATION`, e.g. `telegram:123456`"),
        ));
    };
    let Some(kind) = crate::ChannelKind::parse(channel) else {
        return Err((
            at,
            format!("`{channel}` is not a channel; use telegram, slack or matrix"),
        ));
    };
    if !config.channels.contains_key(&kind) {
        return Err((
            at,
            format!("channel `{channel}` is not configured; add `[channels.{channel}]`"),
        ));
    }
    if conversation.trim().is_empty() || conversation.len() > 256 {
        return Err((at, "the conversation id must be 1-256 characters".into()));
    }
    Ok(())
}

/// `[channels.NAME]`: secret names, URLs, known agents, ids, ranges.
fn validate_channels(config: &Config) -> Result<(), Problem> {
    use crate::ChannelKind;
    for (kind, c) in &config.channels {
        let at = KeyPath::of(&["channels", kind.as_str()]);
        check_secret_name(at.clone().key("token_secret"), &c.token_secret)?;
        match (kind, &c.app_token_secret) {
            (ChannelKind::Slack, None) => {
                return Err((
                    at.key("app_token_secret"),
                    "Slack's Socket Mode needs an app-level token (`xapp-…`): store it with \
                     `cordon secrets set NAME` and give its name here"
                        .into(),
                ));
            }
            (ChannelKind::Slack, Some(name)) => {
                check_secret_name(at.clone().key("app_token_secret"), name)?;
            }
            (_, Some(_)) => {
                return Err((
                    at.key("app_token_secret"),
                    "only Slack uses an app-level token; remove this key".into(),
                ));
            }
            (_, None) => {}
        }
        match &c.api_url {
            Some(url) => check_off_host_url(url, "the bot token")
                .map_err(|m| (at.clone().key("api_url"), m))?,
            None if *kind == ChannelKind::Matrix => {
                return Err((
                    at.key("api_url"),
                    "Matrix needs your homeserver's URL, e.g. `https://matrix.example.org`".into(),
                ));
            }
            None => {}
        }
        check_agent_exists(config, at.clone().key("agent"), &c.agent)?;
        for (i, who) in c.allow.iter().enumerate() {
            let key = at.clone().key("allow").index(i);
            if who.id.trim().is_empty()
                || who.id.len() > 256
                || who.id.chars().any(char::is_whitespace)
            {
                return Err((
                    key.key("id"),
                    "must be the platform's user id (1-256 characters, no spaces)".into(),
                ));
            }
            if c.allow[..i].iter().any(|o| o.id == who.id) {
                return Err((key.key("id"), format!("`{}` is listed twice", who.id)));
            }
        }
        if *kind == ChannelKind::Telegram {
            for (i, who) in c.allow.iter().enumerate() {
                if who.id.parse::<i64>().is_err() {
                    return Err((
                        at.clone().key("allow").index(i).key("id"),
                        format!(
                            "`{}` is not a Telegram user id (a number); usernames can change \
                             hands, so only the numeric id is accepted",
                            who.id
                        ),
                    ));
                }
            }
        }
        for (i, g) in c.groups.iter().enumerate() {
            if g.trim().is_empty() || g.len() > 256 {
                return Err((
                    at.clone().key("groups").index(i),
                    "must be a conversation id (1-256 characters)".into(),
                ));
            }
        }
        range(at.clone().key("rate_per_min"), c.rate_per_min, 1, 600)?;
        range(
            at.clone().key("max_message_bytes"),
            c.max_message_bytes,
            1,
            65_536,
        )?;
        range(at.key("max_file_bytes"), c.max_file_bytes, 0, 100 << 20)?;
    }
    Ok(())
}

fn is_task_name(s: &str) -> bool {
    is_agent_name(s)
}

/// `[webhooks.NAME]`, `[[schedules]]`, `[heartbeat]`.
fn validate_triggers(config: &Config) -> Result<(), Problem> {
    for (name, w) in &config.webhooks {
        let at = KeyPath::of(&["webhooks", name]);
        if !is_task_name(name) {
            return Err((
                at,
                format!("webhook name `{name}` must be 1-32 characters of `a-z`, `0-9`, `-`, `_`"),
            ));
        }
        if let Some(secret) = &w.secret {
            check_secret_name(at.clone().key("secret"), secret)?;
        }
        check_agent_exists(config, at.clone().key("agent"), &w.agent)?;
        if w.task.trim().is_empty() {
            return Err((at.key("task"), "must say what the agent should do".into()));
        }
        if let Some(r) = &w.reply_to {
            check_reply_to(config, at.clone().key("reply_to"), r)?;
        }
        range(
            at.clone().key("max_body_bytes"),
            w.max_body_bytes,
            1,
            1 << 20,
        )?;
        range(at.key("window_secs"), w.window_secs, 10, 3600)?;
    }
    for (i, s) in config.schedules.iter().enumerate() {
        let at = KeyPath::of(&["schedules"]).index(i);
        if !is_task_name(&s.name) || s.name == "heartbeat" {
            return Err((
                at.key("name"),
                format!(
                    "`{}` must be 1-32 characters of `a-z`, `0-9`, `-`, `_` (and not \
                     `heartbeat`, the heartbeat's name)",
                    s.name
                ),
            ));
        }
        if config.schedules[..i].iter().any(|o| o.name == s.name) {
            return Err((
                at.key("name"),
                format!("schedule `{}` is defined twice", s.name),
            ));
        }
        crate::schedule::parse_cron(&s.cron).map_err(|m| (at.clone().key("cron"), m))?;
        crate::schedule::parse_timezone(&s.timezone)
            .map_err(|m| (at.clone().key("timezone"), m))?;
        check_agent_exists(config, at.clone().key("agent"), &s.agent)?;
        if s.task.trim().is_empty() {
            return Err((at.key("task"), "must say what the agent should do".into()));
        }
        if let Some(r) = &s.reply_to {
            check_reply_to(config, at.key("reply_to"), r)?;
        }
    }
    if let Some(h) = &config.heartbeat {
        let at = KeyPath::of(&["heartbeat"]);
        range(at.clone().key("every_mins"), h.every_mins, 5, 1440)?;
        check_agent_exists(config, at.clone().key("agent"), &h.agent)?;
        if h.task.trim().is_empty() {
            return Err((at.key("task"), "must say what the agent should do".into()));
        }
        if let Some(r) = &h.reply_to {
            check_reply_to(config, at.key("reply_to"), r)?;
        }
    }
    Ok(())
}

/// `[gateway]`: the bind address parses, TLS files come in pairs, proxies are CIDRs,
/// origins are bare `scheme://host[:port]`, lifetimes and limits are in range.
fn validate_gateway(g: &crate::GatewayConfig) -> Result<(), Problem> {
    let at = KeyPath::of(&["gateway"]);
    if let Err(e) = g.bind.parse::<std::net::SocketAddr>() {
        return Err((
            at.key("bind"),
            format!(
                "`{}` is not an address and port like `127.0.0.1:7777` or `[::1]:7777` ({e})",
                g.bind
            ),
        ));
    }
    match (&g.tls_cert, &g.tls_key) {
        (Some(_), None) => {
            return Err((
                at.key("tls_key"),
                "`tls_cert` is set but `tls_key` is not; set both (PEM files) or neither".into(),
            ));
        }
        (None, Some(_)) => {
            return Err((
                at.key("tls_cert"),
                "`tls_key` is set but `tls_cert` is not; set both (PEM files) or neither".into(),
            ));
        }
        (Some(c), Some(k)) => {
            for (key, p) in [("tls_cert", c), ("tls_key", k)] {
                if p.as_os_str().is_empty() {
                    return Err((at.clone().key(key), "must not be empty".into()));
                }
            }
        }
        (None, None) => {}
    }
    for (i, cidr) in g.trusted_proxies.iter().enumerate() {
        if let Err(err) = cidr.parse::<ipnet::IpNet>() {
            return Err((
                at.clone().key("trusted_proxies").index(i),
                format!("`{cidr}` is not a CIDR range like `10.0.0.5/32` ({err})"),
            ));
        }
    }
    for (i, origin) in g.allowed_origins.iter().enumerate() {
        check_origin(origin).map_err(|e| (at.clone().key("allowed_origins").index(i), e))?;
    }
    range(
        at.clone().key("session_idle_secs"),
        g.session_idle_secs,
        60,
        86_400,
    )?;
    range(
        at.clone().key("session_max_secs"),
        g.session_max_secs,
        60,
        604_800,
    )?;
    if g.session_max_secs < g.session_idle_secs {
        return Err((
            at.key("session_max_secs"),
            format!(
                "{} is shorter than session_idle_secs ({}); the absolute lifetime must be at \
                 least the idle one",
                g.session_max_secs, g.session_idle_secs
            ),
        ));
    }
    range(
        at.clone().key("login_max_failures"),
        g.login_max_failures,
        1,
        1000,
    )?;
    range(
        at.key("login_lockout_secs"),
        g.login_lockout_secs,
        1,
        86_400,
    )?;
    Ok(())
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("`{origin}` must start with `http://` or `https://`"))?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@'])
        || rest.chars().any(char::is_whitespace)
        || rest.starts_with(':')
    {
        return Err(format!(
            "`{origin}` is not an origin; write scheme://host[:port] with no path, e.g. \
             `https://cordon.example.com`"
        ));
    }
    if origin.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "`{origin}` must be lowercase, as browsers send it in the Origin header"
        ));
    }
    Ok(())
}

/// Semantic checks serde cannot express. Returns the first problem found.
fn validate(config: &Config) -> Result<(), Problem> {
    let m = &config.model;
    let model = KeyPath::of(&["model"]);
    check_url(&m.base_url).map_err(|e| (model.clone().key("base_url"), e))?;
    if m.model.trim().is_empty() {
        return Err((
            model.key("model"),
            "must not be empty; name the model to use".into(),
        ));
    }
    if let Some(env) = &m.api_key_env
        && !is_env_name(env)
    {
        return Err((
            model.key("api_key_env"),
            format!(
                "`{env}` is not an environment variable name (letters, digits, `_`, not \
                 starting with a digit); put the key in that variable, never in this file"
            ),
        ));
    }
    range(model.clone().key("timeout_secs"), m.timeout_secs, 1, 3600)?;
    range(model.clone().key("max_retries"), m.max_retries, 0, 10)?;
    positive(model.key("max_tokens"), u64::from(m.max_tokens))?;

    if config.agents.is_empty() {
        return Err((
            KeyPath::of(&["agents"]),
            "at least one agent is required, e.g. `[agents.default]`".into(),
        ));
    }
    for (name, agent) in &config.agents {
        let at = KeyPath::of(&["agents", name]);
        if !is_agent_name(name) {
            return Err((
                at,
                format!("agent name `{name}` must be 1-32 characters of `a-z`, `0-9`, `-`, `_`"),
            ));
        }
        if agent.workspace.as_os_str().is_empty() {
            return Err((at.key("workspace"), "must not be empty".into()));
        }
        for (i, tool) in agent.tools.iter().enumerate() {
            if agent.tools[..i].contains(tool) {
                return Err((
                    at.key("tools").index(i),
                    format!("tool `{tool}` is listed twice; remove the duplicate"),
                ));
            }
        }
        range(at.clone().key("max_steps"), agent.max_steps, 1, 200)?;
        let exec = at.clone().key("exec");
        range(
            exec.clone().key("timeout_secs"),
            agent.exec.timeout_secs,
            1,
            86_400,
        )?;
        range(
            exec.clone().key("output_limit"),
            agent.exec.output_limit,
            1024,
            16 << 20,
        )?;
        for (i, secret) in agent.egress.secrets.iter().enumerate() {
            let key = at.clone().key("egress").key("secrets").index(i);
            if !is_secret_name(secret) {
                return Err((
                    key,
                    format!(
                        "`{secret}` is not a secret name (`A-Z`, `0-9`, `_`, starting with a \
                         letter, at most 64); names refer to `cordon secrets set NAME`"
                    ),
                ));
            }
            if agent.egress.secrets[..i].contains(secret) {
                return Err((key, format!("secret `{secret}` is listed twice")));
            }
        }
        let labels = at.clone().key("labels");
        for (i, pattern) in agent.labels.private.iter().enumerate() {
            check_workspace_glob(pattern)
                .map_err(|e| (labels.clone().key("private").index(i), e))?;
        }
        for (i, dir) in agent.labels.scratch.iter().enumerate() {
            check_workspace_glob(dir).map_err(|e| (labels.clone().key("scratch").index(i), e))?;
            if dir.contains('*') {
                return Err((
                    labels.clone().key("scratch").index(i),
                    format!("`{dir}` must be a directory, not a pattern"),
                ));
            }
        }
        let sub = at.clone().key("subagents");
        range(
            sub.clone().key("max_depth"),
            agent.subagents.max_depth,
            0,
            4,
        )?;
        range(sub.key("max_children"), agent.subagents.max_children, 1, 32)?;
        let send = at.clone().key("send_message").key("allow");
        for (i, target) in agent.send_message.allow.iter().enumerate() {
            check_reply_to(config, send.clone().index(i), target)?;
            if agent.send_message.allow[..i].contains(target) {
                return Err((send.clone().index(i), format!("`{target}` is listed twice")));
            }
        }
        if agent.tools.contains(&crate::ToolName::SendMessage) && config.channels.is_empty() {
            return Err((
                at.clone().key("tools"),
                "`send_message` needs a chat channel to send through; add `[channels.telegram]`, \
                 `[channels.slack]` or `[channels.matrix]`, or remove it"
                    .into(),
            ));
        }
        for (i, program) in agent.exec.allow.iter().enumerate() {
            if program.is_empty() || program.chars().any(char::is_whitespace) {
                return Err((
                    exec.clone().key("allow").index(i),
                    format!(
                        "`{program}` must be one program name or path, without spaces \
                         (arguments are not matched)"
                    ),
                ));
            }
        }
    }

    let approvals = KeyPath::of(&["approvals"]);
    range(
        approvals.clone().key("timeout_secs"),
        config.approvals.timeout_secs,
        1,
        86_400,
    )?;
    range(
        approvals.key("grant_max_days"),
        config.approvals.grant_max_days,
        1,
        365,
    )?;
    for (i, file) in config.policy.files.iter().enumerate() {
        if file.as_os_str().is_empty() {
            return Err((
                KeyPath::of(&["policy", "files"]).index(i),
                "must not be empty; name a `.cedar` file".into(),
            ));
        }
    }

    validate_gateway(&config.gateway)?;
    validate_mcp(config)?;
    validate_channels(config)?;
    validate_triggers(config)?;
    range(
        KeyPath::of(&["checkpoints", "max_mb"]),
        config.checkpoints.max_mb,
        1,
        1 << 20,
    )?;

    if let Some(x) = &config.audit.export {
        let at = KeyPath::of(&["audit", "export"]);
        check_off_host_url(&x.url, "audit records").map_err(|m| (at.clone().key("url"), m))?;
        if !(1..=3600).contains(&x.interval_secs) {
            return Err((at.key("interval_secs"), "must be 1-3600".into()));
        }
        if !(1..=10_000).contains(&x.batch) {
            return Err((at.key("batch"), "must be 1-10000".into()));
        }
        if x.token_env.as_deref().is_some_and(str::is_empty) {
            return Err((
                at.key("token_env"),
                "must name an environment variable, e.g. `CORDON_AUDIT_TOKEN`".into(),
            ));
        }
    }

    if let Some(a) = &config.alerts {
        let at = KeyPath::of(&["alerts"]);
        check_off_host_url(&a.webhook_url, "alerts")
            .map_err(|m| (at.clone().key("webhook_url"), m))?;
        if a.token_env.as_deref().is_some_and(|v| !is_env_name(v)) {
            return Err((
                at.key("token_env"),
                "must name an environment variable, e.g. `CORDON_ALERTS_TOKEN`".into(),
            ));
        }
    }

    let at = KeyPath::of(&["store"]);
    if let Some(url) = &config.store.url {
        check_store_url(url).map_err(|m| (at.clone().key("url"), m))?;
    }
    if let Some(env) = &config.store.password_env {
        if config.store.url.is_none() {
            return Err((
                at.key("password_env"),
                "is only used with `url` (PostgreSQL); SQLite needs no password".into(),
            ));
        }
        if !is_env_name(env) {
            return Err((
                at.key("password_env"),
                format!(
                    "`{env}` is not an environment variable name; put the password in that \
                     variable, never in this file, e.g. `CORDON_STORE_PASSWORD`"
                ),
            ));
        }
    }

    let e = &config.egress;
    let egress = KeyPath::of(&["egress"]);
    for (i, cidr) in e.allow_ranges.iter().enumerate() {
        if let Err(err) = cidr.parse::<ipnet::IpNet>() {
            return Err((
                egress.clone().key("allow_ranges").index(i),
                format!("`{cidr}` is not a CIDR range like `10.0.0.0/24` ({err})"),
            ));
        }
    }
    for name in e.resolve.keys() {
        if crate::HostPattern::parse(name).map(|p| p.is_wildcard() || p.port().is_some())
            != Ok(false)
        {
            return Err((
                egress.clone().key("resolve").key(name),
                format!("`{name}` must be a plain host name (no wildcard, no port)"),
            ));
        }
    }
    range(
        egress.clone().key("max_connections"),
        e.max_connections,
        1,
        10_000,
    )?;
    range(egress.key("max_mb"), e.max_mb, 1, 1 << 20)?;

    let s = &config.sandbox;
    let sandbox = KeyPath::of(&["sandbox"]);
    for (key, value) in [
        ("max_processes", s.max_processes),
        ("max_open_files", s.max_open_files),
        ("max_file_size_mb", s.max_file_size_mb),
        ("max_cpu_secs", s.max_cpu_secs),
        ("max_memory_mb", s.max_memory_mb),
        ("tmp_size_mb", s.tmp_size_mb),
        ("cgroup_memory_mb", s.cgroup_memory_mb),
        ("cgroup_pids", s.cgroup_pids),
    ] {
        positive(sandbox.clone().key(key), value)?;
    }
    if !(1..=10_000).contains(&s.cgroup_cpu_percent) {
        return Err((
            sandbox.clone().key("cgroup_cpu_percent"),
            format!(
                "must be 1-10000 (percent of one core), got {}",
                s.cgroup_cpu_percent
            ),
        ));
    }
    let none = s.backend == crate::SandboxBackend::None;
    if none && !s.i_understand_this_disables_isolation {
        return Err((
            sandbox.clone().key("backend"),
            "`none` runs tool processes on the host without any isolation; it is refused \
             unless you also set `i_understand_this_disables_isolation = true`"
                .to_string(),
        ));
    }
    if !none && s.i_understand_this_disables_isolation {
        return Err((
            sandbox.clone().key("i_understand_this_disables_isolation"),
            "only meaningful with `backend = \"none\"`; remove it".to_string(),
        ));
    }
    if s.image.trim().is_empty() || s.image.chars().any(char::is_whitespace) {
        return Err((
            sandbox.clone().key("image"),
            "must be a container image reference without spaces".to_string(),
        ));
    }
    Ok(())
}

/// `[mcp.servers.NAME]`: a usable name, exactly one of `command` and `url`, a URL that
/// sends nothing in clear text off this machine, known agents, valid secret names.
fn validate_mcp(config: &Config) -> Result<(), Problem> {
    for (name, s) in &config.mcp.servers {
        let at = KeyPath::of(&["mcp", "servers", name]);
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && !name.contains("__")
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err((
                at,
                format!(
                    "server name `{name}` must be 1-32 characters of `a-z`, `0-9`, `-`, `_` \
                     without `__` (the model sees its tools as `{name}__TOOL`)"
                ),
            ));
        }
        match (&s.command, &s.url) {
            (Some(_), Some(_)) => {
                return Err((
                    at.key("url"),
                    "give either `command` (a stdio server) or `url` (an HTTP server), not both"
                        .into(),
                ));
            }
            (None, None) => {
                return Err((
                    at,
                    "needs `command` (a stdio server, e.g. `command = \"npx\"`) or `url` (an \
                     HTTP server)"
                        .into(),
                ));
            }
            (Some(c), None) if c.trim().is_empty() => {
                return Err((at.key("command"), "must not be empty".into()));
            }
            (None, Some(url)) => {
                check_url(url).map_err(|e| (at.clone().key("url"), e))?;
                if crate::is_cleartext_off_host(url) {
                    return Err((
                        at.key("url"),
                        format!(
                            "`{url}` would send the server's traffic in clear text off this machine; use https://"
                        ),
                    ));
                }
            }
            _ => {}
        }
        if s.url.is_some() && !s.args.is_empty() {
            return Err((
                at.key("args"),
                "only a stdio server (`command`) takes `args`".into(),
            ));
        }
        check_mcp_headers(s).map_err(|(key, m)| {
            let at = at.clone().key("headers");
            (if key.is_empty() { at } else { at.key(&key) }, m)
        })?;
        for (i, secret) in s.secrets.iter().enumerate() {
            if !is_secret_name(secret) {
                return Err((
                    at.clone().key("secrets").index(i),
                    format!(
                        "`{secret}` is not a secret name (`A-Z`, `0-9`, `_`, starting with a letter)"
                    ),
                ));
            }
        }
        for (i, agent) in s.agents.iter().enumerate() {
            if !config.agents.contains_key(agent) {
                return Err((
                    at.clone().key("agents").index(i),
                    format!("no agent `{agent}` is configured"),
                ));
            }
        }
        if let Some(t) = s.tools.include.iter().find(|t| s.tools.exclude.contains(t)) {
            return Err((
                at.clone().key("tools"),
                format!("tool `{t}` is both included and excluded"),
            ));
        }
        range(at.key("timeout_secs"), s.timeout_secs, 1, 3600)?;
    }
    Ok(())
}

/// `headers` of an MCP server: for an HTTP server only; names that are HTTP tokens and
/// not ones the client or the proxy owns; values without control characters whose
/// `${NAME}` references name the server's own `secrets`. The error's key is the header
/// (empty for the table itself).
fn check_mcp_headers(s: &McpServerConfig) -> Result<(), (String, String)> {
    if s.headers.is_empty() {
        return Ok(());
    }
    if s.url.is_none() {
        return Err((
            String::new(),
            "only an HTTP server (`url`) takes `headers`; a stdio server gets its \
             secrets as environment variables"
                .into(),
        ));
    }
    const OWNED: [&str; 9] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "accept",
        "content-type",
        "mcp-session-id",
    ];
    for (name, value) in &s.headers {
        let fail = |m: String| Err((name.clone(), m));
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return fail(format!("`{name}` is not a valid header name"));
        }
        let lower = name.to_ascii_lowercase();
        if OWNED.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return fail(format!(
                "`{name}` is set by the MCP client or the egress proxy, not by configuration"
            ));
        }
        if value.chars().any(|c| c.is_control()) {
            return fail("the value must not contain control characters".into());
        }
        let mut rest = value.as_str();
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return fail("`${` without a closing `}`".into());
            };
            let secret = &after[..end];
            if !s.secrets.iter().any(|x| x == secret) {
                return fail(format!(
                    "`${{{secret}}}` is not one of this server's `secrets` ({})",
                    if s.secrets.is_empty() {
                        "it has none".to_string()
                    } else {
                        s.secrets.join(", ")
                    }
                ));
            }
            rest = &after[end + 1..];
        }
    }
    Ok(())
}

/// A workspace-relative path or glob: not empty, not absolute, no `..`.
fn check_workspace_glob(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if pattern.starts_with('/') || pattern.starts_with('~') {
        return Err(format!(
            "`{pattern}` must be relative to the workspace (no leading `/` or `~`)"
        ));
    }
    if pattern.split('/').any(|c| c == "..") {
        return Err(format!("`{pattern}` must not contain `..`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_display() {
        let k = KeyPath::of(&["agents", "default"]).key("tools").index(2);
        assert_eq!(k.to_string(), "agents.default.tools[2]");
        assert_eq!(
            KeyPath::of(&["agents", "Bad Name"]).to_string(),
            "agents.\"Bad Name\""
        );
    }

    #[test]
    fn line_col_counts_chars() {
        let doc = Doc {
            text: "a\nbé = 1\n",
            path: Path::new("x"),
        };
        assert_eq!(doc.line_col(0), (1, 1));
        assert_eq!(doc.line_col(2), (2, 1));
        assert_eq!(doc.line_col(5), (2, 3));
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:11434/v1").is_ok());
        assert!(check_url("https://api.anthropic.com/v1").is_ok());
        for bad in [
            "ftp://x",
            "http://",
            "https:///v1",
            "127.0.0.1",
            "http://a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn off_host_urls_are_https_or_loopback() {
        for ok in [
            "https://hooks.example.com/services/x",
            "http://127.0.0.1:8080/in",
            "http://[::1]:9/in",
            "http://[::1]/in",
            "http://localhost/in",
        ] {
            assert!(check_off_host_url(ok, "alerts").is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/x",
            "http://10.0.0.1:8080/in",
            "http://127.0.0.1@evil.example/in",
            "http://localhost.evil.example/in",
        ] {
            let e = check_off_host_url(bad, "alerts").unwrap_err();
            assert!(e.contains("clear text"), "{bad}: {e}");
        }
    }
}
