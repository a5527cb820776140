//! Unified records to Close write payloads, as patches: an update sends only the fields whose
//! value differs from what the record's `raw` maps to, so a record read and written back
//! unchanged sends nothing (Close's PUT keeps every field it is not sent, A3 "Update lead").

use crmkit_core::model::ActivityKind;
use crmkit_core::{Error, ErrorKind, FieldError, ObjectKind, Record, Result};
use serde_json::{Map, Value, json};

use super::mapping::to_record;
use crate::client::activity_collection;

fn opt<T: Into<Value> + Clone>(v: &Option<T>) -> Value {
    v.clone().map_or(Value::Null, Into::into)
}

fn name(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { s.into() }
}

/// The `type` Close stored for `value` in a contact's `emails`/`phones` list, or `office`.
fn kind_of(raw: &Value, list: &str, key: &str, value: &str) -> Value {
    raw[list]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e[key] == value)
        .and_then(|e| e["type"].as_str())
        .unwrap_or("office")
        .into()
}

/// The Close field values a unified record stands for. `raw` (the object as read, or null)
/// keeps details the unified model drops, such as the type of an email address.
fn wanted(record: &Record, raw: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    let custom = match record {
        Record::Company(c) => {
            m.insert("name".into(), name(&c.name));
            m.insert("url".into(), opt(&c.url));
            m.insert("description".into(), opt(&c.description));
            // The label: Close takes `status` (a label) or `status_id` (A3 "Create lead").
            m.insert("status".into(), opt(&c.status));
            &c.custom
        }
        Record::Person(p) => {
            m.insert("name".into(), name(&p.name));
            m.insert("title".into(), opt(&p.title));
            m.insert("lead_id".into(), opt(&p.company_id));
            let emails: Vec<Value> = p
                .emails
                .iter()
                .map(|e| json!({"type": kind_of(raw, "emails", "email", e), "email": e}))
                .collect();
            let phones: Vec<Value> = p
                .phones
                .iter()
                .map(|n| json!({"type": kind_of(raw, "phones", "phone", n), "phone": n}))
                .collect();
            m.insert("emails".into(), emails.into());
            m.insert("phones".into(), phones.into());
            &p.custom
        }
        Record::Deal(d) => {
            m.insert("lead_id".into(), opt(&d.company_id));
            m.insert("contact_id".into(), opt(&d.person_id));
            m.insert("note".into(), name(&d.name));
            m.insert("status_id".into(), opt(&d.stage_id));
            m.insert("pipeline_id".into(), opt(&d.pipeline_id));
            m.insert("confidence".into(), opt(&d.confidence));
            m.insert(
                "value".into(),
                d.amount.as_ref().map_or(Value::Null, |a| a.minor.into()),
            );
            m.insert(
                "value_currency".into(),
                d.amount
                    .as_ref()
                    .map_or(Value::Null, |a| a.currency.clone().into()),
            );
            m.insert(
                "date_won".into(),
                d.close_date
                    .map_or(Value::Null, |t| t.format("%Y-%m-%d").to_string().into()),
            );
            &d.custom
        }
        Record::Activity(a) => {
            m.insert("lead_id".into(), opt(&a.company_id));
            m.insert("contact_id".into(), opt(&a.person_id));
            m.insert("direction".into(), opt(&a.direction));
            m.insert("duration".into(), opt(&a.duration_secs));
            m.insert(
                "activity_at".into(),
                a.occurred_at
                    .map_or(Value::Null, |t| crmkit_core::time::format_close(t).into()),
            );
            let (body, subject) = match a.kind {
                ActivityKind::Email => ("body_text", Some("subject")),
                ActivityKind::Meeting | ActivityKind::Note => ("note", Some("title")),
                _ => ("note", None),
            };
            m.insert(body.into(), opt(&a.body));
            if let Some(subject) = subject {
                m.insert(subject.into(), opt(&a.subject));
            }
            &a.custom
        }
    };
    for (k, v) in custom {
        m.insert(format!("custom.{k}"), v.clone());
    }
    m
}

/// Whether a value says something: not null, not an empty text or list.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

fn activity_segment(kind: ActivityKind) -> Result<&'static str> {
    match kind {
        ActivityKind::Note => Ok("note"),
        ActivityKind::Call => Ok("call"),
        ActivityKind::Email => Ok("email"),
        ActivityKind::Meeting | ActivityKind::Task => Err(Error::new(
            ErrorKind::Validation,
            if kind == ActivityKind::Meeting {
                "Close has no API to create meetings (close-openapi.yml lists no POST /activity/meeting/); they come from calendar sync"
            } else {
                "Close tasks are not activities; create them with Client::tasks()"
            },
        )),
    }
}

/// The collection a record is created in and its create payload: only the fields that are
/// set.
pub(crate) fn create_body(record: &Record) -> Result<(String, Value)> {
    let mut body: Map<String, Value> = wanted(record, &Value::Null)
        .into_iter()
        .filter(|(_, v)| is_set(v))
        .collect();
    let collection = match record {
        Record::Company(_) => "lead/".to_string(),
        Record::Person(_) => "contact/".to_string(),
        Record::Deal(_) => {
            if !body.contains_key("lead_id") {
                return Err(Error::new(
                    ErrorKind::Validation,
                    "a Close opportunity needs the lead it belongs to",
                )
                .with_field_errors(vec![FieldError {
                    field: "company_id".into(),
                    message: "required".into(),
                }]));
            }
            "opportunity/".to_string()
        }
        Record::Activity(a) => {
            let seg = activity_segment(a.kind)?;
            if a.kind == ActivityKind::Email {
                // Logs a sent email; `outbox` would really send it (A3 "Email").
                body.insert("status".into(), "sent".into());
            }
            format!("activity/{seg}/")
        }
    };
    Ok((collection, Value::Object(body)))
}

/// The item path of a record that exists in Close.
fn item_path(record: &Record, id: &str) -> Result<String> {
    let collection = match record {
        Record::Company(_) => "lead/".to_string(),
        Record::Person(_) => "contact/".to_string(),
        Record::Deal(_) => "opportunity/".to_string(),
        Record::Activity(a) => match a.raw["_type"].as_str().and_then(activity_collection) {
            Some(c) => c,
            None => format!("activity/{}/", activity_segment(a.kind)?),
        },
    };
    Ok(format!("{collection}{id}/"))
}

/// The item path of an update and the fields to send. With `raw`, the fields whose wanted
/// value differs from what `raw` maps to (a field `raw` had and the record cleared is sent
/// as a clear); without it, only the fields that are set, and custom fields explicitly set
/// to null.
pub(crate) fn update_body(
    record: &Record,
    kind: ObjectKind,
) -> Result<(String, Map<String, Value>)> {
    let id = record
        .id()
        .filter(|id| !id.is_empty() && !id.contains(['/', '?', '#']))
        .ok_or_else(|| Error::new(ErrorKind::Validation, "an update needs the record's id"))?;
    let path = item_path(record, id)?;
    let raw = match record {
        Record::Company(r) => &r.raw,
        Record::Person(r) => &r.raw,
        Record::Deal(r) => &r.raw,
        Record::Activity(r) => &r.raw,
    };
    let now = wanted(record, raw);
    let patch = if raw.is_object() {
        let base = wanted(&to_record(kind, raw.clone())?, raw);
        let mut patch: Map<String, Value> = now
            .into_iter()
            .filter(|(k, v)| base.get(k).unwrap_or(&Value::Null) != v)
            .collect();
        for k in base.keys().filter(|k| k.starts_with("custom.")) {
            if !patch.contains_key(k) && !record_has_custom(record, k) {
                patch.insert(k.clone(), Value::Null);
            }
        }
        patch
    } else {
        now.into_iter()
            .filter(|(k, v)| is_set(v) || (k.starts_with("custom.") && v.is_null()))
            .collect()
    };
    Ok((path, patch))
}

fn record_has_custom(record: &Record, key: &str) -> bool {
    let id = key.trim_start_matches("custom.");
    match record {
        Record::Company(r) => r.custom.contains_key(id),
        Record::Person(r) => r.custom.contains_key(id),
        Record::Deal(r) => r.custom.contains_key(id),
        Record::Activity(r) => r.custom.contains_key(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::model::{Company, Deal, Person};

    fn read(kind: ObjectKind, raw: Value) -> Record {
        to_record(kind, raw).unwrap()
    }

    #[test]
    fn a_record_read_and_written_back_unchanged_sends_nothing() {
        let cases = [
            (
                ObjectKind::Company,
                json!({"id": "lead_1", "name": "Acme", "url": "https://acme.com", "description": "d",
                       "status_label": "Potential", "custom.cf_a": 1}),
            ),
            (
                ObjectKind::Person,
                json!({"id": "cont_1", "lead_id": "lead_1", "name": "Ann", "title": "CTO",
                       "emails": [{"type": "home", "email": "a@x.io"}], "phones": [{"type": "mobile", "phone": "+1555"}]}),
            ),
            (
                ObjectKind::Deal,
                json!({"id": "oppo_1", "lead_id": "lead_1", "lead_name": "Acme", "note": "",
                       "value": 500, "value_currency": "USD", "confidence": 50, "date_won": "2024-01-05"}),
            ),
            (
                ObjectKind::Activity,
                json!({"id": "acti_1", "_type": "Call", "lead_id": "lead_1", "note": "hi", "duration": 60,
                       "date_created": "2024-01-01T00:00:00+00:00"}),
            ),
        ];
        for (kind, raw) in cases {
            let (_, patch) = update_body(&read(kind, raw), kind).unwrap();
            assert!(patch.is_empty(), "{kind}: {patch:?}");
        }
    }

    #[test]
    fn only_changed_fields_are_sent_and_clearing_is_explicit() {
        let raw = json!({"id": "cont_1", "lead_id": "lead_1", "name": "Ann", "title": "CTO",
                         "emails": [{"type": "home", "email": "a@x.io"}], "custom.cf_a": 1});
        let Record::Person(mut p) = read(ObjectKind::Person, raw) else {
            panic!("person")
        };
        p.emails.push("b@x.io".into());
        p.title = None;
        p.custom.clear();
        let (path, patch) = update_body(&Record::Person(p), ObjectKind::Person).unwrap();
        assert_eq!(path, "contact/cont_1/");
        assert_eq!(
            Value::Object(patch),
            json!({"title": null, "custom.cf_a": null,
                   "emails": [{"type": "home", "email": "a@x.io"}, {"type": "office", "email": "b@x.io"}]})
        );
    }

    #[test]
    fn without_raw_only_set_fields_are_sent() {
        let c = Company {
            id: Some("lead_1".into()),
            description: Some("new".into()),
            ..Company::default()
        };
        let (_, patch) = update_body(&Record::Company(c), ObjectKind::Company).unwrap();
        assert_eq!(Value::Object(patch), json!({"description": "new"}));
        let p = Person {
            id: Some("cont_1".into()),
            ..Person::default()
        };
        let (_, patch) = update_body(&Record::Person(p), ObjectKind::Person).unwrap();
        assert!(patch.is_empty(), "no emptied emails or phones: {patch:?}");
    }

    #[test]
    fn deal_without_company_is_a_field_error() {
        let e = create_body(&Record::Deal(Deal::default())).unwrap_err();
        assert_eq!(e.field_errors()[0].field, "company_id");
    }
}
