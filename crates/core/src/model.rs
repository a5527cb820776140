//! The unified record model shared by every connector.
//!
//! Each CRM maps its own objects to these four records and back. Anything a CRM returns that
//! has no unified field stays reachable: custom fields in `custom`, and the whole original
//! object in `raw`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The CRMs crmkit speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crm {
    /// Close (close.com).
    Close,
    /// HubSpot.
    HubSpot,
    /// Salesforce.
    Salesforce,
}

impl fmt::Display for Crm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Crm::Close => "close",
            Crm::HubSpot => "hubspot",
            Crm::Salesforce => "salesforce",
        })
    }
}

/// The four kinds of unified record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// An organisation (Close lead, HubSpot company, Salesforce Account).
    Company,
    /// A human (Close contact, HubSpot contact, Salesforce Contact).
    Person,
    /// A sales opportunity (Close opportunity, HubSpot deal, Salesforce Opportunity).
    Deal,
    /// A note, call, email, meeting or task.
    Activity,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Company => "company",
            ObjectKind::Person => "person",
            ObjectKind::Deal => "deal",
            ObjectKind::Activity => "activity",
        })
    }
}

/// Points at one record in one CRM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordRef {
    /// Which CRM holds it.
    pub crm: Crm,
    /// What kind of record it is.
    pub object: ObjectKind,
    /// The CRM's id for it.
    pub id: String,
}

impl RecordRef {
    /// A reference to `id` of kind `object` in `crm`.
    pub fn new(crm: Crm, object: ObjectKind, id: impl Into<String>) -> Self {
        Self {
            crm,
            object,
            id: id.into(),
        }
    }
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.crm, self.object, self.id)
    }
}

/// An amount of money in integer minor units (cents) and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount in minor units: `50000` is $500.00.
    pub minor: i64,
    /// The ISO 4217 code, upper case (`USD`).
    pub currency: String,
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: impl Into<String>) -> Self {
        Self {
            minor,
            currency: currency.into().to_ascii_uppercase(),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

/// Whether a pipeline stage is still open or closed one way or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// The deal is still being worked.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

/// A pipeline stage (Close opportunity status, HubSpot deal stage, Salesforce StageName).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The CRM's id for the stage.
    pub id: String,
    /// The label users see.
    pub label: String,
    /// The pipeline it belongs to, when the CRM has pipelines.
    pub pipeline_id: Option<String>,
    /// Open, won or lost.
    pub kind: StageKind,
    /// Win probability 0.0–1.0, when the CRM gives one.
    pub probability: Option<f64>,
}

/// Custom field values keyed by the CRM's field id.
pub type CustomFields = BTreeMap<String, Value>;

/// An organisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// The CRM's id; `None` before it is created.
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Primary web domain, lower case, without scheme (`acme.com`).
    pub domain: Option<String>,
    /// Website URL.
    pub url: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// The CRM's status or lifecycle label, if any.
    pub status: Option<String>,
    /// Custom field values.
    pub custom: CustomFields,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// The record as the CRM returned it.
    pub raw: Value,
}

/// A human.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The CRM's id; `None` before it is created.
    pub id: Option<String>,
    /// Full name.
    pub name: String,
    /// Job title.
    pub title: Option<String>,
    /// Email addresses, primary first.
    pub emails: Vec<String>,
    /// Phone numbers in E.164, primary first.
    pub phones: Vec<String>,
    /// The company this person belongs to.
    pub company_id: Option<String>,
    /// Custom field values.
    pub custom: CustomFields,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// The record as the CRM returned it.
    pub raw: Value,
}

/// A sales opportunity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    /// The CRM's id; `None` before it is created.
    pub id: Option<String>,
    /// Deal name or note.
    pub name: String,
    /// The value, if any.
    pub amount: Option<Money>,
    /// The stage id.
    pub stage_id: Option<String>,
    /// The pipeline id.
    pub pipeline_id: Option<String>,
    /// Win confidence 0–100.
    pub confidence: Option<u8>,
    /// The company the deal is with.
    pub company_id: Option<String>,
    /// The main contact.
    pub person_id: Option<String>,
    /// When it was won or lost, or is expected to close.
    pub close_date: Option<DateTime<Utc>>,
    /// Custom field values.
    pub custom: CustomFields,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// The record as the CRM returned it.
    pub raw: Value,
}

/// What an activity records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    /// A written note.
    Note,
    /// A phone call.
    Call,
    /// An email.
    Email,
    /// A meeting.
    Meeting,
    /// A to-do.
    Task,
}

/// A note, call, email, meeting or task attached to a company (and maybe a person or deal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The CRM's id; `None` before it is created.
    pub id: Option<String>,
    /// What it records.
    pub kind: ActivityKind,
    /// Subject or title.
    pub subject: Option<String>,
    /// Body text.
    pub body: Option<String>,
    /// When it happened or is due.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Call duration in seconds.
    pub duration_secs: Option<u32>,
    /// `inbound` or `outbound` for calls and emails.
    pub direction: Option<String>,
    /// Whether a task is done.
    pub completed: Option<bool>,
    /// The company it is attached to.
    pub company_id: Option<String>,
    /// The person it concerns.
    pub person_id: Option<String>,
    /// Custom field values.
    pub custom: CustomFields,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// The record as the CRM returned it.
    pub raw: Value,
}

impl Activity {
    /// An empty activity of `kind`, to be filled in before creating it.
    pub fn new(kind: ActivityKind) -> Self {
        Self {
            id: None,
            kind,
            subject: None,
            body: None,
            occurred_at: None,
            duration_secs: None,
            direction: None,
            completed: None,
            company_id: None,
            person_id: None,
            custom: CustomFields::new(),
            created_at: None,
            updated_at: None,
            raw: Value::Null,
        }
    }
}

/// Any unified record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "lowercase")]
pub enum Record {
    /// An organisation.
    Company(Company),
    /// A human.
    Person(Person),
    /// A sales opportunity.
    Deal(Deal),
    /// An activity.
    Activity(Activity),
}

impl Record {
    /// What kind of record this is.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Record::Company(_) => ObjectKind::Company,
            Record::Person(_) => ObjectKind::Person,
            Record::Deal(_) => ObjectKind::Deal,
            Record::Activity(_) => ObjectKind::Activity,
        }
    }

    /// The CRM's id, if the record exists there.
    pub fn id(&self) -> Option<&str> {
        match self {
            Record::Company(r) => r.id.as_deref(),
            Record::Person(r) => r.id.as_deref(),
            Record::Deal(r) => r.id.as_deref(),
            Record::Activity(r) => r.id.as_deref(),
        }
    }

    /// The record's custom field values, keyed by the CRM's field id.
    pub fn custom(&self) -> &CustomFields {
        match self {
            Record::Company(r) => &r.custom,
            Record::Person(r) => &r.custom,
            Record::Deal(r) => &r.custom,
            Record::Activity(r) => &r.custom,
        }
    }

    /// The record's custom field values, to change them.
    pub fn custom_mut(&mut self) -> &mut CustomFields {
        match self {
            Record::Company(r) => &mut r.custom,
            Record::Person(r) => &mut r.custom,
            Record::Deal(r) => &mut r.custom,
            Record::Activity(r) => &mut r.custom,
        }
    }

    /// The object as the CRM returned it (`Value::Null` for a record built locally).
    pub fn raw(&self) -> &Value {
        match self {
            Record::Company(r) => &r.raw,
            Record::Person(r) => &r.raw,
            Record::Deal(r) => &r.raw,
            Record::Activity(r) => &r.raw,
        }
    }

    /// When the record last changed.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Record::Company(r) => r.updated_at,
            Record::Person(r) => r.updated_at,
            Record::Deal(r) => r.updated_at,
            Record::Activity(r) => r.updated_at,
        }
    }

    /// A short human description for error messages and logs (`company "Acme"`).
    pub fn describe(&self) -> String {
        let label = match self {
            Record::Company(r) => r.name.clone(),
            Record::Person(r) => r.name.clone(),
            Record::Deal(r) => r.name.clone(),
            Record::Activity(r) => r.subject.clone().unwrap_or_default(),
        };
        match self.id() {
            Some(id) => format!("{} {id} \"{label}\"", self.kind()),
            None => format!("{} \"{label}\"", self.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_minor_units_as_decimal() {
        assert_eq!(Money::new(50000, "usd").to_string(), "500.00 USD");
        assert_eq!(Money::new(-5, "EUR").to_string(), "-0.05 EUR");
    }

    #[test]
    fn custom_fields_and_raw_are_reachable_on_any_record() {
        let mut r = Record::Activity(Activity::new(ActivityKind::Note));
        r.custom_mut().insert("cf_a".into(), Value::from(1));
        assert_eq!(r.custom().get("cf_a"), Some(&Value::from(1)));
        assert!(r.raw().is_null());
    }

    #[test]
    fn record_describes_itself_for_errors() {
        let c = Record::Company(Company {
            id: Some("lead_1".into()),
            name: "Acme".into(),
            ..Company::default()
        });
        assert_eq!(c.describe(), "company lead_1 \"Acme\"");
        assert!(c.custom().is_empty() && c.raw().is_null());
        assert_eq!(
            RecordRef::new(Crm::Close, ObjectKind::Deal, "oppo_1").to_string(),
            "close:deal:oppo_1"
        );
    }
}
