//! The Close change feed: keyset slices over `/data/search/` on (`date_updated`, id) for
//! upserts, and the event log for tombstones.

use chrono::{DateTime, Duration, Utc};
use crmkit_core::connector::{Change, SkipReason};
use crmkit_core::keyset::{self, KeysetConfig, KeysetCursor};
use crmkit_core::{ChangeCursor, Crm, Error, ErrorKind, ObjectKind, RecordRef, Result};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{activity_kind, to_record};
use crate::client::Client;
use crate::models::Event;
use crate::webhook::EventQuery;

/// Where a Close change feed stands: the keyset position of the upserts and the time up to
/// which deletions were read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FeedCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upserts: Option<KeysetCursor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deletes: Option<DateTime<Utc>>,
}

impl FeedCursor {
    fn encode(&self) -> ChangeCursor {
        ChangeCursor(format!(
            "close1.{}",
            serde_json::to_string(self).unwrap_or_default()
        ))
    }

    fn decode(c: &ChangeCursor) -> Result<Self> {
        c.0.strip_prefix("close1.")
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Validation,
                    "this change cursor was not made by the Close connector",
                )
                .with_crm(Crm::Close)
            })
    }
}

/// The object type Close searches for a kind.
pub(super) fn object_type(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Company => "lead",
        ObjectKind::Person => "contact",
        ObjectKind::Deal => "opportunity",
        ObjectKind::Activity => "activity",
    }
}

/// The event-log object types whose deletions concern `kind` (A9).
fn deleted_types(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Company => &["lead"],
        ObjectKind::Person => &["contact"],
        ObjectKind::Deal => &["opportunity"],
        ObjectKind::Activity => &[
            "activity.note",
            "activity.call",
            "activity.email",
            "activity.meeting",
        ],
    }
}

fn event_time(e: &Event) -> Option<DateTime<Utc>> {
    e.extra
        .get("date_updated")
        .and_then(Value::as_str)
        .or(e.date_created.as_deref())
        .and_then(crmkit_core::time::parse_timestamp)
}

/// One search result as a change: an upsert, or a skip when it has no unified form.
fn to_change(kind: ObjectKind, raw: Value, cursor: ChangeCursor) -> Change {
    let id = raw["id"].as_str().unwrap_or_default().to_string();
    let skipped = |cause: SkipReason, reason: String| Change::Skipped {
        record: RecordRef::new(Crm::Close, kind, id.clone()),
        cause,
        reason,
        cursor: cursor.clone(),
    };
    if kind == ObjectKind::Activity {
        let close_type = raw["_type"].as_str().unwrap_or_default();
        if activity_kind(close_type).is_none() {
            return skipped(
                SkipReason::Unmappable,
                format!("Close {close_type:?} activities have no unified equivalent"),
            );
        }
    }
    match to_record(kind, raw) {
        Ok(record) => Change::Upsert {
            record,
            cursor: cursor.clone(),
        },
        Err(e) => skipped(SkipReason::Malformed, e.to_string()),
    }
}

/// The change feed of `kind` after `since`.
pub(super) fn changes(
    client: &Client,
    kind: ObjectKind,
    since: Option<ChangeCursor>,
    overlap: Duration,
    page_size: usize,
) -> BoxStream<'static, Result<Change>> {
    let start = match since.as_ref().map(FeedCursor::decode).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return stream::once(async { Err(e) }).boxed(),
    };
    // Fixed for the run: what changes after it is read next run, not shifted into this one.
    let until = Utc::now();
    tombstones(client, kind, &start, until, overlap)
        .chain(upserts(
            client,
            kind,
            start.upserts,
            until,
            overlap,
            page_size,
        ))
        .boxed()
}

/// Deletions logged since the last run (none on a first run: there is nothing to remove),
/// oldest first.
fn tombstones(
    client: &Client,
    kind: ObjectKind,
    start: &FeedCursor,
    until: DateTime<Utc>,
    overlap: Duration,
) -> BoxStream<'static, Result<Change>> {
    let Some(since) = start.deletes else {
        return stream::empty().boxed();
    };
    let from = since.checked_sub_signed(overlap).unwrap_or(since);
    let client = client.clone();
    let upserts = start.upserts.clone();
    stream::once(async move {
        let mut found: Vec<(DateTime<Utc>, String)> = Vec::new();
        for object_type in deleted_types(kind) {
            // Newest first (A9): read back to the cursor's time, no further.
            let events: Vec<Event> = client
                .events(EventQuery {
                    object_type: Some((*object_type).to_string()),
                    action: Some("deleted".into()),
                    date_updated_gte: Some(crmkit_core::time::format_close(from)),
                    ..EventQuery::default()
                })
                .try_take_while(|e| {
                    let keep = event_time(e).is_none_or(|t| t >= from);
                    async move { Ok(keep) }
                })
                .try_collect()
                .await?;
            for e in events {
                if let (Some(t), Some(id)) = (event_time(&e), e.object_id) {
                    if t < until {
                        found.push((t, id));
                    }
                }
            }
        }
        found.sort();
        let changes: Vec<Result<Change>> = found
            .into_iter()
            .map(|(t, id)| {
                Ok(Change::Deleted {
                    record: RecordRef::new(Crm::Close, kind, id),
                    at: Some(t),
                    cursor: FeedCursor {
                        upserts: upserts.clone(),
                        deletes: Some(t),
                    }
                    .encode(),
                })
            })
            .collect();
        Ok::<_, Error>(stream::iter(changes))
    })
    .try_flatten()
    .boxed()
}

fn upserts(
    client: &Client,
    kind: ObjectKind,
    start: Option<KeysetCursor>,
    until: DateTime<Utc>,
    overlap: Duration,
    page_size: usize,
) -> BoxStream<'static, Result<Change>> {
    let ot = object_type(kind);
    let fields: Vec<String> = crate::fields::listing(ot)
        .iter()
        .map(|f| f.to_string())
        .collect();
    let config = KeysetConfig::new(page_size).overlap(overlap).until(until);
    let client = client.clone();
    keyset::slices(
        config,
        start,
        |raw: &Value| crate::fields::key(raw, "date_updated"),
        move |req| {
            let client = client.clone();
            let fields = fields.clone();
            async move { client.slice(ot, "date_updated", &fields, &req).await }
        },
    )
    .map_ok(move |s| {
        let cursor = FeedCursor {
            upserts: Some(s.cursor),
            deletes: Some(until),
        }
        .encode();
        to_change(kind, s.item, cursor)
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = FeedCursor {
            upserts: Some(KeysetCursor {
                time: Utc::now(),
                ids: vec!["lead_1".into()],
            }),
            deletes: Some(Utc::now()),
        };
        let back = FeedCursor::decode(&c.encode()).unwrap();
        assert_eq!(back.upserts, c.upserts);
        let e = FeedCursor::decode(&ChangeCursor("2024-01-01".into())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
    }

    #[test]
    fn an_sms_is_skipped_with_a_reason() {
        let c = to_change(
            ObjectKind::Activity,
            json!({"id": "acti_1", "_type": "SMS"}),
            ChangeCursor("x".into()),
        );
        let Change::Skipped { record, reason, .. } = c else {
            panic!("skipped")
        };
        assert_eq!(record.id, "acti_1");
        assert!(reason.contains("SMS"));
    }
}
