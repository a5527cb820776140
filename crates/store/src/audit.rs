//! The audit trail: one row per field a sync changed in a CRM (or in the store), kept after
//! the link is gone.

use chrono::{DateTime, Utc};
use crmkit_core::Crm;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::db;
use crate::store::{Reader, crm_str, json_text, new_id, now_ms, ops, to_time};
use crate::{AuditId, LinkId, Result, RunId};

/// A field change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    link: LinkId,
    run: Option<RunId>,
    crm: Crm,
    field: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    source: String,
}

impl NewAuditEntry {
    /// A change of `field` of the record linked by `link`, written to `crm`; `source` says
    /// what made it (e.g. `"sync:close"`, `"conflict:manual"`).
    pub fn new(
        link: LinkId,
        crm: Crm,
        field: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            link,
            run: None,
            crm,
            field: field.into(),
            before: None,
            after: None,
            source: source.into(),
        }
    }

    /// The run that made the change.
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// The value before and after (`None`: absent).
    pub fn change(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}

/// A recorded field change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The entry's id.
    pub id: AuditId,
    /// The link of the record.
    pub link: LinkId,
    /// The run that made the change.
    pub run: Option<RunId>,
    /// The CRM written to.
    pub crm: Crm,
    /// The field (unified name).
    pub field: String,
    /// The value before.
    pub before: Option<serde_json::Value>,
    /// The value after.
    pub after: Option<serde_json::Value>,
    /// What made the change.
    pub source: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

const SELECT: &str = "SELECT id, link_id, run_id, crm, field, old_value, new_value, source, \
    changed_at FROM sync_audit";

fn from_row(row: &AnyRow) -> Result<AuditEntry> {
    let r = Reader::new(row, "sync_audit", "id");
    Ok(AuditEntry {
        id: AuditId::new(r.id()),
        link: LinkId::new(r.text("link_id")?),
        run: r.opt_text("run_id")?.map(RunId::new),
        crm: r.crm("crm")?,
        field: r.text("field")?,
        before: r.opt_json("old_value")?,
        after: r.opt_json("new_value")?,
        source: r.text("source")?,
        at: r.time("changed_at")?,
    })
}

ops! {
    /// Records field changes, all or none.
    write fn record_audit(entries: &[NewAuditEntry]) -> Vec<AuditEntry> = record;
    /// The changes made to one linked record, oldest first.
    read fn link_audit(link: &LinkId) -> Vec<AuditEntry> = of_link;
    /// The changes made by one run, oldest first.
    read fn run_audit(run: &RunId) -> Vec<AuditEntry> = of_run;
}

async fn record(conn: &mut AnyConnection, entries: &[NewAuditEntry]) -> Result<Vec<AuditEntry>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let entry = AuditEntry {
            id: AuditId::new(new_id()),
            link: e.link.clone(),
            run: e.run.clone(),
            crm: e.crm,
            field: e.field.clone(),
            before: e.before.clone(),
            after: e.after.clone(),
            source: e.source.clone(),
            at: to_time(now_ms()),
        };
        sqlx::query(
            "INSERT INTO sync_audit (id, link_id, run_id, crm, field, old_value, new_value, \
             source, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.id.as_str())
        .bind(entry.link.as_str())
        .bind(entry.run.as_ref().map(|r| r.as_str().to_owned()))
        .bind(crm_str(entry.crm))
        .bind(entry.field.as_str())
        .bind(entry.before.as_ref().map(json_text))
        .bind(entry.after.as_ref().map(json_text))
        .bind(entry.source.as_str())
        .bind(entry.at.timestamp_millis())
        .execute(&mut *conn)
        .await
        .map_err(db(format!(
            "recording the change of {} on link {}",
            e.field, e.link
        )))?;
        out.push(entry);
    }
    Ok(out)
}

async fn of_link(conn: &mut AnyConnection, link: &LinkId) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE link_id = $1 ORDER BY changed_at, id"
    ))
    .bind(link.as_str())
    .fetch_all(conn)
    .await
    .map_err(db(format!("reading the audit of link {link}")))?;
    rows.iter().map(from_row).collect()
}

async fn of_run(conn: &mut AnyConnection, run: &RunId) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE run_id = $1 ORDER BY changed_at, id"
    ))
    .bind(run.as_str())
    .fetch_all(conn)
    .await
    .map_err(db(format!("reading the audit of run {run}")))?;
    rows.iter().map(from_row).collect()
}
