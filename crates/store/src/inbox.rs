//! The webhook inbox: a webhook is stored here before it is acknowledged, then claimed and
//! processed by workers.
//!
//! A claim is one atomic statement that marks up to `limit` unprocessed, unclaimed (or
//! claim-expired) rows as claimed by a worker until a deadline; on PostgreSQL rows another
//! claimer has locked are skipped (`FOR UPDATE SKIP LOCKED`), and on SQLite writers take
//! turns. Two claimers never get the same row while its claim lasts; a worker that dies
//! without marking its rows processed loses the claim when it expires, and another worker
//! gets them (delivery to workers is at least once).
//!
//! - **Only the claimant settles.** [`Store::inbox_mark_processed`], [`Store::inbox_fail`]
//!   and [`Store::inbox_release`] act only for the worker named in the row's claim: a worker
//!   whose claim expired and was taken by another cannot settle the other's work.
//! - **Dead letters.** An item claimed `max_attempts` times without being processed (its
//!   workers failed it or died) is not claimed again: the next claim moves it to the dead
//!   letters ([`Store::inbox_dead_letters`]), with the last error, to be looked at by a
//!   person; it is never retried forever nor dropped. A release ([`Store::inbox_release`], a
//!   worker shutting down) gives its attempt back: it is not a failure. A claimed row that
//!   cannot be read (a body that is not the hex it claims to be) becomes a dead letter at
//!   once, with why and its body as stored; the rest of its batch is delivered.
//! - **Any body.** Bodies are stored hex-encoded (`body_encoding = 'hex'`), so a body holding
//!   NUL characters, which PostgreSQL text refuses, is stored and read back exactly on both
//!   backends. Rows stored before (no encoding) are read as they are.

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
    /// Why its last attempt failed ([`Store::inbox_fail`]).
    pub last_error: Option<String>,
    /// When it was given up after its last attempt (a dead letter, never claimed again).
    pub dead_at: Option<DateTime<Utc>>,
    /// The CRM's own id of the delivery, if it was stored with one.
    pub delivery_id: Option<String>,
}

const COLUMNS: &str = "id, crm, received_at, body, headers, claimed_by, claimed_until, \
    attempts, processed_at, delivery_id, body_encoding, last_error, dead_at";

/// How new bodies are stored.
const HEX: &str = "hex";

fn from_row(row: &AnyRow) -> Result<InboxItem> {
    let r = Reader::new(row, "webhook_inbox", "id");
    let stored = r.text("body")?;
    let body = match r.opt_text("body_encoding")?.as_deref() {
        None => stored,
        Some(HEX) => hex::decode(&stored)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| r.corrupt("body", "not hex-encoded UTF-8"))?,
        Some(other) => return Err(r.corrupt("body_encoding", format!("unknown {other:?}"))),
    };
    Ok(InboxItem {
        id: InboxId::new(r.id()),
        crm: r.crm("crm")?,
        received_at: r.time("received_at")?,
        body,
        headers: r.json("headers")?,
        claimed_by: r.opt_text("claimed_by")?,
        claimed_until: r.opt_time("claimed_until")?,
        attempts: r.int("attempts")?,
        processed_at: r.opt_time("processed_at")?,
        delivery_id: r.opt_text("delivery_id")?,
        last_error: r.opt_text("last_error")?,
        dead_at: r.opt_time("dead_at")?,
    })
}

ops! {
    /// Stores a received webhook (before answering 2xx).
    write fn inbox_insert(crm: Crm, body: &str, headers: &serde_json::Value) -> InboxItem = insert;
    /// Stores a received webhook that carries the CRM's own delivery id, unless a delivery
    /// with that id from that CRM is already stored (the CRM retried it): then `None`, and
    /// nothing is written. Answer 2xx either way.
    write fn inbox_insert_once(
        crm: Crm,
        delivery_id: &str,
        body: &str,
        headers: &serde_json::Value,
    ) -> Option<InboxItem> = insert_once;
    /// Deletes processed items processed before `before`; returns how many. Unprocessed
    /// items are never deleted.
    write fn inbox_prune(before: DateTime<Utc>) -> u64 = prune;
    /// Marks an item `worker` claimed processed; `false` if `worker` no longer holds its
    /// claim (another worker got it after this one's claim expired) or it already was
    /// processed. Processed items are never claimed again.
    write fn inbox_mark_processed(id: &InboxId, worker: &str) -> bool = mark_processed;
    /// Gives back `worker`'s claim on an item whose processing failed, noting why, so it
    /// can be claimed again (or, after its last attempt, becomes a dead letter at the next
    /// claim); `false` if `worker` did not hold the claim.
    write fn inbox_fail(id: &InboxId, worker: &str, error: &str) -> bool = fail;
    /// The dead letters: items given up after their last attempt, oldest first.
    read fn inbox_dead_letters(limit: u32) -> Vec<InboxItem> = dead_letters;
    /// The item with this id.
    read fn inbox_item(id: &InboxId) -> Option<InboxItem> = get;
    /// How many items are waiting: not processed and not dead letters.
    read fn inbox_unprocessed_count() -> i64 = unprocessed_count;
}

async fn insert(
    conn: &mut AnyConnection,
    crm: Crm,
    body: &str,
    headers: &serde_json::Value,
) -> Result<InboxItem> {
    // Without a delivery id there is nothing to collide with, so a row is always stored.
    store_item(conn, crm, None, body, headers)
        .await?
        .ok_or_else(|| Error::Corrupt {
            table: "webhook_inbox",
            column: "delivery_id",
            id: "-".into(),
            reason: format!("storing a {crm} webhook without a delivery id stored nothing"),
        })
}

async fn insert_once(
    conn: &mut AnyConnection,
    crm: Crm,
    delivery_id: &str,
    body: &str,
    headers: &serde_json::Value,
) -> Result<Option<InboxItem>> {
    if delivery_id.is_empty() {
        return Err(Error::InvalidInput {
            field: format!("{crm} webhook delivery id"),
            reason: "empty; use inbox_insert for deliveries without one".into(),
        });
    }
    store_item(conn, crm, Some(delivery_id), body, headers).await
}

async fn prune(conn: &mut AnyConnection, before: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM webhook_inbox WHERE processed_at IS NOT NULL AND processed_at < $1",
    )
    .bind(before.timestamp_millis())
    .execute(conn)
    .await
    .map_err(db(format!("pruning inbox items processed before {before}")))?;
    Ok(done.rows_affected())
}

/// Inserts an item; `None` if its delivery id is already stored for `crm`.
async fn store_item(
    conn: &mut AnyConnection,
    crm: Crm,
    delivery_id: Option<&str>,
    body: &str,
    headers: &serde_json::Value,
) -> Result<Option<InboxItem>> {
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
        delivery_id: delivery_id.map(str::to_owned),
        last_error: None,
        dead_at: None,
    };
    let done = sqlx::query(&format!(
        "INSERT INTO webhook_inbox ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (crm, delivery_id) DO NOTHING"
    ))
    .bind(item.id.as_str())
    .bind(crm_str(crm))
    .bind(item.received_at.timestamp_millis())
    .bind(hex::encode(body))
    .bind(json_text(headers))
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind(0_i64)
    .bind(None::<i64>)
    .bind(item.delivery_id.clone())
    .bind(HEX)
    .bind(None::<String>)
    .bind(None::<i64>)
    .execute(conn)
    .await
    .map_err(db(format!("storing a {crm} webhook in the inbox")))?;
    Ok((done.rows_affected() > 0).then_some(item))
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

/// Whether a statement that acted on item `id` for its claimant changed it; an item that
/// does not exist is an error.
async fn claimant_acted(conn: &mut AnyConnection, id: &InboxId, rows: u64) -> Result<bool> {
    if rows == 0 && get(conn, id).await?.is_none() {
        return Err(Error::NotFound {
            what: "inbox item",
            id: id.to_string(),
        });
    }
    Ok(rows > 0)
}

async fn mark_processed(conn: &mut AnyConnection, id: &InboxId, worker: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_inbox SET processed_at = $1 \
         WHERE id = $2 AND claimed_by = $3 AND processed_at IS NULL AND dead_at IS NULL",
    )
    .bind(now_ms())
    .bind(id.as_str())
    .bind(worker)
    .execute(&mut *conn)
    .await
    .map_err(db(format!("marking inbox item {id} processed")))?;
    claimant_acted(conn, id, done.rows_affected()).await
}

async fn fail(conn: &mut AnyConnection, id: &InboxId, worker: &str, error: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_inbox SET claimed_by = NULL, claimed_until = NULL, last_error = $1 \
         WHERE id = $2 AND claimed_by = $3 AND processed_at IS NULL AND dead_at IS NULL",
    )
    .bind(error)
    .bind(id.as_str())
    .bind(worker)
    .execute(&mut *conn)
    .await
    .map_err(db(format!("failing inbox item {id} of {worker:?}")))?;
    claimant_acted(conn, id, done.rows_affected()).await
}

async fn dead_letters(conn: &mut AnyConnection, limit: u32) -> Result<Vec<InboxItem>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhook_inbox WHERE dead_at IS NOT NULL \
         ORDER BY dead_at, id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db("listing the inbox's dead letters"))?;
    rows.iter().map(from_row).collect()
}

async fn unprocessed_count(conn: &mut AnyConnection) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM webhook_inbox WHERE processed_at IS NULL AND dead_at IS NULL",
    )
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
    /// it back with [`Store::inbox_fail`] or [`Store::inbox_release`]. Items already claimed
    /// `max_attempts` times are not claimed again: they become dead letters (one whose last
    /// claim expired only after a further `ttl`, so its worker may still settle it).
    pub async fn inbox_claim(
        &self,
        worker: &str,
        ttl: Duration,
        limit: u32,
        max_attempts: u32,
    ) -> Result<Vec<InboxItem>> {
        let ttl = ttl_ms("an inbox claim", ttl)?;
        if max_attempts == 0 {
            return Err(Error::InvalidInput {
                field: "inbox max_attempts".into(),
                reason: "must be at least 1".into(),
            });
        }
        let now = db_now(self.backend());
        let skip_locked = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let unclaimed = format!(
            "processed_at IS NULL AND dead_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until <= {now})"
        );
        // A claim that expired on its last attempt may still be worked on by a slow worker,
        // which may yet mark it processed: it is given one more claim's length (`ttl`)
        // before it is taken for a dead letter.
        sqlx::query(&format!(
            "UPDATE webhook_inbox SET dead_at = {now}, claimed_by = NULL, claimed_until = NULL \
             WHERE processed_at IS NULL AND dead_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until <= {now} - $2) AND attempts >= $1"
        ))
        .bind(i64::from(max_attempts))
        .bind(ttl)
        .execute(self.pool())
        .await
        .map_err(db(
            "moving inbox items past their last attempt to the dead letters",
        ))?;
        let free = format!("{unclaimed} AND attempts < {max_attempts}");
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
        // The batch is claimed already: one row that cannot be read must not keep the others
        // from their worker, nor stay claimed in silence. It becomes a dead letter on its own,
        // with why, for a person to look at; its body is then read as stored (no encoding),
        // so the dead letters can be listed and the stored text is not lost.
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            match from_row(row) {
                Ok(item) => items.push(item),
                Err(e) => {
                    let id: String = sqlx::Row::try_get(row, "id").map_err(|e| Error::Corrupt {
                        table: "webhook_inbox",
                        column: "id",
                        id: "-".into(),
                        reason: e.to_string(),
                    })?;
                    sqlx::query(&format!(
                        "UPDATE webhook_inbox SET dead_at = {now}, claimed_by = NULL, \
                         claimed_until = NULL, last_error = $1, body_encoding = NULL WHERE id = $2"
                    ))
                    .bind(e.to_string())
                    .bind(&id)
                    .execute(self.pool())
                    .await
                    .map_err(db(format!(
                        "moving unreadable inbox item {id} to the dead letters"
                    )))?;
                }
            }
        }
        items.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(items)
    }

    /// Gives back `worker`'s claim on an unprocessed item so it can be claimed again at once
    /// (a worker shutting down before it processed it); `false` if `worker` did not hold it.
    /// A release is not an attempt: the claim's attempt is given back, so items released
    /// any number of times never become dead letters for it.
    pub async fn inbox_release(&self, id: &InboxId, worker: &str) -> Result<bool> {
        // The claim counted an attempt; a polite release undoes it (only a failure or a
        // claim left to expire uses one up).
        let done = sqlx::query(
            "UPDATE webhook_inbox SET claimed_by = NULL, claimed_until = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE id = $1 AND claimed_by = $2 AND processed_at IS NULL AND dead_at IS NULL",
        )
        .bind(id.as_str())
        .bind(worker)
        .execute(self.pool())
        .await
        .map_err(db(format!("releasing inbox item {id} of {worker:?}")))?;
        Ok(done.rows_affected() > 0)
    }
}
