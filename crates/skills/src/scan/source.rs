//! One text file of a skill as the rules see it: its language (from the extension or
//! the `#!` line), its lines, which Markdown lines are code, and the evidence of a
//! match (shortened, invisible characters escaped).

/// The language a file is written in, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// Markdown or plain text: instructions, read by the model and by humans.
    Markdown,
    Shell,
    Python,
    Js,
    Ruby,
    Perl,
    PowerShell,
    /// Windows `.bat`/`.cmd`.
    Batch,
    Make,
    /// Anything else (data, config, unknown scripts): every language-neutral rule.
    Other,
}

impl Lang {
    fn detect(path: &str, text: &str) -> Lang {
        let name = path.rsplit('/').next().unwrap_or(path);
        let lower = name.to_ascii_lowercase();
        if matches!(lower.as_str(), "makefile" | "gnumakefile") || lower.ends_with(".mk") {
            return Lang::Make;
        }
        if let Some((_, ext)) = lower.rsplit_once('.') {
            let by_ext = match ext {
                "md" | "markdown" | "mdx" | "txt" | "rst" => Some(Lang::Markdown),
                "sh" | "bash" | "zsh" | "ksh" | "fish" | "command" => Some(Lang::Shell),
                "py" | "pyw" => Some(Lang::Python),
                "js" | "mjs" | "cjs" | "ts" | "mts" | "cts" | "jsx" | "tsx" => Some(Lang::Js),
                "rb" => Some(Lang::Ruby),
                "pl" | "pm" => Some(Lang::Perl),
                "ps1" | "psm1" | "psd1" => Some(Lang::PowerShell),
                "bat" | "cmd" => Some(Lang::Batch),
                _ => None,
            };
            if let Some(l) = by_ext {
                return l;
            }
        }
        // No telling extension: the interpreter on the `#!` line decides.
        if let Some(first) = text.lines().next().and_then(|l| l.strip_prefix("#!")) {
            let interp = shebang_program(first).unwrap_or("");
            return match interp {
                "sh" | "bash" | "zsh" | "ksh" | "dash" | "ash" | "fish" => Lang::Shell,
                i if i.starts_with("python") => Lang::Python,
                "node" | "deno" | "bun" | "ts-node" => Lang::Js,
                "ruby" => Lang::Ruby,
                "perl" => Lang::Perl,
                "pwsh" | "powershell" => Lang::PowerShell,
                _ => Lang::Other,
            };
        }
        Lang::Other
    }
}

/// The program a `#!` line runs: `/usr/bin/env -S python3 -u` → `python3`.
pub(crate) fn shebang_program(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let base = first.rsplit('/').next().unwrap_or(first);
    if base == "env" {
        words.find(|w| !w.starts_with('-') && !w.contains('='))
    } else {
        Some(base)
    }
}

pub(crate) struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
    pub lang: Lang,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    /// Markdown only: per line, the info string of the fenced block it is in (`""`
    /// for a fence without one), `None` for prose and fence lines.
    fences: Vec<Option<&'a str>>,
    /// Markdown only: byte offsets of the backticks (inline code spans), so telling
    /// whether an offset is inside one costs a binary search, not a rescan of the line.
    backticks: Vec<usize>,
}

impl<'a> Source<'a> {
    /// `None` when `contents` is not text (not UTF-8, or holds NUL bytes).
    pub fn new(path: &'a str, contents: &'a [u8]) -> Option<Source<'a>> {
        let text = std::str::from_utf8(contents).ok()?;
        if text.as_bytes().contains(&0) {
            return None;
        }
        let lang = Lang::detect(path, text);
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1)
                .filter(|&i| i < text.len()),
        );
        let (fences, backticks) = if lang == Lang::Markdown {
            let ticks = text
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'`')
                .map(|(i, _)| i)
                .collect();
            (fence_map(text), ticks)
        } else {
            (Vec::new(), Vec::new())
        };
        Some(Source {
            path,
            text,
            lang,
            line_starts,
            fences,
            backticks,
        })
    }

    pub fn lines(&self) -> usize {
        self.line_starts.len()
    }

    /// 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// Byte range of 1-based `line`, without its line ending.
    pub fn line_range(&self, line: usize) -> (usize, usize) {
        let start = self.line_starts[line - 1];
        let mut end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        let b = self.text.as_bytes();
        while end > start && (b[end - 1] == b'\n' || b[end - 1] == b'\r') {
            end -= 1;
        }
        (start, end)
    }

    pub fn line_text(&self, line: usize) -> &'a str {
        let (s, e) = self.line_range(line);
        &self.text[s..e]
    }

    /// Whether the text at `offset` is code: anything outside Markdown; in Markdown,
    /// a fenced block, an indented block or an inline `code span`.
    pub fn is_code(&self, offset: usize) -> bool {
        if self.lang != Lang::Markdown {
            return true;
        }
        let line = self.line_of(offset);
        if self.fence(line).is_some() {
            return true;
        }
        let (start, _) = self.line_range(line);
        let before = &self.text[start..offset];
        let ticks = self.backticks.partition_point(|&b| b < offset)
            - self.backticks.partition_point(|&b| b < start);
        before.starts_with("    ") || before.starts_with('\t') || ticks % 2 == 1
    }

    /// Markdown: the info string of the fenced block `line` is in.
    pub fn fence(&self, line: usize) -> Option<&'a str> {
        self.fences.get(line - 1).copied().flatten()
    }

    /// The evidence for the match `start..end`: its line, trimmed, cut to a window
    /// around the match when long, with invisible and control characters escaped.
    pub fn evidence(&self, start: usize, end: usize) -> String {
        let line = self.line_of(start);
        let (ls, le) = self.line_range(line);
        let end = end.clamp(start, le.max(start));
        let line_text = &self.text[ls..le];
        let (ms, me) = (start - ls, end.min(le) - ls);
        shorten(line_text, ms, me.max(ms))
    }
}

/// Per line: the fenced block's info string, or `None`.
fn fence_map(text: &str) -> Vec<Option<&str>> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize, &str)> = None;
    for line in text.split('\n') {
        let t = line.trim_start();
        let fence_char = t.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| t.chars().take_while(|x| *x == c).count());
        match (open, fence_char) {
            (Some((c, n, _)), Some(fc)) if fc == c && run >= n && t[run..].trim().is_empty() => {
                open = None;
                out.push(None);
            }
            (Some((_, _, info)), _) => out.push(Some(info)),
            (None, Some(fc)) if run >= 3 => {
                let info = t[run..].split_whitespace().next().unwrap_or("");
                open = Some((fc, run, info));
                out.push(None);
            }
            (None, _) => out.push(None),
        }
    }
    out
}

/// At most this many characters of evidence.
const EVIDENCE_CHARS: usize = 160;
/// Characters kept on each side of a match in a long line.
const CONTEXT_CHARS: usize = 50;

/// `line` trimmed, or a window of it around `ms..me` when long; escaped.
pub(crate) fn shorten(line: &str, ms: usize, me: usize) -> String {
    let total = line.chars().count();
    if total <= EVIDENCE_CHARS {
        return escape(line.trim());
    }
    let ms_c = line[..ms].chars().count();
    let me_c = line[..me].chars().count();
    let from = ms_c.saturating_sub(CONTEXT_CHARS);
    let to = (me_c + CONTEXT_CHARS)
        .min(from + EVIDENCE_CHARS)
        .min(total)
        .max(from);
    let window: String = line.chars().skip(from).take(to - from).collect();
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.push_str(&escape(window.trim()));
    if to < total {
        out.push('…');
    }
    out
}

/// At most this many bytes of escaped evidence (escapes are long).
const EVIDENCE_BYTES: usize = 400;

/// Control and invisible characters as `\u{200b}` (tab as `\t`), so a human sees them.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if out.len() >= EVIDENCE_BYTES {
            out.push('…');
            break;
        }
        if c == '\t' {
            out.push_str("\\t");
        } else if c.is_control() || is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that render as nothing (or reorder text) in most viewers: zero-width and
/// bidi controls, odd spaces, variation selectors, Unicode tag characters (U+E0000…).
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180E
        | 0x2000..=0x200F | 0x2028..=0x202F | 0x205F..=0x206F | 0x3164
        | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB
        | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}
