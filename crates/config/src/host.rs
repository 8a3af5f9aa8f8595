//! Host patterns of egress allowlists: `api.github.com`, `*.pypi.org`, `host:8443`.
//!
//! A pattern is parsed once at load; matching is exact on normalised (lower-case, no
//! trailing dot) names. `*.` covers strict subdomains only: `*.pypi.org` matches
//! `files.pypi.org` but not `pypi.org` and not `evilpypi.org`. Without a port a pattern
//! allows 80 and 443 only.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    wildcard: bool,
    /// Lower-case host without the `*.` prefix.
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern `{pattern}`: {reason}")]
pub struct HostPatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<HostPattern, HostPatternError> {
        let err = |reason| HostPatternError {
            pattern: raw.to_string(),
            reason,
        };
        let s = raw.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains("://") || s.contains('/') {
            return Err(err("give a host name, not a URL (e.g. `api.github.com`)"));
        }
        let (host_part, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port: u16 = p
                    .parse()
                    .map_err(|_| err("port must be a number 1-65535"))?;
                if port == 0 {
                    return Err(err("port must be a number 1-65535"));
                }
                (h, Some(port))
            }
            Some(_) => return Err(err("IPv6 literals are not supported in host patterns")),
            None => (s, None),
        };
        let (wildcard, host) = match host_part.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host_part),
        };
        if host == "*" || host_part == "*" {
            return Err(err(
                "`*` alone would allow every host; list the hosts instead",
            ));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.len() > 253 {
            return Err(err("host name must be 1-253 characters"));
        }
        if host.contains('*') {
            return Err(err("`*` is only allowed as a single leading `*.`"));
        }
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(err(
                    "each dot-separated label must be 1-63 letters, digits or `-`",
                ));
            }
        }
        if wildcard && !host.contains('.') {
            return Err(err(
                "a wildcard over a top-level domain allows far too much",
            ));
        }
        Ok(HostPattern {
            wildcard,
            host,
            port,
        })
    }

    /// Whether `host:port` is covered. `host` may carry a trailing dot or upper case.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        if !port_ok {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for HostPattern {
    type Err = HostPatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPattern::parse(s)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        HostPattern::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HostPattern {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HostPattern".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`host`, `*.domain` or either with `:port`",
            "pattern": "^(\\*\\.)?[A-Za-z0-9_.-]+(:[0-9]{1,5})?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard() {
        let p = HostPattern::parse("API.github.com").unwrap();
        assert!(p.matches("api.github.com", 443));
        assert!(p.matches("api.github.com.", 80));
        assert!(!p.matches("api.github.com", 8080));
        assert!(!p.matches("evil-api.github.com", 443));
        let w = HostPattern::parse("*.pypi.org").unwrap();
        assert!(w.matches("files.pypi.org", 443));
        assert!(w.matches("a.b.pypi.org", 443));
        assert!(!w.matches("pypi.org", 443));
        assert!(!w.matches("evilpypi.org", 443));
        let p = HostPattern::parse("files.pythonhosted.org:443").unwrap();
        assert!(p.matches("files.pythonhosted.org", 443));
        assert!(!p.matches("files.pythonhosted.org", 80));
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in [
            "",
            "*",
            "*.com",
            "http://x.org",
            "a..b",
            "a*.b.c",
            "x.org:0",
            "x.org:99999",
            "-a.org",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
