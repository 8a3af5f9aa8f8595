//! `write_file`: create or replace a file beneath the workspace root (parents are
//! created), at most [`MAX_LOAD`] bytes. The path is resolved by [`crate::Workspace`]
//! before the guard decides `write_file: PATH`.

use async_trait::async_trait;
use guard::Action;
use schemars::JsonSchema;
use serde::Deserialize;

use super::read_file::MAX_LOAD;
use super::{Executed, Tool, ToolOutput};
use crate::authorise::Authorization;
use crate::pipeline::{Cx, Failure};
use crate::workspace::{Workspace, WorkspaceError, WorkspacePath};

pub(crate) struct WriteFile;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteFileArgs {
    /// File path relative to the workspace
    pub path: String,
    /// The complete new content
    pub content: String,
}

#[async_trait]
impl Tool for WriteFile {
    type Args = WriteFileArgs;
    type Plan = (WriteFileArgs, WorkspacePath);

    fn name(&self) -> &str {
        "write_file"
    }

    fn description(&self) -> &str {
        "Create or replace a file in the workspace with the given content. Missing parent directories are created."
    }

    fn canonicalise(&self, cx: &Cx<'_>, args: WriteFileArgs) -> Result<Self::Plan, Failure> {
        let path = cx.rt.resolve(Some(&args.path))?;
        Ok((args, path))
    }

    fn action(&self, _cx: &Cx<'_>, (_, path): &Self::Plan) -> Action {
        Action::WriteFile {
            path: path.as_str(),
        }
    }

    fn checkpointed(&self, cx: &Cx<'_>, (args, path): &Self::Plan) -> bool {
        cx.rt
            .file_change_checkpointed(path, args.content.len() as u64)
    }

    async fn execute(
        &self,
        cx: &Cx<'_>,
        (args, path): &Self::Plan,
        auth: &Authorization,
    ) -> Result<Executed, Failure> {
        let out = cx
            .rt
            .journaled_file_change(cx, auth, path, args.content.len() as u64, || {
                write_file(cx.rt.workspace(), path, args).map_err(|e| e.to_string())
            })?;
        cx.rt.label_written(cx.session, path, true)?;
        Ok(Executed::new(cx, out))
    }
}

fn write_file(
    ws: &Workspace,
    path: &WorkspacePath,
    a: &WriteFileArgs,
) -> Result<ToolOutput, WorkspaceError> {
    if a.content.len() as u64 > MAX_LOAD {
        return Err(WorkspaceError::TooLarge {
            path: path.as_str(),
            size: a.content.len() as u64,
            limit: MAX_LOAD,
        });
    }
    ws.write(path, a.content.as_bytes())?;
    Ok(ToolOutput::ok(format!(
        "wrote {} bytes to {path}",
        a.content.len()
    )))
}
