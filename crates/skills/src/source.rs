//! Where a skill comes from, as typed after `cordon skills add`.

use std::path::PathBuf;

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
    /// over plain `http://`, is an error saying what to write.
    pub fn parse(raw: &str) -> Result<Source, String> {
        let _ = raw;
        unimplemented!("helper: source")
    }

    /// How it is written in the lock (`Dir`/`Archive` absolute; a URL with its pin).
    pub fn display(&self) -> String {
        match self {
            Source::Dir(p) | Source::Archive(p) => p.display().to_string(),
            Source::Url { url, sha256 } => format!("{url}#sha256={sha256}"),
        }
    }
}
