//! Delivering audit records off the host, from a cursor: every record to the collector of
//! `[audit.export]`, and `alert` records to the webhook of `[alerts]`. `cordon serve`
//! runs one loop per destination; `cordon log export` delivers what is pending once.
//!
//! Guarantees, for both: records are sent in order; a request counts as delivered only on
//! a 2xx answer, and only then does that destination's cursor (`STATE/audit-export.json`,
//! `STATE/alerts-delivery.json`: last seq and its hash) move, so an outage or a restart
//! resends from the first undelivered record (at least once, never a gap); the log is
//! read through the verifying reader, so a damaged log is not sent, and a log whose
//! record at the cursor no longer has the hash it had (replaced or rewritten) is refused
//! with an error instead of being sent as if it continued.
//!
//! The collector gets the exact stored lines (hash chain included) in
//! `application/x-ndjson` batches; changing its `url` starts over for the new collector.
//! The webhook gets one `application/json` POST per alert, `{"text", "record"}`: a
//! one-line summary whose record-derived values cannot carry chat mentions, links or
//! markup, and the stored line itself. Changing `webhook_url` does not resend old alerts
//! (people already saw them). The webhook URL is treated as a credential (it is one for
//! Slack and Mattermost): only its scheme and host appear in errors, logs and records,
//! and the cursor does not hold it.
//!
//! Does not: deduplicate on the receiver's side (a request whose answer was lost is sent
//! again: records carry `seq` and `hash` to deduplicate by). A failing webhook is logged
//! and recorded as an `error` record, never as an `alert`, which it would then have to
//! deliver.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::{AlertFormat, AlertsConfig, AuditExportConfig};
use serde::{Deserialize, Serialize};

use crate::event::{Alert, ErrorEvent, ExportFailing, Failure, NamedAlert};
use crate::{AuditError, EventKind, Log, Record};

/// Longest a collector or webhook may take to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `cordon serve` looks for alerts to deliver.
pub const ALERT_INTERVAL: Duration = Duration::from_secs(2);
/// While a destination keeps failing, its warning is repeated at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Longest summary sent as an alert's `text`, in characters.
const SUMMARY_MAX: usize = 400;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The collector the cursor is for (empty for the webhook, whose URL is a credential).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    url: String,
    seq: u64,
    hash: String,
}

/// Which records go where, and how.
enum Route {
    /// `[audit.export]`: every record, as batches of stored lines.
    Collector { batch: usize },
    /// `[alerts]`: `alert` records, one POST each.
    Webhook { format: AlertFormat },
}

/// Why a delivery could not be set up, or a delivery run stopped. Messages show a webhook
/// URL only as scheme and host.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{table} token_env names `{var}`, which is not set")]
    TokenEnvUnset { table: &'static str, var: String },
    #[error("cannot build the HTTP client for the {what}: {source}")]
    Client {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("{} is damaged; delete it to deliver everything again: {source}", path.display())]
    CursorDamaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    CursorRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    CursorWrite(#[from] config::AtomicWriteError),
    #[error("the audit log cannot be read (it is not sent): {0}")]
    LogUnreadable(String),
    #[error(
        "the audit log no longer holds record #{seq} as it was when it was delivered to the \
         {what} {url} (the log was replaced or rewritten); nothing was sent"
    )]
    LogRewritten {
        seq: u64,
        what: &'static str,
        url: String,
    },
    #[error("cannot reach the {what} {url}: {error}")]
    Unreachable {
        what: &'static str,
        url: String,
        error: String,
    },
    #[error("the {what} {url} answered {status} for records #{first}-#{last}")]
    Rejected {
        what: &'static str,
        url: String,
        status: reqwest::StatusCode,
        first: u64,
        last: u64,
    },
}

/// One destination with its cursor.
pub struct Delivery {
    audit_dir: PathBuf,
    cursor_file: PathBuf,
    url: String,
    /// The URL as it may be shown.
    shown: String,
    token: Option<String>,
    route: Route,
    http: reqwest::Client,
}

/// What one delivery run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub records: u64,
    /// Every record up to this seq is delivered or not for this destination (0 if none).
    pub through: u64,
}

/// The value of the environment variable `var` names (`table` for the error).
fn token_from(var: Option<&str>, table: &'static str) -> Result<Option<String>, ExportError> {
    let Some(var) = var else {
        return Ok(None);
    };
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Some)
        .ok_or_else(|| ExportError::TokenEnvUnset {
            table,
            var: var.to_string(),
        })
}

fn client(what: &'static str) -> Result<reqwest::Client, ExportError> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|source| ExportError::Client { what, source })
}

/// `scheme://host[:port]/…`: a URL without the part that can be a credential.
fn without_path(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}/…", u.scheme())
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

impl Delivery {
    /// `[audit.export]`. A `token_env` that is not set is an error, not a silently
    /// unauthenticated export.
    pub fn audit_export(
        state_dir: &Path,
        audit_dir: &Path,
        cfg: &AuditExportConfig,
    ) -> Result<Delivery, ExportError> {
        Ok(Delivery {
            audit_dir: audit_dir.to_path_buf(),
            cursor_file: state_dir.join("audit-export.json"),
            url: cfg.url.clone(),
            shown: cfg.url.clone(),
            token: token_from(cfg.token_env.as_deref(), "[audit.export]")?,
            route: Route::Collector {
                batch: cfg.batch.max(1),
            },
            http: client("audit export")?,
        })
    }

    /// `[alerts]`.
    pub fn alerts(
        state_dir: &Path,
        audit_dir: &Path,
        cfg: &AlertsConfig,
    ) -> Result<Delivery, ExportError> {
        Ok(Delivery {
            audit_dir: audit_dir.to_path_buf(),
            cursor_file: state_dir.join("alerts-delivery.json"),
            url: cfg.webhook_url.clone(),
            shown: without_path(&cfg.webhook_url),
            token: token_from(cfg.token_env.as_deref(), "[alerts]")?,
            route: Route::Webhook { format: cfg.format },
            http: client("alert webhook")?,
        })
    }

    /// The destination's URL as it may be shown (the webhook's without its path).
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// "audit collector" or "alert webhook".
    pub fn what(&self) -> &'static str {
        match self.route {
            Route::Collector { .. } => "audit collector",
            Route::Webhook { .. } => "alert webhook",
        }
    }

    fn takes(&self, r: &Record) -> bool {
        match self.route {
            Route::Collector { .. } => true,
            Route::Webhook { .. } => r.kind == EventKind::Alert,
        }
    }

    /// The URL the cursor remembers: a new collector starts over, a new webhook does not.
    fn cursor_url(&self) -> &str {
        match self.route {
            Route::Collector { .. } => &self.url,
            Route::Webhook { .. } => "",
        }
    }

    fn cursor(&self) -> Result<Cursor, ExportError> {
        match std::fs::read(&self.cursor_file) {
            Ok(bytes) => {
                let c: Cursor = serde_json::from_slice(&bytes).map_err(|source| {
                    ExportError::CursorDamaged {
                        path: self.cursor_file.clone(),
                        source,
                    }
                })?;
                Ok(if c.url == self.cursor_url() {
                    c
                } else {
                    Cursor::default()
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
            Err(source) => Err(ExportError::CursorRead {
                path: self.cursor_file.clone(),
                source,
            }),
        }
    }

    fn save(&self, r: &Record) -> Result<Cursor, ExportError> {
        let c = Cursor {
            url: self.cursor_url().to_string(),
            seq: r.seq,
            hash: r.hash.clone(),
        };
        // Durable before the next batch goes out: a cursor lost in a crash would deliver
        // records twice, a torn one would stop delivery.
        let text = serde_json::to_vec(&c).expect("a cursor (strings and a number) serialises");
        config::atomic_write(&self.cursor_file, &text, 0o600)?;
        Ok(c)
    }

    /// One request carrying `records` (consecutive among those this route takes).
    fn request(&self, records: &[&Record]) -> reqwest::RequestBuilder {
        let req = match self.route {
            Route::Collector { .. } => {
                let mut body = String::new();
                for r in records {
                    body.push_str(&r.line());
                    body.push('\n');
                }
                self.http
                    .post(&self.url)
                    .header("content-type", "application/x-ndjson")
                    .header("x-cordon-first-seq", records[0].seq.to_string())
                    .body(body)
            }
            Route::Webhook {
                format: AlertFormat::Json,
            } => {
                // One alert per request ([`Delivery::ship`] sends chunks of one).
                let r = records[0];
                // The stored line as it is, so the receiver can check its hash.
                let body = format!(
                    "{{\"text\":{},\"record\":{}}}",
                    serde_json::Value::String(summary(r)),
                    r.line()
                );
                self.http
                    .post(&self.url)
                    .header("content-type", "application/json")
                    .body(body)
            }
        };
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Send every record not yet delivered. Stops at the first failed request (what was
    /// delivered before it stays delivered).
    pub async fn ship(&self) -> Result<Shipped, ExportError> {
        let mut cursor = self.cursor()?;
        let dir = self.audit_dir.clone();
        let records = tokio::task::spawn_blocking(move || crate::read(&dir))
            .await
            .map_err(|e| ExportError::LogUnreadable(e.to_string()))?
            .map_err(|e: AuditError| ExportError::LogUnreadable(e.to_string()))?;
        if cursor.seq > 0 {
            match records.iter().find(|r| r.seq == cursor.seq) {
                Some(r) if r.hash == cursor.hash => {}
                _ => {
                    return Err(ExportError::LogRewritten {
                        seq: cursor.seq,
                        what: self.what(),
                        url: self.shown.clone(),
                    });
                }
            }
        }
        let pending: Vec<&Record> = records
            .iter()
            .filter(|r| r.seq > cursor.seq && self.takes(r))
            .collect();
        let per_request = match self.route {
            Route::Collector { batch } => batch,
            Route::Webhook { .. } => 1,
        };
        let mut sent = 0u64;
        for chunk in pending.chunks(per_request) {
            let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
            let res = self
                .request(chunk)
                .send()
                .await
                .map_err(|e| ExportError::Unreachable {
                    what: self.what(),
                    url: self.shown.clone(),
                    error: e.without_url().to_string(),
                })?;
            if !res.status().is_success() {
                return Err(ExportError::Rejected {
                    what: self.what(),
                    url: self.shown.clone(),
                    status: res.status(),
                    first: first.seq,
                    last: last.seq,
                });
            }
            cursor = self.save(last)?;
            sent += chunk.len() as u64;
        }
        // Everything read was delivered or is not for this destination: move past it, so
        // the next run checks the log from here.
        if let Some(last) = records.last()
            && last.seq > cursor.seq
        {
            cursor = self.save(last)?;
        }
        Ok(Shipped {
            records: sent,
            through: cursor.seq,
        })
    }
}

/// The one-line `text` of an alert: its name and main facts. The facts come from the
/// record and may be an attacker's choice (a command, a host, a client address), so each
/// is inline code without backticks or line breaks, and `&`, `<`, `>` are escaped: no
/// mention (`<!channel>`), link or markup reaches the channel through them.
fn summary(r: &Record) -> String {
    let d = &r.data;
    let name = match d.get("alert").and_then(serde_json::Value::as_str) {
        Some(n) => n,
        None if d.get("credentials").is_some() => "secret_blocked_by_egress_proxy",
        None => "alert",
    };
    let mut text = format!("Cordon alert #{} {}", r.seq, chat_safe(name));
    let mut facts = Vec::new();
    for key in [
        "client",
        "failures",
        "lockout_secs",
        "action",
        "method",
        "host",
        "port",
        "credentials",
        "rule",
        "reason",
        "url",
        "error",
        "detail",
    ] {
        let value = match d.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            _ => continue,
        };
        facts.push(format!("{key} `{}`", chat_safe(&value)));
    }
    if let Some(s) = &r.session {
        facts.push(format!("session `{}`", chat_safe(s)));
    }
    if !facts.is_empty() {
        text.push_str(": ");
        text.push_str(&facts.join(", "));
    }
    if text.chars().count() > SUMMARY_MAX {
        text = text.chars().take(SUMMARY_MAX - 1).collect();
        text.push('…');
    }
    text
}

/// `s` as plain text inside inline code in Slack or Mattermost markup.
fn chat_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '`' => out.push('\''),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Deliver every `interval` until the process ends; a failure is logged (again at most
/// once a minute while it lasts) and retried at the next tick. An audit collector that
/// fails is recorded as an `alert` once per outage; a failing alert webhook as an `error`
/// record (an alert about it would only queue behind the alerts it cannot deliver).
pub async fn run(delivery: Delivery, interval: Duration, audit: Arc<Log>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    let mut warned = Instant::now();
    loop {
        tick.tick().await;
        match delivery.ship().await {
            Ok(_) => {
                if failing_since.take().is_some() {
                    tracing::info!(
                        "delivery to the {} {} works again",
                        delivery.what(),
                        delivery.shown_url()
                    );
                }
            }
            Err(e) => {
                let first = failing_since.is_none();
                if first || warned.elapsed() >= WARN_EVERY {
                    tracing::warn!("delivery to the {} failed: {e:#}", delivery.what());
                    warned = Instant::now();
                }
                if first {
                    failing_since = Some(Instant::now());
                    let error = format!("{e:#}");
                    let written = match delivery.route {
                        Route::Collector { .. } => audit.record_event(
                            None,
                            Alert::Named(NamedAlert::AuditExportFailing(ExportFailing {
                                url: delivery.shown_url().to_string(),
                                error,
                            })),
                        ),
                        Route::Webhook { .. } => audit.record_event(
                            None,
                            ErrorEvent::Other(Failure {
                                webhook: Some(delivery.shown_url().to_string()),
                                ..Failure::new("alert_delivery", error)
                            }),
                        ),
                    };
                    if let Err(e) = written {
                        // Nothing else will say it: the log itself is what failed.
                        tracing::error!(
                            "the audit log cannot record that delivery to the {} fails: {e}",
                            delivery.what()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(data: serde_json::Value, session: Option<&str>) -> Record {
        Record::new(
            7,
            "2026-01-01T00:00:00Z".into(),
            EventKind::Alert,
            session.map(str::to_string),
            data,
            crate::GENESIS_HASH.into(),
        )
    }

    #[test]
    fn a_summary_names_the_alert_and_its_facts() {
        let r = alert(
            serde_json::json!({"alert": "login_burst", "client": "203.0.113.9",
                "failures": 10, "max_failures": 10, "lockout_secs": 900}),
            None,
        );
        assert_eq!(
            summary(&r),
            "Cordon alert #7 login_burst: client `203.0.113.9`, failures `10`, lockout_secs `900`"
        );
    }

    #[test]
    fn record_values_cannot_smuggle_mentions_links_or_lines_into_the_channel() {
        let r = alert(
            serde_json::json!({"alert": "data_exfiltration_blocked",
                "action": "exec: curl <!channel> <https://evil.example|click> `x` & \n\r done",
                "rule": "label.secret"}),
            Some("s-1"),
        );
        let s = summary(&r);
        assert!(!s.contains('<') && !s.contains('>'), "{s}");
        assert!(!s.contains('\n') && !s.contains('\r'), "{s}");
        assert_eq!(s.matches('`').count(), 6, "only our own code spans: {s}");
        assert!(s.contains("&lt;!channel&gt;"), "{s}");
        assert!(s.contains("session `s-1`"), "{s}");
        let long = alert(
            serde_json::json!({"alert": "x", "detail": "y".repeat(2000)}),
            None,
        );
        assert_eq!(summary(&long).chars().count(), SUMMARY_MAX);
    }

    #[test]
    fn a_webhook_url_is_shown_without_its_path() {
        assert_eq!(
            without_path("https://hooks.slack.com/services/T0/B0/secretpart"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            without_path("http://127.0.0.1:9000/hook?k=v"),
            "http://127.0.0.1:9000/…"
        );
    }
}
