//! A server-sent-events decoder that is fed network chunks as they come.
//!
//! It follows the SSE format: lines end with `\n`, `\r\n` or `\r` (also when the two bytes
//! of `\r\n` arrive in different chunks); a line may be split across any number of chunks;
//! `:` lines are comments; `event:` names the event; several `data:` lines are joined with
//! `\n`; a blank line dispatches. It counts every byte it is fed and refuses more than its
//! limit, so a server cannot make it buffer without bound.
//!
//! One departure, kept apart: a line of an event that is no SSE field (a payload's JSON
//! continued after a raw newline) is ignored by the format but kept in
//! [`SseEvent::stray`], so that a reader may try the payload joined with it.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    /// Lines of the event that are no field (`data`, `event`, `id`, `retry`) nor comment,
    /// in order: what a server that wrote a raw newline inside a payload sent after it.
    pub stray: Vec<String>,
}

/// The stream went over the byte limit.
#[derive(Debug)]
pub(super) struct TooLarge;

pub(super) struct SseDecoder {
    line: Vec<u8>,
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    stray: Vec<String>,
    seen: usize,
    limit: usize,
    /// The first bytes of the stream, for error excerpts.
    head: Vec<u8>,
}

/// How much of the stream's start [`SseDecoder::head`] keeps.
const HEAD_BYTES: usize = 400;

impl SseDecoder {
    pub(super) fn new(limit: usize) -> SseDecoder {
        SseDecoder {
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: None,
            stray: Vec::new(),
            seen: 0,
            limit,
            head: Vec::new(),
        }
    }

    /// Feed one chunk; returns the events it completed.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, TooLarge> {
        self.seen = self.seen.saturating_add(chunk.len());
        if self.seen > self.limit {
            return Err(TooLarge);
        }
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        let mut out = Vec::new();
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    /// The stream ended: complete what is pending (a server may omit the last blank line).
    pub(super) fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.end_line(&mut out);
        out.pop()
    }

    /// The start of the stream as text, for error excerpts.
    pub(super) fn head(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    event: self.event.take(),
                    data,
                    stray: std::mem::take(&mut self.stray),
                });
            }
            self.event = None;
            self.stray.clear();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            "id" | "retry" => {}
            _ => self.stray.push(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = ": keep-alive\r\n\r\nevent: a\ndata: {\"x\":1}\n\ndata: one\ndata: two\r\n\r\n\
                          id: 7\nretry: 10\ndata: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: Some("a".into()),
                data: "{\"x\":1}".into(),
                stray: vec![],
            },
            SseEvent {
                event: None,
                data: "one\ntwo".into(),
                stray: vec![],
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
                stray: vec![],
            },
        ]
    }

    #[test]
    fn whole_stream_decodes() {
        let mut d = SseDecoder::new(1 << 20);
        let mut got = d.feed(STREAM.as_bytes()).unwrap();
        got.extend(d.finish());
        assert_eq!(got, expected());
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let bytes = STREAM.as_bytes();
        for cut in 0..bytes.len() {
            for cut2 in cut..bytes.len() {
                let mut d = SseDecoder::new(1 << 20);
                let mut got = d.feed(&bytes[..cut]).unwrap();
                got.extend(d.feed(&bytes[cut..cut2]).unwrap());
                got.extend(d.feed(&bytes[cut2..]).unwrap());
                got.extend(d.finish());
                assert_eq!(got, expected(), "cuts at {cut}, {cut2}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_and_missing_final_blank_line() {
        let mut d = SseDecoder::new(1 << 20);
        let mut got = Vec::new();
        for b in "data: a\r\rdata: b".as_bytes() {
            got.extend(d.feed(&[*b]).unwrap());
        }
        got.extend(d.finish());
        let data: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["a", "b"]);
    }

    #[test]
    fn lines_that_are_no_field_are_kept_with_their_event() {
        let mut d = SseDecoder::new(1 << 20);
        let mut got = d
            .feed(b"data: {\"a\":\"x\nb: y\"}\nid: 3\n\ndata: 2\nstray\n\n")
            .unwrap();
        got.extend(d.finish());
        assert_eq!(got[0].data, "{\"a\":\"x");
        assert_eq!(got[0].stray, vec!["b: y\"}"]);
        assert_eq!(got[1].stray, vec!["stray"]);
    }

    #[test]
    fn over_the_limit_is_refused() {
        let mut d = SseDecoder::new(10);
        assert!(d.feed(b"data: 12").is_ok());
        assert!(d.feed(b"345\n\n").is_err());
    }
}
