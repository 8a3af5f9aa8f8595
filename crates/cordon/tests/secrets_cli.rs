//! `cordon secrets` and `cordon egress test`, driven through the real binary: values go
//! in on stdin and never come out (not in output, not in the audit log, not in any file
//! but the encrypted vault); bad names and host patterns change nothing; every change is
//! audited; `egress test` gives the proxy's real decision without connecting.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A value with characters that every encoding below changes (`/`, `+`, `=`, space).
const VALUE: &str = "sk-live_9f8E7d6C5b4A/Q+Z=x y!";

fn install(egress_allow: &str, gateway_egress: &str) -> Install {
    let inst = Install::new(
        "http://127.0.0.1:9",
        AgentSetup {
            egress_allow,
            ..AgentSetup::default()
        },
    );
    let mut text = read(&inst.config);
    text.push_str("\n[egress]\n");
    text.push_str(gateway_egress);
    text.push('\n');
    std::fs::write(&inst.config, text).unwrap();
    inst
}

fn plain() -> Install {
    install("[]", "")
}

async fn list_json(inst: &Install) -> Vec<Value> {
    let out = inst.cordon(&["secrets", "list", "--json"]).await;
    assert_ok(&out);
    serde_json::from_str::<Value>(&text(&out.stdout))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The value in the vault, read with the secrets crate (the key file Cordon created).
fn stored(inst: &Install, name: &str) -> Option<String> {
    let vault = secrets::Vault::open_with(&inst.state, secrets::KeySource::KeyFile).unwrap();
    vault.get(name).map(|(v, _)| v.expose().to_string())
}

fn secret_records(records: &[Value]) -> Vec<&Value> {
    of_kind(records, "secret_change")
        .into_iter()
        .filter(|r| {
            let a = &r["data"]["action"];
            a == "secret_set" || a == "secret_removed"
        })
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if pad {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn url_encode(s: &str, space_plus: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' if space_plus => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value in every encoding a careless writer might have used.
fn encodings(value: &str) -> Vec<(String, String)> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = value.as_bytes();
    let mut all = vec![
        ("raw".to_string(), value.to_string()),
        ("base64".to_string(), base64(v, STD, true)),
        ("base64 unpadded".to_string(), base64(v, STD, false)),
        ("base64url".to_string(), base64(v, URL, false)),
        ("hex".to_string(), hex::encode(v)),
        ("HEX".to_string(), hex::encode_upper(v)),
        ("url".to_string(), url_encode(value, false)),
        ("form-url".to_string(), url_encode(value, true)),
        (
            "url lower".to_string(),
            url_encode(value, false).to_lowercase(),
        ),
    ];
    // A JSON string of the value escapes nothing here, but keep the check honest.
    all.push((
        "json".to_string(),
        serde_json::to_string(value)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    ));
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn set_list_rm_round_trip_never_shows_the_value() {
    let inst = plain();
    let out = inst
        .cordon_stdin(
            &[
                "secrets",
                "set",
                "GH_TOKEN",
                "--hosts",
                "api.github.com,*.example.com:8443",
            ],
            &format!("{VALUE}\n"),
        )
        .await;
    assert_ok(&out);
    assert!(!text(&out.stdout).contains(VALUE) && !text(&out.stderr).contains(VALUE));

    let out = inst.cordon(&["secrets", "list"]).await;
    assert_ok(&out);
    let table = text(&out.stdout);
    assert!(table.contains("GH_TOKEN"), "{table}");
    assert!(
        table.contains("api.github.com,*.example.com:8443"),
        "{table}"
    );
    assert!(table.contains("never"), "not used yet: {table}");
    assert!(!table.contains(VALUE) && !text(&out.stderr).contains(VALUE));

    let listed = list_json(&inst).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "GH_TOKEN");
    assert_eq!(
        listed[0]["hosts"],
        serde_json::json!(["api.github.com", "*.example.com:8443"])
    );
    assert!(listed[0]["created"].as_str().unwrap().starts_with("20"));
    assert_eq!(listed[0]["last_used"], Value::Null);
    assert!(!listed[0].to_string().contains(VALUE));
    assert_eq!(
        stored(&inst, "GH_TOKEN").as_deref(),
        Some(VALUE),
        "stored exactly, trailing newline stripped"
    );

    // Setting it again (a `\r\n` line this time) replaces value and hosts.
    let out = inst
        .cordon_stdin(
            &["secrets", "set", "GH_TOKEN", "--hosts", "api.github.com"],
            "S3cond-Valu3\r\n",
        )
        .await;
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("replaced"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        list_json(&inst).await[0]["hosts"],
        serde_json::json!(["api.github.com"])
    );

    assert_eq!(stored(&inst, "GH_TOKEN").as_deref(), Some("S3cond-Valu3"));

    let out = inst.cordon(&["secrets", "rm", "GH_TOKEN"]).await;
    assert_ok(&out);
    assert!(list_json(&inst).await.is_empty());
    assert_eq!(stored(&inst, "GH_TOKEN"), None);
    let out = inst.cordon(&["secrets", "list"]).await;
    assert_ok(&out);
    assert!(!text(&out.stdout).contains("GH_TOKEN"));

    let records = inst.audit().await;
    let changes = secret_records(&records);
    let actions: Vec<(&str, &str)> = changes
        .iter()
        .map(|r| {
            (
                r["data"]["action"].as_str().unwrap(),
                r["data"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("secret_set", "GH_TOKEN"),
            ("secret_set", "GH_TOKEN"),
            ("secret_removed", "GH_TOKEN")
        ]
    );
    assert_eq!(
        changes[0]["data"]["hosts"],
        serde_json::json!(["api.github.com", "*.example.com:8443"])
    );
    assert_eq!(changes[1]["data"]["replaced"], true);
    assert_eq!(
        changes[2]["data"]["hosts"],
        serde_json::json!(["api.github.com"])
    );
    for r in &records {
        let s = r.to_string();
        assert!(
            !s.contains(VALUE) && !s.contains("S3cond-Valu3"),
            "value in audit: {s}"
        );
    }
    assert_ok(&inst.cordon(&["log", "verify"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_missing_secret_fails_clearly() {
    let inst = plain();
    let out = inst.cordon(&["secrets", "rm", "NOT_THERE"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no secret named `NOT_THERE`"), "{err}");
    assert!(
        err.contains("cordon secrets list"),
        "says what to do: {err}"
    );
    let records = inst.audit().await;
    assert!(
        secret_records(&records).is_empty(),
        "nothing removed, nothing recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_are_refused_and_change_nothing() {
    let inst = plain();
    for name in [
        "gh_token",
        "1TOKEN",
        "GH-TOKEN",
        "",
        "A_VERY_LONG_NAME_THAT_GOES_ON_AND_ON_AND_ON_PAST_SIXTY_FOUR_CHARS_X",
    ] {
        let out = inst
            .cordon_stdin(
                &["secrets", "set", name, "--hosts", "api.github.com"],
                VALUE,
            )
            .await;
        assert_eq!(out.status.code(), Some(1), "name {name:?} accepted");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("secret name `{name}` is invalid")),
            "{err}"
        );
        assert!(
            err.contains("A-Z, 0-9 and `_`"),
            "says what is valid: {err}"
        );
        assert!(!err.contains(VALUE));
    }
    let out = inst.cordon(&["secrets", "rm", "bad-name"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is invalid"));
    assert!(list_json(&inst).await.is_empty());
    assert!(secret_records(&inst.audit().await).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_host_patterns_and_bad_values_are_refused() {
    let inst = plain();
    let cases = [
        ("https://api.github.com/", "give a host name, not a URL"),
        ("api.github.com:0", "port must be a number 1-65535"),
        ("api.github.com:http", "port must be a number 1-65535"),
        ("api.github.com,", "empty"),
    ];
    for (hosts, reason) in cases {
        // Refused while parsing the command line, before stdin is read.
        let out = inst
            .cordon(&["secrets", "set", "TOKEN", "--hosts", hosts])
            .await;
        assert!(!out.status.success(), "--hosts {hosts:?} accepted");
        let err = text(&out.stderr);
        assert!(err.contains("invalid host pattern"), "{hosts}: {err}");
        assert!(err.contains(reason), "{hosts}: wanted {reason:?} in {err}");
        assert!(err.contains("--hosts"), "names the flag: {err}");
    }
    let out = inst.cordon(&["secrets", "set", "TOKEN"]).await;
    assert!(!out.status.success(), "--hosts is required");

    for (input, why) in [
        ("", "empty"),
        ("\n", "empty"),
        ("a\nb\n", "more than one line"),
    ] {
        let out = inst
            .cordon_stdin(
                &["secrets", "set", "TOKEN", "--hosts", "api.github.com"],
                input,
            )
            .await;
        assert_eq!(out.status.code(), Some(1), "value {input:?} accepted");
        assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
    }
    assert!(list_json(&inst).await.is_empty());
    assert!(secret_records(&inst.audit().await).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_value_is_nowhere_on_disk_but_the_encrypted_vault() {
    let inst = install(
        r#"["api.example.com"]"#,
        r#"resolve = { "api.example.com" = "93.184.215.14" }"#,
    );
    let set = |name: &'static str| {
        let inst = &inst;
        async move {
            let out = inst
                .cordon_stdin(
                    &["secrets", "set", name, "--hosts", "api.example.com"],
                    &format!("{VALUE}\n"),
                )
                .await;
            assert_ok(&out);
        }
    };
    set("FIRST").await;
    set("SECOND").await;
    set("FIRST").await;
    assert_ok(&inst.cordon(&["secrets", "rm", "SECOND"]).await);
    assert_ok(&inst.cordon(&["secrets", "list"]).await);
    assert_ok(&inst.cordon(&["secrets", "list", "--json"]).await);
    assert_ok(
        &inst
            .cordon(&["egress", "test", "https://api.example.com/"])
            .await,
    );
    assert_ok(&inst.cordon(&["log", "show"]).await);

    let mut files = Vec::new();
    files_under(&inst.state, &mut files);
    let vault_file = inst.state.join("vault").join("secrets.enc");
    assert!(
        files.contains(&vault_file),
        "the vault was written: {files:?}"
    );
    assert!(
        files.len() >= 5,
        "audit, db and vault files scanned: {files:?}"
    );
    let forms = encodings(VALUE);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let lower = String::from_utf8_lossy(&bytes).to_lowercase();
        for (what, form) in &forms {
            if file == &vault_file && what != "raw" {
                continue;
            }
            let found = bytes.windows(form.len()).any(|w| w == form.as_bytes())
                || (what.starts_with("url") && lower.contains(&form.to_lowercase()));
            assert!(
                !found,
                "{what} form of the value found in {}",
                file.display()
            );
        }
    }
    // The value is also not in the config or the HOME the commands ran with.
    let mut others = Vec::new();
    files_under(&inst.home, &mut others);
    others.push(inst.config.clone());
    for file in others {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_files_are_private() {
    let inst = plain();
    let out = inst
        .cordon_stdin(
            &["secrets", "set", "TOKEN", "--hosts", "api.github.com"],
            VALUE,
        )
        .await;
    assert_ok(&out);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let vault = inst.state.join("vault");
    assert_eq!(mode(&inst.state), 0o700);
    assert_eq!(mode(&vault), 0o700);
    let mut files = Vec::new();
    files_under(&vault, &mut files);
    assert!(files.contains(&vault.join("secrets.enc")) && files.contains(&vault.join("key")));
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // Opened up behind Cordon's back: refused with the fix named, and nothing changes.
    std::fs::set_permissions(
        vault.join("secrets.enc"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = inst.cordon(&["secrets", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("accessible to group or others") && err.contains("chmod"),
        "{err}"
    );
    let out = inst
        .cordon_stdin(
            &["secrets", "set", "OTHER", "--hosts", "api.github.com"],
            VALUE,
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(mode(&vault.join("secrets.enc")), 0o644, "left as found");
}

/// The config of the egress tests: names resolved statically, never by DNS.
fn egress_install() -> Install {
    install(
        r#"[
    "api.example.com", "docs.example.com", "mirror.example.com",
    "169.254.169.254", "203.0.113.9",
]"#,
        r#"[egress.resolve]
"api.example.com" = "93.184.215.14"
"docs.example.com" = "203.0.113.7"
"mirror.example.com" = "10.0.0.5""#,
    )
}

struct Answer {
    code: Option<i32>,
    out: String,
}

impl Answer {
    fn field(&self, name: &str) -> String {
        self.out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name}: line in\n{}", self.out))
            .trim()
            .to_string()
    }
}

async fn egress_test(inst: &Install, args: &[&str]) -> Answer {
    let mut all = vec!["egress", "test"];
    all.extend_from_slice(args);
    let out = inst.cordon(&all).await;
    Answer {
        code: out.status.code(),
        out: text(&out.stdout),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_test_allows_an_allowlisted_public_name() {
    let inst = egress_install();
    let a = egress_test(&inst, &["https://api.example.com/v1/x"]).await;
    assert_eq!(a.code, Some(0), "{}", a.out);
    assert_eq!(a.field("host"), "api.example.com");
    assert_eq!(a.field("port"), "443");
    assert_eq!(a.field("addresses"), "93.184.215.14");
    assert_eq!(a.field("decision"), "allow");
    assert!(
        a.field("reason")
            .contains("allowlist entry `api.example.com`"),
        "{}",
        a.out
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_test_refuses_what_the_proxy_refuses() {
    let inst = egress_install();
    let cases: [(&str, &str, &str, &str); 6] = [
        // Not on the allowlist (not even resolved).
        (
            "http://other.example.org/",
            "other.example.org",
            "-",
            "not on the egress allowlist of agent `default`",
        ),
        // Allowlisted as a pattern, but an IP literal.
        (
            "http://203.0.113.9/",
            "203.0.113.9",
            "203.0.113.9",
            "IP literal 203.0.113.9 refused",
        ),
        // Cloud metadata, even though it is on the allowlist.
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
            "169.254.169.254",
            "IP literal 169.254.169.254 refused",
        ),
        // An allowlisted name that resolves inside the network.
        (
            "https://mirror.example.com/",
            "mirror.example.com",
            "10.0.0.5",
            "resolves to 10.0.0.5",
        ),
        // Loopback dressed as IPv6.
        (
            "http://[::ffff:127.0.0.1]/",
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1",
            "IP literal ::ffff:127.0.0.1 refused",
        ),
        // TEST-NET-3 is not a public address either.
        (
            "https://docs.example.com/",
            "docs.example.com",
            "203.0.113.7",
            "resolves to 203.0.113.7",
        ),
    ];
    for (url, host, addresses, reason) in cases {
        let a = egress_test(&inst, &[url]).await;
        assert_eq!(a.code, Some(1), "{url} allowed:\n{}", a.out);
        assert_eq!(a.field("decision"), "deny", "{url}");
        assert_eq!(a.field("host"), host, "{url}");
        assert_eq!(a.field("addresses"), addresses, "{url}");
        assert!(
            a.field("reason").contains(reason),
            "{url}: wanted {reason:?} in\n{}",
            a.out
        );
    }
    let a = egress_test(&inst, &["https://mirror.example.com/"]).await;
    assert!(a.field("reason").contains("SSRF guard"), "{}", a.out);

    let out = inst
        .cordon(&[
            "egress",
            "test",
            "--agent",
            "nobody",
            "https://api.example.com/",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no agent `nobody`"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_test_resolves_but_never_connects() {
    // A listener on loopback, opened to the agent through allow_ranges: the verdict is
    // "allow", and the listener must not see a single connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let inst = install(
        &format!(r#"["svc.example.com:{port}"]"#),
        r#"resolve = { "svc.example.com" = "127.0.0.1" }
allow_ranges = ["127.0.0.1/32"]"#,
    );
    let a = egress_test(&inst, &[&format!("http://svc.example.com:{port}/")]).await;
    assert_eq!(a.code, Some(0), "{}", a.out);
    assert_eq!(a.field("addresses"), "127.0.0.1");
    assert_eq!(a.field("port"), port.to_string());
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("egress test connected to the target: {other:?}"),
    }
    // Same name on another port: not on the allowlist.
    let a = egress_test(&inst, &["http://svc.example.com/"]).await;
    assert_eq!(a.code, Some(1), "{}", a.out);
}

#[test]
fn the_encodings_scanned_for_are_the_real_ones() {
    let forms: std::collections::BTreeMap<String, String> = encodings(VALUE).into_iter().collect();
    assert_eq!(forms["base64"], "c2stbGl2ZV85ZjhFN2Q2QzViNEEvUStaPXggeSE=");
    assert_eq!(
        forms["base64url"],
        "c2stbGl2ZV85ZjhFN2Q2QzViNEEvUStaPXggeSE"
    );
    assert_eq!(forms["url"], "sk-live_9f8E7d6C5b4A%2FQ%2BZ%3Dx%20y%21");
    assert_eq!(forms["hex"], hex::encode(VALUE));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_typed_at_the_terminal_is_not_echoed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("SKIPPED: /usr/bin/script (util-linux) is needed to give cordon a terminal");
        return;
    }
    let inst = plain();
    let cordon = env!("CARGO_BIN_EXE_cordon");
    // `script` runs cordon on a fresh pseudo-terminal and copies everything the terminal
    // shows to stdout: an echoed value would appear there.
    let mut child = tokio::process::Command::new(script)
        .args(["-q", "-e", "-c"])
        .arg(format!("{cordon} secrets set TYPED --hosts api.github.com"))
        .arg("/dev/null")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &inst.home)
        .env("CORDON_CONFIG", &inst.config)
        .env("CORDON_STATE_DIR", &inst.state)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut shown = Vec::new();
    let mut buf = [0u8; 256];
    let prompt = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !String::from_utf8_lossy(&shown).contains("(not shown): ") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&shown));
            shown.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(prompt.is_ok(), "no prompt within 20 s");
    stdin
        .write_all(format!("{VALUE}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stdout.read_to_end(&mut shown),
    )
    .await
    .expect("cordon did not finish")
    .unwrap();
    drop(stdin);
    let status = child.wait().await.unwrap();
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(status.success(), "{shown}");
    assert!(shown.contains("secret `TYPED` stored"), "{shown}");
    assert!(!shown.contains(VALUE), "the value was echoed: {shown}");
    assert_eq!(stored(&inst, "TYPED").as_deref(), Some(VALUE));
}
