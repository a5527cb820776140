//! The webhook inbox: a webhook is stored here before it is acknowledged, then claimed and
//! processed by workers.
//!
//! A claim is one atomic statement that marks up to `limit` unprocessed, unclaimed (or
//! claim-expired) rows as claimed by a worker until a deadline; on PostgreSQL rows another
//! claimer has locked are skipped (`FOR UPDATE SKIP LOCKED`), and on SQLite writers take
//! turns. Two claimers never get the same row while its claim lasts; a worker that dies
//! without marking its rows processed loses the claim when it expires, and another worker
//! gets them (delivery to workers is at least once).

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmkit_core::Crm;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::db;
use crate::leases::{db_now, ttl_ms};
use crate::store::{Reader, crm_str, json_text, new_id, now_ms, ops, to_time};
use crate::{Backend, Error, InboxId, Result, Store};

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InboxItem {
    /// The item's id.
    pub id: InboxId,
    /// The CRM that sent it.
    pub crm: Crm,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The request body, exactly as received (needed to check signatures again).
    pub body: String,
    /// The request headers the worker needs, as JSON.
    pub headers: serde_json::Value,
    /// The worker holding the current claim.
    pub claimed_by: Option<String>,
    /// When that claim expires (database clock).
    pub claimed_until: Option<DateTime<Utc>>,
    /// How many times it was claimed.
    pub attempts: i64,
    /// When it was marked processed.
    pub processed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, crm, received_at, body, headers, claimed_by, claimed_until, attempts, processed_at";

fn from_row(row: &AnyRow) -> Result<InboxItem> {
    let r = Reader::new(row, "webhook_inbox", "id");
    Ok(InboxItem {
        id: InboxId::new(r.id()),
        crm: r.crm("crm")?,
        received_at: r.time("received_at")?,
        body: r.text("body")?,
        headers: r.json("headers")?,
        claimed_by: r.opt_text("claimed_by")?,
        claimed_until: r.opt_time("claimed_until")?,
        attempts: r.int("attempts")?,
        processed_at: r.opt_time("processed_at")?,
    })
}

ops! {
    /// Stores a received webhook (before answering 2xx).
    write fn inbox_insert(crm: Crm, body: &str, headers: &serde_json::Value) -> InboxItem = insert;
    /// Marks an item processed; `false` if it already was (another worker got it after this
    /// one's claim expired). Processed items are never claimed again.
    write fn inbox_mark_processed(id: &InboxId) -> bool = mark_processed;
    /// The item with this id.
    read fn inbox_item(id: &InboxId) -> Option<InboxItem> = get;
    /// How many items are not processed yet.
    read fn inbox_unprocessed_count() -> i64 = unprocessed_count;
}

async fn insert(
    conn: &mut AnyConnection,
    crm: Crm,
    body: &str,
    headers: &serde_json::Value,
) -> Result<InboxItem> {
    let item = InboxItem {
        id: InboxId::new(new_id()),
        crm,
        received_at: to_time(now_ms()),
        body: body.to_owned(),
        headers: headers.clone(),
        claimed_by: None,
        claimed_until: None,
        attempts: 0,
        processed_at: None,
    };
    sqlx::query(&format!(
        "INSERT INTO webhook_inbox ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(item.id.as_str())
    .bind(crm_str(crm))
    .bind(item.received_at.timestamp_millis())
    .bind(body)
    .bind(json_text(headers))
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind(0_i64)
    .bind(None::<i64>)
    .execute(conn)
    .await
    .map_err(db(format!("storing a {crm} webhook in the inbox")))?;
    Ok(item)
}

async fn get(conn: &mut AnyConnection, id: &InboxId) -> Result<Option<InboxItem>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhook_inbox WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(conn)
    .await
    .map_err(db(format!("reading inbox item {id}")))?;
    row.as_ref().map(from_row).transpose()
}

async fn mark_processed(conn: &mut AnyConnection, id: &InboxId) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_inbox SET processed_at = $1 WHERE id = $2 AND processed_at IS NULL",
    )
    .bind(now_ms())
    .bind(id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db(format!("marking inbox item {id} processed")))?;
    if done.rows_affected() == 0 && get(conn, id).await?.is_none() {
        return Err(Error::NotFound {
            what: "inbox item",
            id: id.to_string(),
        });
    }
    Ok(done.rows_affected() > 0)
}

async fn unprocessed_count(conn: &mut AnyConnection) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_inbox WHERE processed_at IS NULL")
        .fetch_one(conn)
        .await
        .map_err(db("counting unprocessed inbox items"))?;
    sqlx::Row::try_get::<i64, _>(&row, "n").map_err(|e| Error::Corrupt {
        table: "webhook_inbox",
        column: "COUNT(*)",
        id: "-".into(),
        reason: e.to_string(),
    })
}

impl Store {
    /// Claims up to `limit` unprocessed items, oldest first, for `worker` until `ttl` from
    /// now. Items claimed by another worker whose claim has not expired are left alone. Mark
    /// each processed with [`Store::inbox_mark_processed`] before the claim expires, or give
    /// it back with [`Store::inbox_release`].
    pub async fn inbox_claim(
        &self,
        worker: &str,
        ttl: Duration,
        limit: u32,
    ) -> Result<Vec<InboxItem>> {
        let ttl = ttl_ms("an inbox claim", ttl)?;
        let now = db_now(self.backend());
        let skip_locked = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let free =
            format!("processed_at IS NULL AND (claimed_until IS NULL OR claimed_until <= {now})");
        let rows = sqlx::query(&format!(
            "UPDATE webhook_inbox SET claimed_by = $1, claimed_until = {now} + $2, \
             attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_inbox WHERE {free} \
                          ORDER BY received_at, id LIMIT $3 {skip_locked}) \
             AND {free} \
             RETURNING {COLUMNS}"
        ))
        .bind(worker)
        .bind(ttl)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("claiming inbox items for {worker:?}")))?;
        let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(items)
    }

    /// Gives back `worker`'s claim on an unprocessed item so it can be claimed again at once
    /// (after a failure worth retrying); `false` if `worker` did not hold it.
    pub async fn inbox_release(&self, id: &InboxId, worker: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_inbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE id = $1 AND claimed_by = $2 AND processed_at IS NULL",
        )
        .bind(id.as_str())
        .bind(worker)
        .execute(self.pool())
        .await
        .map_err(db(format!("releasing inbox item {id} of {worker:?}")))?;
        Ok(done.rows_affected() > 0)
    }
}
