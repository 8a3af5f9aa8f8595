//! Information-flow labels of what a session has in its context.
//!
//! A session's label is the join of the labels of everything it has read: integrity falls
//! to `untrusted` as soon as one untrusted item enters, confidentiality rises to the
//! highest level seen. Labels only ever get worse within a session; a new session starts
//! from [`Labels::trusted`].
//!
//! Guarantees: [`Labels::join`] is commutative on the levels, idempotent, and keeps the
//! source and secret lists deduplicated in first-seen order. Not guaranteed here: that
//! the caller labels every item it puts into context (the runtime does that).

use serde::{Deserialize, Serialize};

/// Whether content may carry instructions from someone other than the user.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Integrity {
    /// The user, the config, Cordon itself.
    #[default]
    Trusted,
    /// Anything fetched, read from outside the workspace, produced by a network-enabled
    /// command, written by a skill, or derived from those.
    Untrusted,
}

/// How far content may travel.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Confidentiality {
    #[default]
    Public,
    /// Workspace files matching `agents.NAME.labels.private`: may go to no host.
    Private,
    /// Anything that passed through secret redaction: may go only to hosts bound to the
    /// secrets in [`Labels::secrets`].
    Secret,
}

impl Integrity {
    pub fn as_str(self) -> &'static str {
        match self {
            Integrity::Trusted => "trusted",
            Integrity::Untrusted => "untrusted",
        }
    }
}

impl Confidentiality {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidentiality::Public => "public",
            Confidentiality::Private => "private",
            Confidentiality::Secret => "secret",
        }
    }
}

/// The entry of [`Labels::secrets`] that stands for private data joined with secret
/// data: bound to no host.
pub const PRIVATE_DATA: &str = "(private data)";

/// The label of a context item or of a whole session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    #[serde(default)]
    pub integrity: Integrity,
    #[serde(default)]
    pub confidentiality: Confidentiality,
    /// Where untrusted content came from (`http_fetch https://x/`, `exec (network)`,
    /// `memory:MEMORY.md#id`), deduplicated, in order.
    #[serde(default)]
    pub untrusted_sources: Vec<String>,
    /// Names of vault secrets whose values passed through redaction in this context
    /// (`*` for a credential of unknown owner). Secret-labelled data may go only to hosts
    /// bound to ALL of these.
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl Labels {
    /// The label of a fresh session: trusted and public.
    pub fn trusted() -> Labels {
        Labels::default()
    }

    /// The label of content from an untrusted `source` (e.g. `http_fetch https://x/`).
    pub fn untrusted(source: impl Into<String>) -> Labels {
        Labels {
            integrity: Integrity::Untrusted,
            untrusted_sources: vec![source.into()],
            ..Labels::default()
        }
    }

    /// Combine with the label of another item now in the same context.
    ///
    /// Private data may go to no host. When private and secret data meet, the result is
    /// `secret` and its secret list gains [`PRIVATE_DATA`], which is bound to no host:
    /// the mix may not go where the secret alone could.
    pub fn join(&mut self, other: &Labels) {
        self.integrity = self.integrity.max(other.integrity);
        let levels = [self.confidentiality, other.confidentiality];
        self.confidentiality = self.confidentiality.max(other.confidentiality);
        if self.confidentiality == Confidentiality::Secret
            && levels.contains(&Confidentiality::Private)
            && !self.secrets.iter().any(|s| s == PRIVATE_DATA)
        {
            self.secrets.push(PRIVATE_DATA.to_string());
        }
        for s in &other.untrusted_sources {
            if !self.untrusted_sources.contains(s) {
                self.untrusted_sources.push(s.clone());
            }
        }
        for s in &other.secrets {
            if !self.secrets.contains(s) {
                self.secrets.push(s.clone());
            }
        }
    }

    /// Whether untrusted content is in the context.
    pub fn is_tainted(&self) -> bool {
        self.integrity == Integrity::Untrusted
    }
}

impl std::fmt::Display for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.integrity.as_str(),
            self.confidentiality.as_str()
        )?;
        if !self.untrusted_sources.is_empty() {
            write!(f, " (untrusted: {})", self.untrusted_sources.join(", "))?;
        }
        if !self.secrets.is_empty() {
            write!(f, " (secrets: {})", self.secrets.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_takes_the_worst_and_dedups() {
        let mut a = Labels::trusted();
        assert!(!a.is_tainted());
        a.join(&Labels::untrusted("http_fetch https://x/"));
        a.join(&Labels::untrusted("http_fetch https://x/"));
        a.join(&Labels {
            confidentiality: Confidentiality::Secret,
            secrets: vec!["GH".into()],
            ..Labels::default()
        });
        a.join(&Labels {
            confidentiality: Confidentiality::Private,
            ..Labels::default()
        });
        assert!(a.is_tainted());
        assert_eq!(a.confidentiality, Confidentiality::Secret);
        assert_eq!(a.untrusted_sources, vec!["http_fetch https://x/"]);
        // Private data joined in: the mix is bound to no host.
        assert_eq!(a.secrets, vec!["GH", PRIVATE_DATA]);
        assert!(Integrity::Trusted < Integrity::Untrusted);
        assert!(Confidentiality::Public < Confidentiality::Private);
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            json.contains("\"untrusted\"") && json.contains("\"secret\""),
            "{json}"
        );
        let back: Labels = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let d: Labels = serde_json::from_str("{}").unwrap();
        assert_eq!(d, Labels::trusted());
    }

    #[test]
    fn private_joined_with_secret_stays_bound_to_no_host() {
        let mut a = Labels {
            confidentiality: Confidentiality::Private,
            ..Labels::default()
        };
        let b = Labels {
            confidentiality: Confidentiality::Secret,
            secrets: vec!["GH".into()],
            ..Labels::default()
        };
        a.join(&b);
        assert_eq!(a.confidentiality, Confidentiality::Secret);
        assert!(a.secrets.contains(&PRIVATE_DATA.to_string()), "{a:?}");
        // And the other way round.
        let mut c = b.clone();
        c.join(&Labels {
            confidentiality: Confidentiality::Private,
            ..Labels::default()
        });
        assert!(c.secrets.contains(&PRIVATE_DATA.to_string()), "{c:?}");
        // Secret with secret: no marker.
        let mut d = b.clone();
        d.join(&b);
        assert_eq!(d.secrets, vec!["GH".to_string()]);
    }
}
