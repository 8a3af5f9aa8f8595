//! `search`: lines matching a regular expression in files beneath a workspace path
//! (`path:line: text`), within bounds on matches, files, depth and file size; binary
//! files and symbolic links are skipped. The pattern is compiled (bounded in size) and
//! the path resolved by [`crate::Workspace`] before the guard decides `search: PATH`; a
//! result showing a line of a file that matches `labels.private` is labelled private.

use std::fmt::Write as _;

use async_trait::async_trait;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Executed, Tool, ToolOutput, truncate_utf8};
use crate::authorise::Authorization;
use crate::pipeline::{Cx, Failure, Stage};
use crate::workspace::{WalkLimits, Workspace, WorkspacePath};

pub(crate) struct Search;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchArgs {
    /// Regular expression (Rust regex syntax)
    pub pattern: String,
    /// File or directory to search beneath (default: the whole workspace)
    pub path: Option<String>,
}

#[async_trait]
impl Tool for Search {
    type Args = SearchArgs;
    type Plan = (SearchArgs, WorkspacePath);

    fn name(&self) -> &str {
        "search"
    }

    fn description(&self) -> &str {
        "Search workspace files for a regular expression; returns `path:line: text` for each matching line. Binary and very large files and symbolic links are skipped."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: SearchArgs) -> Result<Self::Plan, Failure> {
        check_pattern(&args.pattern).map_err(|m| Failure::new(Stage::Arguments, m))?;
        let path = cx.rt.resolve(args.path.as_deref())?;
        Ok((args, path))
    }

    fn action(&self, _cx: &Cx<'_>, (_, path): &Self::Plan) -> Action {
        Action::Search {
            path: path.as_str(),
        }
    }

    /// `path:line: text` per match: private when a matching line's file is.
    fn shows_private(&self, cx: &Cx<'_>, _plan: &Self::Plan, content: &str) -> bool {
        content.lines().any(|l| {
            l.split_once(':')
                .is_some_and(|(path, _)| cx.rt.policy.is_private(path))
        })
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        (args, path): &Self::Plan,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let mut hits = Vec::new();
        let out = search(cx.rt.workspace(), path, args, &mut hits)
            .map_err(|m| Failure::new(Stage::Workspace, m))?;
        let labelled = cx.rt.files_read(&hits)?;
        Ok(labelled.mark(Executed::new(cx, out)))
    }
}

/// Compile a `search` pattern (bounded in size), or say why it is invalid.
fn check_pattern(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid arguments for search: bad regex `{pattern}`: {e}"))
}

/// Bounds of `search`.
const MAX_MATCHES: usize = 200;
const MAX_LINE_CHARS: usize = 300;
const SEARCH_LIMITS: WalkLimits = WalkLimits {
    max_file_size: 1 << 20,
    max_files: 20_000,
    max_depth: 32,
};

/// `hits` gets the files with a match shown (for their provenance labels).
fn search(
    ws: &Workspace,
    path: &WorkspacePath,
    a: &SearchArgs,
    hits: &mut Vec<String>,
) -> Result<ToolOutput, String> {
    let re = check_pattern(&a.pattern)?;
    let mut out = String::new();
    let mut matches = 0usize;
    let mut binary = 0usize;
    let mut hit_limit = false;
    let summary = ws
        .walk(path, SEARCH_LIMITS, &mut |rel, content| {
            if content[..content.len().min(8192)].contains(&0) {
                binary += 1;
                return true;
            }
            let text = String::from_utf8_lossy(content);
            for (i, line) in text.lines().enumerate() {
                if re.is_match(line) {
                    if matches >= MAX_MATCHES {
                        hit_limit = true;
                        return false;
                    }
                    matches += 1;
                    if hits.last().is_none_or(|h| h != rel) {
                        hits.push(rel.to_string());
                    }
                    let mut l = line.to_string();
                    let cut = truncate_utf8(&mut l, MAX_LINE_CHARS);
                    let _ = writeln!(out, "{rel}:{}: {l}{}", i + 1, if cut { " […]" } else { "" });
                }
            }
            true
        })
        .map_err(|e| e.to_string())?;
    if matches == 0 {
        out.push_str("no matches\n");
    }
    let mut notes = Vec::new();
    if hit_limit {
        notes.push(format!(
            "stopped after {MAX_MATCHES} matches; narrow the pattern or path"
        ));
    } else if summary.stopped_early {
        notes.push(format!("stopped after {} files", summary.files_visited));
    }
    if summary.skipped_symlinks > 0 {
        notes.push(format!(
            "{} symbolic links skipped",
            summary.skipped_symlinks
        ));
    }
    if summary.skipped_large > 0 {
        notes.push(format!(
            "{} files over 1 MiB skipped",
            summary.skipped_large
        ));
    }
    if binary > 0 {
        notes.push(format!("{binary} binary files skipped"));
    }
    for n in &notes {
        let _ = writeln!(out, "[{n}]");
    }
    Ok(ToolOutput {
        truncated: hit_limit || summary.stopped_early,
        ..ToolOutput::ok(out)
    })
}
