//! Secret values: redaction of everything that goes back to the model.
//!
//! A [`Redactor`] is built from `(name, value)` pairs and replaces every occurrence of
//! each value, and of its common encodings, with `[REDACTED:NAME]`:
//!
//! - the raw value;
//! - base64, standard and URL-safe alphabets, each with and without padding;
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
//! [`Redactor::redact`], transformed in other ways (reversed, re-encoded twice,
//! compressed, spelled out) or base64-encoded at a non-zero offset inside a longer
//! payload is not detected.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Values shorter than this many bytes are not redacted.
pub const MIN_SECRET_LEN: usize = 8;

/// Replaces known secret values (and their encodings) in text.
///
/// `Debug` prints only the secret names, never the values.
#[derive(Clone, Default)]
pub struct Redactor {
    /// One name per pattern, same order as the automaton's patterns.
    names: Vec<String>,
    /// `None` when there is nothing to redact; `Some(Err)` when the automaton could not
    /// be built (all text is then withheld).
    matcher: Option<Result<AhoCorasick, ()>>,
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
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secret_names)
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
        if patterns.is_empty() {
            return Redactor {
                names,
                matcher: None,
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
            secret_names,
            secrets: kept,
        }
    }

    /// A redactor for these secrets and `more`.
    pub fn with_secrets(&self, more: Vec<(String, String)>) -> Redactor {
        let mut all = self.secrets.clone();
        all.extend(more);
        Redactor::new(all)
    }

    /// Whether there are no secrets to redact.
    pub fn is_empty(&self) -> bool {
        self.secret_names.is_empty()
    }

    /// Names of the secrets this redactor knows.
    pub fn secret_names(&self) -> &[String] {
        &self.secret_names
    }

    /// Replace every occurrence of every secret and its encodings.
    pub fn redact(&self, text: &str) -> Redacted {
        let matcher = match &self.matcher {
            None => {
                return Redacted {
                    text: text.to_string(),
                    hits: Vec::new(),
                };
            }
            Some(Ok(m)) => m,
            Some(Err(())) => {
                return Redacted {
                    text: "[REDACTED: secret redaction unavailable, text withheld]".into(),
                    hits: self.secret_names.clone(),
                };
            }
        };
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
        Redacted { text: out, hits }
    }
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
    let upper = percent_encode(value, b"0123456789ABCDEF");
    let lower = percent_encode(value, b"0123456789abcdef");
    forms.push(upper);
    forms.push(lower);
    forms.retain(|f| !f.is_empty());
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
