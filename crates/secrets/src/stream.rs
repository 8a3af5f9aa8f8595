//! [`StreamRedactor`]: the [`Redactor`]'s secret replacement over a byte stream that
//! arrives in chunks (process output, HTTP bodies).
//!
//! Guarantees: the concatenated output of [`StreamRedactor::push`] and
//! [`StreamRedactor::finish`] equals what [`Redactor::redact`] (without credential
//! detection) makes of the whole input, however the input is split (tested by splitting at every position). To achieve this it
//! holds back at most `longest pattern - 1` bytes between calls, so latency is bounded
//! and memory does not grow with the stream.
//!
//! Not guaranteed: credential-format detection ([`Redactor::with_credential_detection`])
//! is not applied to streams, since those formats (private key blocks) have no length
//! bound; run [`Redactor::redact`] on the collected text where that matters. Output is
//! bytes: a chunk boundary may fall inside a UTF-8 character, as in the input.

use crate::redactor::{Redactor, WITHHELD};

/// Redacts a stream chunk by chunk. See the module docs.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Redactor,
    /// Input not yet emitted because a match could still start in it.
    pending: Vec<u8>,
    /// Secret names found so far, in order of first appearance.
    hits: Vec<String>,
}

impl StreamRedactor {
    /// A stream redactor for the secrets of `redactor`.
    pub fn new(redactor: Redactor) -> StreamRedactor {
        StreamRedactor {
            redactor,
            pending: Vec::new(),
            hits: Vec::new(),
        }
    }

    /// Feed a chunk; returns the output that is now final.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        self.drain(false)
    }

    /// End of stream: the rest of the output.
    pub fn finish(mut self) -> Vec<u8> {
        self.drain(true)
    }

    /// Names of the secrets found so far.
    pub fn hits(&self) -> &[String] {
        &self.hits
    }

    /// Bytes currently held back (at most the longest pattern length - 1 after a push).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn drain(&mut self, at_end: bool) -> Vec<u8> {
        let matcher = match &self.redactor.matcher {
            None => return std::mem::take(&mut self.pending),
            Some(Ok(m)) => m,
            Some(Err(())) => {
                // Fail closed, as `Redactor::redact` does: nothing passes.
                self.pending.clear();
                if at_end {
                    return WITHHELD.as_bytes().to_vec();
                }
                return Vec::new();
            }
        };
        let buf = &self.pending;
        // A match starting before `safe` lies wholly inside `buf` (patterns are at most
        // `longest` bytes), so no later byte can change it or any match before it.
        let safe = if at_end {
            buf.len()
        } else {
            buf.len()
                .saturating_sub(self.redactor.longest.saturating_sub(1))
        };
        let mut out = Vec::with_capacity(buf.len());
        let mut last = 0;
        for m in matcher.find_iter(buf.as_slice()) {
            if m.start() >= safe {
                break;
            }
            out.extend_from_slice(&buf[last..m.start()]);
            let name = &self.redactor.names[m.pattern().as_usize()];
            out.extend_from_slice(b"[REDACTED:");
            out.extend_from_slice(name.as_bytes());
            out.push(b']');
            if !self.hits.contains(name) {
                self.hits.push(name.clone());
            }
            last = m.end();
        }
        let keep_from = last.max(safe);
        out.extend_from_slice(&buf[last..keep_from]);
        self.pending.drain(..keep_from);
        out
    }
}

impl Redactor {
    /// A [`StreamRedactor`] for this redactor's secrets.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    const KEY: &str = "sk-???>>>-live+cd=1&z!";

    fn redactor() -> Redactor {
        Redactor::new(vec![
            ("API_KEY".into(), KEY.into()),
            ("SHORTER".into(), "sk-???>>>".into()),
            ("OTHER".into(), "another-secret-value".into()),
        ])
    }

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = redactor().stream();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
            assert!(s.pending_len() < redactor().longest);
        }
        out.extend(s.finish());
        out
    }

    fn inputs() -> Vec<String> {
        let mid = [b'x', b'y'];
        let mut shifted = mid[..1].to_vec();
        shifted.extend_from_slice(KEY.as_bytes());
        shifted.extend_from_slice(b"tail-bytes");
        vec![
            format!("start {KEY} middle {KEY}{KEY} end"),
            format!("{KEY}"),
            format!("sk-???>>> then another-secret-value and sk-???>>>-live+cd=1&z"),
            format!("b64 {} hex {}", STANDARD.encode(KEY), hex::encode(KEY)),
            format!("offset1 {} .", URL_SAFE_NO_PAD.encode(&shifted)),
            format!("url sk-%3F%3F%3F%3E%3E%3E-live%2Bcd%3D1%26z%21 é→ü"),
            "no secrets at all, just some text".to_string(),
        ]
    }

    #[test]
    fn split_at_every_position_matches_one_shot() {
        for input in inputs() {
            let bytes = input.as_bytes();
            let expected = redactor().redact(&input).text.into_bytes();
            assert_eq!(run(&[bytes]), expected);
            for i in 0..=bytes.len() {
                let got = run(&[&bytes[..i], &bytes[i..]]);
                assert_eq!(got, expected, "split at {i} of {input:?}");
            }
        }
    }

    #[test]
    fn split_at_every_pair_of_positions() {
        let input = format!("a{KEY}b{}c", STANDARD.encode("another-secret-value"));
        let bytes = input.as_bytes();
        let expected = redactor().redact(&input).text.into_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = run(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, expected, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn byte_by_byte_never_emits_a_secret() {
        let input = format!("leak: {KEY} and {}", hex::encode_upper(KEY));
        let mut s = redactor().stream();
        let mut out = Vec::new();
        for b in input.as_bytes() {
            out.extend(s.push(std::slice::from_ref(b)));
        }
        assert_eq!(s.hits(), ["API_KEY".to_string()]);
        out.extend(s.finish());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "leak: [REDACTED:API_KEY] and [REDACTED:API_KEY]");
    }

    #[test]
    fn output_is_not_delayed_beyond_the_longest_pattern() {
        let mut s = redactor().stream();
        let long = vec![b'z'; 10_000];
        let out = s.push(&long);
        assert!(out.len() >= long.len() - redactor().longest);
        assert!(s.pending_len() < redactor().longest);
    }

    #[test]
    fn empty_redactor_streams_through() {
        let mut s = Redactor::empty().stream();
        assert_eq!(s.push(b"abc"), b"abc");
        assert_eq!(s.finish(), b"");
    }
}
