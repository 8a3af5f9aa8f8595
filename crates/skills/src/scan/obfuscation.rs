//! Obfuscation: what hides code or text from a reviewer — long base64 or hex blobs,
//! zero-width characters, bidirectional controls that reorder what is displayed
//! (Trojan Source), Unicode TAG characters that carry invisible ASCII (the model reads
//! it, a human sees nothing). Homoglyph hosts are found with the other hosts
//! ([`super::network`]).
//!
//! Not flagged: a byte-order mark at the start of a file, zero-width joiners inside
//! emoji sequences and non-joiners between letters of scripts that use them, TAG
//! characters of a subdivision flag emoji (🏴 + letters + cancel tag).

use super::rules::{Level, Rule};
use super::source::{Source, escape};
use super::{Finding, Findings, Severity};

const WHY_B64: &str = "a long base64 blob: code or data hidden from review, often decoded and run";
const WHY_HEX: &str =
    "a long hex blob: code or data (shellcode, an encoded payload) hidden from review";
const WHY_ZW: &str = "zero-width characters: invisible text that can hide words from a human while the model reads them";
const WHY_BIDI: &str =
    "bidirectional control characters: the text displayed is not the text that is read or run";
const WHY_TAG: &str =
    "Unicode TAG characters: invisible text that the model reads and a human cannot see";

/// A run of base64 at least this long is a blob.
const B64_MIN: usize = 120;
/// A run of hex digits at least this long is a blob. 129, not 120: a SHA-512 digest
/// (128 digits) is a checksum a reviewer can ignore.
const HEX_MIN: usize = 129;

pub(crate) static RULES: &[Rule] = &[Rule::new(
    "obf.hex_blob",
    Level::Fixed(Severity::High),
    WHY_HEX,
    &["\\x"],
    Some(r"(?:\\x[0-9a-fA-F]{2}){40,}"),
)];

const WHY_NAME: &str = "a file name with invisible or reordering characters: what a reviewer sees is not the file's real name (`evil\\u{202e}gpj.sh` shows as `evilhs.jpg`)";

/// Invisible characters in a file's name (the tree refuses control characters only).
pub(crate) fn check_path(path: &str, out: &mut Findings) {
    let worst = path.chars().filter_map(classify).max_by_key(|k| match k {
        Invisible::BidiEmbedding | Invisible::ZeroWidth => 0,
        Invisible::BidiOverride | Invisible::Tag => 1,
    });
    let Some(kind) = worst else { return };
    let severity = match kind {
        Invisible::BidiOverride | Invisible::Tag => Severity::Critical,
        Invisible::BidiEmbedding | Invisible::ZeroWidth => Severity::High,
    };
    out.push_raw(Finding {
        id: "obf.file_name",
        severity,
        file: path.to_string(),
        line: 1,
        evidence: escape(path),
        why: WHY_NAME,
    });
}

pub(crate) fn check(src: &Source<'_>, out: &mut Findings) {
    blobs(src, out);
    if !src.text.is_ascii() {
        invisible(src, out);
    }
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Runs of the base64 alphabet (standard and URL-safe) of [`B64_MIN`] or more.
fn blobs(src: &Source<'_>, out: &mut Findings) {
    let bytes = src.text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_b64(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_b64(bytes[i]) {
            i += 1;
        }
        let run = &bytes[start..i];
        if run.len() < B64_MIN.min(HEX_MIN) {
            continue;
        }
        let hex = run.iter().all(u8::is_ascii_hexdigit);
        let (id, why) = if hex {
            if run.len() < HEX_MIN {
                continue;
            }
            ("obf.hex_blob", WHY_HEX)
        } else {
            // A path or a kebab-case identifier is not base64: mixed case and digits,
            // few separators.
            let seps = run
                .iter()
                .filter(|b| matches!(b, b'/' | b'-' | b'_'))
                .count();
            let has = |f: fn(&u8) -> bool| run.iter().any(f);
            if seps * 10 > run.len()
                || !has(u8::is_ascii_uppercase)
                || !has(u8::is_ascii_lowercase)
                || !has(u8::is_ascii_digit)
            {
                continue;
            }
            ("obf.base64_blob", WHY_B64)
        };
        let head: String = src.text[start..start + 40].to_string();
        out.push_raw(Finding {
            id,
            severity: Severity::High,
            file: src.path.to_string(),
            line: src.line_of(start),
            evidence: format!("{head}… ({} characters)", run.len()),
            why,
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Invisible {
    ZeroWidth,
    /// Embeddings and their pop: reorder, but rarely hide.
    BidiEmbedding,
    /// Overrides and isolates: make displayed text differ from stored text.
    BidiOverride,
    Tag,
}

fn classify(c: char) -> Option<Invisible> {
    match c as u32 {
        0x200B..=0x200D | 0x2060 | 0xFEFF => Some(Invisible::ZeroWidth),
        0x202A..=0x202C => Some(Invisible::BidiEmbedding),
        0x202D | 0x202E | 0x2066..=0x2069 => Some(Invisible::BidiOverride),
        0xE0000..=0xE007F => Some(Invisible::Tag),
        _ => None,
    }
}

fn is_emoji_part(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF | 0xFE0F | 0x20E3)
}

/// Zero-width, bidi and TAG characters, one finding per kind and line. One pass over
/// the characters, nothing collected (a skill may hold 20 MB of text).
fn invisible(src: &Source<'_>, out: &mut Findings) {
    let text = src.text;
    let mut prev: Option<char> = None;
    let mut off = 0;
    while let Some(c) = text[off..].chars().next() {
        let len = c.len_utf8();
        let Some(kind) = classify(c) else {
            prev = Some(c);
            off += len;
            continue;
        };
        let next = text[off + len..].chars().next();
        let (id, severity, why) = match kind {
            Invisible::ZeroWidth => {
                let benign = (c == '\u{FEFF}' && off == 0)
                    || (c == '\u{200D}'
                        && prev.is_some_and(is_emoji_part)
                        && next.is_some_and(is_emoji_part))
                    || (c == '\u{200C}'
                        && prev.is_some_and(|p| p.is_alphabetic() && !p.is_ascii())
                        && next.is_some_and(|n| n.is_alphabetic() && !n.is_ascii()));
                if benign {
                    prev = Some(c);
                    off += len;
                    continue;
                }
                ("obf.zero_width", Severity::High, WHY_ZW)
            }
            Invisible::BidiEmbedding => ("obf.bidi", Severity::High, WHY_BIDI),
            Invisible::BidiOverride => ("obf.bidi", Severity::Critical, WHY_BIDI),
            Invisible::Tag => {
                let run_start = off;
                let mut hidden = String::new();
                let mut count = 0;
                let mut last = c;
                // A subdivision flag: 🏴, lower-case tag letters or digits, CANCEL TAG.
                let mut flag_letters = true;
                while let Some(t) = text[off..]
                    .chars()
                    .next()
                    .filter(|t| classify(*t) == Some(Invisible::Tag))
                {
                    count += 1;
                    flag_letters &= t == '\u{E007F}'
                        || matches!(t as u32, 0xE0030..=0xE0039 | 0xE0061..=0xE007A);
                    last = t;
                    let shown = char::from_u32(t as u32 - 0xE0000).filter(|h| !h.is_control());
                    if let Some(h) = shown.filter(|_| hidden.len() < 200) {
                        hidden.push(h);
                    }
                    off += t.len_utf8();
                }
                let flag = prev == Some('\u{1F3F4}')
                    && (2..=7).contains(&count)
                    && last == '\u{E007F}'
                    && flag_letters;
                prev = Some(last);
                if flag {
                    continue;
                }
                let line = src.line_of(run_start);
                if out.has("obf.tag_chars", src.path, line) {
                    continue;
                }
                let (ls, le) = src.line_range(line);
                let at = run_start - ls;
                let shown = super::source::shorten(&text[ls..le], at, at);
                out.push_raw(Finding {
                    id: "obf.tag_chars",
                    severity: Severity::Critical,
                    file: src.path.to_string(),
                    line,
                    evidence: format!(
                        "{shown} [hidden text: \"{}\"]",
                        escape(&truncate(&hidden, 80))
                    ),
                    why: WHY_TAG,
                });
                continue;
            }
        };
        out.push_at(src, id, severity, off, off + len, why);
        prev = Some(c);
        off += len;
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).chain(std::iter::once('…')).collect()
    }
}
