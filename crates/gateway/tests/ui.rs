//! The embedded web UI over a real socket: served without auth, with the right types and
//! every security header; a URL carrying a server address or a token changes nothing
//! (the same bytes come back, nothing reflected); and the assets themselves keep the
//! rules the CSP and the threat model rely on (no inline code, no external origins, no
//! reading of the page URL, no token storage).

use std::sync::Arc;

use cordon_gateway::layers::SECURITY_HEADERS;
use cordon_gateway::{Gateway, GatewayOptions};

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

struct Running {
    _dir: tempfile::TempDir,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         [agents.default]\nworkspace = \"{}\"\n[gateway]\nbind = \"127.0.0.1:0\"\n",
        dir.path().join("ws").display()
    );
    let config = Arc::new(config::load_str(&text, &dir.path().join("cordon.toml")).unwrap());
    let store = Arc::new(store::Store::open(&dir.path().join("cordon.db")).unwrap());
    let audit = Arc::new(audit::Log::open(&dir.path().join("audit")).unwrap());
    let g = Gateway::bind(GatewayOptions {
        config,
        store,
        audit,
        bind: None,
        state_dir: dir.path().join("state"),
        skills_lock: dir.path().join("skills.lock"),
        agents: None,
        channels: Vec::new(),
        hook_secrets: Default::default(),
    })
    .await
    .expect("bind");
    let url = g.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(g.serve(async move {
        let _ = rx.await;
    }));
    Running {
        _dir: dir,
        url,
        _stop: tx,
    }
}

/// GET `path` without credentials; asserts 200, the content type and every security
/// header; returns the body.
async fn fetch(url: &str, path: &str, content_type: &str) -> Vec<u8> {
    let r = reqwest::get(format!("{url}{path}")).await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let h = r.headers().clone();
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some(content_type),
        "{path}"
    );
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            h.get(*name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{name} on {path}"
        );
    }
    assert!(h.get("x-request-id").is_some(), "{path}");
    assert!(h.get("set-cookie").is_none(), "{path}");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn assets_are_served_without_auth_with_types_and_security_headers() {
    let g = start().await;
    let html = "text/html; charset=utf-8";
    let js = "text/javascript; charset=utf-8";
    assert_eq!(fetch(&g.url, "/", html).await, INDEX.as_bytes());
    assert_eq!(fetch(&g.url, "/ui/app.js", js).await, APP_JS.as_bytes());
    let css = fetch(&g.url, "/ui/app.css", "text/css; charset=utf-8").await;
    assert_eq!(css, APP_CSS.as_bytes());
    fetch(&g.url, "/ui/icon.svg", "image/svg+xml").await;
    // Only the listed files: no directory serving, no traversal.
    for path in [
        "/ui/",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/index.html",
    ] {
        let r = reqwest::get(format!("{}{path}", g.url)).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_url_with_a_server_address_or_token_serves_the_same_bytes() {
    let g = start().await;
    let plain = fetch(&g.url, "/", "text/html; charset=utf-8").await;
    for q in [
        "/?gatewayUrl=ws://evil&token=x",
        "/?gatewayUrl=ws%3A%2F%2Fevil.example%3A1&token=cdn_reflected",
        "/?token=cdn_reflected#gatewayUrl=ws://evil.example",
    ] {
        let body = fetch(&g.url, q, "text/html; charset=utf-8").await;
        assert_eq!(body, plain, "{q}");
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("evil") && !text.contains("cdn_reflected"),
            "{q}"
        );
    }
    let js = fetch(
        &g.url,
        "/ui/app.js?gatewayUrl=ws://evil",
        "text/javascript; charset=utf-8",
    )
    .await;
    assert_eq!(js, APP_JS.as_bytes());
}

/// The attribute values of `attr="…"` in `html`.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let pat = format!(" {attr}=\"");
    html.match_indices(&pat)
        .filter_map(|(i, _)| {
            let rest = &html[i + pat.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn the_page_has_no_inline_code_and_no_external_origins() {
    let lower = INDEX.to_ascii_lowercase();
    // Every <script> has a same-origin src; no inline style or event handler attributes
    // (the CSP would block them, so they would be dead code at best).
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        assert!(
            tag.contains(" src=\"/ui/"),
            "inline or foreign script: {tag}"
        );
    }
    assert!(!lower.contains("<style"), "inline <style>");
    assert!(!lower.contains(" style="), "inline style attribute");
    let handlers = lower
        .split(|c: char| c.is_whitespace())
        .filter(|w| w.starts_with("on") && w.contains('='))
        .collect::<Vec<_>>();
    assert!(handlers.is_empty(), "inline event handlers: {handlers:?}");
    for attr in ["src", "href", "action"] {
        for v in attr_values(INDEX, attr) {
            assert!(
                v.starts_with('/') && !v.starts_with("//") || v.starts_with('#'),
                "{attr}=\"{v}\" is not a same-origin path"
            );
        }
    }
    // The login form posts its token in a body, never a URL, even with scripts off.
    let form = &lower[lower.find("<form id=\"login-form\"").unwrap()..];
    let form = &form[..form.find('>').unwrap()];
    assert!(
        form.contains("method=\"post\"") && form.contains("action=\"/api/login\""),
        "{form}"
    );
    assert!(!APP_CSS.contains("url(") && !APP_CSS.contains("@import"));
}

#[test]
fn the_script_never_reads_its_url_or_stores_credentials() {
    // Strip comments so the rules stated in them do not count as uses.
    let code: String = APP_JS
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for banned in [
        "location.search",
        "location.hash",
        "location.href",
        "document.URL",
        "document.location",
        "window.location",
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "http://",
        "https://",
    ] {
        assert!(!code.contains(banned), "app.js uses `{banned}`");
    }
    // The only parts of `location` it reads are the origin's scheme and host, to build
    // the same-origin WebSocket URL.
    for (i, _) in code.match_indices("location.") {
        let rest = &code[i + "location.".len()..];
        assert!(
            rest.starts_with("protocol") || rest.starts_with("host}"),
            "app.js reads location.{}",
            &rest[..rest.len().min(12)]
        );
    }
}
