//! Exec canonicalisation: what a shell command line would actually run.
//!
//! [`canonicalise_exec`] parses a command line with a conservative POSIX-sh tokenizer and
//! turns it into the list of [`SimpleCommand`]s whose programs would run, unwrapping
//! launchers recursively: `sh|bash|dash|zsh|ksh [opts] -c SCRIPT` (the script is parsed),
//! `env`, `nice`, `timeout`, `time` (`/usr/bin/time`), `nohup`, `command`, `exec`,
//! `builtin`, `sudo`/`doas`, `xargs`, `stdbuf`, `setsid`, `ionice`, `chrt`, and the
//! commands `find -exec/-execdir/-ok/-okdir` would run. A full path in a system bin
//! directory (`/usr/bin/env`) is the same launcher as the bare name; `/workspace/env` is not.
//!
//! Guarantees:
//! - Anything not fully understood (command/arithmetic/process substitution, backticks,
//!   here-strings, `eval`, `source`, functions, `if`/`case`/`for`/`while`…, builtins that
//!   change later lookups (`alias`, `trap`, `hash`, `export`, `set -k` …), an expansion,
//!   glob or brace in a program name, unknown launcher options, nesting deeper than
//!   [`MAX_DEPTH`]) sets [`CanonicalExec::unparsable`]; the result never guesses toward a
//!   harmless reading.
//! - Code the guard cannot see (inline interpreter code, a shell reading its program
//!   from stdin — `curl … | sh`, heredocs —, `awk` programs calling `system`, `git -c` and
//!   `git config`, `tar --to-command`-style options, `find`/`xargs` input spliced into a
//!   `sh -c` script, privilege escalation) sets [`CanonicalExec::arbitrary_code`].
//! - [`CanonicalExec::fingerprint`] is a SHA-256 over [`CanonicalExec::text`].
//!
//! Fingerprint rule (decided for issue #5): launchers that only schedule, time, limit or
//! detach a command (`nice`, `ionice`, `chrt`, `timeout`, `time`, `nohup`, `setsid`,
//! `stdbuf`, `command`, `exec`, `builtin`, an option-less `env`, `sh -c`) are NOT part of
//! the canonical form: `timeout 10 make test` is the same action as `make test`, so an
//! approval of one covers the other and wrapping cannot dodge an approval. What changes
//! what the program does IS part of it: environment changes (`env X=1`, `X=1 cmd`,
//! `env -i`, `env -u X`), `sudo` (recorded as arbitrary code), `xargs` (the argv is
//! marked open-ended), redirections and the operators between commands.
//!
//! Not guaranteed: the meaning of a program's own options beyond the few listed above
//! (`sed`'s `e` command, `make`, `watch`, `ssh host CMD`, `busybox APPLET` and build tools
//! that run project code are only as safe as listing them in `exec.allow` is), and exact
//! control-flow structure — nested scripts are flattened into the outer list, so
//! `sh -c 'a; b' | c` and `a; b | c` share a form.

use crate::shell::{Op, RedirectOp, Token, Word, tokenize};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How deep launchers and nested scripts may nest before the command is unparsable.
pub const MAX_DEPTH: usize = 8;

/// Directories whose programs count as the bare name for launcher detection.
const SYSTEM_DIRS: [&str; 5] = [
    "/usr/local/bin/",
    "/usr/bin/",
    "/bin/",
    "/usr/sbin/",
    "/sbin/",
];

/// One redirection of a simple command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// The file descriptor redirected (`2>` is 2; `>` is 1, `<` is 0; `&>` is 1).
    pub fd: u32,
    pub op: RedirectOp,
    /// The file name, the fd number for `>&`/`<&`, or the body of a heredoc.
    pub target: String,
    /// The target has a parameter expansion, glob or `~`: its real value is unknown.
    pub target_expands: bool,
}

/// How a command is joined to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Separator {
    End,
    Seq,
    Background,
    And,
    Or,
    Pipe,
    PipeAll,
}

impl Separator {
    fn as_str(self) -> &'static str {
        match self {
            Separator::End => "",
            Separator::Seq => "; ",
            Separator::Background => " & ",
            Separator::And => " && ",
            Separator::Or => " || ",
            Separator::Pipe => " | ",
            Separator::PipeAll => " |& ",
        }
    }
}

/// One program that would run, with its real argv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimpleCommand {
    /// The argv actually run, launchers removed. Empty for a command that is only
    /// redirections or assignments (`> file`, `X=1`).
    pub argv: Vec<String>,
    pub redirects: Vec<Redirect>,
    /// Environment changes in order: `NAME=value`, `-u NAME` (unset), `-i` (cleared).
    pub env: Vec<String>,
    /// `xargs` appends arguments read from stdin: the argv is only a prefix.
    pub open_ended: bool,
    /// Arguments whose value depends on a parameter expansion (`$X`, `${X}`), as written.
    pub expansions: Vec<String>,
    /// Indices in `argv` of words with an unquoted glob (`*`, `?`, `[…]`): the shell
    /// replaces them with the matching file names when the command runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub globs: Vec<usize>,
    /// How this command is joined to the next.
    pub separator: Separator,
}

/// The canonical form of an exec command line. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CanonicalExec {
    pub commands: Vec<SimpleCommand>,
    /// Why some code that would run cannot be seen by the guard (first reason found).
    pub arbitrary_code: Option<String>,
    /// Why the command line was not understood (then `commands` is incomplete).
    pub unparsable: Option<String>,
    /// The command line as given; the canonical text of an unparsable command.
    pub source: String,
}

/// Canonicalise one exec command line. Never fails: problems are in the result.
pub fn canonicalise_exec(command: &str) -> CanonicalExec {
    let mut p = Canon {
        out: Vec::new(),
        arbitrary: None,
    };
    let mut unparsable = p.script(command, 0).err();
    if unparsable.is_none() && p.out.is_empty() {
        unparsable = Some("empty command".into());
    }
    // A trailing `;` or newline changes nothing.
    if let Some(last) = p.out.last_mut().filter(|c| c.separator == Separator::Seq) {
        last.separator = Separator::End;
    }
    CanonicalExec {
        commands: p.out,
        arbitrary_code: p.arbitrary,
        unparsable,
        source: command.to_string(),
    }
}

impl CanonicalExec {
    /// The canonical text: the commands as a shell would read them, each argument quoted
    /// only where needed, launchers removed. An unparsable command's text is
    /// `unparsable: SOURCE`, so only the exact same spelling shares it.
    pub fn text(&self) -> String {
        if self.unparsable.is_some() {
            return format!("unparsable: {}", self.source);
        }
        let mut s = String::new();
        for c in &self.commands {
            let mut parts: Vec<String> = c.env.iter().map(|e| quote_env(e)).collect();
            if !c.env.is_empty() {
                parts.insert(0, "env".into());
            }
            parts.extend(c.argv.iter().enumerate().map(|(i, a)| {
                if c.globs.contains(&i) {
                    quote_glob(a)
                } else {
                    quote(a)
                }
            }));
            if c.open_ended {
                parts.push("<args from stdin>".into());
            }
            for r in &c.redirects {
                parts.push(match r.op {
                    RedirectOp::Heredoc => format!("{}<<{}", r.fd, quote(&r.target)),
                    op => format!("{}{}{}", r.fd, op.as_str(), quote(&r.target)),
                });
            }
            s.push_str(&parts.join(" "));
            s.push_str(c.separator.as_str());
        }
        let s = s.trim_end().to_string();
        match &self.arbitrary_code {
            Some(why) => format!("{s} # arbitrary code: {why}"),
            None => s,
        }
    }

    /// Stable lowercase hex SHA-256 of [`CanonicalExec::text`]: equal for equivalent
    /// spellings, different for a different argv, path, redirection or environment.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"cordon-exec-v1\0");
        h.update(self.text().as_bytes());
        hex::encode(h.finalize())
    }
}

/// Render one environment change: `-i`, `-u NAME`, `NAME=value` (value quoted).
fn quote_env(e: &str) -> String {
    if let Some(name) = e.strip_prefix("-u ") {
        format!("-u {}", quote(name))
    } else if let Some((name, value)) = e.split_once('=') {
        format!("{}={}", quote(name), quote(value))
    } else {
        quote(e)
    }
}

/// Quote an argument for the canonical text only where a shell would need it.
/// A glob word as the shell sees it: glob characters unquoted (they expand), anything
/// else outside the safe set quoted around them.
fn quote_glob(s: &str) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']') {
            if !literal.is_empty() {
                out.push_str(&quote(&literal));
                literal.clear();
            }
            out.push(ch);
        } else {
            literal.push(ch);
        }
    }
    if !literal.is_empty() {
        out.push_str(&quote(&literal));
    }
    out
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The launcher/program name of `program`: itself if bare, its file name if in a system
/// bin directory, `None` for any other path (which only ever matches itself).
pub(crate) fn command_name(program: &str) -> Option<&str> {
    if !program.contains('/') {
        return Some(program);
    }
    SYSTEM_DIRS
        .iter()
        .find_map(|d| program.strip_prefix(d))
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

struct Canon {
    out: Vec<SimpleCommand>,
    arbitrary: Option<String>,
}

/// A simple command being resolved: its words, environment and where its stdin comes from.
struct Pending {
    words: Vec<Word>,
    env: Vec<String>,
    open_ended: bool,
    redirects: Vec<Redirect>,
    stdin_piped: bool,
    /// Run by `find -exec`, which replaces `{}` anywhere in an argument by a file name.
    from_find: bool,
}

/// Builtins that change what later commands in the same shell resolve to or run
/// (aliases, traps, the command hash, loadable builtins, exported variables).
const STATE_BUILTINS: [&str; 13] = [
    "alias", "trap", "hash", "enable", "shopt", "export", "declare", "typeset", "readonly",
    "local", "unset", "let", "bind",
];

/// `set` with only harmless options: `-e -u -x -v -f -C`, bundles of them, and
/// `-o`/`+o` with `pipefail errexit nounset xtrace noclobber noglob`.
fn safe_set(args: &[Word]) -> bool {
    const OPTS: [&str; 6] = [
        "pipefail",
        "errexit",
        "nounset",
        "xtrace",
        "noclobber",
        "noglob",
    ];
    let mut k = 0;
    while let Some(a) = args.get(k) {
        let t = a.text.as_str();
        if !a.is_literal() {
            return false;
        }
        if t == "-o" || t == "+o" {
            if !args
                .get(k + 1)
                .is_some_and(|o| OPTS.contains(&o.text.as_str()))
            {
                return false;
            }
            k += 2;
            continue;
        }
        let ok = (t.starts_with('-') || t.starts_with('+'))
            && t.len() > 1
            && t[1..].bytes().all(|c| b"euxvfC".contains(&c) || c == b'o');
        // A bundle ending in `o` (`-euo pipefail`) takes the next word as the option name.
        if !ok {
            return false;
        }
        if t.ends_with('o') {
            if !args
                .get(k + 1)
                .is_some_and(|o| OPTS.contains(&o.text.as_str()))
            {
                return false;
            }
            k += 2;
        } else if t[1..].contains('o') {
            return false;
        } else {
            k += 1;
        }
    }
    true
}

const SHELLS: [&str; 7] = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"];
const CONTROL: [&str; 17] = [
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done",
    "function", "select", "coproc", "[[", "]]",
];

impl Canon {
    fn arbitrary(&mut self, why: String) {
        if self.arbitrary.is_none() {
            self.arbitrary = Some(why);
        }
    }

    /// Parse and resolve a whole script at nesting `depth`.
    fn script(&mut self, src: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let toks = tokenize(src)?;
        let mut pos = 0;
        self.list(&toks, &mut pos, None, depth)?;
        Ok(())
    }

    /// A list of pipelines up to the end or to `closer` (`)` or `}`), consumed.
    fn list(
        &mut self,
        toks: &[Token],
        pos: &mut usize,
        closer: Option<&str>,
        depth: usize,
    ) -> Result<(), String> {
        loop {
            while matches!(toks.get(*pos), Some(Token::Op(Op::Newline))) {
                *pos += 1;
            }
            match (toks.get(*pos), closer) {
                (None, None) => return Ok(()),
                (None, Some(c)) => return Err(format!("missing `{c}`")),
                (Some(Token::Op(Op::Close)), Some(")")) => {
                    *pos += 1;
                    return Ok(());
                }
                (Some(Token::Word(w)), Some("}")) if w.is_reserved("}") => {
                    *pos += 1;
                    return Ok(());
                }
                _ => {}
            }
            self.pipeline(toks, pos, depth)?;
            let sep = match toks.get(*pos) {
                Some(Token::Op(Op::Semi | Op::Newline)) => Separator::Seq,
                Some(Token::Op(Op::Amp)) => Separator::Background,
                Some(Token::Op(Op::AndIf)) => Separator::And,
                Some(Token::Op(Op::OrIf)) => Separator::Or,
                _ => Separator::End,
            };
            if sep != Separator::End {
                *pos += 1;
            }
            if let Some(last) = self.out.last_mut() {
                last.separator = sep;
            }
            if matches!(sep, Separator::And | Separator::Or) {
                while matches!(toks.get(*pos), Some(Token::Op(Op::Newline))) {
                    *pos += 1;
                }
                if toks.get(*pos).is_none() {
                    return Err(format!("`{}` at the end", sep.as_str().trim()));
                }
            }
            if sep == Separator::End {
                match (toks.get(*pos), closer) {
                    (None, _) | (Some(Token::Op(Op::Close)), Some(")")) => {}
                    (Some(Token::Word(w)), Some("}")) if w.is_reserved("}") => {}
                    (Some(t), _) => return Err(format!("unexpected {}", describe(t))),
                }
            }
        }
    }

    fn pipeline(&mut self, toks: &[Token], pos: &mut usize, depth: usize) -> Result<(), String> {
        if matches!(toks.get(*pos), Some(Token::Word(w)) if w.is_reserved("!")) {
            *pos += 1;
        }
        let mut piped = false;
        loop {
            self.command(toks, pos, depth, piped)?;
            let sep = match toks.get(*pos) {
                Some(Token::Op(Op::Pipe)) => Separator::Pipe,
                Some(Token::Op(Op::PipeAll)) => Separator::PipeAll,
                _ => return Ok(()),
            };
            *pos += 1;
            if let Some(last) = self.out.last_mut() {
                last.separator = sep;
            }
            while matches!(toks.get(*pos), Some(Token::Op(Op::Newline))) {
                *pos += 1;
            }
            piped = true;
        }
    }

    fn command(
        &mut self,
        toks: &[Token],
        pos: &mut usize,
        depth: usize,
        piped: bool,
    ) -> Result<(), String> {
        let start = self.out.len();
        let group = match toks.get(*pos) {
            Some(Token::Op(Op::Open)) => Some(")"),
            Some(Token::Word(w)) if w.is_reserved("{") => Some("}"),
            _ => None,
        };
        if let Some(closer) = group {
            *pos += 1;
            self.list(toks, pos, Some(closer), depth + 1)?;
            if self.out.len() == start {
                return Err("empty group".into());
            }
            let mut redirects = Vec::new();
            while let Some(Token::Redirect { .. }) = toks.get(*pos) {
                redirects.push(redirect(toks, pos)?);
            }
            if let Some(Token::Word(w)) = toks.get(*pos) {
                return Err(format!("unexpected word `{}` after a group", w.text));
            }
            for c in &mut self.out[start..] {
                c.redirects.extend(redirects.iter().cloned());
            }
            return Ok(());
        }
        let mut words = Vec::new();
        let mut redirects = Vec::new();
        loop {
            match toks.get(*pos) {
                Some(Token::Word(w)) => {
                    words.push(w.clone());
                    *pos += 1;
                }
                Some(Token::Redirect { .. }) => redirects.push(redirect(toks, pos)?),
                Some(Token::Op(Op::Open)) => {
                    return Err(if words.len() == 1 {
                        "function definition".into()
                    } else {
                        "unexpected `(`".into()
                    });
                }
                _ => break,
            }
        }
        if words.is_empty() && redirects.is_empty() {
            return Err(match toks.get(*pos) {
                Some(t) => format!("unexpected {}", describe(t)),
                None => "empty command".into(),
            });
        }
        if let Some(w) = words.first() {
            if let Some(c) = CONTROL.iter().find(|c| w.is_reserved(c)) {
                return Err(format!("shell control flow `{c}`"));
            }
            if w.is_reserved("{") || w.is_reserved("}") || w.is_reserved("!") {
                return Err(format!("misplaced `{}`", w.text));
            }
        }
        self.resolve(
            Pending {
                words,
                env: Vec::new(),
                open_ended: false,
                redirects,
                stdin_piped: piped,
                from_find: false,
            },
            depth,
        )
    }

    /// Strip assignments and launchers from a simple command, recursively, and emit
    /// what actually runs.
    fn resolve(&mut self, mut p: Pending, mut depth: usize) -> Result<(), String> {
        let mut i = 0;
        while let Some(a) = p.words.get(i).and_then(|w| w.assignment.map(|n| (w, n))) {
            let (w, _) = a;
            if let Some(e) = &w.expansion {
                return Err(format!("expansion in an assignment: {e}"));
            }
            p.env.push(w.text.clone());
            i += 1;
        }
        p.words.drain(..i);
        loop {
            if depth > MAX_DEPTH {
                return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
            }
            let Some(first) = p.words.first() else {
                return self.emit(p);
            };
            if let Some(e) = &first.expansion {
                return Err(format!("variable expansion in command position: {e}"));
            }
            if first.glob || first.brace || first.tilde {
                return Err(format!(
                    "glob, brace or `~` in program name `{}`",
                    first.text
                ));
            }
            let program = first.text.clone();
            let Some(name) = command_name(&program) else {
                return self.emit(p);
            };
            let args = &p.words[1..];
            let skip = match name {
                "env" => {
                    let (n, changes) = env_options(args)?;
                    let mut k = n;
                    let mut changes = changes;
                    while let Some(w) = args.get(k).filter(|w| w.text.contains('=')) {
                        if !w.is_literal() {
                            return Err(format!("expansion in `env` assignment `{}`", w.text));
                        }
                        changes.push(w.text.clone());
                        k += 1;
                    }
                    if k == args.len() {
                        return self.emit(p);
                    }
                    p.env.extend(changes);
                    k
                }
                "nice" => options(name, args, &["-n", "--adjustment"], &[], true)?,
                "timeout" => {
                    let n = options(
                        name,
                        args,
                        &["-s", "--signal", "-k", "--kill-after"],
                        &["--preserve-status", "--foreground", "-v", "--verbose"],
                        false,
                    )?;
                    if args.get(n).is_none() {
                        return Err("`timeout` without a duration".into());
                    }
                    n + 1
                }
                "time" => {
                    let n = options(
                        name,
                        args,
                        &["-f", "--format", "-o", "--output"],
                        &[
                            "-p",
                            "-v",
                            "--verbose",
                            "-a",
                            "--append",
                            "-q",
                            "--quiet",
                            "--portability",
                        ],
                        false,
                    )?;
                    if let Some(out) = option_value(&args[..n], &["-o", "--output"]) {
                        p.redirects.push(Redirect {
                            fd: 2,
                            op: RedirectOp::Write,
                            target: out.text.clone(),
                            target_expands: !out.is_literal(),
                        });
                    }
                    n
                }
                "nohup" => 0,
                "command" => {
                    if args
                        .first()
                        .is_some_and(|a| a.text.starts_with("-v") || a.text.starts_with("-V"))
                    {
                        return self.emit(p);
                    }
                    options(name, args, &[], &["-p"], false)?
                }
                "builtin" => 0,
                "exec" => options(name, args, &["-a"], &["-c", "-l", "-cl", "-lc"], false)?,
                "stdbuf" => options(
                    name,
                    args,
                    &["-i", "-o", "-e", "--input", "--output", "--error"],
                    &[],
                    false,
                )?,
                "setsid" => options(
                    name,
                    args,
                    &[],
                    &["-c", "-f", "-w", "--ctty", "--fork", "--wait"],
                    false,
                )?,
                "ionice" => {
                    if args.iter().any(|a| {
                        a.text.starts_with("-p")
                            || a.text.starts_with("-P")
                            || a.text.starts_with("-u")
                    }) {
                        return self.emit(p);
                    }
                    options(
                        name,
                        args,
                        &["-c", "-n", "--class", "--classdata"],
                        &["-t", "--ignore"],
                        false,
                    )?
                }
                "chrt" => {
                    if args.iter().any(|a| a.text == "-p" || a.text == "--pid") {
                        return self.emit(p);
                    }
                    let n = options(
                        name,
                        args,
                        &[
                            "-T",
                            "-P",
                            "-D",
                            "--sched-runtime",
                            "--sched-period",
                            "--sched-deadline",
                        ],
                        &[
                            "-b",
                            "-d",
                            "-f",
                            "-i",
                            "-o",
                            "-r",
                            "-R",
                            "-v",
                            "--batch",
                            "--deadline",
                            "--fifo",
                            "--idle",
                            "--other",
                            "--rr",
                            "--reset-on-fork",
                            "--verbose",
                        ],
                        false,
                    )?;
                    if args.get(n).is_none() {
                        return Err("`chrt` without a priority".into());
                    }
                    n + 1
                }
                "sudo" | "doas" => {
                    self.arbitrary(format!("privilege escalation: {name}"));
                    let n = options(
                        name,
                        args,
                        &[
                            "-u",
                            "-g",
                            "-C",
                            "-D",
                            "-h",
                            "-p",
                            "-r",
                            "-t",
                            "-U",
                            "-T",
                            "--user",
                            "--group",
                            "--chdir",
                            "--host",
                            "--prompt",
                            "--role",
                            "--type",
                            "--other-user",
                            "--command-timeout",
                            "--close-from",
                        ],
                        &[
                            "-E",
                            "-H",
                            "-n",
                            "-S",
                            "-k",
                            "-K",
                            "-b",
                            "-P",
                            "-A",
                            "-B",
                            "-N",
                            "-s",
                            "-i",
                            "--preserve-env",
                            "--set-home",
                            "--non-interactive",
                            "--stdin",
                            "--reset-timestamp",
                            "--background",
                            "--askpass",
                            "--bell",
                            "--login",
                            "--shell",
                        ],
                        false,
                    )?;
                    let mut k = n;
                    while let Some(w) = args.get(k).filter(|w| w.assignment.is_some()) {
                        p.env.push(w.text.clone());
                        k += 1;
                    }
                    if k == args.len() {
                        return self.emit(p);
                    }
                    k
                }
                "su" | "pkexec" | "runuser" | "machinectl" => {
                    self.arbitrary(format!("privilege escalation: {name}"));
                    return self.emit(p);
                }
                "xargs" => {
                    let n = xargs_options(args)?;
                    p.open_ended = true;
                    if n == args.len() {
                        p.words.truncate(1);
                        p.words[0] = Word::literal("echo");
                        return self.emit(p);
                    }
                    n
                }
                "eval" => {
                    self.arbitrary("eval runs its arguments as shell code".into());
                    return Err("`eval`".into());
                }
                "source" | "." => return Err(format!("`{name}` runs a script file in this shell")),
                n if STATE_BUILTINS.contains(&n) => {
                    return Err(format!(
                        "shell builtin `{n}` changes how later commands are found or run"
                    ));
                }
                "set" if !safe_set(args) => {
                    return Err("`set` with options other than -e -u -x -o pipefail".into());
                }
                n if SHELLS.contains(&n) => return self.shell(p, name, depth),
                _ => {
                    self.inspect(&p, name);
                    if name == "find" {
                        return self.find(p, depth);
                    }
                    return self.emit(p);
                }
            };
            if skip >= p.words.len() - 1 {
                // A launcher with nothing to launch is itself the program (`nice`, `time`).
                return self.emit(p);
            }
            p.words.drain(..=skip);
            depth += 1;
        }
    }

    fn emit(&mut self, p: Pending) -> Result<(), String> {
        let expansions = p.words.iter().filter_map(|w| w.expansion.clone()).collect();
        let globs = p
            .words
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.glob.then_some(i))
            .collect();
        self.out.push(SimpleCommand {
            globs,
            argv: p.words.into_iter().map(|w| w.text).collect(),
            redirects: p.redirects,
            env: p.env,
            open_ended: p.open_ended,
            expansions,
            separator: Separator::End,
        });
        Ok(())
    }

    /// `sh [opts] -c SCRIPT` parses SCRIPT; a shell with no script reads code from stdin.
    fn shell(&mut self, p: Pending, name: &str, depth: usize) -> Result<(), String> {
        let args = &p.words[1..];
        let mut script_flag = false;
        let mut stdin_flag = false;
        let mut k = 0;
        while let Some(a) = args.get(k) {
            let t = a.text.as_str();
            if t == "--" {
                k += 1;
                break;
            }
            if matches!(
                t,
                "--login" | "--norc" | "--noprofile" | "--posix" | "--restricted" | "--noediting"
            ) {
                k += 1;
                continue;
            }
            if t.starts_with("--") {
                return Err(format!("`{name}` option `{t}` is not understood"));
            }
            if !(t.starts_with('-') || t.starts_with('+')) || t.len() < 2 {
                break;
            }
            for c in t[1..].chars() {
                match c {
                    'c' => script_flag = true,
                    's' | 'i' => stdin_flag = true,
                    'o' | 'O' => {
                        k += 1;
                        if args.get(k).is_none() {
                            return Err(format!("`{name} -{c}` without an option name"));
                        }
                    }
                    'l' | 'e' | 'x' | 'u' | 'v' | 'f' | 'h' | 'n' | 'a' | 'b' | 'm' | 'B' | 'C'
                    | 'E' | 'H' | 'P' | 'T' | 'r' | 'p' | 'k' | 't' => {}
                    _ => return Err(format!("`{name}` option `{t}` is not understood")),
                }
            }
            k += 1;
        }
        if script_flag {
            let Some(script) = args.get(k) else {
                return Err(format!("`{name} -c` without a script"));
            };
            if let Some(e) = &script.expansion {
                return Err(format!("expansion in `{name} -c` script: {e}"));
            }
            if args.len() > k + 1 {
                return Err(format!("arguments after the `{name} -c` script"));
            }
            // Input spliced into a script is code nobody has seen: file names from `find`
            // (`{}` inside the script) or lines from `xargs` (`-I` or positional args).
            if p.open_ended {
                self.arbitrary(format!("`xargs` feeds its input into a `{name} -c` script"));
            }
            if p.from_find && script.text.contains("{}") {
                self.arbitrary(format!(
                    "`find` substitutes file names into a `{name} -c` script"
                ));
            }
            let start = self.out.len();
            self.script(&script.text, depth + 1)?;
            if let Some(c) = self.out.get_mut(start..) {
                for c in c.iter_mut() {
                    let mut env = p.env.clone();
                    env.append(&mut c.env);
                    c.env = env;
                    c.redirects.extend(p.redirects.iter().cloned());
                    c.open_ended |= p.open_ended;
                }
            }
            return Ok(());
        }
        if stdin_flag
            || args
                .get(k)
                .is_none_or(|a| STDIN_PATHS.contains(&a.text.as_str()))
        {
            let from = if p.redirects.iter().any(|r| r.op == RedirectOp::Heredoc) {
                "a heredoc"
            } else if p.stdin_piped {
                "a pipe"
            } else {
                "stdin"
            };
            self.arbitrary(format!("`{name}` reads its program from {from}"));
        }
        self.emit(p)
    }

    /// Flag programs that run code the guard cannot see.
    fn inspect(&mut self, p: &Pending, name: &str) {
        if let Some(why) = hidden_code(p, name) {
            self.arbitrary(why);
        }
    }

    /// `find … -exec CMD … ;` runs CMD: emit find, then each nested command.
    fn find(&mut self, p: Pending, depth: usize) -> Result<(), String> {
        let mut nested = Vec::new();
        let mut k = 1;
        while k < p.words.len() {
            let t = p.words[k].text.as_str();
            if matches!(t, "-exec" | "-execdir" | "-ok" | "-okdir") {
                let start = k + 1;
                let mut end = start;
                while end < p.words.len() && !matches!(p.words[end].text.as_str(), ";" | "+") {
                    end += 1;
                }
                if end == p.words.len() {
                    return Err(format!("`find {t}` without a terminating `;` or `+`"));
                }
                if end == start {
                    return Err(format!("`find {t}` without a command"));
                }
                nested.push(p.words[start..end].to_vec());
                k = end;
            }
            k += 1;
        }
        self.emit(Pending {
            words: p.words,
            env: p.env.clone(),
            open_ended: p.open_ended,
            redirects: p.redirects,
            stdin_piped: p.stdin_piped,
            from_find: p.from_find,
        })?;
        for words in nested {
            if let Some(last) = self.out.last_mut() {
                last.separator = Separator::Seq;
            }
            self.resolve(
                Pending {
                    words,
                    env: p.env.clone(),
                    open_ended: false,
                    redirects: Vec::new(),
                    stdin_piped: false,
                    from_find: true,
                },
                depth + 1,
            )?;
        }
        Ok(())
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("word `{}`", w.text),
        Token::Op(o) => format!("operator {o:?}"),
        Token::Redirect { op, .. } => format!("redirection `{}`", op.as_str()),
    }
}

/// Read one redirection token and its target word at `pos`.
fn redirect(toks: &[Token], pos: &mut usize) -> Result<Redirect, String> {
    let Some(Token::Redirect { fd, op, heredoc }) = toks.get(*pos) else {
        return Err("expected a redirection".into());
    };
    *pos += 1;
    let default_fd = if matches!(
        op,
        RedirectOp::Read | RedirectOp::ReadWrite | RedirectOp::DupRead | RedirectOp::Heredoc
    ) {
        0
    } else {
        1
    };
    let fd = fd.unwrap_or(default_fd);
    if let Some(body) = heredoc {
        return Ok(Redirect {
            fd,
            op: *op,
            target: body.text.clone(),
            target_expands: body.expansion.is_some(),
        });
    }
    let Some(Token::Word(w)) = toks.get(*pos) else {
        return Err(format!("redirection `{}` without a target", op.as_str()));
    };
    *pos += 1;
    let mut op = *op;
    if op == RedirectOp::DupWrite && !(w.text == "-" || w.text.bytes().all(|c| c.is_ascii_digit()))
    {
        op = RedirectOp::WriteAll;
    }
    Ok(Redirect {
        fd,
        op,
        target: w.text.clone(),
        target_expands: !w.is_literal(),
    })
}

/// Skip a launcher's options; returns the index of the first non-option argument.
/// `with_arg` options take a value (`-n 5`, `-n5`, `--adjustment=5`); `flags` take none.
/// `numeric_flag` accepts `-N` (old `nice -10`). Anything else is not understood.
fn options(
    name: &str,
    args: &[Word],
    with_arg: &[&str],
    flags: &[&str],
    numeric_flag: bool,
) -> Result<usize, String> {
    let mut k = 0;
    while let Some(a) = args.get(k) {
        let t = a.text.as_str();
        if t == "--" {
            return Ok(k + 1);
        }
        if !t.starts_with('-') || t == "-" {
            return Ok(k);
        }
        if !a.is_literal() {
            return Err(format!("expansion in `{name}` option `{t}`"));
        }
        if flags.contains(&t) || (numeric_flag && t[1..].bytes().all(|c| c.is_ascii_digit())) {
            k += 1;
            continue;
        }
        if with_arg.contains(&t) {
            if args.get(k + 1).is_none() {
                return Err(format!("`{name} {t}` without a value"));
            }
            k += 2;
            continue;
        }
        let attached = with_arg.iter().any(|o| {
            if o.starts_with("--") {
                t.starts_with(&format!("{o}="))
            } else {
                t.len() > 2 && t.starts_with(o)
            }
        });
        if attached {
            k += 1;
            continue;
        }
        return Err(format!("`{name}` option `{t}` is not understood"));
    }
    Ok(k)
}

/// The value of the last of `names` among already-validated options.
fn option_value<'a>(opts: &'a [Word], names: &[&str]) -> Option<&'a Word> {
    let mut found = None;
    let mut k = 0;
    while k < opts.len() {
        if names.contains(&opts[k].text.as_str()) {
            found = opts.get(k + 1);
            k += 1;
        }
        k += 1;
    }
    found
}

/// `env` options: returns (index after options, environment changes).
fn env_options(args: &[Word]) -> Result<(usize, Vec<String>), String> {
    let mut changes = Vec::new();
    let mut k = 0;
    while let Some(a) = args.get(k) {
        let t = a.text.as_str();
        if !a.is_literal() && t.starts_with('-') {
            return Err(format!("expansion in `env` option `{t}`"));
        }
        match t {
            "--" => return Ok((k + 1, changes)),
            "-i" | "-" | "--ignore-environment" => changes.push("-i".into()),
            "-0" | "--null" | "-v" | "--debug" => {}
            "-u" | "--unset" => {
                let v = args
                    .get(k + 1)
                    .ok_or_else(|| "`env -u` without a name".to_string())?;
                changes.push(format!("-u {}", v.text));
                k += 1;
            }
            _ if t.starts_with("--unset=") => changes.push(format!("-u {}", &t[8..])),
            _ if t.starts_with("-u") && t.len() > 2 => changes.push(format!("-u {}", &t[2..])),
            _ if t.starts_with('-') => {
                return Err(format!("`env` option `{t}` is not understood"));
            }
            _ => return Ok((k, changes)),
        }
        k += 1;
    }
    Ok((k, changes))
}

/// `xargs` options; returns the index of the command.
fn xargs_options(args: &[Word]) -> Result<usize, String> {
    const WITH_ARG: &[u8] = b"adEeIiLlnPs";
    const FLAGS: &[u8] = b"0rtpxo";
    let mut k = 0;
    while let Some(a) = args.get(k) {
        let t = a.text.as_str();
        if t == "--" {
            return Ok(k + 1);
        }
        if !t.starts_with('-') || t == "-" {
            return Ok(k);
        }
        if let Some(long) = t.strip_prefix("--") {
            let key = long.split('=').next().unwrap_or(long);
            match key {
                "null" | "no-run-if-empty" | "verbose" | "interactive" | "exit" | "open-tty" => {}
                "arg-file" | "delimiter" | "eof" | "replace" | "max-lines" | "max-args"
                | "max-procs" | "max-chars" | "process-slot-var" => {
                    if !long.contains('=') {
                        return Err(format!("`xargs {t}` needs `=VALUE`"));
                    }
                }
                _ => return Err(format!("`xargs` option `{t}` is not understood")),
            }
            k += 1;
            continue;
        }
        let b = &t.as_bytes()[1..];
        let mut consumed_next = false;
        for (j, c) in b.iter().enumerate() {
            if FLAGS.contains(c) {
                continue;
            }
            if WITH_ARG.contains(c) {
                // -i, -e and -l take an optional attached value only.
                if j + 1 == b.len() && !matches!(c, b'i' | b'e' | b'l') {
                    consumed_next = true;
                }
                break;
            }
            return Err(format!("`xargs` option `{t}` is not understood"));
        }
        k += if consumed_next { 2 } else { 1 };
    }
    Ok(k)
}

/// Paths that make an interpreter read its program from stdin.
const STDIN_PATHS: [&str; 4] = ["-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"];

/// Options, per program, whose value runs a command (`tar --to-command=…`).
const COMMAND_OPTIONS: &[(&str, &[&str])] = &[
    (
        "tar",
        &[
            "--to-command",
            "--checkpoint-action",
            "--use-compress-program",
            "-I",
            "--rsh-command",
            "--info-script",
            "--new-volume-script",
            "-F",
        ],
    ),
    ("rsync", &["-e", "--rsh", "--rsync-path"]),
    ("scp", &["-S", "-oProxyCommand", "-oLocalCommand"]),
    (
        "ssh",
        &["-oProxyCommand", "-oLocalCommand", "-oPermitLocalCommand"],
    ),
    ("zip", &["-TT", "--unzip-command"]),
    ("sort", &["--compress-program"]),
    // ripgrep runs the `--pre` command on every file it searches.
    ("rg", &["--pre"]),
];

/// Why `p` (program `name`) runs code the guard cannot see, if it does.
fn hidden_code(p: &Pending, name: &str) -> Option<String> {
    let args = &p.words[1..];
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    // (inline-code options, options whose value is the next argument)
    let (inline, valued): (&[&str], &[&str]) = match base {
        "python" | "pypy" => (&["-c"], &["-W", "-X"]),
        "node" | "nodejs" | "bun" => (
            &["-e", "--eval", "-p", "--print"],
            &[
                "-r",
                "--require",
                "--import",
                "--loader",
                "--experimental-loader",
                "--conditions",
                "-C",
            ],
        ),
        "perl" => (&["-e", "-E"], &["-I", "-M", "-m"]),
        "ruby" => (&["-e", "-E"], &["-I", "-r", "-C", "-E"]),
        "php" => (&["-r"], &["-d", "-c", "-z"]),
        "lua" | "luajit" => (&["-e"], &["-l"]),
        "Rscript" | "osascript" => (&["-e"], &[]),
        _ => (&[], &[]),
    };
    let mut script: Option<&Word> = None;
    let mut k = 0;
    while let Some(a) = args.get(k) {
        let t = a.text.as_str();
        if t == "--" {
            script = args.get(k + 1);
            break;
        }
        if !t.starts_with('-') || t == "-" {
            script = Some(a);
            break;
        }
        let hit = inline.iter().find(|o| {
            t == **o
                || (o.len() == 2 && !t.starts_with("--") && t[1..].contains(&o[1..]))
                || t.starts_with(&format!("{o}="))
        });
        if let Some(o) = hit {
            return Some(format!("inline code: {name} {o}"));
        }
        k += if valued.contains(&t) { 2 } else { 1 };
    }
    let interpreter = matches!(
        base,
        "python" | "pypy" | "node" | "nodejs" | "perl" | "ruby" | "php" | "lua" | "bun"
    );
    if interpreter {
        let from_stdin = match script {
            Some(s) => STDIN_PATHS.contains(&s.text.as_str()),
            None => {
                p.stdin_piped
                    || p.redirects
                        .iter()
                        .any(|r| matches!(r.op, RedirectOp::Heredoc | RedirectOp::Read))
            }
        };
        if from_stdin {
            return Some(format!("`{name}` reads its program from stdin"));
        }
        return None;
    }
    match base {
        "deno" if args.first().is_some_and(|a| a.text == "eval") => {
            Some(format!("inline code: {name} eval"))
        }
        "awk" | "gawk" | "mawk" | "nawk" => {
            let prog = args.iter().find(|a| !a.text.starts_with('-'))?;
            let t = &prog.text;
            (t.contains("system") || t.contains('|') || t.contains("getline"))
                .then(|| format!("`{name}` program runs commands (system, pipes)"))
        }
        "git" => git_hidden_code(args),
        // `-o ProxyCommand=…` / `-oLocalCommand=…` run a local command; ssh option names
        // are case-insensitive and the value may be the next argument, so any argument
        // naming them counts.
        "ssh" | "scp" | "sftp"
            if args.iter().any(|a| {
                let t = a.text.to_ascii_lowercase();
                t.contains("proxycommand") || t.contains("localcommand")
            }) =>
        {
            Some(format!(
                "`{name} -o ProxyCommand/LocalCommand` runs a command"
            ))
        }
        _ => {
            let (_, opts) = COMMAND_OPTIONS.iter().find(|(prog, _)| *prog == name)?;
            args.iter().find_map(|a| {
                let t = a.text.as_str();
                opts.iter()
                    .find(|o| option_is(t, o))
                    .map(|o| format!("`{name} {o}` runs a command"))
            })
        }
    }
}

/// Whether argument `arg` gives option `opt`: `opt` itself or with its value attached
/// (`-Icmd`, `--to-command=cmd`); a GNU long option abbreviated to a prefix
/// (`--to-comm=cmd`, which getopt and argp accept); a one-letter option inside a
/// cluster (`-xI cmd`, `-avze cmd`). Ambiguous abbreviations also count: asking for
/// one is harmless.
fn option_is(arg: &str, opt: &str) -> bool {
    if arg.starts_with(opt) {
        return true;
    }
    if opt.starts_with("--") {
        let key = arg.split('=').next().unwrap_or(arg);
        return key.len() > 2 && key.starts_with("--") && opt.starts_with(key);
    }
    match opt.strip_prefix('-') {
        Some(letter) if letter.len() == 1 => {
            arg.starts_with('-') && !arg.starts_with("--") && arg[1..].contains(letter)
        }
        _ => false,
    }
}

/// `git -c`/`--config-env` (before the subcommand) set configuration that runs
/// commands (`core.sshCommand`, `core.pager`, `!` aliases); so do `git config` writes,
/// `clone -c/--config`, and `--upload-pack`/`--receive-pack`/`--exec` of transport
/// commands.
fn git_hidden_code(args: &[Word]) -> Option<String> {
    const VALUED: [&str; 6] = [
        "-C",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--super-prefix",
        "--attr-source",
    ];
    let mut k = 0;
    while let Some(a) = args.get(k) {
        let t = a.text.as_str();
        if t.starts_with("-c") || t.starts_with("--config-env") || t.starts_with("--exec-path=") {
            return Some(format!(
                "`git {t}` sets configuration that can run commands (core.sshCommand, aliases)"
            ));
        }
        if !t.starts_with('-') {
            break;
        }
        k += if VALUED.contains(&t) { 2 } else { 1 };
    }
    let sub = args.get(k)?.text.as_str();
    let rest = &args[k + 1..];
    if sub == "config" {
        const READS: [&str; 6] = ["--get", "--get-all", "--get-regexp", "--list", "-l", "get"];
        if !rest.iter().any(|a| READS.contains(&a.text.as_str())) {
            return Some("`git config` can set options that run commands".into());
        }
    }
    let bad = rest.iter().find(|a| {
        let t = a.text.as_str();
        t.starts_with("--upload-pack")
            || t.starts_with("--receive-pack")
            || t.starts_with("--exec")
            || (sub == "clone" && (t.starts_with("--config") || t == "-c" || t == "-u"))
            || (matches!(sub, "fetch" | "ls-remote" | "pull") && t == "-u")
    })?;
    Some(format!("`git {sub} {}` can run a command", bad.text))
}
