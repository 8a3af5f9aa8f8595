//! State that exists only after use: the audit log and the vault's secret bindings.
//!
//! Pure: the caller verifies the log (`audit::verify`) and lists the vault
//! (`secrets::Vault::list`); these functions turn what it found into findings.

use secrets::SecretInfo;

use crate::{Finding, Severity};

/// A secret bound to more hosts than this is reusable in too many places.
pub const SECRET_MAX_HOSTS: usize = 3;

/// `audit.verify_failed` when the audit log did not verify (`error` says where).
pub fn audit_log_damaged(error: impl Into<String>) -> Finding {
    Finding::new(
        "audit.verify_failed",
        Severity::Critical,
        "the audit log does not verify: records were changed, removed or reordered",
        error,
        "keep the damaged log for investigation (copy it elsewhere); `cordon log verify` \
         names the first bad record",
    )
}

/// `secrets.bound_too_widely`: a secret bound to more than [`SECRET_MAX_HOSTS`] hosts or
/// to any wildcard pattern.
pub fn secret_bindings(secrets: &[SecretInfo]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in secrets {
        let wild = s.hosts.iter().any(|h| h.is_wildcard());
        if s.hosts.len() > SECRET_MAX_HOSTS || wild {
            let hosts: Vec<String> = s.hosts.iter().map(ToString::to_string).collect();
            out.push(Finding::new(
                "secrets.bound_too_widely",
                Severity::Warn,
                format!("secret {} may be sent to many hosts", s.name),
                format!("bound to {}", hosts.join(", ")),
                format!(
                    "bind it to the one API host that needs it: `cordon secrets set {} --hosts \
                     HOST`",
                    s.name
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::HostPattern;

    fn secret(name: &str, hosts: &[&str]) -> SecretInfo {
        SecretInfo {
            name: name.into(),
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            created: std::time::SystemTime::UNIX_EPOCH,
            last_used: None,
        }
    }

    #[test]
    fn a_secret_bound_to_a_wildcard_or_many_hosts_is_flagged() {
        let found = secret_bindings(&[
            secret("ONE", &["api.github.com"]),
            secret("WILD", &["*.example.com"]),
            secret("MANY", &["a.test", "b.test", "c.test", "d.test"]),
        ]);
        let names: Vec<&str> = found.iter().map(|f| f.title.as_str()).collect();
        assert_eq!(
            names,
            [
                "secret WILD may be sent to many hosts",
                "secret MANY may be sent to many hosts"
            ]
        );
    }
}
