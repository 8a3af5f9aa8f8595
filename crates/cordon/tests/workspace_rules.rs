//! Rules of the workspace that must not rot as crates are added: `unsafe` only in the
//! sandbox crate, dependency versions in one place, and the agent crate's no-I/O rule
//! enforced by clippy.

use std::path::{Path, PathBuf};

use toml::Table;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cordon is two levels below the workspace root")
        .to_path_buf()
}

fn manifest(path: &Path) -> Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every member crate's manifest, by crate directory name.
fn members() -> Vec<(String, Table)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("Cargo.toml");
        if file.is_file() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, manifest(&file)));
        }
    }
    assert!(out.len() >= 10, "found only {} crates", out.len());
    out
}

#[test]
fn unsafe_code_is_forbidden_outside_the_sandbox_crate() {
    let ws = manifest(&root().join("Cargo.toml"));
    assert_eq!(
        ws["workspace"]["lints"]["rust"]["unsafe_code"].as_str(),
        Some("forbid"),
        "[workspace.lints.rust] unsafe_code must be \"forbid\""
    );
    for (name, m) in members() {
        let inherits = m
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(|w| w.as_bool())
            == Some(true);
        if name == "sandbox" {
            assert!(!inherits, "the sandbox crate has its own lints");
            assert_eq!(
                m["lints"]["clippy"]["undocumented_unsafe_blocks"].as_str(),
                Some("deny"),
                "every unsafe block in the sandbox crate needs a SAFETY comment"
            );
        } else {
            assert!(inherits, "crates/{name}: add `[lints] workspace = true`");
        }
    }
}

#[test]
fn dependency_versions_live_in_the_workspace() {
    for (name, m) in members() {
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = m.get(table).and_then(|t| t.as_table()) else {
                continue;
            };
            for (dep, spec) in deps {
                let shared = spec
                    .as_table()
                    .and_then(|t| t.get("workspace"))
                    .and_then(|w| w.as_bool())
                    == Some(true);
                assert!(
                    shared,
                    "crates/{name} [{table}] {dep}: declare it in the root \
                     [workspace.dependencies] and write `{dep}.workspace = true`"
                );
            }
        }
    }
}

/// The agent crate may not open files, sockets or processes; clippy (run with
/// `-D warnings` in CI) refuses the APIs that do, so the list must cover them.
#[test]
fn agent_io_ban_is_configured_for_clippy() {
    let dir = root().join("crates/agent");
    let cfg = manifest(&dir.join("clippy.toml"));
    let listed = |key: &str| -> Vec<String> {
        cfg[key]
            .as_array()
            .unwrap_or_else(|| panic!("clippy.toml lacks {key}"))
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    };
    let types = listed("disallowed-types");
    for t in [
        "std::fs::File",
        "std::net::TcpStream",
        "std::net::UdpSocket",
        "std::os::unix::net::UnixStream",
        "std::process::Command",
        "tokio::fs::File",
        "tokio::net::TcpStream",
        "tokio::process::Command",
        // Records go through audit::AgentLog (the loop's own kinds only).
        "cordon_audit::Log",
    ] {
        assert!(
            types.iter().any(|x| x == t),
            "agent clippy.toml must ban {t}"
        );
    }
    let methods = listed("disallowed-methods");
    for f in [
        "std::fs::read",
        "std::fs::read_to_string",
        "std::fs::write",
        "std::fs::read_dir",
        "tokio::fs::read",
        "tokio::net::lookup_host",
    ] {
        assert!(
            methods.iter().any(|x| x == f),
            "agent clippy.toml must ban {f}"
        );
    }
    // A dependency that does I/O by itself would go around clippy: the crate may depend
    // only on these.
    let m = manifest(&dir.join("Cargo.toml"));
    let allowed = [
        "async-trait",
        "audit",
        "bytes",
        "config",
        "futures",
        "runtime",
        "serde",
        "serde_json",
        "store",
        "thiserror",
        "tokio",
        "tracing",
    ];
    for dep in m["dependencies"].as_table().unwrap().keys() {
        assert!(
            allowed.contains(&dep.as_str()),
            "crates/agent depends on `{dep}`: the agent acts only through runtime; if \
             `{dep}` does no I/O of its own, add it to this list"
        );
    }
}

/// The README is read on a fresh clone: every file it links to or names by a relative
/// path is in the repository.
#[test]
fn readme_links_only_to_files_in_the_repository() {
    let root = root();
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        !text.contains("../"),
        "README.md points outside the repository (`../`)"
    );
    let mut checked = 0;
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or_default();
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with('#')
        {
            continue;
        }
        let file = target.split('#').next().unwrap_or_default();
        assert!(
            root.join(file).exists(),
            "README.md links to `{target}`, which is not in the repository"
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "README.md links to no file: the parser is wrong"
    );
}

/// Audit records are written only as typed events: the untyped `Log::append/record`
/// exist behind the audit crate's `untyped` feature, for its own tests of the chain.
#[test]
fn only_the_audit_crates_own_tests_write_untyped_records() {
    for (name, m) in members() {
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(dep) = m.get(table).and_then(|t| t.get("audit")) else {
                continue;
            };
            let untyped = dep
                .get("features")
                .and_then(|f| f.as_array())
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("untyped")));
            assert!(
                !untyped || (name == "audit" && table == "dev-dependencies"),
                "crates/{name} [{table}] enables audit's `untyped` feature: write an audit::Event"
            );
        }
    }
}
