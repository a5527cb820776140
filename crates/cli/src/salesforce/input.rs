//! Reading the command line's Salesforce inputs (fields to write, `--external-id`) and
//! shaping records for the table and CSV printers (columns from the SOQL select list).

use crmkit_core::{Error, ErrorKind, Result};
use crmkit_salesforce::sobjects::Fields;
use serde_json::{Map, Value};

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::Validation, message)
}

/// The fields to write: the JSON object of `--data`, then each `Field=value` on top of it
/// (text as given; `Field=` with nothing after it sends `null`, which clears the field).
/// Only the fields named are sent, so an update changes nothing else.
pub fn fields(data: Option<&str>, assignments: &[String]) -> Result<Fields> {
    let mut out = match data {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(invalid("--data must be a JSON object of fields".into())),
            Err(e) => return Err(invalid(format!("--data is not valid JSON: {e}"))),
        },
        None => Map::new(),
    };
    for a in assignments {
        let (name, value) = assignment(a)?;
        out.insert(name, value);
    }
    Ok(out)
}

/// One `Field=value`.
fn assignment(text: &str) -> Result<(String, Value)> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(invalid(format!(
            "{text:?} is not Field=value (fields to write are Field=value words or --data '{{…}}')"
        )));
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(format!(
            "{text:?} does not start with a field name (letters, digits and _)"
        )));
    }
    let value = if value.is_empty() {
        Value::Null
    } else {
        Value::String(value.to_string())
    };
    Ok((name.to_string(), value))
}

/// Whether a word is a `Field=value` rather than a record id (Salesforce ids are letters
/// and digits only).
pub fn is_assignment(word: &str) -> bool {
    word.contains('=')
}

/// `--external-id Field=value`.
pub fn external_id(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((field, value)) if !field.trim().is_empty() && !value.is_empty() => {
            Ok((field.trim().to_string(), value.to_string()))
        }
        _ => Err(invalid(format!(
            "--external-id {text:?} is not Field=value, e.g. --external-id Email__c=ada@example.com"
        ))),
    }
}

/// The columns of a SOQL query's select list, in its order: field paths as written
/// (`Account.Name`), a subquery by its relationship name (`Contacts`), an aggregate by its
/// alias or Salesforce's `expr0`, `expr1`… names (SOQL and SOSL Reference, "Using Aliases
/// with GROUP BY", developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_alias.htm).
/// Empty when the text has no `SELECT … FROM`.
pub fn columns(soql: &str) -> Vec<String> {
    let text = soql.trim();
    let Some(rest) = strip_keyword(text, "select") else {
        return Vec::new();
    };
    let mut items = Vec::new();
    let (mut depth, mut start, mut end) = (0usize, 0usize, rest.len());
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                items.push(&rest[start..i]);
                start = i + 1;
            }
            c if depth == 0
                && c.is_ascii_whitespace()
                && strip_keyword(rest[i..].trim_start(), "from").is_some() =>
            {
                end = i;
                break;
            }
            _ => {}
        }
        i += 1;
    }
    items.push(&rest[start..end.max(start)]);
    let mut expr = 0;
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if let Some(inner) = item.strip_prefix('(') {
                // A subquery: `(SELECT … FROM Contacts …)` is the record's `Contacts`.
                return relationship(inner).unwrap_or_else(|| item.to_string());
            }
            let words: Vec<&str> = item.split_whitespace().collect();
            match words.as_slice() {
                [.., last] if words.len() > 1 && !last.ends_with(')') => last.to_string(),
                [only] if only.contains('(') => {
                    let name = format!("expr{expr}");
                    expr += 1;
                    name
                }
                _ => item.to_string(),
            }
        })
        .collect()
}

fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// The relationship a subquery reads (`SELECT Id FROM Contacts` → `Contacts`).
fn relationship(subquery: &str) -> Option<String> {
    let words: Vec<&str> = subquery.split_whitespace().collect();
    let at = words.iter().position(|w| w.eq_ignore_ascii_case("from"))?;
    words
        .get(at + 1)
        .map(|w| w.trim_end_matches(')').to_string())
}

/// A record's value at a column: `Account.Name` walks into the parent; a subquery's
/// result shows how many child records it holds. Names match whatever their case, as
/// Salesforce's do.
pub fn cell(record: &Map<String, Value>, column: &str) -> Value {
    let mut current = record;
    let mut parts = column.split('.').peekable();
    while let Some(part) = parts.next() {
        let found = current
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(part))
            .map(|(_, v)| v);
        match (found, parts.peek()) {
            (Some(Value::Object(child)), Some(_)) => current = child,
            (Some(Value::Object(child)), None) if child.contains_key("records") => {
                return child
                    .get("totalSize")
                    .cloned()
                    .unwrap_or_else(|| json_len(child.get("records")));
            }
            (Some(v), None) => return v.clone(),
            _ => return Value::Null,
        }
    }
    Value::Null
}

fn json_len(v: Option<&Value>) -> Value {
    Value::from(v.and_then(Value::as_array).map_or(0, Vec::len))
}

/// The row a table or CSV prints for `record`: each column's cell under the column's name.
pub fn flat(record: &Map<String, Value>, columns: &[&str]) -> Value {
    Value::Object(
        columns
            .iter()
            .map(|c| (c.to_string(), cell(record, c)))
            .collect(),
    )
}

/// Leaks `names` as the printer's columns: they live as long as the command, which prints
/// one listing.
pub fn leak(names: Vec<String>) -> &'static [&'static str] {
    let cols: Vec<&'static str> = names
        .into_iter()
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .collect();
    Box::leak(cols.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_merge_json_and_assignments() {
        let f = fields(
            Some(r#"{"LastName":"Ada","Title":"x"}"#),
            &["Title=CTO".into(), "Phone=".into(), "Note=a=b".into()],
        )
        .expect("ok");
        assert_eq!(f["LastName"], "Ada");
        assert_eq!(f["Title"], "CTO");
        assert!(f["Phone"].is_null());
        assert_eq!(f["Note"], "a=b");
        assert!(fields(Some("[1]"), &[]).is_err());
        assert!(fields(None, &["nope".into()]).is_err());
        assert!(fields(None, &["bad name=1".into()]).is_err());
    }

    #[test]
    fn external_ids_need_both_halves() {
        assert_eq!(
            external_id("Ext__c=a=1").expect("ok"),
            ("Ext__c".into(), "a=1".into())
        );
        assert!(external_id("Ext__c=").is_err());
        assert!(external_id("=1").is_err());
        assert!(external_id("Ext__c").is_err());
    }

    #[test]
    fn columns_follow_the_select_list() {
        assert_eq!(
            columns("SELECT Id, Name, Account.Name FROM Contact WHERE Name = 'a, b'"),
            ["Id", "Name", "Account.Name"]
        );
        assert_eq!(
            columns("select Id, (SELECT LastName FROM Contacts) from Account"),
            ["Id", "Contacts"]
        );
        assert_eq!(
            columns(
                "SELECT COUNT(Id), MAX(Amount) top, StageName FROM Opportunity GROUP BY StageName"
            ),
            ["expr0", "top", "StageName"]
        );
        assert!(columns("DELETE everything").is_empty());
    }

    #[test]
    fn cells_walk_parents_and_count_children() {
        let record = json!({
            "attributes": {"type": "Account"},
            "Id": "001",
            "Owner": {"attributes": {}, "Name": "Ann"},
            "Contacts": {"totalSize": 3, "done": true, "records": [{}, {}, {}]},
            "Parent": null
        });
        let record = record.as_object().expect("object");
        assert_eq!(cell(record, "id"), json!("001"));
        assert_eq!(cell(record, "Owner.Name"), json!("Ann"));
        assert_eq!(cell(record, "Contacts"), json!(3));
        assert_eq!(cell(record, "Parent.Name"), Value::Null);
        assert_eq!(cell(record, "Missing"), Value::Null);
    }
}
