//! Conflicts (a field changed differently in two CRMs since the last sync) and the review
//! queue (ambiguous matches a person must decide).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmkit_core::{Crm, ObjectKind};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::db;
use crate::store::{Reader, json_text, new_id, now_ms, object_str, ops, str_enum, to_time};
use crate::{ConflictId, Error, LinkId, Result, ReviewId};

str_enum! {
    /// Whether a conflict still needs a decision.
    pub enum ConflictStatus {
        /// Waiting for a decision.
        Open => "open",
        /// Decided.
        Resolved => "resolved",
    }
}

/// A conflict to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConflict {
    link: LinkId,
    entity: ObjectKind,
    field: String,
    values: BTreeMap<Crm, serde_json::Value>,
}

impl NewConflict {
    /// A conflict on `field` of the record linked by `link`.
    pub fn new(link: LinkId, entity: ObjectKind, field: impl Into<String>) -> Self {
        Self {
            link,
            entity,
            field: field.into(),
            values: BTreeMap::new(),
        }
    }

    /// The value `crm` holds for the field.
    pub fn value(mut self, crm: Crm, value: serde_json::Value) -> Self {
        self.values.insert(crm, value);
        self
    }
}

/// A stored conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conflict {
    /// The conflict's id.
    pub id: ConflictId,
    /// The link of the record.
    pub link: LinkId,
    /// The kind of record.
    pub entity: ObjectKind,
    /// The field (unified name).
    pub field: String,
    /// The value each CRM holds.
    pub values: BTreeMap<Crm, serde_json::Value>,
    /// Open or resolved.
    pub status: ConflictStatus,
    /// The value (or decision) chosen.
    pub resolution: Option<serde_json::Value>,
    /// Who resolved it (a person, or a rule's name).
    pub resolved_by: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
}

const CONFLICT_SELECT: &str = "SELECT id, link_id, entity_type, field, close_value, \
    hubspot_value, salesforce_value, status, resolution, resolved_by, resolved_at, created_at \
    FROM sync_conflicts";

fn conflict_from_row(row: &AnyRow) -> Result<Conflict> {
    let r = Reader::new(row, "sync_conflicts", "id");
    let mut values = BTreeMap::new();
    for (crm, column) in [
        (Crm::Close, "close_value"),
        (Crm::HubSpot, "hubspot_value"),
        (Crm::Salesforce, "salesforce_value"),
    ] {
        if let Some(v) = r.opt_json(column)? {
            values.insert(crm, v);
        }
    }
    Ok(Conflict {
        id: ConflictId::new(r.id()),
        link: LinkId::new(r.text("link_id")?),
        entity: r.object("entity_type")?,
        field: r.text("field")?,
        values,
        status: r.parsed("status")?,
        resolution: r.opt_json("resolution")?,
        resolved_by: r.opt_text("resolved_by")?,
        resolved_at: r.opt_time("resolved_at")?,
        created_at: r.time("created_at")?,
    })
}

str_enum! {
    /// Where a review is.
    pub enum ReviewStatus {
        /// Waiting for a person.
        Open => "open",
        /// Decided (see `decision`).
        Resolved => "resolved",
        /// Dropped without a decision.
        Dismissed => "dismissed",
    }
}

/// An ambiguous match waiting for a person: the record and its candidate links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Review {
    /// The review's id.
    pub id: ReviewId,
    /// The kind of record.
    pub entity: ObjectKind,
    /// The record and its candidates, as JSON.
    pub candidates: serde_json::Value,
    /// Why it could not be matched automatically.
    pub reason: String,
    /// Where it is.
    pub status: ReviewStatus,
    /// What was decided.
    pub decision: Option<serde_json::Value>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

const REVIEW_SELECT: &str = "SELECT id, entity_type, candidates, reason, status, decision, \
    decided_by, decided_at, created_at FROM match_reviews";

fn review_from_row(row: &AnyRow) -> Result<Review> {
    let r = Reader::new(row, "match_reviews", "id");
    Ok(Review {
        id: ReviewId::new(r.id()),
        entity: r.object("entity_type")?,
        candidates: r.json("candidates")?,
        reason: r.text("reason")?,
        status: r.parsed("status")?,
        decision: r.opt_json("decision")?,
        decided_by: r.opt_text("decided_by")?,
        decided_at: r.opt_time("decided_at")?,
        created_at: r.time("created_at")?,
    })
}

ops! {
    /// Opens a conflict, or, if one is already open on the same link and field, stores the
    /// new values in it (a conflict seen again by the next run is not a second conflict).
    write fn open_conflict(new: &NewConflict) -> Conflict = open;
    /// Resolves an open conflict with `resolution`, decided by `by`. Resolving a resolved
    /// conflict is [`Error::InvalidState`].
    write fn resolve_conflict(id: &ConflictId, resolution: &serde_json::Value, by: &str) -> Conflict = resolve;
    /// The conflict with this id.
    read fn conflict(id: &ConflictId) -> Option<Conflict> = get_conflict;
    /// Open conflicts, oldest first, at most `limit`.
    read fn open_conflicts(limit: u32) -> Vec<Conflict> = list_open;
    /// Every conflict (open or resolved) of one link, oldest first.
    read fn link_conflicts(link: &LinkId) -> Vec<Conflict> = of_link;
    /// Closes the open conflicts of `link` that a sync run found settled (the values agree
    /// now, or an edit or rule decided them): those on a field not in `still_open` whose
    /// CRMs are all in `seen` (a conflict with a CRM the run did not read is left open).
    /// Each is resolved as superseded by `by`, so a later decision cannot write its stale
    /// values. Returns the conflicts closed.
    write fn supersede_conflicts(link: &LinkId, still_open: &[String], seen: &[Crm], by: &str) -> Vec<Conflict> = supersede;
    /// Queues an ambiguous match of a record of kind `entity` for review; an identical
    /// review still open (same kind, candidates and reason, as a feed that reports the
    /// same case again queues it) is returned instead of queued twice.
    write fn enqueue_review(entity: ObjectKind, candidates: &serde_json::Value, reason: &str) -> Review = enqueue;
    /// Closes an open review as `status` (resolved or dismissed) with `decision`, by `by`.
    write fn decide_review(id: &ReviewId, status: ReviewStatus, decision: &serde_json::Value, by: &str) -> Review = decide;
    /// The review with this id.
    read fn review(id: &ReviewId) -> Option<Review> = get_review;
    /// Open reviews, oldest first, at most `limit`.
    read fn open_reviews(limit: u32) -> Vec<Review> = list_reviews;
}

fn value_of(values: &BTreeMap<Crm, serde_json::Value>, crm: Crm) -> Option<String> {
    values.get(&crm).map(json_text)
}

async fn open(conn: &mut AnyConnection, new: &NewConflict) -> Result<Conflict> {
    if new.values.len() < 2 {
        return Err(Error::InvalidInput {
            field: format!("conflict on {} of link {}", new.field, new.link),
            reason: "a conflict needs the values of at least two CRMs".into(),
        });
    }
    let context = || format!("opening a conflict on {} of link {}", new.field, new.link);
    // One statement against the partial unique index on (link, field) of open conflicts:
    // racing openers leave one open conflict, and a conflict resolved meanwhile is never
    // rewritten (it is no longer in the index, so the insert opens a new one).
    let id = ConflictId::new(new_id());
    // SQLite does not always match a partial index as the conflict target; without a target
    // it takes whichever unique index the row violates, which can only be that one (the
    // id is new).
    let target = if conn.backend_name() == "PostgreSQL" {
        "(link_id, field) WHERE status = 'open' "
    } else {
        ""
    };
    let row = sqlx::query(&format!(
        "INSERT INTO sync_conflicts (id, link_id, entity_type, field, close_value, \
         hubspot_value, salesforce_value, status, resolution, resolved_by, \
         resolved_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT {target}DO UPDATE SET \
         close_value = excluded.close_value, hubspot_value = excluded.hubspot_value, \
         salesforce_value = excluded.salesforce_value \
         WHERE sync_conflicts.status = 'open' \
         RETURNING id"
    ))
    .bind(id.as_str())
    .bind(new.link.as_str())
    .bind(object_str(new.entity))
    .bind(new.field.as_str())
    .bind(value_of(&new.values, Crm::Close))
    .bind(value_of(&new.values, Crm::HubSpot))
    .bind(value_of(&new.values, Crm::Salesforce))
    .bind(ConflictStatus::Open.as_str())
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db(context()))?;
    let Some(row) = row else {
        return Err(Error::InvalidState {
            what: "conflict",
            id: format!("{} of link {}", new.field, new.link),
            from: ConflictStatus::Resolved.to_string(),
            to: ConflictStatus::Open.to_string(),
        });
    };
    let id =
        ConflictId::new(
            sqlx::Row::try_get::<String, _>(&row, 0).map_err(|e| Error::Corrupt {
                table: "sync_conflicts",
                column: "id",
                id: "?".into(),
                reason: e.to_string(),
            })?,
        );
    reread_conflict(conn, &id).await
}

async fn get_conflict(conn: &mut AnyConnection, id: &ConflictId) -> Result<Option<Conflict>> {
    let row = sqlx::query(&format!("{CONFLICT_SELECT} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading conflict {id}")))?;
    row.as_ref().map(conflict_from_row).transpose()
}

async fn reread_conflict(conn: &mut AnyConnection, id: &ConflictId) -> Result<Conflict> {
    get_conflict(conn, id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "conflict",
            id: id.to_string(),
        })
}

async fn list_open(conn: &mut AnyConnection, limit: u32) -> Result<Vec<Conflict>> {
    let rows = sqlx::query(&format!(
        "{CONFLICT_SELECT} WHERE status = $1 ORDER BY created_at, id LIMIT $2"
    ))
    .bind(ConflictStatus::Open.as_str())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db("listing open conflicts"))?;
    rows.iter().map(conflict_from_row).collect()
}

async fn of_link(conn: &mut AnyConnection, link: &LinkId) -> Result<Vec<Conflict>> {
    let rows = sqlx::query(&format!(
        "{CONFLICT_SELECT} WHERE link_id = $1 ORDER BY created_at, id"
    ))
    .bind(link.as_str())
    .fetch_all(conn)
    .await
    .map_err(db(format!("listing the conflicts of link {link}")))?;
    rows.iter().map(conflict_from_row).collect()
}

async fn resolve(
    conn: &mut AnyConnection,
    id: &ConflictId,
    resolution: &serde_json::Value,
    by: &str,
) -> Result<Conflict> {
    let done = sqlx::query(
        "UPDATE sync_conflicts SET status = $1, resolution = $2, resolved_by = $3, \
         resolved_at = $4 WHERE id = $5 AND status = $6",
    )
    .bind(ConflictStatus::Resolved.as_str())
    .bind(json_text(resolution))
    .bind(by)
    .bind(now_ms())
    .bind(id.as_str())
    .bind(ConflictStatus::Open.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db(format!("resolving conflict {id}")))?;
    let current = reread_conflict(conn, id).await?;
    if done.rows_affected() == 0 {
        return Err(Error::InvalidState {
            what: "conflict",
            id: id.to_string(),
            from: current.status.to_string(),
            to: ConflictStatus::Resolved.to_string(),
        });
    }
    Ok(current)
}

/// The resolution stored on a conflict a sync run found settled.
const SUPERSEDED: &str = "superseded: the values agree, or a later edit settled them";

async fn supersede(
    conn: &mut AnyConnection,
    link: &LinkId,
    still_open: &[String],
    seen: &[Crm],
    by: &str,
) -> Result<Vec<Conflict>> {
    let rows = sqlx::query(&format!(
        "{CONFLICT_SELECT} WHERE link_id = $1 AND status = $2 ORDER BY created_at, id"
    ))
    .bind(link.as_str())
    .bind(ConflictStatus::Open.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(db(format!("listing the open conflicts of link {link}")))?;
    let mut closed = Vec::new();
    for row in &rows {
        let c = conflict_from_row(row)?;
        if still_open.contains(&c.field) || !c.values.keys().all(|crm| seen.contains(crm)) {
            continue;
        }
        // Only while still open: one resolved meanwhile by a person keeps their decision.
        let done = sqlx::query(
            "UPDATE sync_conflicts SET status = $1, resolution = $2, resolved_by = $3, \
             resolved_at = $4 WHERE id = $5 AND status = $6",
        )
        .bind(ConflictStatus::Resolved.as_str())
        .bind(json_text(&serde_json::Value::from(SUPERSEDED)))
        .bind(by)
        .bind(now_ms())
        .bind(c.id.as_str())
        .bind(ConflictStatus::Open.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db(format!("closing conflict {}", c.id)))?;
        if done.rows_affected() > 0 {
            closed.push(reread_conflict(conn, &c.id).await?);
        }
    }
    Ok(closed)
}

async fn enqueue(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    candidates: &serde_json::Value,
    reason: &str,
) -> Result<Review> {
    let same = sqlx::query(&format!(
        "{REVIEW_SELECT} WHERE status = $1 AND entity_type = $2 AND candidates = $3 \
         AND reason = $4 ORDER BY created_at, id LIMIT 1"
    ))
    .bind(ReviewStatus::Open.as_str())
    .bind(object_str(entity))
    .bind(json_text(candidates))
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db(format!("looking for an open {entity} review")))?;
    if let Some(row) = same {
        return review_from_row(&row);
    }
    let review = Review {
        id: ReviewId::new(new_id()),
        entity,
        candidates: candidates.clone(),
        reason: reason.to_owned(),
        status: ReviewStatus::Open,
        decision: None,
        decided_by: None,
        decided_at: None,
        created_at: to_time(now_ms()),
    };
    sqlx::query(
        "INSERT INTO match_reviews (id, entity_type, candidates, reason, status, decision, \
         decided_by, decided_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(review.id.as_str())
    .bind(object_str(entity))
    .bind(json_text(candidates))
    .bind(reason)
    .bind(review.status.as_str())
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind(review.created_at.timestamp_millis())
    .execute(conn)
    .await
    .map_err(db(format!("queueing a {entity} match for review")))?;
    Ok(review)
}

async fn get_review(conn: &mut AnyConnection, id: &ReviewId) -> Result<Option<Review>> {
    let row = sqlx::query(&format!("{REVIEW_SELECT} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading review {id}")))?;
    row.as_ref().map(review_from_row).transpose()
}

async fn list_reviews(conn: &mut AnyConnection, limit: u32) -> Result<Vec<Review>> {
    let rows = sqlx::query(&format!(
        "{REVIEW_SELECT} WHERE status = $1 ORDER BY created_at, id LIMIT $2"
    ))
    .bind(ReviewStatus::Open.as_str())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db("listing open reviews"))?;
    rows.iter().map(review_from_row).collect()
}

async fn decide(
    conn: &mut AnyConnection,
    id: &ReviewId,
    status: ReviewStatus,
    decision: &serde_json::Value,
    by: &str,
) -> Result<Review> {
    if status == ReviewStatus::Open {
        return Err(Error::InvalidInput {
            field: format!("status of review {id}"),
            reason: "a decision closes the review: resolved or dismissed".into(),
        });
    }
    let done = sqlx::query(
        "UPDATE match_reviews SET status = $1, decision = $2, decided_by = $3, decided_at = $4 \
         WHERE id = $5 AND status = $6",
    )
    .bind(status.as_str())
    .bind(json_text(decision))
    .bind(by)
    .bind(now_ms())
    .bind(id.as_str())
    .bind(ReviewStatus::Open.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db(format!("deciding review {id}")))?;
    let current = get_review(conn, id).await?.ok_or_else(|| Error::NotFound {
        what: "review",
        id: id.to_string(),
    })?;
    if done.rows_affected() == 0 {
        return Err(Error::InvalidState {
            what: "review",
            id: id.to_string(),
            from: current.status.to_string(),
            to: status.to_string(),
        });
    }
    Ok(current)
}
