//! Shipping the audit log to a central collector (`[audit.export]`): `cordon serve` ships
//! new records every `interval_secs`, `cordon log export` ships what is pending once.
//!
//! Guarantees: records are sent in order, as the exact lines stored (hash chain
//! included), in `application/x-ndjson` batches; a batch counts as delivered only on a
//! 2xx answer, and only then does the cursor (`STATE/audit-export.json`: URL, last seq
//! and its hash) move, so an outage or a restart resends from the first undelivered
//! record (at least once, never a gap); the log is read through the verifying reader, so
//! a damaged log is not shipped, and a log whose record at the cursor no longer has the
//! hash that was shipped (replaced or rewritten) is refused with an error instead of
//! being sent as if it continued. Changing `url` starts over for the new collector.
//!
//! Does not: deduplicate on the collector's side (a batch whose answer was lost is sent
//! again: records carry `seq` and `hash` to deduplicate by).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use config::AuditExportConfig;
use serde::{Deserialize, Serialize};

/// Longest a collector may take to answer one batch.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    url: String,
    seq: u64,
    hash: String,
}

pub struct Exporter {
    audit_dir: PathBuf,
    cursor_file: PathBuf,
    url: String,
    token: Option<String>,
    batch: usize,
    http: reqwest::Client,
}

/// What one shipment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub records: u64,
    /// The last delivered seq (0 if none ever).
    pub through: u64,
}

impl Exporter {
    pub fn new(state_dir: &Path, audit_dir: &Path, cfg: &AuditExportConfig) -> Result<Exporter> {
        let token = match &cfg.token_env {
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .with_context(|| {
                        format!("[audit.export] token_env names `{var}`, which is not set")
                    })?,
            ),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("cannot build the HTTP client for the audit export")?;
        Ok(Exporter {
            audit_dir: audit_dir.to_path_buf(),
            cursor_file: state_dir.join("audit-export.json"),
            url: cfg.url.clone(),
            token,
            batch: cfg.batch.max(1),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn cursor(&self) -> Result<Cursor> {
        match std::fs::read(&self.cursor_file) {
            Ok(bytes) => {
                let c: Cursor = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{} is damaged; delete it to export everything again",
                        self.cursor_file.display()
                    )
                })?;
                Ok(if c.url == self.url {
                    c
                } else {
                    Cursor::default()
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.cursor_file.display())),
        }
    }

    fn save(&self, c: &Cursor) -> Result<()> {
        let tmp = self.cursor_file.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(c)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.cursor_file)
            .with_context(|| format!("cannot write {}", self.cursor_file.display()))
    }

    /// Send every record not yet delivered. Stops at the first failed batch (what was
    /// delivered before it stays delivered).
    pub async fn ship(&self) -> Result<Shipped> {
        let mut cursor = self.cursor()?;
        let dir = self.audit_dir.clone();
        let records = tokio::task::spawn_blocking(move || audit::read(&dir))
            .await?
            .context("the audit log cannot be read (it is not shipped)")?;
        if cursor.seq > 0 {
            match records.iter().find(|r| r.seq == cursor.seq) {
                Some(r) if r.hash == cursor.hash => {}
                _ => bail!(
                    "the audit log no longer holds record #{} as it was shipped to {} (the \
                     log was replaced or rewritten); nothing was sent",
                    cursor.seq,
                    self.url
                ),
            }
        }
        let pending: Vec<&audit::Record> = records.iter().filter(|r| r.seq > cursor.seq).collect();
        let mut sent = 0u64;
        for chunk in pending.chunks(self.batch) {
            let mut body = String::new();
            for r in chunk {
                body.push_str(&r.line());
                body.push('\n');
            }
            let mut req = self
                .http
                .post(&self.url)
                .header("content-type", "application/x-ndjson")
                .header("x-cordon-first-seq", chunk[0].seq.to_string())
                .body(body);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let res = req
                .send()
                .await
                .with_context(|| format!("cannot reach the audit collector {}", self.url))?;
            if !res.status().is_success() {
                bail!(
                    "the audit collector {} answered {} for records #{}-#{}",
                    self.url,
                    res.status(),
                    chunk[0].seq,
                    chunk[chunk.len() - 1].seq
                );
            }
            let last = chunk[chunk.len() - 1];
            cursor = Cursor {
                url: self.url.clone(),
                seq: last.seq,
                hash: last.hash.clone(),
            };
            self.save(&cursor)?;
            sent += chunk.len() as u64;
        }
        Ok(Shipped {
            records: sent,
            through: cursor.seq,
        })
    }
}

/// Ship every `interval` until the process ends; a failure is logged and recorded as an
/// `alert` once per outage, and retried at the next tick.
pub async fn run(exporter: Exporter, interval: Duration, audit: std::sync::Arc<audit::Log>) {
    let mut tick = tokio::time::interval(interval);
    let mut failing = false;
    loop {
        tick.tick().await;
        match exporter.ship().await {
            Ok(_) => {
                if failing {
                    tracing::info!("audit export to {} works again", exporter.url());
                }
                failing = false;
            }
            Err(e) => {
                tracing::warn!("audit export: {e:#}");
                if !failing {
                    let _ = audit.record(
                        audit::EventKind::Alert,
                        None,
                        serde_json::json!({
                            "alert": "audit_export_failing",
                            "url": exporter.url(),
                            "error": format!("{e:#}"),
                        }),
                    );
                }
                failing = true;
            }
        }
    }
}
