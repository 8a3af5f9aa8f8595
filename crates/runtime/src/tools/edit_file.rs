//! `edit_file`: replace an exact piece of text in a UTF-8 file beneath the workspace
//! root (once, or every occurrence with `replace_all`). The path is resolved by
//! [`crate::Workspace`] before the guard decides `edit_file: PATH`.

use async_trait::async_trait;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::read_file::MAX_LOAD;
use super::{Executed, Tool, ToolOutput};
use crate::authorise::Authorization;
use crate::pipeline::{Cx, Failure};
use crate::workspace::{Workspace, WorkspacePath};

pub(crate) struct EditFile;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditFileArgs {
    /// File path relative to the workspace
    pub path: String,
    /// Exact text to replace
    pub old_string: String,
    /// Replacement text
    pub new_string: String,
    /// Replace every occurrence (default false)
    #[serde(default)]
    pub replace_all: bool,
}

#[async_trait]
impl Tool for EditFile {
    type Args = EditFileArgs;
    type Plan = (EditFileArgs, WorkspacePath);

    fn name(&self) -> &str {
        "edit_file"
    }

    fn description(&self) -> &str {
        "Replace an exact piece of text in a workspace file. `old_string` must occur exactly once unless `replace_all` is true."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: EditFileArgs) -> Result<Self::Plan, Failure> {
        let path = cx.rt.resolve(Some(&args.path))?;
        Ok((args, path))
    }

    fn action(&self, _cx: &Cx<'_>, (_, path): &Self::Plan) -> Action {
        Action::EditFile {
            path: path.as_str(),
        }
    }

    fn checkpointed(&self, cx: &Cx<'_>, (args, path): &Self::Plan) -> bool {
        cx.rt
            .file_change_checkpointed(path, edited_size(cx, path, args))
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        (args, path): &Self::Plan,
        auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let size = edited_size(cx, path, args);
        let out = cx.rt.journaled_file_change(cx, auth, path, size, || {
            edit_file(cx.rt.workspace(), path, args)
        })?;
        cx.rt.label_written(cx.session, path, false)?;
        Ok(Executed::new(cx, out))
    }
}

/// The size the file will have at most after the edit, for the journal's cap: its size
/// now, grown by every replacement that can occur (capped at the file size limit).
fn edited_size(cx: &Cx<'_>, path: &WorkspacePath, a: &EditFileArgs) -> u64 {
    let now = std::fs::symlink_metadata(cx.rt.workspace().root().join(path.as_str()))
        .map(|m| m.len())
        .unwrap_or(0);
    let grows = a.new_string.len().saturating_sub(a.old_string.len()) as u64;
    let times = if a.replace_all {
        now / (a.old_string.len().max(1) as u64)
    } else {
        1
    };
    now.saturating_add(grows.saturating_mul(times)).min(MAX_LOAD)
}

fn edit_file(ws: &Workspace, path: &WorkspacePath, a: &EditFileArgs) -> Result<ToolOutput, String> {
    if a.old_string.is_empty() {
        return Err(format!(
            "edit_file on {path}: old_string is empty; give the exact text to replace"
        ));
    }
    let bytes = ws.read(path, MAX_LOAD).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| {
        format!("edit_file on {path}: the file is not valid UTF-8; use write_file to replace it")
    })?;
    let count = text.matches(a.old_string.as_str()).count();
    if count == 0 {
        return Err(format!(
            "edit_file on {path}: old_string was not found; read the file and copy the text exactly"
        ));
    }
    if count > 1 && !a.replace_all {
        return Err(format!(
            "edit_file on {path}: old_string occurs {count} times; include more surrounding text to make it unique, or set replace_all: true"
        ));
    }
    let new = if a.replace_all {
        text.replace(a.old_string.as_str(), &a.new_string)
    } else {
        text.replacen(a.old_string.as_str(), &a.new_string, 1)
    };
    ws.write(path, new.as_bytes()).map_err(|e| e.to_string())?;
    let n = if a.replace_all { count } else { 1 };
    Ok(ToolOutput::ok(format!(
        "edited {path}: {n} replacement{}",
        if n == 1 { "" } else { "s" }
    )))
}
