//! Sending one request with retries, and reading answers within a size limit.
//!
//! Retried: HTTP 429, 500-599, and transport failures (connect, timeout, body cut while
//! reading a non-streamed answer). Not retried: any other status, and a stream once it has
//! started. The delay doubles from `base_delay`, plus up to 10% jitter, capped by
//! `max_delay`; a `Retry-After` from the server replaces it, capped by `max_delay` too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use runtime::{ModelEndpoint, ModelResponse, TransportError};

use super::{MAX_RESPONSE_BYTES, OnRetry, ProviderError, RetryPolicy, Retrying};

/// How many characters of a server's answer an error quotes.
const EXCERPT_CHARS: usize = 200;

/// The connection to the model, with its retry policy and credentials.
pub(super) struct Wire {
    endpoint: ModelEndpoint,
    retry: RetryPolicy,
    api_key: Option<String>,
    api_key_env: Option<String>,
    /// Told of each retry; without it, each is a warning in the log.
    on_retry: Option<OnRetry>,
}

/// What a successful send produced.
pub(super) enum Answer {
    /// The whole body of a non-streamed answer.
    Body(String),
    /// A 2xx response whose (streamed) body has not been read.
    Stream(ModelResponse),
}

struct Failure {
    error: ProviderError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Wire {
    pub(super) fn new(
        endpoint: ModelEndpoint,
        retry: RetryPolicy,
        api_key: Option<String>,
        api_key_env: Option<String>,
    ) -> Wire {
        Wire {
            endpoint,
            retry,
            api_key,
            api_key_env,
            on_retry: None,
        }
    }

    pub(super) fn reporting_to(mut self, on_retry: Option<OnRetry>) -> Wire {
        self.on_retry = on_retry;
        self
    }

    pub(super) fn base_url(&self) -> &str {
        self.endpoint.base_url()
    }

    pub(super) fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.endpoint.base_url(), path)
    }

    /// POST `body` to `path`, retrying per the policy. With `stream`, the 2xx response is
    /// handed back unread; otherwise its whole body is read (within the size limit).
    pub(super) async fn send(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
        stream: bool,
    ) -> Result<Answer, ProviderError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let failure = match self.once(path, headers, body, stream).await {
                Ok(answer) => return Ok(answer),
                Err(f) => f,
            };
            if !failure.retryable {
                return Err(failure.error);
            }
            if attempt > self.retry.max_retries {
                if attempt == 1 {
                    return Err(failure.error);
                }
                return Err(ProviderError::GaveUp {
                    url: self.url(path),
                    attempts: attempt,
                    last: Box::new(failure.error),
                });
            }
            let delay = self.delay(attempt, failure.retry_after);
            match &self.on_retry {
                Some(report) => {
                    tracing::debug!(
                        url = %self.url(path), attempt, delay_ms = delay.as_millis() as u64,
                        error = %failure.error, "model request failed; retrying"
                    );
                    report(&Retrying {
                        attempt,
                        attempts: self.retry.max_retries + 1,
                        delay,
                        error: &failure.error,
                    });
                }
                None => tracing::warn!(
                    url = %self.url(path), attempt, delay_ms = delay.as_millis() as u64,
                    error = %failure.error, "model request failed; retrying"
                ),
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// GET `path` once, no retry: the status and the body (within the size limit).
    pub(super) async fn get(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<(u16, String), ProviderError> {
        let resp = self
            .endpoint
            .get(path, headers)
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status;
        let text = self.read_all(&self.url(path), resp.bytes_stream()).await?;
        Ok((status, text))
    }

    /// The error for a 401/403 answer to `path`.
    pub(super) fn unauthorized(&self, path: &str, status: u16, text: &str) -> ProviderError {
        ProviderError::Unauthorized {
            url: self.url(path),
            status,
            excerpt: self.excerpt(text),
            what_to_do: self.key_advice(),
        }
    }

    fn key_advice(&self) -> String {
        match &self.api_key_env {
            Some(env) => format!("check the API key in ${env}"),
            None => "set model.api_key_env to the environment variable that holds the API key"
                .to_string(),
        }
    }

    async fn once(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
        stream: bool,
    ) -> Result<Answer, Failure> {
        let resp = self
            .endpoint
            .post_json(path, headers, body)
            .await
            .map_err(|e| Failure {
                retryable: !matches!(
                    e,
                    TransportError::BadBaseUrl(_) | TransportError::OutsideBase(_)
                ),
                error: self.transport(e),
                retry_after: None,
            })?;
        let status = resp.status;
        let url = self.url(path);
        if (200..300).contains(&status) {
            if stream {
                return Ok(Answer::Stream(resp));
            }
            return match self.read_all(&url, resp.bytes_stream()).await {
                Ok(text) => Ok(Answer::Body(text)),
                Err(error) => Err(Failure {
                    retryable: !error.is_malformed(),
                    error,
                    retry_after: None,
                }),
            };
        }
        let retry_after = resp.retry_after;
        // The error body only serves the message: a failure to read it is not an error.
        let text = self
            .read_all(&url, resp.bytes_stream())
            .await
            .unwrap_or_default();
        let excerpt = self.excerpt(&text);
        let retryable = status == 429 || (500..600).contains(&status);
        let error = match status {
            401 | 403 => ProviderError::Unauthorized {
                url,
                status,
                excerpt,
                what_to_do: self.key_advice(),
            },
            404 => ProviderError::NotFound { url, excerpt },
            429 => ProviderError::Http {
                url,
                status,
                excerpt,
                what_to_do: "the server is rate limiting: wait, or raise model.max_retries",
            },
            500..=599 => ProviderError::Http {
                url,
                status,
                excerpt,
                what_to_do: "the server failed: try again later or check its logs",
            },
            _ => ProviderError::Http {
                url,
                status,
                excerpt,
                what_to_do: "the server rejected the request: check model.model, \
                             model.max_tokens and the server's documentation",
            },
        };
        Err(Failure {
            error,
            retryable,
            retry_after,
        })
    }

    /// Read a whole body, refusing more than [`MAX_RESPONSE_BYTES`].
    async fn read_all(
        &self,
        url: &str,
        mut body: impl Stream<Item = Result<Bytes, TransportError>> + Unpin,
    ) -> Result<String, ProviderError> {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(self.too_large(url, &buf));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    pub(super) fn too_large(&self, url: &str, start: &[u8]) -> ProviderError {
        ProviderError::Malformed {
            url: url.to_string(),
            what: format!(
                "the response exceeds {} MiB",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            ),
            excerpt: self.excerpt(&String::from_utf8_lossy(start)),
        }
    }

    pub(super) fn malformed(&self, url: &str, what: impl Into<String>, got: &str) -> ProviderError {
        ProviderError::Malformed {
            url: url.to_string(),
            what: what.into(),
            excerpt: self.excerpt(got),
        }
    }

    pub(super) fn transport(&self, e: TransportError) -> ProviderError {
        match e {
            TransportError::BadBaseUrl(_) | TransportError::OutsideBase(_) => {
                ProviderError::Refused {
                    detail: e.to_string(),
                }
            }
            TransportError::Unreachable { url, detail } => ProviderError::Unreachable {
                url,
                detail: self.scrub(&detail),
            },
            // The connection was made; the answer broke off while being read.
            TransportError::Body { url, detail } => ProviderError::Interrupted {
                url,
                detail: self.scrub(&detail),
            },
            TransportError::Timeout { url, secs } => ProviderError::Timeout { url, secs },
        }
    }

    /// A short, single-line quote of a server's answer, without the API key.
    pub(super) fn excerpt(&self, text: &str) -> String {
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut out: String = flat.chars().take(EXCERPT_CHARS).collect();
        if flat.chars().count() > EXCERPT_CHARS {
            out.push('…');
        }
        if out.is_empty() {
            out.push_str("empty body");
        }
        self.scrub(&out)
    }

    fn scrub(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if key.len() >= 4 => text.replace(key.as_str(), "[REDACTED]"),
            _ => text.to_string(),
        }
    }

    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let max = self.retry.max_delay;
        if let Some(d) = retry_after {
            return d.min(max);
        }
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20));
        let base = exp.min(max);
        base.saturating_add(jitter(base / 10)).min(max)
    }
}

/// A pseudo-random duration in `[0, max]`; spreads out clients that failed together.
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let max_nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
    if max_nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(u64::from(nanos) % (max_nanos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(key: Option<&str>) -> Wire {
        let endpoint = ModelEndpoint::new("http://127.0.0.1:9/v1", Duration::from_secs(1)).unwrap();
        let retry = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        Wire::new(endpoint, retry, key.map(String::from), Some("K".into()))
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let w = wire(None);
        let d1 = w.delay(1, None);
        let d2 = w.delay(2, None);
        assert!(
            d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(110),
            "{d1:?}"
        );
        assert!(
            d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(220),
            "{d2:?}"
        );
        assert_eq!(w.delay(3, None), Duration::from_millis(350));
        assert_eq!(w.delay(30, None), Duration::from_millis(350));
        assert_eq!(
            w.delay(1, Some(Duration::from_secs(60))),
            Duration::from_millis(350)
        );
        assert_eq!(
            w.delay(1, Some(Duration::from_millis(20))),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn excerpts_are_short_flat_and_never_show_the_key() {
        let w = wire(Some("sk-secret-123"));
        let e = w.excerpt("bad key sk-secret-123\n\n  given");
        assert_eq!(e, "bad key [REDACTED] given");
        let long = "x".repeat(1000);
        assert!(w.excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(w.excerpt(""), "empty body");
    }
}
