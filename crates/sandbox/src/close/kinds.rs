//! Which collection a path names, and the per-collection facts (id prefix, event type,
//! model name used in 404 bodies).

/// The activity types: the path segment (also the event `object_type` suffix) and the
/// `_type` Close gives them.
pub(crate) const ACTIVITY_TYPES: &[(&str, &str)] = &[
    ("note", "Note"),
    ("call", "Call"),
    ("email", "Email"),
    ("meeting", "Meeting"),
    ("sms", "SMS"),
    // Read-only: only a merge creates them; Close documents list and get, no writes
    // (developer.close.com/api/resources/activities/lead-merges).
    ("lead_merge", "LeadMerge"),
];

/// Object types that may carry custom fields.
pub(crate) const CUSTOM_FIELD_OBJECTS: &[&str] = &["lead", "contact", "opportunity", "activity"];

/// A collection of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Lead,
    Contact,
    Opportunity,
    Task,
    /// All activities (`/activity/`) or one type (`/activity/note/`), as the path segment.
    Activity(Option<&'static str>),
    LeadStatus,
    OpportunityStatus,
    Pipeline,
    /// Custom fields of one object type.
    CustomField(&'static str),
    Webhook,
}

impl Kind {
    /// Splits a path below `/api/v1/` into a collection and an optional id.
    pub(crate) fn parse(segments: &[&str]) -> Option<(Kind, Option<String>)> {
        let (kind, rest): (Kind, &[&str]) = match segments {
            ["lead", rest @ ..] => (Kind::Lead, rest),
            ["contact", rest @ ..] => (Kind::Contact, rest),
            ["opportunity", rest @ ..] => (Kind::Opportunity, rest),
            ["task", rest @ ..] => (Kind::Task, rest),
            ["webhook", rest @ ..] => (Kind::Webhook, rest),
            ["pipeline", rest @ ..] => (Kind::Pipeline, rest),
            ["status", "lead", rest @ ..] => (Kind::LeadStatus, rest),
            ["status", "opportunity", rest @ ..] => (Kind::OpportunityStatus, rest),
            ["custom_field", object, rest @ ..] => {
                let object = CUSTOM_FIELD_OBJECTS.iter().find(|o| *o == object)?;
                (Kind::CustomField(object), rest)
            }
            ["activity"] => return Some((Kind::Activity(None), None)),
            ["activity", ty, rest @ ..] => {
                let (seg, _) = ACTIVITY_TYPES.iter().find(|(s, _)| s == ty)?;
                (Kind::Activity(Some(seg)), rest)
            }
            _ => return None,
        };
        match rest {
            [] => Some((kind, None)),
            [id] => Some((kind, Some(id.to_string()))),
            _ => None,
        }
    }

    pub(crate) fn table(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Contact => "contact",
            Kind::Opportunity => "opportunity",
            Kind::Task => "task",
            Kind::Activity(_) => "activity",
            Kind::LeadStatus => "status_lead",
            Kind::OpportunityStatus => "status_opportunity",
            Kind::Pipeline => "pipeline",
            Kind::CustomField(_) => "custom_field",
            Kind::Webhook => "webhook",
        }
    }

    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Contact => "cont",
            Kind::Opportunity => "oppo",
            Kind::Task => "task",
            Kind::Activity(_) => "acti",
            Kind::LeadStatus | Kind::OpportunityStatus => "stat",
            Kind::Pipeline => "pipe",
            Kind::CustomField(_) => "cf",
            Kind::Webhook => "whsub",
        }
    }

    /// The largest `_limit` of a list (a larger one answers 400, as flask-mongorest's
    /// `get_skip_and_limit` does) and the largest `_skip`. Close says both vary per
    /// resource (developer.close.com/api/overview/pagination) but documents no numbers.
    pub(crate) fn list_limits(self) -> (usize, usize) {
        match self {
            // Limit: airbyte PR 31534's lead page size (a lower bound; contacts share it by
            // the sandbox's choice). Skip: chosen by the sandbox; no public source gives
            // the lead or contact ceiling.
            Kind::Lead | Kind::Contact => (200, 10_000),
            // Limit: airbyte PR 31534 (lower bound); skip: airbyte issue 20959.
            Kind::Opportunity => (250, 250_000),
            // Limit: airbyte PR 31534 (lower bound); skip: airbyte issue 20959.
            Kind::Task => (1_000, 250_000),
            // Limit: airbyte PR 31534 (lower bound); skip: airbyte issue 20959.
            Kind::Activity(_) => (100, 250_000),
            // Configuration objects: both chosen by the sandbox.
            _ => (100, 10_000),
        }
    }

    /// The model name in Close's 404 body ("Lead matching query does not exist.").
    pub(crate) fn model_name(self) -> String {
        match self {
            Kind::Lead => "Lead".into(),
            Kind::Contact => "Contact".into(),
            Kind::Opportunity => "Opportunity".into(),
            Kind::Task => "Task".into(),
            Kind::Activity(_) => "Activity".into(),
            Kind::LeadStatus => "LeadStatus".into(),
            Kind::OpportunityStatus => "OpportunityStatus".into(),
            Kind::Pipeline => "Pipeline".into(),
            Kind::CustomField(o) => {
                let mut c = o.chars();
                let head = c.next().map(|h| h.to_ascii_uppercase()).unwrap_or_default();
                format!("{head}{}CustomField", c.as_str())
            }
            Kind::Webhook => "WebhookSubscription".into(),
        }
    }

    /// Whether the collection can only be read (LeadMerge activities: Close documents
    /// `GET /activity/lead_merge/` and `GET /activity/lead_merge/{id}/` only).
    pub(crate) fn read_only(self) -> bool {
        self == Kind::Activity(Some("lead_merge"))
    }

    /// The activity `_type` value of a typed activity path.
    pub(crate) fn activity_type(self) -> Option<&'static str> {
        match self {
            Kind::Activity(Some(seg)) => ACTIVITY_TYPES
                .iter()
                .find(|(s, _)| *s == seg)
                .map(|(_, t)| *t),
            _ => None,
        }
    }
}

/// The event `object_type` of a stored row of `table`, if changes to it are events.
pub(crate) fn event_type(table: &str, row: &serde_json::Value) -> Option<String> {
    Some(match table {
        "lead" | "contact" | "opportunity" => table.to_string(),
        "task" => "task.lead".to_string(),
        // The type's path segment (`activity.lead_merge`), else its lowercased `_type`.
        "activity" => {
            let ty = row["_type"].as_str().unwrap_or("Note");
            let seg = ACTIVITY_TYPES
                .iter()
                .find(|(_, t)| *t == ty)
                .map_or_else(|| ty.to_ascii_lowercase(), |(s, _)| s.to_string());
            format!("activity.{seg}")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_collections() {
        assert_eq!(Kind::parse(&["lead"]), Some((Kind::Lead, None)));
        assert_eq!(
            Kind::parse(&["activity", "call", "acti_1"]),
            Some((Kind::Activity(Some("call")), Some("acti_1".into())))
        );
        assert_eq!(
            Kind::parse(&["custom_field", "lead"]),
            Some((Kind::CustomField("lead"), None))
        );
        assert_eq!(Kind::parse(&["nope"]), None);
        assert!(
            Kind::parse(&["activity", "lead_merge"])
                .is_some_and(|(k, _)| k.read_only() && k.activity_type() == Some("LeadMerge"))
        );
        assert_eq!(
            event_type("activity", &serde_json::json!({"_type": "LeadMerge"})).as_deref(),
            Some("activity.lead_merge")
        );
        assert_eq!(
            event_type("activity", &serde_json::json!({"_type": "SMS"})).as_deref(),
            Some("activity.sms")
        );
        assert_eq!(Kind::CustomField("lead").model_name(), "LeadCustomField");
    }
}
