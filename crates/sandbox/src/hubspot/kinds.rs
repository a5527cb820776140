//! The object types the sandbox serves, the names and ids they are addressed by, and the
//! properties each one knows (a property outside the list is a 400, as HubSpot refuses
//! properties that do not exist).

/// How a property's values compare in search filters and sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropKind {
    /// Free text, compared case-insensitively.
    Text,
    /// A number sent as a string.
    Number,
    /// A date or datetime, ISO or epoch milliseconds.
    Date,
    /// An enumeration: compared case-sensitively (developers.hubspot.com/docs/api/crm/search).
    Enum,
}

/// One CRM object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectType {
    /// The plural name used in paths (`contacts`).
    pub plural: &'static str,
    /// The singular name (`contact`), used in association type names.
    pub singular: &'static str,
    /// The objectTypeId (`0-1`).
    pub type_id: &'static str,
    /// The upper-case name HubSpot uses in batch error messages.
    pub upper: &'static str,
    /// The property holding the last change (`lastmodifieddate` on contacts only).
    pub modified: &'static str,
    /// The property holding the creation time.
    pub created: &'static str,
    /// Properties returned when none are asked for (search guide's default lists).
    pub defaults: &'static [&'static str],
    /// Properties `query` searches (search guide's "searchable default properties").
    pub searchable: &'static [&'static str],
    /// Every property the type knows besides the maintained ones.
    pub known: &'static [(&'static str, PropKind)],
}

use PropKind::{Date, Enum, Number, Text};

const ENGAGEMENT_DEFAULTS: &[&str] = &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"];

/// The types served. objectTypeIds 0-1/0-2/0-3 are confirmed (deals spec uses
/// `/crm/v3/objects/0-3`); the engagement ids come from HubSpot's object-type table (unconfirmed).
pub(crate) const TYPES: &[ObjectType] = &[
    ObjectType {
        plural: "contacts",
        singular: "contact",
        type_id: "0-1",
        upper: "CONTACT",
        modified: "lastmodifieddate",
        created: "createdate",
        defaults: &[
            "firstname",
            "lastname",
            "email",
            "lastmodifieddate",
            "hs_object_id",
            "createdate",
        ],
        searchable: &[
            "firstname",
            "lastname",
            "email",
            "phone",
            "hs_additional_emails",
            "fax",
            "mobilephone",
            "company",
        ],
        known: &[
            ("email", Text),
            ("firstname", Text),
            ("lastname", Text),
            ("phone", Text),
            ("mobilephone", Text),
            ("fax", Text),
            ("company", Text),
            ("jobtitle", Text),
            ("website", Text),
            ("city", Text),
            ("country", Text),
            ("hs_additional_emails", Text),
            ("lifecyclestage", Enum),
            ("hubspot_owner_id", Enum),
            ("associatedcompanyid", Number),
            ("address", Text),
            ("state", Text),
            ("zip", Text),
            ("hs_lead_status", Enum),
            ("hs_merged_object_ids", Enum),
        ],
    },
    ObjectType {
        plural: "companies",
        singular: "company",
        type_id: "0-2",
        upper: "COMPANY",
        modified: "hs_lastmodifieddate",
        created: "createdate",
        defaults: &[
            "name",
            "domain",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
        searchable: &["website", "phone", "name", "domain"],
        known: &[
            ("name", Text),
            ("domain", Text),
            ("website", Text),
            ("phone", Text),
            ("city", Text),
            ("country", Text),
            ("industry", Enum),
            ("description", Text),
            ("numberofemployees", Number),
            ("annualrevenue", Number),
            ("hubspot_owner_id", Enum),
            ("lifecyclestage", Enum),
            ("address", Text),
            ("state", Text),
            ("zip", Text),
            ("hs_merged_object_ids", Enum),
        ],
    },
    ObjectType {
        plural: "deals",
        singular: "deal",
        type_id: "0-3",
        upper: "DEAL",
        modified: "hs_lastmodifieddate",
        created: "createdate",
        defaults: &[
            "dealname",
            "amount",
            "closedate",
            "pipeline",
            "dealstage",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
        searchable: &[
            "dealname",
            "pipeline",
            "dealstage",
            "description",
            "dealtype",
        ],
        known: &[
            ("dealname", Text),
            ("amount", Number),
            ("closedate", Date),
            ("pipeline", Enum),
            ("dealstage", Enum),
            ("description", Text),
            ("dealtype", Enum),
            ("hs_deal_stage_probability", Number),
            ("hubspot_owner_id", Enum),
            ("deal_currency_code", Enum),
            ("hs_merged_object_ids", Enum),
        ],
    },
    ObjectType {
        plural: "notes",
        singular: "note",
        type_id: "0-46",
        upper: "NOTE",
        modified: "hs_lastmodifieddate",
        created: "hs_createdate",
        defaults: ENGAGEMENT_DEFAULTS,
        searchable: &["hs_note_body"],
        known: &[
            ("hs_timestamp", Date),
            ("hs_note_body", Text),
            ("hubspot_owner_id", Enum),
        ],
    },
    ObjectType {
        plural: "calls",
        singular: "call",
        type_id: "0-48",
        upper: "CALL",
        modified: "hs_lastmodifieddate",
        created: "hs_createdate",
        defaults: ENGAGEMENT_DEFAULTS,
        searchable: &["hs_call_title", "hs_body_preview"],
        known: &[
            ("hs_timestamp", Date),
            ("hs_call_title", Text),
            ("hs_call_body", Text),
            ("hs_call_direction", Enum),
            ("hs_call_duration", Number),
            ("hs_call_status", Enum),
            ("hs_body_preview", Text),
            ("hubspot_owner_id", Enum),
        ],
    },
    ObjectType {
        plural: "tasks",
        singular: "task",
        type_id: "0-27",
        upper: "TASK",
        modified: "hs_lastmodifieddate",
        created: "hs_createdate",
        defaults: ENGAGEMENT_DEFAULTS,
        searchable: &["hs_task_body", "hs_task_subject"],
        known: &[
            ("hs_timestamp", Date),
            ("hs_task_subject", Text),
            ("hs_task_body", Text),
            ("hs_task_status", Enum),
            ("hs_task_priority", Enum),
            ("hs_task_type", Enum),
            ("hubspot_owner_id", Enum),
        ],
    },
    ObjectType {
        plural: "meetings",
        singular: "meeting",
        type_id: "0-47",
        upper: "MEETING",
        modified: "hs_lastmodifieddate",
        created: "hs_createdate",
        defaults: ENGAGEMENT_DEFAULTS,
        searchable: &["hs_meeting_title", "hs_meeting_body"],
        known: &[
            ("hs_timestamp", Date),
            ("hs_meeting_title", Text),
            ("hs_meeting_body", Text),
            ("hs_meeting_start_time", Date),
            ("hs_meeting_end_time", Date),
            ("hs_meeting_outcome", Enum),
            ("hubspot_owner_id", Enum),
        ],
    },
    ObjectType {
        plural: "emails",
        singular: "email",
        type_id: "0-49",
        upper: "EMAIL",
        modified: "hs_lastmodifieddate",
        created: "hs_createdate",
        defaults: ENGAGEMENT_DEFAULTS,
        searchable: &["hs_email_subject"],
        known: &[
            ("hs_timestamp", Date),
            ("hs_email_subject", Text),
            ("hs_email_text", Text),
            ("hs_email_direction", Enum),
            ("hubspot_owner_id", Enum),
        ],
    },
];

impl ObjectType {
    /// The type a path segment names: plural, singular or objectTypeId.
    pub(crate) fn parse(segment: &str) -> Option<&'static ObjectType> {
        let s = segment.to_ascii_lowercase();
        TYPES
            .iter()
            .find(|t| t.plural == s || t.singular == s || t.type_id == s)
    }

    /// Properties the sandbox maintains; a write may not set them.
    pub(crate) fn maintained(&self) -> [&'static str; 4] {
        ["hs_object_id", self.created, self.modified, "hs_createdate"]
    }

    /// Whether HubSpot computes `name` itself, so a write may not set it: the maintained
    /// properties, `hs_merged_object_ids` (set by merges) and, on deals,
    /// `hs_deal_stage_probability` ("Deal probability … defaults to the deal stage
    /// probability", knowledge.hubspot.com/crm-deals/hubspots-default-deal-properties;
    /// the stage probabilities are set per pipeline stage, developers.hubspot.com/docs/api/crm/pipelines).
    pub(crate) fn read_only(&self, name: &str) -> bool {
        (self.maintained().contains(&name) && name != "hs_createdate")
            || name == "hs_merged_object_ids"
            || (self.plural == "deals" && name == "hs_deal_stage_probability")
    }

    /// How a property compares, or `None` when the type does not know it.
    pub(crate) fn kind(&self, name: &str) -> Option<PropKind> {
        if self.maintained().contains(&name) {
            return Some(if name == "hs_object_id" { Number } else { Date });
        }
        self.known.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_address_the_same_type() {
        let by_id = ObjectType::parse("0-1").map(|t| t.plural);
        assert_eq!(by_id, Some("contacts"));
        assert_eq!(ObjectType::parse("Contact").map(|t| t.type_id), Some("0-1"));
        assert_eq!(ObjectType::parse("0-3").map(|t| t.plural), Some("deals"));
        assert!(ObjectType::parse("widgets").is_none());
    }
}
