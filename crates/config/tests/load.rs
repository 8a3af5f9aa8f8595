//! Every class of config error names the right file, line and key.

use std::path::Path;

use cordon_config::{ConfigError, ExecMode, Tier, ToolName, init_template, load, load_str};

const FILE: &str = "/x/cordon.toml";

const VALID: &str = r#"tier = "personal"

[model]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "qwen2.5:7b"
api_key_env = "OPENAI_API_KEY"

[agents.default]
workspace = "~/cordon-workspace/default"
tools = ["read_file", "write_file", "exec"]

[agents.default.exec]
mode = "allowlist"
allow = ["ls", "cargo"]

[agents.default.egress]
allow = ["api.github.com", "*.pypi.org"]
"#;

/// Replace the first occurrence of `from` in VALID by `to`.
fn with(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "fixture lacks {from:?}");
    VALID.replacen(from, to, 1)
}

/// Load `text`, expect an error, and return (line, key, Display).
fn fails(text: &str) -> (usize, String, String) {
    let err = load_str(text, Path::new(FILE)).expect_err("config should be rejected");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{FILE}:")), "no file in {shown}");
    match err {
        ConfigError::Invalid { line, key, .. } => (line, key, shown),
        ConfigError::Syntax { line, .. } => (line, String::new(), shown),
        ConfigError::Read { .. } => panic!("unexpected read error"),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text")
        + 1
}

#[test]
fn valid_config_loads_and_expands_tilde() {
    let c = load_str(VALID, Path::new(FILE)).unwrap();
    let a = &c.agents["default"];
    assert_eq!(a.exec.mode, ExecMode::Allowlist);
    assert_eq!(
        a.tools,
        vec![ToolName::ReadFile, ToolName::WriteFile, ToolName::Exec]
    );
    assert!(
        !a.workspace.starts_with("~"),
        "tilde not expanded: {:?}",
        a.workspace
    );
    assert!(a.workspace.ends_with("cordon-workspace/default"));
    assert_eq!(a.egress.allow.len(), 2);
}

#[test]
fn bad_enum_value_names_line_and_key() {
    let text = with("mode = \"allowlist\"", "mode = \"sometimes\"");
    let (line, key, shown) = fails(&text);
    assert_eq!(line, line_of(&text, "sometimes"));
    assert_eq!(key, "agents.default.exec.mode");
    assert!(shown.contains(&format!("{FILE}:{line}:")), "{shown}");
    assert!(shown.contains("key `agents.default.exec.mode`"), "{shown}");
    assert!(
        shown.contains("`sometimes`") && shown.contains("`allowlist`"),
        "{shown}"
    );
}

#[test]
fn unknown_key_is_rejected_with_line() {
    let text = with(
        "model = \"qwen2.5:7b\"",
        "model = \"qwen2.5:7b\"\napi_key = \"sk-live-123\"",
    );
    let (line, key, shown) = fails(&text);
    assert_eq!(line, line_of(&text, "sk-live"));
    assert_eq!(key, "model.api_key");
    assert!(shown.contains("unknown field"), "{shown}");

    let text = format!("{VALID}\n[agents.default.extra]\nx = 1\n");
    let (line, key, _) = fails(&text);
    assert_eq!(line, line_of(&text, "[agents.default.extra]"));
    assert_eq!(key, "agents.default.extra");

    let text = format!("colour = \"blue\"\n{VALID}");
    let (line, key, _) = fails(&text);
    assert_eq!((line, key.as_str()), (1, "colour"));
}

#[test]
fn wrong_type_names_line_and_key() {
    let text = with(
        "[agents.default.exec]",
        "[agents.default.exec]\ntimeout_secs = \"ten\"",
    );
    let (line, key, _) = fails(&text);
    assert_eq!(line, line_of(&text, "\"ten\""));
    assert_eq!(key, "agents.default.exec.timeout_secs");
}

#[test]
fn array_element_errors_name_the_index() {
    let text = with(
        "\"write_file\", \"exec\"]",
        "\"write_file\",\n  \"telnet\"]",
    );
    let (line, key, _) = fails(&text);
    assert_eq!(line, line_of(&text, "telnet"));
    assert_eq!(key, "agents.default.tools[2]");

    let text = with(
        "\"write_file\", \"exec\"]",
        "\"write_file\",\n  \"read_file\"]",
    );
    let (line, key, shown) = fails(&text);
    assert_eq!(line, line_of(&text, "  \"read_file\""));
    assert_eq!(key, "agents.default.tools[2]");
    assert!(shown.contains("listed twice"), "{shown}");
}

#[test]
fn bad_host_pattern_names_the_element() {
    let text = with(
        "\"*.pypi.org\"]",
        "\n  \"*.pypi.org\",\n  \"http://evil.example/\"]",
    );
    let (line, key, shown) = fails(&text);
    assert_eq!(line, line_of(&text, "evil.example"));
    assert_eq!(key, "agents.default.egress.allow[2]");
    assert!(shown.contains("not a URL"), "{shown}");
}

#[test]
fn syntax_error_has_line() {
    let text = with("provider = \"openai\"", "provider = \"openai");
    let err = load_str(&text, Path::new(FILE)).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert_eq!(err.line(), Some(line_of(&text, "provider")));
}

#[test]
fn missing_required_key_names_it() {
    let text = with("model = \"qwen2.5:7b\"\n", "");
    let (line, key, shown) = fails(&text);
    assert_eq!(key, "model.model");
    assert_eq!(line, line_of(&text, "[model]"));
    assert!(shown.contains("missing field"), "{shown}");
}

#[test]
fn semantic_errors_name_line_and_key() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (replace, with, expected key, line containing)
        (
            "base_url = \"http://127.0.0.1:11434/v1\"",
            "base_url = \"ftp://x\"",
            "model.base_url",
            "ftp://",
        ),
        (
            "model = \"qwen2.5:7b\"",
            "model = \"  \"",
            "model.model",
            "model = \"  \"",
        ),
        (
            "api_key_env = \"OPENAI_API_KEY\"",
            "api_key_env = \"1BAD-NAME\"",
            "model.api_key_env",
            "1BAD",
        ),
        (
            "api_key_env = \"OPENAI_API_KEY\"",
            "timeout_secs = 0",
            "model.timeout_secs",
            "timeout_secs = 0",
        ),
        (
            "api_key_env = \"OPENAI_API_KEY\"",
            "max_retries = 11",
            "model.max_retries",
            "max_retries",
        ),
        (
            "[agents.default]\n",
            "[agents.default]\nmax_steps = 201\n",
            "agents.default.max_steps",
            "max_steps",
        ),
        (
            "workspace = \"~/cordon-workspace/default\"",
            "workspace = \"\"",
            "agents.default.workspace",
            "workspace = \"\"",
        ),
        (
            "mode = \"allowlist\"",
            "timeout_secs = 86401",
            "agents.default.exec.timeout_secs",
            "86401",
        ),
        (
            "mode = \"allowlist\"",
            "output_limit = 1023",
            "agents.default.exec.output_limit",
            "1023",
        ),
        (
            "allow = [\"ls\", \"cargo\"]",
            "allow = [\"ls\",\n \"rm -rf\"]",
            "agents.default.exec.allow[1]",
            "rm -rf",
        ),
        (
            "allow = [\"ls\", \"cargo\"]",
            "allow = [\"\"]",
            "agents.default.exec.allow[0]",
            "allow = [\"\"]",
        ),
    ];
    for (from, to, want_key, want_line) in cases {
        let text = with(from, to);
        let (line, key, shown) = fails(&text);
        assert_eq!(&key, want_key, "{shown}");
        assert_eq!(line, line_of(&text, want_line), "{shown}");
    }
}

#[test]
fn bad_agent_name() {
    let text = VALID.replace("agents.default", "agents.Default");
    let (line, key, shown) = fails(&text);
    assert_eq!(key, "agents.Default");
    assert_eq!(line, line_of(&text, "[agents.Default]"));
    assert!(shown.contains("1-32 characters"), "{shown}");
}

#[test]
fn sandbox_limits_must_be_positive() {
    let text = format!("{VALID}\n[sandbox]\nmax_processes = 0\n");
    let (line, key, _) = fails(&text);
    assert_eq!(key, "sandbox.max_processes");
    assert_eq!(line, line_of(&text, "max_processes = 0"));
}

#[test]
fn at_least_one_agent() {
    let text = "agents = {}\n".to_string() + VALID.split("[agents.default]").next().unwrap();
    let (line, key, _) = fails(&text);
    assert_eq!(key, "agents");
    assert_eq!(line, line_of(&text, "agents = {}"));
}

#[test]
fn secret_in_config_is_rejected() {
    let text = with("[model]", "[model]\napi_key = \"sk-proj-abcdef0123456789\"");
    let (_, key, shown) = fails(&text);
    assert_eq!(key, "model.api_key");
    assert!(shown.contains("api_key_env"), "no hint: {shown}");
    assert!(
        !shown.contains("sk-proj"),
        "error echoes the secret: {shown}"
    );
    let text = format!("api_key = \"sk-abc\"\n{VALID}");
    let (_, key, _) = fails(&text);
    assert_eq!(key, "api_key");
    assert!(shown.contains("unknown field"));
}

#[test]
fn every_template_loads() {
    for tier in [Tier::Personal, Tier::Team, Tier::Enterprise] {
        let text = init_template(tier);
        let c = load_str(&text, Path::new("template.toml"))
            .unwrap_or_else(|e| panic!("{tier:?} template: {e}"));
        assert_eq!(c.tier, tier);
        let a = &c.agents["default"];
        assert_eq!(a.exec.mode, ExecMode::Ask);
        assert!(a.egress.allow.is_empty());
        assert_eq!(a.tools, ToolName::DEFAULT.to_vec());
        assert_eq!(c.model.model, "qwen2.5:7b");
        assert_eq!(c.model.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    }
    let p = load_str(&init_template(Tier::Personal), Path::new("p")).unwrap();
    let e = load_str(&init_template(Tier::Enterprise), Path::new("e")).unwrap();
    assert!(e.sandbox.max_memory_mb < p.sandbox.max_memory_mb);
    assert!(e.agents["default"].max_steps < p.agents["default"].max_steps);
}

#[test]
fn load_reads_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.toml");
    std::fs::write(&path, init_template(Tier::Team)).unwrap();
    assert_eq!(load(&path).unwrap().tier, Tier::Team);
    let missing = dir.path().join("nope.toml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("nope.toml"));
    std::fs::write(&path, "tier = \"team\"\n[model]\nprovider = \"gpt\"\n").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
}

#[test]
fn sandbox_none_needs_the_explicit_acknowledgement() {
    let text = format!("{VALID}\n[sandbox]\nbackend = \"none\"\n");
    let (line, key, shown) = fails(&text);
    assert_eq!(key, "sandbox.backend");
    assert_eq!(line, line_of(&text, "backend = \"none\""));
    assert!(
        shown.contains("i_understand_this_disables_isolation"),
        "{shown}"
    );
    let ok = format!("{text}i_understand_this_disables_isolation = true\n");
    load_str(&ok, Path::new(FILE)).unwrap();
    // The acknowledgement alone, with a real sandbox, is a mistake too.
    let text = format!("{VALID}\n[sandbox]\ni_understand_this_disables_isolation = true\n");
    let (_, key, _) = fails(&text);
    assert_eq!(key, "sandbox.i_understand_this_disables_isolation");
}

#[test]
fn egress_settings_are_validated() {
    let text = format!("{VALID}\n[egress]\nallow_ranges = [\"10.0.0.0/24\", \"10.0.0.300/8\"]\n");
    let (line, key, _) = fails(&text);
    assert_eq!(key, "egress.allow_ranges[1]");
    assert_eq!(line, line_of(&text, "allow_ranges"));

    let text = format!("{VALID}\n[egress]\nresolve = {{ \"*.evil.org\" = \"10.0.0.5\" }}\n");
    let (_, key, _) = fails(&text);
    assert!(key.starts_with("egress.resolve"), "{key}");

    let text = format!("{VALID}\n[egress]\nresolve = {{ \"mirror\" = \"not-an-ip\" }}\n");
    fails(&text);

    let text = with(
        "allow = [\"api.github.com\", \"*.pypi.org\"]",
        "allow = []\nsecrets = [\"GITHUB_TOKEN\", \"lower\"]",
    );
    let (line, key, _) = fails(&text);
    assert_eq!(key, "agents.default.egress.secrets[1]");
    assert_eq!(line, line_of(&text, "secrets ="));

    let text = format!(
        "{VALID}\n[egress]\nresolve = {{ \"mirror.internal\" = \"10.0.0.5\" }}\nallow_ranges = [\"10.0.0.5/32\"]\n"
    );
    let c = load_str(&text, Path::new(FILE)).unwrap();
    assert_eq!(c.egress.resolve["mirror.internal"].to_string(), "10.0.0.5");
}

#[test]
fn gateway_defaults_to_loopback_and_checks_its_keys() {
    let c = load_str(VALID, Path::new(FILE)).unwrap();
    assert_eq!(c.gateway.bind, "127.0.0.1:7777");
    assert!(c.gateway.tls_cert.is_none() && c.gateway.tls_key.is_none());
    let good = format!(
        "{VALID}\n[gateway]\nbind = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n\
         trusted_proxies = [\"10.0.0.5/32\"]\nallowed_origins = [\"https://cordon.example.com\"]\n"
    );
    let c = load_str(&good, Path::new(FILE)).unwrap();
    assert_eq!(c.gateway.trusted_proxies, ["10.0.0.5/32"]);
    let cases: &[(&str, &str, &str)] = &[
        ("bind = \"localhost\"", "gateway.bind", "address and port"),
        ("tls_cert = \"c.pem\"", "gateway.tls_key", "set both"),
        ("tls_key = \"k.pem\"", "gateway.tls_cert", "set both"),
        (
            "trusted_proxies = [\"10.0.0.0/33\"]",
            "gateway.trusted_proxies[0]",
            "CIDR",
        ),
        (
            "allowed_origins = [\"https://x.example/ui\"]",
            "gateway.allowed_origins[0]",
            "no path",
        ),
        (
            "allowed_origins = [\"x.example\"]",
            "gateway.allowed_origins[0]",
            "http://",
        ),
        (
            "session_idle_secs = 10",
            "gateway.session_idle_secs",
            "out of range",
        ),
        (
            "session_idle_secs = 7200\nsession_max_secs = 3600",
            "gateway.session_max_secs",
            "at least the idle",
        ),
        (
            "login_max_failures = 0",
            "gateway.login_max_failures",
            "out of range",
        ),
        (
            "login_lockout_secs = 0",
            "gateway.login_lockout_secs",
            "out of range",
        ),
    ];
    for (body, key, says) in cases {
        let text = format!("{VALID}\n[gateway]\n{body}\n");
        let (line, k, shown) = fails(&text);
        assert_eq!(&k, key, "{shown}");
        assert!(shown.contains(says), "{shown} lacks {says}");
        assert!(line > line_of(&text, "[gateway]") - 1, "{shown}");
    }
}

#[test]
fn alerts_need_https_or_loopback_and_name_their_token_variable() {
    let c = load_str(VALID, Path::new(FILE)).unwrap();
    assert!(c.alerts.is_none());
    let good = format!(
        "{VALID}\n[alerts]\nwebhook_url = \"https://hooks.example.com/services/T0/B0/x\"\n\
         token_env = \"CORDON_ALERTS_TOKEN\"\nformat = \"json\"\n"
    );
    let a = load_str(&good, Path::new(FILE)).unwrap().alerts.unwrap();
    assert_eq!(a.format, cordon_config::AlertFormat::Json);
    assert_eq!(a.token_env.as_deref(), Some("CORDON_ALERTS_TOKEN"));
    let loopback = format!("{VALID}\n[alerts]\nwebhook_url = \"http://127.0.0.1:9000/hook\"\n");
    assert!(load_str(&loopback, Path::new(FILE)).is_ok());
    let cases: &[(&str, &str, &str)] = &[
        (
            "webhook_url = \"http://hooks.example.com/x\"",
            "alerts.webhook_url",
            "clear text",
        ),
        (
            "webhook_url = \"hooks.example.com\"",
            "alerts.webhook_url",
            "https://",
        ),
        (
            "webhook_url = \"https://h.example/x\"\ntoken_env = \"not a name\"",
            "alerts.token_env",
            "environment variable",
        ),
        (
            "webhook_url = \"https://h.example/x\"\nformat = \"xml\"",
            "alerts.format",
            "unknown variant",
        ),
        (
            "webhook_url = \"https://h.example/x\"\ntoken = \"abc\"",
            "alerts.token",
            "secrets never go in cordon.toml",
        ),
    ];
    for (body, key, says) in cases {
        let text = format!("{VALID}\n[alerts]\n{body}\n");
        let (line, k, shown) = fails(&text);
        assert_eq!(&k, key, "{shown}");
        assert!(shown.contains(says), "{shown} lacks {says}");
        assert!(line > line_of(&text, "[alerts]"), "{shown}");
    }
}

/// The URL check uses the HTTP client's own (WHATWG) parser: a URL that looks like it
/// names a loopback address but is sent elsewhere is clear text off this machine.
#[test]
fn cleartext_urls_are_judged_by_where_the_client_sends_them() {
    for (table, key) in [("alerts", "webhook_url"), ("audit.export", "url")] {
        for url in [
            r"http://evil.example\\@127.0.0.1:9000/",
            "http://127.0.0.1@evil.example/in",
            "http://evil.example#@127.0.0.1/",
            "HTTP://evil.example/in",
            "http://%65vil.example/in",
            "http://[::ffff:10.0.0.1]/in",
        ] {
            let text = format!("{VALID}\n[{table}]\n{key} = \"{url}\"\n");
            let (_, k, shown) = fails(&text);
            assert_eq!(k, format!("{table}.{key}"), "{url}: {shown}");
            assert!(shown.contains("clear text"), "{url}: {shown}");
        }
        for url in [
            "http://127.1:9000/in",
            "http://[::1]/in",
            "http://evil.example@127.0.0.1/",
        ] {
            let text = format!("{VALID}\n[{table}]\n{key} = \"{url}\"\n");
            assert!(load_str(&text, Path::new(FILE)).is_ok(), "{table}: {url}");
        }
    }
}

/// `[mcp.servers.NAME]`: a valid stdio and HTTP server load; each mistake names its key.
#[test]
fn mcp_servers_are_checked() {
    let ok = format!(
        "{VALID}\n[mcp.servers.git]\ncommand = \"mcp-server-git\"\nargs = [\"--repository\", \"/workspace\"]\nworkspace = \"write\"\n\n[mcp.servers.docs]\nurl = \"https://mcp.example.com/mcp\"\negress = [\"mcp.example.com\"]\nsecrets = [\"DOCS_TOKEN\"]\nheaders = {{ Authorization = \"Bearer ${{DOCS_TOKEN}}\" }}\ntrust = \"trusted\"\nagents = [\"default\"]\n[mcp.servers.docs.tools]\ninclude = [\"search\"]\n"
    );
    let c = load_str(&ok, Path::new(FILE)).unwrap();
    let git = &c.mcp.servers["git"];
    assert_eq!(git.workspace, cordon_config::McpWorkspace::Write);
    assert_eq!(
        git.trust,
        cordon_config::McpTrust::Untrusted,
        "untrusted by default"
    );
    assert_eq!(git.timeout_secs, 60);
    assert!(c.mcp.servers["docs"].tools.allows("search"));
    assert!(!c.mcp.servers["docs"].tools.allows("delete"));
    for (server, key, says) in [
        (
            "[mcp.servers.a__b]\ncommand = \"x\"\n",
            "mcp.servers.a__b",
            "without `__`",
        ),
        (
            "[mcp.servers.x]\nargs = []\n",
            "mcp.servers.x",
            "needs `command`",
        ),
        (
            "[mcp.servers.x]\ncommand = \"a\"\nurl = \"https://h.example/\"\n",
            "mcp.servers.x.url",
            "not both",
        ),
        (
            "[mcp.servers.x]\nurl = \"http://h.example/mcp\"\n",
            "mcp.servers.x.url",
            "clear text",
        ),
        (
            "[mcp.servers.x]\nurl = \"https://h.example/\"\nargs = [\"-v\"]\n",
            "mcp.servers.x.args",
            "stdio",
        ),
        (
            "[mcp.servers.x]\ncommand = \"a\"\nsecrets = [\"lower\"]\n",
            "mcp.servers.x.secrets[0]",
            "not a secret name",
        ),
        (
            "[mcp.servers.x]\ncommand = \"a\"\nagents = [\"nobody\"]\n",
            "mcp.servers.x.agents[0]",
            "no agent `nobody`",
        ),
        (
            "[mcp.servers.x]\ncommand = \"a\"\n[mcp.servers.x.tools]\ninclude = [\"t\"]\nexclude = [\"t\"]\n",
            "mcp.servers.x.tools",
            "both included and excluded",
        ),
        (
            "[mcp.servers.x]\ncommand = \"a\"\nheaders = { A = \"b\" }\n",
            "mcp.servers.x.headers",
            "only an HTTP server",
        ),
        (
            "[mcp.servers.x]\nurl = \"https://h.example/\"\nheaders = { \"Bad Name\" = \"b\" }\n",
            "mcp.servers.x.headers.\"Bad Name\"",
            "not a valid header name",
        ),
        (
            "[mcp.servers.x]\nurl = \"https://h.example/\"\nheaders = { Proxy-Authorization = \"b\" }\n",
            "mcp.servers.x.headers.Proxy-Authorization",
            "egress proxy",
        ),
        (
            "[mcp.servers.x]\nurl = \"https://h.example/\"\nsecrets = [\"A\"]\nheaders = { Authorization = \"Bearer ${B}\" }\n",
            "mcp.servers.x.headers.Authorization",
            "not one of this server's `secrets` (A)",
        ),
        (
            "[mcp.servers.x]\nurl = \"https://h.example/\"\nheaders = { X = \"a\\nb\" }\n",
            "mcp.servers.x.headers.X",
            "control characters",
        ),
        (
            "[mcp.servers.x]\ncommand = \"a\"\ntrust = \"maybe\"\n",
            "mcp.servers.x.trust",
            "maybe",
        ),
    ] {
        let (_, k, shown) = fails(&format!("{VALID}\n{server}"));
        assert_eq!(k, key, "{shown}");
        assert!(shown.contains(says), "{says}: {shown}");
    }
}

#[test]
fn a_token_written_where_its_secret_name_belongs_is_refused_without_being_echoed() {
    let token = "123456789:AAEhBP0av28MWFa7yfIGdsTbOkY3aByyR8U";
    let text = format!("{VALID}\n[channels.telegram]\ntoken_secret = \"{token}\"\n");
    let (_, key, shown) = fails(&text);
    assert_eq!(key, "channels.telegram.token_secret");
    assert!(shown.contains("not a secret name"), "{shown}");
    assert!(
        !shown.contains("AAEhBP0"),
        "the error echoes the token: {shown}"
    );
}

#[test]
fn channels_webhooks_and_schedules_are_checked() {
    let ok = format!(
        "{VALID}\n[channels.telegram]\ntoken_secret = \"TG_TOKEN\"\nallow = [{{ id = \"42\", role = \"owner\" }}]\ngroups = [\"-1001\"]\n\n[webhooks.ci]\nsecret = \"CI_HOOK\"\ntask = \"Summarise the build\"\nreply_to = \"telegram:42\"\n\n[[schedules]]\nname = \"morning\"\ncron = \"0 8 * * 1-5\"\ntimezone = \"Europe/Paris\"\ntask = \"Summarise the news\"\n"
    );
    let c = load_str(&ok, Path::new(FILE)).unwrap();
    let tg = &c.channels[&cordon_config::ChannelKind::Telegram];
    assert_eq!(
        tg.inbound,
        cordon_config::InboundPolicy::Pairing,
        "pairing by default"
    );
    assert_eq!(tg.allow[0].role, cordon_config::ChannelRole::Owner);
    assert_eq!(c.webhooks["ci"].window_secs, 300);
    assert_eq!(c.schedules[0].agent, "default");
    for (extra, key, says) in [
        (
            "[channels.telegram]\ntoken_secret = \"123:abc\"\n",
            "channels.telegram.token_secret",
            "not a secret name",
        ),
        (
            "[channels.telegram]\ntoken_secret = \"T\"\nallow = [{ id = \"@alice\" }]\n",
            "channels.telegram.allow[0].id",
            "usernames can change hands",
        ),
        (
            "[channels.slack]\ntoken_secret = \"T\"\n",
            "channels.slack.app_token_secret",
            "app-level token",
        ),
        (
            "[channels.matrix]\ntoken_secret = \"T\"\n",
            "channels.matrix.api_url",
            "homeserver",
        ),
        (
            "[channels.telegram]\ntoken_secret = \"T\"\napi_url = \"http://tg.example\"\n",
            "channels.telegram.api_url",
            "clear text",
        ),
        (
            "[channels.telegram]\ntoken_secret = \"T\"\nagent = \"nobody\"\n",
            "channels.telegram.agent",
            "no agent `nobody`",
        ),
        (
            "[channels.telegram]\ntoken_secret = \"T\"\nrate_per_min = 0\n",
            "channels.telegram.rate_per_min",
            "use 1-600",
        ),
        (
            "[channels.irc]\ntoken_secret = \"T\"\n",
            "channels",
            "unknown variant `irc`",
        ),
        (
            "[webhooks.x]\ntask = \"t\"\nreply_to = \"telegram:1\"\n",
            "webhooks.x.reply_to",
            "not configured",
        ),
        (
            "[webhooks.x]\ntask = \" \"\n",
            "webhooks.x.task",
            "must say",
        ),
        (
            "[webhooks.x]\ntask = \"t\"\nwindow_secs = 86400\n",
            "webhooks.x.window_secs",
            "use 10-3600",
        ),
        (
            "[[schedules]]\nname = \"a\"\ncron = \"0 8 * *\"\ntask = \"t\"\n",
            "schedules[0].cron",
            "4 fields",
        ),
        (
            "[[schedules]]\nname = \"a\"\ncron = \"0 8 * * *\"\ntimezone = \"Paris\"\ntask = \"t\"\n",
            "schedules[0].timezone",
            "IANA",
        ),
        (
            "[[schedules]]\nname = \"a\"\ncron = \"0 8 * * *\"\ntask = \"t\"\n[[schedules]]\nname = \"a\"\ncron = \"0 9 * * *\"\ntask = \"t\"\n",
            "schedules[1].name",
            "defined twice",
        ),
        (
            "[heartbeat]\nevery_mins = 1\n",
            "heartbeat.every_mins",
            "use 5-1440",
        ),
    ] {
        let (_, k, shown) = fails(&format!("{VALID}\n{extra}"));
        assert_eq!(k, key, "{shown}");
        assert!(shown.contains(says), "{says}: {shown}");
    }
}

/// `send_message` needs a channel to send through, and `send_message.allow` names
/// configured channels' conversations, each once; each mistake names its key and line.
#[test]
fn send_message_needs_a_channel_and_allowed_conversations_on_one() {
    let tools = with(
        "tools = [\"read_file\", \"write_file\", \"exec\"]",
        "tools = [\"send_message\"]",
    );
    let (line, key, shown) = fails(&tools);
    assert_eq!(key, "agents.default.tools");
    assert_eq!(line, line_of(&tools, "tools = [\"send_message\"]"));
    assert!(shown.contains("needs a chat channel"), "{shown}");

    let channel = "\n[channels.telegram]\ntoken_secret = \"TG\"\n";
    let ok =
        format!("{tools}\n[agents.default.send_message]\nallow = [\"telegram:42\"]\n{channel}");
    let c = load_str(&ok, Path::new(FILE)).unwrap();
    assert_eq!(c.agents["default"].send_message.allow, ["telegram:42"]);

    for (allow, said) in [
        ("\"slack:C1\"", "not configured"),
        ("\"telegram\"", "CHANNEL:CONVERSATION"),
        ("\"telegram:42\", \"telegram:42\"", "listed twice"),
    ] {
        let text = format!("{tools}\n[agents.default.send_message]\nallow = [{allow}]\n{channel}");
        let (line, key, shown) = fails(&text);
        assert!(
            key.starts_with("agents.default.send_message.allow["),
            "{key}"
        );
        assert_eq!(
            line,
            line_of(&text, &format!("allow = [{allow}]")),
            "{shown}"
        );
        assert!(shown.contains(said), "{allow}: {shown}");
    }
}

/// The default tools are every tool but `send_message`: a tool added to `ALL` is a default
/// one unless this says otherwise.
#[test]
fn default_tools_are_all_but_send_message() {
    let expected: Vec<ToolName> = ToolName::ALL
        .into_iter()
        .filter(|t| *t != ToolName::SendMessage)
        .collect();
    assert_eq!(ToolName::DEFAULT.to_vec(), expected);
}

/// A schedule's `timezone` is an IANA name: an unknown one names its key and line and
/// shows what a name looks like; `UTC` and `Etc/UTC` load.
#[test]
fn a_schedules_time_zone_is_an_iana_name() {
    let with_zone = |zone: &str| {
        format!(
            "{VALID}\n[[schedules]]\nname = \"a\"\ncron = \"0 8 * * *\"\ntimezone = \"{zone}\"\ntask = \"t\"\n"
        )
    };
    for zone in ["Mars/Olympus", "europe/paris"] {
        let text = with_zone(zone);
        let (line, key, shown) = fails(&text);
        assert_eq!(key, "schedules[0].timezone");
        assert_eq!(line, line_of(&text, "timezone = "));
        assert_eq!(
            shown,
            format!(
                "{FILE}:{line}:1: key `schedules[0].timezone`: `{zone}` is not an IANA time \
                 zone; e.g. `UTC`, `Europe/Paris`, `America/New_York`"
            )
        );
    }
    for zone in ["UTC", "Etc/UTC", "Europe/Paris"] {
        let c = load_str(&with_zone(zone), Path::new(FILE)).unwrap();
        assert_eq!(c.schedules[0].timezone, zone);
    }
}
