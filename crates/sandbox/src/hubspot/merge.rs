//! `POST /crm/v3/objects/{contacts|companies|deals}/merge` and
//! `POST /crm/v3/objects/contacts/gdpr-delete` (crm-objects-*-v3.json).

use serde_json::Value;

use super::api_error::ApiError;
use super::data::Data;
use super::kinds::ObjectType;
use super::objects::{Shape, all_set, render};

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Merges `objectIdToMerge` into `primaryObjectId` → 200 with the primary. The primary's
/// values win; empty ones are filled from the other record; a merged contact's email joins
/// `hs_additional_emails` (HubSpot "Merge records" knowledge-base article); associations
/// move to the primary; the other record's id joins the primary's `hs_merged_object_ids`
/// and from then on answers with the primary (it is not archived).
pub(crate) fn merge(data: &mut Data, t: &ObjectType, body: &Value) -> Result<Value, ApiError> {
    if !matches!(t.plural, "contacts" | "companies" | "deals") {
        return Err(ApiError::invalid(format!("{} cannot be merged", t.plural)));
    }
    let (primary, other) = (
        text(&body["primaryObjectId"]),
        text(&body["objectIdToMerge"]),
    );
    if primary == other {
        return Err(ApiError::invalid("A record cannot be merged with itself"));
    }
    let missing = |id: &str| ApiError::not_found(format!("resource not found: {id}"));
    let keep = data
        .live_properties(t, &primary)
        .ok_or_else(|| missing(&primary))?;
    let mut gone = data
        .live_properties(t, &other)
        .ok_or_else(|| missing(&other))?;
    let maintained = t.maintained();
    gone.retain(|k, _| !maintained.contains(&k.as_str()));
    let other_email = gone
        .remove("email")
        .and_then(|v| v.as_str().map(str::to_string));
    // The winner lists every id merged into it, its own earlier merges included
    // (`hs_merged_object_ids`, semicolon-separated like HubSpot's multi-value properties).
    let merged_ids = [
        keep.get("hs_merged_object_ids").and_then(Value::as_str),
        gone.get("hs_merged_object_ids").and_then(Value::as_str),
        Some(other.as_str()),
    ]
    .into_iter()
    .flatten()
    .flat_map(|s| s.split(';'))
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(";");
    gone.remove("hs_merged_object_ids");
    data.merge_away(t, &other, &primary);
    let mut fill: Vec<(String, String)> = gone
        .into_iter()
        .filter(|(k, _)| !keep.contains_key(k))
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect();
    if let Some(email) = other_email {
        let extra = match keep.get("hs_additional_emails").and_then(Value::as_str) {
            Some(list) if !list.is_empty() => format!("{list};{email}"),
            _ => email,
        };
        fill.retain(|(k, _)| k != "hs_additional_emails");
        fill.push(("hs_additional_emails".to_string(), extra));
    }
    fill.push(("hs_merged_object_ids".to_string(), merged_ids));
    let row = data.update(t, &primary, fill)?;
    data.move_associations(t, &other, &primary);
    data.merge_event(t, &primary, &other);
    Ok(render(
        data,
        t,
        &row,
        &Shape {
            properties: Some(all_set(&row)),
            ..Shape::default()
        },
    ))
}

/// Deletes a contact for good → 204 (`objectId`, optionally with `idProperty: email`).
pub(crate) fn gdpr_delete(data: &mut Data, t: &ObjectType, body: &Value) -> Result<(), ApiError> {
    if t.plural != "contacts" {
        return Err(ApiError::not_found("GDPR delete exists for contacts only"));
    }
    let key = text(&body["objectId"]);
    let id = data
        .resolve(t, &key, body["idProperty"].as_str())?
        .ok_or_else(|| ApiError::not_found(format!("resource not found: {key}")))?;
    data.purge(t, &id);
    Ok(())
}
