//! Typed Close objects. Every struct keeps the fields it does not name in `extra`, so nothing
//! Close returns is lost; custom fields (`custom.cf_…`) live there and are read with
//! `custom()`.
//!
//! The `*Fields` structs are write payloads, and Close's PUT is a partial update: a field
//! left alone is not sent and keeps its value. Fields Close lets you empty are a [`Patch`]
//! (leave, set or clear); the others are `Option` (leave or set); `emails` and `phones`
//! replace the whole list (`Some(vec![])` empties it).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use crmkit_core::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Custom field values from an object's `custom.cf_…` keys, keyed by field id.
fn custom_of(extra: &Map<String, Value>) -> BTreeMap<String, Value> {
    extra
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("custom.")
                .map(|id| (id.to_string(), v.clone()))
        })
        .collect()
}

fn time(s: &Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(crmkit_core::time::parse_timestamp)
}

macro_rules! timestamps {
    ($t:ty) => {
        impl $t {
            /// When it was created.
            pub fn created_at(&self) -> Option<DateTime<Utc>> {
                time(&self.date_created)
            }
            /// When it last changed.
            pub fn updated_at(&self) -> Option<DateTime<Utc>> {
                time(&self.date_updated)
            }
            /// Custom field values keyed by field id (`cf_…`).
            pub fn custom(&self) -> BTreeMap<String, Value> {
                custom_of(&self.extra)
            }
        }
    };
}

/// One field of a write payload: left as it is (not sent), set to a value, or cleared (sent
/// as `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not sent: Close keeps the stored value.
    #[default]
    Leave,
    /// Sent with this value.
    Set(T),
    /// Sent as `null`: Close empties the field.
    Clear,
}

impl<T> Patch<T> {
    /// Whether the field is left out of the payload.
    pub fn is_leave(&self) -> bool {
        matches!(self, Patch::Leave)
    }
}

impl<T> From<T> for Patch<T> {
    fn from(v: T) -> Self {
        Patch::Set(v)
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Set(v) => v.serialize(s),
            Patch::Clear => s.serialize_none(),
            // `Leave` must be skipped (`skip_serializing_if = "Patch::is_leave"`); written as
            // null it would clear the field, so a forgotten attribute fails the request.
            Patch::Leave => Err(serde::ser::Error::custom(
                "Patch::Leave must be skipped (skip_serializing_if = \"Patch::is_leave\"), not sent",
            )),
        }
    }
}

/// An email address of a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailAddress {
    /// `office`, `home`, `other`…
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The address.
    pub email: String,
}

/// A phone number of a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// `office`, `mobile`, `direct`…
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The number, E.164 once stored.
    pub phone: String,
}

/// A lead: Close's company record, with its contacts and opportunities nested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// `lead_…`.
    pub id: String,
    /// Company name.
    #[serde(default)]
    pub name: Option<String>,
    /// Name shown in the app.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Website.
    #[serde(default)]
    pub url: Option<String>,
    /// Lead status id (`stat_…`).
    #[serde(default)]
    pub status_id: Option<String>,
    /// Lead status label.
    #[serde(default)]
    pub status_label: Option<String>,
    /// Contacts of the lead.
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Opportunities of the lead.
    #[serde(default)]
    pub opportunities: Vec<Opportunity>,
    /// Addresses, as Close returns them.
    #[serde(default)]
    pub addresses: Vec<Value>,
    /// Creation time (ISO 8601).
    #[serde(default)]
    pub date_created: Option<String>,
    /// Last change (ISO 8601).
    #[serde(default)]
    pub date_updated: Option<String>,
    /// Everything else, custom fields included.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
timestamps!(Lead);

/// A contact: a person at a lead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// `cont_…`.
    pub id: String,
    /// The lead it belongs to.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// Full name.
    #[serde(default)]
    pub name: Option<String>,
    /// Job title.
    #[serde(default)]
    pub title: Option<String>,
    /// Email addresses.
    #[serde(default)]
    pub emails: Vec<EmailAddress>,
    /// Phone numbers.
    #[serde(default)]
    pub phones: Vec<PhoneNumber>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Last change.
    #[serde(default)]
    pub date_updated: Option<String>,
    /// Everything else, custom fields included.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
timestamps!(Contact);

/// An opportunity: a deal on a lead. `value` is in cents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    /// `oppo_…`.
    pub id: String,
    /// The lead.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// The main contact.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// Status id (`stat_…`).
    #[serde(default)]
    pub status_id: Option<String>,
    /// Status label.
    #[serde(default)]
    pub status_label: Option<String>,
    /// `active`, `won` or `lost`.
    #[serde(default)]
    pub status_type: Option<String>,
    /// Pipeline id (`pipe_…`).
    #[serde(default)]
    pub pipeline_id: Option<String>,
    /// Value in cents.
    #[serde(default)]
    pub value: Option<i64>,
    /// `one_time`, `monthly` or `annual`.
    #[serde(default)]
    pub value_period: Option<String>,
    /// ISO 4217 currency.
    #[serde(default)]
    pub value_currency: Option<String>,
    /// Confidence 0–100.
    #[serde(default)]
    pub confidence: Option<u8>,
    /// Free-text note.
    #[serde(default)]
    pub note: Option<String>,
    /// Day it was won (`YYYY-MM-DD`).
    #[serde(default)]
    pub date_won: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Last change.
    #[serde(default)]
    pub date_updated: Option<String>,
    /// Everything else, custom fields included.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
timestamps!(Opportunity);

/// An activity of any type (`Note`, `Call`, `Email`, `Meeting`, `SMS`…).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// `acti_…`.
    pub id: String,
    /// The type: `Note`, `Call`, `Email`, `Meeting`…
    #[serde(rename = "_type", default)]
    pub kind: String,
    /// The lead.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// The contact.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// The user who owns it.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Note text (notes, calls).
    #[serde(default)]
    pub note: Option<String>,
    /// Subject (emails) .
    #[serde(default)]
    pub subject: Option<String>,
    /// Title (meetings).
    #[serde(default)]
    pub title: Option<String>,
    /// Plain body (emails).
    #[serde(default)]
    pub body_text: Option<String>,
    /// Direction (calls: `outbound`/`inbound`; emails: `outgoing`/`incoming`).
    #[serde(default)]
    pub direction: Option<String>,
    /// Duration in seconds (calls, meetings).
    #[serde(default)]
    pub duration: Option<u32>,
    /// Status (calls, emails).
    #[serde(default)]
    pub status: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub activity_at: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Last change.
    #[serde(default)]
    pub date_updated: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
timestamps!(Activity);

/// A task on a lead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// `task_…`.
    pub id: String,
    /// `lead` or `outgoing_call`.
    #[serde(rename = "_type", default)]
    pub kind: Option<String>,
    /// The lead.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// What to do.
    #[serde(default)]
    pub text: Option<String>,
    /// Due date.
    #[serde(default)]
    pub date: Option<String>,
    /// Whether it is done.
    #[serde(default)]
    pub is_complete: bool,
    /// Assignee user id.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Last change.
    #[serde(default)]
    pub date_updated: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
timestamps!(Task);

/// A lead or opportunity status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `stat_…`.
    pub id: String,
    /// The label.
    pub label: String,
    /// Opportunity statuses: `active`, `won` or `lost`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Opportunity statuses: the pipeline.
    #[serde(default)]
    pub pipeline_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A pipeline and its opportunity statuses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// `pipe_…`.
    pub id: String,
    /// The name.
    pub name: String,
    /// Its statuses, in order.
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A custom field definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    /// `cf_…`.
    pub id: String,
    /// The name users see.
    pub name: String,
    /// `text`, `number`, `date`, `datetime`, `choices`, `user`, `contact`, `hidden`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Whether it holds a list.
    #[serde(default)]
    pub accepts_multiple_values: bool,
    /// The allowed values of a `choices` field.
    #[serde(default)]
    pub choices: Option<Vec<Value>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user of the organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `user_…`.
    pub id: String,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Everything else (`organizations` on `/me/`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Which events a webhook subscription receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// `lead`, `contact`, `opportunity`, `activity.call`…
    pub object_type: String,
    /// `created`, `updated`, `deleted`…
    pub action: String,
}

/// A webhook subscription. `signature_key` verifies deliveries; `Debug` hides it.
#[derive(Clone, Deserialize)]
pub struct WebhookSubscription {
    /// `whsub_…`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed events.
    #[serde(default)]
    pub events: Vec<EventFilter>,
    /// `active` or `paused`.
    #[serde(default)]
    pub status: Option<String>,
    /// Whether Close checks the TLS certificate of `url`.
    #[serde(default)]
    pub verify_ssl: Option<bool>,
    /// The hex HMAC key (returned when the subscription is created).
    #[serde(default)]
    pub signature_key: Option<SecretString>,
}

impl fmt::Debug for WebhookSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSubscription")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("status", &self.status)
            .field(
                "signature_key",
                &self.signature_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// An event from the event log or a webhook delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `ev_…`.
    #[serde(default)]
    pub id: String,
    /// `lead`, `contact`, `opportunity`, `activity.note`…
    pub object_type: String,
    /// `created`, `updated`, `deleted`, `merged`…
    pub action: String,
    /// The object that changed.
    #[serde(default)]
    pub object_id: Option<String>,
    /// Its lead.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// Fields that changed (updates).
    #[serde(default)]
    pub changed_fields: Vec<String>,
    /// Their values before the change.
    #[serde(default)]
    pub previous_data: Map<String, Value>,
    /// The object after the change.
    #[serde(default)]
    pub data: Value,
    /// Request details (`request_method`, `request_path`, merge ids…).
    #[serde(default)]
    pub meta: Value,
    /// When it happened.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Write payload for a lead; only set fields are sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeadFields {
    /// Company name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub description: Patch<String>,
    /// Website.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub url: Patch<String>,
    /// Status id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<String>,
    /// Contacts to create with the lead (create only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactFields>,
    /// Custom fields by id (`cf_…`); `Value::Null` clears one.
    #[serde(flatten, serialize_with = "custom_keys")]
    pub custom: BTreeMap<String, Value>,
}

/// Write payload for a contact.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContactFields {
    /// The lead (a new lead is made when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Job title.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub title: Patch<String>,
    /// Email addresses (replaces the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<EmailAddress>>,
    /// Phone numbers (replaces the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<PhoneNumber>>,
    /// Custom fields by id.
    #[serde(flatten, serialize_with = "custom_keys")]
    pub custom: BTreeMap<String, Value>,
}

/// Write payload for an opportunity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpportunityFields {
    /// The lead (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// The main contact.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub contact_id: Patch<String>,
    /// Status id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<String>,
    /// Pipeline id (picks its first status when no status is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// Value in cents.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub value: Patch<i64>,
    /// `one_time`, `monthly` or `annual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_period: Option<String>,
    /// Currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_currency: Option<String>,
    /// Confidence 0–100.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub confidence: Patch<u8>,
    /// Note.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub note: Patch<String>,
    /// Custom fields by id.
    #[serde(flatten, serialize_with = "custom_keys")]
    pub custom: BTreeMap<String, Value>,
}

/// Write payload for a note, call or email activity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActivityFields {
    /// The lead (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// The contact.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub contact_id: Patch<String>,
    /// Note text.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub note: Patch<String>,
    /// Email subject.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub subject: Patch<String>,
    /// Email body.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub body_text: Patch<String>,
    /// Call or email direction.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub direction: Patch<String>,
    /// Call duration in seconds.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub duration: Patch<u32>,
    /// Call or email status (emails: `draft`, `sent`…; `outbox` really sends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When it happened.
    #[serde(skip_serializing_if = "Patch::is_leave")]
    pub activity_at: Patch<String>,
}

fn custom_keys<S: serde::Serializer>(
    custom: &BTreeMap<String, Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(custom.len()))?;
    for (id, v) in custom {
        let key = if id.starts_with("custom.") {
            id.clone()
        } else {
            format!("custom.{id}")
        };
        map.serialize_entry(&key, v)?;
    }
    map.end()
}

/// One page of a Close list endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPage<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_leave_that_reaches_the_serializer_fails_instead_of_clearing() {
        assert!(serde_json::to_value(Patch::<String>::Leave).is_err());
        assert_eq!(
            serde_json::to_value(Patch::<String>::Clear).unwrap(),
            Value::Null
        );
        assert_eq!(serde_json::to_value(Patch::Set(3)).unwrap(), json!(3));
    }

    #[test]
    fn write_payload_sends_only_set_fields_and_prefixes_custom() {
        let mut custom = BTreeMap::new();
        custom.insert("cf_industry".to_string(), json!("MEP Contractor"));
        let f = LeadFields {
            name: Some("Acme".into()),
            custom,
            ..LeadFields::default()
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"name": "Acme", "custom.cf_industry": "MEP Contractor"})
        );
    }

    #[test]
    fn patch_fields_leave_set_or_clear() {
        let f = OpportunityFields {
            note: Patch::Set("big".into()),
            value: Patch::Clear,
            ..OpportunityFields::default()
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"value": null, "note": "big"})
        );
        assert_eq!(Patch::from(5), Patch::Set(5));
    }

    #[test]
    fn custom_fields_are_read_from_extra() {
        let lead: Lead = serde_json::from_value(json!({
            "id": "lead_1", "name": "Acme", "custom.cf_x": "y",
            "date_updated": "2017-09-27T10:44:27.875000+00:00"
        }))
        .unwrap();
        assert_eq!(lead.custom().get("cf_x"), Some(&json!("y")));
        assert!(lead.updated_at().is_some());
    }
}
