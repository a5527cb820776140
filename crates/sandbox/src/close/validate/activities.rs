//! Activities of each type, and tasks.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::super::api_error::ApiError;
use super::super::data::{Data, stamp};
use super::super::kinds::Kind;
use super::{check_custom_fields, int_in, lead_if_sent, one_of, require_row, require_str};

/// An activity of type `seg` (`note`, `call`…) being created or updated.
pub(super) fn activity(
    data: &mut Data,
    seg: &'static str,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    let kind = Kind::Activity(Some(seg));
    // The spec lists no POST for meetings; they come from calendar sync (close-openapi.yml
    // /activity/meeting/).
    if creating && seg == "meeting" {
        return Err(ApiError::MethodNotAllowed);
    }
    lead_if_sent(data, obj, creating)?;
    if let Some(contact) = obj.get("contact_id").and_then(Value::as_str) {
        require_row(data, "contact", contact, "contact")?;
    }
    match seg {
        "note" if creating && !obj.contains_key("note") && !obj.contains_key("note_html") => {
            return Err(ApiError::field("note", "This field is required."));
        }
        "call" => {
            one_of(obj, "direction", &["outbound", "inbound"])?;
            int_in(obj, "duration", 0, i64::from(u32::MAX))?;
            if creating {
                obj.entry("status").or_insert(json!("completed"));
                obj.entry("direction").or_insert(json!("outbound"));
            }
        }
        "email" => {
            let statuses = ["inbox", "draft", "scheduled", "outbox", "sent"];
            if creating {
                require_str(obj, "status", "status")?;
            }
            one_of(obj, "status", &statuses)?;
            if let Some(c) = current
                && c.get("status").and_then(Value::as_str) != Some("draft")
            {
                return Err(ApiError::Errors(vec![
                    "Only draft emails can be modified.".into(),
                ]));
            }
            let status = obj
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("draft")
                .to_string();
            let status = status.as_str();
            if ["inbox", "scheduled", "outbox"].contains(&status) && !obj.contains_key("sender") {
                return Err(ApiError::field("sender", "This field is required."));
            }
            if creating {
                obj.entry("direction")
                    .or_insert(json!(if status == "inbox" {
                        "incoming"
                    } else {
                        "outgoing"
                    }));
            }
        }
        _ => {}
    }
    if creating {
        obj.insert("_type".into(), json!(kind.activity_type()));
        obj.entry("activity_at").or_insert(json!(stamp(Utc::now())));
    }
    check_custom_fields(data, "activity", obj, current)
}

/// A task being created or updated.
pub(super) fn task(
    data: &mut Data,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    lead_if_sent(data, obj, creating)?;
    if creating {
        require_str(obj, "text", "text")?;
        one_of(obj, "_type", &["lead", "outgoing_call"])?;
        obj.entry("_type").or_insert(json!("lead"));
        obj.entry("is_complete").or_insert(json!(false));
        // A task is assigned to its creator unless the body says otherwise (the sandbox's
        // reading of Close's task form; the spec gives no default).
        obj.entry("assigned_to").or_insert(json!(data.user_id));
        let dateless = !obj.contains_key("date");
        obj.entry("is_dateless").or_insert(json!(dateless));
    }
    Ok(())
}
