//! Untrusted-content hygiene: what is done to network content before it enters the
//! model's context.
//!
//! The pipeline for an untrusted observation is: HTML reduced to visible text (only when
//! the response is HTML) -> [`strip_invisible`] -> [`neutralise_template_tokens`] ->
//! [`Boundary::wrap`] with the session's nonce.
//!
//! Guarantees: the wrapped text contains exactly one closing marker for the session's
//! nonce, at its end; any `<<untrusted` / `<</untrusted` inside the content is defused,
//! so content cannot close (or fake-open) a block, even knowing the nonce. The nonce is
//! 128 random bits from the OS, new for every session. Removed: HTML comments,
//! `<script>`, `<style>`, `<noscript>`, `<template>`, `<iframe>`, `<head>` content,
//! elements marked `hidden` / `aria-hidden="true"` or styled `display:none`,
//! `visibility:hidden|collapse`, `font-size:0`, `opacity:0` (with everything inside
//! them); zero-width, bidi-control and other invisible format characters, C0/C1 control
//! characters other than tab/newline/CR, Unicode tag characters and the supplementary
//! variation selectors (both used to smuggle invisible ASCII). Chat-template tokens are
//! broken with a visible change, so the text stays readable but is no longer the token.
//!
//! Not guaranteed: this is hygiene, not the protection — the integrity label on the
//! observation is. The HTML reducer is not a browser: text hidden by external CSS,
//! classes, off-screen positioning, tiny/transparent colours or scripts stays visible
//! here; malformed markup may hide a little more or a little less than a browser would.
//! Template tokens of model families not listed below are not recognised (except any
//! `<|...|>` token, which is always broken).

use std::sync::LazyLock;

use regex::Regex;

/// Why a session boundary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HygieneError {
    #[error(
        "cannot draw the random nonce for the untrusted-content boundary from the OS \
         ({0}); untrusted content is withheld rather than shown unmarked — check that \
         the OS random source (getrandom / /dev/urandom) is available"
    )]
    Nonce(String),
}

/// The per-session marker around untrusted content. The nonce is unguessable, so text
/// inside a block cannot produce the real closing marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    nonce: String,
}

/// Longest `source` attribute kept (in characters).
const MAX_SOURCE: usize = 300;

impl Boundary {
    /// A fresh boundary with 128 random bits from the OS, as 32 hex digits.
    pub fn new() -> Result<Boundary, HygieneError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| HygieneError::Nonce(e.to_string()))?;
        Ok(Boundary {
            nonce: hex::encode(bytes),
        })
    }

    /// The nonce, 32 lowercase hex digits.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The closing marker of this boundary.
    pub fn closing(&self) -> String {
        format!("<</untrusted nonce={}>>", self.nonce)
    }

    /// `<<untrusted nonce=N source="…">>\n{content}\n<</untrusted nonce=N>>`. Marker
    /// prefixes inside `content` are defused first; `source` loses quotes, angle
    /// brackets, control and invisible characters.
    pub fn wrap(&self, source: &str, content: &str) -> String {
        let body = defuse_markers(content);
        format!(
            "<<untrusted nonce={} source=\"{}\">>\n{}\n{}",
            self.nonce,
            sanitise_source(source),
            body,
            self.closing()
        )
    }
}

static MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<<(\s*/?\s*untrusted)").expect("static regex"));

/// Break every `<<untrusted` / `<</untrusted` (any case, any spacing) so none can be
/// read as a boundary marker.
fn defuse_markers(s: &str) -> String {
    MARKER.replace_all(s, "< <$1").into_owned()
}

fn sanitise_source(source: &str) -> String {
    strip_invisible(source)
        .chars()
        .map(|c| match c {
            '"' | '\'' | '<' | '>' | '`' => '_',
            c if c.is_control() || c.is_whitespace() && c != ' ' => ' ',
            c => c,
        })
        .take(MAX_SOURCE)
        .collect()
}

/// Whether `c` is removed by [`strip_invisible`].
///
/// Removed: all `Cf` characters that are invisible or reorder text — U+00AD soft
/// hyphen (splits words invisibly), U+180E, U+200B–U+200F (zero-width, LRM/RLM),
/// U+202A–U+202E and U+2066–U+2069 (bidi embeddings/isolates), U+2060–U+2064,
/// U+206A–U+206F, U+061C, U+FEFF, U+FFF9–U+FFFB (interlinear annotation, which hides
/// text), U+E0001 and U+E0020–U+E007F (tag characters: invisible ASCII); plus C0/C1
/// controls except tab, newline and CR, and the supplementary variation selectors
/// U+E0100–U+E01EF (not `Cf`, but used the same way to smuggle bytes).
///
/// Kept on purpose (the `Cf` characters not listed): the Arabic/Syriac/Kaithi number
/// and abbreviation marks (U+0600–U+0605, U+06DD, U+070F, U+0890–U+0891, U+08E2,
/// U+110BD, U+110CD), Egyptian hieroglyph, shorthand and musical format controls: they
/// carry meaning in their scripts, render visibly with their neighbours, and do not
/// reorder or hide text.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{c}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
            | '\u{e0100}'..='\u{e01ef}'
    )
}

/// Remove zero-width, bidi-control and other invisible format characters (see
/// [`is_invisible`] for the exact set and what is kept).
pub fn strip_invisible(s: &str) -> String {
    s.chars().filter(|&c| !is_invisible(c)).collect()
}

/// U+2223 DIVIDES: looks like `|` but is not the token's bar.
const BAR: &str = "\u{2223}";

static PIPE_OPEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<[|\u{FF5C}]").expect("static regex"));
static PIPE_CLOSE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[|\u{FF5C}]>").expect("static regex"));
static BRACKET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\[(/?)(INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]")
        .expect("static regex")
});
static SYS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<<(/?)SYS>>").expect("static regex"));
static ANGLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<(/?)(s|bos|eos|start_of_turn|end_of_turn|tool_call|tool_response|think)>")
        .expect("static regex")
});
static ROLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^([ \t]*)(Human|Assistant):").expect("static regex"));

/// Break chat-template tokens with a visible change: `<|x|>` (and the full-width
/// `<｜x｜>`) -> `<∣x∣>`, `[INST]` -> `[ INST ]`, `<<SYS>>` -> `<< SYS >>`, `<s>` ->
/// `< s >`, `<start_of_turn>` -> `< start_of_turn >`, `Human:` at a line start ->
/// `Human :`.
pub fn neutralise_template_tokens(s: &str) -> String {
    let s = PIPE_OPEN.replace_all(s, format!("<{BAR}").as_str());
    let s = PIPE_CLOSE.replace_all(&s, format!("{BAR}>").as_str());
    let s = BRACKET.replace_all(&s, "[ $1$2 ]");
    let s = SYS.replace_all(&s, "<< ${1}SYS >>");
    let s = ANGLE.replace_all(&s, "< $1$2 >");
    let s = ROLE.replace_all(&s, "$1$2 :");
    s.into_owned()
}

/// Whether a response is HTML: its `content-type` says so, or (without a
/// `content-type`) the body starts with `<!doctype html` or `<html`.
pub fn is_html(content_type: Option<&str>, body: &str) -> bool {
    // An explicit type is what a browser would go by: `text/plain` markup is shown as
    // markup, so it is left as it is.
    if let Some(ct) = content_type.map(str::trim).filter(|ct| !ct.is_empty()) {
        return ct.to_ascii_lowercase().contains("html");
    }
    let head: String = body
        .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .chars()
        .take(14)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

/// Elements whose content is never shown (raw text: skipped up to their end tag).
const RAW_HIDDEN: [&str; 8] = [
    "script", "style", "noscript", "template", "iframe", "noembed", "noframes", "xmp",
];
/// Elements without content.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
/// Elements that start a new line.
const BLOCK: [&str; 38] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tr",
    "ul",
    "title",
    "option",
];
/// Elements a new one of the same name implicitly closes.
const SELF_CLOSING_SIBLINGS: [&str; 6] = ["p", "li", "dt", "dd", "tr", "option"];

/// Deepest element nesting followed; real pages stay far below it.
const MAX_DEPTH: usize = 256;

/// One open element: its name and whether it hides its content.
struct Open {
    name: String,
    hidden: bool,
}

/// Reduce HTML to the text a browser would show: see the module docs for what is
/// dropped. Entities are decoded, block elements become line breaks, whitespace is
/// collapsed and blank lines dropped. Linear in the input; a document nested deeper
/// than 256 elements is cut there (and says so).
pub fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut stack: Vec<Open> = Vec::new();
    let mut hidden_depth = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if hidden_depth == 0 {
                push_text(&mut out, rest);
            }
            break;
        };
        if hidden_depth == 0 {
            push_text(&mut out, &rest[..lt]);
        }
        rest = &rest[lt..];
        let after = &rest[1..];
        if let Some(comment) = after.strip_prefix("!--") {
            rest = match comment.find("-->") {
                Some(end) => &comment[end + 3..],
                None => "",
            };
        } else if after.starts_with('!') || after.starts_with('?') {
            // Doctype, CDATA, processing instruction: not text.
            rest = match after.find('>') {
                Some(end) => &after[end + 1..],
                None => "",
            };
        } else if let Some(close) = after.strip_prefix('/') {
            if !close.starts_with(|c: char| c.is_ascii_alphabetic()) {
                if hidden_depth == 0 {
                    out.push('<');
                }
                rest = after;
                continue;
            }
            let (tag, next) = parse_tag(close);
            rest = next;
            if let Some(pos) = stack.iter().rposition(|o| o.name == tag.name) {
                for o in stack.drain(pos..) {
                    if o.hidden {
                        hidden_depth -= 1;
                    }
                }
            }
            if BLOCK.contains(&tag.name.as_str()) {
                out.push('\n');
            } else if tag.name == "td" || tag.name == "th" {
                out.push(' ');
            }
        } else if after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let (tag, next) = parse_tag(after);
            rest = next;
            let name = tag.name.as_str();
            if RAW_HIDDEN.contains(&name) {
                rest = skip_raw(rest, name);
                continue;
            }
            if name == "body"
                && let Some(pos) = stack.iter().rposition(|o| o.name == "head")
            {
                for o in stack.drain(pos..) {
                    if o.hidden {
                        hidden_depth -= 1;
                    }
                }
            }
            if SELF_CLOSING_SIBLINGS.contains(&name)
                && stack.last().is_some_and(|o| o.name == name)
                && let Some(o) = stack.pop()
                && o.hidden
            {
                hidden_depth -= 1;
            }
            if BLOCK.contains(&name) {
                out.push('\n');
            } else if name == "td" || name == "th" {
                out.push(' ');
            }
            if VOID.contains(&name) {
                continue;
            }
            if stack.len() >= MAX_DEPTH {
                // Past this depth end tags can no longer be matched reliably (and each
                // would cost a long scan): drop the rest rather than risk showing
                // hidden text.
                out.push_str(&format!(
                    "\n[rest of the page dropped: elements nested deeper than {MAX_DEPTH}]"
                ));
                break;
            }
            let hidden = name == "head" || tag.hides;
            if hidden {
                hidden_depth += 1;
            }
            stack.push(Open {
                name: tag.name,
                hidden,
            });
        } else {
            // A lone `<` (as in `a < b`) is text.
            if hidden_depth == 0 {
                out.push('<');
            }
            rest = after;
        }
    }
    tidy(&out)
}

/// Text outside tags: entities decoded, every whitespace run (newlines included)
/// becomes one space; line breaks come only from block elements.
fn push_text(out: &mut String, raw: &str) {
    let decoded = decode_entities(raw);
    for c in decoded.chars() {
        if c.is_whitespace() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
}

/// Collapse spaces, trim lines, drop empty lines.
fn tidy(s: &str) -> String {
    let mut lines = Vec::new();
    for line in s.split('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.is_empty() {
            lines.push(words.join(" "));
        }
    }
    lines.join("\n")
}

/// A parsed start or end tag.
struct Tag {
    name: String,
    /// The element hides its content (`hidden`, `aria-hidden="true"`, hiding style).
    hides: bool,
}

/// Parse a tag from just after `<` (or `</`) to just after its `>`; returns the tag and
/// the rest of the input.
fn parse_tag(s: &str) -> (Tag, &str) {
    let name_len = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len());
    let name = s[..name_len].to_ascii_lowercase();
    let mut rest = &s[name_len..];
    let mut hides = false;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix('>') {
            rest = r;
            break;
        }
        let attr_len = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(rest.len())
            .max(1);
        let attr = rest[..attr_len].to_ascii_lowercase();
        rest = rest[attr_len..].trim_start();
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            let (raw, next) = match r.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let inner = &r[1..];
                    match inner.find(q) {
                        Some(end) => (&inner[..end], &inner[end + 1..]),
                        None => (inner, ""),
                    }
                }
                _ => {
                    let end = r
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(r.len());
                    (&r[..end], &r[end..])
                }
            };
            value = decode_entities(raw);
            rest = next;
        }
        hides |= match attr.as_str() {
            "hidden" => true,
            "aria-hidden" => value.trim().eq_ignore_ascii_case("true"),
            "style" => style_hides(&value),
            _ => false,
        };
    }
    (Tag { name, hides }, rest)
}

/// Whether an inline style hides the element.
fn style_hides(style: &str) -> bool {
    // Drop CSS comments and whitespace: `display : /**/ none` is `display:none`.
    let mut css = String::with_capacity(style.len());
    let mut rest = style;
    while let Some(start) = rest.find("/*") {
        css.push_str(&rest[..start]);
        rest = match rest[start + 2..].find("*/") {
            Some(end) => &rest[start + 2 + end + 2..],
            None => "",
        };
    }
    css.push_str(rest);
    let css: String = css
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    css.split(';').any(|decl| {
        let Some((prop, value)) = decl.split_once(':') else {
            return false;
        };
        let value = value.trim_end_matches("!important");
        match prop {
            "display" => value == "none",
            "visibility" => value == "hidden" || value == "collapse",
            "font-size" | "opacity" => is_zero(value),
            _ => false,
        }
    })
}

/// `0`, `0.0`, `0px`, `0em`, `0%`, …: a number equal to zero with any unit.
fn is_zero(value: &str) -> bool {
    let num: String = value
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-')
        .collect();
    !num.is_empty() && num.parse::<f64>().is_ok_and(|n| n == 0.0)
}

/// Skip the content of a raw-text element up to and including `</name>`; everything
/// when it is never closed. Linear in what it skips (no copy of the rest).
fn skip_raw<'a>(s: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(pos) = s[from..].find("</") {
        let at = from + pos + 2;
        let matches_name = s
            .get(at..at + name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name));
        if !matches_name {
            from = at;
            continue;
        }
        let after = at + name.len();
        let next = s[after..].chars().next();
        if matches!(next, None | Some('>' | '/')) || next.is_some_and(char::is_whitespace) {
            return match s[after..].find('>') {
                Some(end) => &s[after + end + 1..],
                None => "",
            };
        }
        from = after;
    }
    ""
}

/// Decode `&amp; &lt; &gt; &quot; &apos; &nbsp;`, a few typographic names, and
/// numeric references (`&#NNN;`, `&#xHH;`); unknown or malformed references stay as
/// written. Invalid code points become U+FFFD.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest[1..]
            .char_indices()
            .take(32)
            .find(|&(_, c)| c == ';' || c == '&' || c.is_whitespace())
            .filter(|&(_, c)| c == ';')
            .map(|(i, _)| i + 1);
        let decoded = semi.and_then(|semi| entity(&rest[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return Some(match char::from_u32(code) {
            Some('\0') | None => '\u{fffd}',
            Some(c) => c,
        });
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "euro" => '€',
        _ => return None,
    })
}

/// The body-cut note `http_fetch` appends; kept outside the block (it is Cordon's).
fn split_cut_note(body: &str) -> (&str, &str) {
    match body.rfind("\n[body cut at ") {
        Some(at) if body[at..].ends_with(" bytes]") && !body[at + 1..].contains('\n') => {
            (&body[..at], &body[at..])
        }
        _ => (body, ""),
    }
}

/// Clean an `http_fetch` response (`HTTP status` line, `URL:` line, header lines, a
/// blank line, the body): the two first lines (Cordon's) stay outside the block,
/// sanitised; headers and body (the server's) go inside it, the body reduced to visible
/// text when the response is HTML.
pub(crate) fn http_response(boundary: &Boundary, source: &str, content: &str) -> String {
    let (head, body) = content.split_once("\n\n").unwrap_or((content, ""));
    let mut lines = head.splitn(3, '\n');
    let status = lines.next().unwrap_or("");
    let url = lines.next().unwrap_or("");
    let headers = lines.next().unwrap_or("");
    let content_type = headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-type")
            .then(|| v.trim())
    });
    let (body, note) = split_cut_note(body);
    let body = if is_html(content_type, body) {
        visible_text(body)
    } else {
        body.to_string()
    };
    let inner = clean(&format!("{headers}\n\n{body}"));
    format!(
        "{}\n{}\n{}{note}",
        clean(status),
        clean(url),
        boundary.wrap(source, &inner)
    )
}

/// Untrusted text that is not an HTTP response (an error that may quote the server):
/// cleaned and wrapped whole.
pub(crate) fn untrusted_text(boundary: &Boundary, source: &str, content: &str) -> String {
    boundary.wrap(source, &clean(content))
}

fn clean(s: &str) -> String {
    neutralise_template_tokens(&strip_invisible(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_keeps_status_and_url_outside_and_cut_note_after() {
        let b = Boundary::new().unwrap();
        let content = "HTTP 200 OK\nURL: http://x/\ncontent-type: text/html\n\n<p>hi</p><script>x\n[body cut at 10 bytes]";
        let out = http_response(&b, "tool:http_fetch http://x/", content);
        assert!(
            out.starts_with("HTTP 200 OK\nURL: http://x/\n<<untrusted nonce="),
            "{out}"
        );
        assert!(
            out.ends_with(&format!("{}\n[body cut at 10 bytes]", b.closing())),
            "{out}"
        );
        assert!(out.contains("content-type: text/html\n\nhi\n"), "{out}");
    }

    #[test]
    fn html_is_sniffed_only_without_a_content_type() {
        assert!(is_html(Some("text/html; charset=utf-8"), "x"));
        assert!(is_html(Some("application/xhtml+xml"), "x"));
        assert!(is_html(None, "\n  <!DOCTYPE HTML><p>x"));
        assert!(is_html(None, "<html><p>x"));
        assert!(!is_html(None, "plain <b>text</b>"));
        assert!(!is_html(Some("text/plain"), "<!doctype html><p>x"));
        assert!(!is_html(Some("application/json"), "{\"a\": \"<html>\"}"));
    }

    #[test]
    fn headers_only_response_is_wrapped() {
        let b = Boundary::new().unwrap();
        let out = http_response(&b, "s", "HTTP 204 No Content\nURL: http://x/\nx-a: 1\n");
        assert!(out.contains("x-a: 1"), "{out}");
        assert!(out.ends_with(&b.closing()), "{out}");
    }
}
