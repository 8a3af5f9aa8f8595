//! What a session changed: the net change of each path over its journal, and a rendering
//! of it for a human (a unified diff for text, one line for anything else).

use std::collections::BTreeMap;

use similar::TextDiff;

use crate::{Checkpoints, Entry, Error, RelPath, SessionId, State};

/// One path's net change over some entries: its first before, its last after, and the
/// calls that changed it (in order, once each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetChange {
    pub path: RelPath,
    pub before: State,
    pub after: State,
    pub calls: Vec<String>,
}

/// Fold `entries` into one net change per path, sorted by path, with every path that
/// changed, including those back to their first state.
pub(crate) fn fold<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<NetChange> {
    let mut net: BTreeMap<RelPath, NetChange> = BTreeMap::new();
    for e in entries {
        let n = net.entry(e.path.clone()).or_insert_with(|| NetChange {
            path: e.path.clone(),
            before: e.before.clone(),
            after: e.after.clone(),
            calls: Vec::new(),
        });
        n.after = e.after.clone();
        if !n.calls.contains(&e.call) {
            n.calls.push(e.call.clone());
        }
    }
    net.into_values().collect()
}

impl Checkpoints {
    /// Each path `session` changed, with its net change; paths back where they started
    /// (e.g. after an undo) are left out.
    pub fn changes(&self, session: &SessionId) -> Result<Vec<NetChange>, Error> {
        let entries = self.journal(session)?;
        Ok(fold(&entries)
            .into_iter()
            .filter(|n| n.before != n.after)
            .collect())
    }

    /// `change` for a human: a unified diff when both sides are UTF-8 text (or absent),
    /// otherwise one line saying what happened.
    pub fn render(&self, change: &NetChange) -> Result<String, Error> {
        let path = &change.path;
        let text = |s: &State| -> Result<Option<Option<String>>, Error> {
            Ok(match s {
                State::Absent => Some(None),
                State::File { sha256, .. } => {
                    let bytes = self.blob(sha256)?;
                    match String::from_utf8(bytes) {
                        Ok(t) if !t.contains('\0') => Some(Some(t)),
                        _ => None,
                    }
                }
                _ => None,
            })
        };
        let calls = change.calls.join(", ");
        if let (Some(old), Some(new)) = (text(&change.before)?, text(&change.after)?)
            && (old.is_some() || new.is_some())
        {
            let (a, b) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
            let header_a = if old.is_some() {
                format!("a/{path}")
            } else {
                "/dev/null".into()
            };
            let header_b = if new.is_some() {
                format!("b/{path}")
            } else {
                "/dev/null".into()
            };
            let mut out = format!(
                "# {path}: {} (calls: {calls})\n",
                summary(&change.before, &change.after)
            );
            let mode = mode_change(&change.before, &change.after);
            if !mode.is_empty() {
                out.push_str(&format!("# {mode}\n"));
            }
            out.push_str(
                &TextDiff::from_lines(a, b)
                    .unified_diff()
                    .context_radius(3)
                    .header(&header_a, &header_b)
                    .to_string(),
            );
            return Ok(out);
        }
        Ok(format!(
            "{path}: {} (calls: {calls})\n",
            summary(&change.before, &change.after)
        ))
    }
}

fn mode_change(before: &State, after: &State) -> String {
    match (before, after) {
        (State::File { mode: a, .. }, State::File { mode: b, .. }) if a != b => {
            format!("mode {a:04o} -> {b:04o}")
        }
        _ => String::new(),
    }
}

/// One line: `created file (12 bytes, mode 0644)`, `deleted directory (mode 0755)`,
/// `binary file changed: 10 -> 12 bytes`, ...
fn summary(before: &State, after: &State) -> String {
    match (before, after) {
        (State::Absent, a) => format!("created {}", a.describe()),
        (b, State::Absent) => format!("deleted {}", b.describe()),
        (
            State::File {
                size: a,
                mode: ma,
                sha256: ha,
            },
            State::File {
                size: b,
                mode: mb,
                sha256: hb,
            },
        ) => {
            let mut parts = Vec::new();
            if ha != hb {
                parts.push(format!(
                    "content {a} -> {b} bytes (sha256 {} -> {})",
                    &ha[..12],
                    &hb[..12]
                ));
            }
            if ma != mb {
                parts.push(format!("mode {ma:04o} -> {mb:04o}"));
            }
            format!("file changed: {}", parts.join(", "))
        }
        (State::Dir { mode: a }, State::Dir { mode: b }) => {
            format!("directory mode {a:04o} -> {b:04o}")
        }
        (b, a) => format!("{} replaced by {}", b.describe(), a.describe()),
    }
}
