//! Typed records of the standard objects Account, Contact, Lead, Opportunity, Task and
//! Event. Every field is optional and only fields that are set are sent, so a typed value
//! serves both as a create body and as a patch; fields without a typed slot live in
//! `other`. Field names and types: Salesforce Object Reference (developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/).

use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, Utc};
use crmkit_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::client::Client;
use crate::ids::SalesforceId;
use crate::sobjects::{Fields, SObjects, Upserted};

/// A typed standard object.
pub trait SObject: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its API name.
    const NAME: &'static str;

    /// The fields that are set, as sent to Salesforce.
    fn to_fields(&self) -> Result<Fields> {
        match serde_json::to_value(self)? {
            Value::Object(mut m) => {
                m.remove("attributes");
                Ok(m)
            }
            _ => Err(Error::bad_response(
                "a typed record did not serialize to an object",
            )),
        }
    }

    /// Reads a record as Salesforce returned it.
    fn from_fields(fields: Fields) -> Result<Self> {
        serde_json::from_value(Value::Object(fields))
            .map_err(|e| Error::bad_response(format!("a {} record does not fit: {e}", Self::NAME)))
    }
}

/// Salesforce datetimes (`2011-07-07T00:37:00.000+0000`), which RFC 3339 parsers refuse.
pub mod sf_datetime {
    use super::*;

    /// Writes `2024-01-31T12:00:00.000+0000`.
    pub fn serialize<S: serde::Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()),
            None => s.serialize_none(),
        }
    }

    /// Reads any timestamp Salesforce sends; `null` is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<DateTime<Utc>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => crmkit_core::time::parse_timestamp(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a datetime"))),
        }
    }
}

macro_rules! sobject {
    ($(#[$meta:meta])* $name:ident, $api:literal, { $($(#[$fmeta:meta])* $field:ident : $ty:ty => $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// The record id (read only).
            #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
            pub id: Option<SalesforceId>,
            $(
                $(#[$fmeta])*
                #[serde(rename = $wire, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// When the record last changed in any way (read only).
            #[serde(rename = "SystemModstamp", default, with = "sf_datetime", skip_serializing_if = "Option::is_none")]
            pub system_modstamp: Option<DateTime<Utc>>,
            /// When it was created (read only).
            #[serde(rename = "CreatedDate", default, with = "sf_datetime", skip_serializing_if = "Option::is_none")]
            pub created_date: Option<DateTime<Utc>>,
            /// Every other field, by API name.
            #[serde(flatten)]
            pub other: Fields,
        }

        impl SObject for $name {
            const NAME: &'static str = $api;
        }
    };
}

sobject!(
    /// An Account: a company.
    Account, "Account", {
        /// Name (required).
        name: String => "Name",
        /// Website.
        website: String => "Website",
        /// Description.
        description: String => "Description",
        /// Industry picklist.
        industry: String => "Industry",
        /// Type picklist.
        account_type: String => "Type",
        /// Main phone.
        phone: String => "Phone",
        /// Owner.
        owner_id: SalesforceId => "OwnerId",
    }
);

sobject!(
    /// A Contact: a person at an account.
    Contact, "Contact", {
        /// First name.
        first_name: String => "FirstName",
        /// Last name (required).
        last_name: String => "LastName",
        /// Email.
        email: String => "Email",
        /// Phone.
        phone: String => "Phone",
        /// Mobile phone.
        mobile_phone: String => "MobilePhone",
        /// Title.
        title: String => "Title",
        /// The account.
        account_id: SalesforceId => "AccountId",
    }
);

sobject!(
    /// A Lead: a person not yet qualified.
    Lead, "Lead", {
        /// First name.
        first_name: String => "FirstName",
        /// Last name (required).
        last_name: String => "LastName",
        /// Company (required).
        company: String => "Company",
        /// Email.
        email: String => "Email",
        /// Phone.
        phone: String => "Phone",
        /// Title.
        title: String => "Title",
        /// Status picklist (defaulted).
        status: String => "Status",
    }
);

sobject!(
    /// An Opportunity: a deal.
    Opportunity, "Opportunity", {
        /// Name (required).
        name: String => "Name",
        /// Stage (required).
        stage_name: String => "StageName",
        /// Expected or actual close date (required).
        close_date: NaiveDate => "CloseDate",
        /// Amount in the record's currency.
        amount: f64 => "Amount",
        /// Win probability in percent.
        probability: f64 => "Probability",
        /// The account.
        account_id: SalesforceId => "AccountId",
        /// Description.
        description: String => "Description",
        /// Whether it is closed (read only).
        is_closed: bool => "IsClosed",
        /// Whether it is won (read only).
        is_won: bool => "IsWon",
    }
);

sobject!(
    /// A Task: a to-do or a logged call or email.
    Task, "Task", {
        /// Subject.
        subject: String => "Subject",
        /// Comments (body).
        description: String => "Description",
        /// Status picklist (defaulted, "Not Started").
        status: String => "Status",
        /// Priority picklist (defaulted, "Normal").
        priority: String => "Priority",
        /// Due date.
        activity_date: NaiveDate => "ActivityDate",
        /// A Contact or Lead.
        who_id: SalesforceId => "WhoId",
        /// An Account, Opportunity or other record.
        what_id: SalesforceId => "WhatId",
        /// `Call`, `Email`, `Task`, …
        task_subtype: String => "TaskSubtype",
        /// Call length in seconds.
        call_duration_in_seconds: i64 => "CallDurationInSeconds",
        /// `Inbound` or `Outbound`.
        call_type: String => "CallType",
        /// Whether it is done (read only).
        is_closed: bool => "IsClosed",
    }
);

sobject!(
    /// An Event: a meeting.
    Event, "Event", {
        /// Subject.
        subject: String => "Subject",
        /// Description.
        description: String => "Description",
        /// Start (required unless all-day).
        #[serde(with = "sf_datetime")]
        activity_date_time: DateTime<Utc> => "ActivityDateTime",
        /// Length in minutes (or set the end).
        duration_in_minutes: i64 => "DurationInMinutes",
        /// End.
        #[serde(with = "sf_datetime")]
        end_date_time: DateTime<Utc> => "EndDateTime",
        /// A Contact or Lead.
        who_id: SalesforceId => "WhoId",
        /// An Account, Opportunity or other record.
        what_id: SalesforceId => "WhatId",
        /// Whether it lasts all day.
        is_all_day_event: bool => "IsAllDayEvent",
    }
);

/// Fields the typed structs carry that Salesforce computes and refuses in writes.
const READ_ONLY: &[&str] = &["Id", "SystemModstamp", "CreatedDate", "IsClosed", "IsWon"];

fn writable<T: SObject>(record: &T) -> Result<Fields> {
    let mut f = record.to_fields()?;
    f.retain(|k, _| !READ_ONLY.contains(&k.as_str()));
    Ok(f)
}

/// The records of a typed standard object.
#[derive(Debug, Clone)]
pub struct Typed<T> {
    raw: SObjects,
    _t: PhantomData<fn() -> T>,
}

impl<T: SObject> Typed<T> {
    /// The untyped handle of the same object.
    pub fn raw(&self) -> &SObjects {
        &self.raw
    }

    /// Reads a record.
    pub async fn get(&self, id: &str) -> Result<T> {
        T::from_fields(self.raw.get(id, &[]).await?)
    }

    /// Creates a record from the fields set in `record` (its read-only typed fields are
    /// left out).
    pub async fn create(&self, record: &T) -> Result<SalesforceId> {
        self.raw.create(&writable(record)?).await
    }

    /// Patches record `id` with the fields set in `patch` (nothing else changes). Build the
    /// patch with only the fields to change: the typed read-only fields are left out, but
    /// other system fields of a record read back (in `other`) would be sent and refused.
    pub async fn update(&self, id: &str, patch: &T) -> Result<()> {
        self.raw.update(id, &writable(patch)?).await
    }

    /// Upserts by external id `field` = `value`.
    pub async fn upsert(&self, field: &str, value: &str, record: &T) -> Result<Upserted> {
        self.raw.upsert(field, value, &writable(record)?).await
    }

    /// Deletes record `id`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.raw.delete(id).await
    }
}

impl Client {
    /// A typed handle for `T`.
    pub fn typed<T: SObject>(&self) -> Typed<T> {
        Typed {
            raw: self.sobject(T::NAME),
            _t: PhantomData,
        }
    }

    /// Accounts.
    pub fn accounts(&self) -> Typed<Account> {
        self.typed()
    }
    /// Contacts.
    pub fn contacts(&self) -> Typed<Contact> {
        self.typed()
    }
    /// Leads.
    pub fn leads(&self) -> Typed<Lead> {
        self.typed()
    }
    /// Opportunities.
    pub fn opportunities(&self) -> Typed<Opportunity> {
        self.typed()
    }
    /// Tasks.
    pub fn tasks(&self) -> Typed<Task> {
        self.typed()
    }
    /// Events.
    pub fn events(&self) -> Typed<Event> {
        self.typed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_fields_are_sent_and_reads_keep_the_rest() {
        let patch = Account {
            website: Some("acme.example".into()),
            ..Account::default()
        };
        let f = patch.to_fields().expect("fields");
        assert_eq!(
            Value::Object(f),
            serde_json::json!({"Website": "acme.example"})
        );
        let read = Account::from_fields(
            serde_json::from_str(
                r#"{"attributes":{"type":"Account","url":"/x"},"Id":"001D000000IqhSLIAZ","Name":"Acme","SystemModstamp":"2011-07-07T00:37:00.000+0000","Custom__c":1}"#,
            )
            .expect("json"),
        )
        .expect("fits");
        assert_eq!(read.name.as_deref(), Some("Acme"));
        assert_eq!(read.other.get("Custom__c"), Some(&Value::from(1)));
        assert_eq!(
            read.system_modstamp.map(|t| t.timestamp()),
            Some(1_309_999_020)
        );
        let back = read.to_fields().expect("fields");
        assert!(!back.contains_key("attributes"));
        assert_eq!(back["SystemModstamp"], "2011-07-07T00:37:00.000+0000");
        let w = writable(&read).expect("fields");
        assert!(!w.contains_key("Id") && !w.contains_key("SystemModstamp"));
        assert_eq!(w["Name"], "Acme");
    }
}
