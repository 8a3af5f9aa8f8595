//! Checked-in documents generated from code (`docs/configuration.md` from the config
//! schema, `docs/audit-events.md` from the audit record types): a test fails when the file
//! in the repository is not what the code generates, naming the first differing line;
//! `UPDATE_DOCS=1` rewrites it instead.

use std::path::Path;

/// Assert that `path` holds exactly `generated`; with `UPDATE_DOCS=1` in the environment,
/// write it. `regenerate` is the command that does so, for the failure message, and
/// `source` what the document is generated from ("the schema", "the types").
pub fn assert_current(path: &Path, generated: &str, source: &str, regenerate: &str) {
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, generated).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    let first_difference = have
        .lines()
        .zip(generated.lines())
        .enumerate()
        .find(|(_, (h, w))| h != w)
        .map(|(i, (h, w))| format!("line {}: file has {h:?}, {source} gives {w:?}", i + 1));
    assert!(
        have == generated,
        "{} is out of date ({}); run `UPDATE_DOCS=1 {regenerate}`",
        path.display(),
        first_difference.unwrap_or_else(|| format!(
            "lengths differ: file {} lines, {source} {} lines",
            have.lines().count(),
            generated.lines().count()
        ))
    );
}
