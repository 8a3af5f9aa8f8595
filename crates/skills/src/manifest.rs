//! `SKILL.md`: YAML frontmatter between `---` lines, then Markdown instructions.
//!
//! Fields read (OpenClaw and AgentSkills): `name`, `description`, `version` (or
//! `metadata.version`), `homepage`, `user-invocable`,
//! `metadata.openclaw.requires.{bins,anyBins,env,config}`, `metadata.openclaw.primaryEnv`,
//! `metadata.openclaw.os`, `metadata.openclaw.install`. `metadata` may be a YAML mapping,
//! inline JSON (which is YAML) or a string holding JSON. Unknown keys are accepted and
//! ignored, and OpenClaw's own block is read as leniently as OpenClaw reads it (a value
//! of the wrong type is ignored), so existing skills load unchanged. Cordon's own block, `metadata.cordon`,
//! declares capabilities ([`Capabilities`]); a skill that declares nothing gets no
//! network, no secrets and read-only workspace access.
//!
//! Errors name `file:line:column`.

use serde::{Deserialize, Serialize};

/// What a skill may do when its scripts run. Declared in `metadata.cordon`, approved by
/// a human at install, stored in `skills.lock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Host patterns (`api.example.com`, `*.example.com`, `host:port`) its scripts may
    /// reach through the egress proxy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
    /// Vault secret names its scripts get as placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Programs its instructions and scripts use (`python3`, `curl`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bins: Vec<String>,
    /// Workspace access of its scripts.
    #[serde(default)]
    pub workspace: WorkspaceAccess,
}

/// A skill script's access to the agent's workspace (default `read`).
pub use sandbox::WorkspaceAccess;

/// A parsed `SKILL.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub version: Option<String>,
    /// `homepage` (top level, or `metadata.openclaw.homepage`).
    pub homepage: Option<String>,
    /// `user-invocable` (OpenClaw's default: true).
    pub user_invocable: bool,
    /// `metadata.openclaw.requires.bins` (and `anyBins`).
    pub requires_bins: Vec<String>,
    /// `metadata.openclaw.requires.env`: environment variable names the skill expects;
    /// each is given a vault secret only when the operator maps it at install.
    pub requires_env: Vec<String>,
    /// `metadata.openclaw.primaryEnv`: the variable that carries the skill's API key.
    pub primary_env: Option<String>,
    /// `metadata.openclaw.requires.config`.
    pub requires_config: Vec<String>,
    /// `metadata.openclaw.os` (empty: any).
    pub os: Vec<String>,
    /// `metadata.openclaw.install`: each install step as written (`kind`, `formula`,
    /// `url`, `bins`, …), for the scanner and for showing to the operator. Never run.
    pub install: Vec<serde_json::Value>,
    /// `metadata.cordon`, or the defaults when absent.
    pub capabilities: Capabilities,
    /// Whether `metadata.cordon` was present.
    pub declares: bool,
    /// The Markdown after the frontmatter.
    pub body: String,
    /// 1-based line of `SKILL.md` where `body` starts.
    pub body_line: usize,
}

/// A `SKILL.md` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ManifestError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The file name of a skill's manifest, at the tree's root.
pub const FILE: &str = "SKILL.md";

/// Parse `text`, the contents of `file` (named in errors).
pub fn parse(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let err = |line: usize, column: usize, message: String| ManifestError {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Err(err(
            1,
            1,
            "a SKILL.md starts with a `---` line opening its YAML frontmatter (name, description)"
                .into(),
        ));
    }
    // Find the closing `---`; the YAML is what lies between (file lines 2..close).
    let mut offset = first.len();
    let mut line_no = 1;
    let mut close = None;
    for line in lines {
        line_no += 1;
        if line.trim_end() == "---" {
            close = Some((offset, offset + line.len(), line_no));
            break;
        }
        offset += line.len();
    }
    let Some((yaml_end, body_start, close_line)) = close else {
        return Err(err(
            1,
            1,
            "the frontmatter opened here is never closed by a `---` line".into(),
        ));
    };
    let yaml = &text[first.len()..yaml_end];
    if yaml.trim().is_empty() {
        return Err(err(
            2,
            1,
            "the frontmatter is empty: it needs at least `name` and `description`".into(),
        ));
    }
    let front: Frontmatter = serde_yaml_ng::from_str(yaml).map_err(|e| {
        // The YAML starts on line 2 of the file.
        let (line, column) = e
            .location()
            .map(|l| (l.line() + 1, l.column()))
            .unwrap_or((2, 1));
        err(line, column, yaml_message(&e))
    })?;

    let meta = front.metadata.map(|m| m.0).unwrap_or_default();
    let openclaw = meta
        .openclaw
        .or(meta.clawdbot)
        .map(lenient::object)
        .unwrap_or_default();
    let requires = openclaw
        .get("requires")
        .cloned()
        .map(lenient::object)
        .unwrap_or_default();
    let list = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
        m.get(k).map(lenient::string_list).unwrap_or_default()
    };
    let mut requires_bins = list(&requires, "bins");
    for b in list(&requires, "anyBins") {
        if !requires_bins.contains(&b) {
            requires_bins.push(b);
        }
    }
    let install = match openclaw.get("install") {
        Some(serde_json::Value::Array(steps)) => steps.clone(),
        _ => Vec::new(),
    };
    let text_of = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let (capabilities, declares) = match meta.cordon {
        Some(block) => (block.into_capabilities(), true),
        None => (Capabilities::default(), false),
    };
    Ok(Manifest {
        name: front.name.0,
        description: front.description.0,
        version: front.version.or(meta.version).map(|v| v.0),
        homepage: front
            .homepage
            .and_then(|v| v.0)
            .or_else(|| text_of(openclaw.get("homepage"))),
        user_invocable: front.user_invocable.map(|b| b.0).unwrap_or(true),
        requires_env: list(&requires, "env"),
        primary_env: text_of(openclaw.get("primaryEnv")),
        requires_config: list(&requires, "config"),
        requires_bins,
        os: list(&openclaw, "os"),
        install,
        capabilities,
        declares,
        body: text[body_start..].to_string(),
        body_line: close_line + 1,
    })
}

/// The YAML error without its own `at line L column C` (given in file terms instead).
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let full = e.to_string();
    let mut out = String::with_capacity(full.len());
    let mut rest = full.as_str();
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        // Skip `L column C`.
        let skip = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ' ' || "column".contains(c)))
            .unwrap_or(tail.len());
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

/// The frontmatter keys Cordon reads; any other key is accepted and ignored.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Frontmatter {
    name: SkillName,
    description: Description,
    #[serde(default)]
    version: Option<ScalarText>,
    #[serde(default)]
    homepage: Option<MaybeText>,
    #[serde(default)]
    user_invocable: Option<Flag>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// A string checked by `check` inside the deserializer's own handling of the scalar, so
/// an error carries the value's position (and its path, e.g. `metadata.cordon.egress[1]`).
fn checked_str<'de, D, T, F>(d: D, check: F) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    F: FnOnce(String) -> Result<T, String>,
{
    struct V<F>(F);
    impl<'de, T, F: FnOnce(String) -> Result<T, String>> serde::de::Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            (self.0)(s.to_string()).map_err(E::custom)
        }
    }
    d.deserialize_str(V(check))
}

struct SkillName(String);

impl<'de> Deserialize<'de> for SkillName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            if crate::valid_name(&s) {
                Ok(SkillName(s))
            } else {
                Err(format!(
                    "`{s}` is not a valid skill name: use 1–64 of a-z, 0-9, `-` and `_`, \
                     starting with a letter or digit"
                ))
            }
        })
    }
}

struct Description(String);

impl<'de> Deserialize<'de> for Description {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            if s.trim().is_empty() {
                Err("is empty: say what the skill does and when to use it".into())
            } else {
                Ok(Description(s.trim().to_string()))
            }
        })
    }
}

/// A version written as text or as a number (`version: 1.2` is a YAML float).
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(ScalarText(s)),
            serde_json::Value::Number(n) => Ok(ScalarText(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a version such as `1.0.0`, found {other}"
            ))),
        }
    }
}

/// Text if it is text; anything else is ignored (OpenClaw ignores it too).
struct MaybeText(Option<String>);

impl<'de> Deserialize<'de> for MaybeText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MaybeText(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        }))
    }
}

/// A boolean as OpenClaw reads one: `true`/`false`, or the text `"true"`/`"false"`.
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(Flag(b)),
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Flag(true)),
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Flag(false)),
            other => Err(serde::de::Error::custom(format!(
                "expected true or false, found {other}"
            ))),
        }
    }
}

/// `metadata`: a YAML mapping (often written as inline JSON, which is YAML), or a string
/// holding JSON (some OpenClaw skills quote it).
struct Metadata(MetadataBlock);

#[derive(Default, Deserialize)]
struct MetadataBlock {
    #[serde(default)]
    openclaw: Option<serde_json::Value>,
    /// OpenClaw's former name; read when `openclaw` is absent.
    #[serde(default)]
    clawdbot: Option<serde_json::Value>,
    #[serde(default)]
    cordon: Option<CordonBlock>,
    #[serde(default)]
    version: Option<ScalarText>,
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping (or a string holding a JSON object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Metadata, A::Error> {
                MetadataBlock::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Metadata)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Metadata, E> {
                serde_json::from_str::<MetadataBlock>(s)
                    .map(Metadata)
                    .map_err(|e| E::custom(format!("the JSON in this string: {e}")))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Metadata, E> {
                Ok(Metadata(MetadataBlock::default()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `metadata.cordon`: ours, so strict (an unknown key is an error, not ignored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CordonBlock {
    #[serde(default)]
    egress: Vec<Egress>,
    #[serde(default)]
    secrets: Vec<Word>,
    #[serde(default)]
    bins: Vec<Word>,
    #[serde(default)]
    workspace: WorkspaceAccess,
}

impl CordonBlock {
    fn into_capabilities(self) -> Capabilities {
        Capabilities {
            egress: self.egress.into_iter().map(|e| e.0).collect(),
            secrets: self.secrets.into_iter().map(|w| w.0).collect(),
            bins: self.bins.into_iter().map(|w| w.0).collect(),
            workspace: self.workspace,
        }
    }
}

/// A host pattern as the egress allowlist takes it.
struct Egress(String);

impl<'de> Deserialize<'de> for Egress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| match config::HostPattern::parse(&s) {
            Ok(p) => Ok(Egress(p.to_string())),
            Err(e) => Err(format!(
                "`{s}` is not a host pattern ({e}); write `api.example.com`, \
                 `*.example.com` or `host:port`"
            )),
        })
    }
}

/// A non-empty name without spaces or `/` (a secret's or a program's).
struct Word(String);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            if s.is_empty()
                || s.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                Err(format!(
                    "`{s}` is not a name: no spaces, `/` or control characters, and not empty"
                ))
            } else {
                Ok(Word(s))
            }
        })
    }
}

/// OpenClaw reads its block leniently (a wrong type is ignored, not an error), and so
/// does Cordon, so existing skills load unchanged.
mod lenient {
    use serde_json::{Map, Value};

    /// An object; a string holding a JSON object is parsed; anything else is empty.
    pub(super) fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            Value::String(s) => match serde_json::from_str(&s) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
            _ => Map::new(),
        }
    }

    /// A list of strings, or one comma-separated string.
    pub(super) fn string_list(v: &Value) -> Vec<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Value::String(s) => s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }
}
