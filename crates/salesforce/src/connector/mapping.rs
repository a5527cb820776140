//! Salesforce records to unified records and back.

use chrono::{DateTime, NaiveDate, Utc};
use crmkit_core::{
    Activity, ActivityKind, Company, Deal, Error, ErrorKind, Money, ObjectKind, Person, Record,
    Result,
};
use serde_json::{Map, Value};

use crate::sobjects::Fields;

/// The standard fields each sObject maps (before the describe narrows them to the org's).
pub(super) fn mapped(sobject: &str) -> &'static [&'static str] {
    match sobject {
        "Account" => &[
            "Id",
            "Name",
            "Website",
            "Description",
            "Type",
            "CreatedDate",
            "SystemModstamp",
        ],
        "Contact" => &[
            "Id",
            "FirstName",
            "LastName",
            "Title",
            "Email",
            "Phone",
            "MobilePhone",
            "AccountId",
            "CreatedDate",
            "SystemModstamp",
        ],
        "Lead" => &[
            "Id",
            "FirstName",
            "LastName",
            "Title",
            "Email",
            "Phone",
            "MobilePhone",
            "Company",
            "CreatedDate",
            "SystemModstamp",
        ],
        "Opportunity" => &[
            "Id",
            "Name",
            "Amount",
            "CurrencyIsoCode",
            "StageName",
            "Probability",
            "CloseDate",
            "AccountId",
            "ContactId",
            "CreatedDate",
            "SystemModstamp",
        ],
        "Task" => &[
            "Id",
            "Subject",
            "Description",
            "ActivityDate",
            "Status",
            "IsClosed",
            "TaskSubtype",
            "CallDurationInSeconds",
            "CallType",
            "WhoId",
            "WhatId",
            "CreatedDate",
            "SystemModstamp",
        ],
        "Event" => &[
            "Id",
            "Subject",
            "Description",
            "ActivityDateTime",
            "DurationInMinutes",
            "WhoId",
            "WhatId",
            "CreatedDate",
            "SystemModstamp",
        ],
        _ => &["Id", "CreatedDate", "SystemModstamp"],
    }
}

/// Fields that are read but never written (system or derived fields).
fn read_only(field: &str) -> bool {
    matches!(
        field,
        "Id" | "CreatedDate" | "SystemModstamp" | "IsClosed" | "attributes" | "LastModifiedDate"
    )
}

/// Whether a field is a typed one of `sobject` (the rest go to `custom`). A lead's
/// `Company` is read with the mapped fields but lives in `custom`: the unified person has
/// no company name.
fn is_mapped(sobject: &str, field: &str) -> bool {
    field == "attributes"
        || (mapped(sobject).contains(&field) && !(sobject == "Lead" && field == "Company"))
}

fn text(f: &Fields, k: &str) -> Option<String> {
    f.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn time(f: &Fields, k: &str) -> Option<DateTime<Utc>> {
    f.get(k)
        .and_then(Value::as_str)
        .and_then(crmkit_core::time::parse_timestamp)
}

fn number(f: &Fields, k: &str) -> Option<f64> {
    match f.get(k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Website → domain: host without `www.`, lower case.
fn domain_of(url: &str) -> Option<String> {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let host = reqwest::Url::parse(&with_scheme)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    Some(host.trim_start_matches("www.").to_string())
}

/// `First Last` split at the first space; one word is the last name (required).
pub(super) fn split_name(name: &str) -> (Option<String>, String) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) if !last.trim().is_empty() => {
            (Some(first.to_string()), last.trim().to_string())
        }
        _ => (None, name.to_string()),
    }
}

fn custom(sobject: &str, f: &Fields) -> crmkit_core::model::CustomFields {
    f.iter()
        .filter(|(k, _)| !is_mapped(sobject, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The sObject type a record read from Salesforce says it is (`attributes.type`).
pub(super) fn type_of(f: &Fields) -> Option<&str> {
    f.get("attributes")?.get("type")?.as_str()
}

/// A Salesforce record of `sobject` as a unified record.
pub(super) fn to_record(sobject: &str, f: &Fields, currency: &str) -> Result<Record> {
    let id = text(f, "Id").ok_or_else(|| Error::bad_response("the record has no Id"))?;
    let raw = Value::Object(f.clone());
    let created_at = time(f, "CreatedDate");
    let updated_at = time(f, "SystemModstamp");
    let custom = custom(sobject, f);
    Ok(match sobject {
        "Account" => Record::Company(Company {
            id: Some(id),
            name: text(f, "Name").unwrap_or_default(),
            domain: text(f, "Website").and_then(|w| domain_of(&w)),
            url: text(f, "Website"),
            description: text(f, "Description"),
            status: text(f, "Type"),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        "Contact" | "Lead" => {
            let name = [text(f, "FirstName"), text(f, "LastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            Record::Person(Person {
                id: Some(id),
                name,
                title: text(f, "Title"),
                emails: text(f, "Email").into_iter().collect(),
                phones: [text(f, "Phone"), text(f, "MobilePhone")]
                    .into_iter()
                    .flatten()
                    .collect(),
                company_id: text(f, "AccountId"),
                custom,
                created_at,
                updated_at,
                raw,
            })
        }
        "Opportunity" => {
            let amount = number(f, "Amount").map(|a| {
                Money::new(
                    (a * 100.0).round() as i64,
                    text(f, "CurrencyIsoCode").unwrap_or_else(|| currency.to_string()),
                )
            });
            Record::Deal(Deal {
                id: Some(id),
                name: text(f, "Name").unwrap_or_default(),
                amount,
                stage_id: text(f, "StageName"),
                pipeline_id: None,
                confidence: number(f, "Probability").map(|p| p.clamp(0.0, 100.0).round() as u8),
                company_id: text(f, "AccountId"),
                person_id: text(f, "ContactId"),
                close_date: time(f, "CloseDate"),
                custom,
                created_at,
                updated_at,
                raw,
            })
        }
        "Task" | "Event" => {
            let kind = if sobject == "Event" {
                ActivityKind::Meeting
            } else {
                match text(f, "TaskSubtype").as_deref() {
                    Some("Call") => ActivityKind::Call,
                    Some("Email" | "ListEmail") => ActivityKind::Email,
                    _ => ActivityKind::Task,
                }
            };
            let what = text(f, "WhatId");
            let who = text(f, "WhoId");
            let duration = if sobject == "Event" {
                number(f, "DurationInMinutes").map(|m| (m.max(0.0) * 60.0) as u32)
            } else {
                number(f, "CallDurationInSeconds").map(|s| s.max(0.0) as u32)
            };
            let mut a = Activity::new(kind);
            a.id = Some(id);
            a.subject = text(f, "Subject");
            a.body = text(f, "Description");
            a.occurred_at = time(f, "ActivityDateTime").or_else(|| time(f, "ActivityDate"));
            a.duration_secs = duration;
            a.direction = text(f, "CallType").map(|d| d.to_ascii_lowercase());
            a.completed = (sobject == "Task").then(|| {
                f.get("IsClosed").and_then(Value::as_bool).unwrap_or(false)
                    || text(f, "Status").as_deref() == Some("Completed")
            });
            // Only an account counts as the company; WhatId may name an opportunity.
            a.company_id = what.filter(|w| w.starts_with("001"));
            a.person_id = who;
            a.custom = custom;
            a.created_at = created_at;
            a.updated_at = updated_at;
            a.raw = raw;
            Record::Activity(a)
        }
        other => {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the connector does not map {other} records"),
            ));
        }
    })
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    m.insert(k.to_string(), v.unwrap_or(Value::Null));
}

fn s(v: &Option<String>) -> Option<Value> {
    v.clone().map(Value::String)
}

fn date(t: Option<DateTime<Utc>>) -> Option<Value> {
    t.map(|t| Value::String(t.date_naive().format("%Y-%m-%d").to_string()))
}

/// Every field a unified record maps to in `sobject`, `null` for unset ones, plus its
/// custom fields as they are.
pub(super) fn canonical(sobject: &str, record: &Record) -> Fields {
    let mut m = Map::new();
    match record {
        Record::Company(c) => {
            put(&mut m, "Name", Some(Value::String(c.name.clone())));
            put(&mut m, "Website", s(&c.url).or_else(|| s(&c.domain)));
            put(&mut m, "Description", s(&c.description));
            put(&mut m, "Type", s(&c.status));
        }
        Record::Person(p) => {
            let (first, last) = split_name(&p.name);
            put(&mut m, "FirstName", s(&first));
            put(&mut m, "LastName", Some(Value::String(last)));
            put(&mut m, "Title", s(&p.title));
            put(&mut m, "Email", s(&p.emails.first().cloned()));
            put(&mut m, "Phone", s(&p.phones.first().cloned()));
            put(&mut m, "MobilePhone", s(&p.phones.get(1).cloned()));
            if sobject == "Contact" {
                put(&mut m, "AccountId", s(&p.company_id));
            }
        }
        Record::Deal(d) => {
            put(&mut m, "Name", Some(Value::String(d.name.clone())));
            put(
                &mut m,
                "Amount",
                d.amount
                    .as_ref()
                    .and_then(|a| serde_json::Number::from_f64(a.minor as f64 / 100.0))
                    .map(Value::Number),
            );
            put(&mut m, "StageName", s(&d.stage_id));
            put(&mut m, "Probability", d.confidence.map(Value::from));
            put(&mut m, "CloseDate", date(d.close_date));
            put(&mut m, "AccountId", s(&d.company_id));
            put(&mut m, "ContactId", s(&d.person_id));
        }
        Record::Activity(a) => {
            put(&mut m, "Subject", s(&a.subject));
            put(&mut m, "Description", s(&a.body));
            put(&mut m, "WhoId", s(&a.person_id));
            if sobject == "Event" {
                put(
                    &mut m,
                    "ActivityDateTime",
                    a.occurred_at
                        .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())),
                );
                put(
                    &mut m,
                    "DurationInMinutes",
                    a.duration_secs.map(|s| Value::from(s.div_ceil(60))),
                );
            } else {
                put(&mut m, "ActivityDate", date(a.occurred_at));
                if a.kind == ActivityKind::Call {
                    put(
                        &mut m,
                        "CallDurationInSeconds",
                        a.duration_secs.map(Value::from),
                    );
                    put(
                        &mut m,
                        "CallType",
                        a.direction.as_ref().map(|d| {
                            let mut c = d.to_ascii_lowercase();
                            if let Some(first) = c.get_mut(..1) {
                                first.make_ascii_uppercase();
                            }
                            Value::String(c)
                        }),
                    );
                }
                put(
                    &mut m,
                    "Status",
                    a.completed
                        .map(|done| Value::from(if done { "Completed" } else { "Not Started" })),
                );
            }
            put(&mut m, "WhatId", s(&a.company_id));
        }
    }
    for (k, v) in record.custom() {
        if !read_only(k) && !is_mapped(sobject, k) {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

/// The body of a create: every field that is set.
pub(super) fn create_fields(sobject: &str, record: &Record) -> Result<Fields> {
    let mut f = canonical(sobject, record);
    f.retain(|_, v| !v.is_null());
    if let Record::Activity(a) = record
        && sobject == "Task"
    {
        let subtype = match a.kind {
            ActivityKind::Call => "Call",
            ActivityKind::Email => "Email",
            _ => "Task",
        };
        f.insert("TaskSubtype".into(), Value::from(subtype));
    }
    if let Record::Deal(d) = record {
        // Salesforce requires both on create.
        if d.stage_id.is_none() {
            return Err(missing("StageName", "a deal needs a stage"));
        }
        if d.close_date.is_none() {
            return Err(missing("CloseDate", "a deal needs a close date"));
        }
    }
    if sobject == "Lead" && !f.contains_key("Company") {
        return Err(missing(
            "Company",
            "a lead needs a Company: put it in the record's custom fields",
        ));
    }
    Ok(f)
}

fn missing(field: &str, why: &str) -> Error {
    Error::new(ErrorKind::Validation, why).with_field_errors(vec![crmkit_core::FieldError {
        field: field.into(),
        message: why.into(),
    }])
}

/// The patch of an update: with `raw` of this very record, only what differs from what
/// `raw` maps to (clears as `null`); otherwise only what is set. Custom fields are sent
/// only when present in `custom` (`null` clears).
pub(super) fn patch_fields(sobject: &str, record: &Record, currency: &str) -> Fields {
    let now = canonical(sobject, record);
    let raw = record.raw().as_object();
    let same_record = raw.is_some_and(|r| {
        r.get("Id").and_then(Value::as_str).is_some_and(|rid| {
            record
                .id()
                .is_some_and(|id| crate::ids::same_record(id, rid))
        }) && type_of(r).is_none_or(|t| t == sobject)
    });
    let before = raw
        .filter(|_| same_record)
        .and_then(|r| to_record(sobject, r, currency).ok())
        .map(|r| canonical(sobject, &r));
    let mut out = Map::new();
    for (k, v) in now {
        let is_custom = record.custom().contains_key(&k);
        match &before {
            Some(b) => {
                let old = b.get(&k).unwrap_or(&Value::Null);
                if !same_value(old, &v) {
                    out.insert(k, v);
                }
            }
            None if is_custom || !v.is_null() => {
                out.insert(k, v);
            }
            None => {}
        }
    }
    out
}

/// Equal as Salesforce would store them (numbers compared as numbers).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The sObject of an id by its key prefix, when it is one the connector maps.
pub(super) fn sobject_of_id(id: &str) -> Option<&'static str> {
    match id.get(..3)? {
        "001" => Some("Account"),
        "003" => Some("Contact"),
        "00Q" => Some("Lead"),
        "006" => Some("Opportunity"),
        "00T" => Some("Task"),
        "00U" => Some("Event"),
        _ => None,
    }
}

/// The kind an sObject maps to.
pub(super) fn kind_of(sobject: &str) -> Option<ObjectKind> {
    match sobject {
        "Account" => Some(ObjectKind::Company),
        "Contact" | "Lead" => Some(ObjectKind::Person),
        "Opportunity" => Some(ObjectKind::Deal),
        "Task" | "Event" => Some(ObjectKind::Activity),
        _ => None,
    }
}

/// A date-only value read back as midnight UTC (for tests of dates).
#[allow(dead_code)]
pub(super) fn midnight(d: NaiveDate) -> Option<DateTime<Utc>> {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Fields {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn a_record_read_and_written_back_sends_nothing() {
        let raw = fields(serde_json::json!({
            "attributes": {"type": "Opportunity"},
            "Id": "006000000000001AAA", "Name": "Big", "Amount": 1234.5, "StageName": "Prospecting",
            "Probability": 10, "CloseDate": "2024-03-01", "AccountId": "001000000000001AAA",
            "SystemModstamp": "2024-01-01T00:00:00.000+0000", "Region__c": "EU"
        }));
        let r = to_record("Opportunity", &raw, "USD").expect("maps");
        assert!(patch_fields("Opportunity", &r, "USD").is_empty());
        let Record::Deal(mut d) = r else {
            panic!("deal")
        };
        assert_eq!(d.amount, Some(Money::new(123_450, "USD")));
        d.stage_id = Some("Closed Won".into());
        d.custom.insert("Region__c".into(), Value::Null);
        let p = patch_fields("Opportunity", &Record::Deal(d.clone()), "USD");
        assert_eq!(
            Value::Object(p),
            serde_json::json!({"StageName": "Closed Won", "Region__c": null})
        );
        // Without raw only what is set goes out.
        d.raw = Value::Null;
        d.amount = None;
        let p = patch_fields("Opportunity", &Record::Deal(d), "USD");
        assert!(!p.contains_key("Amount"));
        assert_eq!(p["StageName"], "Closed Won");
    }

    #[test]
    fn a_leads_company_lives_in_custom_both_ways() {
        let raw = fields(serde_json::json!({
            "attributes": {"type": "Lead"}, "Id": "00Q000000000001AAA",
            "LastName": "Lovelace", "Company": "Analytical Engines"
        }));
        let r = to_record("Lead", &raw, "USD").expect("maps");
        assert_eq!(r.custom()["Company"], "Analytical Engines");
        assert_eq!(
            create_fields("Lead", &r).expect("ok")["Company"],
            "Analytical Engines"
        );
        assert!(patch_fields("Lead", &r, "USD").is_empty());
    }

    #[test]
    fn names_split_and_leads_need_a_company() {
        assert_eq!(
            split_name("Ada King Lovelace"),
            (Some("Ada".into()), "King Lovelace".into())
        );
        assert_eq!(split_name("Plato"), (None, "Plato".into()));
        let p = Record::Person(Person {
            name: "Ada Lovelace".into(),
            ..Person::default()
        });
        assert_eq!(
            create_fields("Lead", &p).expect_err("no company").kind(),
            ErrorKind::Validation
        );
        let f = create_fields("Contact", &p).expect("ok");
        assert_eq!(f["LastName"], "Lovelace");
        assert!(!f.contains_key("Title"));
    }
}
