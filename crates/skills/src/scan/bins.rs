//! Programs a skill runs that it does not declare in `bins`: the interpreter of each
//! `#!` line, the commands of shell scripts, Makefile recipes and shell blocks in
//! Markdown, and the programs Python's `subprocess` and Node's `child_process` start
//! from a list. Low: a reviewer should see what a skill runs, and the sandbox only
//! offers what was approved.
//!
//! Shell builtins and keywords are not programs; paths into the skill itself
//! (`./scripts/run.sh`) are its own files.

use std::sync::LazyLock;

use regex::Regex;

use super::network::Declared;
use super::source::{Lang, Source, shebang_program};
use super::{Findings, Severity};

const WHY: &str = "runs a program the skill does not declare in `bins`";

const BUILTINS: &[&str] = &[
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "in",
    "function",
    "return",
    "exit",
    "export",
    "local",
    "declare",
    "typeset",
    "readonly",
    "set",
    "unset",
    "shift",
    "source",
    "echo",
    "printf",
    "read",
    "cd",
    "pwd",
    "test",
    "true",
    "false",
    "trap",
    "wait",
    "eval",
    "exec",
    "let",
    "alias",
    "unalias",
    "type",
    "command",
    "break",
    "continue",
    "shopt",
    "getopts",
    "umask",
    "ulimit",
    "kill",
    "jobs",
    "fg",
    "bg",
    "hash",
    "help",
    "history",
    "pushd",
    "popd",
    "dirs",
    "times",
    "caller",
    "compgen",
    "complete",
    "enable",
    "mapfile",
    "readarray",
    "builtin",
    "disown",
    "logout",
    "select",
    "coproc",
    "sudo",
    "nohup",
    "time",
    "env",
    "xargs",
    "then:",
    "else:",
    "end",
    "begin",
    "not",
    "and",
    "or",
    "{",
    "}",
    "[",
    "[[",
    "]]",
    "]",
    "!",
    "-",
];

/// Shell-like lines: `cmd args`, possibly after `$ ` (console prompts) and assignments.
static SUBPROCESS: LazyLock<Regex> = LazyLock::new(|| {
    super::rules::compile(r#"\b(?:subprocess\.\w+|spawn|spawnSync|execFile|execFileSync|Popen)\s*\(\s*\[?\s*["']([A-Za-z0-9][\w.+-]*)["']"#)
        .expect("subprocess pattern")
});

static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9._+-]*$").expect("word pattern"));

pub(crate) fn check(src: &Source<'_>, declared: &Declared, out: &mut Findings) {
    let report = |bin: &str, start: usize, out: &mut Findings| {
        if !declared.allows_bin(bin) {
            out.push_keyed(
                src,
                "cap.undeclared_bin",
                bin,
                Severity::Low,
                start,
                start + 1,
                WHY,
            );
        }
    };
    if let Some(p) = src
        .text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(shebang_program)
    {
        report(p, 0, out);
    }
    for c in SUBPROCESS.captures_iter(src.text) {
        if let Some(m) = c.get(1) {
            report(m.as_str(), m.start(), out);
        }
    }
    for line in 1..=src.lines() {
        let shell_like = match src.lang {
            Lang::Shell => line > 1,
            Lang::Make => src.line_text(line).starts_with('\t'),
            Lang::Markdown => matches!(
                src.fence(line),
                Some("bash" | "sh" | "shell" | "zsh" | "console" | "shell-session")
            ),
            _ => false,
        };
        if !shell_like {
            continue;
        }
        let (ls, _) = src.line_range(line);
        let text = src.line_text(line);
        for (off, bin) in commands(text) {
            report(bin, ls + off, out);
        }
    }
}

/// The program of each command on a shell line, with its byte offset in the line.
fn commands(line: &str) -> Vec<(usize, &str)> {
    let code = match line.trim_start().strip_prefix("$ ") {
        Some(rest) => rest,
        None => line,
    };
    let base = line.len() - code.len();
    if code.trim_start().starts_with('#') {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut seg_start = 0;
    let bytes = code.as_bytes();
    let mut i = 0;
    while i <= bytes.len() {
        let boundary = i == bytes.len()
            || matches!(bytes[i], b'|' | b';' | b'&' | b'`' | b')')
            || (bytes[i] == b'(' && i > 0 && bytes[i - 1] == b'$');
        if boundary {
            if let Some((off, w)) = first_program(&code[seg_start..i]) {
                out.push((base + seg_start + off, w));
            }
            seg_start = i + 1;
        }
        i += 1;
    }
    out
}

fn first_program(seg: &str) -> Option<(usize, &str)> {
    let mut pos = 0;
    for word in seg.split(' ') {
        let at = pos;
        pos += word.len() + 1;
        if word.is_empty() {
            continue;
        }
        // `VAR=value cmd`, `sudo cmd`, `nohup cmd`: look further.
        if word.contains('=') && !word.starts_with('=') {
            continue;
        }
        if matches!(
            word,
            "sudo" | "nohup" | "time" | "command" | "exec" | "then" | "do" | "else" | "!"
        ) {
            continue;
        }
        let name = word.rsplit('/').next().unwrap_or(word);
        if word.starts_with('.') || word.starts_with('$') || !WORD.is_match(name) {
            return None;
        }
        if BUILTINS.contains(&name) {
            return None;
        }
        return Some((at, name));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_of_a_shell_line() {
        let got: Vec<&str> = commands("FOO=1 sudo curl -s x | jq .a && ./run.sh; echo $(date)")
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_eq!(got, vec!["curl", "jq", "date"]);
        let got: Vec<&str> = commands("$ /usr/bin/python3 -m venv .v")
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_eq!(got, vec!["python3"]);
        assert!(commands("  --flag value \\").is_empty());
        assert!(commands("# curl in a comment").is_empty());
    }
}
