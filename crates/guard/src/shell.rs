//! A conservative POSIX-sh tokenizer for [`crate::canonical`].
//!
//! Guarantees: it understands words (unquoted, `'single'`, `"double"`, backslash escapes,
//! line continuations), the control operators `; & && || | |& ( )` and newlines,
//! redirections (`< > >> >| <> <& >& &> &>> <<` with an optional fd number), heredoc bodies
//! and comments. Every construct it does not fully understand — command substitution,
//! arithmetic, here-strings, process substitution, ANSI-C quoting, `;;`, unterminated
//! quotes — is an error whose message names it; it never guesses.
//!
//! Not guaranteed: reserved words (`if`, `{`, `!` …) are ordinary words here; the parser
//! in `canonical` decides what they mean by position. Parameter expansions (`$X`,
//! `${X}`) are not evaluated: the word keeps its source text and is flagged.

/// One word after quote removal, with what the shell would still expand in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word after quote removal; for a word with a parameter expansion, its source
    /// text (so `'$X'` and `$X` never look alike).
    pub text: String,
    /// Any quoting or escaping was used (reserved words and assignments need none).
    pub quoted: bool,
    /// The first parameter expansion (`$X`, `${X}`), as written.
    pub expansion: Option<String>,
    /// An unquoted glob (`*`, `?`, `[...]`).
    pub glob: bool,
    /// An unquoted brace expansion candidate (`{a,b}`); a lone `{}` is not one.
    pub brace: bool,
    /// An unquoted leading `~`.
    pub tilde: bool,
    /// `NAME=` was written unquoted at the start: the byte length of `NAME`.
    pub assignment: Option<usize>,
}

impl Word {
    /// The word is exactly this text with nothing left to expand.
    pub fn is_literal(&self) -> bool {
        self.expansion.is_none() && !self.glob && !self.brace && !self.tilde
    }

    /// A plain (unquoted, literal) word equal to `s`: how reserved words are recognised.
    pub fn is_reserved(&self, s: &str) -> bool {
        !self.quoted && self.is_literal() && self.text == s
    }

    pub(crate) fn literal(text: &str) -> Word {
        Word {
            text: text.to_string(),
            quoted: false,
            expansion: None,
            glob: false,
            brace: false,
            tilde: false,
            assignment: None,
        }
    }
}

/// A redirection operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectOp {
    /// `<`
    Read,
    /// `>` or `>|`
    Write,
    /// `>>`
    Append,
    /// `<>`
    ReadWrite,
    /// `&>` (stdout and stderr), also `>&file`
    WriteAll,
    /// `&>>`
    AppendAll,
    /// `>&N` / `>&-`
    DupWrite,
    /// `<&N` / `<&-`
    DupRead,
    /// `<<DELIM` / `<<-DELIM`: the target is the body
    Heredoc,
}

impl RedirectOp {
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectOp::Read => "<",
            RedirectOp::Write => ">",
            RedirectOp::Append => ">>",
            RedirectOp::ReadWrite => "<>",
            RedirectOp::WriteAll => "&>",
            RedirectOp::AppendAll => "&>>",
            RedirectOp::DupWrite => ">&",
            RedirectOp::DupRead => "<&",
            RedirectOp::Heredoc => "<<",
        }
    }

    /// The operator may create or change the file named by its target.
    pub fn writes(self) -> bool {
        matches!(
            self,
            RedirectOp::Write
                | RedirectOp::Append
                | RedirectOp::ReadWrite
                | RedirectOp::WriteAll
                | RedirectOp::AppendAll
        )
    }
}

/// A control operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Semi,
    Newline,
    Amp,
    AndIf,
    OrIf,
    Pipe,
    PipeAll,
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(Word),
    Op(Op),
    /// A redirection; `fd` is the explicit number if one was written. For heredocs the
    /// body is already in `heredoc`.
    Redirect {
        fd: Option<u32>,
        op: RedirectOp,
        heredoc: Option<Word>,
    },
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    out: Vec<Token>,
    /// Heredocs whose body starts at the next newline: (token index, delimiter, strip
    /// tabs, delimiter was quoted).
    pending: Vec<(usize, String, bool, bool)>,
}

/// Split `src` into tokens, or say which construct is not understood.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let mut lx = Lexer {
        src,
        b: src.as_bytes(),
        i: 0,
        out: Vec::new(),
        pending: Vec::new(),
    };
    lx.run()?;
    if let Some((_, delim, ..)) = lx.pending.first() {
        return Err(format!("heredoc `{delim}` has no body"));
    }
    Ok(lx.out)
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn is_meta(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
    )
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }

    fn starts(&self, s: &str) -> bool {
        self.b[self.i..].starts_with(s.as_bytes())
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek(0) {
            match c {
                b' ' | b'\t' => self.i += 1,
                b'\\' if self.peek(1) == Some(b'\n') => self.i += 2,
                b'#' => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                b'\n' => {
                    self.i += 1;
                    self.out.push(Token::Op(Op::Newline));
                    self.read_heredocs()?;
                }
                b';' => {
                    if matches!(self.peek(1), Some(b';' | b'&')) {
                        return Err("`;;`/`;&` (case syntax)".into());
                    }
                    self.i += 1;
                    self.out.push(Token::Op(Op::Semi));
                }
                b'&' => match self.peek(1) {
                    Some(b'&') => self.op(2, Op::AndIf),
                    Some(b'>') => {
                        if self.peek(2) == Some(b'>') {
                            self.redirect(3, None, RedirectOp::AppendAll)?;
                        } else {
                            self.redirect(2, None, RedirectOp::WriteAll)?;
                        }
                    }
                    _ => self.op(1, Op::Amp),
                },
                b'|' => match self.peek(1) {
                    Some(b'|') => self.op(2, Op::OrIf),
                    Some(b'&') => self.op(2, Op::PipeAll),
                    _ => self.op(1, Op::Pipe),
                },
                b'(' => {
                    if self.peek(1) == Some(b'(') {
                        return Err("arithmetic command `((...))`".into());
                    }
                    self.op(1, Op::Open);
                }
                b')' => self.op(1, Op::Close),
                b'<' | b'>' => self.redirect_op(None)?,
                b'0'..=b'9' => {
                    let mut j = self.i;
                    while self.b.get(j).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                    }
                    if matches!(self.b.get(j), Some(b'<' | b'>')) {
                        let fd = self.src[self.i..j]
                            .parse::<u32>()
                            .map_err(|_| "file descriptor number too large".to_string())?;
                        self.i = j;
                        self.redirect_op(Some(fd))?;
                    } else {
                        let w = self.word()?;
                        self.out.push(Token::Word(w));
                    }
                }
                _ => {
                    let w = self.word()?;
                    self.out.push(Token::Word(w));
                }
            }
        }
        Ok(())
    }

    fn op(&mut self, len: usize, op: Op) {
        self.i += len;
        self.out.push(Token::Op(op));
    }

    fn redirect(&mut self, len: usize, fd: Option<u32>, op: RedirectOp) -> Result<(), String> {
        self.i += len;
        self.out.push(Token::Redirect {
            fd,
            op,
            heredoc: None,
        });
        Ok(())
    }

    fn redirect_op(&mut self, fd: Option<u32>) -> Result<(), String> {
        if self.starts("<(") || self.starts(">(") {
            return Err("process substitution `<(...)`".into());
        }
        if self.starts("<<<") {
            return Err("here-string `<<<`".into());
        }
        if self.starts("<<") {
            let strip = self.peek(2) == Some(b'-');
            self.i += if strip { 3 } else { 2 };
            while matches!(self.peek(0), Some(b' ' | b'\t')) {
                self.i += 1;
            }
            if self.peek(0).is_none_or(is_meta) {
                return Err("heredoc without a delimiter".into());
            }
            let w = self.word()?;
            if w.expansion.is_some() {
                return Err("heredoc delimiter with an expansion".into());
            }
            self.pending
                .push((self.out.len(), w.text.clone(), strip, w.quoted));
            self.out.push(Token::Redirect {
                fd,
                op: RedirectOp::Heredoc,
                heredoc: None,
            });
            return Ok(());
        }
        let (len, op) = if self.starts(">>") {
            (2, RedirectOp::Append)
        } else if self.starts(">|") {
            (2, RedirectOp::Write)
        } else if self.starts(">&") {
            (2, RedirectOp::DupWrite)
        } else if self.starts("<&") {
            (2, RedirectOp::DupRead)
        } else if self.starts("<>") {
            (2, RedirectOp::ReadWrite)
        } else if self.starts(">") {
            (1, RedirectOp::Write)
        } else {
            (1, RedirectOp::Read)
        };
        self.redirect(len, fd, op)
    }

    fn read_heredocs(&mut self) -> Result<(), String> {
        for (idx, delim, strip, quoted) in std::mem::take(&mut self.pending) {
            let mut body = String::new();
            let mut found = false;
            while self.i < self.b.len() {
                let end = self.src[self.i..]
                    .find('\n')
                    .map_or(self.b.len(), |n| self.i + n);
                let line = &self.src[self.i..end];
                self.i = (end + 1).min(self.b.len());
                let cmp = if strip {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if cmp == delim {
                    found = true;
                    break;
                }
                body.push_str(cmp);
                body.push('\n');
            }
            if !found {
                return Err(format!("heredoc `{delim}` is not terminated"));
            }
            let mut w = Word::literal(&body);
            w.quoted = true;
            if !quoted {
                if body.contains('`') || body.contains("$(") {
                    return Err("command substitution in a heredoc".into());
                }
                if let Some(p) = body.find('$') {
                    w.expansion = Some(body[p..].chars().take(16).collect());
                }
            }
            if let Some(Token::Redirect { heredoc, .. }) = self.out.get_mut(idx) {
                *heredoc = Some(w);
            }
        }
        Ok(())
    }

    /// Read one word starting at `self.i` (which is not blank or an operator).
    fn word(&mut self) -> Result<Word, String> {
        let start = self.i;
        let mut text: Vec<u8> = Vec::new();
        let mut w = Word::literal("");
        let mut unquoted_open_bracket = false;
        let mut unquoted_open_brace = false;
        if self.peek(0) == Some(b'~') {
            w.tilde = true;
        }
        // NAME= written unquoted at the very start.
        {
            let mut j = self.i;
            if self.b.get(j).copied().is_some_and(is_name_start) {
                while self.b.get(j).copied().is_some_and(is_name) {
                    j += 1;
                }
                if self.b.get(j) == Some(&b'=') {
                    w.assignment = Some(j - self.i);
                }
            }
        }
        while let Some(c) = self.peek(0) {
            if is_meta(c) {
                break;
            }
            match c {
                b'\'' => {
                    w.quoted = true;
                    let rest = &self.src[self.i + 1..];
                    let n = rest
                        .find('\'')
                        .ok_or_else(|| "unterminated single quote".to_string())?;
                    text.extend_from_slice(&rest.as_bytes()[..n]);
                    self.i += n + 2;
                }
                b'"' => {
                    w.quoted = true;
                    self.i += 1;
                    loop {
                        match self.peek(0) {
                            None => return Err("unterminated double quote".into()),
                            Some(b'"') => {
                                self.i += 1;
                                break;
                            }
                            Some(b'\\') => match self.peek(1) {
                                Some(b'\n') => self.i += 2,
                                Some(e @ (b'$' | b'`' | b'"' | b'\\')) => {
                                    text.push(e);
                                    self.i += 2;
                                }
                                _ => {
                                    text.push(b'\\');
                                    self.i += 1;
                                }
                            },
                            Some(b'$') => self.dollar(&mut text, &mut w)?,
                            Some(b'`') => {
                                return Err("command substitution (backticks)".into());
                            }
                            Some(o) => {
                                text.push(o);
                                self.i += 1;
                            }
                        }
                    }
                }
                b'\\' => {
                    w.quoted = true;
                    match self.peek(1) {
                        None => return Err("trailing backslash".into()),
                        Some(b'\n') => self.i += 2,
                        Some(_) => {
                            // Copy one whole (possibly multi-byte) character.
                            let ch_len = self.src[self.i + 1..]
                                .chars()
                                .next()
                                .map_or(1, char::len_utf8);
                            text.extend_from_slice(&self.b[self.i + 1..self.i + 1 + ch_len]);
                            self.i += 1 + ch_len;
                        }
                    }
                }
                b'$' => self.dollar(&mut text, &mut w)?,
                b'`' => return Err("command substitution (backticks)".into()),
                _ => {
                    match c {
                        b'*' | b'?' => w.glob = true,
                        b'[' => unquoted_open_bracket = true,
                        b']' if unquoted_open_bracket => w.glob = true,
                        b'{' => unquoted_open_brace = true,
                        // `{}` alone (find's placeholder) expands to itself.
                        b'}' if unquoted_open_brace && !text.ends_with(b"{") => w.brace = true,
                        _ => {}
                    }
                    if (c == b'@' || c == b'!' || c == b'+' || c == b'?' || c == b'*')
                        && self.peek(1) == Some(b'(')
                    {
                        return Err("extended glob `@(...)`".into());
                    }
                    text.push(c);
                    self.i += 1;
                }
            }
        }
        w.text = if w.expansion.is_some() {
            self.src[start..self.i].to_string()
        } else {
            String::from_utf8_lossy(&text).into_owned()
        };
        if w.text == "{}" {
            w.brace = false;
        }
        Ok(w)
    }

    /// At a `$`: a parameter expansion (flagged), a literal `$`, or a construct we refuse.
    fn dollar(&mut self, text: &mut Vec<u8>, w: &mut Word) -> Result<(), String> {
        let start = self.i;
        match self.peek(1) {
            Some(b'(') if self.peek(2) == Some(b'(') => {
                Err("arithmetic expansion `$((...))`".into())
            }
            Some(b'(') => Err("command substitution `$(...)`".into()),
            Some(b'\'') => Err("ANSI-C quoting `$'...'`".into()),
            Some(b'"') => Err("locale quoting `$\"...\"`".into()),
            Some(b'[') => Err("arithmetic expansion `$[...]`".into()),
            Some(b'{') => {
                let mut depth = 0usize;
                let mut j = self.i + 1;
                loop {
                    match self.b.get(j) {
                        None => return Err("unterminated `${`".into()),
                        Some(b'{') => depth += 1,
                        Some(b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(b'`') => return Err("command substitution (backticks)".into()),
                        Some(b'$') if self.b.get(j + 1) == Some(&b'(') => {
                            return Err("command substitution `$(...)`".into());
                        }
                        Some(_) => {}
                    }
                    j += 1;
                }
                self.i = j + 1;
                self.flag(start, text, w);
                Ok(())
            }
            Some(c) if is_name_start(c) => {
                self.i += 1;
                while self.peek(0).is_some_and(is_name) {
                    self.i += 1;
                }
                self.flag(start, text, w);
                Ok(())
            }
            Some(b'0'..=b'9' | b'@' | b'*' | b'#' | b'?' | b'$' | b'!' | b'-') => {
                self.i += 2;
                self.flag(start, text, w);
                Ok(())
            }
            _ => {
                text.push(b'$');
                self.i += 1;
                Ok(())
            }
        }
    }

    fn flag(&self, start: usize, text: &mut Vec<u8>, w: &mut Word) {
        let e = &self.src[start..self.i];
        text.extend_from_slice(e.as_bytes());
        if w.expansion.is_none() {
            w.expansion = Some(e.to_string());
        }
    }
}
