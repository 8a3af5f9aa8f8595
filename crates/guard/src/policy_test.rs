//! `cordon policy test FILE.toml`: a table of actions and the decisions they must get.
//!
//! ```toml
//! [[case]]
//! agent = "dev"
//! action = "exec"                    # exec | connect | read_file | write_file | edit_file
//!                                    # | delete_file | list_dir | search | memory_write
//!                                    # | spawn_agent | use_secret | install_skill
//! command = "git push origin main"   # exec; `url` for connect; `path`; `file`; `tools`;
//!                                    # `name` + `host`; `name` + `sha256`
//! labels = { integrity = "untrusted", confidentiality = "public" }   # default trusted/public
//! contacted = ["docs.rs"]            # hosts already contacted in the session
//! secret_hosts = { GH = ["api.github.com"] }   # vault bindings, for secrets
//! depth = 0
//! expect = "ask"                     # allow | deny | ask
//! ```
//!
//! Guarantees: every case is decided by the same [`Policy::evaluate`] the runtime uses;
//! a malformed case file (unknown key, missing field, wrong type) is an error naming
//! FILE:LINE:COL, never a silently skipped case.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use config::{Config, HostPattern};
use serde::Deserialize;

use crate::action_text::ActionText;
use crate::labels::Labels;
use crate::policy::{Policy, PolicyError, SessionView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    agent: String,
    action: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    max_steps: Option<u32>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    /// `run_skill`: the skill declares egress hosts.
    #[serde(default)]
    network: Option<bool>,
    /// `run_skill`: the skill may write the workspace.
    #[serde(default)]
    writes: Option<bool>,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    /// `send_message`: `CHANNEL:CONVERSATION`.
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    contacted: Vec<String>,
    #[serde(default)]
    secret_hosts: BTreeMap<String, Vec<HostPattern>>,
    #[serde(default)]
    depth: u32,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
    Ask,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::Ask => "ask",
        }
    }
}

/// One decided case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRow {
    /// 1-based index of the `[[case]]`.
    pub case: usize,
    pub agent: String,
    /// The canonical action.
    pub action: String,
    pub expected: String,
    pub got: String,
    pub rule: String,
    pub reason: String,
}

impl TestRow {
    pub fn passed(&self) -> bool {
        self.expected == self.got
    }
}

/// The result of a case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    pub file: String,
    pub rows: Vec<TestRow>,
}

impl TestReport {
    /// Whether every case got its expected decision.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(TestRow::passed)
    }

    /// The cases that did not.
    pub fn mismatches(&self) -> Vec<&TestRow> {
        self.rows.iter().filter(|r| !r.passed()).collect()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = ["#", "agent", "action", "expected", "got", "rule"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.case.to_string(),
                    r.agent.clone(),
                    r.action.clone(),
                    r.expected.clone(),
                    if r.passed() {
                        r.got.clone()
                    } else {
                        format!("{} MISMATCH", r.got)
                    },
                    r.rule.clone(),
                ]
            })
            .collect();
        let mut width = head.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: &[&str]| -> fmt::Result {
            let mut s = String::new();
            for (i, c) in row.iter().enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                s.push_str(c);
                if i + 1 < row.len() {
                    s.push_str(&" ".repeat(width[i].saturating_sub(c.chars().count())));
                }
            }
            writeln!(f, "{}", s.trim_end())
        };
        line(f, &head)?;
        for row in &cells {
            let refs: Vec<&str> = row.iter().map(String::as_str).collect();
            line(f, &refs)?;
        }
        let bad = self.mismatches();
        if bad.is_empty() {
            writeln!(f, "\n{}: all {} cases passed", self.file, self.rows.len())
        } else {
            writeln!(
                f,
                "\n{}: {} of {} cases MISMATCHED:",
                self.file,
                bad.len(),
                self.rows.len()
            )?;
            for r in bad {
                writeln!(
                    f,
                    "  case {} ({}): expected {}, got {} by `{}`: {}",
                    r.case, r.action, r.expected, r.got, r.rule, r.reason
                )?;
            }
            Ok(())
        }
    }
}

fn invalid(
    file: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    msg: String,
) -> PolicyError {
    let (line, col) = crate::policy::line_col(text, span.map_or(0, |s| s.start));
    PolicyError::Invalid {
        file: file.into(),
        line,
        col,
        message: msg,
    }
}

/// Where `[[case]]` number `n` (1-based) starts in `text`, for errors about its content.
fn case_span(text: &str, n: usize) -> Option<std::ops::Range<usize>> {
    text.match_indices("[[case]]")
        .nth(n.saturating_sub(1))
        .map(|(o, s)| o..o + s.len())
}

/// Run the cases of `file_text` (read from `file_path`) against `config` (loaded from a
/// file in `config_dir`).
pub fn run(
    config: &Config,
    config_dir: &Path,
    file_text: &str,
    file_path: &Path,
) -> Result<TestReport, PolicyError> {
    let file = file_path.display().to_string();
    let cases: CaseFile = toml::from_str(file_text)
        .map_err(|e| invalid(&file, file_text, e.span(), e.message().to_string()))?;
    if cases.case.is_empty() {
        return Err(invalid(
            &file,
            file_text,
            None,
            "no [[case]] tables: nothing to test".into(),
        ));
    }
    let mut policies: HashMap<String, Policy> = HashMap::new();
    let mut rows = Vec::new();
    for (i, c) in cases.case.into_iter().enumerate() {
        let n = i + 1;
        let bad = |msg: String| {
            invalid(
                &file,
                file_text,
                case_span(file_text, n),
                format!("case {n}: {msg}"),
            )
        };
        if !policies.contains_key(&c.agent) {
            let p = match Policy::load(config, config_dir, &c.agent) {
                Err(PolicyError::UnknownAgent { agent, known }) => {
                    return Err(bad(format!(
                        "no agent `{agent}` in the config (agents: {known})"
                    )));
                }
                other => other?,
            };
            policies.insert(c.agent.clone(), p);
        }
        let Some(policy) = policies.get(&c.agent) else {
            continue;
        };
        // The agent exists: its policy loaded above.
        let max_steps = config.agents.get(&c.agent).map(|a| a.max_steps);
        let action = max_steps
            .ok_or_else(|| format!("no agent `{}` in the config", c.agent))
            .and_then(|steps| c.action_text().to_action(steps))
            .map_err(bad)?;
        let contacted: BTreeSet<String> = c
            .contacted
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let view = SessionView {
            session: "policy-test",
            labels: &c.labels,
            contacted: &contacted,
            depth: c.depth,
            secret_hosts: &c.secret_hosts,
            skill: None,
            checkpointed: false,
            labelled_code: &[],
        };
        let v = policy.evaluate(&action, &view);
        rows.push(TestRow {
            case: n,
            agent: c.agent.clone(),
            action: action.canonical(),
            expected: c.expect.as_str().into(),
            got: v.decision.kind().into(),
            rule: v.rule,
            reason: v.decision.reason().into(),
        });
    }
    Ok(TestReport { file, rows })
}

impl Case {
    /// The case's action fields, for the one action parser.
    fn action_text(&self) -> ActionText {
        ActionText {
            action: self.action.clone(),
            command: self.command.clone(),
            url: self.url.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            file: self.file.clone(),
            tools: self.tools.clone(),
            max_steps: self.max_steps,
            name: self.name.clone(),
            host: self.host.clone(),
            sha256: self.sha256.clone(),
            network: self.network,
            writes: self.writes,
            server: self.server.clone(),
            tool: self.tool.clone(),
            arguments: self.arguments.clone(),
            to: self.to.clone(),
        }
    }
}
