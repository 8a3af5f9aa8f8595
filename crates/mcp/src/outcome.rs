//! A tool's result as the agent gets it: text, with everything that is not text
//! described (kind, type, size) rather than dumped, cut at a byte cap with a note
//! saying so, and the server's `isError` kept.

use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

/// What a call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// Text blocks joined by newlines; image, audio and resource blocks as one-line
    /// descriptions (`[image: image/png, 1234 bytes]`); structured content as JSON when
    /// there is no other content. At most [`crate::Limits::max_result_bytes`] bytes plus
    /// the note saying it was cut.
    pub text: String,
    /// The server said the tool failed (`isError`): the text is its error message.
    pub is_error: bool,
    /// Set when `text` was cut.
    pub cut: Option<Cut>,
    /// Each content block's kind and size, in order.
    pub blocks: Vec<Block>,
    /// Progress notifications received for the call, and the last one's message.
    pub progress: u32,
    pub last_progress: Option<String>,
    pub duration: Duration,
}

/// How much of the result was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Bytes of `text` kept (before the note).
    pub kept: usize,
    /// Bytes the full text would have had.
    pub total: usize,
}

/// One content block, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `text`, `image`, `audio`, `resource`, `resource_link` or `unknown`.
    pub kind: &'static str,
    /// The MIME type, when the server gave one.
    pub mime_type: Option<String>,
    /// Bytes of content (decoded size for base64 data).
    pub bytes: usize,
}

/// Bytes a base64 string decodes to (without decoding it).
fn decoded_len(b64: &str) -> usize {
    let s = b64.trim_end_matches('=');
    s.len() * 3 / 4
}

/// Appends to `text` up to `cap` bytes, counting everything.
struct Capped {
    text: String,
    cap: usize,
    total: usize,
}

impl Capped {
    fn push(&mut self, s: &str) {
        if self.total > 0 {
            self.add("\n");
        }
        self.add(s);
    }

    fn add(&mut self, s: &str) {
        self.total += s.len();
        let room = self.cap.saturating_sub(self.text.len());
        if room >= s.len() {
            self.text.push_str(s);
        } else if room > 0 {
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
        }
    }
}

pub(crate) fn render(
    result: CallToolResult,
    cap: usize,
    progress: (u32, Option<String>),
    duration: Duration,
) -> CallOutcome {
    let mut out = Capped {
        text: String::new(),
        cap,
        total: 0,
    };
    let mut blocks = Vec::with_capacity(result.content.len());
    for block in &result.content {
        let (b, line) = describe(block);
        match block {
            ContentBlock::Text(t) => out.push(&t.text),
            // An embedded text resource (a file's contents, say): its description, then
            // its text, under the same cap as text blocks.
            ContentBlock::Resource(r) => {
                out.push(&line);
                if let ResourceContents::TextResourceContents { text, .. } = &r.resource {
                    out.push(text);
                }
            }
            _ => out.push(&line),
        }
        blocks.push(b);
    }
    if result.content.is_empty()
        && let Some(structured) = &result.structured_content
    {
        let json = serde_json::to_string(structured).unwrap_or_default();
        out.push(&json);
    }
    let cut = (out.total > out.text.len()).then_some(Cut {
        kept: out.text.len(),
        total: out.total,
    });
    let mut text = out.text;
    if let Some(c) = cut {
        text.push_str(&format!(
            "\n[… cut: {} of {} bytes shown (max_result_bytes)]",
            c.kept, c.total
        ));
    }
    CallOutcome {
        text,
        is_error: result.is_error.unwrap_or(false),
        cut,
        blocks,
        progress: progress.0,
        last_progress: progress.1,
        duration,
    }
}

/// A block's summary and its one-line description.
fn describe(block: &ContentBlock) -> (Block, String) {
    let b = |kind, mime_type: Option<&str>, bytes| Block {
        kind,
        mime_type: mime_type.map(str::to_string),
        bytes,
    };
    match block {
        ContentBlock::Text(t) => (b("text", None, t.text.len()), String::new()),
        ContentBlock::Image(i) => {
            let n = decoded_len(&i.data);
            (
                b("image", Some(&i.mime_type), n),
                format!("[image: {}, {n} bytes]", i.mime_type),
            )
        }
        ContentBlock::Audio(a) => {
            let n = decoded_len(&a.data);
            (
                b("audio", Some(&a.mime_type), n),
                format!("[audio: {}, {n} bytes]", a.mime_type),
            )
        }
        ContentBlock::Resource(r) => {
            let (uri, mime, n) = match &r.resource {
                ResourceContents::TextResourceContents {
                    uri,
                    mime_type,
                    text,
                    ..
                } => (uri, mime_type, text.len()),
                ResourceContents::BlobResourceContents {
                    uri,
                    mime_type,
                    blob,
                    ..
                } => (uri, mime_type, decoded_len(blob)),
                _ => return (b("resource", None, 0), "[resource]".to_string()),
            };
            let mime_shown = mime.as_deref().unwrap_or("unknown type");
            (
                b("resource", mime.as_deref(), n),
                format!("[resource: {uri}, {mime_shown}, {n} bytes]"),
            )
        }
        ContentBlock::ResourceLink(l) => {
            let size = l.size.map(|s| format!(", {s} bytes")).unwrap_or_default();
            (
                b("resource_link", l.mime_type.as_deref(), 0),
                format!("[resource link: {} ({}){size}]", l.uri, l.name),
            )
        }
        _ => (
            b("unknown", None, 0),
            "[content of an unknown kind]".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(content: Vec<ContentBlock>) -> CallToolResult {
        let mut r = CallToolResult::success(content);
        r.is_error = Some(false);
        r
    }

    #[test]
    fn text_is_joined_and_images_are_described_not_dumped() {
        let data = "iVBORw0KGgo".repeat(100);
        let out = render(
            result(vec![
                ContentBlock::text("one"),
                ContentBlock::image(data.clone(), "image/png"),
                ContentBlock::text("two"),
            ]),
            1024,
            (0, None),
            Duration::ZERO,
        );
        assert_eq!(
            out.text,
            format!("one\n[image: image/png, {} bytes]\ntwo", data.len() * 3 / 4)
        );
        assert!(!out.text.contains("iVBOR"));
        assert_eq!(out.blocks[1].kind, "image");
        assert_eq!(out.cut, None);
    }

    #[test]
    fn an_embedded_text_resource_is_shown_with_its_text() {
        let resource = ContentBlock::embedded_text("file:///workspace/a.txt", "hello there");
        let out = render(
            result(vec![ContentBlock::text("one"), resource]),
            1024,
            (0, None),
            Duration::ZERO,
        );
        assert!(
            out.text
                .starts_with("one\n[resource: file:///workspace/a.txt"),
            "{}",
            out.text
        );
        assert!(out.text.ends_with("11 bytes]\nhello there"), "{}", out.text);
    }

    #[test]
    fn a_long_text_is_cut_on_a_char_boundary_and_says_so() {
        let long = "é".repeat(100); // 200 bytes
        let out = render(
            result(vec![ContentBlock::text(long)]),
            51,
            (0, None),
            Duration::ZERO,
        );
        let cut = out.cut.expect("cut");
        assert_eq!((cut.kept, cut.total), (50, 200));
        assert!(out.text.starts_with(&"é".repeat(25)));
        assert!(
            out.text
                .ends_with("[… cut: 50 of 200 bytes shown (max_result_bytes)]")
        );
    }
}
