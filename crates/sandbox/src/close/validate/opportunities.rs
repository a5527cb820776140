//! Opportunities: value in cents, confidence, status within its pipeline, `date_won`.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::super::api_error::ApiError;
use super::super::data::Data;
use super::{check_custom_fields, int_in, lead_if_sent, one_of, require_row};

/// An opportunity being created or updated.
pub(super) fn opportunity(
    data: &mut Data,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    lead_if_sent(data, obj, creating)?;
    int_in(obj, "value", 0, i64::MAX)?;
    int_in(obj, "confidence", 0, 100)?;
    one_of(obj, "value_period", &["one_time", "monthly", "annual"])?;
    let pipeline = obj
        .get("pipeline_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(p) = &pipeline {
        require_row(data, "pipeline", p, "pipeline")?;
    }
    if let Some(sid) = obj.get("status_id").and_then(Value::as_str) {
        let Some(status) = data.get("status_opportunity", sid) else {
            return Err(ApiError::field("status", "Object does not exist."));
        };
        if let Some(p) = &pipeline
            && status["pipeline_id"] != p.as_str()
        {
            return Err(ApiError::field(
                "status",
                "The status does not belong to the given pipeline.",
            ));
        }
        if status["type"] == "won"
            && current.is_none_or(|c| c.get("date_won").is_none_or(Value::is_null))
        {
            obj.insert(
                "date_won".into(),
                json!(Utc::now().format("%Y-%m-%d").to_string()),
            );
        }
    } else if creating {
        let first = data
            .rows("status_opportunity")
            .find(|s| {
                pipeline
                    .as_ref()
                    .is_none_or(|p| s["pipeline_id"] == p.as_str())
            })
            .map(|s| s["id"].clone());
        obj.insert("status_id".into(), first.unwrap_or(Value::Null));
    }
    obj.remove("pipeline_id");
    if creating {
        obj.entry("value_period").or_insert(json!("one_time"));
        obj.entry("value_currency").or_insert(json!("USD"));
        obj.entry("confidence").or_insert(json!(0));
        obj.entry("note").or_insert(json!(""));
        obj.entry("date_won").or_insert(Value::Null);
    }
    check_custom_fields(data, "opportunity", obj, current)
}
