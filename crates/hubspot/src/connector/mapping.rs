//! HubSpot objects to unified records, and which HubSpot object type holds which kind.
//!
//! Property names: HubSpot CRM search guide (default properties) and the object guides
//! (developers.hubspot.com/docs/api/crm/contacts, /companies, /deals, /engagements/*).

use chrono::{DateTime, SecondsFormat, Utc};
use crmkit_core::model::{Activity, ActivityKind, Company, CustomFields, Deal, Money, Person};
use crmkit_core::{Error, ObjectKind, Record, Result};
use serde_json::Value;

use crate::objects::{HubSpotObject, ObjectType};

/// The activity object types, in the order the feed, `get` and `search` walk them.
pub(super) const ACTIVITY_TYPES: [ObjectType; 5] = [
    ObjectType::Notes,
    ObjectType::Calls,
    ObjectType::Tasks,
    ObjectType::Meetings,
    ObjectType::Emails,
];

/// Properties HubSpot maintains itself: never custom fields, never written
/// (`hs_merged_object_ids` lists the ids merged into a record; the feed reports them).
const SYSTEM: &[&str] = &[
    "hs_object_id",
    "hs_merged_object_ids",
    "createdate",
    "hs_createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
];

/// The HubSpot object types that hold records of `kind`.
pub(super) fn object_types(kind: ObjectKind) -> &'static [ObjectType] {
    const COMPANY: &[ObjectType] = &[ObjectType::Companies];
    const PERSON: &[ObjectType] = &[ObjectType::Contacts];
    const DEAL: &[ObjectType] = &[ObjectType::Deals];
    match kind {
        ObjectKind::Company => COMPANY,
        ObjectKind::Person => PERSON,
        ObjectKind::Deal => DEAL,
        ObjectKind::Activity => &ACTIVITY_TYPES,
    }
}

/// The object type of an activity kind.
pub(super) fn activity_type(kind: ActivityKind) -> ObjectType {
    match kind {
        ActivityKind::Note => ObjectType::Notes,
        ActivityKind::Call => ObjectType::Calls,
        ActivityKind::Task => ObjectType::Tasks,
        ActivityKind::Meeting => ObjectType::Meetings,
        ActivityKind::Email => ObjectType::Emails,
    }
}

/// The object type a record is written to.
pub(super) fn object_type_of(record: &Record) -> ObjectType {
    match record {
        Record::Company(_) => ObjectType::Companies,
        Record::Person(_) => ObjectType::Contacts,
        Record::Deal(_) => ObjectType::Deals,
        Record::Activity(a) => activity_type(a.kind),
    }
}

/// The unified kind of an object type, `None` for types outside the model.
pub(super) fn kind_of(t: &ObjectType) -> Option<ObjectKind> {
    match t {
        ObjectType::Companies => Some(ObjectKind::Company),
        ObjectType::Contacts => Some(ObjectKind::Person),
        ObjectType::Deals => Some(ObjectKind::Deal),
        ObjectType::Notes
        | ObjectType::Calls
        | ObjectType::Tasks
        | ObjectType::Meetings
        | ObjectType::Emails => Some(ObjectKind::Activity),
        ObjectType::Other(_) => None,
    }
}

/// The body and subject properties of an activity type.
pub(super) fn activity_props(t: &ObjectType) -> (&'static str, Option<&'static str>) {
    match t {
        ObjectType::Calls => ("hs_call_body", Some("hs_call_title")),
        ObjectType::Tasks => ("hs_task_body", Some("hs_task_subject")),
        ObjectType::Meetings => ("hs_meeting_body", Some("hs_meeting_title")),
        ObjectType::Emails => ("hs_email_text", Some("hs_email_subject")),
        _ => ("hs_note_body", None),
    }
}

/// The properties the mapping reads (and writes) for an object type.
pub(super) fn mapped(t: &ObjectType) -> Vec<&'static str> {
    let mut names = match t {
        ObjectType::Companies => vec!["name", "domain", "website", "description", "lifecyclestage"],
        ObjectType::Contacts => vec![
            "firstname",
            "lastname",
            "jobtitle",
            "email",
            "hs_additional_emails",
            "phone",
            "mobilephone",
            "associatedcompanyid",
        ],
        ObjectType::Deals => vec![
            "dealname",
            "amount",
            "deal_currency_code",
            "dealstage",
            "pipeline",
            "hs_deal_stage_probability",
            "closedate",
        ],
        _ => {
            let (body, subject) = activity_props(t);
            let mut v = vec!["hs_timestamp", body];
            v.extend(subject);
            v.extend(match t {
                ObjectType::Calls => &["hs_call_duration", "hs_call_direction"][..],
                ObjectType::Tasks => &["hs_task_status"][..],
                ObjectType::Emails => &["hs_email_direction"][..],
                _ => &[][..],
            });
            v
        }
    };
    names.extend(SYSTEM);
    names
}

/// The object types whose associations a record of `t` carries (asked for on reads).
pub(super) fn linked(t: &ObjectType) -> &'static [ObjectType] {
    match t {
        ObjectType::Companies => &[],
        ObjectType::Contacts => &[ObjectType::Companies],
        _ => &[ObjectType::Companies, ObjectType::Contacts],
    }
}

/// Whether `name` is a property the mapping owns or HubSpot maintains (not a custom field).
pub(super) fn is_mapped(t: &ObjectType, name: &str) -> bool {
    mapped(t).contains(&name)
}

fn text(o: &HubSpotObject, name: &str) -> Option<String> {
    o.property(name)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn time(o: &HubSpotObject, name: &str) -> Option<DateTime<Utc>> {
    o.property(name)
        .and_then(crmkit_core::time::parse_timestamp)
}

fn number(o: &HubSpotObject, name: &str) -> Option<f64> {
    o.property(name).and_then(|s| s.trim().parse::<f64>().ok())
}

/// How the mapping writes a time back (HubSpot accepts RFC 3339 for date-times).
pub(super) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A decimal amount (`"1234.5"`) in minor units, exactly (two decimals: cents).
pub(super) fn minor_units(text: &str) -> Option<i64> {
    let text = text.trim();
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        // Sub-cent amounts round to the nearest cent.
        let v: f64 = digits.parse().ok()?;
        let cents = (v * 100.0).round() as i64;
        return Some(if neg { -cents } else { cents });
    }
    let cents = format!("{frac:0<2}").parse::<i64>().ok()?;
    let minor = whole.checked_mul(100)?.checked_add(cents)?;
    Some(if neg { -minor } else { minor })
}

/// Minor units as the decimal HubSpot stores (`123450` → `"1234.50"`).
pub(super) fn decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The linked id of type `to`: the first associated one, which is the preferred one
/// (primary first) because the connector reads associations through v4 and orders them
/// ([`crate::associations::sort_by_preference`]) before mapping.
fn associated(o: &HubSpotObject, to: &ObjectType) -> Option<String> {
    let map = o.associations.as_ref()?;
    map.get(to.as_str())
        .and_then(|a| a.results.first())
        .map(|a| a.id.clone())
}

/// Property values the mapping does not own, as custom fields (unset ones left out).
fn custom(t: &ObjectType, o: &HubSpotObject) -> CustomFields {
    o.properties
        .iter()
        .filter(|(k, _)| !is_mapped(t, k))
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), Value::String(v.clone()))))
        .collect()
}

/// Splits a full name into HubSpot's first and last name at the first space.
pub(super) fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (name.to_string(), String::new()),
    }
}

/// `inbound`/`outbound` of a call (`INBOUND`/`OUTBOUND`) or email (`INCOMING_EMAIL`,
/// `EMAIL`, `FORWARDED_EMAIL`).
fn direction(t: &ObjectType, o: &HubSpotObject) -> Option<String> {
    match t {
        ObjectType::Calls => text(o, "hs_call_direction").map(|d| d.to_ascii_lowercase()),
        ObjectType::Emails => text(o, "hs_email_direction").map(|d| {
            if d == "INCOMING_EMAIL" {
                "inbound".into()
            } else {
                "outbound".into()
            }
        }),
        _ => None,
    }
}

/// Maps a HubSpot object of type `t` to a unified record; `raw` keeps the object whole.
pub(super) fn to_record(t: &ObjectType, o: &HubSpotObject) -> Result<Record> {
    let raw = serde_json::to_value(o)?;
    let id = Some(o.id.clone());
    let created_at = o
        .created_at
        .as_deref()
        .and_then(crmkit_core::time::parse_timestamp)
        .or_else(|| time(o, "createdate"))
        .or_else(|| time(o, "hs_createdate"));
    let updated_at = o
        .updated_at
        .as_deref()
        .and_then(crmkit_core::time::parse_timestamp)
        .or_else(|| time(o, t.modified_property()));
    let custom = custom(t, o);
    let kind = kind_of(t)
        .ok_or_else(|| Error::config(format!("HubSpot {t} objects have no unified equivalent")))?;
    Ok(match kind {
        ObjectKind::Company => Record::Company(Company {
            id,
            name: text(o, "name").unwrap_or_default(),
            domain: text(o, "domain").map(|d| d.to_lowercase()),
            url: text(o, "website"),
            description: text(o, "description"),
            status: text(o, "lifecyclestage"),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        ObjectKind::Person => {
            let name = [text(o, "firstname"), text(o, "lastname")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let mut emails: Vec<String> = text(o, "email").into_iter().collect();
            // HubSpot separates secondary addresses with semicolons.
            emails.extend(
                o.property("hs_additional_emails")
                    .unwrap_or_default()
                    .split(';')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string),
            );
            Record::Person(Person {
                id,
                name,
                title: text(o, "jobtitle"),
                emails,
                phones: [text(o, "phone"), text(o, "mobilephone")]
                    .into_iter()
                    .flatten()
                    .collect(),
                company_id: text(o, "associatedcompanyid")
                    .or_else(|| associated(o, &ObjectType::Companies)),
                custom,
                created_at,
                updated_at,
                raw,
            })
        }
        ObjectKind::Deal => Record::Deal(Deal {
            id,
            name: text(o, "dealname").unwrap_or_default(),
            amount: o.property("amount").and_then(minor_units).map(|m| {
                Money::new(
                    m,
                    text(o, "deal_currency_code").unwrap_or_else(|| "USD".into()),
                )
            }),
            stage_id: text(o, "dealstage"),
            pipeline_id: text(o, "pipeline"),
            confidence: number(o, "hs_deal_stage_probability")
                .map(|p| (p * 100.0).round().clamp(0.0, 100.0) as u8),
            company_id: associated(o, &ObjectType::Companies),
            person_id: associated(o, &ObjectType::Contacts),
            close_date: time(o, "closedate"),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        ObjectKind::Activity => {
            let kind = match t {
                ObjectType::Calls => ActivityKind::Call,
                ObjectType::Tasks => ActivityKind::Task,
                ObjectType::Meetings => ActivityKind::Meeting,
                ObjectType::Emails => ActivityKind::Email,
                _ => ActivityKind::Note,
            };
            let (body, subject) = activity_props(t);
            let mut a = Activity::new(kind);
            a.id = id;
            a.subject = subject.and_then(|s| text(o, s));
            a.body = text(o, body);
            a.occurred_at = time(o, "hs_timestamp");
            // HubSpot stores call durations in milliseconds.
            a.duration_secs = (kind == ActivityKind::Call)
                .then(|| number(o, "hs_call_duration"))
                .flatten()
                .map(|ms| (ms / 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32);
            a.direction = direction(t, o);
            a.completed = (kind == ActivityKind::Task)
                .then(|| text(o, "hs_task_status").map(|s| s == "COMPLETED"))
                .flatten();
            a.company_id = associated(o, &ObjectType::Companies);
            a.person_id = associated(o, &ObjectType::Contacts);
            a.custom = custom;
            a.created_at = created_at;
            a.updated_at = updated_at;
            a.raw = raw;
            Record::Activity(a)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> HubSpotObject {
        serde_json::from_value(v).expect("object")
    }

    #[test]
    fn amounts_convert_to_minor_units_exactly() {
        assert_eq!(minor_units("1234.5"), Some(123450));
        assert_eq!(minor_units("-0.05"), Some(-5));
        assert_eq!(minor_units("100"), Some(10000));
        assert_eq!(minor_units("abc"), None);
        assert_eq!(decimal(123450), "1234.50");
    }

    #[test]
    fn a_contact_maps_names_emails_phones_and_custom_properties() {
        let o = object(json!({"id": "7", "properties": {
            "firstname": "Ada", "lastname": "Lovelace", "email": "ada@x.io",
            "hs_additional_emails": "a2@x.io;a3@x.io", "mobilephone": "+1555",
            "associatedcompanyid": "9", "favourite": "tea", "lastmodifieddate": null}}));
        let Record::Person(p) = to_record(&ObjectType::Contacts, &o).expect("maps") else {
            panic!("person")
        };
        assert_eq!(p.name, "Ada Lovelace");
        assert_eq!(p.emails, ["ada@x.io", "a2@x.io", "a3@x.io"]);
        assert_eq!(p.phones, ["+1555"]);
        assert_eq!(p.company_id.as_deref(), Some("9"));
        assert_eq!(p.custom.len(), 1);
        assert_eq!(p.custom["favourite"], "tea");
        assert_eq!(p.raw["id"], "7");
    }

    #[test]
    fn a_deal_and_a_call_map_units() {
        let o = object(
            json!({"id": "1", "properties": {"dealname": "Big", "amount": "10.5",
            "hs_deal_stage_probability": "0.4"}}),
        );
        let Record::Deal(d) = to_record(&ObjectType::Deals, &o).expect("maps") else {
            panic!("deal")
        };
        assert_eq!(d.amount, Some(Money::new(1050, "USD")));
        assert_eq!(d.confidence, Some(40));
        let o = object(
            json!({"id": "2", "properties": {"hs_call_duration": "61000",
            "hs_call_direction": "INBOUND"}}),
        );
        let Record::Activity(a) = to_record(&ObjectType::Calls, &o).expect("maps") else {
            panic!("activity")
        };
        assert_eq!(
            (a.duration_secs, a.direction.as_deref()),
            (Some(61), Some("inbound"))
        );
        let o = object(json!({"id": "3", "properties": {"hs_task_status": "COMPLETED"}}));
        let Record::Activity(a) = to_record(&ObjectType::Tasks, &o).expect("maps") else {
            panic!("activity")
        };
        assert_eq!((a.kind, a.completed), (ActivityKind::Task, Some(true)));
    }
}
