//! File provenance (`file_labels` table): for each workspace file a session wrote,
//! changed or deleted, the label of the session that did it, the content hash it left
//! and when. The runtime joins the label into any session that later reads or runs the
//! file; `cordon files trust` removes a row.
//!
//! Guarantees: one row per (workspace, path), replaced whole by [`Store::set_file_label`]
//! (the runtime computes the joined label first); a row whose labels do not decode is
//! an error naming the file, never a silently trusted file. `sha256` is `None` for a
//! file the session deleted.
//!
//! Does not: decide what a label means, or notice changes made behind Cordon's back
//! (the runtime compares the hash when it reads the file).

use guard::Labels;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::backend::{Sql, row, statements};
use crate::error::StoreError;
use crate::pg::{Postgres, pg};
use crate::sqlite::{Sqlite, sql};
use crate::store::{Store, now};

/// The provenance of one workspace file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileLabelRecord {
    /// The workspace root, as an absolute path.
    pub workspace: String,
    /// The file, relative to the workspace root (`/`-separated).
    pub path: String,
    /// Lowercase hex SHA-256 of the content the session left; `None`: it deleted the file.
    pub sha256: Option<String>,
    pub labels: Labels,
    /// The session that last wrote it.
    pub session: String,
    /// RFC 3339 UTC with microseconds.
    pub written_at: String,
}

impl Store {
    /// Record (replacing any earlier row) that `session` left `path` of `workspace` with
    /// content `sha256` (`None`: deleted) and label `labels`.
    pub fn set_file_label(
        &self,
        workspace: &str,
        path: &str,
        sha256: Option<&str>,
        labels: &Labels,
        session: &str,
    ) -> Result<FileLabelRecord, StoreError> {
        let row = FileLabelRow {
            workspace: workspace.to_string(),
            path: path.to_string(),
            sha256: sha256.map(str::to_string),
            labels: serde_json::to_string(labels).map_err(StoreError::Encode)?,
            session: session.to_string(),
            written_at: now()?,
        };
        self.backend()?.upsert_file_label(&row)?;
        row.decode()
    }

    /// The provenance of `path` in `workspace`, if a session left one.
    pub fn file_label(
        &self,
        workspace: &str,
        path: &str,
    ) -> Result<Option<FileLabelRecord>, StoreError> {
        self.backend()?
            .file_label(workspace, path)?
            .map(FileLabelRow::decode)
            .transpose()
    }

    /// Every labelled file of `workspace` (all workspaces when `None`), by workspace and
    /// path.
    pub fn file_labels(&self, workspace: Option<&str>) -> Result<Vec<FileLabelRecord>, StoreError> {
        self.backend()?
            .file_labels(workspace)?
            .into_iter()
            .map(FileLabelRow::decode)
            .collect()
    }

    /// Remove the provenance of `path` in `workspace` (a human trusts the file); returns
    /// what was removed. [`StoreError::NoFileLabel`] when there was none.
    pub fn clear_file_label(
        &self,
        workspace: &str,
        path: &str,
    ) -> Result<FileLabelRecord, StoreError> {
        match self.backend()?.delete_file_label(workspace, path)? {
            Some(row) => row.decode(),
            None => Err(StoreError::NoFileLabel {
                workspace: workspace.to_string(),
                path: path.to_string(),
            }),
        }
    }
}

/// The storage steps of this area.
pub(crate) trait Files {
    fn upsert_file_label(&self, row: &FileLabelRow) -> Result<(), StoreError>;
    fn file_label(&self, workspace: &str, path: &str) -> Result<Option<FileLabelRow>, StoreError>;
    fn file_labels(&self, workspace: Option<&str>) -> Result<Vec<FileLabelRow>, StoreError>;
    /// Delete the row and return it, in one transaction.
    fn delete_file_label(
        &self,
        workspace: &str,
        path: &str,
    ) -> Result<Option<FileLabelRow>, StoreError>;
}

row! {
    /// A `file_labels` row (`labels` as JSON text).
    #[derive(Debug, Clone)]
    pub(crate) struct FileLabelRow {
        workspace: String,
        path: String,
        sha256: Option<String>,
        labels: String,
        session: String,
        written_at: String,
    }
}

impl FileLabelRow {
    fn decode(self) -> Result<FileLabelRecord, StoreError> {
        let labels: Labels =
            serde_json::from_str(&self.labels).map_err(|e| StoreError::BadRow {
                table: "file_labels",
                id: format!("{}:{}", self.workspace, self.path),
                reason: format!("labels: {e}"),
            })?;
        Ok(FileLabelRecord {
            workspace: self.workspace,
            path: self.path,
            sha256: self.sha256,
            labels,
            session: self.session,
            written_at: self.written_at,
        })
    }
}

// The statements, SQLite's and PostgreSQL's side by side.
statements! {
    const UPSERT: Sql = Sql {
        sqlite: "INSERT INTO file_labels (workspace, path, sha256, labels, session, written_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (workspace, path) DO UPDATE SET \
                 sha256 = excluded.sha256, labels = excluded.labels, session = excluded.session, \
                 written_at = excluded.written_at",
        postgres: "INSERT INTO file_labels (workspace, path, sha256, labels, session, written_at) \
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace, path) DO UPDATE SET \
                   sha256 = excluded.sha256, labels = excluded.labels, session = excluded.session, \
                   written_at = excluded.written_at",
    };

    const GET: Sql = Sql {
        sqlite: "SELECT workspace, path, sha256, labels, session, written_at FROM file_labels \
                 WHERE workspace = ?1 AND path = ?2",
        postgres: "SELECT workspace, path, sha256, labels, session, written_at FROM file_labels \
                   WHERE workspace = $1 AND path = $2",
    };

    const GET_FOR_UPDATE: Sql = Sql {
        sqlite: "SELECT workspace, path, sha256, labels, session, written_at FROM file_labels \
                 WHERE workspace = ?1 AND path = ?2",
        postgres: "SELECT workspace, path, sha256, labels, session, written_at FROM file_labels \
                   WHERE workspace = $1 AND path = $2 FOR UPDATE",
    };

    const LIST: Sql = Sql {
        sqlite: "SELECT workspace, path, sha256, labels, session, written_at FROM file_labels \
                 WHERE (?1 IS NULL OR workspace = ?1) ORDER BY workspace, path",
        postgres: "SELECT workspace, path, sha256, labels, session, written_at FROM file_labels \
                   WHERE ($1::text IS NULL OR workspace = $1::text) ORDER BY workspace, path",
    };

    const DELETE: Sql = Sql {
        sqlite: "DELETE FROM file_labels WHERE workspace = ?1 AND path = ?2",
        postgres: "DELETE FROM file_labels WHERE workspace = $1 AND path = $2",
    };
}

impl Files for Sqlite {
    fn upsert_file_label(&self, r: &FileLabelRow) -> Result<(), StoreError> {
        let tx = self.begin("begin file label")?;
        tx.execute(
            UPSERT.sqlite,
            params![
                r.workspace,
                r.path,
                r.sha256,
                r.labels,
                r.session,
                r.written_at
            ],
        )
        .map_err(sql("record file label"))?;
        tx.commit("commit file label")
    }

    fn file_label(&self, workspace: &str, path: &str) -> Result<Option<FileLabelRow>, StoreError> {
        self.conn()?
            .query_row(GET.sqlite, [workspace, path], FileLabelRow::from_sqlite)
            .optional()
            .map_err(sql("read file label"))
    }

    fn file_labels(&self, workspace: Option<&str>) -> Result<Vec<FileLabelRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(LIST.sqlite).map_err(sql("list file labels"))?;
        let rows = stmt
            .query_map(params![workspace], FileLabelRow::from_sqlite)
            .map_err(sql("list file labels"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list file labels"))
    }

    fn delete_file_label(
        &self,
        workspace: &str,
        path: &str,
    ) -> Result<Option<FileLabelRow>, StoreError> {
        let tx = self.begin("begin file label removal")?;
        let row = tx
            .query_row(
                GET_FOR_UPDATE.sqlite,
                [workspace, path],
                FileLabelRow::from_sqlite,
            )
            .optional()
            .map_err(sql("remove file label"))?;
        if row.is_some() {
            tx.execute(DELETE.sqlite, [workspace, path])
                .map_err(sql("remove file label"))?;
        }
        tx.commit("commit file label removal")?;
        Ok(row)
    }
}

impl Files for Postgres {
    fn upsert_file_label(&self, r: &FileLabelRow) -> Result<(), StoreError> {
        let r = r.clone();
        self.run(move |c| {
            c.execute(
                UPSERT.postgres,
                &[
                    &r.workspace,
                    &r.path,
                    &r.sha256,
                    &r.labels,
                    &r.session,
                    &r.written_at,
                ],
            )
            .map(|_| ())
            .map_err(pg("record file label"))
        })
    }

    fn file_label(&self, workspace: &str, path: &str) -> Result<Option<FileLabelRow>, StoreError> {
        let (workspace, path) = (workspace.to_string(), path.to_string());
        self.run(move |c| {
            c.query_opt(GET.postgres, &[&workspace, &path])
                .and_then(|r| r.as_ref().map(FileLabelRow::from_postgres).transpose())
                .map_err(pg("read file label"))
        })
    }

    fn file_labels(&self, workspace: Option<&str>) -> Result<Vec<FileLabelRow>, StoreError> {
        let workspace = workspace.map(str::to_string);
        self.run(move |c| {
            c.query(LIST.postgres, &[&workspace])
                .and_then(|rows| rows.iter().map(FileLabelRow::from_postgres).collect())
                .map_err(pg("list file labels"))
        })
    }

    fn delete_file_label(
        &self,
        workspace: &str,
        path: &str,
    ) -> Result<Option<FileLabelRow>, StoreError> {
        let (workspace, path) = (workspace.to_string(), path.to_string());
        self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("begin file label removal"))?;
            let row = tx
                .query_opt(GET_FOR_UPDATE.postgres, &[&workspace, &path])
                .and_then(|r| r.as_ref().map(FileLabelRow::from_postgres).transpose())
                .map_err(pg("remove file label"))?;
            if row.is_some() {
                tx.execute(DELETE.postgres, &[&workspace, &path])
                    .map_err(pg("remove file label"))?;
            }
            tx.commit().map_err(pg("commit file label removal"))?;
            Ok(row)
        })
    }
}
