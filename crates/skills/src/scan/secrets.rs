//! Secrets: reads of credential locations (SSH, cloud and cluster credentials, `.env`
//! files, browser profiles, keychains), of the agent's own config and state (where its
//! chat-bot and gateway tokens live), bulk environment harvesting, and secret-looking
//! environment variables the skill does not declare.
//!
//! Reading one named variable is how a skill gets its declared API key, so only names
//! that look secret and are not declared are flagged, and only at medium: the runtime
//! gives a skill placeholders for its approved secrets and nothing else.

use std::sync::LazyLock;

use regex::Regex;

use super::network::Declared;
use super::rules::{Hit, Level, Rule};
use super::source::Source;
use super::{Findings, Severity};

use Severity::High;

const WHY_CRED: &str =
    "reads a credential store: keys and tokens there give access to other systems";
const WHY_AGENT: &str =
    "reads the agent's own config or state: where its chat-bot, gateway and model tokens live";
const WHY_DOTENV: &str = "reads a .env file: where projects keep their API keys and passwords";
const WHY_BROWSER: &str =
    "reads browser profile data (saved passwords, cookies): what info-stealers go for";
const WHY_KEYCHAIN: &str = "reads the system keychain, where saved passwords and keys are kept";
const WHY_HARVEST: &str =
    "collects the whole environment: every token and key the agent was started with";
const WHY_SECRET_ENV: &str =
    "uses a secret-looking environment variable the skill does not declare among its secrets";

pub(crate) static RULES: &[Rule] = &[
    Rule::new(
        "secrets.credential_file",
        Level::Fixed(High),
        WHY_CRED,
        &[
            "/.ssh",
            "\".ssh",
            "'.ssh",
            "id_rsa",
            "id_ed25519",
            "id_ecdsa",
            "id_dsa",
            "/.aws",
            "\".aws",
            "'.aws",
            ".aws/credentials",
            ".config/gcloud",
            "application_default_credentials",
            "/.kube",
            "\".kube",
            "'.kube",
            ".netrc",
            "_netrc",
            ".docker/config.json",
            ".git-credentials",
            ".pgpass",
            "/.npmrc",
            "/.pypirc",
            "/etc/shadow",
            "/.gnupg",
            "wallet.dat",
            ".azure/",
        ],
        None,
    ),
    Rule::new(
        "secrets.agent_config",
        Level::Fixed(High),
        WHY_AGENT,
        &[
            "cordon.toml",
            ".config/cordon",
            ".local/state/cordon",
            "skills.lock",
            ".openclaw",
            "openclaw.json",
            ".clawdbot",
            "clawdbot.json",
            ".moltbot",
            "moltbot.json",
        ],
        None,
    ),
    Rule::new(
        "secrets.dotenv",
        Level::InCode(High),
        WHY_DOTENV,
        &[".env"],
        Some(r#"(?:^|[\s"'=(/`:<])\.env(?:\.[A-Za-z0-9_-]+)?(?:$|[\s"')`,;>])"#),
    ),
    Rule::new(
        "secrets.browser_profile",
        Level::Fixed(High),
        WHY_BROWSER,
        &[
            "login data",
            "cookies.sqlite",
            "logins.json",
            "key4.db",
            ".mozilla",
            "google/chrome",
            "google-chrome",
            "bravesoftware",
            "chromium/",
            "default/cookies",
            "/cookies\"",
            "microsoft/edge",
            "local state\"",
            "firefox/profiles",
        ],
        None,
    ),
    Rule::new(
        "secrets.keychain",
        Level::Fixed(High),
        WHY_KEYCHAIN,
        &[
            "find-generic-password",
            "find-internet-password",
            "dump-keychain",
            "login.keychain",
            "library/keychains",
            "secret-tool lookup",
            "gnome-keyring",
            "kwallet",
            "cmdkey /list",
            "credentialmanager",
            "get-storedcredential",
        ],
        None,
    ),
    Rule::new(
        "secrets.env_harvest",
        Level::Fixed(High),
        WHY_HARVEST,
        &[
            "env",
            "printenv",
            "export -p",
            "declare -x",
            "compgen -e",
            "set",
            "environ",
            "process.env",
            "%env",
            "env:",
            "getenvironmentvariables",
            "env.to_",
            "env.each",
            "env.keys",
            "env.inspect",
        ],
        Some(concat!(
            // shell / cmd: the bare command, as a command
            r"(?:^|[;&|(`]|\$\()\s*(?:sudo\s+)?(?:env|printenv|export\s+-p|declare\s+-x|compgen\s+-e|set)\s*(?:$|[|>;&)`])",
            // python
            r"|\b(?:dict|str|repr|print|list|sorted|pprint|vars|json\.dumps|yaml\.dump|yaml\.safe_dump)\s*\(\s*os\.environ\s*[,)]",
            r"|\bos\.environ\.(?:items|keys|values)\s*\(\s*\)|\bfor\s+\w+(?:\s*,\s*\w+)?\s+in\s+os\.environ\s*:|\bos\.environ\._data\b",
            // node
            r"|\bJSON\.stringify\s*\(\s*process\.env\b|\bObject\.(?:keys|entries|values)\s*\(\s*process\.env\s*\)|\bfor\s*\(\s*(?:const|let|var)\s+\w+\s+in\s+process\.env\s*\)|\bconsole\.\w+\s*\(\s*process\.env\s*\)|\binspect\s*\(\s*process\.env\b",
            // ruby / perl
            r"|\bENV\.(?:to_h|to_hash|to_a|to_s|each|each_pair|keys|values|inspect|map|select|sort)\b|\b(?:keys|values|each)\s*\(?\s*%ENV\b|\\%ENV\b",
            // powershell
            r"|(?i:\b(?:get-childitem|gci|dir|ls|get-item)\s+env:\s*(?:$|[|);]|\\\*)|\[(?:system\.)?environment\]::getenvironmentvariables\s*\()",
            // linux: another process's or one's own full environment
            r"|/proc/(?:self|\d+|\$\w+|\*)/environ\b",
        )),
    ),
    Rule::new(
        "mark.secret_env",
        Level::Mark,
        "",
        &[
            "aws_",
            "_token",
            "_key",
            "_secret",
            "_password",
            "_passwd",
            "_pat",
            "_credential",
            "_apikey",
            "_auth",
        ],
        Some(
            r"\b(?:AWS_[A-Z0-9_]*[A-Z0-9]|[A-Z][A-Z0-9_]*_(?:TOKEN|KEY|SECRET|SECRETS|PASSWORD|PASSWD|PAT|CREDENTIALS?|APIKEY|AUTH))\b",
        ),
    ),
];

static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    super::rules::compile(r"\b(?:AWS_[A-Z0-9_]*[A-Z0-9]|[A-Z][A-Z0-9_]*_(?:TOKEN|KEY|SECRET|SECRETS|PASSWORD|PASSWD|PAT|CREDENTIALS?|APIKEY|AUTH))\b")
        .expect("secret name pattern")
});

/// Secret-looking variable names not declared, once per name and file.
pub(crate) fn check(src: &Source<'_>, hits: &[Hit], declared: &Declared, out: &mut Findings) {
    for h in hits.iter().filter(|h| h.rule.id == "mark.secret_env") {
        let (ls, le) = src.line_range(h.line);
        for m in SECRET_NAME.find_iter(&src.text[ls..le]) {
            if !declared.allows_secret(m.as_str()) {
                out.push_keyed(
                    src,
                    "secrets.undeclared_env",
                    m.as_str(),
                    Severity::Medium,
                    ls + m.start(),
                    ls + m.end(),
                    WHY_SECRET_ENV,
                );
            }
        }
    }
}
