//! A throwaway Cordon installation: its own HOME, config, state dir and workspace, and
//! the real `cordon` binary run against it.

#![allow(dead_code)]

pub mod scenario;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

pub struct Install {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub workspace: PathBuf,
}

/// Agent settings the tests vary.
pub struct AgentSetup<'a> {
    pub tools: &'a str,
    pub exec_mode: &'a str,
    pub exec_allow: &'a str,
    pub egress_allow: &'a str,
    pub extra_model: &'a str,
}

impl Default for AgentSetup<'_> {
    fn default() -> Self {
        AgentSetup {
            tools: r#"["read_file", "write_file", "edit_file", "list_dir", "search", "exec", "http_fetch"]"#,
            exec_mode: "ask",
            exec_allow: "[]",
            egress_allow: "[]",
            extra_model: "max_retries = 0\ntimeout_secs = 20",
        }
    }
}

impl Install {
    pub fn new(base_url: &str, setup: AgentSetup<'_>) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let state = dir.path().join("state");
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&workspace).unwrap();
        let config = dir.path().join("cordon.toml");
        let text = format!(
            r#"[model]
provider = "openai"
base_url = "{base_url}"
model = "scripted"
{extra}

[agents.default]
workspace = "{ws}"
tools = {tools}

[agents.default.exec]
mode = "{mode}"
allow = {allow}
timeout_secs = 20

[agents.default.egress]
allow = {egress}
"#,
            extra = setup.extra_model,
            ws = workspace.display(),
            tools = setup.tools,
            mode = setup.exec_mode,
            allow = setup.exec_allow,
            egress = setup.egress_allow,
        );
        std::fs::write(&config, text).unwrap();
        Install {
            dir,
            home,
            config,
            state,
            workspace,
        }
    }

    /// `cordon` against this installation. Its metadata probes (`cordon audit`) go to this
    /// test process's loopback [`metadata_stand_in`], never to 169.254.169.254.
    pub fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CORDON_CONFIG", &self.config)
            .env("CORDON_STATE_DIR", &self.state)
            .env(METADATA_PROBE_ENV, metadata_stand_in().addr.to_string())
            .env(INIT_PROBE_PORTS_ENV, "")
            .kill_on_drop(true);
        cmd
    }

    /// The same command run as an unprivileged user (uid/gid 65534) through `setpriv`,
    /// with the whole installation handed over to that user. `None` when not root or
    /// `setpriv` is missing (the caller prints why it skipped).
    pub fn command_unprivileged(&self) -> Option<tokio::process::Command> {
        if !rustix::process::geteuid().is_root() || !Path::new("/usr/bin/setpriv").exists() {
            return None;
        }
        chown_tree(self.dir.path(), 65534);
        let mut cmd = tokio::process::Command::new("/usr/bin/setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_cordon"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CORDON_CONFIG", &self.config)
            .env("CORDON_STATE_DIR", &self.state)
            .env(METADATA_PROBE_ENV, metadata_stand_in().addr.to_string())
            .env(INIT_PROBE_PORTS_ENV, "")
            .kill_on_drop(true);
        Some(cmd)
    }

    pub async fn cordon(&self, args: &[&str]) -> Output {
        self.command().args(args).output().await.unwrap()
    }

    /// `cordon <args>` with `input` on stdin.
    pub async fn cordon_stdin(&self, args: &[&str], input: &str) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .command()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    }

    /// Every audit record, via `cordon log show --json`. Each must have a shape its kind
    /// documents (`docs/audit-events.md`), whichever component wrote it.
    pub async fn audit(&self) -> Vec<Value> {
        let out = self.cordon(&["log", "show", "--json"]).await;
        assert!(
            out.status.success(),
            "log show failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
            .lines()
            .map(|l| {
                let record: audit::Record = serde_json::from_str(l).unwrap();
                if let Err(e) = audit::Event::from_record(&record) {
                    panic!(
                        "record #{} is not a documented `{}` record: {e}\n{l}",
                        record.seq, record.kind
                    );
                }
                serde_json::from_str(l).unwrap()
            })
            .collect()
    }

    pub fn audit_file(&self) -> PathBuf {
        self.state.join("audit").join("audit.jsonl")
    }
}

/// The test-only override of the ports `cordon init` looks for model servers on: empty
/// (none) unless a test sets it, so the developer's own servers never end up in a config.
pub const INIT_PROBE_PORTS_ENV: &str = "CORDON_INIT_PROBE_PORTS";

/// The hidden override that points `cordon audit`'s metadata probes at a loopback address
/// (`posture::METADATA_PROBE_ENV`).
pub const METADATA_PROBE_ENV: &str = "CORDON_METADATA_PROBE_ADDR";

/// A loopback listener standing in for the cloud metadata service: it accepts and counts
/// connections. No test may send a packet to 169.254.169.254.
pub struct MetadataStandIn {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl MetadataStandIn {
    pub fn start() -> MetadataStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        MetadataStandIn { addr, connections }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// This test process's stand-in, which every [`Install::command`] points at.
pub fn metadata_stand_in() -> &'static MetadataStandIn {
    static STAND_IN: OnceLock<MetadataStandIn> = OnceLock::new();
    STAND_IN.get_or_init(MetadataStandIn::start)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Records of `kind` (snake_case).
/// The session id `cordon run` printed on stderr.
pub fn session_of(out: &std::process::Output) -> String {
    let err = text(&out.stderr);
    err.lines()
        .find_map(|l| l.strip_prefix("session "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no session line in:\n{err}"))
        .to_string()
}

pub fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

/// The decision records, as (decision, reason) text pairs.
pub fn decisions(records: &[Value]) -> Vec<(String, String)> {
    of_kind(records, "decision")
        .into_iter()
        .map(|r| {
            let d = &r["data"];
            (
                d["decision"].as_str().unwrap_or_default().to_string(),
                d["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "cordon failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `data` of every record of `kind`, as JSON text (to search in).
pub fn data_of(records: &[Value], kind: &str) -> Vec<String> {
    of_kind(records, kind)
        .into_iter()
        .map(|r| r["data"].to_string())
        .collect()
}

/// A reply that calls one tool.
pub fn tool(name: &str, args: Value) -> testkit::Reply {
    testkit::Reply::ToolCalls(vec![testkit::ScriptedCall {
        name: name.into(),
        arguments: args,
    }])
}

/// What happened to the proposal whose arguments contain `needle`: the decision record
/// and the result record for the same call.
pub fn outcome<'a>(
    records: &'a [Value],
    tool_name: &str,
    needle: &str,
) -> (Option<&'a Value>, Option<&'a Value>) {
    let proposal = of_kind(records, "tool_proposed")
        .into_iter()
        .find(|r| r["data"]["tool"] == tool_name && r["data"].to_string().contains(needle))
        .unwrap_or_else(|| {
            panic!("no {tool_name} proposal containing {needle:?} in the audit log")
        });
    let call_id = proposal["data"]["call_id"].clone();
    let decision = of_kind(records, "decision")
        .into_iter()
        .find(|r| r["data"]["call_id"] == call_id);
    let result = of_kind(records, "tool_result")
        .into_iter()
        .find(|r| r["data"]["call_id"] == call_id);
    (decision, result)
}

/// The proposal containing `needle` was refused, and the refusal is in the audit log:
/// either a `deny` decision or an error result. Returns the refusal record's text.
pub fn assert_refused(records: &[Value], tool_name: &str, needle: &str) -> String {
    let (decision, result) = outcome(records, tool_name, needle);
    if let Some(d) = decision
        && d["data"]["decision"] == "deny"
    {
        return d.to_string();
    }
    let r =
        result.unwrap_or_else(|| panic!("{tool_name} {needle:?}: no decision=deny and no result"));
    assert_eq!(
        r["data"]["is_error"], true,
        "{tool_name} {needle:?} was not refused: {r}"
    );
    r.to_string()
}

/// The tool results the model received, from the LLM's request log: (name or id, text).
pub fn tool_results_seen_by_model(requests: &[Value]) -> Vec<String> {
    let Some(last) = requests.last() else {
        return Vec::new();
    };
    last["messages"]
        .as_array()
        .map(|msgs| {
            msgs.iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| m["content"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

/// Start `cordon serve ARGS` and return it with the URL it printed (the rest of its
/// stdout is drained so the gateway never blocks on it).
pub async fn serve_gateway(inst: &Install, args: &[&str]) -> (tokio::process::Child, String) {
    let (child, url, _) = serve_gateway_banner(inst, args).await;
    (child, url)
}

/// [`serve_gateway`], also returning the banner's second line (how to log in).
pub async fn serve_gateway_banner(
    inst: &Install,
    args: &[&str],
) -> (tokio::process::Child, String, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = inst
        .command()
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("serve printed nothing")
            .unwrap()
            .expect("serve exited")
    };
    let first = next().await;
    let second = next().await;
    let url = first
        .strip_prefix("cordon gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, second)
}

/// A self-signed certificate for `localhost` in `tls/cert.pem` and `tls/key.pem` next to
/// the config (where `tls_cert = "tls/cert.pem"` finds them); returns the certificate.
pub fn write_tls(inst: &Install) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = inst.config.parent().unwrap().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.pem()
}

/// `cordon secrets set NAME --hosts HOSTS` with `value` on stdin.
pub async fn set_secret(inst: &Install, name: &str, hosts: &str, value: &str) {
    let out = inst
        .cordon_stdin(
            &["secrets", "set", name, "--hosts", hosts],
            &format!("{value}\n"),
        )
        .await;
    assert_ok(&out);
}

/// `cordon token create --scope SCOPE`: the token it printed.
pub async fn gateway_token(inst: &Install, scope: &str) -> String {
    let out = inst
        .cordon(&["token", "create", "--scope", scope, "--name", scope])
        .await;
    assert_ok(&out);
    text(&out.stdout).trim().to_string()
}

/// Wait until a sent message satisfies `pred`; return it.
pub async fn sent_matching(
    tg: &testkit::FakeTelegram,
    what: &str,
    pred: impl Fn(&testkit::telegram::SentCall) -> bool,
) -> testkit::telegram::SentCall {
    sent_matching_within(tg, what, Duration::from_secs(30), pred).await
}

/// [`sent_matching`] with its own deadline, for a wait that includes the server's own
/// timers (an approval's timeout and the grace after it).
pub async fn sent_matching_within(
    tg: &testkit::FakeTelegram,
    what: &str,
    within: Duration,
    pred: impl Fn(&testkit::telegram::SentCall) -> bool,
) -> testkit::telegram::SentCall {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(s) = tg.sent().into_iter().find(|s| pred(s)) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no message {what}; sent: {:#?}", tg.sent());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
