//! Change-feed cursors: one opaque string per (sync pair, CRM, object kind).
//!
//! A cursor should move only after what it covers is stored: write the links and the cursor
//! in one [`Tx`](crate::Tx).

use chrono::{DateTime, Utc};
use crmkit_core::{Crm, ObjectKind};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::Result;
use crate::error::db;
use crate::store::{Reader, crm_str, now_ms, object_str, ops};

/// Names one change feed: which sync pair (connection) reads which object kind from which
/// CRM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CursorKey {
    /// The sync pair or connection the feed belongs to (e.g. `"close-hubspot"`).
    pub pair: String,
    /// The CRM the feed reads.
    pub crm: Crm,
    /// The object kind it reads.
    pub object: ObjectKind,
}

impl CursorKey {
    /// The key of `pair`'s feed of `object` from `crm`.
    pub fn new(pair: impl Into<String>, crm: Crm, object: ObjectKind) -> Self {
        Self {
            pair: pair.into(),
            crm,
            object,
        }
    }
}

impl std::fmt::Display for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.pair, self.crm, self.object)
    }
}

/// A stored cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cursor {
    /// Which feed.
    pub key: CursorKey,
    /// The connector's opaque cursor.
    pub value: String,
    /// When it was last moved.
    pub updated_at: DateTime<Utc>,
}

ops! {
    /// The stored cursor of feed `key`, if any.
    read fn cursor(key: &CursorKey) -> Option<Cursor> = get;
    /// Every stored cursor of sync pair `pair`.
    read fn cursors(pair: &str) -> Vec<Cursor> = list;
    /// Stores `value` as the cursor of feed `key`, replacing the previous one.
    write fn set_cursor(key: &CursorKey, value: &str) -> () = set;
    /// Forgets the cursor of feed `key` (the next run reads the feed from the start);
    /// returns whether there was one.
    write fn delete_cursor(key: &CursorKey) -> bool = delete;
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Cursor> {
    let r = Reader::new(row, "sync_cursors", "pair");
    Ok(Cursor {
        key: CursorKey {
            pair: r.text("pair")?,
            crm: r.crm("crm")?,
            object: r.object("object")?,
        },
        value: r.text("cursor_value")?,
        updated_at: r.time("updated_at")?,
    })
}

async fn get(conn: &mut AnyConnection, key: &CursorKey) -> Result<Option<Cursor>> {
    let row = sqlx::query(
        "SELECT pair, crm, object, cursor_value, updated_at FROM sync_cursors \
         WHERE pair = $1 AND crm = $2 AND object = $3",
    )
    .bind(key.pair.as_str())
    .bind(crm_str(key.crm))
    .bind(object_str(key.object))
    .fetch_optional(conn)
    .await
    .map_err(db(format!("reading cursor {key}")))?;
    row.as_ref().map(from_row).transpose()
}

async fn list(conn: &mut AnyConnection, pair: &str) -> Result<Vec<Cursor>> {
    let rows = sqlx::query(
        "SELECT pair, crm, object, cursor_value, updated_at FROM sync_cursors \
         WHERE pair = $1 ORDER BY crm, object",
    )
    .bind(pair)
    .fetch_all(conn)
    .await
    .map_err(db(format!("listing the cursors of {pair}")))?;
    rows.iter().map(from_row).collect()
}

async fn set(conn: &mut AnyConnection, key: &CursorKey, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_cursors (pair, crm, object, cursor_value, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (pair, crm, object) DO UPDATE \
         SET cursor_value = excluded.cursor_value, updated_at = excluded.updated_at",
    )
    .bind(key.pair.as_str())
    .bind(crm_str(key.crm))
    .bind(object_str(key.object))
    .bind(value)
    .bind(now_ms())
    .execute(conn)
    .await
    .map_err(db(format!("storing cursor {key}")))?;
    Ok(())
}

async fn delete(conn: &mut AnyConnection, key: &CursorKey) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sync_cursors WHERE pair = $1 AND crm = $2 AND object = $3")
        .bind(key.pair.as_str())
        .bind(crm_str(key.crm))
        .bind(object_str(key.object))
        .execute(conn)
        .await
        .map_err(db(format!("deleting cursor {key}")))?;
    Ok(done.rows_affected() > 0)
}
