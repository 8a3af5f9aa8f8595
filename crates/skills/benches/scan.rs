//! Scanning a ~1 MB skill tree (Markdown, Python and shell), against two baselines
//! measured in the same run: one Aho-Corasick pass (a few literals) over the same
//! bytes, and the tree's canonical SHA-256. Target: the scan's median ≤ 50 ms. A last
//! row scans the trojaned test fixture repeated to ~1 MB (a trigger on nearly every
//! line, thousands of findings): the worst case of realistic input.
//!
//! `cargo bench -p cordon-skills --bench scan`

use std::hint::black_box;
use std::time::{Duration, Instant};

use aho_corasick::AhoCorasick;
use cordon_skills::scan::scan;
use cordon_skills::{Capabilities, Tree, TreeFile};

const RUNS: usize = 31;
const TARGET: usize = 1024 * 1024;

const MD: &str = r#"## Section {n}

Use this part of the skill when the user asks about item {n}. Read the input, check
the units, and answer in one short paragraph. See https://docs.example-tools.io/{n}
for the full reference. Keep tables small; prefer `jq` for JSON.

```bash
python3 {baseDir}/scripts/tool_{n}.py --city "Berlin" --units metric
curl -s "https://api.open-meteo.com/v1/forecast?latitude=52.5&longitude=13.4"
```

- Step one: validate the arguments.
- Step two: call the helper and format its output as a table.
"#;

const PY: &str = r#"import json
import os
import sys

import requests

API = "https://api.open-meteo.com/v1/forecast"


def fetch_{n}(lat: float, lon: float) -> dict:
    units = os.environ.get("WEATHER_UNITS", "metric")
    r = requests.get(API, params={"latitude": lat, "longitude": lon, "units": units}, timeout=10)
    r.raise_for_status()
    return r.json()


def main_{n}(argv: list[str]) -> int:
    data = fetch_{n}(52.5, 13.4)
    for key, value in sorted(data.get("current_weather", {}).items()):
        print(f"{key}: {value}")
    return 0
"#;

const SH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
# helper {n}: summarise a JSON file
file="${1:?usage: summarise FILE}"
if [ ! -f "$file" ]; then
  echo "no such file: $file" >&2
  exit 1
fi
jq -r '.items[] | "\(.name)\t\(.size)"' "$file" | sort -k2 -n | tail -n 20
curl -s "https://api.open-meteo.com/v1/forecast?x={n}" | jq .current_weather
"#;

/// The trojaned fixture skill's files, repeated to ~1 MB: nearly every line holds a
/// trigger and most confirm, the scanner's worst case short of crafted input.
fn dense_tree() -> Tree {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malicious-weather");
    let parts: Vec<(&str, String)> = ["SKILL.md", "scripts/forecast.py", "scripts/sync.sh"]
        .iter()
        .map(|p| (*p, std::fs::read_to_string(root.join(p)).expect("fixture")))
        .collect();
    let mut files = vec![TreeFile {
        path: "SKILL.md".into(),
        executable: false,
        contents: parts[0].1.clone().into_bytes(),
    }];
    let mut total = 0;
    let mut n = 0;
    while total < TARGET {
        for (path, text) in &parts {
            let mut body = String::new();
            while body.len() < 16 * 1024 {
                body.push_str(text);
            }
            total += body.len();
            n += 1;
            files.push(TreeFile {
                path: format!("copy_{n}/{path}"),
                executable: false,
                contents: body.into_bytes(),
            });
        }
    }
    Tree::from_files(files).expect("dense bench tree")
}

fn build_tree() -> Tree {
    let mut files = vec![TreeFile {
        path: "SKILL.md".into(),
        executable: false,
        contents: b"---\nname: big\ndescription: A large benign skill.\n---\n\n# Big\n".to_vec(),
    }];
    let mut total = 0;
    let mut n = 0;
    while total < TARGET {
        for (dir, ext, tpl) in [("docs", "md", MD), ("scripts", "py", PY), ("bin", "sh", SH)] {
            let mut text = String::new();
            // ~16 KB per file.
            while text.len() < 16 * 1024 {
                text.push_str(&tpl.replace("{n}", &n.to_string()));
                n += 1;
            }
            total += text.len();
            files.push(TreeFile {
                path: format!("{dir}/part_{n}.{ext}"),
                executable: ext == "sh",
                contents: text.into_bytes(),
            });
        }
    }
    Tree::from_files(files).expect("bench tree")
}

fn median(mut f: impl FnMut()) -> Duration {
    f(); // warm-up (compiles the scanner's automata once)
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let tree = build_tree();
    let declared = Capabilities {
        egress: vec!["api.open-meteo.com".into()],
        bins: vec!["python3".into(), "curl".into(), "jq".into(), "bash".into()],
        ..Capabilities::default()
    };
    let report = scan(&tree, &declared);
    let files = tree.files().len();
    let bytes = tree.size();

    let scan_t = median(|| {
        black_box(scan(black_box(&tree), &declared));
    });
    let ac = AhoCorasick::new(["curl", "eval", "http", "password"]).expect("automaton");
    let ac_t = median(|| {
        let mut hits = 0usize;
        for f in tree.files() {
            hits += ac.find_iter(black_box(&f.contents)).count();
        }
        black_box(hits);
    });
    let sha_t = median(|| {
        black_box(black_box(&tree).sha256());
    });
    let dense = dense_tree();
    let dense_report = scan(&dense, &declared);
    let dense_t = median(|| {
        black_box(scan(black_box(&dense), &declared));
    });

    println!(
        "scan of a {:.2} MB tree ({files} files, {} findings, verdict {}), median of {RUNS}:",
        bytes as f64 / 1048576.0,
        report.findings.len(),
        report.verdict()
    );
    println!("  {:<34} {:>9} {:>12}", "", "median", "vs scan");
    println!(
        "  {:<34} {:>7.2}ms {:>11}",
        "scan (target <= 50 ms)",
        ms(scan_t),
        "1.00x"
    );
    println!(
        "  {:<34} {:>7.2}ms {:>10.2}x",
        "baseline: aho-corasick, 4 literals",
        ms(ac_t),
        ms(scan_t) / ms(ac_t)
    );
    println!(
        "  {:<34} {:>7.2}ms {:>10.2}x",
        "baseline: sha256 of the tree",
        ms(sha_t),
        ms(scan_t) / ms(sha_t)
    );
    println!(
        "  {:<34} {:>7.2}ms {:>10.2}x   ({:.2} MB, {} findings)",
        "scan, attack fixture repeated",
        ms(dense_t),
        ms(dense_t) / ms(scan_t),
        dense.size() as f64 / 1048576.0,
        dense_report.findings.len()
    );
}
