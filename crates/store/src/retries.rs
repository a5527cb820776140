//! The retry list: records a sync run could not sync, kept per (pair, CRM, kind, record id)
//! so the kind's change-feed cursor can move past them without losing them.
//!
//! A failure is recorded with [`Store::record_retry`] (in the transaction that moves the
//! cursor past the record, so the record is on the list before the cursor passes it). Each
//! failure counts an attempt and sets when the record is due again, backing off
//! exponentially up to a cap ([`RetryPolicy`]); after `max_attempts` the record stays on the
//! list as *given up* (no next attempt), visible in [`Store::retries`], never dropped in
//! silence. [`Store::clear_retry`] removes a record once it synced. A person who fixed what
//! made a record fail re-arms it with [`Store::reset_retry`] (one record) or
//! [`Store::reset_given_up`] (every given-up one): its attempts start again from zero and
//! it is due at once, so the next run tries it again (`crmkit sync retry reset`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmkit_core::{ObjectKind, RecordRef};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::db;
use crate::store::{Reader, crm_str, now_ms, object_str, ops, to_ms};
use crate::{Error, Result};

/// How failed records are retried: the delay after the first failure, doubled after each
/// further one up to `max_delay`, and how many failures give a record up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The wait after the first failure (zero: due at the next run).
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// Failures after which a record is given up (kept on the list, not retried). At least 1.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(6 * 3600),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failure.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        self.first_delay
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_delay)
    }
}

/// A record on the retry list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Retry {
    /// The sync pair that failed to sync it.
    pub pair: String,
    /// The record.
    pub record: RecordRef,
    /// Why its last attempt failed.
    pub reason: String,
    /// How many attempts failed.
    pub attempts: i64,
    /// When the first attempt failed.
    pub first_failed_at: DateTime<Utc>,
    /// When the last attempt failed.
    pub last_failed_at: DateTime<Utc>,
    /// When it is due again; `None` once given up.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The ids of the records of the same CRM and kind that were merged into this one, when
    /// the merges wait on it ([`Store::remember_merge`](crate::Store::remember_merge)), one
    /// per line ([`Retry::merged_losers`]): the run that syncs this record follows them then.
    pub merged_from: Option<String>,
}

impl Retry {
    /// The ids of the records merged into this one whose merges wait on it
    /// ([`Retry::merged_from`]), in the order they were noted.
    pub fn merged_losers(&self) -> impl Iterator<Item = &str> {
        self.merged_from
            .as_deref()
            .into_iter()
            .flat_map(str::lines)
            .filter(|id| !id.is_empty())
    }

    /// Whether it failed too often to be retried (it stays listed until it syncs).
    pub fn given_up(&self) -> bool {
        self.next_attempt_at.is_none()
    }

    /// Whether a run at `now` should try it again.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_attempt_at.is_some_and(|t| t <= now)
    }
}

const COLUMNS: &str = "pair, crm, object, record_id, reason, attempts, first_failed_at, \
    last_failed_at, next_attempt_at, merged_from";

fn from_row(row: &AnyRow) -> Result<Retry> {
    let r = Reader::new(row, "sync_retries", "record_id");
    Ok(Retry {
        pair: r.text("pair")?,
        record: RecordRef::new(r.crm("crm")?, r.object("object")?, r.text("record_id")?),
        reason: r.text("reason")?,
        attempts: r.int("attempts")?,
        first_failed_at: r.time("first_failed_at")?,
        last_failed_at: r.time("last_failed_at")?,
        next_attempt_at: r.opt_time("next_attempt_at")?,
        merged_from: r.opt_text("merged_from")?,
    })
}

ops! {
    /// Records a failed attempt to sync `record` for `pair`: puts it on the list (or counts
    /// one more attempt), and sets when it is due again by `policy`, or gives it up after
    /// `policy.max_attempts` failures. Returns the entry as stored.
    write fn record_retry(
        pair: &str,
        record: &RecordRef,
        reason: &str,
        policy: &RetryPolicy,
    ) -> Retry = put;
    /// Notes on `record`'s entry of `pair`'s list (recorded first, in the same transaction)
    /// that the record `merged_from` of its CRM and kind was merged into it and the merge
    /// waits on it (its stage cannot be mapped yet, say), so the run that retries it
    /// follows the merge; merges noted before are kept beside it (several records may be
    /// merged into one while it waits), and a failure recorded later keeps the notes.
    /// `false` if `record` is not listed (nothing is written then). An id that is empty,
    /// holds a line break or is `record`'s own is refused ([`crate::Error::InvalidInput`]).
    write fn remember_merge(pair: &str, record: &RecordRef, merged_from: &str) -> bool = note_merge;
    /// Removes `record` from `pair`'s list (it synced); `false` if it was not listed.
    write fn clear_retry(pair: &str, record: &RecordRef) -> bool = clear;
    /// `pair`'s listed records, of `kind` only when given, due or given up, oldest failure
    /// first.
    read fn retries(pair: &str, kind: Option<ObjectKind>) -> Vec<Retry> = list;
    /// Re-arms `record`'s entry on `pair`'s list, given up or waiting: its attempts start
    /// again from zero and it is due now. Returns the entry as stored, `None` if `record`
    /// is not listed (nothing is written then).
    write fn reset_retry(pair: &str, record: &RecordRef) -> Option<Retry> = reset;
    /// Re-arms every given-up entry of `pair`'s list as [`Store::reset_retry`](crate::Store::reset_retry) does; the
    /// entries still waiting keep their back-off. Returns the entries re-armed.
    write fn reset_given_up(pair: &str) -> Vec<Retry> = reset_all_given_up;
    /// `record`'s entry on `pair`'s list, if it is listed.
    read fn retry(pair: &str, record: &RecordRef) -> Option<Retry> = fetch;
    /// Stores `entry` as it is (its pair, attempts, times, given-up state and reason),
    /// replacing the entry of the same pair and record if there is one. For moving an
    /// entry from one pair name to another (the sync engine adopting an older crmkit's
    /// state); a failed attempt is [`Store::record_retry`](crate::Store::record_retry).
    write fn put_retry(entry: &Retry) -> () = put_as_is;
}

async fn fetch(conn: &mut AnyConnection, pair: &str, record: &RecordRef) -> Result<Option<Retry>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sync_retries \
         WHERE pair = $1 AND crm = $2 AND object = $3 AND record_id = $4"
    ))
    .bind(pair)
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .fetch_optional(conn)
    .await
    .map_err(db(format!("reading the retry entry of {record}")))?;
    row.as_ref().map(from_row).transpose()
}

async fn put(
    conn: &mut AnyConnection,
    pair: &str,
    record: &RecordRef,
    reason: &str,
    policy: &RetryPolicy,
) -> Result<Retry> {
    if policy.max_attempts == 0 {
        return Err(Error::InvalidInput {
            field: "retry policy max_attempts".into(),
            reason: "must be at least 1".into(),
        });
    }
    let now = now_ms();
    let attempts = fetch(&mut *conn, pair, record)
        .await?
        .map_or(1, |r| r.attempts.saturating_add(1));
    let next = (attempts < i64::from(policy.max_attempts)).then(|| {
        let delay = policy.delay(u32::try_from(attempts).unwrap_or(u32::MAX));
        now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
    });
    sqlx::query(&format!(
        "INSERT INTO sync_retries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, NULL) \
         ON CONFLICT (pair, crm, object, record_id) DO UPDATE SET \
         reason = excluded.reason, attempts = excluded.attempts, \
         last_failed_at = excluded.last_failed_at, next_attempt_at = excluded.next_attempt_at"
    ))
    .bind(pair)
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .bind(reason)
    .bind(attempts)
    .bind(now)
    .bind(next)
    .execute(&mut *conn)
    .await
    .map_err(db(format!("putting {record} on the retry list")))?;
    fetch(conn, pair, record)
        .await?
        .ok_or_else(|| Error::Corrupt {
            table: "sync_retries",
            column: "record_id",
            id: record.to_string(),
            reason: "the entry just stored is missing".into(),
        })
}

async fn put_as_is(conn: &mut AnyConnection, entry: &Retry) -> Result<()> {
    let record = &entry.record;
    sqlx::query(&format!(
        "INSERT INTO sync_retries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (pair, crm, object, record_id) DO UPDATE SET \
         reason = excluded.reason, attempts = excluded.attempts, \
         first_failed_at = excluded.first_failed_at, last_failed_at = excluded.last_failed_at, \
         next_attempt_at = excluded.next_attempt_at, merged_from = excluded.merged_from"
    ))
    .bind(entry.pair.as_str())
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .bind(entry.reason.as_str())
    .bind(entry.attempts)
    .bind(to_ms(entry.first_failed_at))
    .bind(to_ms(entry.last_failed_at))
    .bind(entry.next_attempt_at.map(to_ms))
    .bind(entry.merged_from.as_deref())
    .execute(conn)
    .await
    .map_err(db(format!(
        "storing the retry entry of {record} under {}",
        entry.pair
    )))?;
    Ok(())
}

async fn note_merge(
    conn: &mut AnyConnection,
    pair: &str,
    record: &RecordRef,
    merged_from: &str,
) -> Result<bool> {
    let what =
        || format!("noting on the retry entry of {record} the merge of {merged_from} into it");
    // The noted ids are kept one per line: an id holding a line break would be read back
    // as other ids. No CRM's record ids hold one.
    if merged_from.is_empty() || merged_from.contains(['\n', '\r']) {
        return Err(crate::Error::InvalidInput {
            field: "merged_from".into(),
            reason: format!("{merged_from:?} is no record id (merged into {record})"),
        });
    }
    // Noted, the winner's own id would have the run follow a merge of the winner into
    // itself; a feed saying so is wrong, and no CRM merges a record with itself.
    if merged_from == record.id {
        return Err(crate::Error::InvalidInput {
            field: "merged_from".into(),
            reason: format!("{record} cannot be merged into itself"),
        });
    }
    let row = sqlx::query(
        "SELECT merged_from FROM sync_retries \
         WHERE pair = $1 AND crm = $2 AND object = $3 AND record_id = $4",
    )
    .bind(pair)
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db(what()))?;
    let Some(row) = row else {
        return Ok(false);
    };
    let noted: Option<String> = row.try_get("merged_from").map_err(db(what()))?;
    let mut losers: Vec<&str> = noted.as_deref().into_iter().flat_map(str::lines).collect();
    if !losers.contains(&merged_from) {
        losers.push(merged_from);
    }
    let done = sqlx::query(
        "UPDATE sync_retries SET merged_from = $5 \
         WHERE pair = $1 AND crm = $2 AND object = $3 AND record_id = $4",
    )
    .bind(pair)
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .bind(losers.join("\n"))
    .execute(conn)
    .await
    .map_err(db(what()))?;
    Ok(done.rows_affected() > 0)
}

async fn clear(conn: &mut AnyConnection, pair: &str, record: &RecordRef) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM sync_retries \
         WHERE pair = $1 AND crm = $2 AND object = $3 AND record_id = $4",
    )
    .bind(pair)
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .execute(conn)
    .await
    .map_err(db(format!("taking {record} off the retry list")))?;
    Ok(done.rows_affected() > 0)
}

async fn list(
    conn: &mut AnyConnection,
    pair: &str,
    kind: Option<ObjectKind>,
) -> Result<Vec<Retry>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sync_retries \
         WHERE pair = $1 AND ($2 = '' OR object = $2) \
         ORDER BY first_failed_at, crm, record_id"
    ))
    .bind(pair)
    .bind(kind.map_or("", object_str))
    .fetch_all(conn)
    .await
    .map_err(db(format!("listing the retry list of {pair}")))?;
    rows.iter().map(from_row).collect()
}

async fn reset(conn: &mut AnyConnection, pair: &str, record: &RecordRef) -> Result<Option<Retry>> {
    sqlx::query(
        "UPDATE sync_retries SET attempts = 0, next_attempt_at = $5 \
         WHERE pair = $1 AND crm = $2 AND object = $3 AND record_id = $4",
    )
    .bind(pair)
    .bind(crm_str(record.crm))
    .bind(object_str(record.object))
    .bind(record.id.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await
    .map_err(db(format!("re-arming the retry entry of {record}")))?;
    fetch(conn, pair, record).await
}

async fn reset_all_given_up(conn: &mut AnyConnection, pair: &str) -> Result<Vec<Retry>> {
    let given_up: Vec<Retry> = list(&mut *conn, pair, None)
        .await?
        .into_iter()
        .filter(Retry::given_up)
        .collect();
    let mut out = Vec::with_capacity(given_up.len());
    for entry in given_up {
        if let Some(e) = reset(&mut *conn, pair, &entry.record).await? {
            out.push(e);
        }
    }
    Ok(out)
}
