//! The fields crmkit names in `_fields` when it reads through `/data/search/`, which answers
//! only `id` and `__object_type` unless fields are named (developer.close.com
//! advanced-filtering; `_all` is documented only for `GET ?_fields=_all`).
//!
//! Only fields some Close-side source shows coming back from a search are named: scalars,
//! `custom` and, on contacts, `emails`/`phones` (Close's own close-api-scripts ask search for
//! contact `emails`). A lead's nested `addresses`, `contacts` and `opportunities` are not
//! named: no source shows search returning them, so leads read through search have those
//! lists empty; read them with `GET /lead/{id}/` or `GET /contact/?lead_id=`.

use chrono::{DateTime, Utc};
use crmkit_core::{Error, Result};
use serde_json::Value;

/// What the unified mapping and a typed [`crate::Lead`] read of a lead.
const LEAD: &[&str] = &[
    "id",
    "name",
    "display_name",
    "description",
    "url",
    "status_id",
    "status_label",
    "organization_id",
    "date_created",
    "date_updated",
    "custom",
];

/// What the unified mapping and a typed [`crate::Contact`] read of a contact.
const CONTACT: &[&str] = &[
    "id",
    "lead_id",
    "name",
    "title",
    "emails",
    "phones",
    "organization_id",
    "date_created",
    "date_updated",
    "custom",
];

/// What the unified mapping reads of an opportunity.
const OPPORTUNITY: &[&str] = &[
    "id",
    "lead_id",
    "lead_name",
    "contact_id",
    "note",
    "status_id",
    "status_label",
    "status_type",
    "pipeline_id",
    "value",
    "value_period",
    "value_currency",
    "confidence",
    "date_won",
    "date_created",
    "date_updated",
    "custom",
];

/// What the unified mapping reads of an activity of any type.
const ACTIVITY: &[&str] = &[
    "id",
    "_type",
    "lead_id",
    "contact_id",
    "user_id",
    "note",
    "subject",
    "title",
    "body_text",
    "direction",
    "duration",
    "status",
    "activity_at",
    "date_created",
    "date_updated",
    "custom",
];

/// The fields to name for `object_type`.
pub(crate) fn listing(object_type: &str) -> &'static [&'static str] {
    match object_type {
        "lead" => LEAD,
        "contact" => CONTACT,
        "opportunity" => OPPORTUNITY,
        _ => ACTIVITY,
    }
}

/// The keyset key of a search result: its `time_field` and its id.
pub(crate) fn key(raw: &Value, time_field: &str) -> Result<(DateTime<Utc>, String)> {
    let id = raw["id"]
        .as_str()
        .ok_or_else(|| Error::bad_response("Close returned a search result without an id"))?;
    let time = raw[time_field]
        .as_str()
        .and_then(crmkit_core::time::parse_timestamp)
        .ok_or_else(|| {
            Error::bad_response(format!("Close returned {id} without a valid {time_field}"))
        })?;
    Ok((time, id.to_string()))
}
