//! The model connection: Cordon's own egress, allowed only to the configured `base_url`.
//!
//! The agent crate speaks the provider protocols but opens no socket; it sends requests
//! through a [`ModelEndpoint`], which refuses any URL outside `base_url` and never uses
//! proxy variables from the environment.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("model endpoint `{0}` is not a valid http(s) URL")]
    BadBaseUrl(String),
    #[error("refusing to send to `{0}`: outside the configured model base_url")]
    OutsideBase(String),
    #[error("cannot reach the model at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("model request to {url} timed out after {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("error reading the model's response from {url}: {detail}")]
    Body { url: String, detail: String },
}

#[derive(Clone)]
pub struct ModelEndpoint {
    base: String,
    client: reqwest::Client,
    timeout: Duration,
}

/// A response whose status is known and whose body has not been read yet.
pub struct ModelResponse {
    pub status: u16,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    url: String,
    inner: reqwest::Response,
}

impl ModelEndpoint {
    pub fn new(base_url: &str, timeout: Duration) -> Result<ModelEndpoint, TransportError> {
        let base = base_url.trim_end_matches('/').to_string();
        let ok = (base.starts_with("http://") || base.starts_with("https://"))
            && reqwest::Url::parse(&base).is_ok();
        if !ok {
            return Err(TransportError::BadBaseUrl(base_url.to_string()));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(timeout))
            // An idle timeout, not a total one: a long streamed answer that keeps
            // arriving is fine; a model that goes silent for `timeout` is abandoned.
            .read_timeout(timeout)
            .build()
            .map_err(|e| TransportError::Unreachable {
                url: base.clone(),
                detail: e.to_string(),
            })?;
        Ok(ModelEndpoint {
            base,
            client,
            timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// POST a JSON body to `base_url` + `path` (`path` starts with `/`).
    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> Result<ModelResponse, TransportError> {
        let url = self.url(path)?;
        let req = self.client.post(&url).json(body);
        self.send(url, req, headers).await
    }

    /// GET `base_url` + `path` (`path` starts with `/`): the model list, or a check that
    /// the server answers at all.
    pub async fn get(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<ModelResponse, TransportError> {
        let url = self.url(path)?;
        let req = self.client.get(&url);
        self.send(url, req, headers).await
    }

    fn url(&self, path: &str) -> Result<String, TransportError> {
        if !path.starts_with('/') || path.contains("..") || path.contains("://") {
            return Err(TransportError::OutsideBase(path.to_string()));
        }
        Ok(format!("{}{}", self.base, path))
    }

    async fn send(
        &self,
        url: String,
        mut req: reqwest::RequestBuilder,
        headers: &[(&str, String)],
    ) -> Result<ModelResponse, TransportError> {
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.map_err(|e| self.classify(&url, e))?;
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok(ModelResponse {
            status: resp.status().as_u16(),
            retry_after,
            url,
            inner: resp,
        })
    }

    fn classify(&self, url: &str, e: reqwest::Error) -> TransportError {
        if e.is_timeout() {
            TransportError::Timeout {
                url: url.to_string(),
                secs: self.timeout.as_secs(),
            }
        } else {
            let mut detail = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                src = s.source();
            }
            TransportError::Unreachable {
                url: url.to_string(),
                detail,
            }
        }
    }
}

impl ModelResponse {
    /// The whole body as text.
    pub async fn text(self) -> Result<String, TransportError> {
        let url = self.url;
        self.inner.text().await.map_err(|e| TransportError::Body {
            url,
            detail: e.to_string(),
        })
    }

    /// The body as a stream of chunks (for server-sent events).
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, TransportError>> + Send + Unpin {
        let url = self.url;
        self.inner.bytes_stream().map(move |r| {
            r.map_err(|e| TransportError::Body {
                url: url.clone(),
                detail: e.to_string(),
            })
        })
    }
}
