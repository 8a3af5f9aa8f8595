//! A reasoning model's channel tokens leaking into `content`.
//!
//! Models trained on the "harmony" format (gpt-oss) write their answer as messages in
//! channels: `<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final
//! <|message|>…<|return|>`. A server without a parser for it passes the tokens through as
//! text. [`ChannelSplitter`] reduces such content to the `final` channel's text (the
//! answer) and sends every other channel (`analysis`, `commentary`) to reasoning.
//!
//! It is fed the content in the pieces it streams in, and a token may be cut across
//! pieces: a piece that ends in what could be the start of a token is held back until the
//! next one says. Content without these tokens passes through unchanged, piece for piece
//! (except a trailing `<` or `<|…`, held one piece). Only the exact tokens below are
//! recognised; any other `<|…|>` is text.
//!
//! What it does not do: it does not turn a `commentary` message addressed to a tool
//! (`to=functions.NAME`) into a tool call. Such text is reasoning, never a call.

/// The tokens of the format, without their `<|`/`|>`.
const TOKENS: [&str; 7] = [
    "start",
    "end",
    "message",
    "channel",
    "constrain",
    "return",
    "call",
];

/// The longest token with its delimiters: `<|constrain|>`.
const LONGEST: usize = 13;

/// Text split into what is the answer and what is reasoning.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Split {
    pub answer: String,
    pub reasoning: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No token seen yet: content is the answer.
    Plain,
    /// In a message header (`<|start|>ROLE`, `<|channel|>NAME …`): collecting the channel.
    Header { channel: Option<String> },
    /// In a message body; `answer` when its channel is `final` (or none was named).
    Body { answer: bool },
    /// After `<|end|>`, `<|return|>` or `<|call|>`, before the next header.
    Between,
}

pub(super) struct ChannelSplitter {
    state: State,
    /// Text not yet classified: it may end in the start of a token.
    pending: String,
}

impl Default for ChannelSplitter {
    fn default() -> Self {
        ChannelSplitter {
            state: State::Plain,
            pending: String::new(),
        }
    }
}

impl ChannelSplitter {
    /// Feed the next piece of content; returns what can be classified so far.
    pub(super) fn push(&mut self, piece: &str) -> Split {
        self.pending.push_str(piece);
        let mut out = Split::default();
        loop {
            let Some(at) = self.pending.find("<|") else {
                // A lone `<` at the very end may become `<|`.
                let keep = usize::from(self.pending.ends_with('<'));
                let text: String = self.pending.drain(..self.pending.len() - keep).collect();
                self.emit(&text, &mut out);
                return out;
            };
            let before: String = self.pending.drain(..at).collect();
            self.emit(&before, &mut out);
            // `pending` now starts with `<|`.
            match self.pending[2..].find("|>") {
                Some(end) if TOKENS.contains(&&self.pending[2..2 + end]) => {
                    let token = self.pending[2..2 + end].to_string();
                    self.pending.drain(..end + 4);
                    self.on_token(&token);
                }
                None if self.pending.len() < LONGEST
                    && TOKENS
                        .iter()
                        .any(|t| format!("<|{t}|>").starts_with(self.pending.as_str())) =>
                {
                    return out; // wait for the rest of a possible token
                }
                _ => {
                    // Not a token: `<|` is text.
                    self.pending.drain(..2);
                    self.emit("<|", &mut out);
                }
            }
        }
    }

    /// The content ended: classify what was held back.
    pub(super) fn finish(&mut self) -> Split {
        let mut out = Split::default();
        let rest = std::mem::take(&mut self.pending);
        self.emit(&rest, &mut out);
        out
    }

    fn on_token(&mut self, token: &str) {
        self.state = match (token, &self.state) {
            ("start", _) => State::Header { channel: None },
            ("channel", _) => State::Header {
                channel: Some(String::new()),
            },
            ("message", State::Header { channel }) => {
                let name = channel.as_deref().unwrap_or("");
                let name = name.split_whitespace().next().unwrap_or("");
                State::Body {
                    answer: name.is_empty() || name == "final",
                }
            }
            ("message", _) => State::Body { answer: true },
            ("end" | "return" | "call", _) => State::Between,
            // `<|constrain|>` belongs to a header; elsewhere it changes nothing.
            (_, state) => state.clone(),
        };
    }

    fn emit(&mut self, text: &str, out: &mut Split) {
        if text.is_empty() {
            return;
        }
        match &mut self.state {
            State::Plain | State::Body { answer: true } => out.answer.push_str(text),
            State::Body { answer: false } => out.reasoning.push_str(text),
            State::Header { channel } => {
                if let Some(c) = channel {
                    c.push_str(text);
                }
            }
            // Whitespace between messages is layout; anything else is kept as answer.
            State::Between => {
                if !text.trim().is_empty() {
                    out.answer.push_str(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAKED: &str = "<|channel|>analysis<|message|>User asks for the capital. \
                          Answer: Paris.<|end|><|start|>assistant<|channel|>final\
                          <|message|>Paris is the capital of France.<|return|>";

    fn whole(pieces: &[&str]) -> Split {
        let mut s = ChannelSplitter::default();
        let mut out = Split::default();
        for p in pieces {
            let got = s.push(p);
            out.answer.push_str(&got.answer);
            out.reasoning.push_str(&got.reasoning);
        }
        let got = s.finish();
        out.answer.push_str(&got.answer);
        out.reasoning.push_str(&got.reasoning);
        out
    }

    #[test]
    fn final_channel_is_the_answer_and_analysis_is_reasoning() {
        let want = Split {
            answer: "Paris is the capital of France.".into(),
            reasoning: "User asks for the capital. Answer: Paris.".into(),
        };
        assert_eq!(whole(&[LEAKED]), want);
        // Cut at every character boundary into two pieces: the same.
        for (i, _) in LEAKED.char_indices() {
            assert_eq!(whole(&[&LEAKED[..i], &LEAKED[i..]]), want, "cut at {i}");
        }
    }

    #[test]
    fn plain_text_passes_through_piece_for_piece() {
        let mut s = ChannelSplitter::default();
        assert_eq!(s.push("Hello, ").answer, "Hello, ");
        assert_eq!(
            s.push("a < b and x <| y |> z").answer,
            "a < b and x <| y |> z"
        );
        // A trailing `<` waits for the next piece.
        assert_eq!(s.push("1 <").answer, "1 ");
        assert_eq!(s.push(" 2").answer, "< 2");
        assert_eq!(s.push("<|unknown|> stays").answer, "<|unknown|> stays");
        assert_eq!(s.push("<|cha").answer, "");
        assert_eq!(s.finish().answer, "<|cha");
    }

    #[test]
    fn commentary_and_tool_addressed_messages_are_reasoning_never_answer() {
        let text = "<|channel|>commentary to=functions.exec <|constrain|>json<|message|>\
                    {\"command\":\"rm -rf /\"}<|call|>";
        let got = whole(&[text]);
        assert_eq!(got.answer, "");
        assert_eq!(got.reasoning, "{\"command\":\"rm -rf /\"}");
    }
}
