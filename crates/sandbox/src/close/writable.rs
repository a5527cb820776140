//! The fields a client may write on each collection. Close ignores any other key of a POST
//! or PUT body, so the sandbox drops them before validating: a misspelled or invented field
//! never round-trips here when it would not against Close. Read-only echoes
//! (`display_name`, `status_label`, `html_url`, `lead_name`, `date_updated`…) are dropped too.
//! `custom.cf_…` keys pass on to the custom-field check, which refuses undefined fields.

use serde_json::{Map, Value};

use super::kinds::Kind;

/// Lead fields: close-openapi.yml `GET /lead/{id}/` minus the derived ones; `status` is
/// the label form (developer.close.com/resources/leads); `contacts` nests contacts on create.
const LEAD: &[&str] = &[
    "name",
    "description",
    "url",
    "status_id",
    "status",
    "addresses",
    "contacts",
];

/// Contact fields: close-openapi.yml `GET /contact/{id}/` minus the derived ones, and the
/// recorded `create_contact` / `update_contact` bodies (closex cassettes).
const CONTACT: &[&str] = &["lead_id", "name", "title", "emails", "phones", "urls"];

/// close-openapi.yml `POST /opportunity/` request schema (`pipeline_id` picks the status's
/// pipeline; `attachments` is not modelled, so it is not kept either).
const OPPORTUNITY: &[&str] = &[
    "lead_id",
    "contact_id",
    "user_id",
    "status_id",
    "pipeline_id",
    "value",
    "value_period",
    "confidence",
    "note",
    "date_won",
    "date_created",
];

/// close-openapi.yml `PUT /task/{id}/` request schema, plus `_type` on create
/// (`lead` or `outgoing_call`, close-openapi.yml `GET /task/` `_type`).
const TASK: &[&str] = &[
    "_type",
    "lead_id",
    "contact_id",
    "assigned_to",
    "text",
    "date",
    "due_date",
    "is_complete",
    "is_dateless",
    "priority",
    "resolution",
];

/// close-openapi.yml `POST /activity/note/` and `PUT /activity/note/{id}/`.
const NOTE: &[&str] = &[
    "lead_id",
    "contact_id",
    "user_id",
    "activity_at",
    "date_created",
    "note",
    "note_html",
    "pinned",
    "title",
];

/// close-openapi.yml `POST /activity/call/` and `PUT /activity/call/{id}/`.
const CALL: &[&str] = &[
    "lead_id",
    "contact_id",
    "user_id",
    "activity_at",
    "date_created",
    "conversation_type_id",
    "direction",
    "duration",
    "note",
    "note_html",
    "outcome_id",
    "phone",
    "playbook_id",
    "quality_info",
    "recording_url",
    "source",
    "status",
    "voicemail_url",
];

/// close-openapi.yml `POST /activity/email/` and `PUT /activity/email/{id}/`.
const EMAIL: &[&str] = &[
    "lead_id",
    "contact_id",
    "user_id",
    "activity_at",
    "date_created",
    "account_id",
    "attachments",
    "bcc",
    "body_html",
    "body_text",
    "cc",
    "followup_date",
    "followup_sequence_add_cc_bcc",
    "followup_sequence_delay",
    "followup_sequence_id",
    "in_reply_to_id",
    "opens",
    "sender",
    "status",
    "subject",
    "template_id",
    "to",
];

/// close-openapi.yml `POST /activity/sms/` and `PUT /activity/sms/{id}/`.
const SMS: &[&str] = &[
    "lead_id",
    "contact_id",
    "user_id",
    "activity_at",
    "date_created",
    "attachments",
    "direction",
    "local_phone",
    "remote_phone",
    "source",
    "status",
    "template_id",
    "text",
];

/// Meetings are only updated (the spec gives their PUT body no schema); the sandbox's
/// choice is the fields its stored meetings have that a user edits.
const MEETING: &[&str] = &[
    "contact_id",
    "user_id",
    "activity_at",
    "title",
    "note",
    "outcome_id",
];

/// developer.close.com/resources/webhook-subscriptions: `url`, `events`, `verify_ssl`, and
/// `status` to pause or resume; `event_filter` from close-openapi.yml `POST /webhook/`.
const WEBHOOK: &[&str] = &["url", "events", "verify_ssl", "event_filter", "status"];

/// developer.close.com/resources/custom-fields (the spec gives no body schema).
const CUSTOM_FIELD: &[&str] = &[
    "name",
    "description",
    "type",
    "choices",
    "accepts_multiple_values",
    "editable_with_roles",
];

/// The writable fields of `kind` (besides `custom.…`).
fn fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Lead => LEAD,
        Kind::Contact => CONTACT,
        Kind::Opportunity => OPPORTUNITY,
        Kind::Task => TASK,
        Kind::Activity(Some("note")) => NOTE,
        Kind::Activity(Some("call")) => CALL,
        Kind::Activity(Some("email")) => EMAIL,
        Kind::Activity(Some("sms")) => SMS,
        Kind::Activity(Some("meeting")) => MEETING,
        Kind::Activity(_) => &[],
        // developer.close.com/resources/statuses and /pipelines.
        Kind::LeadStatus => &["label"],
        Kind::OpportunityStatus => &["label", "type", "pipeline_id"],
        Kind::Pipeline => &["name"],
        Kind::CustomField(_) => CUSTOM_FIELD,
        Kind::Webhook => WEBHOOK,
    }
}

/// Whether `kind` has custom fields a body may set.
fn takes_custom(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Lead | Kind::Contact | Kind::Opportunity | Kind::Activity(_)
    )
}

/// Drops every key of `obj` that `kind` does not document as writable, as Close ignores them.
pub(crate) fn keep_writable(kind: Kind, obj: &mut Map<String, Value>) {
    let allowed = fields(kind);
    obj.retain(|k, _| {
        allowed.contains(&k.as_str()) || (takes_custom(kind) && k.starts_with("custom."))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn unknown_and_read_only_keys_are_dropped() {
        let mut obj = object(json!({"name": "A", "descripton": "typo",
            "display_name": "x", "date_updated": "2024-01-01", "custom.cf_1": 1}));
        keep_writable(Kind::Lead, &mut obj);
        assert_eq!(Value::Object(obj), json!({"name": "A", "custom.cf_1": 1}));
        let mut obj = object(json!({"label": "L", "custom.cf_1": 1}));
        keep_writable(Kind::LeadStatus, &mut obj);
        assert_eq!(Value::Object(obj), json!({"label": "L"}));
    }
}
