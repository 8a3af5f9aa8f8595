//! The seam between [`crate::Store`] and its database: [`Backend`], implemented once
//! for SQLite ([`crate::sqlite::Sqlite`]) and once for PostgreSQL
//! ([`crate::pg::Postgres`]), chosen when the store is opened or connected.
//!
//! Each area (`sessions`, `events`, `tokens`, `approvals`) declares its own trait of
//! storage steps, its rows as named structs ([`row!`]), and every statement as one
//! [`Sql`] holding both dialects next to each other, followed by the two
//! implementations. What is the same on both (ids, timestamps, JSON, the rules of an
//! answer) lives above the trait, in the area's `impl Store`, and is written once.
//!
//! Guarantees: a `Backend` method that reads before it writes does both in one
//! transaction that excludes other writers of the same thing (SQLite: `BEGIN
//! IMMEDIATE`; PostgreSQL: a row lock, `SELECT … FOR UPDATE`), so the areas' guarantees
//! hold on both; the two dialects of a statement differ only in spelling (a test
//! compares them).

use std::path::Path;

use crate::approvals::Approvals;
use crate::channels::Channels;
use crate::chat_queue::ChatQueue;
use crate::events::Events;
use crate::files::Files;
use crate::sessions::Sessions;
use crate::tokens::Tokens;

/// Everything the store asks of a database. `Send + Sync`: one backend is shared by
/// every thread holding the `Arc<Store>`.
pub(crate) trait Backend:
    Sessions + Events + Tokens + Approvals + Files + Channels + ChatQueue + Send + Sync
{
    /// The database file; `None` on PostgreSQL.
    fn path(&self) -> Option<&Path>;
    /// Where the data lives, for messages (never a password).
    fn location(&self) -> String;
}

/// One statement in both dialects, side by side: SQLite numbers its parameters `?1`,
/// PostgreSQL `$1`; PostgreSQL needs some types spelled out (`$1::text` for a parameter
/// that may be NULL, `::bigint` for an aggregate); where SQLite has its write lock
/// (`BEGIN IMMEDIATE`), PostgreSQL locks the row (`FOR UPDATE`); SQLite orders ties by
/// `rowid`, PostgreSQL by its identity column `n`. Nothing else may differ (checked by
/// a test).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// An area's statements: `const NAME: Sql = Sql { … };` items, kept as they are, plus
/// `ALL` (in tests), so the check that both dialects say the same sees every one.
macro_rules! statements {
    ($($(#[$meta:meta])* $vis:vis const $name:ident: Sql = $value:expr;)*) => {
        $($(#[$meta])* $vis const $name: Sql = $value;)*

        #[cfg(test)]
        pub(crate) const ALL: &[Sql] = &[$($name),*];
    };
}
pub(crate) use statements;

/// A row as stored: a struct with one named field per column, read by column name from
/// a row of either backend (`from_sqlite`, `from_postgres`), so a `SELECT` may list its
/// columns in any order and a missing one is an error, never a shifted value.
macro_rules! row {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        $vis struct $name {
            $(pub(crate) $field: $ty,)*
        }

        impl $name {
            pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<$name> {
                Ok($name {
                    $($field: r.get(stringify!($field))?,)*
                })
            }

            pub(crate) fn from_postgres(r: &postgres::Row) -> Result<$name, postgres::Error> {
                Ok($name {
                    $($field: r.try_get(stringify!($field))?,)*
                })
            }
        }
    };
}
pub(crate) use row;

/// The PostgreSQL text of `sql` with the differences [`Sql`] allows undone, so it must
/// equal the SQLite text.
#[cfg(test)]
pub(crate) fn as_sqlite(postgres: &str) -> String {
    let text = postgres
        .replace("::text", "")
        .replace("::bigint", "")
        .replace(" FOR UPDATE", "")
        .replace("ORDER BY created_at, n", "ORDER BY created_at, rowid");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Each area's statements say the same in both dialects.
#[cfg(test)]
pub(crate) fn assert_same(all: &[Sql]) {
    for sql in all {
        assert_eq!(
            as_sqlite(sql.postgres),
            sql.sqlite,
            "the two dialects of a statement differ in more than spelling"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_of_every_statement_say_the_same() {
        assert_same(crate::sessions::ALL);
        assert_same(crate::events::ALL);
        assert_same(crate::tokens::ALL);
        assert_same(crate::approvals::sql::ALL);
        assert_same(crate::files::ALL);
        assert_same(crate::channels::ALL);
        assert_same(crate::chat_queue::ALL);
    }

    /// The check itself catches a drift: a condition only one side has.
    #[test]
    fn a_statement_that_differs_is_caught() {
        let drifted = Sql {
            sqlite: "SELECT id FROM grants WHERE agent = ?1",
            postgres: "SELECT id FROM grants WHERE agent = $1 AND revoked_at IS NULL",
        };
        assert_ne!(as_sqlite(drifted.postgres), drifted.sqlite);
        let same = Sql {
            sqlite: "SELECT id FROM grants WHERE (?1 IS NULL OR agent = ?1) ORDER BY created_at, rowid",
            postgres: "SELECT id FROM grants WHERE ($1::text IS NULL OR agent = $1::text) ORDER BY created_at, n FOR UPDATE",
        };
        assert_eq!(as_sqlite(same.postgres), same.sqlite);
    }
}
