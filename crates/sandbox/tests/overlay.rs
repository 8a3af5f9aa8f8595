//! The workspace seen through an overlay (`Profile::workspace_overlay`): real commands in
//! real native sandboxes change files, and the test checks that every change is in the
//! upper directory (regular files, whiteouts, opaque directories) while the real workspace
//! stays byte-identical; that a reused instance sees the workspace as the caller left it
//! between commands; that nothing inside reaches the workspace or the upper directory by
//! another path; and that a layer that cannot be mounted stops `start`. As root, the
//! scenarios are re-run as uid 65534.

mod support;

use support::euid;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cordon_sandbox::{
    ContainerSandbox, Engine, ExecOutput, ExecRequest, ExitStatus, HostSandbox, Instance, Layer,
    Limits, NativeSandbox, Profile, Sandbox, SandboxError, SpawnRequest, WorkspaceAccess,
    WorkspaceOverlay,
};

/// A workspace and, beside it, a state directory holding `upper` and `work`.
struct Dirs {
    ws: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    state: PathBuf,
}

impl Dirs {
    fn new(base: &Path) -> Dirs {
        let ws = base.join("ws");
        let state = base.join("state");
        let upper = state.join("upper");
        let work = state.join("work");
        for d in [&ws, &state, &upper, &work] {
            std::fs::create_dir_all(d).unwrap();
        }
        Dirs {
            ws,
            upper,
            work,
            state,
        }
    }

    fn profile(&self) -> Profile {
        Profile {
            workspace: self.ws.clone(),
            workspace_access: WorkspaceAccess::Write,
            ro_binds: Vec::new(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            limits: Limits::default(),
            egress_port: None,
            etc_files: Vec::new(),
            workspace_overlay: Some(WorkspaceOverlay {
                upper: self.upper.clone(),
                work: self.work.clone(),
            }),
        }
    }

    fn start(&self) -> Box<dyn Instance> {
        NativeSandbox::new()
            .start(&self.profile())
            .expect("a sandbox with a workspace overlay should start")
    }
}

fn bash(sb: &mut dyn Instance, script: &str) -> ExecOutput {
    let req = ExecRequest {
        argv: vec!["bash".into(), "-c".into(), script.into()],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_secs(30),
        output_limit: 1 << 20,
    };
    sb.exec(&req).expect("the sandbox should run the command")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_owned()
}

/// What a directory tree holds, down to bytes: per relative path its kind, mode, owner,
/// modification time and content (or link target, or device number).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // The overlay's private work/work is mode 000: unreadable for an unprivileged
        // caller, and noted as such.
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let rel = dir.strip_prefix(root).unwrap().join("(unreadable)");
                out.insert(rel, e.to_string());
                continue;
            }
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let t = m.file_type();
            let what = if t.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if t.is_symlink() {
                format!("link {:?}", std::fs::read_link(&path).unwrap())
            } else if t.is_char_device() {
                format!("char {}", m.rdev())
            } else {
                format!("file {:?}", std::fs::read(&path).unwrap())
            };
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let stamp = format!(
                "{what} mode {:o} uid {} mtime {}.{}",
                m.mode(),
                m.uid(),
                m.mtime(),
                m.mtime_nsec()
            );
            out.insert(rel, stamp);
        }
    }
    out
}

/// What an entry of the upper directory says about the workspace.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// A new or changed file: content and permission bits.
    File(Vec<u8>, u32),
    /// A directory; opaque when it replaces a deleted one (hides everything beneath).
    Dir {
        opaque: bool,
    },
    /// A deletion: a character device 0:0.
    Whiteout,
    Link(PathBuf),
}

fn opaque(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    let name = c"user.overlay.opaque";
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated; `buf` is a live buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Every entry of `upper`, by path relative to it.
fn changes(upper: &Path) -> BTreeMap<String, Change> {
    let mut out = BTreeMap::new();
    let mut stack = vec![upper.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let t = m.file_type();
            let change = if t.is_dir() {
                stack.push(path.clone());
                Change::Dir {
                    opaque: opaque(&path),
                }
            } else if t.is_char_device() {
                assert_eq!(m.rdev(), 0, "a device other than a whiteout: {path:?}");
                Change::Whiteout
            } else if t.is_symlink() {
                Change::Link(std::fs::read_link(&path).unwrap())
            } else {
                assert!(t.is_file(), "{path:?}: {t:?}");
                Change::File(std::fs::read(&path).unwrap(), m.mode() & 0o7777)
            };
            let rel = path
                .strip_prefix(upper)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, change);
        }
    }
    out
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// What the caller of a real runtime does after a command: apply `upper` to the
/// workspace, then empty `upper`.
fn apply_and_clear(upper: &Path, ws: &Path) {
    fn apply(upper: &Path, ws: &Path) {
        for entry in std::fs::read_dir(upper).unwrap() {
            let from = entry.unwrap().path();
            let to = ws.join(from.file_name().unwrap());
            let m = std::fs::symlink_metadata(&from).unwrap();
            let t = m.file_type();
            if t.is_char_device() {
                remove(&to);
            } else if t.is_dir() {
                if opaque(&from) || !to.is_dir() {
                    remove(&to);
                    std::fs::create_dir(&to).unwrap();
                }
                std::fs::set_permissions(&to, m.permissions()).unwrap();
                apply(&from, &to);
            } else if t.is_symlink() {
                remove(&to);
                std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
            } else {
                remove(&to);
                std::fs::copy(&from, &to).unwrap();
            }
        }
    }
    apply(upper, ws);
    for entry in std::fs::read_dir(upper).unwrap() {
        remove(&entry.unwrap().path());
    }
}

/// A workspace with something of every kind for a command to change.
fn fill(ws: &Path) {
    let w = |p: &str, c: &str| std::fs::write(ws.join(p), c).unwrap();
    for d in ["tree", "tree/deep", "gone", "old", "swap"] {
        std::fs::create_dir(ws.join(d)).unwrap();
    }
    w("overwrite.txt", "original\n");
    w("append.txt", "first\n");
    w("delete.txt", "delete me\n");
    w("rename-from.txt", "renamed content\n");
    w("chmod.sh", "#!/bin/sh\necho hi\n");
    w("tree/deep/kept.txt", "kept\n");
    w("gone/a.txt", "a\n");
    w("old/x.txt", "x\n");
    w("swap/before.txt", "before\n");
    std::os::unix::fs::symlink("overwrite.txt", ws.join("link")).unwrap();
}

/// The command of the change scenario: every kind of change, then what it sees.
const CHANGE_EVERYTHING: &str = "set -e; cd /workspace
echo replaced > overwrite.txt
echo second >> append.txt
rm delete.txt
mv rename-from.txt rename-to.txt
chmod 700 chmod.sh
mkdir -p new/dir && echo fresh > new/dir/file.txt
rm -r gone
mv old renamed
rm -r swap && mkdir swap && echo after > swap/after.txt
ln -s append.txt newlink
cat overwrite.txt append.txt rename-to.txt new/dir/file.txt swap/after.txt
ls swap; test ! -e delete.txt; test ! -e gone; stat -c %a chmod.sh";

fn expected_output() -> &'static str {
    "replaced\nfirst\nsecond\nrenamed content\nfresh\nafter\nafter.txt\n700"
}

/// The change scenario in `base`: the workspace is untouched, `upper` holds every change.
fn changes_land_in_upper(base: &Path) {
    let d = Dirs::new(base);
    fill(&d.ws);
    let before = snapshot(&d.ws);
    let mut sb = d.start();
    let out = bash(sb.as_mut(), CHANGE_EVERYTHING);
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_output());
    assert_eq!(snapshot(&d.ws), before, "the real workspace changed");

    let got = changes(&d.upper);
    let file = |c: &str, mode: u32| Change::File(c.as_bytes().to_vec(), mode);
    let mut want: BTreeMap<String, Change> = BTreeMap::new();
    want.insert("overwrite.txt".into(), file("replaced\n", 0o644));
    want.insert("append.txt".into(), file("first\nsecond\n", 0o644));
    want.insert("delete.txt".into(), Change::Whiteout);
    want.insert("rename-from.txt".into(), Change::Whiteout);
    want.insert("rename-to.txt".into(), file("renamed content\n", 0o644));
    want.insert("chmod.sh".into(), file("#!/bin/sh\necho hi\n", 0o700));
    want.insert("new".into(), Change::Dir { opaque: false });
    want.insert("new/dir".into(), Change::Dir { opaque: false });
    want.insert("new/dir/file.txt".into(), file("fresh\n", 0o644));
    want.insert("gone".into(), Change::Whiteout);
    // A directory from the workspace cannot be renamed in place (no redirects with
    // userxattr): `mv` copies it, then deletes the original.
    want.insert("old".into(), Change::Whiteout);
    want.insert("renamed".into(), Change::Dir { opaque: false });
    want.insert("renamed/x.txt".into(), file("x\n", 0o644));
    want.insert("swap".into(), Change::Dir { opaque: true });
    want.insert("swap/after.txt".into(), file("after\n", 0o644));
    want.insert("newlink".into(), Change::Link("append.txt".into()));
    // The umask inside is the caller's (022 here), hence 0644 for new files.
    assert_eq!(got, want, "upper is not exactly the command's changes");
    assert_eq!(got["chmod.sh"], file("#!/bin/sh\necho hi\n", 0o700));
    for (path, c) in &got {
        if let Change::File(_, mode) = c {
            assert_eq!(mode & 0o6000, 0, "{path}: no setuid/setgid bit");
        }
    }
}

/// The reuse scenario in `base`: each command gets a new overlay over the workspace as
/// the caller left it, and its own changes only.
fn reused_instance_sees_the_applied_workspace(base: &Path) {
    let d = Dirs::new(base);
    std::fs::write(d.ws.join("keep.txt"), "v1\n").unwrap();
    std::fs::write(d.ws.join("drop.txt"), "drop\n").unwrap();
    let mut sb = d.start();

    let out = bash(
        sb.as_mut(),
        "echo v2 > keep.txt; rm drop.txt; mkdir made; echo one > made/one",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(d.ws.join("keep.txt")).unwrap(),
        "v1\n"
    );
    assert!(d.ws.join("drop.txt").exists());
    assert_eq!(changes(&d.upper).len(), 4, "{:#?}", changes(&d.upper));

    // The caller applies the change, empties upper, and changes the workspace itself.
    apply_and_clear(&d.upper, &d.ws);
    std::fs::write(d.ws.join("caller.txt"), "from the caller\n").unwrap();
    let applied = snapshot(&d.ws);

    let out = bash(
        sb.as_mut(),
        "cat keep.txt made/one caller.txt; ls; echo three > three.txt",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "v2\none\nfrom the caller\ncaller.txt\nkeep.txt\nmade"
    );
    assert_eq!(snapshot(&d.ws), applied);
    let got = changes(&d.upper);
    assert_eq!(
        got,
        BTreeMap::from([(
            "three.txt".to_owned(),
            Change::File(b"three\n".to_vec(), 0o644)
        )])
    );

    // Not applied this time: the next command still sees it (it is in upper), and a
    // deletion by the caller in the workspace shows through.
    std::fs::remove_file(d.ws.join("caller.txt")).unwrap();
    let out = bash(sb.as_mut(), "cat three.txt; ls");
    assert_eq!(text(&out.stdout), "three\nkeep.txt\nmade\nthree.txt");

    // Ten calls in a row, each applied: the instance keeps working.
    apply_and_clear(&d.upper, &d.ws);
    for i in 0..10 {
        let out = bash(sb.as_mut(), &format!("cat n 2>/dev/null; echo {i} > n"));
        let seen = if i == 0 {
            String::new()
        } else {
            (i - 1).to_string()
        };
        assert_eq!(text(&out.stdout), seen, "call {i}");
        apply_and_clear(&d.upper, &d.ws);
    }
    assert_eq!(std::fs::read_to_string(d.ws.join("n")).unwrap(), "9\n");
}

/// Escape attempts in `base`: the real workspace and the upper directory stay out of
/// reach, and nothing writes after `exec` returned.
fn nothing_reaches_the_layers(base: &Path) {
    let d = Dirs::new(base);
    std::fs::write(d.ws.join("file.txt"), "original\n").unwrap();
    std::fs::create_dir(d.ws.join("dir")).unwrap();
    let before = snapshot(&d.ws);
    let mut sb = d.start();
    let ws = d.ws.display();
    let upper = d.upper.display();
    let state = d.state.display();
    let script = format!(
        r#"
try() {{ if ( eval "$1" ) 2>/dev/null; then echo "ESCAPED: $1"; else echo "blocked: $1"; fi; }}
echo legit > /workspace/legit.txt
# The host paths do not exist inside.
try 'echo pwn > {ws}/pwn'
try 'echo pwn > {upper}/pwn'
try 'echo pwn > {state}/pwn'
# Init holds the layers open; it is not dumpable, so its descriptors cannot be followed
# (checks that Landlock does not make: readlink and stat).
for n in $(seq 3 20); do
  try "readlink /proc/1/fd/$n | grep -q ."
  try "stat -L /proc/1/fd/$n"
  try "echo pwn > /proc/1/fd/$n/pwn"
done
try 'ls /proc/1/cwd/ /proc/1/root/'
try 'echo pwn > /proc/1/root/workspace/pwn; test -e {ws}/pwn'
# The command's own view: no descriptor of init's, no other mount of the layers.
for f in /proc/self/fd/*; do case "$(readlink "$f")" in *ws*|*upper*|*work*|*state*) echo "ESCAPED: fd $f";; esac; done
echo "mountinfo-lines=$(grep -c ' /workspace ' /proc/self/mountinfo)"
# Unmount the overlay to find the read-only workspace (and the upper bind) beneath.
try 'python3 -c "import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.umount2(b\"/workspace\",2)==0 else 1)"'
try 'python3 -c "import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.mount(b\"/workspace\",b\"/tmp\",None,4096,None)==0 else 1)"'
try 'umount -l /workspace'
grep Seccomp_filters /proc/self/status
# A forged whiteout for whoever applies upper: a device node.
try 'mknod /workspace/forged c 0 0'
# Something left behind that writes after the command ended.
(sleep 1; echo late > /workspace/late.txt) >/dev/null 2>&1 &
true
"#
    );
    let out = bash(sb.as_mut(), &script);
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("ESCAPED"),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("blocked: stat -L /proc/1/fd/3"), "{stdout}");
    assert!(stdout.contains("blocked: umount -l /workspace"), "{stdout}");
    assert!(
        stdout.contains("blocked: mknod /workspace/forged c 0 0"),
        "{stdout}"
    );
    // The overlay and, covered by it, the two layer binds (whose host paths mountinfo
    // shows, but which are not reachable: checked above).
    assert!(stdout.contains("mountinfo-lines=3"), "{stdout}");
    // Init itself may mount (the overlay): each command adds a filter denying it, so it
    // runs under one filter more than in a sandbox without an overlay.
    let filters = |out: &str| -> u32 {
        let line = out
            .lines()
            .find(|l| l.starts_with("Seccomp_filters:"))
            .unwrap();
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    let mut plain = d.profile();
    plain.workspace_overlay = None;
    let mut without = NativeSandbox::new().start(&plain).unwrap();
    let baseline = text(&bash(without.as_mut(), "grep Seccomp_filters /proc/self/status").stdout);
    assert_eq!(filters(&stdout), filters(&baseline) + 1, "{stdout}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(snapshot(&d.ws), before, "the real workspace changed");
    let got = changes(&d.upper);
    assert_eq!(
        got,
        BTreeMap::from([(
            "legit.txt".to_owned(),
            Change::File(b"legit\n".to_vec(), 0o644)
        )]),
        "upper holds more than the command's change through /workspace"
    );
    let mut names: Vec<_> = std::fs::read_dir(&d.state)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["upper", "work"],
        "something was written next to upper"
    );
    let work = snapshot(&d.work);
    assert!(
        !work.keys().any(|p| p.to_string_lossy().contains("pwn")),
        "{work:#?}"
    );
    // The instance still works and the next command sees only the workspace.
    let out = bash(sb.as_mut(), "ls /workspace");
    assert_eq!(text(&out.stdout), "dir\nfile.txt\nlegit.txt");

    // Forged overlay metadata for whoever applies upper: xattrs named like the overlay's
    // own, set through the overlay, never reach upper under those names (the kernel
    // escapes them as user.overlay.overlay.*, or older kernels refuse them).
    std::fs::remove_file(d.upper.join("legit.txt")).unwrap();
    let script = "for x in opaque redirect metacopy; do for p in /workspace/dir /workspace/file.txt; do \
                  python3 -c \"import os; os.setxattr('$p', 'user.overlay.$x', b'y')\" 2>/dev/null; \
                  done; done; true";
    assert!(bash(sb.as_mut(), script).status.success());
    for entry in ["dir", "file.txt"] {
        let path = d.upper.join(entry);
        if !path.exists() {
            continue; // refused before any copy-up
        }
        let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        for x in ["opaque", "redirect", "metacopy"] {
            let name = std::ffi::CString::new(format!("user.overlay.{x}")).unwrap();
            // SAFETY: NUL-terminated strings; a null buffer of size 0 asks for the size.
            let n =
                unsafe { libc::lgetxattr(cpath.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
            assert!(n < 0, "{entry} carries a forged user.overlay.{x}");
        }
    }
    assert!(
        !matches!(
            changes(&d.upper).get("dir"),
            Some(Change::Dir { opaque: true })
        ),
        "the directory became opaque"
    );
    assert_eq!(snapshot(&d.ws), before, "the real workspace changed");
}

#[test]
fn a_command_s_changes_land_in_upper_and_not_in_the_workspace() {
    let base = tempfile::tempdir().unwrap();
    changes_land_in_upper(base.path());
}

#[test]
fn a_reused_instance_sees_the_workspace_as_the_caller_left_it() {
    let base = tempfile::tempdir().unwrap();
    reused_instance_sees_the_applied_workspace(base.path());
}

#[test]
fn attack_nothing_inside_reaches_the_workspace_or_upper() {
    let base = tempfile::tempdir().unwrap();
    nothing_reaches_the_layers(base.path());
}

#[test]
fn a_command_killed_at_the_deadline_leaves_its_changes_and_the_instance_usable() {
    let base = tempfile::tempdir().unwrap();
    let d = Dirs::new(base.path());
    let mut sb = d.start();
    let req = ExecRequest {
        argv: vec![
            "bash".into(),
            "-c".into(),
            "echo partial > p.txt; sleep 60".into(),
        ],
        cwd: None,
        stdin: Vec::new(),
        timeout: Duration::from_millis(300),
        output_limit: 4096,
    };
    assert_eq!(sb.exec(&req).unwrap().status, ExitStatus::TimedOut);
    assert_eq!(
        changes(&d.upper),
        BTreeMap::from([(
            "p.txt".to_owned(),
            Change::File(b"partial\n".to_vec(), 0o644)
        )])
    );
    assert!(!d.ws.join("p.txt").exists());
    apply_and_clear(&d.upper, &d.ws);
    assert_eq!(text(&bash(sb.as_mut(), "cat p.txt").stdout), "partial");
}

#[test]
fn a_long_running_process_writes_to_upper_too() {
    let base = tempfile::tempdir().unwrap();
    let d = Dirs::new(base.path());
    let mut proc = NativeSandbox::new()
        .spawn(
            &d.profile(),
            &SpawnRequest::new(["sh", "-c", "echo served > served.txt; rm -f gone.txt"]),
        )
        .unwrap();
    let status = proc.wait(Duration::from_secs(30)).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(0)));
    assert!(!d.ws.join("served.txt").exists());
    assert_eq!(
        changes(&d.upper),
        BTreeMap::from([(
            "served.txt".to_owned(),
            Change::File(b"served\n".to_vec(), 0o644)
        )])
    );
}

#[test]
fn read_only_access_ignores_the_overlay() {
    let base = tempfile::tempdir().unwrap();
    let d = Dirs::new(base.path());
    let mut p = d.profile();
    p.workspace_access = WorkspaceAccess::Read;
    let mut sb = NativeSandbox::new().start(&p).unwrap();
    let out = bash(sb.as_mut(), "echo x > /workspace/x 2>&1 || echo refused");
    assert_eq!(text(&out.stdout), "refused");
    assert!(changes(&d.upper).is_empty());
    let e = NativeSandbox::new().explain(&p);
    let l = e
        .layers
        .iter()
        .find(|l| l.layer == "workspace overlay")
        .unwrap();
    assert!(!l.active && l.detail.contains("read"), "{l:?}");
}

#[test]
fn bad_overlay_directories_are_refused_naming_the_field() {
    let base = tempfile::tempdir().unwrap();
    let d = Dirs::new(base.path());
    std::fs::create_dir(d.ws.join("upper")).unwrap();
    let mut p = d.profile();
    p.workspace_overlay = Some(WorkspaceOverlay {
        upper: d.ws.join("upper"),
        work: d.work.clone(),
    });
    let err = NativeSandbox::new().start(&p).err().expect("refused");
    assert!(matches!(err, SandboxError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("workspace_overlay.upper"), "{err}");
    let e = NativeSandbox::new().explain(&p);
    assert!(
        e.warnings
            .iter()
            .any(|w| w.contains("workspace_overlay.upper")),
        "{:#?}",
        e.warnings
    );
}

/// A work directory the sandbox's user cannot use (owned by another user): the overlay
/// cannot be mounted, and `start` says so instead of running without it. Searchable but
/// not writable, the kernel would mount a read-only overlay (it only logs why); not even
/// searchable, the mount fails outright.
#[test]
fn an_overlay_that_cannot_be_mounted_stops_start_naming_the_layer() {
    if euid() != 0 {
        eprintln!("needs root to give the work directory to another user; skipped");
        return;
    }
    for (mode, why) in [(0o755, "read-only"), (0o700, "Permission denied")] {
        let base = tempfile::tempdir().unwrap();
        let d = Dirs::new(base.path());
        std::os::unix::fs::chown(&d.work, Some(4242), Some(4242)).unwrap();
        std::fs::set_permissions(&d.work, std::fs::Permissions::from_mode(mode)).unwrap();
        match NativeSandbox::new().start(&d.profile()) {
            Err(SandboxError::Setup { layer, detail }) => {
                assert_eq!(layer, Layer::WorkspaceOverlay, "{detail}");
                assert!(
                    detail.contains("mounting an overlay at /workspace while starting"),
                    "{detail}"
                );
                assert!(detail.contains(why), "{mode:o}: {detail}");
                assert!(detail.contains(&d.work.display().to_string()), "{detail}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("started without the overlay it was asked for ({mode:o})"),
        }
        assert!(snapshot(&d.ws).is_empty());
    }
}

#[test]
fn explain_states_the_overlay_and_every_claim_holds() {
    let base = tempfile::tempdir().unwrap();
    let d = Dirs::new(base.path());
    std::fs::write(d.ws.join("f"), "f").unwrap();
    let p = d.profile();
    let sb = NativeSandbox::new();
    assert!(sb.supports_workspace_overlay());
    let e = sb.explain(&p);
    let l = e
        .layers
        .iter()
        .find(|l| l.layer == "workspace overlay")
        .unwrap();
    assert!(l.active, "{l:?}");
    for part in [&d.ws, &d.upper, &d.work] {
        assert!(l.detail.contains(&part.display().to_string()), "{l:?}");
    }
    let view = e.mounts.iter().find(|m| m.path == "/workspace").unwrap();
    assert_eq!(view.access, cordon_sandbox::Access::ReadWrite, "{view:?}");
    assert!(view.source.starts_with("overlay: lower host:"), "{view:?}");
    assert!(
        view.source.contains(&d.upper.display().to_string()),
        "{view:?}"
    );
    // Nothing else from the host appears because of the overlay.
    let hosts: Vec<_> = e
        .mounts
        .iter()
        .filter(|m| m.source.contains(&d.state.display().to_string()))
        .collect();
    assert_eq!(hosts.len(), 1, "{hosts:#?}");
    // Writable, as claimed: the write lands in upper.
    let mut inst = sb.start(&p).unwrap();
    let out = bash(inst.as_mut(), "echo w > /workspace/w && cat /workspace/f");
    assert_eq!(text(&out.stdout), "f");
    assert!(changes(&d.upper).contains_key("w"));
    assert!(!d.ws.join("w").exists());
}

#[test]
fn backends_without_an_overlay_refuse_a_profile_that_asks_for_one() {
    let base = tempfile::tempdir().unwrap();
    let d = Dirs::new(base.path());
    let host = HostSandbox::new();
    assert!(!host.supports_workspace_overlay());
    let err = host.start(&d.profile()).err().expect("refused");
    assert!(err.to_string().contains("workspace_overlay"), "{err}");
    assert!(
        host.explain(&d.profile())
            .warnings
            .iter()
            .any(|w| w.contains("workspace_overlay")),
    );
    let container = ContainerSandbox::new(Engine::Docker, "debian:stable-slim");
    assert!(!container.supports_workspace_overlay());
    let err = container.start(&d.profile()).err().expect("refused");
    assert!(
        matches!(&err, SandboxError::Invalid(m) if m.contains("workspace_overlay")),
        "{err}"
    );
    // Without write access nothing can change: no overlay needed, no refusal.
    let mut p = d.profile();
    p.workspace_access = WorkspaceAccess::Read;
    assert!(host.start(&p).is_ok());
}

// -------------------------------------------------------------------- as uid 65534

const INNER_BASE: &str = "CORDON_OVERLAY_TEST_BASE";

/// Re-runs the scenarios as uid 65534 when this suite runs as root.
#[test]
fn an_unprivileged_caller_gets_the_same_overlay() {
    let Some(run) = support::NobodyRun::prepare() else {
        return;
    };
    let base = run.owned_dir("base");
    run.run(
        "overlay_unprivileged_inner",
        &[(INNER_BASE, base.as_os_str())],
    );
}

#[test]
#[ignore = "run by an_unprivileged_caller_gets_the_same_overlay under setpriv"]
fn overlay_unprivileged_inner() {
    let base = std::env::var_os(INNER_BASE).expect("run through the setpriv wrapper");
    assert_eq!(euid(), 65534, "the re-run must be unprivileged");
    let base = Path::new(OsStr::new(&base));
    for (name, scenario) in [
        ("changes", changes_land_in_upper as fn(&Path)),
        ("reuse", reused_instance_sees_the_applied_workspace),
        ("attacks", nothing_reaches_the_layers),
    ] {
        let dir = base.join(name);
        std::fs::create_dir(&dir).unwrap();
        scenario(&dir);
    }
}
