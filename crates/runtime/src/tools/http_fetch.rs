//! `http_fetch` v1: HTTP straight from the runtime, isolated here so that a later version
//! can move it behind the egress proxy without touching the rest.
//!
//! Guarantees: only `http`/`https` URLs; environment proxy variables are ignored
//! (`no_proxy`); redirects are never followed by the client — each hop (at most
//! [`MAX_REDIRECTS`]) is handed to the caller's check (the guard) before it is requested,
//! and credentials headers are dropped when a redirect changes origin; the body is read
//! up to [`MAX_BODY`] bytes and the cut is reported.
//!
//! Not guaranteed (v1): DNS answers are not checked, so an allowed name that resolves to
//! a private address is reached; the sandbox's own network is unaffected (it has none).

use std::fmt::Write as _;
use std::time::Duration;

use super::{HttpFetchArgs, Method, ToolOutput};

pub(crate) const MAX_REDIRECTS: usize = 5;
pub(crate) const MAX_BODY: usize = 512 << 10;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Headers the model may not set.
const FORBIDDEN_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "te",
];
/// Headers dropped when a redirect leaves the original origin.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// One request target, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub port: u16,
}

/// Parse and check a URL: http/https with a host.
pub(crate) fn target(raw: &str) -> Result<Target, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("`{raw}` is not a valid URL: {e}"))?;
    target_of(url)
}

fn target_of(url: reqwest::Url) -> Result<Target, String> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "only http:// and https:// URLs can be fetched, not `{url}`"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("URL `{url}` has no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("URL `{url}` has no port"))?;
    Ok(Target { url, host, port })
}

pub(crate) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Check the model's headers before anything is sent.
pub(crate) fn check_headers(args: &HttpFetchArgs) -> Result<(), String> {
    for (k, v) in args.headers.iter().flatten() {
        let lower = k.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "invalid arguments for http_fetch: header `{k}` is set by the runtime and may not be given"
            ));
        }
        reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            format!("invalid arguments for http_fetch: `{k}` is not a valid header name")
        })?;
        reqwest::header::HeaderValue::from_str(v).map_err(|_| {
            format!("invalid arguments for http_fetch: the value of header `{k}` is not valid")
        })?;
    }
    if args.body.is_some() && args.method.unwrap_or(Method::Get) == Method::Get {
        return Err("invalid arguments for http_fetch: a body needs method POST".into());
    }
    Ok(())
}

/// The outcome of a fetch: the output, and the final URL.
pub(crate) struct Fetched {
    pub output: ToolOutput,
    pub final_url: String,
}

/// Perform the request, following redirects by hand. `check_hop` is called for every
/// redirect target before it is requested; an `Err` stops the fetch with that message.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    args: &HttpFetchArgs,
    first: Target,
    check_hop: &mut (dyn FnMut(&Target, Method) -> Result<(), String> + Send),
) -> Result<Fetched, String> {
    let mut method = args.method.unwrap_or(Method::Get);
    let mut body = args.body.clone();
    let mut headers: Vec<(String, String)> = args
        .headers
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let origin = first.url.origin();
    let mut current = first;
    let mut hops = 0;
    loop {
        let mut req = match method {
            Method::Get => client.get(current.url.clone()),
            Method::Post => client.post(current.url.clone()),
        };
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let resp = req.send().await.map_err(|e| describe(&current.url, &e))?;
        let status = resp.status();
        if status.is_redirection()
            && let Some(loc) = resp.headers().get(reqwest::header::LOCATION)
        {
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(format!(
                    "http_fetch stopped: more than {MAX_REDIRECTS} redirects (last at {})",
                    current.url
                ));
            }
            let loc = loc.to_str().map_err(|_| {
                format!(
                    "redirect from {} has a Location header that is not text",
                    current.url
                )
            })?;
            let next = current
                .url
                .join(loc)
                .map_err(|e| {
                    format!(
                        "redirect from {} to `{loc}` is not a valid URL: {e}",
                        current.url
                    )
                })
                .and_then(target_of)?;
            // 303, and 301/302 after POST, turn into GET without a body (as browsers do).
            if status.as_u16() == 303
                || (method == Method::Post && matches!(status.as_u16(), 301 | 302))
            {
                method = Method::Get;
                body = None;
            }
            if next.url.origin() != origin {
                headers.retain(|(k, _)| {
                    !CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str())
                });
            }
            check_hop(&next, method)?;
            current = next;
            continue;
        }
        return read_response(resp, &current).await;
    }
}

async fn read_response(mut resp: reqwest::Response, at: &Target) -> Result<Fetched, String> {
    let status = resp.status();
    let mut text = format!(
        "HTTP {} {}\nURL: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        at.url
    );
    for (k, v) in resp.headers() {
        let _ = writeln!(text, "{k}: {}", String::from_utf8_lossy(v.as_bytes()));
    }
    text.push('\n');
    let mut body: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    cut = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(describe(&at.url, &e)),
        }
    }
    text.push_str(&String::from_utf8_lossy(&body));
    if cut {
        let _ = write!(text, "\n[body cut at {MAX_BODY} bytes]");
    }
    Ok(Fetched {
        output: ToolOutput {
            content: text,
            is_error: !status.is_success(),
            status: Some(serde_json::json!({ "http_status": status.as_u16() })),
            truncated: cut,
        },
        final_url: at.url.to_string(),
    })
}

fn describe(url: &reqwest::Url, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("http_fetch to {url} timed out after {}s", TIMEOUT.as_secs());
    }
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let _ = write!(detail, ": {s}");
        src = s.source();
    }
    format!("http_fetch to {url} failed: {detail}")
}
