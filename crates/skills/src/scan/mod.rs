//! The scanner: reads every file of a skill (instructions and scripts in any language)
//! and reports what a reviewer would flag. Deterministic and offline.
//!
//! What it guarantees: every file is read; text files (UTF-8 without NUL) are matched
//! line by line against the rules of each category below, whatever their language;
//! other files get a finding of their own ([`binary`]) because nobody can review them.
//! Each finding has a stable rule id, a severity, `file:line`, the evidence (shortened,
//! invisible characters escaped as `\u{200b}`) and why it matters.
//!
//! What it does not: it is a pattern scanner, not an interpreter. A determined author
//! can write code it does not recognise (built at run time, split across files); that
//! is why a skill's scripts also run in the sandbox with only the capabilities it
//! declared. The scanner's job is to catch the known attacks cheaply and to make a
//! human look at anything that reaches outside the declared capabilities.
//!
//! How: one Aho-Corasick pass over each file finds the literal triggers of every line
//! rule ([`rules`]); only the lines with a trigger are matched against that rule's
//! regex. Hosts, IP literals, long blobs and invisible characters are found by a few
//! whole-file passes. All automata are compiled once per process.
//!
//! Categories, one module each: [`exec`] (download-and-run, eval of dynamic input,
//! reverse shells, fork bombs), [`network`] (hosts, IP literals, network use, DNS
//! exfiltration), [`secrets`] (credential files, the agent's own state, environment
//! harvesting, secret variable names), [`persistence`], [`obfuscation`], [`injection`]
//! (text addressed to the model), [`binary`] (files that are not text) and [`bins`]
//! (programs not declared).
//!
//! Rule ids (stable; severity in brackets, `net.*` use is medium without declared
//! egress and low with it):
//!
//! - download and run [critical]: `exec.pipe_to_shell`, `exec.run_remote`,
//!   `exec.decoded_blob`, `exec.paste_terminal`, `exec.run_downloaded`,
//!   `exec.password_archive`
//! - `exec.dynamic_eval` [high], `shell.reverse` [critical], `dos.fork_bomb` [critical]
//! - network: `net.host_undeclared` [medium in code, low in prose], `net.ip_literal`
//!   [high public, medium local], `net.exfil_host` [high], `net.dns_exfil` [high],
//!   `net.http_client`, `net.socket`, `net.curl_wget` [medium/low]
//! - secrets [high]: `secrets.credential_file`, `secrets.agent_config`,
//!   `secrets.dotenv` [high in code, medium in prose], `secrets.browser_profile`, `secrets.keychain`,
//!   `secrets.env_harvest`; `secrets.undeclared_env` [medium]
//! - persistence [high]: `persist.cron`, `persist.shell_rc`, `persist.service`,
//!   `persist.launchd`, `persist.authorized_keys`, `persist.windows`
//! - obfuscation: `obf.base64_blob`, `obf.hex_blob`, `obf.zero_width` [high],
//!   `obf.bidi` [high; critical for overrides and isolates], `obf.tag_chars` [critical],
//!   `obf.homoglyph_host` [high], `obf.file_name` [high or critical]
//! - prompt injection: `inject.override` [high], `inject.hidden_comment` [critical],
//!   `inject.html_comment` [low]
//! - files: `file.executable` [high], `file.archive` [medium], `file.binary`
//!   [info for media, medium otherwise]
//! - `cap.undeclared_bin` [low]

mod binary;
mod bins;
mod exec;
mod injection;
mod network;
mod obfuscation;
mod persistence;
mod rules;
mod secrets;
mod source;

use std::collections::HashSet;

use serde::Serialize;

use crate::manifest::Capabilities;
use crate::tree::Tree;

use network::Declared;
pub use network::host_declared;
use source::Source;
pub use source::is_invisible;

/// How bad a finding is. `Critical` can never be installed; `High` needs a human's
/// `--accept-risk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One thing the scanner flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id of the rule, e.g. `exec.pipe_to_shell`.
    pub id: &'static str,
    pub severity: Severity,
    /// Path within the skill.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The offending text (shortened, control and invisible characters escaped).
    pub evidence: String,
    /// Why it matters, for the human deciding.
    pub why: &'static str,
}

/// Everything found in one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The verdict word stored in the lock: `clean` or the worst severity.
    pub fn verdict(&self) -> &'static str {
        self.worst().map_or("clean", Severity::as_str)
    }

    /// Nothing high or critical.
    pub fn passes(&self) -> bool {
        self.worst().is_none_or(|s| s < Severity::High)
    }
}

/// Scan `tree`, whose manifest declares `declared` (hosts not among them count as
/// undeclared).
pub fn scan(tree: &Tree, declared: &Capabilities) -> Report {
    let declared = Declared::new(declared);
    let mut out = Findings::default();
    for file in tree.files() {
        obfuscation::check_path(&file.path, &mut out);
        match Source::new(&file.path, &file.contents) {
            Some(src) => scan_source(&src, &declared, &mut out),
            None => binary::check(file, &mut out),
        }
    }
    out.finish()
}

/// Scan one text that is not a file of a skill — an MCP tool's description or input
/// schema, say — with every rule a file named `label` would get. `label`'s extension
/// tells the language as for a file (`….md` or `….txt`: prose, where HTML comments and
/// text addressed to the model are looked for), and each finding names `label` as its
/// file. `declared` says which hosts, programs and variables are expected. NUL
/// characters (which make a file binary) are scanned as U+FFFD.
pub fn scan_text(label: &str, text: &str, declared: &Capabilities) -> Report {
    let declared = Declared::new(declared);
    let mut out = Findings::default();
    let cleaned;
    let text = if text.contains('\0') {
        cleaned = text.replace('\0', "\u{fffd}");
        cleaned.as_str()
    } else {
        text
    };
    if let Some(src) = Source::new(label, text.as_bytes()) {
        scan_source(&src, &declared, &mut out);
    }
    out.finish()
}

fn scan_source(src: &Source<'_>, declared: &Declared, out: &mut Findings) {
    let hits = rules::run(src);
    for hit in hits.iter().filter(|h| h.rule.reports()) {
        let severity = hit.rule.severity(declared, src.is_code(hit.start));
        out.push_at(src, hit.rule.id, severity, hit.start, hit.end, hit.rule.why);
    }
    exec::correlate(src, &hits, out);
    network::check(src, &hits, declared, out);
    secrets::check(src, &hits, declared, out);
    obfuscation::check(src, out);
    injection::check(src, out);
    bins::check(src, declared, out);
}

/// Findings collected so far: at most one per rule, file and line, and for rules that
/// name a thing (a host, a program, a variable) at most one per thing and file.
#[derive(Default)]
pub(crate) struct Findings {
    list: Vec<Finding>,
    seen: HashSet<(&'static str, String, usize)>,
    seen_keys: HashSet<(&'static str, String, String)>,
}

impl Findings {
    /// A finding for the match `start..end` (byte offsets into `src`).
    fn push_at(
        &mut self,
        src: &Source<'_>,
        id: &'static str,
        severity: Severity,
        start: usize,
        end: usize,
        why: &'static str,
    ) {
        let line = src.line_of(start);
        if !self.seen.insert((id, src.path.to_string(), line)) {
            return;
        }
        let evidence = src.evidence(start, end);
        self.list.push(Finding {
            id,
            severity,
            file: src.path.to_string(),
            line,
            evidence,
            why,
        });
    }

    /// Like [`Findings::push_at`], once per `key` (a host, a program…) in the file.
    #[allow(clippy::too_many_arguments)]
    fn push_keyed(
        &mut self,
        src: &Source<'_>,
        id: &'static str,
        key: &str,
        severity: Severity,
        start: usize,
        end: usize,
        why: &'static str,
    ) {
        if self
            .seen_keys
            .insert((id, src.path.to_string(), key.to_string()))
        {
            self.push_at(src, id, severity, start, end, why);
        }
    }

    /// Whether rule `id` already has a finding at `file:line`.
    fn has(&self, id: &'static str, file: &str, line: usize) -> bool {
        self.seen.contains(&(id, file.to_string(), line))
    }

    /// A finding whose evidence is not a span of text (a binary file).
    fn push_raw(&mut self, finding: Finding) {
        if self
            .seen
            .insert((finding.id, finding.file.clone(), finding.line))
        {
            self.list.push(finding);
        }
    }

    fn finish(mut self) -> Report {
        self.list.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.file.cmp(&b.file))
                .then_with(|| a.line.cmp(&b.line))
                .then_with(|| a.id.cmp(b.id))
        });
        Report {
            findings: self.list,
        }
    }
}
