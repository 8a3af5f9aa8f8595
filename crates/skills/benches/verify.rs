//! Startup verification of installed skills: 50 skills of typical size (a SKILL.md and
//! two or three small scripts, 10–20 KB each) installed in a store, then each one
//! re-read and re-hashed with `Store::load`, as every start does. The baseline, measured
//! in the same run on the same files, only reads them (`std::fs::read`, no hashing or
//! checks). Target: verifying all 50 in ≤ 20 ms (release build).
//!
//! Run: `cargo bench -p cordon-skills --bench verify`. Prints medians; asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use cordon_skills::{Store, Tree, TreeFile};

const SKILLS: usize = 50;
const ROUNDS: usize = 41;

/// Deterministic text of `len` bytes that looks like prose or code (not all zeros).
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "fetch", "weather", "city", "the ", "json", "curl -s", "def ", "return", "if ", "echo",
        "\n", "    ",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(WORDS[(x >> 59) as usize % WORDS.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

fn skill(i: usize) -> Tree {
    let seed = i as u64 * 7919;
    let mut md =
        format!("---\nname: skill-{i}\ndescription: Benchmark skill {i}.\n---\n\n").into_bytes();
    md.extend(text(seed, 3_000 + (i * 97) % 3_000));
    let mut files = vec![
        TreeFile {
            path: "SKILL.md".into(),
            executable: false,
            contents: md,
        },
        TreeFile {
            path: "scripts/run.sh".into(),
            executable: true,
            contents: text(seed + 1, 2_000 + (i * 31) % 2_000),
        },
        TreeFile {
            path: "scripts/client.py".into(),
            executable: false,
            contents: text(seed + 2, 4_000 + (i * 53) % 4_000),
        },
    ];
    if i.is_multiple_of(2) {
        files.push(TreeFile {
            path: "references/api.md".into(),
            executable: false,
            contents: text(seed + 3, 3_000 + (i * 11) % 4_000),
        });
    }
    Tree::from_files(files).expect("benchmark skill")
}

/// Read every file under `dir`, nothing else.
fn read_all(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            n += read_all(&entry.path());
        } else {
            n += std::fs::read(entry.path()).expect("read").len();
        }
    }
    n
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let state = tempfile::tempdir().expect("tempdir");
    let store = Store::new(state.path());
    let trees: Vec<Tree> = (0..SKILLS).map(skill).collect();
    let bytes: u64 = trees.iter().map(Tree::size).sum();
    let files: usize = trees.iter().map(|t| t.files().len()).sum();
    let hashes: Vec<String> = trees
        .iter()
        .map(|t| {
            store.install(t).expect("install");
            t.sha256()
        })
        .collect();

    let (mut verify, mut baseline) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + 3 {
        let t = Instant::now();
        for h in &hashes {
            std::hint::black_box(store.load(h).expect("verified"));
        }
        let v = t.elapsed();
        let t = Instant::now();
        for h in &hashes {
            std::hint::black_box(read_all(&store.path(h)));
        }
        let b = t.elapsed();
        // The first rounds warm the page cache and are not counted.
        if round >= 3 {
            verify.push(v);
            baseline.push(b);
        }
    }
    let (v, b) = (median(verify), median(baseline));
    println!(
        "verify {SKILLS} installed skills ({files} files, {} KB): median {:.2} ms \
         (target ≤ 20 ms); baseline read-only {:.2} ms; ratio {:.2}x; {ROUNDS} rounds",
        bytes / 1024,
        v.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        v.as_secs_f64() / b.as_secs_f64()
    );
}
