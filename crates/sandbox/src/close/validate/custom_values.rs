//! `custom.cf_…` values: known fields, typed values, multi-value `.add` / `.remove`.

use serde_json::{Map, Value, json};

use super::super::api_error::ApiError;
use super::super::data::{Data, parse_time};

/// Checks and normalises the custom-field values in `obj` for `object`.
pub(crate) fn check_custom_fields(
    data: &Data,
    object: &str,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let keys: Vec<String> = obj
        .keys()
        .filter(|k| k.starts_with("custom."))
        .cloned()
        .collect();
    let mut errors = Map::new();
    for key in keys {
        let rest = &key["custom.".len()..];
        let (cf_id, op) = match rest.rsplit_once('.') {
            Some((id, op @ ("add" | "remove"))) => (id, Some(op)),
            _ => (rest, None),
        };
        let Some(cf) = data.rows("custom_field").find(|cf| {
            cf["id"] == cf_id && (cf["object_type"] == object || cf["object_type"] == "shared")
        }) else {
            errors.insert(key.clone(), json!("Unknown custom field."));
            continue;
        };
        let multi = cf["accepts_multiple_values"].as_bool().unwrap_or(false);
        let value = obj.remove(&key).unwrap_or(Value::Null);
        let base = format!("custom.{cf_id}");
        let check = |v: &Value| -> Result<(), String> {
            match cf["type"].as_str().unwrap_or("text") {
                "number" if !v.is_number() => Err("A valid number is required.".into()),
                "choices" => {
                    let ok = cf["choices"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|x| x == v));
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("{v} is not a valid choice."))
                    }
                }
                "date" | "datetime" if v.as_str().and_then(parse_time).is_none() => {
                    Err("A valid date is required.".into())
                }
                _ => Ok(()),
            }
        };
        let result = match (op, value) {
            (_, Value::Null) if op.is_none() => {
                obj.insert(base, Value::Null);
                Ok(())
            }
            (None, Value::Array(items)) if multi => items.iter().try_for_each(check).map(|_| {
                obj.insert(base, Value::Array(items));
            }),
            (None, Value::Array(_)) => Err("This field accepts one value.".to_string()),
            (None, v) => check(&v).map(|_| {
                let v = if multi { Value::Array(vec![v]) } else { v };
                obj.insert(base, v);
            }),
            (Some(op), v) if multi => check(&v).map(|_| {
                let mut items: Vec<Value> = current
                    .and_then(|c| c.get(&base))
                    .and_then(|x| x.as_array().cloned())
                    .unwrap_or_default();
                items.retain(|x| x != &v);
                if op == "add" {
                    items.push(v);
                }
                obj.insert(base, Value::Array(items));
            }),
            (Some(_), _) => Err("Only multi-value fields support .add and .remove.".to_string()),
        };
        if let Err(msg) = result {
            errors.insert(key, Value::String(msg));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Fields(errors))
    }
}
