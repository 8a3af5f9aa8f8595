//! The checkpoint journal end to end on real directories: file-tool changes, overlay
//! upper directories applied and undone byte for byte, conflicts, the cap, dedup, and
//! attacks that try to make Cordon write outside the workspace.
//!
//! Run as root, `every_test_again_as_an_unprivileged_user` re-runs the suite as uid 65534
//! through `setpriv`; the tests that need CAP_MKNOD (whiteouts, devices) print why they
//! skip there.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use checkpoint::{
    Checkpoints, Error, OverCap, RelPath, SessionId, State, Tree, clear_upper, commit, plan,
};

const CAP: u64 = 1 << 30;

struct Fixture {
    _tmp: tempfile::TempDir,
    ws: PathBuf,
    upper: PathBuf,
    outside: PathBuf,
    cp: Checkpoints,
}

fn fixture() -> Fixture {
    fixture_with_cap(CAP)
}

fn fixture_with_cap(cap: u64) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let upper = tmp.path().join("upper");
    let outside = tmp.path().join("outside");
    for d in [&ws, &upper, &outside] {
        fs::create_dir(d).unwrap();
    }
    fs::write(outside.join("secret"), "outside").unwrap();
    let cp = Checkpoints::open(&tmp.path().join("state/checkpoints"), cap).unwrap();
    Fixture {
        _tmp: tmp,
        ws,
        upper,
        outside,
        cp,
    }
}

fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn write(path: &Path, bytes: impl AsRef<[u8]>, mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every entry beneath `root`: kind, mode and content or target.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let key = p.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let val = if md.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(root, &p, out);
                format!("dir {mode:o}")
            } else if !md.is_file() {
                format!("special {mode:o}")
            } else {
                format!("file {mode:o} {}", hex(&fs::read(&p).unwrap()))
            };
            out.insert(key, val);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn blob_count(cp: &Checkpoints) -> usize {
    fs::read_dir(cp.dir().join("blobs")).unwrap().count()
}

/// A whiteout (character device 0:0); `None` with the reason printed without CAP_MKNOD.
fn whiteout(path: &Path) -> Option<()> {
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    ) {
        Ok(()) => Some(()),
        Err(e) => {
            eprintln!("SKIPPED: cannot make a whiteout without CAP_MKNOD ({e}); covered as root");
            None
        }
    }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// A workspace with text, binary, modes, a symlink, empty and nested directories.
fn populate(ws: &Path) {
    write(&ws.join("README.md"), "# project\nline two\n", 0o644);
    write(&ws.join("run.sh"), "#!/bin/sh\necho hi\n", 0o755);
    write(&ws.join("private.key"), "k", 0o600);
    write(&ws.join("data.bin"), [0u8, 159, 146, 150, 255, 0, 1], 0o640);
    write(&ws.join("src/lib.rs"), "pub fn f() {}\n", 0o644);
    write(&ws.join("src/deep/er/x.txt"), "deep\n", 0o444);
    mkdir(&ws.join("empty"), 0o700);
    mkdir(&ws.join("src/deep/empty2"), 0o750);
    symlink("src/lib.rs", ws.join("lib-link")).unwrap();
    symlink("/nonexistent/dangling", ws.join("src/dangling")).unwrap();
    write(&ws.join(".hidden"), "dot\n", 0o644);
}

fn apply_upper(f: &Fixture, session: &str, call: &str) -> checkpoint::Applied {
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    let applied = commit(&p, &f.cp, &ws, &sid(session), call, OverCap::Refuse).unwrap();
    clear_upper(&f.upper).unwrap();
    applied
}

#[test]
fn file_tool_write_edit_delete_is_journaled_rendered_and_undone() {
    let f = fixture();
    write(&f.ws.join("notes.txt"), "one\ntwo\nthree\n", 0o644);
    let before = snapshot(&f.ws);
    let ws = Tree::open(&f.ws).unwrap();
    let s = sid("s1");

    // Create.
    let p =
        f.cp.before_change(&ws, &s, "c1", &rel("plan.md"), 6, OverCap::Refuse)
            .unwrap();
    assert_eq!(p.before(), &State::Absent);
    fs::write(f.ws.join("plan.md"), "# plan\n").unwrap();
    let e = p.record().unwrap().expect("a change");
    assert!(matches!(e.after, State::File { size: 7, .. }), "{e:?}");
    // Edit.
    let p =
        f.cp.before_change(&ws, &s, "c2", &rel("notes.txt"), 20, OverCap::Refuse)
            .unwrap();
    fs::write(f.ws.join("notes.txt"), "one\nTWO\nthree\n").unwrap();
    p.record().unwrap().unwrap();
    // A tool that failed changes nothing and records nothing.
    let p =
        f.cp.before_change(&ws, &s, "c3", &rel("notes.txt"), 0, OverCap::Refuse)
            .unwrap();
    assert_eq!(p.record().unwrap(), None);
    // Delete.
    let p =
        f.cp.before_change(&ws, &s, "c4", &rel("plan.md"), 0, OverCap::Refuse)
            .unwrap();
    fs::remove_file(f.ws.join("plan.md")).unwrap();
    p.record().unwrap().unwrap();

    assert_eq!(f.cp.journal(&s).unwrap().len(), 3);
    let changes = f.cp.changes(&s).unwrap();
    // plan.md was created and deleted: no net change.
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].calls, ["c2"]);
    let diff = f.cp.render(&changes[0]).unwrap();
    assert!(
        diff.contains("--- a/notes.txt") && diff.contains("+++ b/notes.txt"),
        "{diff}"
    );
    assert!(diff.contains("-two\n") && diff.contains("+TWO\n"), "{diff}");

    let r = f.cp.undo(&s, None, &ws, "undo-1").unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.restored, [rel("notes.txt")]);
    assert_eq!(r.already, [rel("plan.md")]);
    assert_eq!(snapshot(&f.ws), before);
}

#[test]
fn a_file_tool_change_beneath_a_symlink_is_refused() {
    let f = fixture();
    symlink(&f.outside, f.ws.join("link")).unwrap();
    symlink("../outside", f.ws.join("rel-link")).unwrap();
    let ws = Tree::open(&f.ws).unwrap();
    for p in ["link/secret", "rel-link/secret"] {
        let e =
            f.cp.before_change(&ws, &sid("s"), "c", &rel(p), 1, OverCap::Refuse)
                .err()
                .expect("refused");
        assert!(e.to_string().contains(p), "{e}");
    }
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
}

#[test]
fn a_command_change_set_is_applied_and_undone_exactly() {
    let f = fixture();
    populate(&f.ws);
    let before = snapshot(&f.ws);
    // What a command leaves in upper: a new file, a changed file, a mode change (copy-up
    // with the same content), a new nested directory, a new symlink, a file copied up
    // unchanged (no change), a new empty directory, a directory mode change.
    write(&f.upper.join("new.txt"), "new\n", 0o644);
    write(&f.upper.join("README.md"), "# project\nline 2\n", 0o644);
    write(&f.upper.join("run.sh"), "#!/bin/sh\necho hi\n", 0o700);
    write(&f.upper.join("src/lib.rs"), "pub fn f() {}\n", 0o644);
    write(&f.upper.join("build/out/a.o"), [1u8, 2, 3, 0, 255], 0o644);
    mkdir(&f.upper.join("newempty"), 0o755);
    symlink("README.md", f.upper.join("readme-link")).unwrap();
    fs::set_permissions(f.upper.join("src"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&f.upper, fs::Permissions::from_mode(0o755)).unwrap();

    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "build",
            "build/out",
            "build/out/a.o",
            "new.txt",
            "newempty",
            "readme-link",
            "run.sh",
            "src"
        ],
        "{:?}",
        p.changes
    );
    assert!(p.refused.is_empty(), "{:?}", p.refused);
    let applied = commit(&p, &f.cp, &ws, &sid("s1"), "exec-1", OverCap::Refuse).unwrap();
    assert_eq!(applied.entries.len(), 9);
    clear_upper(&f.upper).unwrap();
    assert_eq!(fs::read_dir(&f.upper).unwrap().count(), 0);

    assert_eq!(
        fs::read_to_string(f.ws.join("README.md")).unwrap(),
        "# project\nline 2\n"
    );
    assert_eq!(
        fs::read(f.ws.join("build/out/a.o")).unwrap(),
        [1u8, 2, 3, 0, 255]
    );
    let mode = |p: &str| {
        fs::symlink_metadata(f.ws.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("run.sh"), 0o700);
    assert_eq!(mode("src"), 0o700);
    assert_eq!(mode("newempty"), 0o755);
    assert_eq!(
        fs::read_link(f.ws.join("readme-link")).unwrap(),
        Path::new("README.md")
    );

    // Rendering: text as a diff, binary as one line, a mode change named.
    let changes = f.cp.changes(&sid("s1")).unwrap();
    let rendered: Vec<String> = changes.iter().map(|c| f.cp.render(c).unwrap()).collect();
    let all = rendered.join("");
    assert!(all.contains("-line two\n+line 2\n"), "{all}");
    assert!(
        all.contains("build/out/a.o: created file (5 bytes, mode 0644)"),
        "{all}"
    );
    assert!(all.contains("mode 0755 -> 0700"), "{all}");
    assert!(
        all.contains("readme-link: created symlink to README.md"),
        "{all}"
    );

    let r = f.cp.undo(&sid("s1"), None, &ws, "undo").unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(snapshot(&f.ws), before);
    // Again: nothing left to do, nothing clobbered.
    let r = f.cp.undo(&sid("s1"), None, &ws, "undo-2").unwrap();
    assert!(r.complete() && r.restored.is_empty(), "{r:?}");
    assert_eq!(snapshot(&f.ws), before);
    assert!(f.cp.changes(&sid("s1")).unwrap().is_empty());
}

#[test]
fn rm_rf_of_the_whole_workspace_is_restored_byte_for_byte() {
    let f = fixture();
    populate(&f.ws);
    let before = snapshot(&f.ws);
    // `rm -rf ./*` and the dotfile too: a whiteout for every top-level entry.
    for e in fs::read_dir(&f.ws).unwrap() {
        if whiteout(&f.upper.join(e.unwrap().file_name())).is_none() {
            return;
        }
    }
    let applied = apply_upper(&f, "evil", "exec-rm");
    assert_eq!(
        fs::read_dir(&f.ws).unwrap().count(),
        0,
        "the workspace is empty"
    );
    assert_eq!(
        applied.entries.len(),
        before.len(),
        "one entry per path deleted"
    );
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
    // A later session changes another file; undo still restores everything.
    let ws = Tree::open(&f.ws).unwrap();
    let p =
        f.cp.before_change(
            &ws,
            &sid("later"),
            "c",
            &rel("other.txt"),
            1,
            OverCap::Refuse,
        )
        .unwrap();
    fs::write(f.ws.join("other.txt"), "x").unwrap();
    p.record().unwrap();

    let r = f.cp.undo(&sid("evil"), None, &ws, "undo").unwrap();
    assert!(r.complete(), "{r:?}");
    let mut after = snapshot(&f.ws);
    assert_eq!(after.remove("other.txt").as_deref(), Some("file 644 78"));
    assert_eq!(after, before);
}

#[test]
fn a_file_changed_since_the_session_is_reported_not_clobbered() {
    let f = fixture();
    populate(&f.ws);
    write(&f.upper.join("README.md"), "agent\n", 0o644);
    write(&f.upper.join("src/lib.rs"), "agent\n", 0o644);
    write(&f.upper.join("made.txt"), "agent\n", 0o644);
    apply_upper(&f, "s1", "exec-1");
    // A human edits one file and the made one afterwards.
    fs::write(f.ws.join("README.md"), "human\n").unwrap();
    fs::write(f.ws.join("made.txt"), "human too\n").unwrap();

    let ws = Tree::open(&f.ws).unwrap();
    let r = f.cp.undo(&sid("s1"), None, &ws, "undo").unwrap();
    assert!(!r.complete());
    let conflicts: Vec<&str> = r.conflicts.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(conflicts, ["README.md", "made.txt"], "{r:?}");
    assert!(r.conflicts[0].found.contains("file (6 bytes"), "{r:?}");
    assert_eq!(
        fs::read_to_string(f.ws.join("README.md")).unwrap(),
        "human\n"
    );
    assert_eq!(
        fs::read_to_string(f.ws.join("made.txt")).unwrap(),
        "human too\n"
    );
    assert_eq!(r.restored, [rel("src/lib.rs")]);
    assert_eq!(
        fs::read_to_string(f.ws.join("src/lib.rs")).unwrap(),
        "pub fn f() {}\n"
    );
}

#[test]
fn undo_of_one_call_leaves_the_others() {
    let f = fixture();
    write(&f.ws.join("a.txt"), "a0", 0o644);
    write(&f.ws.join("b.txt"), "b0", 0o644);
    write(&f.upper.join("a.txt"), "a1", 0o644);
    apply_upper(&f, "s", "call-a");
    write(&f.upper.join("b.txt"), "b1", 0o644);
    write(&f.upper.join("new/c.txt"), "c1", 0o644);
    apply_upper(&f, "s", "call-b");

    let ws = Tree::open(&f.ws).unwrap();
    let e =
        f.cp.undo(&sid("s"), Some("call-x"), &ws, "undo")
            .unwrap_err();
    assert!(matches!(e, Error::UnknownCall { .. }), "{e}");
    let r = f.cp.undo(&sid("s"), Some("call-b"), &ws, "undo-b").unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(fs::read_to_string(f.ws.join("a.txt")).unwrap(), "a1");
    assert_eq!(fs::read_to_string(f.ws.join("b.txt")).unwrap(), "b0");
    assert!(!f.ws.join("new").exists());
    let changes = f.cp.changes(&sid("s")).unwrap();
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["a.txt"]);
}

#[test]
fn the_cap_is_checked_before_anything_is_stored_or_applied() {
    let f = fixture_with_cap(4096);
    write(&f.ws.join("big.bin"), vec![7u8; 3000], 0o644);
    write(&f.upper.join("big.bin"), vec![8u8; 3000], 0o644);
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    let cost = p.cost(&f.cp).unwrap();
    assert!(cost.exceeds(), "{cost:?}");
    assert!(cost.needed >= 6000, "before and after bytes: {cost:?}");
    let e = commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Refuse).unwrap_err();
    assert!(
        e.to_string()
            .contains("raise the journal size cap or approve"),
        "{e}"
    );
    assert_eq!(fs::read(f.ws.join("big.bin")).unwrap(), vec![7u8; 3000]);
    assert_eq!(blob_count(&f.cp), 0);
    assert!(f.cp.journal(&sid("s")).unwrap().is_empty());
    // The file tool path too.
    let e =
        f.cp.before_change(&ws, &sid("s"), "c", &rel("big.bin"), 5000, OverCap::Refuse)
            .err()
            .unwrap();
    assert!(matches!(e, Error::CapExceeded { .. }), "{e}");
    // Approved by a human: applied and journaled.
    commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Allow).unwrap();
    assert_eq!(fs::read(f.ws.join("big.bin")).unwrap(), vec![8u8; 3000]);
    assert_eq!(blob_count(&f.cp), 2);
}

#[test]
fn the_same_content_is_stored_once_across_sessions() {
    let f = fixture();
    let ws = Tree::open(&f.ws).unwrap();
    for (s, name) in [("s1", "one.txt"), ("s2", "two.txt")] {
        let p =
            f.cp.before_change(&ws, &sid(s), "c", &rel(name), 5, OverCap::Refuse)
                .unwrap();
        fs::write(f.ws.join(name), "same\n").unwrap();
        p.record().unwrap().unwrap();
    }
    write(&f.upper.join("three.txt"), "same\n", 0o644);
    apply_upper(&f, "s3", "c");
    assert_eq!(blob_count(&f.cp), 1);
    let blob = fs::read_dir(f.cp.dir().join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(blob.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(f.cp.sessions().unwrap(), [sid("s1"), sid("s2"), sid("s3")]);
}

#[test]
fn an_opaque_directory_replaces_the_old_one() {
    let f = fixture();
    write(&f.ws.join("d/old1"), "1", 0o644);
    write(&f.ws.join("d/sub/old2"), "2", 0o644);
    write(&f.ws.join("d/kept-name"), "old", 0o644);
    let before = snapshot(&f.ws);
    // `rm -rf d; mkdir -p d/sub; echo new > d/kept-name; echo x > d/sub/n` in overlay.
    write(&f.upper.join("d/kept-name"), "new", 0o644);
    write(&f.upper.join("d/sub/n"), "x", 0o644);
    fs::set_permissions(f.upper.join("d"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(f.upper.join("d/sub"), fs::Permissions::from_mode(0o755)).unwrap();
    let name = if rustix::process::geteuid().is_root() {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    };
    set_xattr(&f.upper.join("d"), name, b"y");
    apply_upper(&f, "s", "c");
    let mut now: Vec<String> = snapshot(&f.ws).into_keys().collect();
    now.sort();
    assert_eq!(now, ["d", "d/kept-name", "d/sub", "d/sub/n"]);
    let ws = Tree::open(&f.ws).unwrap();
    let r = f.cp.undo(&sid("s"), None, &ws, "undo").unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(snapshot(&f.ws), before);
}

#[test]
fn a_symlink_made_by_one_command_cannot_carry_the_next_outside() {
    let f = fixture();
    // Command 1 leaves symlinks to outside (absolute and relative).
    symlink(&f.outside, f.upper.join("link")).unwrap();
    symlink("../outside", f.upper.join("rel")).unwrap();
    apply_upper(&f, "s", "exec-1");
    assert!(
        fs::symlink_metadata(f.ws.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Command 2's upper holds directories of those names with files in them, and a
    // whiteout beneath one (what a crafted upper could hold).
    write(&f.upper.join("link/secret"), "pwned", 0o644);
    write(&f.upper.join("rel/new"), "pwned", 0o644);
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    commit(&p, &f.cp, &ws, &sid("s"), "exec-2", OverCap::Refuse).unwrap();
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
    assert!(!f.outside.join("new").exists());
    // The symlinks were replaced by real directories inside the workspace.
    assert_eq!(
        fs::read_to_string(f.ws.join("link/secret")).unwrap(),
        "pwned"
    );
    assert!(fs::symlink_metadata(f.ws.join("rel")).unwrap().is_dir());
    let mut names: Vec<_> = fs::read_dir(&f.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"]);
}

#[test]
fn a_workspace_symlink_swapped_in_after_the_plan_is_not_written_through() {
    let f = fixture();
    mkdir(&f.ws.join("dir"), 0o755);
    write(&f.upper.join("dir/secret"), "pwned", 0o644);
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    // Between plan and commit, the directory becomes a symlink to outside.
    fs::remove_dir(f.ws.join("dir")).unwrap();
    symlink(&f.outside, f.ws.join("dir")).unwrap();
    let e = commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Refuse).unwrap_err();
    assert!(e.to_string().contains("dir/secret"), "{e}");
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
}

#[test]
fn upper_changed_after_the_plan_applies_nothing() {
    let f = fixture();
    write(&f.upper.join("a.txt"), "planned", 0o644);
    write(&f.upper.join("b.txt"), "planned", 0o644);
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    fs::write(f.upper.join("b.txt"), "swapped").unwrap();
    let e = commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Refuse).unwrap_err();
    assert!(matches!(e, Error::ChangedSincePlan { .. }), "{e}");
    assert!(e.to_string().contains("b.txt"), "{e}");
    assert_eq!(fs::read_dir(&f.ws).unwrap().count(), 0, "nothing applied");
    assert!(f.cp.journal(&sid("s")).unwrap().is_empty());
}

#[test]
fn fifos_sockets_and_devices_in_upper_are_refused_not_applied() {
    let f = fixture();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.upper.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(f.upper.join("sock")).unwrap();
    write(&f.upper.join("ok.txt"), "fine", 0o644);
    let device = rustix::fs::mknodat(
        rustix::fs::CWD,
        f.upper.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    );
    if let Err(e) = &device {
        eprintln!("SKIPPED (device part only): cannot make a device without CAP_MKNOD ({e})");
    }
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    let mut refused: Vec<&str> = p.refused.iter().map(|r| r.path.as_str()).collect();
    refused.sort();
    let want: &[&str] = if device.is_ok() {
        &["fifo", "null", "sock"]
    } else {
        &["fifo", "sock"]
    };
    assert_eq!(refused, want, "{:?}", p.refused);
    assert!(
        p.refused[0].reason.contains("not applied"),
        "{:?}",
        p.refused
    );
    let applied = commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Refuse).unwrap();
    assert_eq!(applied.refused.len(), want.len());
    let names: Vec<_> = fs::read_dir(&f.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ok.txt"]);
}

#[test]
fn setuid_bits_from_a_command_are_dropped() {
    let f = fixture();
    write(&f.upper.join("suid"), "#!/bin/sh\n", 0o4755);
    mkdir(&f.upper.join("sgid-dir"), 0o2775);
    apply_upper(&f, "s", "c");
    let mode = |p: &str| fs::metadata(f.ws.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sgid-dir"), 0o775);
}

#[test]
fn overlay_redirect_and_metacopy_entries_are_refused() {
    let f = fixture();
    write(&f.ws.join("moved/a"), "a", 0o644);
    write(&f.upper.join("renamed/a"), "a", 0o644);
    write(&f.upper.join("meta"), "", 0o644);
    let (redirect, metacopy) = if rustix::process::geteuid().is_root() {
        ("trusted.overlay.redirect", "trusted.overlay.metacopy")
    } else {
        ("user.overlay.redirect", "user.overlay.metacopy")
    };
    set_xattr(&f.upper.join("renamed"), redirect, b"/moved");
    set_xattr(&f.upper.join("meta"), metacopy, b"");
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    let refused: Vec<&str> = p.refused.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(refused, ["meta", "renamed"], "{:?}", p.refused);
    assert!(
        p.refused[0].reason.contains("metacopy=off"),
        "{:?}",
        p.refused
    );
}

#[test]
fn a_whiteout_over_a_workspace_symlink_removes_the_link_not_its_target() {
    let f = fixture();
    symlink(&f.outside, f.ws.join("link")).unwrap();
    if whiteout(&f.upper.join("link")).is_none() {
        return;
    }
    apply_upper(&f, "s", "c");
    assert!(fs::symlink_metadata(f.ws.join("link")).is_err());
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
    let ws = Tree::open(&f.ws).unwrap();
    assert!(f.cp.undo(&sid("s"), None, &ws, "u").unwrap().complete());
    assert_eq!(fs::read_link(f.ws.join("link")).unwrap(), f.outside);
}

#[test]
fn a_workspace_fifo_is_not_deleted_and_its_directory_is_kept() {
    let f = fixture();
    write(&f.ws.join("d/file"), "kept", 0o644);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.ws.join("d/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    if whiteout(&f.upper.join("d")).is_none() {
        return;
    }
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    let refused: Vec<&str> = p.refused.iter().map(|r| r.path.as_str()).collect();
    assert!(refused.contains(&"d/fifo"), "{:?}", p.refused);
    commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Refuse).unwrap();
    assert!(
        f.ws.join("d").is_dir(),
        "the directory holding a FIFO is not removed"
    );
}

#[test]
fn clear_upper_does_not_follow_symlinks() {
    let f = fixture();
    write(&f.upper.join("a/b/c"), "x", 0o644);
    symlink(&f.outside, f.upper.join("a/out")).unwrap();
    symlink(&f.outside, f.upper.join("out")).unwrap();
    clear_upper(&f.upper).unwrap();
    assert_eq!(fs::read_dir(&f.upper).unwrap().count(), 0);
    assert!(f.upper.is_dir());
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
}

#[test]
fn a_tampered_journal_cannot_make_undo_leave_the_workspace() {
    let f = fixture();
    write(&f.upper.join("a"), "a", 0o644);
    apply_upper(&f, "s", "c");
    let journal = f.cp.dir().join("sessions/s.jsonl");
    let line = fs::read_to_string(&journal).unwrap();
    let evil = line.replace("\"path\":\"a\"", "\"path\":\"../outside/secret\"");
    assert_ne!(line, evil);
    fs::write(&journal, format!("{line}{evil}")).unwrap();
    let ws = Tree::open(&f.ws).unwrap();
    let e = f.cp.undo(&sid("s"), None, &ws, "u").unwrap_err();
    assert!(e.to_string().contains("s.jsonl:2"), "{e}");
    assert!(e.to_string().contains("`..`"), "{e}");
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
    // A torn last line (a crash during the append) is ignored, not an error.
    fs::write(&journal, format!("{line}{{\"call\":\"c2\",\"ti")).unwrap();
    assert_eq!(f.cp.journal(&sid("s")).unwrap().len(), 1);
}

#[test]
fn every_test_again_as_an_unprivileged_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("already unprivileged: the other tests cover this case");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: setpriv is not installed, cannot re-run as an unprivileged user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("suite");
    fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    rustix::fs::chown(
        &tmp,
        Some(rustix::process::Uid::from_raw(65534)),
        Some(rustix::process::Gid::from_raw(65534)),
    )
    .unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "--skip",
            "every_test_again_as_an_unprivileged_user",
            "--nocapture",
            "--test-threads=2",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", &tmp)
        .current_dir(&tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "as uid 65534:\n{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok"), "{stdout}");
    eprintln!("as uid 65534:\n{stdout}\n{stderr}");
}

/// A real overlay mount (as the sandbox makes it): each command runs in the merged
/// directory, the upper directory is planned, committed and cleared, and the workspace
/// must end up exactly as if the command had run on it directly; undo then restores the
/// start byte for byte. Needs CAP_SYS_ADMIN to mount.
#[test]
fn commands_through_a_real_overlay_match_running_them_directly() {
    let f = fixture();
    populate(&f.ws);
    let start = snapshot(&f.ws);
    let work = f.upper.parent().unwrap().join("work");
    let merged = f.upper.parent().unwrap().join("merged");
    let direct = f.upper.parent().unwrap().join("direct");
    fs::create_dir(&work).unwrap();
    fs::create_dir(&merged).unwrap();
    let cp_a = std::process::Command::new("cp")
        .arg("-a")
        .arg(&f.ws)
        .arg(&direct)
        .status()
        .unwrap();
    assert!(cp_a.success());
    let scripts = [
        // Edits, a mode change, new nested directories, binary bytes, a symlink out,
        // a file renamed, a lower directory renamed (copied, then deleted: EXDEV with
        // redirect_dir=off), a FIFO (refused), a directory replaced by a file and a
        // file by a directory.
        "echo changed > README.md && chmod 700 run.sh && mkdir -p new/deep \
         && printf '\\000\\001\\377' > new/deep/bin && ln -s ../outside escape \
         && mv src/lib.rs src/moved.rs && mv src/deep src/deeper && mkfifo pipe \
         && rm -rf src/deeper/er && echo now-a-file > src/deeper/er \
         && rm .hidden && mkdir .hidden && echo in > .hidden/x",
        // The injected `rm -rf ./*`, then a directory made again where one was (opaque).
        "rm -rf ./* && mkdir src && echo fresh > src/x",
    ];
    let ws = Tree::open(&f.ws).unwrap();
    for (n, script) in scripts.iter().enumerate() {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            f.ws.display(),
            f.upper.display(),
            work.display()
        );
        if let Err(e) = rustix::mount::mount(
            "overlay",
            &merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(std::ffi::CString::new(opts).unwrap().as_c_str()),
        ) {
            eprintln!("SKIPPED: cannot mount an overlay here ({e}); covered as root");
            return;
        }
        let run = |dir: &Path| {
            let st = std::process::Command::new("sh")
                .args(["-c", script])
                .current_dir(dir)
                .status()
                .unwrap();
            assert!(st.success(), "{script} in {}", dir.display());
        };
        run(&merged);
        rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::empty()).unwrap();
        run(&direct);

        let p = plan(&f.upper, &ws).unwrap();
        let refused: Vec<&str> = p.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, if n == 0 { vec!["pipe"] } else { vec![] });
        commit(
            &p,
            &f.cp,
            &ws,
            &sid("s"),
            &format!("exec-{n}"),
            OverCap::Refuse,
        )
        .unwrap();
        clear_upper(&f.upper).unwrap();
        let mut want = snapshot(&direct);
        want.remove("pipe");
        assert_eq!(snapshot(&f.ws), want, "after `{script}`");
    }
    assert_eq!(
        fs::read_to_string(f.outside.join("secret")).unwrap(),
        "outside"
    );
    let r = f.cp.undo(&sid("s"), None, &ws, "undo").unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(snapshot(&f.ws), start);
}

#[test]
fn a_directory_holding_files_of_another_session_is_not_removed_by_undo() {
    let f = fixture();
    write(&f.upper.join("d/mine"), "mine", 0o644);
    apply_upper(&f, "s1", "c");
    write(&f.upper.join("d/theirs"), "theirs", 0o644);
    apply_upper(&f, "s2", "c");
    let ws = Tree::open(&f.ws).unwrap();
    let r = f.cp.undo(&sid("s1"), None, &ws, "undo").unwrap();
    assert_eq!(r.restored, [rel("d/mine")], "{r:?}");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].0, rel("d"));
    assert!(r.failed[0].1.contains("not empty"), "{r:?}");
    assert_eq!(fs::read_to_string(f.ws.join("d/theirs")).unwrap(), "theirs");
    assert!(!f.ws.join("d/mine").exists());
}

#[test]
fn a_changed_binary_file_is_one_line() {
    let f = fixture();
    write(&f.ws.join("img.png"), [137u8, 80, 78, 71, 0, 1], 0o644);
    write(
        &f.upper.join("img.png"),
        [137u8, 80, 78, 71, 0, 2, 3],
        0o600,
    );
    apply_upper(&f, "s", "c");
    let changes = f.cp.changes(&sid("s")).unwrap();
    let line = f.cp.render(&changes[0]).unwrap();
    assert!(
        line.starts_with("img.png: file changed: content 6 -> 7 bytes"),
        "{line}"
    );
    assert!(
        line.contains("mode 0644 -> 0600") && line.contains("(calls: c)"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
}

#[test]
fn entries_a_command_made_unreadable_do_not_stop_the_rest_and_upper_still_clears() {
    let f = fixture();
    write(&f.upper.join("locked/inner"), "x", 0o644);
    fs::set_permissions(f.upper.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    write(&f.upper.join("noread"), "secret-ish", 0o000);
    write(&f.upper.join("ok.txt"), "fine", 0o644);
    let ws = Tree::open(&f.ws).unwrap();
    let p = plan(&f.upper, &ws).unwrap();
    commit(&p, &f.cp, &ws, &sid("s"), "c", OverCap::Refuse).unwrap();
    assert_eq!(fs::read_to_string(f.ws.join("ok.txt")).unwrap(), "fine");
    if rustix::process::geteuid().is_root() {
        assert!(p.refused.is_empty(), "{:?}", p.refused);
        let mode = fs::metadata(f.ws.join("noread"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o000);
    } else {
        let refused: Vec<&str> = p.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, ["locked", "noread"], "{:?}", p.refused);
        assert!(
            p.refused[1].reason.contains("Permission denied"),
            "{:?}",
            p.refused
        );
    }
    clear_upper(&f.upper).unwrap();
    assert_eq!(fs::read_dir(&f.upper).unwrap().count(), 0);
}

#[test]
fn read_only_directories_are_filled_emptied_and_restored() {
    let f = fixture();
    write(&f.ws.join("ro/old"), "old", 0o644);
    fs::set_permissions(f.ws.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(&f.ws);
    // A command adds a file to the read-only directory and makes a new one read-only.
    write(&f.upper.join("ro/new"), "new", 0o644);
    write(&f.upper.join("sealed/inside"), "in", 0o644);
    fs::set_permissions(f.upper.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(f.upper.join("sealed"), fs::Permissions::from_mode(0o500)).unwrap();
    apply_upper(&f, "s", "c");
    assert_eq!(
        fs::read_to_string(f.ws.join("sealed/inside")).unwrap(),
        "in"
    );
    let mode = |p: &str| fs::metadata(f.ws.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode("ro"), mode("sealed")), (0o555, 0o500));
    let ws = Tree::open(&f.ws).unwrap();
    let r = f.cp.undo(&sid("s"), None, &ws, "undo").unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(snapshot(&f.ws), before);
    fs::set_permissions(f.ws.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_tampered_blob_is_refused_not_restored() {
    let f = fixture();
    write(&f.ws.join("a.txt"), "original", 0o644);
    write(&f.upper.join("a.txt"), "changed", 0o644);
    apply_upper(&f, "s", "c");
    let Some(State::File { sha256, .. }) =
        f.cp.journal(&sid("s"))
            .unwrap()
            .first()
            .map(|e| e.before.clone())
    else {
        panic!("a file before state");
    };
    let blob = f.cp.dir().join("blobs").join(&sha256);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&blob, "planted").unwrap();
    let ws = Tree::open(&f.ws).unwrap();
    let r = f.cp.undo(&sid("s"), None, &ws, "undo").unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(r.failed[0].1.contains("does not match its name"), "{r:?}");
    assert_eq!(fs::read_to_string(f.ws.join("a.txt")).unwrap(), "changed");
}
