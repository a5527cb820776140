//! Organisation configuration: lead and opportunity statuses, pipelines, custom fields and
//! webhook subscriptions.

use serde_json::{Map, Value, json};

use super::super::api_error::ApiError;
use super::super::data::Data;
use super::{one_of, require_row, require_str};

/// A lead status (named by `label`) or pipeline (named by `name`) being created or updated:
/// its name is all Close requires, and only on create.
pub(super) fn named(
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
    key: &str,
) -> Result<(), ApiError> {
    if current.is_none() {
        require_str(obj, key, key)?;
    }
    Ok(())
}

/// An opportunity status being created or updated.
pub(super) fn opportunity_status(
    data: &mut Data,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    if creating {
        require_str(obj, "label", "label")?;
        require_str(obj, "type", "type")?;
        let p = require_str(obj, "pipeline_id", "pipeline_id")?;
        require_row(data, "pipeline", p, "pipeline")?;
    }
    one_of(obj, "type", &["active", "won", "lost"])
}

/// A custom field of `object` being created or updated.
pub(super) fn custom_field(
    object: &'static str,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    if creating {
        require_str(obj, "name", "name")?;
        require_str(obj, "type", "type")?;
        obj.insert("object_type".into(), json!(object));
        obj.entry("accepts_multiple_values").or_insert(json!(false));
    }
    one_of(
        obj,
        "type",
        &[
            "text", "number", "date", "datetime", "choices", "user", "contact", "hidden",
        ],
    )?;
    if obj.get("type").and_then(Value::as_str) == Some("choices")
        && !obj.get("choices").is_some_and(Value::is_array)
    {
        return Err(ApiError::field(
            "choices",
            "Choices fields need a list of choices.",
        ));
    }
    Ok(())
}

/// A webhook subscription being created or updated.
pub(super) fn webhook(
    data: &mut Data,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    if creating || obj.contains_key("url") {
        let url = require_str(obj, "url", "url")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ApiError::field("url", "Enter a valid URL."));
        }
    }
    if creating || obj.contains_key("events") {
        let ok = obj
            .get("events")
            .and_then(Value::as_array)
            .is_some_and(|evs| {
                !evs.is_empty()
                    && evs
                        .iter()
                        .all(|e| e["object_type"].is_string() && e["action"].is_string())
            });
        if !ok {
            return Err(ApiError::field(
                "events",
                "A non-empty list of {object_type, action} is required.",
            ));
        }
    }
    one_of(obj, "status", &["active", "paused"])?;
    if creating {
        if data.rows("webhook").count() >= 40 {
            return Err(ApiError::Errors(vec![
                "An organization may have at most 40 webhook subscriptions.".into(),
            ]));
        }
        let mut key = [0u8; 32];
        key.iter_mut().for_each(|b| *b = data.rng.u8(..));
        obj.insert("signature_key".into(), json!(hex::encode(key)));
        obj.entry("status").or_insert(json!("active"));
        obj.entry("verify_ssl").or_insert(json!(true));
    }
    Ok(())
}
