//! Attacks on workspace confinement through `Runtime::perform`: every escape attempt is
//! refused with a clear error, the target outside is untouched, and the audit log shows
//! the refusal.

mod common;

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use audit::EventKind;
use common::{Harness, Setup};
use serde_json::{Value, json};

const SECRET: &str = "TOP SECRET CONTENT";

struct Scene {
    h: Harness,
    outside: PathBuf,
}

/// A workspace next to a directory `outside/` holding `secret.txt`.
fn scene() -> Scene {
    let h = Harness::new(Setup::default());
    let outside = h.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    Scene { h, outside }
}

impl Scene {
    fn outside_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["secret.txt".to_string()],
            "files appeared outside"
        );
        assert_eq!(
            std::fs::read_to_string(self.outside.join("secret.txt")).unwrap(),
            SECRET
        );
    }

    /// Try `path` with every file tool; each must be refused and leave `outside/` alone.
    async fn attack_all_tools(&self, path: &str, needle: &str) {
        let attempts: Vec<(&str, Value)> = vec![
            ("read_file", json!({"path": path})),
            ("write_file", json!({"path": path, "content": "pwned"})),
            (
                "write_file",
                json!({"path": format!("{path}/new.txt"), "content": "pwned"}),
            ),
            (
                "edit_file",
                json!({"path": path, "old_string": "TOP", "new_string": "pwned"}),
            ),
            ("list_dir", json!({"path": path})),
            ("search", json!({"pattern": "SECRET", "path": path})),
        ];
        for (tool, args) in attempts {
            let (id, obs) = self.h.call(tool, args.clone()).await;
            assert!(
                !obs.content.contains(SECRET),
                "{tool} {args}: secret content leaked: {}",
                obs.content
            );
            self.h.assert_refused(&id, &obs, needle);
            let err = self.h.one(&id, EventKind::Error);
            assert_eq!(err.data["stage"], "workspace", "{tool} {args}");
            self.outside_untouched();
        }
        assert!(!std::path::Path::new("/etc/pwned").exists());
    }
}

#[tokio::test]
async fn dotdot_paths_are_refused() {
    let s = scene();
    s.attack_all_tools("../outside/secret.txt", "outside the workspace")
        .await;
    s.attack_all_tools("a/../../outside/secret.txt", "outside the workspace")
        .await;
    s.attack_all_tools("..", "outside the workspace").await;
}

#[tokio::test]
async fn absolute_paths_outside_workspace_are_refused() {
    let s = scene();
    s.attack_all_tools("/etc/passwd", "outside the workspace")
        .await;
    s.attack_all_tools("/workspace/../etc/passwd", "outside the workspace")
        .await;
    s.attack_all_tools("/workspacefoo/x", "outside the workspace")
        .await;
    let abs = s.outside.join("secret.txt");
    s.attack_all_tools(abs.to_str().unwrap(), "outside the workspace")
        .await;
    // The refusal happens before the guard: no decision was recorded for it.
    let (id, _) = s.h.call("read_file", json!({"path": "/etc/passwd"})).await;
    assert!(!s.h.has(&id, EventKind::Decision));
}

#[tokio::test]
async fn symlink_to_a_file_outside_is_refused() {
    let s = scene();
    symlink(s.outside.join("secret.txt"), s.h.ws.join("pw")).unwrap();
    symlink("/etc/passwd", s.h.ws.join("passwd")).unwrap();
    for p in ["pw", "passwd"] {
        let (id, obs) = s.h.call("read_file", json!({"path": p})).await;
        s.h.assert_refused(&id, &obs, "outside the workspace");
        let (id, obs) =
            s.h.call("write_file", json!({"path": p, "content": "pwned"}))
                .await;
        s.h.assert_refused(&id, &obs, "symbolic link");
        let (id, obs) =
            s.h.call(
                "edit_file",
                json!({"path": p, "old_string": "TOP", "new_string": "x"}),
            )
            .await;
        s.h.assert_refused(&id, &obs, "outside the workspace");
        s.outside_untouched();
        // The link itself is still a link (not replaced by a file either).
        assert!(
            s.h.ws
                .join(p)
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.contains("pwned"));
    // Search of the whole workspace skips the links and says so.
    let (_, obs) = s.h.call("search", json!({"pattern": "SECRET|root"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(!obs.content.contains(SECRET));
    assert!(
        obs.content.contains("symbolic links skipped"),
        "{}",
        obs.content
    );
}

#[tokio::test]
async fn symlink_directories_out_are_refused() {
    let s = scene();
    symlink("/", s.h.ws.join("root")).unwrap();
    symlink(&s.outside, s.h.ws.join("out")).unwrap();
    symlink("../outside", s.h.ws.join("rel")).unwrap();
    std::fs::create_dir(s.h.ws.join("d")).unwrap();
    symlink("../../", s.h.ws.join("d/up")).unwrap();
    s.attack_all_tools("out/secret.txt", "").await;
    s.attack_all_tools("rel/secret.txt", "").await;
    s.attack_all_tools("d/up/outside/secret.txt", "").await;
    for (p, tool) in [
        ("root", "list_dir"),
        ("out", "list_dir"),
        ("rel", "search"),
        ("d/up", "list_dir"),
    ] {
        let args = if tool == "search" {
            json!({"pattern": "SECRET", "path": p})
        } else {
            json!({"path": p})
        };
        let (id, obs) = s.h.call(tool, args).await;
        s.h.assert_refused(&id, &obs, "outside the workspace");
    }
    let (id, obs) =
        s.h.call("read_file", json!({"path": "root/etc/passwd"}))
            .await;
    s.h.assert_refused(&id, &obs, "outside the workspace");
    let (id, obs) =
        s.h.call(
            "write_file",
            json!({"path": "root/tmp/cordon-pwned", "content": "x"}),
        )
        .await;
    s.h.assert_refused(&id, &obs, "symbolic link");
    assert!(!std::path::Path::new("/tmp/cordon-pwned").exists());
    s.outside_untouched();
}

#[tokio::test]
async fn symlink_swapped_in_for_a_directory_is_refused() {
    let s = scene();
    std::fs::create_dir(s.h.ws.join("sub")).unwrap();
    let (_, obs) =
        s.h.call("write_file", json!({"path": "sub/a.txt", "content": "ok"}))
            .await;
    assert!(!obs.is_error, "{}", obs.content);
    // What a sandboxed `exec` could do between two tool calls.
    std::fs::remove_dir_all(s.h.ws.join("sub")).unwrap();
    symlink(&s.outside, s.h.ws.join("sub")).unwrap();
    s.attack_all_tools("sub/secret.txt", "").await;
    let (id, obs) =
        s.h.call(
            "write_file",
            json!({"path": "sub/a.txt", "content": "pwned"}),
        )
        .await;
    s.h.assert_refused(&id, &obs, "symbolic link");
    let (id, obs) =
        s.h.call(
            "write_file",
            json!({"path": "sub/deeper/b.txt", "content": "pwned"}),
        )
        .await;
    s.h.assert_refused(&id, &obs, "symbolic link");
    s.outside_untouched();
}

#[tokio::test]
async fn symlinks_inside_the_workspace_still_read() {
    let s = scene();
    std::fs::write(s.h.ws.join("real.txt"), "inside").unwrap();
    symlink("real.txt", s.h.ws.join("alias.txt")).unwrap();
    let (_, obs) = s.h.call("read_file", json!({"path": "alias.txt"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(obs.content, "inside");
    // But writing through it is refused, and the real file is untouched.
    let (id, obs) =
        s.h.call("write_file", json!({"path": "alias.txt", "content": "x"}))
            .await;
    s.h.assert_refused(&id, &obs, "symbolic link");
    assert_eq!(
        std::fs::read_to_string(s.h.ws.join("real.txt")).unwrap(),
        "inside"
    );
}

#[tokio::test]
async fn fifo_and_devices_are_not_opened() {
    let s = scene();
    let fifo = s.h.ws.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let (id, obs) = s.h.call("read_file", json!({"path": "fifo"})).await;
    s.h.assert_refused(&id, &obs, "not a regular file");
}

/// A racing attacker keeps swapping `sub` between a real directory and a symlink to the
/// outside while the tools read and write through it: no read ever returns the outside
/// secret and no write ever lands outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_symlink_swaps_never_escape() {
    let s = scene();
    let ws = s.h.ws.clone();
    let outside = s.outside.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let swapper = std::thread::spawn(move || {
        let mut swaps = 0u32;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::fs::remove_file(ws.join("sub"));
            let _ = std::fs::create_dir(ws.join("sub"));
            let _ = std::fs::write(ws.join("sub/secret.txt"), "decoy");
            let _ = std::fs::remove_file(ws.join("sub/secret.txt"));
            let _ = std::fs::remove_dir_all(ws.join("sub"));
            let _ = symlink(&outside, ws.join("sub"));
            swaps += 1;
        }
        swaps
    });
    for i in 0..300 {
        let (_, obs) =
            s.h.call("read_file", json!({"path": "sub/secret.txt"}))
                .await;
        assert!(
            !obs.content.contains(SECRET),
            "read escaped on iteration {i}"
        );
        // Whether it lands inside (the directory was real) or is refused, it never
        // lands outside.
        let path = format!("sub/w{i}.txt");
        let _ =
            s.h.call("write_file", json!({"path": path, "content": "pwned"}))
                .await;
        let (_, obs) =
            s.h.call("search", json!({"pattern": "TOP", "path": "sub"}))
                .await;
        assert!(
            !obs.content.contains(SECRET),
            "search escaped on iteration {i}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 10, "the race did not run ({swaps} swaps)");
    s.outside_untouched();
}
