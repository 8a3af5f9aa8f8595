//! `SKILL.md` frontmatter: OpenClaw's format loads unchanged, Cordon's own block is
//! strict, and every error names `file:line:column` in SKILL.md.

use cordon_skills::manifest::{self, ManifestError};
use cordon_skills::{Capabilities, WorkspaceAccess};

fn error(text: &str) -> ManifestError {
    match manifest::parse("weather/SKILL.md", text) {
        Err(e) => e,
        Ok(m) => panic!("expected an error, parsed {m:?}"),
    }
}

/// An OpenClaw skill as its registry has them: metadata written as inline JSON in the
/// YAML, homepage and user-invocable at the top, install steps, keys Cordon ignores.
const OPENCLAW: &str = r#"---
name: weather-now
description: Get current weather and forecasts for any city (no API key). Use when the user asks about weather, temperature or rain.
homepage: https://wttr.in/:help
user-invocable: true
license: MIT
metadata: { "openclaw": { "emoji": "🌤️", "primaryEnv": "WTTR_TOKEN", "requires": { "bins": ["curl"], "anyBins": ["jq", "python3"], "env": ["WTTR_TOKEN"], "config": ["browser.enabled"] }, "os": ["darwin", "linux"], "install": [{ "id": "brew", "kind": "brew", "formula": "curl", "bins": ["curl"], "label": "Install curl (brew)" }] } }
---

# Weather

Use `curl -s "wttr.in/{city}?format=3"`.
"#;

#[test]
fn an_openclaw_skill_with_inline_json_metadata_parses_unchanged() {
    let m = manifest::parse("SKILL.md", OPENCLAW).unwrap();
    assert_eq!(m.name, "weather-now");
    assert!(m.description.starts_with("Get current weather"));
    assert_eq!(m.homepage.as_deref(), Some("https://wttr.in/:help"));
    assert!(m.user_invocable);
    assert_eq!(m.requires_bins, ["curl", "jq", "python3"]);
    assert_eq!(m.requires_env, ["WTTR_TOKEN"]);
    assert_eq!(m.primary_env.as_deref(), Some("WTTR_TOKEN"));
    assert_eq!(m.requires_config, ["browser.enabled"]);
    assert_eq!(m.os, ["darwin", "linux"]);
    assert_eq!(m.install.len(), 1);
    assert_eq!(m.install[0]["kind"], "brew");
    assert_eq!(m.install[0]["formula"], "curl");
    // Nothing declared for Cordon: no network, no secrets, read-only workspace.
    assert!(!m.declares);
    assert_eq!(m.capabilities, Capabilities::default());
    assert_eq!(m.capabilities.workspace, WorkspaceAccess::Read);
    assert!(m.body.starts_with("\n# Weather\n"));
    assert_eq!(m.body_line, 9);
}

#[test]
fn metadata_on_the_next_line_and_as_block_yaml_parse_alike() {
    let flow = "---\nname: notes\ndescription: Take notes.\nmetadata:\n  { \"openclaw\": { \"requires\": { \"bins\": [\"node\"] } } }\n---\nbody\n";
    let block = "---\nname: notes\ndescription: Take notes.\nmetadata:\n  openclaw:\n    requires:\n      bins:\n        - node\n---\nbody\n";
    let a = manifest::parse("SKILL.md", flow).unwrap();
    let mut b = manifest::parse("SKILL.md", block).unwrap();
    assert_eq!((a.body_line, b.body_line), (7, 10));
    b.body_line = a.body_line;
    assert_eq!(a.requires_bins, ["node"]);
    assert_eq!(a, b);
}

#[test]
fn metadata_quoted_as_a_json_string_is_read() {
    let text = "---\nname: notes\ndescription: Take notes.\nmetadata: '{\"openclaw\":{\"os\":[\"linux\"]},\"version\":\"2.1.0\"}'\n---\n";
    let m = manifest::parse("SKILL.md", text).unwrap();
    assert_eq!(m.os, ["linux"]);
    assert_eq!(m.version.as_deref(), Some("2.1.0"));
    assert_eq!(m.body, "");
}

#[test]
fn unknown_keys_and_odd_openclaw_types_are_accepted() {
    let text = "---\nname: x1\ndescription: d\nallowed-tools: [Bash]\ntags: [a, b]\nversion: 1.5\nmetadata: { \"openclaw\": { \"requires\": { \"bins\": \"curl, jq\", \"env\": 3 }, \"os\": \"linux\", \"always\": true }, \"other\": { \"x\": 1 } }\n---\n";
    let m = manifest::parse("SKILL.md", text).unwrap();
    assert_eq!(m.requires_bins, ["curl", "jq"]);
    assert!(m.requires_env.is_empty());
    assert_eq!(m.os, ["linux"]);
    assert_eq!(m.version.as_deref(), Some("1.5"));
}

#[test]
fn the_legacy_clawdbot_block_is_read() {
    let text = "---\nname: x1\ndescription: d\nmetadata: {\"clawdbot\":{\"requires\":{\"bins\":[\"gh\"]}}}\n---\n";
    assert_eq!(manifest::parse("S", text).unwrap().requires_bins, ["gh"]);
}

#[test]
fn crlf_line_endings_are_read() {
    let text = "---\r\nname: x1\r\ndescription: d\r\n---\r\nbody\r\n";
    let m = manifest::parse("S", text).unwrap();
    assert_eq!(m.name, "x1");
    assert_eq!(m.body, "body\r\n");
    assert_eq!(m.body_line, 5);
}

#[test]
fn the_cordon_block_declares_capabilities() {
    let text = r#"---
name: weather-now
description: Weather.
metadata:
  openclaw: { "requires": { "bins": ["python3"] } }
  cordon:
    egress: ["api.open-meteo.com", "*.wttr.in", "example.org:8443"]
    secrets: [WEATHER_KEY]
    bins: [python3]
    workspace: none
---
"#;
    let m = manifest::parse("SKILL.md", text).unwrap();
    assert!(m.declares);
    assert_eq!(
        m.capabilities.egress,
        ["api.open-meteo.com", "*.wttr.in", "example.org:8443"]
    );
    assert_eq!(m.capabilities.secrets, ["WEATHER_KEY"]);
    assert_eq!(m.capabilities.bins, ["python3"]);
    assert_eq!(m.capabilities.workspace, WorkspaceAccess::None);
}

#[test]
fn a_missing_opening_line_is_an_error_at_1_1() {
    let e = error("# Weather\nname: x\n");
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("weather/SKILL.md", 1, 1)
    );
    assert!(e.message.contains("---"), "{e}");
}

#[test]
fn an_unclosed_frontmatter_is_an_error() {
    let e = error("---\nname: x\ndescription: y\n");
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("never closed"), "{e}");
}

#[test]
fn an_empty_frontmatter_is_an_error() {
    let e = error("---\n---\nbody\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("name"), "{e}");
}

#[test]
fn bad_yaml_is_reported_at_its_line_and_column_in_skill_md() {
    // Line 4 of SKILL.md: the unclosed flow mapping.
    let text =
        "---\nname: weather\ndescription: ok\nmetadata: { \"openclaw\": { \"requires\": [ }\n---\n";
    let e = error(text);
    assert_eq!(
        e.to_string(),
        format!("weather/SKILL.md:{}:{}: {}", e.line, e.column, e.message)
    );
    assert_eq!(e.line, 4, "{e}");
    assert!(!e.message.contains("at line"), "{e}");
}

#[test]
fn a_tab_indented_key_is_reported_at_its_exact_position() {
    let text = "---\nname: weather\ndescription: ok\nmetadata:\n\topenclaw: {}\n---\n";
    let e = error(text);
    assert_eq!((e.line, e.column), (5, 1), "{e}");
}

#[test]
fn an_invalid_name_is_reported_at_its_value() {
    let e = error("---\ndescription: ok\nname: Weather Now!\n---\n");
    assert_eq!((e.line, e.column), (3, 7), "{e}");
    assert!(
        e.message
            .contains("`Weather Now!` is not a valid skill name"),
        "{e}"
    );
}

#[test]
fn an_empty_description_is_reported_at_its_line() {
    let e = error("---\nname: weather\ndescription: \"  \"\n---\n");
    assert_eq!((e.line, e.column), (3, 14), "{e}");
    assert!(e.message.starts_with("description:"), "{e}");
}

#[test]
fn a_missing_name_is_an_error() {
    let e = error("---\ndescription: ok\n---\n");
    assert!(e.message.contains("missing field `name`"), "{e}");
}

#[test]
fn a_bad_egress_entry_is_named_with_its_position() {
    let text = "---\nname: weather\ndescription: ok\nmetadata:\n  cordon:\n    egress:\n      - api.example.com\n      - \"https://evil.example/path\"\n---\n";
    let e = error(text);
    assert_eq!((e.line, e.column), (8, 9), "{e}");
    assert!(e.message.contains("metadata.cordon.egress[1]"), "{e}");
    assert!(
        e.message
            .contains("`https://evil.example/path` is not a host pattern"),
        "{e}"
    );
}

#[test]
fn an_unknown_key_in_the_cordon_block_is_an_error() {
    let text = "---\nname: weather\ndescription: ok\nmetadata:\n  cordon:\n    network: all\n---\n";
    let e = error(text);
    assert_eq!(e.line, 6, "{e}");
    assert!(e.message.contains("unknown field `network`"), "{e}");
}

#[test]
fn a_bad_workspace_value_is_an_error() {
    let text = "---\nname: weather\ndescription: ok\nmetadata: {\"cordon\": {\"workspace\": \"rw\"}}\n---\n";
    let e = error(text);
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("`rw`"), "{e}");
    assert!(e.message.contains("none"), "{e}");
}

#[test]
fn an_error_inside_metadata_written_as_a_json_string_names_the_metadata_line() {
    let text = "---\nname: weather\ndescription: ok\nmetadata: '{\"cordon\": {\"egress\": [\"\"]}}'\n---\n";
    let e = error(text);
    assert_eq!((e.line, e.column), (4, 11), "{e}");
    assert!(e.message.contains("host pattern"), "{e}");
}

#[test]
fn a_secret_name_with_a_space_is_an_error_at_its_position() {
    let text = "---\nname: weather\ndescription: ok\nmetadata:\n  cordon:\n    secrets: [\"A KEY\"]\n---\n";
    let e = error(text);
    assert_eq!((e.line, e.column), (6, 15), "{e}");
    assert!(e.message.contains("metadata.cordon.secrets[0]"), "{e}");
}
