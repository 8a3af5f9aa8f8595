//! `docs/configuration.md` is generated from the schema; this test keeps it current.
//! Run `UPDATE_DOCS=1 cargo test -p cordon-config --test docs` to regenerate it.

use std::path::Path;

#[test]
fn configuration_md_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let want = cordon_config::reference_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    let first_difference = have
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (h, w))| h != w)
        .map(|(i, (h, w))| format!("line {}: file has {h:?}, schema gives {w:?}", i + 1));
    assert!(
        have == want,
        "{} is out of date ({}); run `UPDATE_DOCS=1 cargo test -p cordon-config --test docs`",
        path.display(),
        first_difference.unwrap_or_else(|| format!(
            "lengths differ: file {} lines, schema {} lines",
            have.lines().count(),
            want.lines().count()
        ))
    );
}

#[test]
fn reference_covers_every_key() {
    let md = cordon_config::reference_markdown();
    for key in [
        "`tier`",
        "`model.base_url`",
        "`model.api_key_env`",
        "`agents.<name>.tools`",
        "`agents.<name>.exec.mode`",
        "`agents.<name>.exec.output_limit`",
        "`agents.<name>.egress.allow`",
        "`sandbox.tmp_size_mb`",
        "`audit.record_content`",
        "`audit.export.url`",
        "`alerts.webhook_url`",
        "`alerts.format`",
    ] {
        assert!(md.contains(&format!("## {key}")), "reference lacks {key}");
    }
    let schema = cordon_config::json_schema();
    assert_eq!(schema["title"], "Config");
    assert!(schema["properties"]["model"].is_object());
}
