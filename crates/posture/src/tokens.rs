//! Gateway tokens worth replacing: old ones, and ones that live too long. A leaked token
//! stays useful for as long as it lives.
//!
//! Pure: the caller lists the tokens (`store::Store::list_tokens`) and, for `--fix`,
//! rotates what [`weak_tokens`] returns.

use store::TokenRecord;

use crate::{Finding, Severity};

/// Tokens older than this, or living longer than this, are worth rotating.
pub const TOKEN_OLD_DAYS: i64 = 90;
/// Lifetime of a token `cordon audit --fix` creates in place of a weak one.
pub const ROTATED_TTL_DAYS: i64 = 30;

/// A usable gateway token worth replacing, and why.
pub struct WeakToken {
    pub record: TokenRecord,
    pub findings: Vec<Finding>,
}

/// Tokens created more than [`TOKEN_OLD_DAYS`] before `now` (`tokens.old`) or living
/// longer than that (`tokens.long_lived`). A token whose timestamps do not parse is
/// returned with an `audit.not_checked` finding (its age is unknown, so replacing it is
/// the safe side).
pub fn weak_tokens(tokens: Vec<TokenRecord>, now: time::OffsetDateTime) -> Vec<WeakToken> {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let parse = |ts: &str| {
        time::PrimitiveDateTime::parse(ts, fmt)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    };
    let limit = time::Duration::days(TOKEN_OLD_DAYS);
    let remedy = |id: &str| {
        format!(
            "`cordon audit --fix` replaces it with a {ROTATED_TTL_DAYS}-day token of the same \
             name and scope and revokes it (or create one with --ttl 30d and `cordon token \
             revoke {id}`)"
        )
    };
    let mut out = Vec::new();
    for t in tokens {
        let (Some(created), Some(expires)) = (parse(&t.created_at), parse(&t.expires_at)) else {
            let why = format!(
                "token {} has timestamps that do not parse: created {:?}, expires {:?}",
                t.id, t.created_at, t.expires_at
            );
            out.push(WeakToken {
                findings: vec![Finding::not_checked(
                    format!("token `{}` ({})'s age", t.name, t.scope),
                    why,
                    remedy(&t.id),
                )],
                record: t,
            });
            continue;
        };
        let mut findings = Vec::new();
        let age = (now - created).whole_days();
        if age > TOKEN_OLD_DAYS {
            findings.push(Finding::new(
                "tokens.old",
                Severity::Warn,
                format!("token `{}` ({}) is {age} days old", t.name, t.scope),
                format!("token {} created {}", t.id, t.created_at),
                remedy(&t.id),
            ));
        }
        if expires - created > limit {
            findings.push(Finding::new(
                "tokens.long_lived",
                Severity::Warn,
                format!(
                    "token `{}` ({}) lives {} days: if it leaks, it keeps working that long",
                    t.name,
                    t.scope,
                    (expires - created).whole_days()
                ),
                format!(
                    "token {} created {}, expires {}",
                    t.id, t.created_at, t.expires_at
                ),
                remedy(&t.id),
            ));
        }
        if !findings.is_empty() {
            out.push(WeakToken {
                record: t,
                findings,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, created: &str, expires: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            name: id.into(),
            scope: store::TokenScope::Admin,
            created_at: created.into(),
            expires_at: expires.into(),
            revoked_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn old_and_long_lived_tokens_are_weak_and_a_fresh_short_one_is_not() {
        let now = time::macros::datetime!(2026-06-01 00:00 UTC);
        let weak = weak_tokens(
            vec![
                token(
                    "old",
                    "2026-01-01T00:00:00.000000Z",
                    "2026-03-01T00:00:00.000000Z",
                ),
                token(
                    "long",
                    "2026-05-01T00:00:00.000000Z",
                    "2027-05-01T00:00:00.000000Z",
                ),
                token(
                    "fresh",
                    "2026-05-20T00:00:00.000000Z",
                    "2026-06-19T00:00:00.000000Z",
                ),
                token("garbled", "yesterday", "2026-06-19T00:00:00.000000Z"),
            ],
            now,
        );
        let ids: Vec<(&str, Vec<&str>)> = weak
            .iter()
            .map(|w| {
                (
                    w.record.id.as_str(),
                    w.findings.iter().map(|f| f.id).collect(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("old", vec!["tokens.old"]),
                ("long", vec!["tokens.long_lived"]),
                ("garbled", vec!["audit.not_checked"]),
            ]
        );
    }
}
