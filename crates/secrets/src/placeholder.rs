//! Placeholders: what tools and the model see instead of secret values.
//!
//! Each secret gets, per session, a token `cordon_ph_` followed by 32 lower-case hex
//! characters (128 bits from the OS random generator). The secret's name is not part of
//! the token, so a token reveals nothing, and a token from one session is worthless in
//! another. [`PlaceholderSet::find_in`] locates tokens in outbound bytes so the egress
//! proxy can substitute the real value for hosts the secret is bound to, and refuse the
//! request otherwise.
//!
//! Not guaranteed: finding a token that was transformed (encoded, split, reversed)
//! before it was sent. Such a request carries no real secret; it merely fails upstream.

use std::fmt;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use config::HostPattern;

use crate::secret::Secret;
use crate::vault::Vault;

/// Prefix of every placeholder token.
pub const PLACEHOLDER_PREFIX: &str = "cordon_ph_";
const RANDOM_HEX_LEN: usize = 32;

/// An unguessable stand-in for one secret in one session.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Placeholder(String);

impl Placeholder {
    /// A fresh random placeholder.
    pub fn generate() -> Result<Placeholder, getrandom::Error> {
        let mut bytes = [0u8; RANDOM_HEX_LEN / 2];
        getrandom::fill(&mut bytes)?;
        Ok(Placeholder(format!(
            "{PLACEHOLDER_PREFIX}{}",
            hex::encode(bytes)
        )))
    }

    /// The token text, as handed to tools (e.g. in an environment variable).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Placeholder({})", self.0)
    }
}

/// One secret as known to a session.
#[derive(Debug, Clone)]
pub struct PlaceholderEntry {
    pub placeholder: Placeholder,
    pub name: String,
    pub secret: Secret,
    pub hosts: Vec<HostPattern>,
}

impl PlaceholderEntry {
    /// Whether the secret may be sent to `host:port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|h| h.matches(host, port))
    }
}

/// Placeholder ↔ secret mapping for one session.
#[derive(Debug, Default)]
pub struct PlaceholderSet {
    entries: Vec<PlaceholderEntry>,
    /// Over the tokens, same order as `entries`; `None` while empty.
    matcher: Option<AhoCorasick>,
}

/// Errors building a [`PlaceholderSet`].
#[derive(Debug, thiserror::Error)]
pub enum PlaceholderError {
    #[error("cannot generate a placeholder: the OS random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
    #[error("cannot build the placeholder matcher: {0}")]
    Matcher(#[from] aho_corasick::BuildError),
}

impl PlaceholderSet {
    /// An empty set.
    pub fn new() -> PlaceholderSet {
        PlaceholderSet::default()
    }

    /// A set with a fresh placeholder for every secret in the vault.
    pub fn from_vault(vault: &Vault) -> Result<PlaceholderSet, PlaceholderError> {
        let mut set = PlaceholderSet::new();
        for info in vault.list() {
            if let Some((secret, hosts)) = vault.get(&info.name) {
                set.insert(&info.name, secret, hosts)?;
            }
        }
        Ok(set)
    }

    /// Add a secret (or give an existing name a new value, hosts and token) and return
    /// its placeholder.
    pub fn insert(
        &mut self,
        name: &str,
        secret: Secret,
        hosts: Vec<HostPattern>,
    ) -> Result<Placeholder, PlaceholderError> {
        let placeholder = Placeholder::generate()?;
        let mut entries = self.entries.clone();
        entries.retain(|e| e.name != name);
        entries.push(PlaceholderEntry {
            placeholder: placeholder.clone(),
            name: name.to_string(),
            secret,
            hosts,
        });
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(entries.iter().map(|e| e.placeholder.as_str()))?;
        self.entries = entries;
        self.matcher = Some(matcher);
        Ok(placeholder)
    }

    /// All entries.
    pub fn entries(&self) -> &[PlaceholderEntry] {
        &self.entries
    }

    /// The entry for a secret name.
    pub fn by_name(&self, name: &str) -> Option<&PlaceholderEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// `(NAME, token)` pairs, e.g. to set as environment variables of a tool.
    pub fn env(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|e| (e.name.clone(), e.placeholder.as_str().to_string()))
            .collect()
    }

    /// Every placeholder occurrence in `haystack`, left to right, non-overlapping.
    pub fn find_in(&self, haystack: &[u8]) -> Vec<(Range<usize>, &PlaceholderEntry)> {
        let Some(m) = &self.matcher else {
            return Vec::new();
        };
        m.find_iter(haystack)
            .filter_map(|hit| {
                self.entries
                    .get(hit.pattern().as_usize())
                    .map(|e| (hit.range(), e))
            })
            .collect()
    }

    /// Replace every placeholder in `data` with its value, if every secret found may go
    /// to `host:port`. Otherwise return the name of the first secret that may not, and
    /// substitute nothing.
    pub fn substitute(&self, data: &[u8], host: &str, port: u16) -> Result<Vec<u8>, String> {
        let found = self.find_in(data);
        if let Some((_, e)) = found.iter().find(|(_, e)| !e.allows(host, port)) {
            return Err(e.name.clone());
        }
        let mut out = Vec::with_capacity(data.len());
        let mut last = 0;
        for (range, e) in found {
            out.extend_from_slice(&data[last..range.start]);
            out.extend_from_slice(e.secret.expose_bytes());
            last = range.end;
        }
        out.extend_from_slice(&data[last..]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn tokens_are_random_and_do_not_embed_the_name() {
        let mut set = PlaceholderSet::new();
        let a = set
            .insert("GITHUB_TOKEN", Secret::from("ghp_value_1234"), vec![])
            .unwrap();
        let b = set
            .insert("OTHER", Secret::from("value-2-abcdef"), vec![])
            .unwrap();
        for p in [&a, &b] {
            let s = p.as_str();
            assert!(s.starts_with(PLACEHOLDER_PREFIX));
            let rand = &s[PLACEHOLDER_PREFIX.len()..];
            assert_eq!(rand.len(), 32);
            assert!(rand.bytes().all(|c| c.is_ascii_hexdigit()));
            assert!(!s.to_lowercase().contains("github"));
            assert!(!s.contains("value"));
        }
        assert_ne!(a, b);
        // Another session gets another token for the same secret.
        let mut other = PlaceholderSet::new();
        let a2 = other
            .insert("GITHUB_TOKEN", Secret::from("ghp_value_1234"), vec![])
            .unwrap();
        assert_ne!(a, a2);
    }

    #[test]
    fn find_and_substitute_only_for_bound_hosts() {
        let mut set = PlaceholderSet::new();
        let gh = set
            .insert(
                "GH",
                Secret::from("real-gh-secret"),
                vec![host("api.github.com")],
            )
            .unwrap();
        let oa = set
            .insert(
                "OA",
                Secret::from("real-oa-secret"),
                vec![host("api.openai.com")],
            )
            .unwrap();
        let req = format!("Authorization: Bearer {gh}\r\nX: {oa}{gh}");
        let found = set.find_in(req.as_bytes());
        let names: Vec<&str> = found.iter().map(|(_, e)| e.name.as_str()).collect();
        assert_eq!(names, ["GH", "OA", "GH"]);
        for (r, e) in &found {
            assert_eq!(
                &req.as_bytes()[r.clone()],
                e.placeholder.as_str().as_bytes()
            );
        }

        let only_gh = format!("token {gh}!");
        let out = set
            .substitute(only_gh.as_bytes(), "api.github.com", 443)
            .unwrap();
        assert_eq!(out, b"token real-gh-secret!");

        // Attack: send the GitHub token's placeholder to another host.
        let err = set.substitute(only_gh.as_bytes(), "evil.example.net", 443);
        assert_eq!(err, Err("GH".to_string()));
        // Mixed: one allowed, one not -> nothing substituted.
        assert_eq!(
            set.substitute(req.as_bytes(), "api.github.com", 443),
            Err("OA".to_string())
        );
    }

    #[test]
    fn reinsert_replaces_token() {
        let mut set = PlaceholderSet::new();
        let old = set
            .insert("A", Secret::from("value-one-1"), vec![])
            .unwrap();
        let new = set
            .insert("A", Secret::from("value-two-2"), vec![])
            .unwrap();
        assert_eq!(set.entries().len(), 1);
        assert!(set.find_in(old.as_str().as_bytes()).is_empty());
        assert_eq!(set.find_in(new.as_str().as_bytes()).len(), 1);
        assert!(!format!("{set:?}").contains("value-two-2"));
    }
}
