//! Close's validation rules per collection, with the defaults it fills on create. On update
//! only the fields sent are checked and nothing is defaulted: PUT is a partial update
//! (developer.close.com/topics/updating-specific-fields).

mod activities;
mod config_objects;
mod contacts;
mod custom_values;
mod leads;
mod opportunities;

use serde_json::{Map, Value};

use super::api_error::ApiError;
use super::data::Data;
use super::kinds::Kind;

pub(super) use custom_values::check_custom_fields;

pub(super) fn require_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a str, ApiError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Null) | None => Err(ApiError::field(field, "This field is required.")),
        _ => Err(ApiError::field(field, "Not a valid string.")),
    }
}

fn require_lead(data: &Data, obj: &Map<String, Value>) -> Result<(), ApiError> {
    let lead = require_str(obj, "lead_id", "lead")?;
    require_row(data, "lead", lead, "lead")
}

/// Requires a known lead on create, and checks it whenever an update moves the object.
pub(super) fn lead_if_sent(
    data: &Data,
    obj: &Map<String, Value>,
    creating: bool,
) -> Result<(), ApiError> {
    if creating || obj.contains_key("lead_id") {
        require_lead(data, obj)?;
    }
    Ok(())
}

/// Fails with Close's "Object does not exist." on `field` when `id` is not in `collection`.
pub(super) fn require_row(
    data: &Data,
    collection: &'static str,
    id: &str,
    field: &str,
) -> Result<(), ApiError> {
    data.get(collection, id)
        .map(|_| ())
        .ok_or_else(|| ApiError::field(field, "Object does not exist."))
}

pub(super) fn one_of(
    obj: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
) -> Result<(), ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(v) => Err(ApiError::field(
            key,
            &format!(
                "\"{}\" is not a valid choice (one of: {}).",
                v.as_str().unwrap_or(&v.to_string()),
                allowed.join(", ")
            ),
        )),
    }
}

pub(super) fn int_in(
    obj: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<(), ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(ApiError::field(
                key,
                &format!("Must be an integer between {min} and {max}."),
            )),
        },
    }
}

/// Normalises a phone number to E.164 the way Close does for North American numbers.
/// Checks `obj` (the fields being written) for `kind`, filling defaults on create.
pub(super) fn validate(
    data: &mut Data,
    kind: Kind,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    match kind {
        Kind::Lead => leads::lead(data, obj, current),
        Kind::Contact => contacts::contact(data, obj, current),
        Kind::Opportunity => opportunities::opportunity(data, obj, current),
        Kind::Task => activities::task(data, obj, current),
        Kind::Activity(Some(seg)) => activities::activity(data, seg, obj, current),
        Kind::Activity(None) => Err(ApiError::MethodNotAllowed),
        Kind::LeadStatus => config_objects::named(obj, current, "label"),
        Kind::OpportunityStatus => config_objects::opportunity_status(data, obj, current),
        Kind::Pipeline => config_objects::named(obj, current, "name"),
        Kind::CustomField(object) => config_objects::custom_field(object, obj, current),
        Kind::Webhook => config_objects::webhook(data, obj, current),
    }
}
