//! Close objects (as JSON) to unified records.

use crmkit_core::model::{Activity, ActivityKind, Company, Deal, Money, Person};
use crmkit_core::{Error, ObjectKind, Record, Result};
use serde_json::{Map, Value};

use crate::models;

pub(super) fn time(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str().and_then(crmkit_core::time::parse_timestamp)
}

pub(super) fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn custom(raw: &Value) -> Map<String, Value> {
    raw.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("custom.")
                .map(|id| (id.to_string(), v.clone()))
        })
        .collect()
}

fn domain_of(url: &str) -> Option<String> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()?;
    let host = host.trim_start_matches("www.").to_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The unified kind of a Close activity `_type`; `None` for types with no unified form
/// (SMS, status changes, custom activities…).
pub(crate) fn activity_kind(close_type: &str) -> Option<ActivityKind> {
    match close_type {
        "Call" => Some(ActivityKind::Call),
        "Email" => Some(ActivityKind::Email),
        "Meeting" => Some(ActivityKind::Meeting),
        "Note" => Some(ActivityKind::Note),
        _ => None,
    }
}

/// The Close `_type` of a unified activity kind (tasks are not Close activities, so no
/// activity has the type `Task`).
pub(crate) fn activity_type_name(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Call => "Call",
        ActivityKind::Email => "Email",
        ActivityKind::Meeting => "Meeting",
        ActivityKind::Note => "Note",
        ActivityKind::Task => "Task",
    }
}

/// What tells one Close activity from another where no marker can: type, time to the
/// second, contact, and subject and body with whitespace runs as one space.
#[derive(Debug, PartialEq)]
pub(crate) struct NaturalKey {
    kind: ActivityKind,
    at: Option<i64>,
    person: Option<String>,
    subject: Option<String>,
    body: Option<String>,
}

impl NaturalKey {
    /// Whether `other` (an activity Close holds) is the one this key describes. A key
    /// without a time matches any time: Close stamps an activity created without one.
    pub(crate) fn matches(&self, other: &NaturalKey) -> bool {
        self.kind == other.kind
            && (self.at.is_none() || self.at == other.at)
            && self.person == other.person
            && self.subject == other.subject
            && self.body == other.body
    }
}

fn folded(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
}

/// The natural key of an activity.
pub(crate) fn natural_key(a: &Activity) -> NaturalKey {
    NaturalKey {
        kind: a.kind,
        at: a.occurred_at.map(|t| t.timestamp()),
        person: a.person_id.clone(),
        subject: folded(&a.subject),
        body: folded(&a.body),
    }
}

/// Maps a Close object (as JSON) of `kind` to a unified record.
pub(crate) fn to_record(kind: ObjectKind, raw: Value) -> Result<Record> {
    let id = text(&raw["id"]);
    let (created_at, updated_at) = (time(&raw["date_created"]), time(&raw["date_updated"]));
    let custom = custom(&raw).into_iter().collect();
    Ok(match kind {
        ObjectKind::Company => Record::Company(Company {
            id,
            name: text(&raw["name"])
                .or_else(|| text(&raw["display_name"]))
                .unwrap_or_default(),
            domain: raw["url"].as_str().and_then(domain_of),
            url: text(&raw["url"]),
            description: text(&raw["description"]),
            status: text(&raw["status_label"]),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        ObjectKind::Person => {
            let c: models::Contact = serde_json::from_value(raw.clone())?;
            Record::Person(Person {
                id,
                name: c.name.unwrap_or_default(),
                title: c.title.filter(|t| !t.is_empty()),
                emails: c.emails.into_iter().map(|e| e.email).collect(),
                phones: c.phones.into_iter().map(|p| p.phone).collect(),
                company_id: c.lead_id,
                custom,
                created_at,
                updated_at,
                raw,
            })
        }
        ObjectKind::Deal => Record::Deal(Deal {
            id,
            // Only the opportunity's own note: a name borrowed from the lead would be written
            // back into the note by an update. The lead's name stays in `raw["lead_name"]`.
            name: text(&raw["note"]).unwrap_or_default(),
            amount: raw["value"]
                .as_i64()
                .map(|v| Money::new(v, raw["value_currency"].as_str().unwrap_or("USD"))),
            stage_id: text(&raw["status_id"]),
            pipeline_id: text(&raw["pipeline_id"]),
            confidence: raw["confidence"].as_u64().map(|c| c.min(100) as u8),
            company_id: text(&raw["lead_id"]),
            person_id: text(&raw["contact_id"]),
            close_date: time(&raw["date_won"]),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        ObjectKind::Activity => {
            let close_type = raw["_type"].as_str().unwrap_or_default();
            let kind = activity_kind(close_type).ok_or_else(|| {
                Error::new(
                    crmkit_core::ErrorKind::Validation,
                    format!("activity type {close_type:?} has no unified equivalent"),
                )
            })?;
            let mut a = Activity::new(kind);
            a.id = id;
            a.subject = text(&raw["subject"]).or_else(|| text(&raw["title"]));
            a.body = text(&raw["note"]).or_else(|| text(&raw["body_text"]));
            a.occurred_at = time(&raw["activity_at"]).or(created_at);
            a.duration_secs = raw["duration"]
                .as_u64()
                .map(|d| u32::try_from(d).unwrap_or(u32::MAX));
            // Calls say `inbound`/`outbound`, emails `incoming`/`outgoing` (`CommunicationDirection`,
            // close-openapi.yml); the unified model has the former.
            a.direction = text(&raw["direction"]).map(|d| match d.as_str() {
                "incoming" => "inbound".to_string(),
                "outgoing" => "outbound".to_string(),
                _ => d,
            });
            a.company_id = text(&raw["lead_id"]);
            a.person_id = text(&raw["contact_id"]);
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

    #[test]
    fn lead_maps_to_company_with_domain_and_custom_fields() {
        let r = to_record(
            ObjectKind::Company,
            json!({"id": "lead_1", "name": "Acme", "url": "https://www.Acme.com/about", "custom.cf_a": 1,
                   "date_updated": "2024-05-01T12:00:00.000000+00:00"}),
        )
        .unwrap();
        let Record::Company(c) = r else {
            panic!("company")
        };
        assert_eq!(c.domain.as_deref(), Some("acme.com"));
        assert_eq!(c.custom.get("cf_a"), Some(&json!(1)));
        assert!(c.updated_at.is_some());
        assert_eq!(c.raw["id"], "lead_1");
    }

    #[test]
    fn a_deal_without_a_note_has_no_name_borrowed_from_its_lead() {
        let r = to_record(
            ObjectKind::Deal,
            json!({"id": "oppo_1", "lead_name": "Acme", "note": ""}),
        )
        .unwrap();
        let Record::Deal(d) = r else { panic!("deal") };
        assert_eq!(d.name, "");
        assert_eq!(d.raw["lead_name"], "Acme");
    }

    #[test]
    fn an_email_direction_is_inbound_or_outbound_like_a_call() {
        for (close, unified) in [("incoming", "inbound"), ("outgoing", "outbound")] {
            let r = to_record(
                ObjectKind::Activity,
                json!({"id": "acti_1", "_type": "Email", "direction": close}),
            )
            .unwrap();
            let Record::Activity(a) = r else {
                panic!("activity")
            };
            assert_eq!(a.direction.as_deref(), Some(unified));
        }
    }

    #[test]
    fn an_sms_has_no_unified_form() {
        let e = to_record(
            ObjectKind::Activity,
            json!({"id": "acti_1", "_type": "SMS"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SMS"), "{e}");
        assert_eq!(activity_kind("SMS"), None);
    }
}
