//! Reading the command line's HubSpot inputs: `--data`, `--filter` and `--sort`.

use crmkit_core::{Error, ErrorKind, Result};
use crmkit_hubspot::Properties;
use crmkit_hubspot::search::{Direction, Filter, Operator};
use serde_json::Value;

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::Validation, message)
}

/// The properties of `--data`: `{"properties":{…}}` or the properties object itself. HubSpot
/// takes every value as a string, so numbers and booleans are sent as their text and `null`
/// as the empty string, which clears the value (crm-objects-contacts-v3.json, PATCH).
pub fn properties(data: &str) -> Result<Properties> {
    let value: Value = serde_json::from_str(data)
        .map_err(|e| invalid(format!("--data is not valid JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(invalid("--data must be a JSON object of properties".into()));
    };
    let fields = match top.remove("properties") {
        Some(Value::Object(inner)) if top.is_empty() => inner,
        Some(_) => {
            return Err(invalid(
                "--data must be {\"properties\": {…}} or the properties object alone".into(),
            ));
        }
        None => top,
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(invalid(format!(
                        "--data property {name} must be a string, number, boolean or null"
                    )));
                }
            };
            Ok((name, text))
        })
        .collect()
}

/// One `--filter 'prop OP value'`: `IN` and `NOT_IN` take comma-separated values, `BETWEEN`
/// takes `low,high`, `HAS_PROPERTY` and `NOT_HAS_PROPERTY` take none.
pub fn filter(text: &str) -> Result<Filter> {
    let usage = || {
        invalid(format!(
            "--filter {text:?} is not 'property OPERATOR value' (operators: EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN)"
        ))
    };
    let (property, rest) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(usage)?;
    let rest = rest.trim_start();
    let (op, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let value = value.trim();
    let operator: Operator =
        serde_json::from_value(Value::String(op.to_ascii_uppercase())).map_err(|_| usage())?;
    let list = || value.split(',').map(str::trim).map(str::to_string);
    let filter = match operator {
        Operator::HasProperty if value.is_empty() => Filter::has_property(property),
        Operator::NotHasProperty if value.is_empty() => Filter::not_has_property(property),
        Operator::HasProperty | Operator::NotHasProperty => {
            return Err(invalid(format!("--filter {text:?}: {op} takes no value")));
        }
        _ if value.is_empty() => return Err(usage()),
        Operator::In => Filter::is_in(property, list()),
        Operator::NotIn => Filter::not_in(property, list()),
        Operator::Between => match value.split_once(',') {
            Some((low, high)) => Filter::between(property, low.trim(), high.trim()),
            None => {
                return Err(invalid(format!(
                    "--filter {text:?}: BETWEEN takes low,high"
                )));
            }
        },
        Operator::Eq => Filter::eq(property, value),
        Operator::Neq => Filter::neq(property, value),
        Operator::Lt => Filter::lt(property, value),
        Operator::Lte => Filter::lte(property, value),
        Operator::Gt => Filter::gt(property, value),
        Operator::Gte => Filter::gte(property, value),
        Operator::ContainsToken => Filter::contains_token(property, value),
        Operator::NotContainsToken => Filter::not_contains_token(property, value),
    };
    Ok(filter)
}

/// `--sort prop[:asc|desc]`, ascending when no direction is given.
pub fn sort(text: &str) -> Result<(String, Direction)> {
    let (property, direction) = match text.trim().rsplit_once(':') {
        Some((p, d)) => (p, d),
        None => (text.trim(), "asc"),
    };
    let direction = match direction.to_ascii_lowercase().as_str() {
        "asc" | "ascending" => Direction::Ascending,
        "desc" | "descending" => Direction::Descending,
        _ => {
            return Err(invalid(format!(
                "--sort {text:?} is not property[:asc|desc]"
            )));
        }
    };
    if property.is_empty() {
        return Err(invalid(format!("--sort {text:?} names no property")));
    }
    Ok((property.to_string(), direction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_takes_both_shapes_and_strings_every_value() {
        let wrapped = properties(r#"{"properties":{"email":"a@b.c","n":3}}"#).expect("ok");
        let bare = properties(r#"{"email":"a@b.c","n":3}"#).expect("ok");
        assert_eq!(wrapped, bare);
        assert_eq!(bare["n"], "3");
        assert_eq!(properties(r#"{"x":null}"#).expect("ok")["x"], "");
        assert!(properties("[1]").is_err());
        assert!(properties(r#"{"x":{"y":1}}"#).is_err());
        assert!(properties(r#"{"properties":{},"associations":[]}"#).is_err());
    }

    #[test]
    fn filters_read_operator_and_value() {
        let f = filter("email EQ a b@c.d").expect("ok");
        assert_eq!(f, Filter::eq("email", "a b@c.d"));
        assert_eq!(
            filter("dealstage in a, b").expect("ok"),
            Filter::is_in("dealstage", ["a", "b"])
        );
        assert_eq!(
            filter("amount between 1,5").expect("ok"),
            Filter::between("amount", "1", "5")
        );
        assert_eq!(
            filter("phone HAS_PROPERTY").expect("ok"),
            Filter::has_property("phone")
        );
        for bad in [
            "email",
            "email LIKE x",
            "email EQ",
            "phone HAS_PROPERTY x",
            "a BETWEEN 1",
        ] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sorts_default_to_ascending() {
        assert_eq!(
            sort("createdate").expect("ok"),
            ("createdate".into(), Direction::Ascending)
        );
        assert_eq!(
            sort("amount:desc").expect("ok"),
            ("amount".into(), Direction::Descending)
        );
        assert!(sort("amount:up").is_err());
        assert!(sort(":desc").is_err());
    }
}
