//! Names that reach the filesystem: a path relative to a tree's root, and a session id.
//! Both are parsed once, at the edge (including when a journal is read back), so no `..`,
//! absolute path or empty component can reach a syscall.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A path beneath a tree's root: `/`-separated, UTF-8, non-empty components that are not
/// `.` or `..`, no NUL, not absolute. It names an entry; it does not say the entry exists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(String);

impl RelPath {
    /// Parse `path`, saying what is wrong with it.
    pub fn new(path: &str) -> Result<RelPath, Error> {
        let bad = |reason: &'static str| Error::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("it is empty"));
        }
        if path.starts_with('/') {
            return Err(bad("it is absolute"));
        }
        if path.contains('\0') {
            return Err(bad("it contains a NUL byte"));
        }
        for c in path.split('/') {
            match c {
                "" => return Err(bad("it has an empty component (`//` or a trailing `/`)")),
                "." | ".." => return Err(bad("it has a `.` or `..` component")),
                _ => {}
            }
        }
        Ok(RelPath(path.to_owned()))
    }

    /// `self/name`, with `name` checked to be one component.
    pub fn join(&self, name: &str) -> Result<RelPath, Error> {
        if name.contains('/') {
            return Err(Error::InvalidPath {
                path: format!("{}/{name}", self.0),
                reason: "a name contains `/`",
            });
        }
        RelPath::new(&format!("{}/{name}", self.0))
    }

    /// A child of the root (`parent` `None`) or of `parent`.
    pub fn child(parent: Option<&RelPath>, name: &str) -> Result<RelPath, Error> {
        match parent {
            Some(p) => p.join(name),
            None if name.contains('/') => Err(Error::InvalidPath {
                path: name.to_owned(),
                reason: "a name contains `/`",
            }),
            None => RelPath::new(name),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory holding the entry, `.` for the root.
    pub(crate) fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or(".", |(p, _)| p)
    }

    /// The last component.
    pub(crate) fn name(&self) -> &str {
        self.0.rsplit_once('/').map_or(&self.0, |(_, n)| n)
    }

    /// How many components deep (1 for an entry of the root).
    pub(crate) fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// Whether `self` is `other` or lies beneath it.
    pub(crate) fn within(&self, other: &RelPath) -> bool {
        self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl TryFrom<String> for RelPath {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        RelPath::new(&s)
    }
}

impl From<RelPath> for String {
    fn from(p: RelPath) -> String {
        p.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session id as it names a journal file: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting
/// with `.` (so never `.`, `..` or a hidden name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn new(id: &str) -> Result<SessionId, Error> {
        let bad = |reason: &'static str| Error::InvalidSession {
            id: id.to_owned(),
            reason,
        };
        if id.is_empty() || id.len() > 128 {
            return Err(bad("it must be 1 to 128 characters long"));
        }
        if id.starts_with('.') {
            return Err(bad("it must not start with `.`"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(bad("only A-Z, a-z, 0-9, `.`, `_` and `-` are allowed"));
        }
        Ok(SessionId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tool call id as recorded in the journal: 1 to 256 characters, no control characters.
pub(crate) fn check_call(call: &str) -> Result<(), Error> {
    if call.is_empty() || call.len() > 256 || call.chars().any(char::is_control) {
        return Err(Error::InvalidCall {
            call: call.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_root_are_refused_with_the_reason() {
        for (p, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("..", "`..`"),
            ("a/../../b", "`..`"),
            ("./a", "`.`"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("a\0b", "NUL"),
        ] {
            let e = RelPath::new(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p:?}: {e}");
        }
        assert!(RelPath::new("a").unwrap().join("../b").is_err());
        assert!(RelPath::child(None, "x/y").is_err());
        // Names that merely look like dots are ordinary names.
        assert_eq!(RelPath::new("...").unwrap().as_str(), "...");
        assert_eq!(RelPath::new(".hidden/a").unwrap().name(), "a");
    }

    #[test]
    fn a_journal_path_is_checked_when_read_back() {
        let e = serde_json::from_str::<RelPath>("\"../../etc/shadow\"").unwrap_err();
        assert!(e.to_string().contains("`..`"), "{e}");
    }

    #[test]
    fn parent_name_depth_within() {
        let p = RelPath::new("a/b/c").unwrap();
        assert_eq!((p.parent(), p.name(), p.depth()), ("a/b", "c", 3));
        let top = RelPath::new("a").unwrap();
        assert_eq!((top.parent(), top.name(), top.depth()), (".", "a", 1));
        assert!(p.within(&top));
        assert!(!RelPath::new("ab").unwrap().within(&top));
    }

    #[test]
    fn session_ids_cannot_name_other_files() {
        for id in ["", "..", ".x", "a/b", "a b", "../s", &"x".repeat(129)] {
            assert!(SessionId::new(id).is_err(), "{id:?}");
        }
        assert!(SessionId::new("01JABCDEF-session_1.2").is_ok());
        assert!(check_call("call\n1").is_err());
        assert!(check_call("").is_err());
        assert!(check_call("call_1").is_ok());
    }
}
