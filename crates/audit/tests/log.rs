//! The audit log on real files: chain, durability layout, concurrency, and attacks on
//! the file that `verify` must catch.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use cordon_audit::{AuditError, EventKind, Filter, Log, read, read_filtered, verify};
use serde_json::json;

fn build(dir: &Path, n: u64) {
    let log = Log::open(dir).unwrap();
    for i in 0..n {
        let kind = EventKind::ALL[(i as usize) % EventKind::ALL.len()];
        let session = if i % 3 == 0 { None } else { Some("s1") };
        let data = json!({"i": i, "text": format!("event {i} ü \"q\"\n"), "f": 0.1 * i as f64});
        log.append(kind, session, data).unwrap();
    }
    log.sync().unwrap();
}

/// Byte offsets of the start of each line, plus the file length.
fn line_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            starts.push(i + 1);
        }
    }
    starts
}

/// 1-based line containing byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// xorshift64*: a fixed-seed PRNG, enough to pick damage deterministically.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Write `damaged` over a copy of the pristine log and assert verify fails at or before
/// `first_damaged_line`.
fn assert_detected(pristine: &Path, damaged: &[u8], first_damaged_line: usize, what: &str) {
    let work = tempfile::tempdir().unwrap();
    for f in ["audit.jsonl", "head"] {
        std::fs::copy(pristine.join(f), work.path().join(f)).unwrap();
    }
    std::fs::write(work.path().join("audit.jsonl"), damaged).unwrap();
    match verify(work.path()) {
        Ok(r) => panic!(
            "{what}: not detected (verify said {} records ok)",
            r.records
        ),
        Err(e) => {
            assert!(e.line >= 1, "{what}: {e}");
            assert!(
                e.line <= first_damaged_line,
                "{what}: reported line {} after damage at {first_damaged_line}: {e}",
                e.line
            );
        }
    }
    // And a writer refuses to continue that log.
    assert!(
        matches!(Log::open(work.path()), Err(AuditError::Broken(_))),
        "{what}: open accepted it"
    );
}

#[test]
fn pristine_log_verifies_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 50);
    let report = verify(&audit).unwrap();
    assert_eq!(report.records, 50);
    let records = read(&audit).unwrap();
    assert_eq!(records.len(), 50);
    assert_eq!(records[0].prev, cordon_audit::GENESIS_HASH);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.data["i"], json!(i));
        if i > 0 {
            assert_eq!(r.prev, records[i - 1].hash);
        }
        assert!(
            time::OffsetDateTime::parse(&r.ts, &time::format_description::well_known::Rfc3339)
                .is_ok()
        );
        assert!(r.ts.ends_with('Z'), "{}", r.ts);
    }
    assert_eq!(report.last_hash, records[49].hash);
    let only = read_filtered(
        &audit,
        &Filter {
            session: Some("s1".into()),
            kinds: vec![EventKind::UserMessage],
        },
    )
    .unwrap();
    assert!(!only.is_empty());
    assert!(
        only.iter()
            .all(|r| r.kind == EventKind::UserMessage && r.session.as_deref() == Some("s1"))
    );
}

#[test]
fn every_kind_of_damage_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 50);
    assert_eq!(
        verify(&audit).unwrap().records,
        50,
        "pristine log must verify"
    );
    let bytes = std::fs::read(audit.join("audit.jsonl")).unwrap();
    let starts = line_starts(&bytes);
    let lines = starts.len() - 1;
    assert_eq!(lines, 50);
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut cases = 0;

    // Every record: flip one byte inside it (including its newline).
    for k in 0..lines {
        let at = starts[k] + rng.below(starts[k + 1] - starts[k]);
        let mut d = bytes.clone();
        d[at] ^= 1 + rng.below(255) as u8;
        assert_detected(
            &audit,
            &d,
            line_at(&bytes, at),
            &format!("flip byte {at} of line {}", k + 1),
        );
        cases += 1;
    }
    // Every record: delete it; duplicate it; swap it with the next one.
    for k in 0..lines {
        let line = &bytes[starts[k]..starts[k + 1]];
        let mut d = bytes.clone();
        d.drain(starts[k]..starts[k + 1]);
        assert_detected(&audit, &d, k + 1, &format!("delete line {}", k + 1));
        let mut d = bytes.clone();
        d.splice(starts[k + 1]..starts[k + 1], line.iter().copied());
        assert_detected(&audit, &d, k + 2, &format!("duplicate line {}", k + 1));
        if k + 1 < lines {
            let next = &bytes[starts[k + 1]..starts[k + 2]];
            let mut d = bytes[..starts[k]].to_vec();
            d.extend_from_slice(next);
            d.extend_from_slice(line);
            d.extend_from_slice(&bytes[starts[k + 2]..]);
            assert_detected(
                &audit,
                &d,
                k + 1,
                &format!("swap lines {} and {}", k + 1, k + 2),
            );
        }
        cases += 3;
    }
    // Random byte ranges: delete, overwrite with garbage, insert garbage.
    for round in 0..300 {
        let a = rng.below(bytes.len());
        let len = 1 + rng.below(200.min(bytes.len() - a));
        let mut d = bytes.clone();
        match round % 3 {
            0 => {
                d.drain(a..a + len);
            }
            1 => {
                for b in &mut d[a..a + len] {
                    *b ^= 1 + (rng.next() % 255) as u8;
                }
            }
            _ => {
                let junk: Vec<u8> = (0..len).map(|_| b' ' + (rng.next() % 90) as u8).collect();
                d.splice(a..a, junk);
            }
        }
        assert_detected(
            &audit,
            &d,
            line_at(&bytes, a),
            &format!("round {round}: range {a}+{len}"),
        );
        cases += 1;
    }
    // Truncation: cut the tail at random points, including whole-line boundaries.
    for _ in 0..30 {
        let cut = rng.below(bytes.len());
        assert_detected(
            &audit,
            &bytes[..cut],
            line_at(&bytes, cut),
            &format!("truncate at {cut}"),
        );
        cases += 1;
    }
    let cut = starts[40];
    assert_detected(&audit, &bytes[..cut], 41, "drop the last 10 records");
    assert_detected(&audit, b"", 1, "empty the file");
    // A forged record appended with a valid chain is past the head anchor.
    let mut forged = bytes.clone();
    forged.extend_from_slice(&bytes[starts[49]..]);
    assert_detected(&audit, &forged, 51, "append a copy of the last record");
    assert!(cases > 500);
}

#[test]
fn forged_continuation_with_valid_hashes_is_caught_by_head() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 5);
    let records = read(&audit).unwrap();
    let last = records.last().unwrap();
    let forged = cordon_audit::Record::new(
        6,
        last.ts.clone(),
        EventKind::Approval,
        None,
        json!({"approved": true}),
        last.hash.clone(),
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit.join("audit.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", forged.line()).as_bytes()).unwrap();
    let e = verify(&audit).unwrap_err();
    assert_eq!(e.line, 6);
    assert_eq!(e.seq, Some(6));
    assert!(e.to_string().contains("line 6 (record #6)"), "{e}");
}

#[test]
fn awkward_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Log::open(&audit).unwrap();
    for v in [
        json!(0.1 + 0.2),
        json!(1e300),
        json!(-0.0),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("\u{0}\u{1f}\u{2028}\"\\/é🎉"),
        json!({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": null, "é": 1, "E": 2}),
    ] {
        log.append(EventKind::ToolResult, Some("\n"), v).unwrap();
    }
    log.sync().unwrap();
    assert_eq!(verify(&audit).unwrap().records, 7);
}

#[test]
fn forgery_while_the_writer_runs_is_caught_at_its_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Log::open(&audit).unwrap();
    log.record(EventKind::SessionStart, Some("s"), json!({}))
        .unwrap();
    let first = read(&audit).unwrap().remove(0);
    let forged = cordon_audit::Record::new(
        2,
        first.ts.clone(),
        EventKind::Approval,
        Some("s".into()),
        json!({"approved": true}),
        first.hash.clone(),
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit.join("audit.jsonl"))
        .unwrap();
    // A forger who cannot compute a matching hash (edits after hashing) is caught by the
    // writer's next sync, which refuses to continue a chain it cannot verify. (One who
    // writes a correctly chained record is indistinguishable from another writer
    // process: that needs signed checkpoints or an off-host copy, see docs/security.md.)
    let tampered = forged
        .line()
        .replace("\"approved\":true", "\"approved\":false");
    std::io::Write::write_all(&mut f, format!("{tampered}\n").as_bytes()).unwrap();
    let err = log
        .record(EventKind::UserMessage, Some("s"), json!({"text": "hi"}))
        .unwrap_err();
    assert!(matches!(err, AuditError::Broken(_)), "{err}");
    let e = verify(&audit).unwrap_err();
    assert_eq!(e.line, 2, "the forged line itself: {e}");
    drop(log);
    let e = verify(&audit).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(matches!(Log::open(&audit), Err(AuditError::Broken(_))));
}

#[test]
fn missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 3);
    std::fs::remove_file(audit.join("head")).unwrap();
    assert!(verify(&audit).unwrap_err().reason.contains("head"));
    assert!(matches!(Log::open(&audit), Err(AuditError::Broken(_))));

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 3);
    std::fs::remove_file(audit.join("audit.jsonl")).unwrap();
    let e = verify(&audit).unwrap_err();
    assert!(e.reason.contains("missing"), "{e}");
    assert!(
        matches!(Log::open(&audit), Err(AuditError::Broken(_))),
        "open must not start over"
    );
    assert!(!audit.join("audit.jsonl").exists());

    // An emptied log with an unreadable head is damage, not a fresh log: open must not
    // write a new genesis anchor over the evidence.
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 3);
    std::fs::write(audit.join("audit.jsonl"), b"").unwrap();
    std::fs::write(audit.join("head"), b"garbage").unwrap();
    assert!(
        matches!(Log::open(&audit), Err(AuditError::Broken(_))),
        "open must not start over"
    );
    assert_eq!(std::fs::read(audit.join("head")).unwrap(), b"garbage");
}

#[test]
fn concurrent_threads_keep_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Arc::new(Log::open(&audit).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let data = json!({"thread": t, "i": i});
                    if i % 10 == 0 {
                        log.record(EventKind::ToolResult, Some("s"), data).unwrap();
                    } else {
                        log.append(EventKind::ModelOutput, None, data).unwrap();
                    }
                }
                log.sync().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seqs: Vec<u64> = read(&audit).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=800).collect::<Vec<_>>());
    assert_eq!(verify(&audit).unwrap().records, 800);
    // Each thread's records are in its own order.
    let records = read(&audit).unwrap();
    for t in 0..8 {
        let is: Vec<u64> = records
            .iter()
            .filter(|r| r.data["thread"] == json!(t))
            .map(|r| r.data["i"].as_u64().unwrap())
            .collect();
        assert_eq!(is, (0..100).collect::<Vec<_>>());
    }
}

#[test]
fn verify_during_writes_sees_no_false_damage() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Arc::new(Log::open(&audit).unwrap());
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 0..400 {
                log.record(EventKind::Egress, Some("w"), json!({ "i": i }))
                    .unwrap();
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let report = verify(&audit).unwrap_or_else(|e| panic!("false alarm: {e}"));
        assert!(report.records >= last);
        last = report.records;
    }
    writer.join().unwrap();
    assert_eq!(verify(&audit).unwrap().records, 400);
}

#[test]
fn sync_makes_appends_durable_and_anchored() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Log::open(&audit).unwrap();
    log.append(EventKind::SessionStart, Some("a"), json!({}))
        .unwrap();
    // Not yet synced: the file and the anchor still agree on an empty log.
    assert_eq!(verify(&audit).unwrap().records, 0);
    log.sync().unwrap();
    assert_eq!(verify(&audit).unwrap().records, 1);
    log.record(EventKind::UserMessage, Some("a"), json!({"text": "hi"}))
        .unwrap();
    let head = std::fs::read_to_string(audit.join("head")).unwrap();
    let report = verify(&audit).unwrap();
    assert_eq!(report.records, 2);
    assert!(head.contains(&report.last_hash), "{head}");
    let leftovers: Vec<_> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn reopen_and_append_keeps_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 10);
    {
        let log = Log::open(&audit).unwrap();
        log.record(EventKind::Alert, None, json!({"n": 11}))
            .unwrap();
        assert_eq!(read(&audit).unwrap().last().unwrap().seq, 11);
        // Dropping without sync still anchors buffered records.
        log.append(EventKind::Alert, None, json!({"n": 12}))
            .unwrap();
    }
    let log = Log::open(&audit).unwrap();
    log.record(EventKind::Error, None, json!({"n": 13}))
        .unwrap();
    drop(log);
    let records = read(&audit).unwrap();
    assert_eq!(records.len(), 13);
    assert_eq!(records[10].prev, records[9].hash);
    assert_eq!(records[12].data["n"], json!(13));
}

#[test]
fn several_writers_share_one_chain() {
    // Separate opens are separate open file descriptions: exactly what two processes
    // have. Their records interleave but the chain stays intact.
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let a = Arc::new(Log::open(&audit).unwrap());
    let b = Arc::new(Log::open(&audit).unwrap());
    let mut threads = Vec::new();
    for (name, log) in [("a", a.clone()), ("b", b.clone()), ("a2", a), ("b2", b)] {
        threads.push(std::thread::spawn(move || {
            for n in 0..40 {
                log.append(EventKind::ToolResult, Some(name), json!({"n": n}))
                    .unwrap();
                if n % 3 == 0 {
                    log.sync().unwrap();
                }
            }
            log.sync().unwrap();
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let report = verify(&audit).unwrap();
    assert_eq!(report.records, 160);
    let records = read(&audit).unwrap();
    for name in ["a", "b", "a2", "b2"] {
        let ns: Vec<u64> = records
            .iter()
            .filter(|r| r.session.as_deref() == Some(name))
            .map(|r| r.data["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..40).collect::<Vec<_>>(), "{name}'s records in order");
    }
}

/// Run by `a_second_process_appends_to_the_same_log` in a child process.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("CORDON_AUDIT_CHILD_DIR") else {
        return;
    };
    let log = Log::open(Path::new(&dir)).unwrap();
    for n in 0..30 {
        log.record(EventKind::UserMessage, Some("child"), json!({"n": n}))
            .unwrap();
    }
}

#[test]
fn a_second_process_appends_to_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Log::open(&audit).unwrap();
    log.record(EventKind::SessionStart, Some("parent"), json!({}))
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture"])
        .env("CORDON_AUDIT_CHILD_DIR", &audit)
        .spawn()
        .unwrap();
    for n in 0..30 {
        log.record(EventKind::UserMessage, Some("parent"), json!({"n": n}))
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    log.record(EventKind::UserMessage, Some("parent"), json!({"n": 30}))
        .unwrap();
    drop(log);
    let records = read(&audit).unwrap();
    assert_eq!(verify(&audit).unwrap().records, 62);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.session.as_deref() == Some("child"))
            .count(),
        30
    );
}

#[test]
fn a_writer_waits_while_another_process_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    drop(Log::open(&audit).unwrap());
    let Ok(mut child) = std::process::Command::new("flock")
        .arg("-x")
        .arg(audit.join("audit.jsonl"))
        .args(["-c", "sleep 1"])
        .spawn()
    else {
        eprintln!("skipped: flock(1) is not installed");
        return;
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let log = Log::open(&audit).unwrap();
    log.record(EventKind::UserMessage, None, json!({})).unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "waited for the lock"
    );
    child.wait().unwrap();
    drop(log);
    assert_eq!(verify(&audit).unwrap().records, 1);
}

#[test]
fn large_appends_sync_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Log::open(&audit).unwrap();
    let big = "x".repeat(4096);
    for _ in 0..100 {
        log.append(EventKind::ModelOutput, None, json!({ "text": big }))
            .unwrap();
    }
    // Past the buffer bound the records were made durable and anchored without `sync`,
    // and whatever is in the file verifies.
    let report = verify(&audit).unwrap();
    assert!(report.records >= 60, "{}", report.records);
    log.sync().unwrap();
    assert_eq!(verify(&audit).unwrap().records, 100);
}

#[test]
fn symlinked_log_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    std::fs::create_dir(&audit).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").unwrap();
    std::os::unix::fs::symlink(&elsewhere, audit.join("audit.jsonl")).unwrap();
    assert!(matches!(Log::open(&audit), Err(AuditError::Broken(_))));
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"");
}

#[test]
fn modes_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("state/audit");
    let log = Log::open(&audit).unwrap();
    log.record(EventKind::ConfigLoaded, None, json!({"path": "/x"}))
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&audit), 0o700);
    assert_eq!(mode(&audit.join("audit.jsonl")), 0o600);
    assert_eq!(mode(&audit.join("head")), 0o600);
}

/// A writer killed after writing records but before anchoring them (Ctrl-C during the
/// fsync) must not make the log unusable: the complete records are adopted, a torn
/// partial record is dropped, and the repair itself is recorded as an alert.
#[test]
fn an_interrupted_write_is_recovered_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 4);
    let old_head = std::fs::read(audit.join("head")).unwrap();
    {
        let log = Log::open(&audit).unwrap();
        log.record(
            EventKind::UserMessage,
            Some("s"),
            json!({"text": "written"}),
        )
        .unwrap();
        log.record(EventKind::ModelOutput, Some("s"), json!({"text": "also"}))
            .unwrap();
    }
    // The anchor update of those two records never happened, and a third was torn.
    std::fs::write(audit.join("head"), &old_head).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit.join("audit.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":7,\"ts\":\"2026-").unwrap();
    drop(f);
    assert!(
        verify(&audit).is_err(),
        "as it stands the log does not verify"
    );

    let log = Log::open(&audit).expect("recovered");
    drop(log);
    let report = verify(&audit).expect("verifies after recovery");
    let records = read(&audit).unwrap();
    assert_eq!(report.records, 7, "4 + 2 adopted + the alert");
    let alert = records.last().unwrap();
    assert_eq!(alert.kind, EventKind::Alert);
    assert_eq!(alert.data["adopted_records"], 2);
    assert_eq!(alert.data["dropped_bytes"], 20);
    assert_eq!(records[4].data["text"], "written");
}

/// Recovery never papers over damage before the anchor or a bad record after it.
#[test]
fn recovery_refuses_real_damage() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 4);
    let old_head = std::fs::read(audit.join("head")).unwrap();
    {
        let log = Log::open(&audit).unwrap();
        log.record(
            EventKind::UserMessage,
            Some("s"),
            json!({"text": "written"}),
        )
        .unwrap();
    }
    std::fs::write(audit.join("head"), &old_head).unwrap();
    let path = audit.join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"written\"", "\"WRITTEN\"")).unwrap();
    assert!(matches!(Log::open(&audit), Err(AuditError::Broken(_))));
}

#[test]
fn a_blank_line_slipped_in_while_the_writer_runs_is_caught_at_its_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = Log::open(&audit).unwrap();
    log.record(EventKind::SessionStart, Some("s"), json!({}))
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit.join("audit.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"\n").unwrap();
    let err = log
        .record(EventKind::UserMessage, Some("s"), json!({"text": "hi"}))
        .unwrap_err();
    assert!(matches!(err, AuditError::Broken(_)), "{err}");
}

#[test]
fn a_log_opened_while_another_process_writes_continues_the_chain() {
    // `cordon approvals approve` opens the log while `cordon run` keeps recording: a
    // handle opened between another writer's records must not count those records as
    // its own tail (it did: the length was read after the lock was released, and the
    // next record reused a sequence number).
    let dir = tempfile::tempdir().unwrap();
    Log::open(dir.path()).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let dir = dir.path().to_path_buf();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let log = Log::open(&dir).unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                log.record(EventKind::ToolResult, Some("run"), json!({ "n": n }))
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    for i in 0..200 {
        let log = Log::open(dir.path()).unwrap();
        log.record(EventKind::Approval, Some("cli"), json!({ "i": i }))
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.records, 200 + written);
}

/// The checkpoint in `head`, as `(seq, offset)`.
fn checkpoint(audit: &Path) -> Option<(u64, u64)> {
    let head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(audit.join("head")).unwrap()).unwrap();
    let c = head.get("checkpoint")?;
    Some((c["seq"].as_u64().unwrap(), c["offset"].as_u64().unwrap()))
}

/// A log of 25 records whose head names record 20 as checkpoint: 20 written and then
/// verified by an open, 5 written after it. Returns the file's line starts.
fn build_checkpointed(audit: &Path) -> Vec<usize> {
    build(audit, 20);
    // The first open found an empty log: nothing verified, no checkpoint.
    assert_eq!(checkpoint(audit), None);
    let log = Log::open(audit).unwrap();
    for i in 20..25 {
        log.append(EventKind::ToolResult, Some("s1"), json!({"i": i}))
            .unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let bytes = std::fs::read(audit.join("audit.jsonl")).unwrap();
    let starts = line_starts(&bytes);
    assert_eq!(checkpoint(audit), Some((20, starts[19] as u64)));
    starts
}

/// `bytes` with the first `from` inside line `line` (1-based) replaced by `to`, which
/// has the same length: every byte offset of the file stays where it was.
fn edit_in_place(bytes: &[u8], starts: &[usize], line: usize, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let text = std::str::from_utf8(&bytes[starts[line - 1]..starts[line]]).unwrap();
    let at = starts[line - 1] + text.find(from).expect("text to edit");
    let mut d = bytes.to_vec();
    d[at..at + from.len()].copy_from_slice(to.as_bytes());
    d
}

/// A writer's open verifies the head's checkpoint record and what follows it, not the
/// whole chain: the cost of an open is what was written since the last one. Damage there
/// stops the open; damage before it is caught by `verify` (`cordon log verify`), and at
/// open too as soon as it moves the checkpoint's record.
#[test]
fn open_verifies_from_the_checkpoint_and_verify_checks_everything() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let starts = build_checkpointed(&audit);
    let bytes = std::fs::read(audit.join("audit.jsonl")).unwrap();
    let on_copy = |damaged: &[u8]| {
        let work = tempfile::tempdir().unwrap();
        for f in ["audit.jsonl", "head"] {
            std::fs::copy(audit.join(f), work.path().join(f)).unwrap();
        }
        std::fs::write(work.path().join("audit.jsonl"), damaged).unwrap();
        work
    };

    // Before the checkpoint, edited in place: the open does not re-read it (that is
    // the point of the checkpoint), the full verify catches it at its line.
    let early = on_copy(&edit_in_place(&bytes, &starts, 5, "event 4", "event X"));
    assert!(Log::open(early.path()).is_ok());
    let e = verify(early.path()).unwrap_err();
    assert_eq!((e.line, e.seq), (5, Some(5)), "{e}");
    assert!(e.reason.contains("edited"), "{e}");

    // Before the checkpoint, a line deleted or added: the checkpoint's record moved, so
    // the open looks at the whole chain and refuses it; verify names the first damage.
    let mut deleted = bytes.clone();
    deleted.drain(starts[2]..starts[3]);
    let mut grown = bytes.clone();
    grown.splice(starts[7]..starts[7], b"junk\n".iter().copied());
    for (damaged, line) in [(deleted, 3), (grown, 8)] {
        let work = on_copy(&damaged);
        assert!(matches!(Log::open(work.path()), Err(AuditError::Broken(_))));
        assert_eq!(verify(work.path()).unwrap_err().line, line);
    }

    // The checkpoint's record itself and every record after it: caught at open, and by
    // verify, at their line (the same checks as `every_kind_of_damage_is_detected`).
    for line in 20..=25 {
        let n = line - 1; // `data.i` of line `line`
        let d = edit_in_place(&bytes, &starts, line, &format!("\"i\":{n}"), "\"i\":99");
        assert_detected(&audit, &d, line, &format!("edit record {line}"));
        let mut d = bytes.clone();
        d.drain(starts[line - 1]..starts[line]);
        assert_detected(&audit, &d, line, &format!("delete record {line}"));
        let mut d = bytes.clone();
        let copy = bytes[starts[line - 1]..starts[line]].to_vec();
        d.splice(starts[line]..starts[line], copy);
        assert_detected(&audit, &d, line + 1, &format!("duplicate record {line}"));
    }
    assert_detected(&audit, &bytes[..starts[22]], 23, "drop the last 3 records");
    assert_detected(&audit, &bytes[..starts[19]], 20, "cut at the checkpoint");
}

/// `head` is as trusted as the records, so a forged checkpoint gets an attacker nothing:
/// one that names another record, offset or hash stops the open and fails `verify`.
#[test]
fn a_forged_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let starts = build_checkpointed(&audit);
    let records = read(&audit).unwrap();
    let head = std::fs::read_to_string(audit.join("head")).unwrap();
    let real = format!(
        "\"checkpoint\":{{\"seq\":20,\"hash\":\"{}\",\"offset\":{}}}",
        records[19].hash, starts[19]
    );
    assert!(head.contains(&real), "{head}");
    let forgeries = [
        // Skip records 20..24 at the next open: record 25's seq and hash, 20's offset.
        format!(
            "\"checkpoint\":{{\"seq\":25,\"hash\":\"{}\",\"offset\":{}}}",
            records[24].hash, starts[19]
        ),
        // Record 20, but an offset inside its line.
        format!(
            "\"checkpoint\":{{\"seq\":20,\"hash\":\"{}\",\"offset\":{}}}",
            records[19].hash,
            starts[19] + 1
        ),
        // Record 20 where it is, with another record's hash.
        format!(
            "\"checkpoint\":{{\"seq\":20,\"hash\":\"{}\",\"offset\":{}}}",
            records[18].hash, starts[19]
        ),
        // A record past the head.
        format!(
            "\"checkpoint\":{{\"seq\":26,\"hash\":\"{}\",\"offset\":{}}}",
            records[19].hash, starts[19]
        ),
    ];
    for forged in forgeries {
        let work = tempfile::tempdir().unwrap();
        std::fs::copy(audit.join("audit.jsonl"), work.path().join("audit.jsonl")).unwrap();
        std::fs::write(work.path().join("head"), head.replace(&real, &forged)).unwrap();
        assert!(verify(work.path()).is_err(), "verify accepted {forged}");
        assert!(
            matches!(Log::open(work.path()), Err(AuditError::Broken(_))),
            "open accepted {forged}"
        );
    }
}

/// The checkpoint only moves forward: a writer that opened long ago (a gateway) takes up
/// the further checkpoint of a writer that opened since, instead of writing its own.
#[test]
fn the_checkpoint_moves_forward_with_every_writer() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    build(&audit, 3);
    let old = Log::open(&audit).unwrap();
    old.record(EventKind::Alert, None, json!({"n": 4})).unwrap();
    assert_eq!(checkpoint(&audit).map(|c| c.0), Some(3));
    {
        let newer = Log::open(&audit).unwrap();
        newer
            .record(EventKind::Alert, None, json!({"n": 5}))
            .unwrap();
        assert_eq!(checkpoint(&audit).map(|c| c.0), Some(4));
    }
    old.record(EventKind::Alert, None, json!({"n": 6})).unwrap();
    assert_eq!(checkpoint(&audit).map(|c| c.0), Some(4));
    drop(old);
    assert_eq!(verify(&audit).unwrap().records, 6);
}
