//! The event log, `GET /event/` and `GET /event/{id}/`: newest first, cursor paging, and
//! only the filter combinations the spec lists (close-openapi.yml `/event/`).

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::{Data, parse_time};

const FILTERS: &[&str] = &[
    "object_type",
    "object_id",
    "action",
    "lead_id",
    "user_id",
    "request_id",
];

/// The supported combinations, as listed in close-openapi.yml `/event/`; no filter at all
/// reads the whole log.
const COMBINATIONS: &[&[&str]] = &[
    &[],
    &["object_type", "object_id"],
    &["object_type", "action"],
    &["object_id", "action"],
    &["lead_id", "object_type"],
    &["lead_id", "object_type", "action"],
    &["lead_id", "user_id", "object_type"],
    &["lead_id", "user_id", "object_type", "action"],
    &["lead_id", "user_id"],
    &["user_id", "object_id"],
    &["user_id", "object_id", "action"],
    &["user_id", "object_type"],
    &["user_id", "object_type", "action"],
    &["lead_id"],
    &["user_id"],
    &["request_id"],
];

/// `_limit` is "capped at and defaulting to 50" (close-openapi.yml `/event/`).
const MAX_LIMIT: usize = 50;

/// `GET /event/`.
pub(crate) fn list(data: &Data, params: &[(String, String)]) -> Result<Value, ApiError> {
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    if get("_skip").is_some() {
        return Err(ApiError::Errors(vec![
            "_skip is not supported here; use _cursor.".into(),
        ]));
    }
    let limit = match get("_limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::field("_limit", "A valid integer is required."))?,
        None => MAX_LIMIT,
    };
    let limit = if limit == 0 {
        MAX_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    let used: Vec<&str> = FILTERS
        .iter()
        .copied()
        .filter(|f| get(f).is_some())
        .collect();
    if !COMBINATIONS
        .iter()
        .any(|combo| combo.len() == used.len() && combo.iter().all(|c| used.contains(c)))
    {
        return Err(ApiError::Errors(vec![format!(
            "This combination of filters is not supported: {}. See the supported combinations at developer.close.com/api/resources/events.",
            used.join(", ")
        )]));
    }
    let bound = |key: &str| {
        get(key)
            .map(|v| parse_time(v).ok_or_else(|| ApiError::field(key, "Invalid date.")))
            .transpose()
    };
    let (gte, lte) = (bound("date_updated__gte")?, bound("date_updated__lte")?);
    let (gt, lt) = (bound("date_updated__gt")?, bound("date_updated__lt")?);
    // A cursor is an event's sequence number: the next page starts just before it.
    let end = match get("_cursor") {
        None => data.events.len(),
        Some(c) => {
            let seq = c
                .strip_prefix("ev.")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| ApiError::field("_cursor", "Invalid or expired cursor."))?;
            data.events.partition_point(|(s, _)| *s < seq)
        }
    };
    let fits = |(_, e): &&(u64, Value)| {
        used.iter().all(|f| e[*f].as_str() == get(f))
            && e["date_updated"]
                .as_str()
                .and_then(parse_time)
                .is_some_and(|t| {
                    gte.is_none_or(|g| t >= g)
                        && lte.is_none_or(|l| t <= l)
                        && gt.is_none_or(|g| t > g)
                        && lt.is_none_or(|l| t < l)
                })
    };
    let matching = data.events.range(..end).rev().filter(fits);
    let mut page: Vec<&(u64, Value)> = matching.take(limit + 1).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|(s, _)| format!("ev.{s}"))
    } else {
        None
    };
    // The newer page: the `limit` matching events just after this page, read with a cursor
    // one past the newest of them; null on the first page or when nothing newer matches.
    let previous = match get("_cursor") {
        None => None,
        Some(_) => data
            .events
            .range(end..)
            .filter(fits)
            .take(limit)
            .last()
            .map(|(s, _)| format!("ev.{}", s.saturating_add(1))),
    };
    let events: Vec<&Value> = page.iter().map(|(_, e)| e).collect();
    Ok(json!({"data": events, "cursor_next": next, "cursor_previous": previous}))
}

/// `GET /event/{id}/`.
pub(crate) fn get(data: &Data, id: &str) -> Result<Value, ApiError> {
    data.events
        .iter()
        .rev()
        .find(|(_, e)| e["id"] == id)
        .map(|(_, e)| e.clone())
        .ok_or_else(|| ApiError::NotFound("Event".into()))
}
