//! `docs/audit-events.md` is generated from the record types; this test keeps it current.
//! Run `UPDATE_DOCS=1 cargo test -p cordon-audit --test docs` to regenerate it.

use std::path::Path;

use cordon_audit::{EventKind, reference_markdown};

#[test]
fn audit_events_md_is_current() {
    testkit::generated_doc::assert_current(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit-events.md"),
        &reference_markdown(),
        "the types",
        "cargo test -p cordon-audit --test docs",
    );
}

#[test]
fn reference_covers_every_kind_and_the_fields_readers_use() {
    let md = reference_markdown();
    for kind in EventKind::ALL {
        assert!(
            md.contains(&format!("\n## `{kind}`\n")),
            "reference lacks kind {kind}"
        );
    }
    for row in [
        "| `matched` |",
        "| `state` |",
        "| `alert` |",
        "| `tool_calls[].arguments` |",
        "| `usage.input_tokens` |",
        "| `record_kind` |",
    ] {
        assert!(md.contains(row), "reference lacks the row {row}");
    }
    // Every field has a meaning: a doc comment was not forgotten.
    for line in md.lines().filter(|l| l.starts_with("| `")) {
        assert!(!line.ends_with("|  |"), "undocumented field: {line}");
    }
}
