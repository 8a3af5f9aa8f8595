//! The vault against real files in temp dirs: round trips, wrong keys, tampering,
//! insecure modes, and a scan proving values never reach disk in the clear.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use config::HostPattern;
use cordon_secrets::{KdfParams, KeySource, Secret, Vault, VaultError};

const VALUE: &str = "s3cr3t/value+with=odd&chars?1";
const OTHER: &str = "second-secret-value-0987654321";

fn hosts(list: &[&str]) -> Vec<HostPattern> {
    list.iter()
        .map(|h| HostPattern::parse(h).unwrap())
        .collect()
}

/// Cheap Argon2id parameters so tests stay fast; the format is the same.
fn pass(p: &str) -> KeySource {
    KeySource::Passphrase {
        passphrase: Secret::from(p),
        params: KdfParams {
            m_cost_kib: 1024,
            t_cost: 1,
            p_cost: 1,
        },
    }
}

fn enc(state: &Path) -> PathBuf {
    state.join("vault/secrets.enc")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn filled(state: &Path, source: KeySource) -> Vault {
    let mut v = Vault::open_with(state, source).unwrap();
    v.set(
        "GITHUB_TOKEN",
        Secret::from(VALUE),
        hosts(&["api.github.com"]),
    )
    .unwrap();
    v.set(
        "OTHER_KEY",
        Secret::from(OTHER),
        hosts(&["*.example.org", "x.io:8443"]),
    )
    .unwrap();
    v
}

#[test]
fn key_file_round_trip_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut v = filled(&state, KeySource::KeyFile);
    assert_eq!(mode(&state.join("vault")), 0o700);
    assert_eq!(mode(&state.join("vault/key")), 0o600);
    assert_eq!(mode(&enc(&state)), 0o600);
    assert_eq!(fs::metadata(state.join("vault/key")).unwrap().len(), 32);

    let (s, h) = v.get("GITHUB_TOKEN").unwrap();
    assert_eq!(s.expose(), VALUE);
    assert_eq!(h, hosts(&["api.github.com"]));
    assert!(v.get("MISSING").is_none());
    v.mark_used("GITHUB_TOKEN").unwrap();
    drop(v);

    let mut v = Vault::open_with(&state, KeySource::KeyFile).unwrap();
    let list = v.list();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["GITHUB_TOKEN", "OTHER_KEY"]);
    assert!(list[0].last_used.is_some());
    assert!(list[1].last_used.is_none());
    assert_eq!(list[1].hosts, hosts(&["*.example.org", "x.io:8443"]));
    assert_eq!(v.get("OTHER_KEY").unwrap().0.expose(), OTHER);

    assert!(v.remove("OTHER_KEY").unwrap());
    assert!(!v.remove("OTHER_KEY").unwrap());
    drop(v);
    let v = Vault::open_with(&state, KeySource::KeyFile).unwrap();
    assert_eq!(v.list().len(), 1);
    // Listing and Debug never carry values.
    let shown = format!("{:?} {:?}", v.list(), v);
    assert!(!shown.contains(VALUE), "{shown}");
    assert!(shown.contains("GITHUB_TOKEN"));
}

#[test]
fn passphrase_round_trip_wrong_passphrase_and_wrong_source() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    drop(filled(state, pass("correct horse battery staple")));
    assert!(
        !state.join("vault/key").exists(),
        "no key file with a passphrase"
    );

    let v = Vault::open_with(state, pass("correct horse battery staple")).unwrap();
    assert_eq!(v.get("GITHUB_TOKEN").unwrap().0.expose(), VALUE);
    drop(v);

    let before = fs::read(enc(state)).unwrap();
    let err = Vault::open_with(state, pass("correct horse battery stapler")).unwrap_err();
    assert!(matches!(err, VaultError::Decrypt { .. }), "{err}");
    assert!(err.to_string().contains("CORDON_VAULT_PASSPHRASE"), "{err}");
    let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
    assert!(
        matches!(err, VaultError::PassphraseRequired { .. }),
        "{err}"
    );
    assert_eq!(fs::read(enc(state)).unwrap(), before, "file untouched");
}

#[test]
fn key_file_vault_refuses_passphrase_and_other_key() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    drop(filled(state, KeySource::KeyFile));
    let err = Vault::open_with(state, pass("anything")).unwrap_err();
    assert!(matches!(err, VaultError::KeyFileRequired { .. }), "{err}");

    let before = fs::read(enc(state)).unwrap();
    fs::write(state.join("vault/key"), [7u8; 32]).unwrap();
    let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
    assert!(matches!(err, VaultError::Decrypt { .. }), "{err}");
    fs::write(state.join("vault/key"), [7u8; 31]).unwrap();
    let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
    assert!(
        matches!(err, VaultError::BadKeyFile { len: 31, .. }),
        "{err}"
    );
    fs::remove_file(state.join("vault/key")).unwrap();
    let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(fs::read(enc(state)).unwrap(), before, "file untouched");
}

#[test]
fn every_tampered_byte_is_refused_and_the_file_left_alone() {
    for source in [KeySource::KeyFile, pass("pw-for-tamper-test")] {
        let passphrase = matches!(source, KeySource::Passphrase { .. });
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path();
        drop(filled(state, source));
        let good = fs::read(enc(state)).unwrap();
        // Every byte of header, nonce and the start and end (tag) of the ciphertext.
        let positions: Vec<usize> = (0..80).chain(good.len() - 20..good.len()).collect();
        for i in positions {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            fs::write(enc(state), &bad).unwrap();
            let src = if passphrase {
                pass("pw-for-tamper-test")
            } else {
                KeySource::KeyFile
            };
            let err = Vault::open_with(state, src).expect_err("tampered vault opened");
            assert!(
                matches!(
                    err,
                    VaultError::Decrypt { .. }
                        | VaultError::Corrupt { .. }
                        | VaultError::PassphraseRequired { .. }
                        | VaultError::KeyFileRequired { .. }
                        | VaultError::Kdf { .. }
                ),
                "byte {i}: {err}"
            );
            assert_eq!(fs::read(enc(state)).unwrap(), bad, "byte {i}: file changed");
        }
        // Truncation and garbage.
        fs::write(enc(state), &good[..good.len() - 1]).unwrap();
        assert!(Vault::open_with(state, KeySource::KeyFile).is_err());
        fs::write(enc(state), b"not a vault").unwrap();
        let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
    }
}

#[test]
fn insecure_modes_are_refused_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    drop(filled(state, KeySource::KeyFile));
    let cases = [
        (state.join("vault"), 0o755, 0o700, "chmod 700"),
        (state.join("vault"), 0o710, 0o700, "chmod 700"),
        (state.join("vault/key"), 0o644, 0o600, "chmod 600"),
        (state.join("vault/key"), 0o620, 0o600, "chmod 600"),
        (enc(state), 0o640, 0o600, "chmod 600"),
        (enc(state), 0o604, 0o600, "chmod 600"),
    ];
    for (path, bad, good, fix) in cases {
        fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
        let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
        assert!(
            matches!(err, VaultError::InsecurePermissions { .. }),
            "{}: {err}",
            path.display()
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("{fix} {}", path.display())), "{msg}");
        fs::set_permissions(&path, fs::Permissions::from_mode(good)).unwrap();
        Vault::open_with(state, KeySource::KeyFile).unwrap();
    }
}

#[test]
fn foreign_owned_files_are_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to chown a file to another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    drop(filled(state, KeySource::KeyFile));
    for path in [enc(state), state.join("vault/key"), state.join("vault")] {
        std::os::unix::fs::chown(&path, Some(12345), None).unwrap();
        let err = Vault::open_with(state, KeySource::KeyFile).unwrap_err();
        assert!(
            matches!(err, VaultError::ForeignOwner { owner: 12345, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chown 0"), "{err}");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    }
    Vault::open_with(state, KeySource::KeyFile).unwrap();
}

#[test]
fn symlinks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("s");
    drop(filled(&state, KeySource::KeyFile));
    let elsewhere = tmp.path().join("elsewhere.enc");
    fs::rename(enc(&state), &elsewhere).unwrap();
    symlink(&elsewhere, enc(&state)).unwrap();
    let err = Vault::open_with(&state, KeySource::KeyFile).unwrap_err();
    assert!(matches!(err, VaultError::NotRegular { .. }), "{err}");

    // A vault dir that is a symlink to another directory.
    let other = tempfile::tempdir().unwrap();
    let linked = other.path().join("state");
    fs::create_dir(&linked).unwrap();
    symlink(state.join("vault"), linked.join("vault")).unwrap();
    let err = Vault::open_with(&linked, KeySource::KeyFile).unwrap_err();
    assert!(matches!(err, VaultError::NotRegular { .. }), "{err}");
}

#[test]
fn names_and_values_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = Vault::open_with(tmp.path(), KeySource::KeyFile).unwrap();
    let long = format!("A{}", "B".repeat(64));
    for bad in [
        "",
        "lower",
        "1ABC",
        "_ABC",
        "A-B",
        "A B",
        "ÄBC",
        long.as_str(),
    ] {
        let err = v.set(bad, Secret::from("value-12345"), vec![]).unwrap_err();
        assert!(
            matches!(err, VaultError::InvalidName { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("GITHUB_TOKEN"), "{err}");
    }
    for good in ["A", "A1_B", &long[..64]] {
        v.set(good, Secret::from("value-12345"), vec![]).unwrap();
    }
    let err = v.set("EMPTY", Secret::from(""), vec![]).unwrap_err();
    assert!(matches!(err, VaultError::EmptyValue { .. }), "{err}");
    let err = v.mark_used("NOPE").unwrap_err();
    assert!(matches!(err, VaultError::UnknownSecret { .. }), "{err}");
}

#[test]
fn every_write_uses_a_fresh_nonce() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = Vault::open_with(tmp.path(), KeySource::KeyFile).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        v.set("SAME", Secret::from(VALUE), vec![]).unwrap();
        let bytes = fs::read(enc(tmp.path())).unwrap();
        // Header is magic (8) + key source (1); the nonce follows.
        let nonce = bytes[9..33].to_vec();
        assert!(!seen.contains(&nonce));
        seen.push(nonce);
    }
}

#[test]
fn env_key_source() {
    assert!(matches!(
        KeySource::from_env_value(None).unwrap(),
        KeySource::KeyFile
    ));
    assert!(matches!(
        KeySource::from_env_value(Some("pw".into())).unwrap(),
        KeySource::Passphrase { .. }
    ));
    let err = KeySource::from_env_value(Some("".into())).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let shown = format!(
        "{:?}",
        KeySource::from_env_value(Some("topsecretpw".into()))
    );
    assert!(!shown.contains("topsecretpw"), "{shown}");
}

fn all_encodings(value: &str) -> Vec<Vec<u8>> {
    let b = value.as_bytes();
    let mut url = String::new();
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            url.push(c as char);
        } else {
            url.push_str(&format!("%{c:02X}"));
        }
    }
    vec![
        b.to_vec(),
        STANDARD.encode(b).into_bytes(),
        STANDARD_NO_PAD.encode(b).into_bytes(),
        URL_SAFE.encode(b).into_bytes(),
        URL_SAFE_NO_PAD.encode(b).into_bytes(),
        hex::encode(b).into_bytes(),
        hex::encode_upper(b).into_bytes(),
        url.clone().into_bytes(),
        url.to_lowercase().into_bytes(),
    ]
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn values_never_reach_disk_in_any_encoding() {
    for source in [KeySource::KeyFile, pass("scan-pass")] {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path();
        let mut v = filled(state, source);
        v.mark_used("GITHUB_TOKEN").unwrap();
        v.set("THIRD", Secret::from("third-value-abcdefgh"), vec![])
            .unwrap();
        v.remove("THIRD").unwrap();
        drop(v);

        let mut files = Vec::new();
        files_under(state, &mut files);
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(state).unwrap().display().to_string())
            .collect();
        // No temp files left behind; nothing but the vault files.
        assert!(
            names
                .iter()
                .all(|n| n == "vault/secrets.enc" || n == "vault/key" || n == "vault/lock"),
            "{names:?}"
        );
        for file in &files {
            let bytes = fs::read(file).unwrap();
            for value in [VALUE, OTHER, "third-value-abcdefgh"] {
                for form in all_encodings(value) {
                    assert!(
                        !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                        "{} contains {:?}",
                        file.display(),
                        String::from_utf8_lossy(&form)
                    );
                }
            }
        }
    }
}

#[test]
fn two_handles_do_not_lose_each_others_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let mut gateway = Vault::open_with(state, KeySource::KeyFile).unwrap();
    let mut cli = Vault::open_with(state, KeySource::KeyFile).unwrap();
    gateway
        .set("FROM_GATEWAY", Secret::from(VALUE), vec![])
        .unwrap();
    cli.set("FROM_CLI", Secret::from(OTHER), vec![]).unwrap();
    // The gateway's next write starts from disk, so FROM_CLI survives it.
    gateway.mark_used("FROM_GATEWAY").unwrap();
    assert!(gateway.get("FROM_CLI").is_some());
    let v = Vault::open_with(state, KeySource::KeyFile).unwrap();
    assert_eq!(v.list().len(), 2);

    // Concurrent writers in threads, each through its own handle.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let state = state.to_path_buf();
            std::thread::spawn(move || {
                let mut v = Vault::open_with(&state, KeySource::KeyFile).unwrap();
                for i in 0..5 {
                    v.set(&format!("T{t}_{i}"), Secret::from(VALUE), vec![])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    cli.reload().unwrap();
    assert_eq!(cli.list().len(), 2 + 20);
}

/// Child half of `open_reads_the_passphrase_from_the_environment`: runs only in the
/// subprocess that test starts, with the environment it sets.
#[test]
#[ignore = "run by open_reads_the_passphrase_from_the_environment"]
fn child_open_from_env() {
    let state = PathBuf::from(std::env::var_os("CORDON_TEST_STATE").unwrap());
    let mut v = Vault::open(&state).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("CORDON_TEST_WRITE").is_some() {
        v.set("ENV_SECRET", Secret::from(VALUE), vec![]).unwrap();
    } else {
        assert_eq!(v.get("ENV_SECRET").unwrap().0.expose(), VALUE);
    }
}

#[test]
fn open_reads_the_passphrase_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let child = |pass: Option<&str>, write: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "child_open_from_env",
            "--test-threads=1",
        ])
        .env("CORDON_TEST_STATE", tmp.path())
        .env_remove("CORDON_VAULT_PASSPHRASE");
        if let Some(p) = pass {
            cmd.env("CORDON_VAULT_PASSPHRASE", p);
        }
        if write {
            cmd.env("CORDON_TEST_WRITE", "1");
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, out) = child(Some("env passphrase"), true);
    assert!(ok, "{out}");
    assert!(
        !tmp.path().join("vault/key").exists(),
        "passphrase, not key file"
    );
    let (ok, out) = child(Some("env passphrase"), false);
    assert!(ok, "{out}");
    let (ok, out) = child(Some("wrong passphrase"), false);
    assert!(!ok);
    assert!(out.contains("cannot decrypt"), "{out}");
    let (ok, out) = child(None, false);
    assert!(!ok);
    assert!(out.contains("set CORDON_VAULT_PASSPHRASE"), "{out}");
}

#[test]
fn huge_kdf_parameters_in_a_forged_header_are_refused_before_hashing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    drop(filled(state, pass("pw")));
    let mut bytes = fs::read(enc(state)).unwrap();
    // m_cost (KiB) is the u32 right after magic (8) and key source (1): ask for 4 TiB.
    bytes[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(enc(state), &bytes).unwrap();
    let started = std::time::Instant::now();
    let err = Vault::open_with(state, pass("pw")).unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("out of range"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
