//! Workspace file tools: `read_file`, `write_file`, `edit_file`, `list_dir`, `search`.
//!
//! Every path goes through [`Workspace`], which keeps all access beneath the root; this
//! module only formats results and enforces output bounds.

use std::fmt::Write as _;

use super::{
    EditFileArgs, ListDirArgs, ReadFileArgs, SearchArgs, ToolOutput, WriteFileArgs, truncate_utf8,
};
use crate::workspace::{WalkLimits, Workspace, WorkspaceError, WorkspacePath};

/// Largest file `read_file` and `edit_file` load.
const MAX_LOAD: u64 = 16 << 20;
/// Most text `read_file` returns.
const MAX_READ_OUTPUT: usize = 256 << 10;
/// Most entries `list_dir` returns.
const MAX_LIST: usize = 1000;
/// Compile a `search` pattern (bounded in size), or say why it is invalid.
pub(crate) fn check_pattern(pattern: &str) -> Result<regex::Regex, String> {
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

pub(crate) fn read_file(
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

pub(crate) fn write_file(
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

pub(crate) fn edit_file(
    ws: &Workspace,
    path: &WorkspacePath,
    a: &EditFileArgs,
) -> Result<ToolOutput, String> {
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

pub(crate) fn list_dir(
    ws: &Workspace,
    path: &WorkspacePath,
    _a: &ListDirArgs,
) -> Result<ToolOutput, WorkspaceError> {
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

pub(crate) fn search(
    ws: &Workspace,
    path: &WorkspacePath,
    a: &SearchArgs,
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
