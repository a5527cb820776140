//! Leads: status by id or label, nested contacts only on create.

use serde_json::{Map, Value, json};

use super::super::api_error::ApiError;
use super::super::data::Data;
use super::check_custom_fields;

/// A lead being created or updated.
pub(super) fn lead(
    data: &mut Data,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    if !creating && obj.contains_key("contacts") {
        return Err(ApiError::field(
            "contacts",
            "Nested contacts cannot be updated here; use the contact endpoints.",
        ));
    }
    if obj.contains_key("status") && obj.contains_key("status_id") {
        return Err(ApiError::Errors(vec![
            "Give status_id or status, not both.".into(),
        ]));
    }
    if let Some(label) = obj.remove("status") {
        let found = data
            .rows("status_lead")
            .find(|s| s["label"] == label)
            .map(|s| s["id"].clone());
        match found {
            Some(id) => {
                obj.insert("status_id".into(), id);
            }
            None => {
                return Err(ApiError::field(
                    "status",
                    &format!(
                        "Not a valid choice. Please go to Customizations in your organization settings and add {label} to the list of lead statuses."
                    ),
                ));
            }
        }
    }
    if let Some(id) = obj.get("status_id") {
        if data
            .get("status_lead", id.as_str().unwrap_or_default())
            .is_none()
        {
            return Err(ApiError::field(
                "status",
                &format!(
                    "Not a valid choice. Please go to Customizations in your organization settings and add {id} to the list of lead statuses."
                ),
            ));
        }
    } else if creating {
        if let Some(first) = data.rows("status_lead").next() {
            obj.insert("status_id".into(), first["id"].clone());
        }
    }
    if creating {
        obj.entry("name").or_insert(json!(""));
        obj.entry("description").or_insert(json!(""));
        obj.entry("url").or_insert(Value::Null);
        obj.entry("addresses").or_insert(json!([]));
    }
    check_custom_fields(data, "lead", obj, current)
}
