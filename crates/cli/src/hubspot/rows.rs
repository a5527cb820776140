//! HubSpot records as printed rows: the whole record for JSON and NDJSON, the id and the
//! shown properties side by side for a table and CSV.

use crmkit_hubspot::{HubSpotObject, ObjectType};
use serde_json::{Map, Value};

use crate::output::Format;

/// The properties shown in a table of `object_type` (and asked for when `--properties` is
/// not given), with the modification time last (HubSpot CRM search guide, default
/// properties).
pub fn default_properties(object_type: &ObjectType) -> &'static [&'static str] {
    match object_type {
        ObjectType::Contacts => &["email", "firstname", "lastname", "lastmodifieddate"],
        ObjectType::Companies => &["name", "domain", "hs_lastmodifieddate"],
        ObjectType::Deals => &["dealname", "dealstage", "amount", "hs_lastmodifieddate"],
        ObjectType::Notes => &["hs_note_body", "hs_timestamp", "hs_lastmodifieddate"],
        ObjectType::Calls => &["hs_call_title", "hs_timestamp", "hs_lastmodifieddate"],
        ObjectType::Tasks => &["hs_task_subject", "hs_task_status", "hs_lastmodifieddate"],
        ObjectType::Meetings => &["hs_meeting_title", "hs_timestamp", "hs_lastmodifieddate"],
        ObjectType::Emails => &["hs_email_subject", "hs_timestamp", "hs_lastmodifieddate"],
        ObjectType::Other(_) => &["hs_lastmodifieddate"],
    }
}

/// The table columns: `id` and then `properties`.
pub fn columns(properties: &[String]) -> &'static [&'static str] {
    let cols: Vec<&'static str> = std::iter::once("id")
        .chain(
            properties
                .iter()
                .filter(|p| p.as_str() != "id")
                // The printers take columns for the life of the command, which is one
                // listing; leaking the few names it shows costs nothing.
                .map(|p| &*Box::leak(p.clone().into_boxed_str())),
        )
        .collect();
    Box::leak(cols.into_boxed_slice())
}

/// `record` as `format` prints it: whole for JSON and NDJSON, flat otherwise.
pub fn row(record: HubSpotObject, format: Format) -> Value {
    match format {
        Format::Json | Format::Ndjson => {
            serde_json::to_value(&record).unwrap_or_else(|_| flat(record))
        }
        Format::Table | Format::Csv => flat(record),
    }
}

fn flat(record: HubSpotObject) -> Value {
    let mut out = Map::new();
    for (name, value) in record.properties {
        out.insert(name, value.map(Value::String).unwrap_or(Value::Null));
    }
    out.insert("id".into(), Value::String(record.id));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> HubSpotObject {
        serde_json::from_value(serde_json::json!({
            "id": "7",
            "properties": {"email": "a@b.c", "firstname": null},
            "createdAt": "2024-01-01T00:00:00Z",
            "archived": false
        }))
        .expect("a record")
    }

    #[test]
    fn tables_get_flat_rows_and_json_the_whole_record() {
        let flat = row(record(), Format::Table);
        assert_eq!(flat["id"], "7");
        assert_eq!(flat["email"], "a@b.c");
        assert!(flat["firstname"].is_null());
        let whole = row(record(), Format::Json);
        assert_eq!(whole["properties"]["email"], "a@b.c");
        assert_eq!(whole["createdAt"], "2024-01-01T00:00:00Z");
    }

    #[test]
    fn columns_start_with_the_id_once() {
        assert_eq!(
            columns(&["id".into(), "email".into()]),
            &["id", "email"] as &[&str]
        );
    }
}
