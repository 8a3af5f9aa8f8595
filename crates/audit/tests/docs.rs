//! `docs/audit-events.md` is generated from the record types; this test keeps it current.
//! Run `UPDATE_DOCS=1 cargo test -p cordon-audit --test docs` to regenerate it.

use std::path::Path;

use cordon_audit::{EventKind, reference_markdown};

#[test]
fn audit_events_md_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit-events.md");
    let want = reference_markdown();
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
        .map(|(i, (h, w))| format!("line {}: file has {h:?}, types give {w:?}", i + 1));
    assert!(
        have == want,
        "{} is out of date ({}); run `UPDATE_DOCS=1 cargo test -p cordon-audit --test docs`",
        path.display(),
        first_difference.unwrap_or_else(|| format!(
            "lengths differ: file {} lines, types {} lines",
            have.lines().count(),
            want.lines().count()
        ))
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
