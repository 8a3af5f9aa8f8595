//! Where a skill comes from, as typed after `cordon skills add`.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// The most a skill archive download may be (an installed skill is at most
/// [`crate::tree::MAX_BYTES`] unpacked; compressed it is smaller).
pub const MAX_DOWNLOAD: u64 = 25 * 1024 * 1024;

/// A parsed SOURCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local folder.
    Dir(PathBuf),
    /// A local `.zip`, `.tar.gz` or `.tgz`.
    Archive(PathBuf),
    /// An `https://` archive with its pin: `URL#sha256=HEX` (the archive's bytes).
    Url { url: String, sha256: String },
}

impl Source {
    /// Parse SOURCE. An `http(s)://` URL without a `#sha256=` pin of 64 hex digits, or
    /// over plain `http://`, is an error saying what to write. A local path must exist:
    /// a folder, or a file named `.zip`, `.tar.gz` or `.tgz`.
    pub fn parse(raw: &str) -> Result<Source, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(
                "SOURCE is empty: give a folder, a .zip/.tar.gz archive, or an \
                        https:// archive URL with its #sha256= pin"
                    .into(),
            );
        }
        if let Some((scheme, _)) = raw.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return parse_url(raw, &scheme.to_ascii_lowercase());
        }
        let path = PathBuf::from(raw);
        let meta = std::fs::metadata(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("{raw}: no such folder or archive")
            } else {
                format!("{raw}: {e}")
            }
        })?;
        let abs = std::path::absolute(&path).map_err(|e| format!("{raw}: {e}"))?;
        if meta.is_dir() {
            return Ok(Source::Dir(abs));
        }
        if meta.is_file() && archive_suffix(raw).is_some() {
            return Ok(Source::Archive(abs));
        }
        Err(format!(
            "{raw}: not a folder or a .zip, .tar.gz or .tgz archive"
        ))
    }

    /// The name that picks the archive format for [`crate::Tree::read_archive`]: the
    /// file name of an archive or of a URL's path.
    pub fn archive_name(&self) -> Option<String> {
        match self {
            Source::Dir(_) => None,
            Source::Archive(p) => Some(p.file_name()?.to_string_lossy().into_owned()),
            Source::Url { url, .. } => {
                let u = url::Url::parse(url).ok()?;
                let last = u.path_segments()?.next_back()?.to_string();
                Some(if last.is_empty() { url.clone() } else { last })
            }
        }
    }

    /// How it is written in the lock (`Dir`/`Archive` absolute; a URL with its pin).
    pub fn display(&self) -> String {
        match self {
            Source::Dir(p) | Source::Archive(p) => p.display().to_string(),
            Source::Url { url, sha256 } => format!("{url}#sha256={sha256}"),
        }
    }
}

fn archive_suffix(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    [".zip", ".tar.gz", ".tgz"]
        .into_iter()
        .find(|s| lower.ends_with(s))
}

fn parse_url(raw: &str, scheme: &str) -> Result<Source, String> {
    let (url, fragment) = match raw.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (raw, None),
    };
    if scheme == "http" {
        return Err(format!(
            "{url}: plain http:// is refused (anyone on the path could swap the archive); \
             use https:// with its pin: https://…#sha256=<64 hex digits>"
        ));
    }
    if scheme != "https" {
        return Err(format!(
            "{url}: only https:// URLs are fetched; for a local file give its path"
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: not a valid URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url}: the URL has no host"));
    }
    let how = format!(
        "write it with the SHA-256 of the archive: {url}#sha256=<64 hex digits> \
         (for example from `sha256sum` of a copy you reviewed)"
    );
    let Some(fragment) = fragment else {
        return Err(format!("{url}: an archive URL must be pinned; {how}"));
    };
    let Some(hex) = fragment.strip_prefix("sha256=") else {
        return Err(format!("{url}: `#{fragment}` is not a pin; {how}"));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{url}: `{hex}` is not a SHA-256 (64 hex digits); {how}"
        ));
    }
    Ok(Source::Url {
        url: url.to_string(),
        sha256: hex.to_ascii_lowercase(),
    })
}

/// Download `url` over HTTPS and return its bytes only if their SHA-256 is `sha256`.
///
/// At most [`MAX_DOWNLOAD`] bytes are read; redirects must stay on https. The system's
/// web PKI roots are trusted, plus `extra_roots_pem` (one or more PEM certificates) if
/// given.
pub async fn fetch(
    url: &str,
    sha256: &str,
    extra_roots_pem: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: not a valid URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(format!("{url}: only https:// is fetched"));
    }
    let want = sha256.to_ascii_lowercase();
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{url}: the pin `{sha256}` is not 64 hex digits"));
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(120));
    if let Some(pem) = extra_roots_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the extra CA certificates cannot be read: {e}"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot set up the HTTPS client: {e}"))?;
    let mut resp = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: the server answered {}", resp.status()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
        return Err(format!(
            "{url}: the archive is larger than the {MAX_DOWNLOAD} bytes a skill download may be"
        ));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?
    {
        if (bytes.len() + chunk.len()) as u64 > MAX_DOWNLOAD {
            return Err(format!(
                "{url}: the archive is larger than the {MAX_DOWNLOAD} bytes a skill download may be"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let got = hex::encode(Sha256::digest(&bytes));
    if got != want {
        return Err(format!(
            "{url}: the download does not match its pin: the pin says sha256 {want}, \
             the {} bytes downloaded hash to {got}; refused",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
