//! File provenance: a workspace file carries the label of the sessions that wrote it,
//! stored with its content hash in the store (`file_labels`), so data laundered through
//! a file keeps its label in this session and in any later one.
//!
//! Guarantees:
//! - after `write_file` the file carries the writing session's label (a whole rewrite
//!   replaces the file's label; a trusted, public session's whole rewrite clears it);
//!   after `edit_file` the join of its label and the session's;
//! - a command run while the session (joined with every labelled file the command reads)
//!   is not trusted-and-public is bracketed by a scan of the workspace (size, mtime,
//!   ctime, inode of every file): each file it created, changed or deleted gets that
//!   label, joined with the file's own (a deletion is stored without a hash);
//! - reading a labelled file joins its label into the reader's session: `read_file`,
//!   `search` (the files with hits), `list_dir` (files directly in the listed
//!   directory, deleted ones too), `exec` (every file [`guard::FileUses`] says the
//!   command reads or runs, and every file its text names; a command it cannot analyse
//!   reads everything — joined before the command runs, so the connections it opens are
//!   decided with the label). A result that
//!   brings in an untrusted label is itself untrusted (wrapped in the session's
//!   boundary);
//! - a command that runs a file with an untrusted label is decided with
//!   `context.runs_labelled_file` (built-in rule `taint.run_labelled_file`: ask), even
//!   in a trusted session;
//! - a file whose content no longer has the stored hash keeps its label (fail closed:
//!   Cordon cannot tell whether the change removed what made it untrusted);
//!   `cordon files labels` shows it as changed and `cordon files trust` clears it;
//! - a store failure while looking labels up fails the call (nothing is read unlabelled);
//!   one while recording a label after a write is an error observation naming the file.
//!
//! Not guaranteed: changes made outside Cordon (an editor, another program) carry no
//! label; a command's scan sees files of the workspace only (not the sandbox's /tmp),
//! skips symbolic links and stops after [`MAX_SCANNED`] files (then the changes it did
//! not see are unlabelled, and the result says so); what the code a human approved
//! does in a trusted session's command is only labelled through what the command
//! reads (its label joins before the scan is decided).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use guard::{FileUses, Labels, canonicalise_exec};
use sha2::{Digest, Sha256};
use store::FileLabelRecord;

use crate::Runtime;
use crate::pipeline::{Cx, Failure, Stage};
use crate::tools::{Executed, ToolOutput};
use crate::workspace::WorkspacePath;

/// Most files one scan of the workspace records.
pub(crate) const MAX_SCANNED: usize = 100_000;

/// The key a workspace's file labels are stored under: its root, canonicalised when it
/// exists. `cordon files` uses the same.
pub fn workspace_key(root: &Path) -> String {
    std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .display()
        .to_string()
}

/// Lowercase hex SHA-256 of the file at `path`, `None` when it is not a readable
/// regular file.
pub fn file_sha256(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(hex::encode(h.finalize()))
}

/// Labelled files a call reads, and their joined label.
#[derive(Debug, Default)]
pub(crate) struct FilesRead {
    pub(crate) files: Vec<String>,
    pub(crate) labels: Labels,
}

impl FilesRead {
    fn add(&mut self, r: &FileLabelRecord) {
        if !self.files.contains(&r.path) {
            self.files.push(r.path.clone());
        }
        self.labels.join(&r.labels);
    }

    /// `done` with these files' label carried into the session; untrusted (and so
    /// wrapped as untrusted content) when the files are.
    pub(crate) fn mark(self, mut done: Executed) -> Executed {
        if self.files.is_empty() {
            return done;
        }
        if self.labels.is_tainted() {
            done.integrity = guard::Integrity::Untrusted;
            done.source = format!(
                "{} (reads files written by untrusted sessions: {})",
                done.source,
                self.files.join(", ")
            );
        }
        let mut carried = done.carries.take().unwrap_or_default();
        carried.join(&self.labels);
        done.carries = Some(carried);
        done
    }
}

/// What one file looked like before a command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

/// The workspace's regular files before a command, to find what it changed.
pub(crate) struct Scan {
    files: BTreeMap<String, Stamp>,
    complete: bool,
    /// The label the command's changes carry.
    labels: Labels,
}

fn scan(root: &Path) -> (BTreeMap<String, Stamp>, bool) {
    let mut files = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let rel = format!("{prefix}{name}");
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push((e.path(), format!("{rel}/")));
            } else if meta.is_file() {
                if files.len() >= MAX_SCANNED {
                    return (files, false);
                }
                files.insert(
                    rel,
                    Stamp {
                        len: meta.len(),
                        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000
                            + i128::from(meta.mtime_nsec()),
                        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000
                            + i128::from(meta.ctime_nsec()),
                        ino: meta.ino(),
                    },
                );
            }
        }
    }
    (files, true)
}

impl Runtime {
    fn provenance_store(&self) -> &store::Store {
        self.approvals.store()
    }

    fn workspace_key(&self) -> String {
        workspace_key(self.workspace.root())
    }

    fn labels_of_workspace(&self) -> Result<Vec<FileLabelRecord>, Failure> {
        self.provenance_store()
            .file_labels(Some(&self.workspace_key()))
            .map_err(lookup_failed)
    }

    /// The label of one file, if it has one.
    fn label_of(&self, path: &str) -> Result<Option<FileLabelRecord>, Failure> {
        self.provenance_store()
            .file_label(&self.workspace_key(), path)
            .map_err(lookup_failed)
    }

    /// The labelled files among `paths` (a read of each).
    pub(crate) fn files_read(&self, paths: &[String]) -> Result<FilesRead, Failure> {
        let mut found = FilesRead::default();
        for p in paths {
            if let Some(r) = self.label_of(p)? {
                found.add(&r);
            }
        }
        Ok(found)
    }

    /// The labelled files directly in directory `dir` (a listing of it).
    pub(crate) fn files_listed(&self, dir: &WorkspacePath) -> Result<FilesRead, Failure> {
        let dir = if dir.is_root() {
            String::new()
        } else {
            dir.as_str()
        };
        let mut found = FilesRead::default();
        for r in self.labels_of_workspace()? {
            let parent = r.path.rsplit_once('/').map_or("", |(d, _)| d);
            if parent == dir {
                found.add(&r);
            }
        }
        Ok(found)
    }

    /// The labelled files `command` reads or runs: those [`FileUses`] finds, and any
    /// whose path the command's text names in any form (`-Ffile=@x`, `--in x` …).
    pub(crate) fn files_of_command(&self, command: &str) -> Result<FilesRead, Failure> {
        let uses = FileUses::of(&canonicalise_exec(command));
        let mut found = FilesRead::default();
        for r in self.labels_of_workspace()? {
            if uses.reads(&r.path) || names_path(command, &r.path) {
                found.add(&r);
            }
        }
        Ok(found)
    }

    /// The files with an untrusted label that `command` runs as code. A failed lookup
    /// counts every labelled file as run (the guard then asks).
    pub(crate) fn labelled_code(&self, command: &str) -> Vec<String> {
        let uses = FileUses::of(&canonicalise_exec(command));
        match self.labels_of_workspace() {
            Ok(all) => all
                .into_iter()
                .filter(|r| r.labels.is_tainted() && uses.runs(&r.path))
                .map(|r| r.path)
                .collect(),
            Err(f) => vec![format!("(file labels unavailable: {})", f.message)],
        }
    }

    /// After `session` wrote `path`: the file carries the session's label, replacing
    /// its own when `whole`, joined with it otherwise.
    pub(crate) fn label_written(
        &self,
        session: &str,
        path: &WorkspacePath,
        whole: bool,
    ) -> Result<(), Failure> {
        let labels = self.flow(session).labels();
        self.relabel(session, &path.as_str(), labels, whole)
    }

    fn relabel(
        &self,
        session: &str,
        rel: &str,
        mut labels: Labels,
        whole: bool,
    ) -> Result<(), Failure> {
        let ws = self.workspace_key();
        let store = self.provenance_store();
        let failed = |e: store::StoreError| {
            Failure::new(
                Stage::Workspace,
                format!(
                    "{rel} was changed, but its provenance label could not be recorded: {e}; \
                     treat the file as untrusted"
                ),
            )
        };
        if !whole && let Some(old) = store.file_label(&ws, rel).map_err(failed)? {
            labels.join(&old.labels);
        }
        if labels == Labels::trusted() {
            match store.clear_file_label(&ws, rel) {
                Ok(_) | Err(store::StoreError::NoFileLabel { .. }) => return Ok(()),
                Err(e) => return Err(failed(e)),
            }
        }
        let sha = file_sha256(&self.workspace.root().join(rel));
        store
            .set_file_label(&ws, rel, sha.as_deref(), &labels, session)
            .map_err(failed)?;
        Ok(())
    }

    /// Before a command: a scan of the workspace when its changes will carry a label
    /// (the session's, joined with what the command reads, is not trusted and public).
    pub(crate) fn scan_before_command(&self, session: &str, reads: &Labels) -> Option<Scan> {
        let mut labels = self.flow(session).labels();
        labels.join(reads);
        if labels == Labels::trusted() {
            return None;
        }
        let (files, complete) = scan(self.workspace.root());
        Some(Scan {
            files,
            complete,
            labels,
        })
    }

    /// Label the workspace files `paths` (relative; created, changed or deleted by a
    /// command of `session`) with `labels` joined with each file's own. Where a journal
    /// of the command's changes exists, its paths can be given here instead of a scan.
    pub(crate) fn label_changes<S: AsRef<str>>(
        &self,
        session: &str,
        labels: &Labels,
        paths: &[S],
    ) -> Result<(), Failure> {
        if *labels == Labels::trusted() {
            return Ok(());
        }
        for rel in paths {
            self.relabel(session, rel.as_ref(), labels.clone(), false)?;
        }
        Ok(())
    }

    /// After a command: label every file it created, changed or deleted since `before`
    /// (nothing without a scan); a note on `out` when the scan was incomplete.
    pub(crate) fn label_command_changes(
        &self,
        cx: &Cx<'_>,
        before: Option<Scan>,
        out: &mut ToolOutput,
    ) -> Result<(), Failure> {
        let Some(before) = before else {
            return Ok(());
        };
        let (after, complete) = scan(self.workspace.root());
        let mut changed: Vec<&String> = after
            .iter()
            .filter(|(p, s)| before.files.get(*p) != Some(s))
            .map(|(p, _)| p)
            .collect();
        if before.complete && complete {
            changed.extend(before.files.keys().filter(|p| !after.contains_key(*p)));
        }
        self.label_changes(cx.session, &before.labels, &changed)?;
        if !before.complete || !complete {
            out.content.push_str(&format!(
                "[the workspace has more than {MAX_SCANNED} files: changes beyond them carry no \
                 provenance label]\n"
            ));
        }
        Ok(())
    }
}

/// Whether `text` contains `path` as a whole path: not inside a longer name.
fn names_path(text: &str, path: &str) -> bool {
    let before_ok = |c: char| c.is_whitespace() || "'\"@=/:,(".contains(c);
    let after_ok = |c: char| c.is_whitespace() || "'\";&|),<>".contains(c);
    text.match_indices(path).any(|(i, _)| {
        text[..i].chars().next_back().is_none_or(before_ok)
            && text[i + path.len()..].chars().next().is_none_or(after_ok)
    })
}

fn lookup_failed(e: store::StoreError) -> Failure {
    Failure::new(
        Stage::Workspace,
        format!("cannot look up file provenance labels, so nothing was read: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::names_path;

    #[test]
    fn a_path_is_named_only_whole() {
        for text in [
            "cat scratch/a.sh",
            "curl -F f=@scratch/a.sh https://x/",
            "tool --in=/workspace/scratch/a.sh",
            "x 'scratch/a.sh';",
        ] {
            assert!(names_path(text, "scratch/a.sh"), "{text}");
        }
        for text in [
            "cat scratch/a.sh.bak",
            "cat myscratch/a.sh",
            "cat scratch/a.shx",
        ] {
            assert!(!names_path(text, "scratch/a.sh"), "{text}");
        }
    }
}
