//! The write-intent log: every write to a CRM is recorded before it is sent, so a crash at
//! any instant leaves a trace to recover from.
//!
//! An intent goes `pending` (recorded) → `sent` (handed to the CRM) → `settled` (the CRM
//! confirmed it, with the resulting id) or `failed` (the CRM refused it). After a crash,
//! [`Store::unsettled_intents`](crate::Store::unsettled_intents) lists what a sync pair left
//! pending or sent; its `marker` (the idempotency key the create carried) lets the engine find in the
//! CRM whether a sent write arrived, instead of sending it twice.
//!
//! Every intent belongs to a sync pair (given with [`NewIntent::pair`], or that of its run).
//! Several processes may sync different pairs on one database at once, and a pair's
//! unsettled intents may be in flight in its live process rather than left by a crash. So
//! reconcile a pair's unsettled intents **only while holding that pair's lease** (and fence
//! the transactions that settle them, see [`Tx::fence`](crate::Tx::fence)).

use chrono::{DateTime, Utc};
use crmkit_core::{Crm, ObjectKind};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{db, is_unique_violation};
use crate::store::{
    Reader, crm_str, json_text, new_id, now_ms, object_str, ops, str_enum, to_time,
};
use crate::{Error, IntentId, LinkId, Result, RunId};

str_enum! {
    /// What a write does.
    pub enum IntentOp {
        /// Creates a record.
        Create => "create",
        /// Patches a record.
        Update => "update",
        /// Deletes a record.
        Delete => "delete",
    }
}

str_enum! {
    /// Where a write is.
    pub enum IntentState {
        /// Recorded, not yet sent.
        Pending => "pending",
        /// Sent; the CRM's answer is not stored yet.
        Sent => "sent",
        /// The CRM confirmed it.
        Settled => "settled",
        /// The CRM refused it.
        Failed => "failed",
    }
}

/// A write to record before sending it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntent {
    pair: Option<String>,
    run: Option<RunId>,
    link: Option<LinkId>,
    crm: Crm,
    object: ObjectKind,
    op: IntentOp,
    marker: String,
    payload: serde_json::Value,
}

impl NewIntent {
    /// A write of `op` on an `object` in `crm`, identified by `marker` (its idempotency key:
    /// unique across all intents) and carrying `payload` (the patch or record as JSON).
    pub fn new(
        crm: Crm,
        object: ObjectKind,
        op: IntentOp,
        marker: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            pair: None,
            run: None,
            link: None,
            crm,
            object,
            op,
            marker: marker.into(),
            payload,
        }
    }

    /// The sync pair the write belongs to. Without it, the intent takes the pair of its run
    /// (see [`NewIntent::run`]); with neither, its pair is empty.
    pub fn pair(mut self, pair: impl Into<String>) -> Self {
        self.pair = Some(pair.into());
        self
    }

    /// The run that plans the write.
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// The link the write is for.
    pub fn link(mut self, link: LinkId) -> Self {
        self.link = Some(link);
        self
    }
}

/// A recorded write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Intent {
    /// The intent's id.
    pub id: IntentId,
    /// The sync pair it belongs to (empty for intents recorded without a pair or run, and
    /// for those recorded before schema version 5 without a run).
    #[serde(default)]
    pub pair: String,
    /// The run that planned it.
    pub run: Option<RunId>,
    /// The link it is for.
    pub link: Option<LinkId>,
    /// The CRM written to.
    pub crm: Crm,
    /// The kind of record written.
    pub object: ObjectKind,
    /// What the write does.
    pub op: IntentOp,
    /// Its idempotency key.
    pub marker: String,
    /// The patch or record sent.
    pub payload: serde_json::Value,
    /// Where it is.
    pub state: IntentState,
    /// The CRM's id of the record written, once settled.
    pub result_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT id, pair, run_id, link_id, crm, object, op, marker, payload, state, \
    result_id, error, created_at, updated_at FROM write_intents";

fn from_row(row: &AnyRow) -> Result<Intent> {
    let r = Reader::new(row, "write_intents", "id");
    Ok(Intent {
        id: IntentId::new(r.id()),
        pair: r.text("pair")?,
        run: r.opt_text("run_id")?.map(RunId::new),
        link: r.opt_text("link_id")?.map(LinkId::new),
        crm: r.crm("crm")?,
        object: r.object("object")?,
        op: r.parsed("op")?,
        marker: r.text("marker")?,
        payload: r.json("payload")?,
        state: r.parsed("state")?,
        result_id: r.opt_text("result_id")?,
        error: r.opt_text("error")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

ops! {
    /// Records a write as `pending` before it is sent. A marker already recorded is
    /// [`Error::MarkerTaken`] (look it up with
    /// [`Store::intent_by_marker`](crate::Store::intent_by_marker)).
    write fn record_intent(new: &NewIntent) -> Intent = record;
    /// Marks a pending (or already sent, when resending) intent as `sent`.
    write fn mark_intent_sent(id: &IntentId) -> Intent = mark_sent;
    /// Marks a pending or sent intent as `settled`, with the CRM's id of the record written.
    write fn settle_intent(id: &IntentId, result_id: Option<&str>) -> Intent = settle;
    /// Marks a pending or sent intent as `failed`, with the reason.
    write fn fail_intent(id: &IntentId, error: &str) -> Intent = fail;
    /// The intent with this id.
    read fn intent(id: &IntentId) -> Option<Intent> = get;
    /// The intent recorded with this marker.
    read fn intent_by_marker(marker: &str) -> Option<Intent> = by_marker;
    /// The intents of sync pair `pair` still `pending` or `sent`, oldest first: what a crash
    /// may have left half-done. Call it only while holding the pair's lease: otherwise they
    /// may be in flight in the process that holds it.
    read fn unsettled_intents(pair: &str) -> Vec<Intent> = unsettled;
    /// Every intent still `pending` or `sent`, of all pairs, oldest first. For inspection
    /// (`crmkit` status, tests): to reconcile, use
    /// [`Store::unsettled_intents`](crate::Store::unsettled_intents) with the pair whose lease
    /// is held.
    read fn all_unsettled_intents() -> Vec<Intent> = unsettled_all;
    /// The intents of one run, oldest first.
    read fn run_intents(run: &RunId) -> Vec<Intent> = of_run;
}

async fn record(conn: &mut AnyConnection, new: &NewIntent) -> Result<Intent> {
    if new.marker.is_empty() {
        return Err(Error::InvalidInput {
            field: "intent marker".into(),
            reason: "empty: every write needs an idempotency key".into(),
        });
    }
    let now = now_ms();
    let pair = match (&new.pair, &new.run) {
        (Some(pair), _) => pair.clone(),
        (None, Some(run)) => {
            sqlx::query_scalar::<_, String>("SELECT pair FROM sync_runs WHERE id = $1")
                .bind(run.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db(format!("reading the pair of run {run}")))?
                .ok_or_else(|| Error::NotFound {
                    what: "run",
                    id: run.to_string(),
                })?
        }
        (None, None) => String::new(),
    };
    let intent = Intent {
        id: IntentId::new(new_id()),
        pair,
        run: new.run.clone(),
        link: new.link.clone(),
        crm: new.crm,
        object: new.object,
        op: new.op,
        marker: new.marker.clone(),
        payload: new.payload.clone(),
        state: IntentState::Pending,
        result_id: None,
        error: None,
        created_at: to_time(now),
        updated_at: to_time(now),
    };
    let inserted = sqlx::query(
        "INSERT INTO write_intents (id, run_id, link_id, crm, object, op, marker, payload, \
         state, result_id, error, created_at, updated_at, pair) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(intent.id.as_str())
    .bind(intent.run.as_ref().map(|r| r.as_str().to_owned()))
    .bind(intent.link.as_ref().map(|l| l.as_str().to_owned()))
    .bind(crm_str(intent.crm))
    .bind(object_str(intent.object))
    .bind(intent.op.as_str())
    .bind(intent.marker.as_str())
    .bind(json_text(&intent.payload))
    .bind(intent.state.as_str())
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(now)
    .bind(now)
    .bind(intent.pair.as_str())
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(intent),
        Err(e) if is_unique_violation(&e) => {
            // On PostgreSQL the transaction is aborted now, so the holder cannot be read here.
            Err(Error::MarkerTaken {
                marker: new.marker.clone(),
            })
        }
        Err(e) => Err(db(format!(
            "recording the {} {} {} intent {:?}",
            new.crm, new.object, new.op, new.marker
        ))(e)),
    }
}

async fn get(conn: &mut AnyConnection, id: &IntentId) -> Result<Option<Intent>> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading intent {id}")))?;
    row.as_ref().map(from_row).transpose()
}

async fn by_marker(conn: &mut AnyConnection, marker: &str) -> Result<Option<Intent>> {
    let row = sqlx::query(&format!("{SELECT} WHERE marker = $1"))
        .bind(marker)
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading the intent with marker {marker:?}")))?;
    row.as_ref().map(from_row).transpose()
}

async fn unsettled(conn: &mut AnyConnection, pair: &str) -> Result<Vec<Intent>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE pair = $1 AND state IN ($2, $3) ORDER BY created_at, id"
    ))
    .bind(pair)
    .bind(IntentState::Pending.as_str())
    .bind(IntentState::Sent.as_str())
    .fetch_all(conn)
    .await
    .map_err(db(format!(
        "listing the unsettled intents of pair {pair:?}"
    )))?;
    rows.iter().map(from_row).collect()
}

async fn unsettled_all(conn: &mut AnyConnection) -> Result<Vec<Intent>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE state IN ($1, $2) ORDER BY created_at, id"
    ))
    .bind(IntentState::Pending.as_str())
    .bind(IntentState::Sent.as_str())
    .fetch_all(conn)
    .await
    .map_err(db("listing unsettled intents"))?;
    rows.iter().map(from_row).collect()
}

async fn of_run(conn: &mut AnyConnection, run: &RunId) -> Result<Vec<Intent>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE run_id = $1 ORDER BY created_at, id"
    ))
    .bind(run.as_str())
    .fetch_all(conn)
    .await
    .map_err(db(format!("listing the intents of run {run}")))?;
    rows.iter().map(from_row).collect()
}

/// Moves intent `id` from pending or sent to `to`, storing `result_id` and `error`.
async fn transition(
    conn: &mut AnyConnection,
    id: &IntentId,
    to: IntentState,
    result_id: Option<&str>,
    error: Option<&str>,
) -> Result<Intent> {
    let done = sqlx::query(
        "UPDATE write_intents SET state = $1, result_id = $2, error = $3, updated_at = $4 \
         WHERE id = $5 AND state IN ($6, $7)",
    )
    .bind(to.as_str())
    .bind(result_id.map(str::to_owned))
    .bind(error.map(str::to_owned))
    .bind(now_ms())
    .bind(id.as_str())
    .bind(IntentState::Pending.as_str())
    .bind(IntentState::Sent.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db(format!("marking intent {id} {to}")))?;
    let current = get(conn, id).await?.ok_or_else(|| Error::NotFound {
        what: "intent",
        id: id.to_string(),
    })?;
    if done.rows_affected() == 0 {
        return Err(Error::InvalidState {
            what: "intent",
            id: id.to_string(),
            from: current.state.to_string(),
            to: to.to_string(),
        });
    }
    Ok(current)
}

async fn mark_sent(conn: &mut AnyConnection, id: &IntentId) -> Result<Intent> {
    transition(conn, id, IntentState::Sent, None, None).await
}

async fn settle(
    conn: &mut AnyConnection,
    id: &IntentId,
    result_id: Option<&str>,
) -> Result<Intent> {
    transition(conn, id, IntentState::Settled, result_id, None).await
}

async fn fail(conn: &mut AnyConnection, id: &IntentId, error: &str) -> Result<Intent> {
    transition(conn, id, IntentState::Failed, None, Some(error)).await
}
