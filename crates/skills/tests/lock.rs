//! `skills.lock`: a missing file is an empty lock, a saved lock reads back the same and
//! is stable, and a damaged one is an error naming the file and the line.

use std::collections::BTreeMap;

use cordon_skills::{Capabilities, Lock, LockError, Locked, WorkspaceAccess};

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn locked(name: &str, sha256: &str) -> Locked {
    Locked {
        name: name.into(),
        source: format!("https://example.com/{name}.tar.gz#sha256={HASH_B}"),
        version: Some("1.2.0".into()),
        sha256: sha256.into(),
        verdict: "clean".into(),
        accepted_risk: false,
        agents: vec!["main".into()],
        installed_at: "2026-12-06T15:00:00Z".into(),
        capabilities: Capabilities {
            egress: vec!["api.example.com".into()],
            secrets: vec!["WEATHER_KEY".into()],
            bins: vec!["python3".into()],
            workspace: WorkspaceAccess::None,
        },
        env: BTreeMap::from([("WEATHER_API_KEY".into(), "WEATHER_KEY".into())]),
    }
}

fn invalid(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skills.lock");
    std::fs::write(&path, text).unwrap();
    match Lock::load(&path) {
        Err(e @ LockError::Invalid { .. }) => {
            let shown = e.to_string();
            assert!(shown.starts_with(&path.display().to_string()), "{shown}");
            shown[path.display().to_string().len()..].to_string()
        }
        Err(other) => panic!("expected an invalid lock, got {other}"),
        Ok(l) => panic!("expected an invalid lock, loaded {l:?}"),
    }
}

#[test]
fn a_missing_lock_is_empty_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let lock = Lock::load(&dir.path().join("skills.lock")).unwrap();
    assert_eq!(lock.version, 1);
    assert!(lock.skills.is_empty());
}

#[test]
fn a_lock_round_trips_sorted_with_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skills.lock");
    let mut lock = Lock::load(&path).unwrap();
    lock.put(locked("zeta", HASH_A));
    let mut plain = locked("alpha", HASH_B);
    plain.capabilities = Capabilities::default();
    plain.env.clear();
    plain.agents.clear();
    plain.version = None;
    lock.put(plain);
    // Unsorted in memory: save sorts anyway.
    lock.skills.reverse();
    lock.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# skills.lock: generated"), "{text}");
    assert!(text.contains("commit"), "{text}");
    assert!(text.find("name = \"alpha\"").unwrap() < text.find("name = \"zeta\"").unwrap());

    let back = Lock::load(&path).unwrap();
    assert_eq!(back.skills.len(), 2);
    assert_eq!(back.get("zeta"), Some(&locked("zeta", HASH_A)));
    assert_eq!(
        back.get("alpha").unwrap().capabilities,
        Capabilities::default()
    );
    // Stable: saving what was loaded writes the same bytes.
    back.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Written atomically: no temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["skills.lock"]);
}

fn one_skill(name: &str, sha: &str, verdict: &str) -> String {
    format!(
        "version = 1\n\n[[skill]]\nname = \"{name}\"\nsource = \"/x\"\nsha256 = \"{sha}\"\nverdict = \"{verdict}\"\ninstalled_at = \"t\"\n\n[skill.capabilities]\n"
    )
}

#[test]
fn bad_toml_names_the_line() {
    let e = invalid("version = 1\n\n[[skill]]\nname = \"a\"\nsource = \n");
    assert!(e.starts_with(": line 5:"), "{e}");
}

#[test]
fn an_unknown_key_names_the_line() {
    let mut text = one_skill("a", HASH_A, "clean");
    text = text.replace(
        "verdict = \"clean\"\n",
        "verdict = \"clean\"\ntrusted = true\n",
    );
    let e = invalid(&text);
    assert!(e.starts_with(": line 8:"), "{e}");
    assert!(e.contains("trusted"), "{e}");
}

#[test]
fn a_duplicate_name_names_the_second_line() {
    let text = format!(
        "{}{}",
        one_skill("weather", HASH_A, "clean"),
        one_skill("weather", HASH_B, "clean").replace("version = 1\n", "")
    );
    let e = invalid(&text);
    assert_eq!(e, ": line 13: skill `weather` appears twice");
}

#[test]
fn an_invalid_name_names_its_line() {
    let e = invalid(&one_skill("../etc", HASH_A, "clean"));
    assert_eq!(e, ": line 4: `../etc` is not a valid skill name");
}

#[test]
fn an_invalid_hash_names_its_line() {
    let e = invalid(&one_skill("a", "ABC", "clean"));
    assert!(e.starts_with(": line 6: skill `a`: sha256 `ABC`"), "{e}");
    let upper = HASH_B.to_ascii_uppercase();
    let e = invalid(&one_skill("a", &upper, "clean"));
    assert!(e.starts_with(": line 6:"), "{e}");
}

#[test]
fn a_critical_or_unknown_verdict_is_refused() {
    let e = invalid(&one_skill("a", HASH_A, "critical"));
    assert!(
        e.starts_with(": line 7: skill `a`: verdict `critical`"),
        "{e}"
    );
}

#[test]
fn an_unknown_version_is_refused() {
    let e = invalid(&one_skill("a", HASH_A, "clean").replace("version = 1", "version = 2"));
    assert!(e.starts_with(": line 1: version 2"), "{e}");
}
