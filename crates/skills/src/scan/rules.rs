//! Line rules: a literal trigger finds candidate lines, a regex confirms.
//!
//! Every category module lists its rules; they are compiled once into one
//! Aho-Corasick automaton over all triggers (ASCII case-insensitive) and one regex per
//! rule. A file is scanned by one pass of the automaton; each (rule, line) with a
//! trigger is then matched against the rule's regex on that line only, so the cost is
//! one linear pass plus small regex runs on the few lines that matter.
//!
//! A rule either reports a finding itself or only marks a line ([`Level::Mark`]) for a
//! category's own logic that looks at several lines together (a download *and* a
//! `chmod +x` in one file, a password *near* an archive name).

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Captures, Regex};

use super::Severity;
use super::network::Declared;
use super::source::{Lang, Source};

/// How severe a rule's finding is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    Fixed(Severity),
    /// This severity in code (scripts, Markdown code blocks); medium in prose, where the
    /// words are often benign advice (`put your key in .env`).
    InCode(Severity),
    /// Network use: medium when the skill declares no egress (it should not reach
    /// the network at all), low when it does (the egress proxy holds it to its hosts).
    Network,
    /// Not a finding: a marker for a category's multi-line logic.
    Mark,
}

pub(crate) struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub why: &'static str,
    /// Literal strings (ASCII case-insensitive) that make a line a candidate.
    pub triggers: &'static [&'static str],
    /// Confirms a candidate line; `None`: the trigger itself is the match.
    pub pattern: Option<&'static str>,
    /// Only in files of these languages; `None`: all.
    pub langs: Option<&'static [Lang]>,
    /// Reports only the first match per file (a skill that uses `requests` in forty
    /// places needs saying once).
    pub once: bool,
    /// An extra check on the regex's captures (what a regex cannot say, e.g. that
    /// three names are the same).
    pub confirm: Option<fn(&Captures<'_>) -> bool>,
}

impl Rule {
    pub const fn new(
        id: &'static str,
        level: Level,
        why: &'static str,
        triggers: &'static [&'static str],
        pattern: Option<&'static str>,
    ) -> Rule {
        Rule {
            id,
            level,
            why,
            triggers,
            pattern,
            langs: None,
            once: false,
            confirm: None,
        }
    }

    pub const fn once(mut self) -> Rule {
        self.once = true;
        self
    }

    pub const fn langs(mut self, langs: &'static [Lang]) -> Rule {
        self.langs = Some(langs);
        self
    }

    pub const fn confirm(mut self, f: fn(&Captures<'_>) -> bool) -> Rule {
        self.confirm = Some(f);
        self
    }

    pub fn reports(&self) -> bool {
        !matches!(self.level, Level::Mark)
    }

    pub fn severity(&self, declared: &Declared, in_code: bool) -> Severity {
        match self.level {
            Level::Fixed(s) => s,
            Level::InCode(s) if in_code => s,
            Level::InCode(_) => Severity::Medium,
            Level::Network if declared.has_egress() => Severity::Low,
            Level::Network | Level::Mark => Severity::Medium,
        }
    }
}

/// A confirmed match of a rule: byte offsets into the file.
pub(crate) struct Hit {
    pub rule: &'static Rule,
    pub line: usize,
    pub start: usize,
    pub end: usize,
}

/// The hits of marker (or rule) `id`.
pub(crate) fn marked<'h>(hits: &'h [Hit], id: &'h str) -> impl Iterator<Item = &'h Hit> + 'h {
    hits.iter().filter(move |h| h.rule.id == id)
}

/// Compiles `pattern` with ASCII word boundaries: a Unicode `\b` makes the regex
/// engine leave its DFA for a far slower one on any non-ASCII text, which an attacker
/// controls (a 4 MB line took seconds). Next to a non-ASCII letter an ASCII boundary
/// matches *more* often, never less, which is the safe side for a scanner.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str("(?-u:\\b)"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    Regex::new(&out)
}

struct Engine {
    rules: Vec<&'static Rule>,
    regexes: Vec<Option<Regex>>,
    automaton: AhoCorasick,
    /// Automaton pattern index → the rules with that trigger (a literal like `curl` is
    /// a trigger of several; it is searched once).
    owners: Vec<Vec<usize>>,
}

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let rules: Vec<&'static Rule> = super::exec::RULES
        .iter()
        .chain(super::network::RULES)
        .chain(super::secrets::RULES)
        .chain(super::persistence::RULES)
        .chain(super::injection::RULES)
        .chain(super::obfuscation::RULES)
        .collect();
    let mut triggers: Vec<String> = Vec::new();
    let mut owners: Vec<Vec<usize>> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        for t in r.triggers {
            let t = t.to_ascii_lowercase();
            match triggers.iter().position(|x| *x == t) {
                Some(p) => owners[p].push(i),
                None => {
                    triggers.push(t);
                    owners.push(vec![i]);
                }
            }
        }
    }
    let automaton = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(&triggers)
        .expect("the scanner's trigger literals build an automaton");
    let regexes = rules
        .iter()
        .map(|r| {
            r.pattern
                .map(|p| compile(p).unwrap_or_else(|e| panic!("rule {}: bad pattern: {e}", r.id)))
        })
        .collect();
    Engine {
        rules,
        regexes,
        automaton,
        owners,
    }
});

/// All confirmed matches of all rules in `src`, in file order per rule.
pub(crate) fn run(src: &Source<'_>) -> Vec<Hit> {
    let engine = &*ENGINE;
    // (rule, line, trigger start, trigger end), first trigger per rule and line.
    let mut candidates: Vec<(usize, usize, usize, usize)> = Vec::new();
    for m in engine.automaton.find_overlapping_iter(src.text) {
        let line = src.line_of(m.start());
        for &rule in &engine.owners[m.pattern().as_usize()] {
            candidates.push((rule, line, m.start(), m.end()));
        }
    }
    candidates.sort_unstable();
    candidates.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);

    let mut hits = Vec::new();
    let mut done_once = vec![false; engine.rules.len()];
    for (ri, line, ts, te) in candidates {
        let rule = engine.rules[ri];
        if done_once[ri] {
            continue;
        }
        if rule.langs.is_some_and(|langs| !langs.contains(&src.lang)) {
            continue;
        }
        let (start, end) = match &engine.regexes[ri] {
            None => (ts, te),
            Some(re) => {
                let (ls, le) = src.line_range(line);
                let text = &src.text[ls..le];
                let found = match rule.confirm {
                    None => re.find(text).map(|m| (m.start(), m.end())),
                    Some(check) => re
                        .captures_iter(text)
                        .find(|c| check(c))
                        .and_then(|c| c.get(0))
                        .map(|m| (m.start(), m.end())),
                };
                match found {
                    Some((s, e)) => (ls + s, ls + e),
                    None => continue,
                }
            }
        };
        if rule.once {
            done_once[ri] = true;
        }
        hits.push(Hit {
            rule,
            line,
            start,
            end,
        });
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles_and_has_a_trigger() {
        let engine = &*ENGINE;
        for (rule, re) in engine.rules.iter().zip(&engine.regexes) {
            assert!(!rule.triggers.is_empty(), "{} has no trigger", rule.id);
            assert_eq!(rule.pattern.is_some(), re.is_some());
        }
    }

    #[test]
    fn word_boundaries_become_ascii_and_escapes_stay() {
        let re = compile(r"\bcurl\b|a\\b").unwrap();
        assert_eq!(re.as_str(), r"(?-u:\b)curl(?-u:\b)|a\\b");
        assert!(re.is_match("é curl|"));
        assert!(re.is_match(r"a\b"));
    }

    #[test]
    fn ids_are_dotted_lower_case() {
        for rule in &ENGINE.rules {
            assert!(
                rule.id.contains('.')
                    && rule.id.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'.'
                        || b == b'_'),
                "{}",
                rule.id
            );
        }
    }
}
