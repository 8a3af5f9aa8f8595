//! A throwaway Matrix homeserver for tests: the real Synapse (PyPI `matrix-synapse`, run by
//! Debian's `/usr/bin/python3`) on `127.0.0.1` at a free port, with SQLite, its
//! configuration, signing key, database and media in a temporary directory. No federation
//! (client listener only, no key servers, empty federation allowlist), no presence, and
//! rate limits raised so tests are limited only where they ask to be
//! ([`Synapse::limit_messages`]). Users are registered through the shared-secret admin API.
//!
//! Dropping the [`Synapse`] stops the server (also when the test panicked) and removes the
//! directory; the server is also started with `setpriv --pdeathsig KILL` where available,
//! so a test process that is killed does not leave it running. When `matrix-synapse` is not
//! installed, [`Synapse::start`] panics naming the package: the Matrix tests fail instead of
//! skipping.
//!
//! Start-up: most of a fresh start is Synapse creating its schema, so the first start of
//! each Synapse version prepares a template database (`$TMPDIR/cordon-synapse-VERSION.db`)
//! and later starts copy it. Measured on a loaded 2-core machine: about 2 s from a copy of
//! the template (1.3 s of it Python importing Synapse) against 2.7–4.2 s on a fresh
//! database; a restart on the same database about 1.8 s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PYTHON: &str = "/usr/bin/python3";
/// The server name: user ids are `@name:localhost`.
pub const SERVER_NAME: &str = "localhost";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway homeserver; see the module docs.
pub struct Synapse {
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
    child: Option<Child>,
    http: reqwest::Client,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct MatrixUser {
    /// `@localpart:localhost`.
    pub user_id: String,
    pub access_token: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The installed Synapse's version; panics naming the package when there is none.
fn installed_version() -> String {
    let output = Command::new(PYTHON)
        .args([
            "-c",
            "import sys, synapse; sys.stdout.write(synapse.__version__)",
        ])
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            let version = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)),
                "an odd Synapse version: {version:?}"
            );
            version
        }
        _ => panic!(
            "Synapse is not installed for {PYTHON}: install the `matrix-synapse` PyPI \
             package ({PYTHON} -m pip install --break-system-packages matrix-synapse; \
             .ci/run does) to run the Matrix tests"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free loopback port")
        .port()
}

/// HMAC-SHA1 (RFC 2104), what Synapse's shared-secret registration asks for.
fn hmac_sha1(key: &[u8], message: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha1::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let mut inner = Sha1::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(message);
    let mut outer = Sha1::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(inner.finalize());
    outer
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unpadded_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

impl Synapse {
    /// Write the configuration, start the server and wait until it answers
    /// `/_matrix/client/versions`. Panics (with the server's log) when it does not.
    ///
    /// Call it (and [`Synapse::restart`]) from the test's own thread: the server is killed
    /// when the thread that started it ends (`--pdeathsig`), and a runtime's worker or
    /// blocking thread can end before the test does.
    pub fn start() -> Synapse {
        let version = installed_version();
        let dir = tempfile::Builder::new()
            .prefix("cordon-synapse")
            .tempdir()
            .expect("create a temporary directory for Synapse");
        let mut server = Synapse {
            dir,
            port: free_port(),
            secret: random_hex(24),
            child: None,
            // No pooled connections: they would outlive a restart.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client"),
        };
        server.write_config();
        server.prepare_database(&version);
        server.launch();
        server
    }

    /// Give the server a database with Synapse's schema already in it: a copy of this
    /// version's template in the temporary directory, made once (by the first test to
    /// need it) with Synapse's own `update_synapse_database`. Creating the schema is most
    /// of a fresh start-up. Any failure here only means a fresh database.
    fn prepare_database(&self, version: &str) {
        let template = std::env::temp_dir().join(format!("cordon-synapse-{version}.db"));
        let db = self.path("homeserver.db");
        if std::fs::copy(&template, &db).is_ok() {
            return;
        }
        let prepared = Command::new(PYTHON)
            .args([
                "-m",
                "synapse._scripts.update_synapse_database",
                "--run-background-updates",
                "--database-config",
            ])
            .arg(self.path("homeserver.yaml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !prepared {
            let _ = std::fs::remove_file(&db);
            return;
        }
        // Another test may be making the same template: each writes its own file and
        // renames it into place, so a reader sees a whole database or none.
        let partial = template.with_extension(format!("db.{}", std::process::id()));
        if std::fs::copy(&db, &partial).is_ok() {
            let _ = std::fs::rename(&partial, &template);
        }
        let _ = std::fs::remove_file(&partial);
    }

    /// The client-server API's base URL (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}/", self.port)).expect("loopback URL")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stop the server (connections are refused until [`Synapse::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the stopped server again, on the same port with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self) {
        let seed = random_hex(32);
        let seed: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        std::fs::write(
            self.path("signing.key"),
            format!("ed25519 a_test {}\n", unpadded_base64(&seed)),
        )
        .expect("write the signing key");
        let log = self.path("homeserver.log");
        std::fs::write(
            self.path("log.yaml"),
            format!(
                "version: 1\n\
                 formatters:\n  precise:\n    format: '%(asctime)s %(name)s %(levelname)s %(message)s'\n\
                 handlers:\n  file:\n    class: logging.FileHandler\n    formatter: precise\n    filename: {}\n\
                 root:\n  level: WARNING\n  handlers: [file]\n\
                 disable_existing_loggers: false\n",
                log.display()
            ),
        )
        .expect("write the log configuration");
        // Every rate limit a test could hit by accident, raised; per-user overrides
        // (limit_messages) bring one back.
        let generous = "{per_second: 10000, burst_count: 100000}";
        let config = format!(
            r#"server_name: "{SERVER_NAME}"
pid_file: {dir}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {dir}/homeserver.db
log_config: {dir}/log.yaml
media_store_path: {dir}/media
max_upload_size: 50M
registration_shared_secret: "{secret}"
enable_registration: false
report_stats: false
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
signing_key_path: {dir}/signing.key
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
presence:
  enabled: false
enable_metrics: false
url_preview_enabled: false
rc_message: {generous}
rc_registration: {generous}
rc_login:
  address: {generous}
  account: {generous}
  failed_attempts: {generous}
rc_joins:
  local: {generous}
  remote: {generous}
rc_joins_per_room: {generous}
rc_invites:
  per_room: {generous}
  per_user: {generous}
  per_issuer: {generous}
rc_admin_redaction: {generous}
rc_media_create: {generous}
rc_room_creation: {generous}
rc_presence:
  per_user: {generous}
rc_delayed_event_mgmt: {generous}
rc_reports: {generous}
"#,
            dir = self.dir.path().display(),
            port = self.port,
            secret = self.secret,
            macaroon = random_hex(24),
            form = random_hex(24),
        );
        std::fs::write(self.path("homeserver.yaml"), config).expect("write homeserver.yaml");
    }

    fn launch(&mut self) {
        let config = self.path("homeserver.yaml");
        let stdout = std::fs::File::create(self.path("stdout.log")).expect("create stdout.log");
        let stderr = stdout.try_clone().expect("clone stdout.log");
        let with_setpriv = Path::new("/usr/bin/setpriv").exists();
        let mut command = if with_setpriv {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "--", PYTHON]);
            c
        } else {
            Command::new(PYTHON)
        };
        command
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command.spawn().expect("start Synapse");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.answers_versions() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "Synapse exited ({status}) before it answered:\n{}",
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "Synapse did not answer within {START_TIMEOUT:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers_versions(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /_matrix/client/versions HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200")
    }

    /// The server's output and log, for failure messages.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.path("stdout.log")).unwrap_or_default();
        let log = std::fs::read_to_string(self.path("homeserver.log")).unwrap_or_default();
        format!("--- stdout/stderr\n{out}\n--- homeserver.log\n{log}")
    }

    fn endpoint(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Call the client-server API as `user` (or unauthenticated); panics unless it answers
    /// 2xx, returning the JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<&MatrixUser>,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.http.request(method.clone(), self.endpoint(path));
        if let Some(user) = user {
            request = request.bearer_auth(&user.access_token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    /// Register `localpart` through the shared-secret admin API.
    pub async fn register(&self, localpart: &str) -> MatrixUser {
        self.register_as(localpart, false).await
    }

    /// Register a server administrator (for the admin API: rate-limit overrides).
    pub async fn register_admin(&self, localpart: &str) -> MatrixUser {
        self.register_as(localpart, true).await
    }

    async fn register_as(&self, localpart: &str, admin: bool) -> MatrixUser {
        let path = "/_synapse/admin/v1/register";
        let nonce = self.call(reqwest::Method::GET, path, None, None).await["nonce"]
            .as_str()
            .expect("a registration nonce")
            .to_string();
        let password = random_hex(16);
        let message = format!(
            "{nonce}\0{localpart}\0{password}\0{}",
            if admin { "admin" } else { "notadmin" }
        );
        let mac = hmac_sha1(self.secret.as_bytes(), message.as_bytes());
        let answer = self
            .call(
                reqwest::Method::POST,
                path,
                None,
                Some(json!({
                    "nonce": nonce, "username": localpart, "password": password,
                    "admin": admin, "mac": mac,
                })),
            )
            .await;
        MatrixUser {
            user_id: answer["user_id"].as_str().expect("user_id").to_string(),
            access_token: answer["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
        }
    }

    /// Create a room as `creator`, inviting `invite` (a direct chat when `direct`).
    /// Returns the room id.
    pub async fn create_room(
        &self,
        creator: &MatrixUser,
        direct: bool,
        invite: &[&MatrixUser],
    ) -> String {
        let invite: Vec<&str> = invite.iter().map(|u| u.user_id.as_str()).collect();
        let preset = if direct {
            "trusted_private_chat"
        } else {
            "private_chat"
        };
        let answer = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(creator),
                Some(json!({ "preset": preset, "is_direct": direct, "invite": invite })),
            )
            .await;
        answer["room_id"].as_str().expect("room_id").to_string()
    }

    /// Invite `user` into `room` as `by`.
    pub async fn invite(&self, by: &MatrixUser, room: &str, user: &MatrixUser) {
        self.call(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", encode(room)),
            Some(by),
            Some(json!({ "user_id": user.user_id })),
        )
        .await;
    }

    /// `user` joins `room` (after an invite).
    pub async fn join(&self, user: &MatrixUser, room: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/join/{}", encode(room)),
            Some(user),
            Some(json!({})),
        )
        .await;
    }

    /// The ids of the room's joined members.
    pub async fn joined_members(&self, user: &MatrixUser, room: &str) -> Vec<String> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/rooms/{}/joined_members", encode(room)),
                Some(user),
                None,
            )
            .await;
        answer["joined"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Send any room event; returns its event id.
    pub async fn send_event(
        &self,
        user: &MatrixUser,
        room: &str,
        event_type: &str,
        content: Value,
    ) -> String {
        let txn = random_hex(8);
        let answer = self
            .call(
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/{}/{txn}",
                    encode(room),
                    encode(event_type)
                ),
                Some(user),
                Some(content),
            )
            .await;
        answer["event_id"].as_str().expect("event_id").to_string()
    }

    /// Send a plain text message; returns its event id.
    pub async fn send_text(&self, user: &MatrixUser, room: &str, body: &str) -> String {
        self.send_event(
            user,
            room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": body }),
        )
        .await
    }

    /// Upload bytes to the media repository; returns the `mxc://` URI.
    pub async fn upload(
        &self,
        user: &MatrixUser,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> String {
        let response = self
            .http
            .post(self.endpoint("/_matrix/media/v3/upload"))
            .query(&[("filename", name)])
            .bearer_auth(&user.access_token)
            .header("Content-Type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "upload: {status} {text}");
        let answer: Value = serde_json::from_str(&text).expect("upload answer");
        answer["content_uri"]
            .as_str()
            .expect("content_uri")
            .to_string()
    }

    /// Upload `bytes` and send them as an `m.file` message (with `caption`, when given,
    /// as the body and the name in `filename`). Returns (event id, mxc URI).
    pub async fn send_file(
        &self,
        user: &MatrixUser,
        room: &str,
        name: &str,
        bytes: Vec<u8>,
        caption: Option<&str>,
    ) -> (String, String) {
        let size = bytes.len();
        let mxc = self
            .upload(user, name, "application/octet-stream", bytes)
            .await;
        let mut content = json!({
            "msgtype": "m.file", "body": caption.unwrap_or(name), "url": mxc,
            "info": { "size": size, "mimetype": "application/octet-stream" },
        });
        if caption.is_some() {
            content["filename"] = json!(name);
        }
        let event = self.send_event(user, room, "m.room.message", content).await;
        (event, mxc)
    }

    /// React to `event` with `key` (`m.reaction`); returns the reaction's event id.
    pub async fn react(&self, user: &MatrixUser, room: &str, event: &str, key: &str) -> String {
        self.send_event(
            user,
            room,
            "m.reaction",
            json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": event, "key": key } }),
        )
        .await
    }

    /// One event of a room, as `user` sees it.
    pub async fn event(&self, user: &MatrixUser, room: &str, event: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                encode(room),
                encode(event)
            ),
            Some(user),
            None,
        )
        .await
    }

    /// The room's latest `limit` timeline events, newest first.
    pub async fn messages(&self, user: &MatrixUser, room: &str, limit: u32) -> Vec<Value> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}",
                    encode(room)
                ),
                Some(user),
                None,
            )
            .await;
        answer["chunk"].as_array().cloned().unwrap_or_default()
    }

    /// Limit `user` to `per_second` messages with bursts of `burst` (admin API, as
    /// `admin`): their next sends beyond the burst are answered 429.
    pub async fn limit_messages(
        &self,
        admin: &MatrixUser,
        user: &MatrixUser,
        per_second: u32,
        burst: u32,
    ) {
        self.call(
            reqwest::Method::POST,
            &format!(
                "/_synapse/admin/v1/users/{}/override_ratelimit",
                encode(&user.user_id)
            ),
            Some(admin),
            Some(json!({ "messages_per_second": per_second, "burst_count": burst })),
        )
        .await;
    }
}

/// Percent-encode one path segment (room ids hold `!` and `:`, user ids `@`).
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2.
        assert_eq!(
            hmac_sha1(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
