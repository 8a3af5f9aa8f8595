//! API tokens: issuing, hashing, checking, revoking.
//!
//! Guarantees: a token is `cdn_` + 32 bytes from the OS CSPRNG in unpadded base64url; it
//! exists in clear only in the [`TokenSecret`] returned once by [`create`] (no `Debug`,
//! no `Display`); the store keeps its SHA-256. [`verify`] compares the presented token's
//! hash with every usable token's hash in constant time and without stopping at a match,
//! so timing does not reveal which stored hash is closest. Creating and revoking a token
//! are audited (`secret_change`), naming id, name and scope, never the token.
//!
//! Does not: rate-limit guessing (the login limiter does, and 256 bits make guessing
//! hopeless anyway) or decide what a scope may do (the routes do).

use audit::event::{SecretChange, TokenCreated, TokenRevoked};
use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use store::{NewToken, Revoked, Store, TokenRecord, TokenScope};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::error::GatewayError;

/// Every token starts with this, so it can be recognised (e.g. by secret scanners).
pub const PREFIX: &str = "cdn_";

/// Longest string accepted as a token before hashing (a real one is 47 bytes).
const MAX_LEN: usize = 128;

/// A token in clear. Shown once; deliberately neither `Debug` nor `Display`.
pub struct TokenSecret(String);

impl TokenSecret {
    /// The token, to print once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A token just created: the record and the one copy of the secret.
pub struct IssuedToken {
    pub record: TokenRecord,
    pub token: TokenSecret,
}

/// What a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub token_id: String,
    pub scope: TokenScope,
}

/// Lowercase hex SHA-256 of `token`.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn generate() -> Result<TokenSecret, GatewayError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| GatewayError::Random(e.to_string()))?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(TokenSecret(format!("{PREFIX}{body}")))
}

/// Parse a lifetime such as `30d`, `12h`, `90m` or `3600s` (1 minute to 365 days).
pub fn parse_ttl(text: &str) -> Result<Duration, GatewayError> {
    let bad = || GatewayError::TokenTtl(format!("`{text}`"));
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "d" => Duration::days(n),
        "h" => Duration::hours(n),
        "m" => Duration::minutes(n),
        "s" => Duration::seconds(n),
        _ => return Err(bad()),
    };
    if d < Duration::minutes(1) || d > Duration::days(365) {
        return Err(bad());
    }
    Ok(d)
}

fn check_name(name: &str) -> Result<(), GatewayError> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(GatewayError::TokenName {
            name: name.escape_debug().to_string(),
        });
    }
    Ok(())
}

/// Create a token with `scope` valid for `ttl`; audited as created `by`.
pub fn create(
    store: &Store,
    audit: &audit::Log,
    name: &str,
    scope: TokenScope,
    ttl: Duration,
    by: &str,
) -> Result<IssuedToken, GatewayError> {
    check_name(name)?;
    if ttl < Duration::minutes(1) || ttl > Duration::days(365) {
        return Err(GatewayError::TokenTtl(format!(
            "{} seconds",
            ttl.whole_seconds()
        )));
    }
    let token = generate()?;
    let record = store.create_token(&NewToken {
        name: name.to_string(),
        scope,
        hash: hash(token.expose()),
        expires_at: OffsetDateTime::now_utc() + ttl,
    })?;
    audit.record_event(
        None,
        SecretChange::TokenCreated(TokenCreated {
            id: record.id.clone(),
            name: record.name.clone(),
            scope: scope.as_str().to_string(),
            expires_at: record.expires_at.clone(),
            by: by.to_string(),
        }),
    )?;
    Ok(IssuedToken { record, token })
}

/// Revoke token `id`; a revocation that changed something is audited as done `by`.
pub fn revoke(
    store: &Store,
    audit: &audit::Log,
    id: &str,
    by: &str,
) -> Result<Revoked, GatewayError> {
    let outcome = store.revoke_token(id)?;
    if let Revoked::Now(record) = &outcome {
        audit.record_event(
            None,
            SecretChange::TokenRevoked(TokenRevoked {
                id: record.id.clone(),
                name: record.name.clone(),
                scope: record.scope.as_str().to_string(),
                by: by.to_string(),
            }),
        )?;
    }
    Ok(outcome)
}

/// The usable token `presented` is, if any.
pub fn verify(store: &Store, presented: &str) -> Result<Option<Verified>, GatewayError> {
    if presented.len() > MAX_LEN || !presented.starts_with(PREFIX) {
        return Ok(None);
    }
    let digest = Sha256::digest(presented.as_bytes());
    let mut found: Option<Verified> = None;
    for candidate in store.active_tokens()? {
        let Ok(stored) = hex::decode(&candidate.hash) else {
            continue;
        };
        // No early exit: every candidate is compared.
        if bool::from(stored.as_slice().ct_eq(digest.as_slice())) {
            found = Some(Verified {
                token_id: candidate.id,
                scope: candidate.scope,
            });
        }
    }
    Ok(found)
}

/// Whether token `id` is still usable (neither revoked nor expired) and its scope.
pub fn still_valid(store: &Store, id: &str) -> Result<Option<TokenScope>, GatewayError> {
    Ok(store
        .active_tokens()?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> (tempfile::TempDir, Store, audit::Log) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let a = audit::Log::open(&d.path().join("audit")).unwrap();
        (d, s, a)
    }

    #[test]
    fn tokens_are_random_prefixed_and_stored_hashed() {
        let (_d, s, a) = env();
        let t1 = create(&s, &a, "a", TokenScope::Read, Duration::days(1), "test").unwrap();
        let t2 = create(&s, &a, "b", TokenScope::Admin, Duration::days(1), "test").unwrap();
        assert!(t1.token.expose().starts_with(PREFIX));
        assert_eq!(t1.token.expose().len(), PREFIX.len() + 43);
        assert_ne!(t1.token.expose(), t2.token.expose());
        let db = std::fs::read(s.path().unwrap()).unwrap();
        let wal = std::fs::read(s.path().unwrap().with_extension("db-wal")).unwrap_or_default();
        for t in [&t1, &t2] {
            let clear = t.token.expose().as_bytes();
            assert!(!db.windows(clear.len()).any(|w| w == clear));
            assert!(!wal.windows(clear.len()).any(|w| w == clear));
        }
        let v = verify(&s, t2.token.expose()).unwrap().unwrap();
        assert_eq!(v.scope, TokenScope::Admin);
        assert_eq!(v.token_id, t2.record.id);
    }

    #[test]
    fn wrong_revoked_and_expired_tokens_do_not_verify() {
        let (_d, s, a) = env();
        let t = create(&s, &a, "a", TokenScope::Operator, Duration::days(1), "test").unwrap();
        let mut wrong = t.token.expose().to_string();
        wrong.pop();
        wrong.push('x');
        assert_eq!(verify(&s, &wrong).unwrap(), None);
        assert_eq!(verify(&s, "").unwrap(), None);
        assert_eq!(verify(&s, &hash(t.token.expose())).unwrap(), None);
        assert!(matches!(
            revoke(&s, &a, &t.record.id, "test").unwrap(),
            Revoked::Now(_)
        ));
        assert_eq!(verify(&s, t.token.expose()).unwrap(), None);
        // Expired: stored directly with a past expiry.
        let secret = "cdn_expired-token-for-the-test-0000000000000000";
        s.create_token(&NewToken {
            name: "old".into(),
            scope: TokenScope::Admin,
            hash: hash(secret),
            expires_at: OffsetDateTime::now_utc() - Duration::seconds(1),
        })
        .unwrap();
        assert_eq!(verify(&s, secret).unwrap(), None);
        let kinds: Vec<_> = audit::read(a.dir())
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == audit::EventKind::SecretChange)
            .map(|r| r.data["action"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(kinds, ["token_created", "token_revoked"]);
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_ttl("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_ttl("90m").unwrap(), Duration::minutes(90));
        for bad in ["", "d", "30", "30w", "0d", "366d", "59s", "-1d", "1.5d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        let (_d, s, a) = env();
        for bad in ["", "a\nb", &"x".repeat(65)] {
            assert!(create(&s, &a, bad, TokenScope::Read, Duration::days(1), "t").is_err());
        }
    }
}
