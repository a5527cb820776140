//! Sync runs: one row per run of a sync pair, with its outcome, counts and errors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmkit_core::Crm;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::db;
use crate::store::{Reader, new_id, now_ms, ops, str_enum, to_time};
use crate::{Error, Result, RunId};

str_enum! {
    /// Where a run is.
    pub enum RunStatus {
        /// Started, not finished (or its process died: see `started_at`).
        Running => "running",
        /// Finished with every record synced.
        Succeeded => "succeeded",
        /// Finished, some records failed (see `errors`).
        Partial => "partial",
        /// Stopped by an error before finishing.
        Failed => "failed",
        /// Stopped on request.
        Cancelled => "cancelled",
    }
}

/// What a run did, record by record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RunCounts {
    /// Changes read from the feeds.
    pub read: u64,
    /// Records created in a CRM.
    pub created: u64,
    /// Records updated in a CRM.
    pub updated: u64,
    /// Records deleted in a CRM.
    pub deleted: u64,
    /// Changes skipped (unchanged, echoes, unmappable).
    pub skipped: u64,
    /// Writes that failed.
    pub failed: u64,
    /// Conflicts opened.
    pub conflicts: u64,
}

/// The sync state stored under one pair name that moved something (see
/// [`Store::sync_pairs`](crate::Store::sync_pairs)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PairState {
    /// The pair name (`close-hubspot`).
    pub pair: String,
    /// How many change-feed cursors it has stored.
    pub cursors: u64,
    /// How many of its runs wrote to a CRM (created, updated or deleted a record).
    pub writing_runs: u64,
    /// How many write intents it recorded, settled or not.
    pub intents: u64,
    /// How many links join records of exactly this pair's CRMs (two or three of them).
    pub links: u64,
}

/// One run of a sync pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// The sync pair it ran.
    pub pair: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its status.
    pub status: RunStatus,
    /// What it did (so far, while running).
    pub counts: RunCounts,
    /// The errors it met, as JSON objects.
    pub errors: Vec<serde_json::Value>,
}

const SELECT: &str =
    "SELECT id, pair, started_at, finished_at, status, counts, errors FROM sync_runs";

fn from_row(row: &AnyRow) -> Result<Run> {
    let r = Reader::new(row, "sync_runs", "id");
    let counts = serde_json::from_value(r.json("counts")?).map_err(|e| Error::Corrupt {
        table: "sync_runs",
        column: "counts",
        id: r.id().to_owned(),
        reason: e.to_string(),
    })?;
    let errors = match r.json("errors")? {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    Ok(Run {
        id: RunId::new(r.id()),
        pair: r.text("pair")?,
        started_at: r.time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
        status: r.parsed("status")?,
        counts,
        errors,
    })
}

ops! {
    /// Records the start of a run of `pair`.
    write fn start_run(pair: &str) -> Run = start;
    /// Stores the counts of a running run (progress).
    write fn update_run_counts(run: &RunId, counts: &RunCounts) -> Run = progress;
    /// Records the end of a running run: its final status (not `Running`), counts and errors.
    /// A run finishes once: finishing it again is [`Error::InvalidState`].
    write fn finish_run(
        run: &RunId,
        status: RunStatus,
        counts: &RunCounts,
        errors: &[serde_json::Value],
    ) -> Run = finish;
    /// The run with this id.
    read fn run(id: &RunId) -> Option<Run> = get;
    /// The latest `limit` runs of `pair`, newest first.
    read fn runs(pair: &str, limit: u32) -> Vec<Run> = list;
    /// Every pair name under which the store holds sync state that moved something, sorted
    /// by name: change-feed cursors, runs that wrote to a CRM (created, updated or deleted
    /// a record) or write intents (a write sent, or about to be, by a run that may have been
    /// killed before storing its counts), and links joining records of two or more CRMs,
    /// counted under the name of the CRMs each joins (`close-hubspot`: the CRM names
    /// sorted, joined by `-`), since a link stores every side's last synced values even
    /// where its run failed before writing or storing a cursor. A run that wrote nothing
    /// (one that failed at once, on bad credentials) is left out. The sync engine checks it
    /// so that one store serves one set of CRMs.
    read fn sync_pairs() -> Vec<PairState> = pairs;
}

fn counts_text(counts: &RunCounts) -> String {
    serde_json::to_string(counts).unwrap_or_else(|_| "{}".into())
}

async fn start(conn: &mut AnyConnection, pair: &str) -> Result<Run> {
    let run = Run {
        id: RunId::new(new_id()),
        pair: pair.to_owned(),
        started_at: to_time(now_ms()),
        finished_at: None,
        status: RunStatus::Running,
        counts: RunCounts::default(),
        errors: Vec::new(),
    };
    sqlx::query(
        "INSERT INTO sync_runs (id, pair, started_at, finished_at, status, counts, errors) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(run.id.as_str())
    .bind(pair)
    .bind(run.started_at.timestamp_millis())
    .bind(None::<i64>)
    .bind(run.status.as_str())
    .bind(counts_text(&run.counts))
    .bind("[]")
    .execute(conn)
    .await
    .map_err(db(format!("starting a run of {pair}")))?;
    Ok(run)
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &RunId) -> Result<Option<Run>> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading run {id}")))?;
    row.as_ref().map(from_row).transpose()
}

async fn list(conn: &mut AnyConnection, pair: &str, limit: u32) -> Result<Vec<Run>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE pair = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
    ))
    .bind(pair)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db(format!("listing the runs of {pair}")))?;
    rows.iter().map(from_row).collect()
}

async fn pairs(conn: &mut AnyConnection) -> Result<Vec<PairState>> {
    let mut out: BTreeMap<String, PairState> = BTreeMap::new();
    let rows = sqlx::query("SELECT pair, COUNT(*) AS n FROM sync_cursors GROUP BY pair")
        .fetch_all(&mut *conn)
        .await
        .map_err(db("counting the cursors of each pair"))?;
    for row in &rows {
        let r = Reader::new(row, "sync_cursors", "pair");
        entry(&mut out, r.text("pair")?).cursors = count(&r)?;
    }
    // Intents recorded without a pair or run have an empty one: no set of CRMs.
    let rows =
        sqlx::query("SELECT pair, COUNT(*) AS n FROM write_intents WHERE pair <> '' GROUP BY pair")
            .fetch_all(&mut *conn)
            .await
            .map_err(db("counting the write intents of each pair"))?;
    for row in &rows {
        let r = Reader::new(row, "write_intents", "pair");
        entry(&mut out, r.text("pair")?).intents = count(&r)?;
    }
    // The counts are JSON (see `counts_text`): the runs that wrote nothing are left out in
    // SQL by their text, and what is left is told from the counts themselves.
    let rows = sqlx::query("SELECT pair, counts FROM sync_runs WHERE counts NOT LIKE $1")
        .bind(r#"%"created":0,"updated":0,"deleted":0,%"#)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("listing the runs that wrote"))?;
    let mut writing: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        let r = Reader::new(row, "sync_runs", "pair");
        let pair = r.text("pair")?;
        let counts: RunCounts =
            serde_json::from_value(r.json("counts")?).map_err(|e| Error::Corrupt {
                table: "sync_runs",
                column: "counts",
                id: pair.clone(),
                reason: e.to_string(),
            })?;
        if counts.created + counts.updated + counts.deleted > 0 {
            *writing.entry(pair).or_default() += 1;
        }
    }
    for (pair, n) in writing {
        entry(&mut out, pair).writing_runs = n;
    }
    // One bit per CRM a link holds an id of, in the order of their names.
    let rows = sqlx::query(
        "SELECT CAST(CASE WHEN close_id IS NULL THEN 0 ELSE 1 END \
                   + CASE WHEN hubspot_id IS NULL THEN 0 ELSE 2 END \
                   + CASE WHEN salesforce_id IS NULL THEN 0 ELSE 4 END AS BIGINT) AS crms, \
                COUNT(*) AS n \
         FROM crm_sync_records GROUP BY crms",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("counting the links of each set of CRMs"))?;
    for row in &rows {
        let r = Reader::new(row, "crm_sync_records", "crms");
        let bits = r.int("crms")?;
        let crms: Vec<String> = [Crm::Close, Crm::HubSpot, Crm::Salesforce]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, crm)| crm.to_string())
            .collect();
        if crms.len() >= 2 {
            entry(&mut out, crms.join("-")).links = count(&r)?;
        }
    }
    Ok(out.into_values().collect())
}

/// The state of `pair` in `out`, added empty when missing.
fn entry(out: &mut BTreeMap<String, PairState>, pair: String) -> &mut PairState {
    out.entry(pair.clone()).or_insert(PairState {
        pair,
        cursors: 0,
        writing_runs: 0,
        intents: 0,
        links: 0,
    })
}

/// A `COUNT(*) AS n` column.
fn count(r: &Reader<'_>) -> Result<u64> {
    Ok(u64::try_from(r.int("n")?).unwrap_or_default())
}

/// The error for a write to run `id` that found it not running.
async fn not_running(conn: &mut AnyConnection, id: &RunId, to: RunStatus) -> Error {
    match get(conn, id).await {
        Ok(Some(run)) => Error::InvalidState {
            what: "run",
            id: id.to_string(),
            from: run.status.to_string(),
            to: to.to_string(),
        },
        Ok(None) => Error::NotFound {
            what: "run",
            id: id.to_string(),
        },
        Err(e) => e,
    }
}

async fn progress(conn: &mut AnyConnection, run: &RunId, counts: &RunCounts) -> Result<Run> {
    let done = sqlx::query("UPDATE sync_runs SET counts = $1 WHERE id = $2 AND status = $3")
        .bind(counts_text(counts))
        .bind(run.as_str())
        .bind(RunStatus::Running.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db(format!("storing the counts of run {run}")))?;
    if done.rows_affected() == 0 {
        return Err(not_running(conn, run, RunStatus::Running).await);
    }
    reread(conn, run).await
}

async fn finish(
    conn: &mut AnyConnection,
    run: &RunId,
    status: RunStatus,
    counts: &RunCounts,
    errors: &[serde_json::Value],
) -> Result<Run> {
    if status == RunStatus::Running {
        return Err(Error::InvalidInput {
            field: format!("status of run {run}"),
            reason: "a run finishes with a final status, not running".into(),
        });
    }
    let errors = serde_json::Value::Array(errors.to_vec()).to_string();
    let done = sqlx::query(
        "UPDATE sync_runs SET status = $1, counts = $2, errors = $3, finished_at = $4 \
         WHERE id = $5 AND status = $6",
    )
    .bind(status.as_str())
    .bind(counts_text(counts))
    .bind(errors)
    .bind(now_ms())
    .bind(run.as_str())
    .bind(RunStatus::Running.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db(format!("finishing run {run}")))?;
    if done.rows_affected() == 0 {
        return Err(not_running(conn, run, status).await);
    }
    reread(conn, run).await
}

async fn reread(conn: &mut AnyConnection, run: &RunId) -> Result<Run> {
    get(conn, run).await?.ok_or_else(|| Error::NotFound {
        what: "run",
        id: run.to_string(),
    })
}
