//! `read_file`: a text file beneath the workspace root, whole or a range of lines,
//! within output bounds. The path is resolved by [`crate::Workspace`] before the guard
//! decides `read_file: PATH`; a result showing a file that matches `labels.private` is
//! labelled private.

use std::fmt::Write as _;

use async_trait::async_trait;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Executed, Tool, ToolOutput, truncate_utf8};
use crate::authorise::Authorization;
use crate::pipeline::{Cx, Failure, Stage};
use crate::workspace::{Workspace, WorkspaceError, WorkspacePath};

/// Largest file `read_file` and `edit_file` load.
pub(crate) const MAX_LOAD: u64 = 16 << 20;
/// Most text `read_file` returns.
const MAX_READ_OUTPUT: usize = 256 << 10;

pub(crate) struct ReadFile;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadFileArgs {
    /// File path relative to the workspace
    pub path: String,
    /// First line to return, from 1
    #[schemars(range(min = 1))]
    pub offset: Option<u64>,
    /// Most lines to return
    #[schemars(range(min = 1))]
    pub limit: Option<u64>,
}

#[async_trait]
impl Tool for ReadFile {
    type Args = ReadFileArgs;
    type Plan = (ReadFileArgs, WorkspacePath);

    fn name(&self) -> &str {
        "read_file"
    }

    fn description(&self) -> &str {
        "Read a text file in the workspace. Paths are relative to the workspace (or under /workspace/). Optional `offset` (first line, from 1) and `limit` (number of lines) select a part of a large file."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: ReadFileArgs) -> Result<Self::Plan, Failure> {
        let path = cx.rt.resolve(Some(&args.path))?;
        Ok((args, path))
    }

    fn action(&self, _cx: &Cx<'_>, (_, path): &Self::Plan) -> Action {
        Action::ReadFile {
            path: path.as_str(),
        }
    }

    fn shows_private(&self, cx: &Cx<'_>, (_, path): &Self::Plan, _content: &str) -> bool {
        cx.rt.policy.is_private(&path.as_str())
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        (args, path): &Self::Plan,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let labelled = cx.rt.files_read(&[path.as_str()])?;
        let out = read_file(cx.rt.workspace(), path, args)
            .map_err(|e| Failure::new(Stage::Workspace, e.to_string()))?;
        Ok(labelled.mark(Executed::new(cx, out)))
    }
}

fn read_file(
    ws: &Workspace,
    path: &WorkspacePath,
    a: &ReadFileArgs,
) -> Result<ToolOutput, WorkspaceError> {
    let (bytes, size) = ws.read_prefix(path, MAX_LOAD)?;
    let partial = size > bytes.len() as u64;
    let (text, lossy) = match String::from_utf8(bytes) {
        Ok(t) => (t, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    let total_lines = text.lines().count();
    let first = a.offset.unwrap_or(1).max(1);
    let skip = usize::try_from(first - 1).unwrap_or(usize::MAX);
    let take = a
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let selected_all = a.offset.is_none() && a.limit.is_none();
    let mut out = if selected_all {
        text
    } else {
        let mut s = String::new();
        for line in text.split_inclusive('\n').skip(skip).take(take) {
            s.push_str(line);
        }
        s
    };
    let mut notes = Vec::new();
    if partial {
        notes.push(format!(
            "the file is {size} bytes; only its first {MAX_LOAD} bytes can be read with read_file"
        ));
    }
    if lossy {
        notes.push("the file is not valid UTF-8; invalid bytes are shown as U+FFFD".to_string());
    }
    if !selected_all && skip >= total_lines && total_lines > 0 {
        notes.push(format!(
            "offset {first} is past the end: the file has {total_lines} lines"
        ));
    }
    if truncate_utf8(&mut out, MAX_READ_OUTPUT) {
        let shown = out.lines().count();
        notes.push(format!(
            "truncated at {MAX_READ_OUTPUT} bytes: showing lines {first}-{} of {total_lines}; use offset={} to continue",
            first as usize + shown.saturating_sub(1),
            first as usize + shown.saturating_sub(1),
        ));
    }
    let truncated = partial || notes.iter().any(|n| n.starts_with("truncated"));
    if !notes.is_empty() {
        if !out.ends_with('\n') && !out.is_empty() {
            out.push('\n');
        }
        for n in notes {
            let _ = writeln!(out, "[{n}]");
        }
    }
    Ok(ToolOutput {
        truncated,
        ..ToolOutput::ok(out)
    })
}
