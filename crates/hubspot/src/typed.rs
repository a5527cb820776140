//! Typed properties of the standard object types. Every field is the HubSpot property of the
//! same name (names from the HubSpot CRM search guide's default properties and the object
//! guides); a field left `None` is not sent, so a write built from these is a patch. Any
//! other property goes in `extra`.
//!
//! ```no_run
//! # async fn demo(hs: crmkit_hubspot::Client) -> crmkit_core::Result<()> {
//! use crmkit_hubspot::typed::ContactProperties;
//! let patch = ContactProperties { lifecyclestage: Some("customer".into()), ..Default::default() };
//! hs.contacts().update("512", &patch.to_properties()).await?;
//! # Ok(()) }
//! ```

use crate::objects::{HubSpotObject, ObjectType, Properties};

macro_rules! typed {
    ($(#[$m:meta])* $name:ident, $object:expr, [$($field:ident),* $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $(
                #[doc = concat!("The `", stringify!($field), "` property.")]
                pub $field: Option<String>,
            )*
            /// Any other property, by internal name.
            pub extra: Properties,
        }

        impl $name {
            /// The object type these properties belong to.
            pub const OBJECT_TYPE: ObjectType = $object;
            /// The names of the typed properties, to ask for them on reads.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The properties to send: only those set, plus `extra`.
            pub fn to_properties(&self) -> Properties {
                let mut p = self.extra.clone();
                $(
                    if let Some(v) = &self.$field {
                        p.insert(stringify!($field).to_string(), v.clone());
                    }
                )*
                p
            }

            /// The typed properties of a record; every other property it has lands in
            /// `extra`.
            pub fn from_object(o: &HubSpotObject) -> Self {
                let mut extra = Properties::new();
                for (k, v) in &o.properties {
                    if !Self::NAMES.contains(&k.as_str()) && let Some(v) = v {
                        extra.insert(k.clone(), v.clone());
                    }
                }
                Self {
                    $($field: o.property(stringify!($field)).map(str::to_string),)*
                    extra,
                }
            }
        }
    };
}

typed!(
    /// A contact's common properties.
    ContactProperties,
    ObjectType::Contacts,
    [email, firstname, lastname, phone, mobilephone, company, jobtitle, website, lifecyclestage, hubspot_owner_id]
);

typed!(
    /// A company's common properties.
    CompanyProperties,
    ObjectType::Companies,
    [name, domain, phone, website, industry, city, country, numberofemployees, annualrevenue, lifecyclestage, hubspot_owner_id]
);

typed!(
    /// A deal's common properties (`pipeline` and `dealstage` hold ids; see
    /// [`crate::schema::Pipelines`] for labels).
    DealProperties,
    ObjectType::Deals,
    [dealname, amount, deal_currency_code, closedate, pipeline, dealstage, dealtype, description, hubspot_owner_id]
);

typed!(
    /// A note's properties (`hs_timestamp` is required on create).
    NoteProperties,
    ObjectType::Notes,
    [hs_timestamp, hs_note_body, hubspot_owner_id]
);

typed!(
    /// A call's properties.
    CallProperties,
    ObjectType::Calls,
    [hs_timestamp, hs_call_title, hs_call_body, hs_call_direction, hs_call_duration, hs_call_status, hubspot_owner_id]
);

typed!(
    /// A task's properties (`hs_task_status`: `NOT_STARTED`, `COMPLETED`, …).
    TaskProperties,
    ObjectType::Tasks,
    [hs_timestamp, hs_task_subject, hs_task_body, hs_task_status, hs_task_priority, hs_task_type, hubspot_owner_id]
);

typed!(
    /// A meeting's properties.
    MeetingProperties,
    ObjectType::Meetings,
    [hs_timestamp, hs_meeting_title, hs_meeting_body, hs_meeting_start_time, hs_meeting_end_time, hs_meeting_outcome, hubspot_owner_id]
);

typed!(
    /// An email engagement's properties.
    EmailProperties,
    ObjectType::Emails,
    [hs_timestamp, hs_email_subject, hs_email_text, hs_email_direction, hubspot_owner_id]
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_set_properties_are_sent_and_reads_round_trip() {
        let c = ContactProperties {
            email: Some("a@b.com".into()),
            lifecyclestage: Some(String::new()),
            ..Default::default()
        };
        let p = c.to_properties();
        assert_eq!(p.len(), 2);
        assert_eq!(p["lifecyclestage"], "", "an empty string clears");
        let o: HubSpotObject = serde_json::from_value(json!({
            "id": "1", "properties": {"dealname": "Big", "amount": "10", "hs_object_id": "1", "closedate": null}
        }))
        .expect("parses");
        let d = DealProperties::from_object(&o);
        assert_eq!(d.dealname.as_deref(), Some("Big"));
        assert_eq!(d.closedate, None);
        assert_eq!(d.extra["hs_object_id"], "1");
        assert_eq!(DealProperties::OBJECT_TYPE, ObjectType::Deals);
        assert!(NoteProperties::NAMES.contains(&"hs_note_body"));
        assert_eq!(EmailProperties::OBJECT_TYPE.as_str(), "emails");
        let _ = (
            CompanyProperties::default(),
            CallProperties::default(),
            TaskProperties::default(),
            MeetingProperties::default(),
        );
    }
}
