//! A reasoning model's `<think>…</think>` block at the start of `content`.
//!
//! Reasoning models served without a reasoning parser (DeepSeek-R1 distills, QwQ, Qwen3
//! on Ollama, llama.cpp's server, vLLM) write their reasoning into the answer's text as
//! `<think>…</think>` before the answer. When the chat template already opened the block,
//! only `</think>` appears. [`ThinkSplitter`] sends such a block to reasoning and the rest
//! to the answer, fed the content in the pieces it streams in: a tag may be cut anywhere
//! across pieces, and a piece that ends in what could be the start of a tag is held back
//! until the next one says.
//!
//! What it recognises:
//! - `<think>` only at the very start of the content (after whitespace): a `<think>`
//!   later in the text (in code the model writes, say) is text, and so is everything
//!   after it;
//! - the first `</think>` of a content in which no `<think>` came before it: the text
//!   before it was reasoning whose opening tag the template wrote. Pieces already passed
//!   on as answer cannot be taken back, so [`Piece::earlier_was_reasoning`] tells the
//!   caller to move what it kept of them to reasoning;
//! - whitespace between `</think>` and the answer is dropped.
//!
//! A block that never closes (the token limit, or a model that forgot to) stays
//! reasoning to the end: its text is half-finished thinking, not an answer, so the answer
//! is empty and a warning is logged ([`ThinkSplitter::finish`]).

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// What one piece of content turned out to be.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Piece {
    pub answer: String,
    pub reasoning: String,
    /// A `</think>` closed a block that no `<think>` opened: the answer passed on before
    /// this piece was reasoning (it comes before `reasoning`).
    pub earlier_was_reasoning: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Only whitespace so far: `<think>` may still open a block.
    Start,
    /// Inside a block `<think>` opened.
    Open,
    /// The content did not start with `<think>`: answer, unless a `</think>` comes
    /// before any `<think>`.
    Unopened,
    /// After `</think>`: whitespace before the answer.
    Closed,
    /// Answer to the end.
    Answer,
}

pub(super) struct ThinkSplitter {
    state: State,
    /// Text not yet classified: whitespace at the start, or the start of a possible tag.
    pending: String,
}

impl Default for ThinkSplitter {
    fn default() -> Self {
        ThinkSplitter {
            state: State::Start,
            pending: String::new(),
        }
    }
}

impl ThinkSplitter {
    /// Feed the next piece of content; returns what can be classified so far.
    pub(super) fn push(&mut self, piece: &str) -> Piece {
        self.pending.push_str(piece);
        let mut out = Piece::default();
        loop {
            match self.state {
                State::Start => {
                    let rest = self.pending.trim_start();
                    if rest.starts_with(OPEN) {
                        let cut = self.pending.len() - rest.len() + OPEN.len();
                        self.pending.drain(..cut);
                        self.state = State::Open;
                    } else if rest.is_empty() || OPEN.starts_with(rest) {
                        return out; // whitespace, or `<thi…` cut short: wait
                    } else {
                        self.state = State::Unopened;
                    }
                }
                State::Open => match self.pending.find(CLOSE) {
                    Some(at) => {
                        out.reasoning.push_str(&self.pending[..at]);
                        self.pending.drain(..at + CLOSE.len());
                        self.state = State::Closed;
                    }
                    None => {
                        let text = self.take_all_but_tag_start(&[CLOSE]);
                        out.reasoning.push_str(&text);
                        return out;
                    }
                },
                State::Unopened => {
                    let open = self.pending.find(OPEN);
                    match self.pending.find(CLOSE) {
                        Some(close) if open.is_none_or(|open| close < open) => {
                            out.earlier_was_reasoning = true;
                            out.reasoning.push_str(&self.pending[..close]);
                            self.pending.drain(..close + CLOSE.len());
                            self.state = State::Closed;
                        }
                        // A `<think>` in the text: it is not at the start, so it is text.
                        _ if open.is_some() => self.state = State::Answer,
                        _ => {
                            let text = self.take_all_but_tag_start(&[OPEN, CLOSE]);
                            out.answer.push_str(&text);
                            return out;
                        }
                    }
                }
                State::Closed => {
                    let rest = self.pending.trim_start();
                    if rest.is_empty() {
                        self.pending.clear();
                        return out;
                    }
                    self.pending.drain(..self.pending.len() - rest.len());
                    self.state = State::Answer;
                }
                State::Answer => {
                    out.answer.push_str(&self.pending);
                    self.pending.clear();
                    return out;
                }
            }
        }
    }

    /// The content ended: classify what was held back. A block still open is reasoning.
    pub(super) fn finish(&mut self) -> Piece {
        let rest = std::mem::take(&mut self.pending);
        let mut out = Piece::default();
        match self.state {
            State::Open => {
                tracing::warn!(
                    "the model's `<think>` block never closed; its text is kept as reasoning \
                     and the answer is empty"
                );
                out.reasoning = rest;
            }
            State::Closed => {}
            State::Start | State::Unopened | State::Answer => out.answer = rest,
        }
        self.state = State::Answer;
        out
    }

    /// Drain `pending` but for a tail that could be the start of one of `tags`.
    fn take_all_but_tag_start(&mut self, tags: &[&str]) -> String {
        let len = self.pending.len();
        let keep = (1..len.min(CLOSE.len()) + 1)
            .rev()
            .find(|&k| {
                self.pending.is_char_boundary(len - k)
                    && tags.iter().any(|t| t.starts_with(&self.pending[len - k..]))
            })
            .unwrap_or(0);
        self.pending.drain(..len - keep).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces' answer and reasoning joined, as a caller keeps them.
    fn whole(pieces: &[&str]) -> (String, String) {
        let mut s = ThinkSplitter::default();
        let (mut answer, mut reasoning) = (String::new(), String::new());
        let mut take = |p: Piece| {
            if p.earlier_was_reasoning {
                reasoning.push_str(&std::mem::take(&mut answer));
            }
            reasoning.push_str(&p.reasoning);
            answer.push_str(&p.answer);
        };
        for p in pieces {
            take(s.push(p));
        }
        take(s.finish());
        (answer, reasoning)
    }

    fn pair(answer: &str, reasoning: &str) -> (String, String) {
        (answer.to_string(), reasoning.to_string())
    }

    #[test]
    fn a_block_at_the_start_is_reasoning_however_it_is_cut() {
        let text = "\n<think>\nTwo and two.\n</think>\n\nFour. Tags: <think> stays.";
        let want = pair("Four. Tags: <think> stays.", "\nTwo and two.\n");
        assert_eq!(whole(&[text]), want);
        for (i, _) in text.char_indices() {
            assert_eq!(whole(&[&text[..i], &text[i..]]), want, "cut at {i}");
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(whole(&chars), want, "one character a piece");
    }

    #[test]
    fn a_close_without_an_open_makes_what_came_before_reasoning() {
        let text = "Okay, the user greets me.\n</think>\n\nHello!";
        let want = pair("Hello!", "Okay, the user greets me.\n");
        for (i, _) in text.char_indices() {
            assert_eq!(whole(&[&text[..i], &text[i..]]), want, "cut at {i}");
        }
        // Streamed, the first piece went out as answer; the close says it was not.
        let mut s = ThinkSplitter::default();
        assert_eq!(s.push("Okay, ").answer, "Okay, ");
        let p = s.push("fine.</think>Hi");
        assert!(p.earlier_was_reasoning);
        assert_eq!((p.reasoning.as_str(), p.answer.as_str()), ("fine.", "Hi"));
    }

    #[test]
    fn tags_later_in_the_text_are_text() {
        let text = "Use `<think>` and `</think>` to mark it.";
        assert_eq!(whole(&[text]), pair(text, ""));
        let after = "<think>r</think>Wrap it: <think>x</think> done";
        assert_eq!(whole(&[after]), pair("Wrap it: <think>x</think> done", "r"));
        // Plain text streams piece for piece, only a possible tag's start waits.
        let mut s = ThinkSplitter::default();
        assert_eq!(s.push("Hello").answer, "Hello");
        assert_eq!(s.push(" a <").answer, " a ");
        assert_eq!(s.push("b").answer, "<b");
        assert_eq!(s.push(" x </thi").answer, " x ");
        assert_eq!(s.finish().answer, "</thi");
    }

    #[test]
    fn a_block_that_never_closes_stays_reasoning() {
        assert_eq!(whole(&["<think>Let me", " see"]), pair("", "Let me see"));
        assert_eq!(whole(&["<think>half </thi"]), pair("", "half </thi"));
        // A lone start of a tag is text.
        assert_eq!(whole(&["<thi"]), pair("<thi", ""));
    }
}
