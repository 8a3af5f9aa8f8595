//! `cordon serve` and `cordon token` end to end: the real binary, a real socket, a real
//! HTTP client.

mod common;

use std::time::Duration;

use common::{AgentSetup, Install, text};

fn install() -> Install {
    // The model is never called here.
    Install::new("http://127.0.0.1:9/v1", AgentSetup::default())
}

async fn run(inst: &Install, args: &[&str]) -> std::process::Output {
    inst.command().args(args).output().await.unwrap()
}

/// Start `cordon serve ARGS` and return it with the URL it printed.
async fn serve(inst: &Install, args: &[&str]) -> (tokio::process::Child, String) {
    let (child, url, rest) = common::serve_gateway_banner(inst, args).await;
    assert!(
        rest.contains("/api/login") && rest.contains("cordon token create"),
        "{rest}"
    );
    (child, url)
}

async fn create_token(inst: &Install, scope: &str) -> (String, String) {
    let out = run(
        inst,
        &["token", "create", "--scope", scope, "--name", "laptop"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(
        token.starts_with("cdn_") && !token.contains(char::is_whitespace),
        "{token}"
    );
    let err = text(&out.stderr);
    let id = err
        .split_whitespace()
        .nth(2)
        .expect("id in `created token ID …`")
        .to_string();
    assert!(err.contains("only time"), "{err}");
    (id, token)
}

fn terminate(child: &tokio::process::Child) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

#[tokio::test]
async fn tokens_are_shown_once_work_until_revoked_and_are_audited() {
    let inst = install();
    let (id, token) = create_token(&inst, "operator").await;
    let list = run(&inst, &["token", "list"]).await;
    let listed = text(&list.stdout);
    assert!(listed.contains(&id) && listed.contains("operator") && listed.contains("active"));
    assert!(!listed.contains(&token));
    let json = run(&inst, &["token", "list", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["id"], id.as_str());
    assert!(!text(&json.stdout).contains(&token));

    let (child, url) = serve(&inst, &["--bind", "127.0.0.1:0"]).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::Client::new();
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let who = http
        .get(format!("{url}/api/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    let who: serde_json::Value = who.json().await.unwrap();
    assert_eq!(who["scope"], "operator");
    let anon = http.get(format!("{url}/api/status")).send().await.unwrap();
    assert_eq!(anon.status(), 401);

    // Revoked from another process: the running gateway refuses it at once.
    let out = run(&inst, &["token", "revoke", &id]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let who = http
        .get(format!("{url}/api/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 401);
    let again = run(&inst, &["token", "revoke", &id]).await;
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already revoked"));
    let missing = run(&inst, &["token", "revoke", "NOPE"]).await;
    assert!(text(&missing.stderr).contains("cordon token list --all"));
    assert!(text(&run(&inst, &["token", "list"]).await.stdout).contains("no usable tokens"));
    assert!(text(&run(&inst, &["token", "list", "--all"]).await.stdout).contains("revoked"));

    terminate(&child);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("serve did not stop on SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let log = std::fs::read_to_string(inst.audit_file()).unwrap();
    assert!(log.contains("token_created") && log.contains("token_revoked"));
    assert!(!log.contains(&token), "the token reached the audit log");
    let db = std::fs::read(inst.state.join("cordon.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[tokio::test]
async fn a_network_bind_is_refused_with_the_remedy_and_nothing_listens() {
    let inst = install();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("0.0.0.0:{port}");
    let out = run(&inst, &["serve", "--bind", &bind]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to listen") && err.contains("tls_cert"),
        "{err}"
    );
    assert!(err.contains("cordon token create"), "{err}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // Through the config instead of the flag, with a token but still no TLS.
    create_token(&inst, "read").await;
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    cfg.push_str(&format!("\n[gateway]\nbind = \"{bind}\"\n"));
    std::fs::write(&inst.config, cfg).unwrap();
    let out = run(&inst, &["serve"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("tls_cert") && !err.contains("cordon token create"),
        "{err}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn tls_on_all_interfaces_with_a_token_serves_https() {
    let inst = install();
    let cert_pem = common::write_tls(&inst);
    let mut cfg = std::fs::read_to_string(&inst.config).unwrap();
    // Relative to the config file's directory, not to the working directory.
    cfg.push_str(
        "\n[gateway]\nbind = \"0.0.0.0:0\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n",
    );
    std::fs::write(&inst.config, cfg).unwrap();

    let out = run(&inst, &["serve"]).await;
    assert!(!out.status.success(), "served on 0.0.0.0 without a token");
    assert!(text(&out.stderr).contains("cordon token create"));

    let (_id, token) = create_token(&inst, "read").await;
    let (child, url) = serve(&inst, &[]).await;
    assert!(url.starts_with("https://localhost:"), "{url}");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = http
        .get(format!("{url}/api/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_some());
    let plain = url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    terminate(&child);
}
