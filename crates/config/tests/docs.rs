//! `docs/configuration.md` is generated from the schema; this test keeps it current.
//! Run `UPDATE_DOCS=1 cargo test -p cordon-config --test docs` to regenerate it.

use std::path::Path;

#[test]
fn configuration_md_is_current() {
    testkit::generated_doc::assert_current(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
        &cordon_config::reference_markdown(),
        "the schema",
        "cargo test -p cordon-config --test docs",
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
