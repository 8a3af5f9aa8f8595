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

use crate::error::StoreError;
use crate::store::{Store, sql, timestamp};

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

pub(crate) const COLUMNS: &str =
    "id, name, scope, created_at, expires_at, revoked_at, last_used_at";

impl Store {
    /// Store a new token; returns its record (the id is new).
    pub fn create_token(&self, new: &NewToken) -> Result<TokenRecord, StoreError> {
        let record = TokenRecord {
            id: ulid::Ulid::new().to_string(),
            name: new.name.clone(),
            scope: new.scope,
            created_at: timestamp(OffsetDateTime::now_utc())?,
            expires_at: timestamp(new.expires_at)?,
            revoked_at: None,
            last_used_at: None,
        };
        if let Some(db) = self.pg() {
            db.create_token(record.clone(), &new.hash)?;
            return Ok(record);
        }
        self.conn()?
            .execute(
                "INSERT INTO tokens (id, name, scope, hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    record.id,
                    record.name,
                    record.scope.as_str(),
                    new.hash,
                    record.created_at,
                    record.expires_at
                ],
            )
            .map_err(sql("create token"))?;
        Ok(record)
    }

    /// Tokens, newest first; with `all == false` only those usable now.
    pub fn list_tokens(&self, all: bool) -> Result<Vec<TokenRecord>, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        if let Some(db) = self.pg() {
            return db.list_tokens(all, now);
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM tokens WHERE ?1 OR (revoked_at IS NULL AND expires_at > ?2) \
                 ORDER BY created_at DESC, id DESC"
            ))
            .map_err(sql("list tokens"))?;
        let rows = stmt
            .query_map(params![all, now], row_to_token)
            .map_err(sql("list tokens"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list tokens"))?
            .into_iter()
            .collect()
    }

    /// One token by id, whatever its state.
    pub fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        if let Some(db) = self.pg() {
            return db.get_token(id);
        }
        self.conn()?
            .query_row(
                &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
                [id],
                row_to_token,
            )
            .optional()
            .map_err(sql("read token"))?
            .transpose()
    }

    /// Every token neither revoked nor expired now, with its hash.
    pub fn active_tokens(&self) -> Result<Vec<ActiveToken>, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        if let Some(db) = self.pg() {
            return db.active_tokens(now);
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT id, scope, hash, expires_at FROM tokens \
                 WHERE revoked_at IS NULL AND expires_at > ?1 ORDER BY id",
            )
            .map_err(sql("list active tokens"))?;
        let rows = stmt
            .query_map([now], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(sql("list active tokens"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, scope, hash, expires_at) = row.map_err(sql("list active tokens"))?;
            out.push(ActiveToken {
                scope: parse_scope(&id, &scope)?,
                id,
                hash,
                expires_at,
            });
        }
        Ok(out)
    }

    /// Revoke token `id` (audit it in the caller).
    pub fn revoke_token(&self, id: &str) -> Result<Revoked, StoreError> {
        let now = timestamp(OffsetDateTime::now_utc())?;
        let changed = match self.pg() {
            Some(db) => db.execute(
                "revoke token",
                "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                vec![id.to_string(), now],
            )?,
            None => self
                .conn()?
                .execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, now],
                )
                .map_err(sql("revoke token"))? as u64,
        };
        Ok(match (changed, self.get_token(id)?) {
            (_, None) => Revoked::NotFound,
            (0, Some(record)) => Revoked::AlreadyRevoked(record),
            (_, Some(record)) => Revoked::Now(record),
        })
    }

    /// Record that token `id` was used at `at`.
    pub fn touch_token(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        if let Some(db) = self.pg() {
            db.execute(
                "record token use",
                "UPDATE tokens SET last_used_at = $2 WHERE id = $1",
                vec![id.to_string(), timestamp(at)?],
            )?;
            return Ok(());
        }
        self.conn()?
            .execute(
                "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, timestamp(at)?],
            )
            .map_err(sql("record token use"))?;
        Ok(())
    }
}

pub(crate) fn parse_scope(id: &str, scope: &str) -> Result<TokenScope, StoreError> {
    TokenScope::parse(scope).ok_or_else(|| StoreError::BadRow {
        table: "tokens",
        id: id.to_string(),
        reason: format!("unknown scope `{scope}`"),
    })
}

type TokenRow = Result<TokenRecord, StoreError>;

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let id: String = r.get(0)?;
    let scope: String = r.get(2)?;
    let scope = match parse_scope(&id, &scope) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(TokenRecord {
        id,
        name: r.get(1)?,
        scope,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        last_used_at: r.get(6)?,
    }))
}
