//! Gateway API tokens (`tokens` table): who may use the gateway, with which scope, until
//! when.
//!
//! Guarantees: only the SHA-256 of a token is stored (the caller hashes; this module
//! never sees a token); a revoked token stays revoked (revocation is one `UPDATE … WHERE
//! revoked_at IS NULL`, so of two concurrent revocations one reports
//! [`Revoked::AlreadyRevoked`]); [`Store::active_tokens`] returns only tokens that are
//! neither revoked nor expired at the moment of the call.
//!
//! Does not: generate or compare tokens (the gateway does, in constant time), or decide
//! what a scope allows (the gateway's routes do).

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backend::{Sql, row, statements};
use crate::error::StoreError;
use crate::pg::{Postgres, pg};
use crate::sqlite::{Sqlite, sql};
use crate::store::{Store, now, timestamp};

/// What a token may do. Ordered: each scope includes everything below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Look: status, sessions, approvals, audit.
    Read,
    /// Read, and answer approvals.
    Approver,
    /// Approver, and talk to agents (create sessions, send messages).
    Operator,
    /// Everything, including gateway administration.
    Admin,
}

impl TokenScope {
    pub const ALL: [TokenScope; 4] = [
        TokenScope::Read,
        TokenScope::Approver,
        TokenScope::Operator,
        TokenScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Approver => "approver",
            TokenScope::Operator => "operator",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token to store: its hash, never the token itself.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scope: TokenScope,
    /// Lowercase hex SHA-256 of the token.
    pub hash: String,
    pub expires_at: OffsetDateTime,
}

/// One stored token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// A ULID.
    pub id: String,
    pub name: String,
    pub scope: TokenScope,
    /// Store timestamps (fixed-width RFC 3339 UTC).
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// A token that may be used now, with the hash to compare against.
#[derive(Debug, Clone)]
pub struct ActiveToken {
    pub id: String,
    pub scope: TokenScope,
    pub hash: String,
    pub expires_at: String,
}

/// The outcome of [`Store::revoke_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now.
    Now(TokenRecord),
    /// It already was; nothing changed.
    AlreadyRevoked(TokenRecord),
    /// No token has that id.
    NotFound,
}

impl Store {
    /// Store a new token; returns its record (the id is new).
    pub fn create_token(&self, new: &NewToken) -> Result<TokenRecord, StoreError> {
        let record = TokenRecord {
            id: ulid::Ulid::new().to_string(),
            name: new.name.clone(),
            scope: new.scope,
            created_at: now()?,
            expires_at: timestamp(new.expires_at)?,
            revoked_at: None,
            last_used_at: None,
        };
        self.backend()?.insert_token(&record, &new.hash)?;
        Ok(record)
    }

    /// Tokens, newest first; with `all == false` only those usable now.
    pub fn list_tokens(&self, all: bool) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = self.backend()?.list_tokens(all, now()?)?;
        rows.into_iter().map(TokenRow::decode).collect()
    }

    /// One token by id, whatever its state.
    pub fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.backend()?
            .get_token(id)?
            .map(TokenRow::decode)
            .transpose()
    }

    /// Every token neither revoked nor expired now, with its hash.
    pub fn active_tokens(&self) -> Result<Vec<ActiveToken>, StoreError> {
        let rows = self.backend()?.active_tokens(now()?)?;
        rows.into_iter()
            .map(|r| {
                Ok(ActiveToken {
                    scope: parse_scope(&r.id, &r.scope)?,
                    id: r.id,
                    hash: r.hash,
                    expires_at: r.expires_at,
                })
            })
            .collect()
    }

    /// Revoke token `id` (audit it in the caller).
    pub fn revoke_token(&self, id: &str) -> Result<Revoked, StoreError> {
        let changed = self.backend()?.revoke_token(id, now()?)?;
        Ok(match (changed, self.get_token(id)?) {
            (_, None) => Revoked::NotFound,
            (0, Some(record)) => Revoked::AlreadyRevoked(record),
            (_, Some(record)) => Revoked::Now(record),
        })
    }

    /// Record that token `id` was used at `at`.
    pub fn touch_token(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        self.backend()?.touch_token(id, timestamp(at)?)
    }
}

fn parse_scope(id: &str, scope: &str) -> Result<TokenScope, StoreError> {
    TokenScope::parse(scope).ok_or_else(|| StoreError::BadRow {
        table: "tokens",
        id: id.to_string(),
        reason: format!("unknown scope `{scope}`"),
    })
}

/// The storage steps of this area.
pub(crate) trait Tokens {
    fn insert_token(&self, record: &TokenRecord, hash: &str) -> Result<(), StoreError>;
    /// All tokens, or (`all == false`) those unrevoked and unexpired at `now`.
    fn list_tokens(&self, all: bool, now: String) -> Result<Vec<TokenRow>, StoreError>;
    fn get_token(&self, id: &str) -> Result<Option<TokenRow>, StoreError>;
    fn active_tokens(&self, now: String) -> Result<Vec<ActiveTokenRow>, StoreError>;
    /// Set `revoked_at` unless already set; the rows changed (0 or 1).
    fn revoke_token(&self, id: &str, now: String) -> Result<u64, StoreError>;
    fn touch_token(&self, id: &str, at: String) -> Result<(), StoreError>;
}

row! {
    /// A `tokens` row without its hash.
    pub(crate) struct TokenRow {
        id: String,
        name: String,
        scope: String,
        created_at: String,
        expires_at: String,
        revoked_at: Option<String>,
        last_used_at: Option<String>,
    }
}

impl TokenRow {
    fn decode(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            scope: parse_scope(&self.id, &self.scope)?,
            id: self.id,
            name: self.name,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

row! {
    /// What [`Store::active_tokens`] reads of a `tokens` row.
    pub(crate) struct ActiveTokenRow {
        id: String,
        scope: String,
        hash: String,
        expires_at: String,
    }
}

// The statements, SQLite's and PostgreSQL's side by side.
statements! {
    const INSERT: Sql = Sql {
        sqlite: "INSERT INTO tokens (id, name, scope, hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        postgres: "INSERT INTO tokens (id, name, scope, hash, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)",
    };

    const LIST: Sql = Sql {
        sqlite: "SELECT id, name, scope, created_at, expires_at, revoked_at, last_used_at \
                 FROM tokens WHERE ?1 OR (revoked_at IS NULL AND expires_at > ?2) \
                 ORDER BY created_at DESC, id DESC",
        postgres: "SELECT id, name, scope, created_at, expires_at, revoked_at, last_used_at \
                   FROM tokens WHERE $1 OR (revoked_at IS NULL AND expires_at > $2) \
                   ORDER BY created_at DESC, id DESC",
    };

    const GET: Sql = Sql {
        sqlite: "SELECT id, name, scope, created_at, expires_at, revoked_at, last_used_at \
                 FROM tokens WHERE id = ?1",
        postgres: "SELECT id, name, scope, created_at, expires_at, revoked_at, last_used_at \
                   FROM tokens WHERE id = $1",
    };

    const ACTIVE: Sql = Sql {
        sqlite: "SELECT id, scope, hash, expires_at FROM tokens \
                 WHERE revoked_at IS NULL AND expires_at > ?1 ORDER BY id",
        postgres: "SELECT id, scope, hash, expires_at FROM tokens \
                   WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY id",
    };

    /// One statement, so of two concurrent revocations exactly one changes the row.
    const REVOKE: Sql = Sql {
        sqlite: "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        postgres: "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    };

    const TOUCH: Sql = Sql {
        sqlite: "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
        postgres: "UPDATE tokens SET last_used_at = $2 WHERE id = $1",
    };
}

impl Tokens for Sqlite {
    fn insert_token(&self, r: &TokenRecord, hash: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                INSERT.sqlite,
                params![
                    r.id,
                    r.name,
                    r.scope.as_str(),
                    hash,
                    r.created_at,
                    r.expires_at
                ],
            )
            .map_err(sql("create token"))?;
        Ok(())
    }

    fn list_tokens(&self, all: bool, now: String) -> Result<Vec<TokenRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(LIST.sqlite).map_err(sql("list tokens"))?;
        let rows = stmt
            .query_map(params![all, now], TokenRow::from_sqlite)
            .map_err(sql("list tokens"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list tokens"))
    }

    fn get_token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        self.conn()?
            .query_row(GET.sqlite, [id], TokenRow::from_sqlite)
            .optional()
            .map_err(sql("read token"))
    }

    fn active_tokens(&self, now: String) -> Result<Vec<ActiveTokenRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(ACTIVE.sqlite)
            .map_err(sql("list active tokens"))?;
        let rows = stmt
            .query_map([now], ActiveTokenRow::from_sqlite)
            .map_err(sql("list active tokens"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list active tokens"))
    }

    fn revoke_token(&self, id: &str, now: String) -> Result<u64, StoreError> {
        let changed = self
            .conn()?
            .execute(REVOKE.sqlite, params![id, now])
            .map_err(sql("revoke token"))?;
        Ok(changed as u64)
    }

    fn touch_token(&self, id: &str, at: String) -> Result<(), StoreError> {
        self.conn()?
            .execute(TOUCH.sqlite, params![id, at])
            .map_err(sql("record token use"))?;
        Ok(())
    }
}

impl Tokens for Postgres {
    fn insert_token(&self, r: &TokenRecord, hash: &str) -> Result<(), StoreError> {
        let (r, hash) = (r.clone(), hash.to_string());
        self.run(move |c| {
            c.execute(
                INSERT.postgres,
                &[
                    &r.id,
                    &r.name,
                    &r.scope.as_str(),
                    &hash,
                    &r.created_at,
                    &r.expires_at,
                ],
            )
            .map_err(pg("create token"))?;
            Ok(())
        })
    }

    fn list_tokens(&self, all: bool, now: String) -> Result<Vec<TokenRow>, StoreError> {
        self.run(move |c| {
            c.query(LIST.postgres, &[&all, &now])
                .and_then(|rows| rows.iter().map(TokenRow::from_postgres).collect())
                .map_err(pg("list tokens"))
        })
    }

    fn get_token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_opt(GET.postgres, &[&id])
                .and_then(|r| r.as_ref().map(TokenRow::from_postgres).transpose())
                .map_err(pg("read token"))
        })
    }

    fn active_tokens(&self, now: String) -> Result<Vec<ActiveTokenRow>, StoreError> {
        self.run(move |c| {
            c.query(ACTIVE.postgres, &[&now])
                .and_then(|rows| rows.iter().map(ActiveTokenRow::from_postgres).collect())
                .map_err(pg("list active tokens"))
        })
    }

    fn revoke_token(&self, id: &str, now: String) -> Result<u64, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute(REVOKE.postgres, &[&id, &now])
                .map_err(pg("revoke token"))
        })
    }

    fn touch_token(&self, id: &str, at: String) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute(TOUCH.postgres, &[&id, &at])
                .map_err(pg("record token use"))?;
            Ok(())
        })
    }
}
