//! Writing YAML scalars that every YAML parser (YAML 1.1 ones included, where `no` and
//! `on` are booleans) reads back as the same string.

use std::fmt::Write;

/// `s` as a double-quoted scalar. Everything outside YAML's printable set, and `"` and
/// `\`, is escaped; nothing else can end or change the string.
pub fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if printable(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// YAML's c-printable set, without TAB, LF and CR (escaped instead), and without what
/// libyaml also reads as a line break (NEL, LS, PS) or a byte order mark.
fn printable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
        || u32::from(c) > 0xFFFF
}

/// Compose interpolates `$VAR` in every value; `$$` is a literal `$`.
pub fn compose_q(s: &str) -> String {
    q(&s.replace('$', "$$"))
}

/// `text` as a literal block scalar (`|`) whose lines are indented by `indent` spaces, for
/// text Cordon generated itself (starts with a non-space, printable, LF line ends). Falls
/// back to [`q`] for anything else, so the value always reads back unchanged.
pub fn block(text: &str, indent: usize) -> String {
    let plain = text.ends_with('\n')
        && !text.ends_with("\n\n")
        && !text.starts_with([' ', '\t', '\n'])
        && text.chars().all(|c| c == '\n' || c == '\t' || printable(c))
        && !text.lines().any(|l| l.ends_with([' ', '\t']));
    if !plain {
        return q(text);
    }
    let pad = " ".repeat(indent);
    let mut out = String::from("|\n");
    for line in text.lines() {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    // The caller ends the line; drop ours.
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_could_change_the_string() {
        assert_eq!(q("no"), "\"no\"");
        assert_eq!(q("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(q("\u{7f}\u{1}"), "\"\\u007F\\u0001\"");
        assert_eq!(q("a\u{85}b\u{2028}"), "\"a\\u0085b\\u2028\"");
        assert_eq!(block("a\u{85}b\n", 2), "\"a\\u0085b\\n\"");
        assert_eq!(compose_q("$HOME"), "\"$$HOME\"");
    }

    #[test]
    fn blocks_only_for_plain_text() {
        assert_eq!(block("a = 1\n\nb\n", 4), "|\n    a = 1\n\n    b");
        assert_eq!(block(" leading\n", 2), "\" leading\\n\"");
        assert_eq!(block("no newline", 2), "\"no newline\"");
        assert_eq!(block("trailing \n", 2), "\"trailing \\n\"");
    }
}
