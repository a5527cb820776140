//! The event log, `GET /event/` and `GET /event/{id}/`: newest first, cursor paging, and
//! only the filter combinations Close allows.

use serde_json::{Value, json};

use super::data::{Data, parse_time};
use super::resources::ApiError;

const FILTERS: &[&str] = &[
    "object_type",
    "object_id",
    "action",
    "lead_id",
    "user_id",
    "request_id",
];

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
        None => 50,
    };
    if !(1..=50).contains(&limit) {
        return Err(ApiError::field("_limit", "Must be between 1 and 50."));
    }
    let used: Vec<&str> = FILTERS
        .iter()
        .copied()
        .filter(|f| get(f).is_some())
        .collect();
    let allowed = [
        &[][..],
        &["object_type"],
        &["object_type", "object_id"],
        &["object_type", "action"],
        &["object_id", "action"],
        &["object_id"],
        &["lead_id"],
        &["object_type", "lead_id"],
        &["object_type", "action", "lead_id"],
        &["lead_id", "user_id"],
        &["user_id"],
        &["object_type", "user_id"],
        &["action", "user_id"],
        &["object_type", "action", "user_id"],
        &["request_id"],
    ];
    if !allowed
        .iter()
        .any(|combo| combo.len() == used.len() && combo.iter().all(|c| used.contains(c)))
    {
        return Err(ApiError::Errors(vec![format!(
            "This combination of filters is not supported: {}.",
            used.join(", ")
        )]));
    }
    let gte = get("date_updated__gte")
        .map(|v| parse_time(v).ok_or_else(|| ApiError::field("date_updated__gte", "Invalid date.")))
        .transpose()?;
    let lte = get("date_updated__lte")
        .map(|v| parse_time(v).ok_or_else(|| ApiError::field("date_updated__lte", "Invalid date.")))
        .transpose()?;
    // Cursors are event ids: the next page starts after that event, going back in time.
    let start_after = get("_cursor");
    let mut iter = data.events.iter().rev().peekable();
    if let Some(cursor) = start_after {
        if !data.events.iter().any(|e| e["id"] == cursor) {
            return Err(ApiError::field("_cursor", "Invalid or expired cursor."));
        }
        for e in iter.by_ref() {
            if e["id"] == cursor {
                break;
            }
        }
    }
    let matching = iter.filter(|e| {
        used.iter().all(|f| e[*f].as_str() == get(f))
            && e["date_updated"]
                .as_str()
                .and_then(parse_time)
                .is_some_and(|t| gte.is_none_or(|g| t >= g) && lte.is_none_or(|l| t <= l))
    });
    let mut page: Vec<Value> = Vec::with_capacity(limit + 1);
    for e in matching {
        page.push(e.clone());
        if page.len() > limit {
            break;
        }
    }
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|e| e["id"].clone())
    } else {
        None
    };
    Ok(json!({"data": page, "cursor_next": next, "cursor_previous": start_after}))
}

/// `GET /event/{id}/`.
pub(crate) fn get(data: &Data, id: &str) -> Result<Value, ApiError> {
    data.events
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Event".into()))
}
