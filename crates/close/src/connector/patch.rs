//! Unified records to Close write payloads, as patches: an update sends only the fields whose
//! value differs from what the record's `raw` maps to, so a record read and written back
//! unchanged sends nothing (Close's PUT keeps every field it is not sent, close-openapi.yml
//! "Update lead").
//!
//! `raw` is the diff base only when it is this record's own Close object (`raw["id"]` equals
//! the record's id); any other `raw` (another CRM's, another record's) is ignored and only
//! the fields that are set are sent. A custom field is cleared only by an explicit
//! `Value::Null` in `custom`; a key missing from `custom` is left alone. `Company::domain` is
//! written as `url = https://{domain}` when `url` is `None`: to empty a lead's website, clear
//! both.

use crmkit_core::model::ActivityKind;
use crmkit_core::{Crm, Error, ErrorKind, FieldError, ObjectKind, Record, Result};
use serde_json::{Map, Value, json};

use super::mapping::to_record;
use crate::client::{activity_collection, close_id};

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
    match record {
        Record::Company(c) => {
            m.insert("name".into(), name(&c.name));
            let url = c
                .url
                .clone()
                .or_else(|| c.domain.as_ref().map(|d| format!("https://{d}")));
            m.insert("url".into(), opt(&url));
            m.insert("description".into(), opt(&c.description));
            // The label: Close takes `status` (a label) or `status_id` (A3 "Create lead").
            m.insert("status".into(), opt(&c.status));
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
        }
    }
    for (k, v) in record.custom() {
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

/// The collection segment a new activity of `kind` is created in. Meetings have item
/// endpoints but no create (close-openapi.yml lists no POST /activity/meeting/).
fn create_segment(kind: ActivityKind) -> Result<&'static str> {
    match kind {
        ActivityKind::Meeting => Err(Error::new(
            ErrorKind::Validation,
            "Close has no API to create meetings (close-openapi.yml lists no POST /activity/meeting/); they come from calendar sync",
        )
        .with_crm(Crm::Close)),
        other => item_segment(other),
    }
}

/// The item collection segment of an existing activity of `kind` (`activity/{seg}/{id}/`):
/// note, call, email and meeting (SMS has no unified kind and is reached through `raw`).
fn item_segment(kind: ActivityKind) -> Result<&'static str> {
    match kind {
        ActivityKind::Note => Ok("note"),
        ActivityKind::Call => Ok("call"),
        ActivityKind::Email => Ok("email"),
        ActivityKind::Meeting => Ok("meeting"),
        ActivityKind::Task => Err(Error::new(
            ErrorKind::Validation,
            "Close tasks are not activities; write them with Client::tasks()",
        )
        .with_crm(Crm::Close)),
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
            let seg = create_segment(a.kind)?;
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
            None => format!("activity/{}/", item_segment(a.kind)?),
        },
    };
    Ok(format!("{collection}{id}/"))
}

/// `raw` if it is this record's own Close object (same id), the only `raw` that can serve as
/// a diff base.
fn own_raw<'a>(record: &'a Record, id: &str) -> Option<&'a Value> {
    let raw = record.raw();
    (raw.is_object() && raw["id"].as_str() == Some(id)).then_some(raw)
}

/// The item path of an update and the fields to send. With the record's own `raw`, the
/// fields whose wanted value differs from what `raw` maps to (a typed field `raw` had and the
/// record cleared is sent as a clear; a custom field only when set to null); otherwise only
/// the fields that are set, and custom fields explicitly set to null.
pub(crate) fn update_body(
    record: &Record,
    kind: ObjectKind,
) -> Result<(String, Map<String, Value>)> {
    let id = record.id().ok_or_else(|| {
        Error::new(ErrorKind::Validation, "an update needs the record's id").with_crm(Crm::Close)
    })?;
    let id = close_id(id)?;
    let path = item_path(record, id)?;
    let patch = match own_raw(record, id) {
        Some(raw) => {
            let base = wanted(&to_record(kind, raw.clone())?, raw);
            // Keys missing from the record's `custom` are not in `wanted`, so they are left.
            wanted(record, raw)
                .into_iter()
                .filter(|(k, v)| base.get(k).unwrap_or(&Value::Null) != v)
                .collect()
        }
        None => wanted(record, &Value::Null)
            .into_iter()
            .filter(|(k, v)| is_set(v) || (k.starts_with("custom.") && v.is_null()))
            .collect(),
    };
    Ok((path, patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::model::{Activity, Company, Deal, Person};

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
        // A custom field missing from the map is left; only an explicit null clears.
        p.custom.clear();
        let (path, patch) = update_body(&Record::Person(p.clone()), ObjectKind::Person).unwrap();
        assert_eq!(path, "contact/cont_1/");
        assert_eq!(
            Value::Object(patch),
            json!({"title": null,
                   "emails": [{"type": "home", "email": "a@x.io"}, {"type": "office", "email": "b@x.io"}]})
        );
        p.custom.insert("cf_a".into(), Value::Null);
        let (_, patch) = update_body(&Record::Person(p), ObjectKind::Person).unwrap();
        assert_eq!(patch.get("custom.cf_a"), Some(&Value::Null));
    }

    #[test]
    fn a_raw_that_is_not_this_records_is_not_a_diff_base() {
        // Another CRM's object, or another Close record's, would turn its fields into clears.
        for raw in [
            json!({"id": "12345", "properties": {"name": "Acme"}, "url": "https://acme.com"}),
            json!({"id": "lead_other", "name": "Other", "url": "https://other.com", "custom.cf_a": 1}),
        ] {
            let c = Company {
                id: Some("lead_1".into()),
                name: "Acme".into(),
                raw,
                ..Company::default()
            };
            let (_, patch) = update_body(&Record::Company(c), ObjectKind::Company).unwrap();
            assert_eq!(Value::Object(patch), json!({"name": "Acme"}));
        }
    }

    #[test]
    fn a_meeting_is_updated_without_raw_but_never_created() {
        let mut m = Activity::new(ActivityKind::Meeting);
        m.id = Some("acti_1".into());
        m.body = Some("agenda".into());
        let (path, patch) =
            update_body(&Record::Activity(m.clone()), ObjectKind::Activity).unwrap();
        assert_eq!(path, "activity/meeting/acti_1/");
        assert_eq!(Value::Object(patch), json!({"note": "agenda"}));
        let e = create_body(&Record::Activity(m)).unwrap_err();
        assert_eq!(e.crm(), Some(Crm::Close));
        assert!(e.to_string().contains("meetings"), "{e}");
    }

    #[test]
    fn a_domain_without_a_url_is_written_as_the_website() {
        let c = Company {
            name: "Acme".into(),
            domain: Some("acme.com".into()),
            ..Company::default()
        };
        let (_, body) = create_body(&Record::Company(c)).unwrap();
        assert_eq!(body["url"], "https://acme.com");
    }

    #[test]
    fn an_update_without_a_usable_id_says_so() {
        let e = update_body(&Record::Company(Company::default()), ObjectKind::Company).unwrap_err();
        assert!(e.to_string().contains("needs the record's id"), "{e}");
        let bad = Company {
            id: Some("lead_1/../x".into()),
            ..Company::default()
        };
        let e = update_body(&Record::Company(bad), ObjectKind::Company).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
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
