//! `list_dir`: the entries of a directory beneath the workspace root (kind, size,
//! name), at most [`MAX_LIST`]. The path is resolved by [`crate::Workspace`] before the
//! guard decides `list_dir: PATH`.

use std::fmt::Write as _;

use async_trait::async_trait;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Executed, Tool, ToolOutput};
use crate::authorise::Authorization;
use crate::pipeline::{Cx, Failure, Stage};
use crate::workspace::{Workspace, WorkspaceError, WorkspacePath};

/// Most entries `list_dir` returns.
const MAX_LIST: usize = 1000;

pub(crate) struct ListDir;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListDirArgs {
    /// Directory relative to the workspace (default: the workspace root)
    pub path: Option<String>,
}

#[async_trait]
impl Tool for ListDir {
    type Args = ListDirArgs;
    type Plan = WorkspacePath;

    fn name(&self) -> &str {
        "list_dir"
    }

    fn description(&self) -> &str {
        "List a directory of the workspace: kind, size and name of each entry."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: ListDirArgs) -> Result<WorkspacePath, Failure> {
        cx.rt.resolve(args.path.as_deref())
    }

    fn action(&self, _cx: &Cx<'_>, path: &WorkspacePath) -> Action {
        Action::ListDir {
            path: path.as_str(),
        }
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        path: &WorkspacePath,
        _auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let labelled = cx.rt.files_listed(path)?;
        let out = list_dir(cx.rt.workspace(), path)
            .map_err(|e| Failure::new(Stage::Workspace, e.to_string()))?;
        Ok(labelled.mark(Executed::new(cx, out)))
    }
}

fn list_dir(ws: &Workspace, path: &WorkspacePath) -> Result<ToolOutput, WorkspaceError> {
    let listing = ws.list(path, MAX_LIST)?;
    let mut out = String::new();
    for e in &listing.entries {
        let suffix = if e.kind == crate::workspace::EntryKind::Dir {
            "/"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<7} {:>10}  {}{suffix}",
            e.kind.as_str(),
            e.size,
            e.name
        );
    }
    if listing.entries.is_empty() {
        out.push_str("(empty directory)\n");
    }
    let truncated = listing.total > listing.entries.len();
    if truncated {
        let _ = writeln!(
            out,
            "[showing {} of {} entries]",
            listing.entries.len(),
            listing.total
        );
    }
    Ok(ToolOutput {
        truncated,
        ..ToolOutput::ok(out)
    })
}
