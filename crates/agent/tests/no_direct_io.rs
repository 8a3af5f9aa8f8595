//! The agent crate must act on the world only through `runtime`. This test fails if its
//! sources name an API that opens files, sockets or processes, or if it depends on an
//! HTTP client directly.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::os::unix::net",
    "tokio::fs",
    "tokio::net",
    "tokio::process",
    "reqwest",
    "hyper",
    "File::open",
    "File::create",
    "Command::new",
    "TcpStream",
    "UdpSocket",
    "UnixStream",
    "libc::",
];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, hits);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in FORBIDDEN {
                    if code.contains(f) {
                        hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
}

#[test]
fn agent_sources_do_no_direct_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut hits = Vec::new();
    scan(&root.join("src"), &mut hits);
    assert!(
        hits.is_empty(),
        "agent must act only through runtime:\n{}",
        hits.join("\n")
    );
}

#[test]
fn agent_has_no_http_dependency() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest.split("[dev-dependencies]").next().unwrap();
    for dep in ["reqwest", "hyper", "ureq", "isahc", "surf"] {
        assert!(!deps.contains(dep), "agent must not depend on {dep}");
    }
}
