//! [`Redactor`]: replaces secret values in everything that goes back to the model.
//!
//! A [`Redactor`] is built from `(name, value)` pairs and replaces every occurrence of
//! each value, and of its common encodings, with `[REDACTED:NAME]`:
//!
//! - the raw value;
//! - base64, standard and URL-safe alphabets, each with and without padding, and the
//!   part of the base64 that depends only on the value when it sits at byte offset 0, 1
//!   or 2 of a longer encoded payload (the first and last characters, which mix in
//!   neighbouring bytes, are left out);
//! - hex, lower and upper case;
//! - URL (percent) encoding, with upper- and lower-case escapes.
//!
//! Matching is a single Aho-Corasick pass, leftmost-longest, so overlapping encodings of
//! the same secret are replaced once and a longer secret wins over a shorter one that it
//! contains.
//!
//! What it does **not** guarantee: values shorter than [`MIN_SECRET_LEN`] bytes (8) are
//! ignored, because redacting them would mangle ordinary text and they cannot be
//! protected by substitution anyway. A secret split across two calls to
//! [`Redactor::redact`] is not detected (use [`crate::StreamRedactor`] for streams), nor
//! one transformed in other ways (reversed, re-encoded twice, compressed, spelled out).
//!
//! With [`Redactor::with_credential_detection`], credentials of well-known formats that
//! are not in the vault are also replaced, by `[REDACTED:<kind>]` (see
//! [`crate::credentials`]).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::credentials::{CredentialKind, detect_credentials};

/// Values shorter than this many bytes are not redacted.
pub const MIN_SECRET_LEN: usize = 8;

/// Replaces known secret values (and their encodings) in text.
///
/// `Debug` prints only the secret names, never the values.
#[derive(Clone, Default)]
pub struct Redactor {
    /// One name per pattern, same order as the automaton's patterns.
    pub(crate) names: Vec<String>,
    /// `None` when there is nothing to redact; `Some(Err)` when the automaton could not
    /// be built (all text is then withheld).
    pub(crate) matcher: Option<Result<AhoCorasick, ()>>,
    /// Length in bytes of the longest pattern.
    pub(crate) longest: usize,
    /// Also replace credentials of known formats.
    credentials: bool,
    /// Distinct secret names (for `Debug` and [`Redactor::secret_names`]).
    secret_names: Vec<String>,
    /// The pairs it was built from, kept to extend it ([`Redactor::with_secrets`]).
    secrets: Vec<(String, String)>,
}

/// The result of [`Redactor::redact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The text with each secret occurrence replaced by `[REDACTED:NAME]`.
    pub text: String,
    /// Names of the secrets found, in order of first appearance, without duplicates.
    pub hits: Vec<String>,
    /// Kinds of credentials found by format (only with
    /// [`Redactor::with_credential_detection`]), in order, without duplicates.
    pub credentials: Vec<CredentialKind>,
}

/// Text that replaces the whole output when the matcher could not be built.
pub(crate) const WITHHELD: &str = "[REDACTED: secret redaction unavailable, text withheld]";

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secret_names)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Redactor {
    /// A redactor with nothing to redact.
    pub fn empty() -> Redactor {
        Redactor::default()
    }

    /// Build from `(name, value)` pairs. Values shorter than [`MIN_SECRET_LEN`] bytes are
    /// skipped (see the module docs).
    pub fn new(secrets: Vec<(String, String)>) -> Redactor {
        let kept = secrets.clone();
        let mut names = Vec::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut secret_names = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            if !secret_names.contains(&name) {
                secret_names.push(name.clone());
            }
            for form in encodings(value.as_bytes()) {
                if !patterns.contains(&form) {
                    patterns.push(form);
                    names.push(name.clone());
                }
            }
        }
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        if patterns.is_empty() {
            return Redactor {
                names,
                matcher: None,
                longest,
                credentials: false,
                secret_names,
                secrets: kept,
            };
        }
        // Building fails only on absurd pattern sizes. Fail closed: a redactor that could
        // not be built withholds all text rather than letting a secret through.
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|_| ());
        Redactor {
            names,
            matcher: Some(matcher),
            longest,
            credentials: false,
            secret_names,
            secrets: kept,
        }
    }

    /// The same redactor, also replacing credentials of well-known formats (AWS, GitHub,
    /// OpenAI, Anthropic, Slack, Stripe, Google, private keys) with `[REDACTED:<kind>]`.
    pub fn with_credential_detection(mut self) -> Redactor {
        self.credentials = true;
        self
    }

    /// Whether credentials of known formats are redacted too.
    pub fn detects_credentials(&self) -> bool {
        self.credentials
    }

    /// A redactor for these secrets and `more`.
    pub fn with_secrets(&self, more: Vec<(String, String)>) -> Redactor {
        let mut all = self.secrets.clone();
        all.extend(more);
        let mut next = Redactor::new(all);
        next.credentials = self.credentials;
        next
    }

    /// Whether there are no secrets to redact.
    pub fn is_empty(&self) -> bool {
        self.secret_names.is_empty()
    }

    /// Names of the secrets this redactor knows.
    pub fn secret_names(&self) -> &[String] {
        &self.secret_names
    }

    /// Replace every occurrence of every secret and its encodings (and, when enabled,
    /// every credential of a known format).
    pub fn redact(&self, text: &str) -> Redacted {
        let (text, hits) = match &self.matcher {
            None => (text.to_string(), Vec::new()),
            Some(Ok(m)) => self.replace_secrets(m, text),
            Some(Err(())) => {
                return Redacted {
                    text: WITHHELD.into(),
                    hits: self.secret_names.clone(),
                    credentials: Vec::new(),
                };
            }
        };
        if !self.credentials {
            return Redacted {
                text,
                hits,
                credentials: Vec::new(),
            };
        }
        let (text, credentials) = replace_credentials(&text);
        Redacted {
            text,
            hits,
            credentials,
        }
    }

    /// Names of the secrets whose value (in any encoding above) occurs in `data`, in
    /// order of first appearance. For leak checks on bytes that are not text, such as
    /// outbound request bodies. Fails closed: if the matcher could not be built, every
    /// name is reported.
    pub fn scan(&self, data: &[u8]) -> Vec<String> {
        let matcher = match &self.matcher {
            None => return Vec::new(),
            Some(Ok(m)) => m,
            Some(Err(())) => return self.secret_names.clone(),
        };
        let mut hits: Vec<String> = Vec::new();
        for m in matcher.find_iter(data) {
            let name = &self.names[m.pattern().as_usize()];
            if !hits.contains(name) {
                hits.push(name.clone());
            }
        }
        hits
    }

    /// A redactor for every secret in `vault`.
    pub fn from_vault(vault: &crate::Vault) -> Redactor {
        let pairs = vault
            .list()
            .into_iter()
            .filter_map(|info| {
                vault
                    .get(&info.name)
                    .map(|(secret, _)| (info.name, secret.expose().to_string()))
            })
            .collect();
        Redactor::new(pairs)
    }

    fn replace_secrets(&self, matcher: &AhoCorasick, text: &str) -> (String, Vec<String>) {
        let mut out = String::with_capacity(text.len());
        let mut hits: Vec<String> = Vec::new();
        let mut last = 0;
        for m in matcher.find_iter(text) {
            let name = &self.names[m.pattern().as_usize()];
            // Patterns are ASCII or the raw UTF-8 value, so match bounds fall on char
            // boundaries of `text`; `get` keeps that an invariant rather than a panic.
            if let Some(before) = text.get(last..m.start()) {
                out.push_str(before);
            }
            out.push_str("[REDACTED:");
            out.push_str(name);
            out.push(']');
            last = m.end();
            if !hits.contains(name) {
                hits.push(name.clone());
            }
        }
        if let Some(rest) = text.get(last..) {
            out.push_str(rest);
        }
        (out, hits)
    }
}

fn replace_credentials(text: &str) -> (String, Vec<CredentialKind>) {
    let findings = detect_credentials(text);
    if findings.is_empty() {
        return (text.to_string(), Vec::new());
    }
    let mut out = String::with_capacity(text.len());
    let mut kinds = Vec::new();
    let mut last = 0;
    for f in findings {
        if let Some(before) = text.get(last..f.range.start) {
            out.push_str(before);
        }
        out.push_str("[REDACTED:");
        out.push_str(f.kind.as_str());
        out.push(']');
        last = f.range.end;
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind);
        }
    }
    if let Some(rest) = text.get(last..) {
        out.push_str(rest);
    }
    (out, kinds)
}

/// The raw value and every encoding of it that is redacted.
fn encodings(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![
        value.to_vec(),
        STANDARD.encode(value).into_bytes(),
        STANDARD_NO_PAD.encode(value).into_bytes(),
        URL_SAFE.encode(value).into_bytes(),
        URL_SAFE_NO_PAD.encode(value).into_bytes(),
        hex_encode(value, b"0123456789abcdef"),
        hex_encode(value, b"0123456789ABCDEF"),
    ];
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.extend(base64_at_offsets(engine, value));
    }
    let upper = percent_encode(value, b"0123456789ABCDEF");
    let lower = percent_encode(value, b"0123456789abcdef");
    forms.push(upper);
    forms.push(lower);
    forms.retain(|f| !f.is_empty());
    forms
}

/// The characters of the base64 encoding that depend only on `value`, when `value` is
/// preceded by 0, 1 or 2 bytes (mod 3) and followed by anything inside a longer payload.
fn base64_at_offsets(engine: &GeneralPurpose, value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for k in 0..3usize {
        let mut shifted = vec![0u8; k];
        shifted.extend_from_slice(value);
        let encoded = engine.encode(&shifted).into_bytes();
        // Character i covers bits 6i..6i+6; keep those entirely inside the value's bits.
        let start = (8 * k).div_ceil(6);
        let end = 8 * (k + value.len()) / 6;
        if let Some(part) = encoded.get(start..end)
            && !part.is_empty()
        {
            forms.push(part.to_vec());
        }
    }
    forms
}

fn hex_encode(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0x0f)]);
    }
    out
}

/// Percent-encode everything except RFC 3986 unreserved characters.
fn percent_encode(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 0x0f)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-???>>>-live+cd=1&z!";

    fn r() -> Redactor {
        Redactor::new(vec![("API_KEY".into(), KEY.into())])
    }

    fn assert_redacted(encoded: &str) {
        let text = format!("before {encoded} after");
        let out = r().redact(&text);
        assert_eq!(
            out.text, "before [REDACTED:API_KEY] after",
            "form {encoded}"
        );
        assert_eq!(out.hits, vec!["API_KEY".to_string()]);
        assert!(!out.text.contains(encoded));
    }

    #[test]
    fn base64_inside_longer_payloads_at_every_offset() {
        for prefix_len in 0..6 {
            for suffix_len in 0..4 {
                let mut payload = vec![b'P'; prefix_len];
                payload.extend_from_slice(KEY.as_bytes());
                payload.extend(std::iter::repeat_n(b'S', suffix_len));
                for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                    let encoded = e.encode(&payload);
                    let out = r().redact(&format!("data: {encoded}"));
                    assert_eq!(out.hits, vec!["API_KEY".to_string()], "{encoded}");
                    // At least the characters carrying the key's 22 bytes are gone,
                    // except the (up to 2) mixed ones at each end.
                    let rest = &out.text["data: ".len()..];
                    let parts: Vec<&str> = rest.split("[REDACTED:API_KEY]").collect();
                    assert_eq!(parts.len(), 2, "{rest}");
                    let kept = parts[0].len() + parts[1].len();
                    assert!(
                        kept + 22 * 8 / 6 - 2 <= encoded.len(),
                        "{encoded} -> {rest}"
                    );
                }
            }
        }
    }

    #[test]
    fn scan_finds_values_in_binary_data() {
        let mut body = vec![0xff, 0x00, 0xfe];
        body.extend_from_slice(STANDARD.encode(KEY).as_bytes());
        body.extend_from_slice(&[0x80, 0x81]);
        assert_eq!(r().scan(&body), vec!["API_KEY".to_string()]);
        assert!(r().scan(&[0xff, 0x00, b'a', b'b']).is_empty());
        assert!(Redactor::empty().scan(KEY.as_bytes()).is_empty());
    }

    #[test]
    fn from_vault_redacts_vault_values() {
        let tmp = tempfile::tempdir().unwrap();
        let mut v = crate::Vault::open_with(tmp.path(), crate::KeySource::KeyFile).unwrap();
        v.set("API_KEY", crate::Secret::from(KEY), vec![]).unwrap();
        let red = Redactor::from_vault(&v);
        assert_eq!(red.secret_names(), ["API_KEY".to_string()]);
        assert_eq!(red.redact(&format!("x{KEY}x")).text, "x[REDACTED:API_KEY]x");
    }

    #[test]
    fn credential_detection_is_opt_in() {
        let text = "key AKIA2OGYBAH6STMMNXNN and AKIAIOSFODNN7EXAMPLE";
        assert_eq!(r().redact(text).text, text);
        let red = r().with_credential_detection();
        assert!(red.detects_credentials());
        let out = red.redact(&format!("{text} {KEY}"));
        assert_eq!(
            out.text,
            "key [REDACTED:aws_access_key_id] and AKIAIOSFODNN7EXAMPLE [REDACTED:API_KEY]"
        );
        assert_eq!(out.credentials, vec![CredentialKind::AwsAccessKeyId]);
        assert_eq!(out.hits, vec!["API_KEY".to_string()]);
        // Kept by with_secrets; works without any vault secret.
        let more = red.with_secrets(vec![("B".into(), "bravo-secret-2".into())]);
        assert!(more.detects_credentials());
        let bare = Redactor::empty().with_credential_detection();
        assert_eq!(
            bare.redact("AKIA2OGYBAH6STMMNXNN").text,
            "[REDACTED:aws_access_key_id]"
        );
    }

    #[test]
    fn raw_value() {
        assert_redacted(KEY);
    }

    #[test]
    fn base64_all_variants() {
        // The key length (22) is not a multiple of 3, so padded and unpadded differ,
        // and it contains bytes that encode to `+`/`/` vs `-`/`_`.
        for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            assert_redacted(&e.encode(KEY));
        }
        assert_ne!(STANDARD.encode(KEY), URL_SAFE.encode(KEY));
        assert_ne!(STANDARD.encode(KEY), STANDARD_NO_PAD.encode(KEY));
    }

    #[test]
    fn hex_lower_and_upper() {
        let lower: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
        let upper: String = KEY.bytes().map(|b| format!("{b:02X}")).collect();
        assert_redacted(&lower);
        assert_redacted(&upper);
    }

    #[test]
    fn url_encoded() {
        assert_redacted("sk-%3F%3F%3F%3E%3E%3E-live%2Bcd%3D1%26z%21");
        assert_redacted("sk-%3f%3f%3f%3e%3e%3e-live%2bcd%3d1%26z%21");
    }

    #[test]
    fn short_values_are_ignored() {
        let red = Redactor::new(vec![("PIN".into(), "1234567".into())]);
        assert!(red.is_empty());
        let out = red.redact("pin is 1234567");
        assert_eq!(out.text, "pin is 1234567");
        assert!(out.hits.is_empty());
    }

    #[test]
    fn empty_redactor_passes_text_through() {
        let out = Redactor::empty().redact("nothing here");
        assert_eq!(out.text, "nothing here");
        assert!(out.hits.is_empty());
    }

    #[test]
    fn several_secrets_and_repeats() {
        let red = Redactor::new(vec![
            ("A".into(), "alpha-secret-1".into()),
            ("B".into(), "bravo-secret-2".into()),
        ]);
        let out = red.redact("x alpha-secret-1 y bravo-secret-2 z alpha-secret-1");
        assert_eq!(out.text, "x [REDACTED:A] y [REDACTED:B] z [REDACTED:A]");
        assert_eq!(out.hits, vec!["A".to_string(), "B".to_string()]);
    }

    #[test]
    fn longest_secret_wins() {
        let red = Redactor::new(vec![
            ("SHORT".into(), "password".into()),
            ("LONG".into(), "password-and-more".into()),
        ]);
        let out = red.redact("[password-and-more] [password]");
        assert_eq!(out.text, "[[REDACTED:LONG]] [[REDACTED:SHORT]]");
    }

    #[test]
    fn with_secrets_adds_to_existing() {
        let red = r().with_secrets(vec![("OTHER".into(), "another-secret".into())]);
        let out = red.redact(&format!("{KEY} another-secret"));
        assert_eq!(out.text, "[REDACTED:API_KEY] [REDACTED:OTHER]");
    }

    #[test]
    fn debug_does_not_show_values() {
        let shown = format!("{:?}", r());
        assert!(shown.contains("API_KEY"));
        assert!(!shown.contains(KEY));
    }

    #[test]
    fn non_ascii_text_survives() {
        let out = r().redact(&format!("é→{KEY}←ü"));
        assert_eq!(out.text, "é→[REDACTED:API_KEY]←ü");
    }
}
