//! Activities in unified form: their synced fields, and what each CRM can hold.
//!
//! An activity's `kind` is always part of its fields (the config check requires it in
//! `[activity] fields`): it says what to create. It is set when
//! the activity is created and never changed afterwards, because no CRM turns a note into a
//! call: a `kind` written onto an existing record is ignored, so a CRM that holds a kind as
//! another (a Salesforce Task made from a note) is never "corrected".
//!
//! What a CRM cannot hold is refused per record, with the reason, when the create is
//! planned ([`holds`]): Close creates notes, calls and emails, but its API creates no
//! meetings (close-openapi.yml lists no `POST /activity/meeting/`) and its tasks are not
//! activities; Close activities belong to a lead, so one without a company cannot be made
//! there. Salesforce keeps activities as Tasks and Events only: a note becomes a completed
//! Task (its subject and body kept).
//!
//! Of the unified fields, each CRM's activity type keeps only some ([`holds_field`]), and
//! some less of a value (a Salesforce Task's day); a write that would not change what the
//! target keeps is not planned ([`write_lands`]), and a record the CRM lets no one edit (a
//! sent Close email, [`refuses_edits`]) is reported instead of written.

use chrono::{DateTime, SecondsFormat, Utc};
use crmkit_core::{Activity, ActivityKind, Crm, Error, ErrorKind, Result};
use serde_json::Value;

use crate::values::FieldMap;

/// The unified name of an activity kind, as it is stored in field maps.
pub fn kind_name(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Note => "note",
        ActivityKind::Call => "call",
        ActivityKind::Email => "email",
        ActivityKind::Meeting => "meeting",
        ActivityKind::Task => "task",
    }
}

fn kind_named(name: &str) -> Option<ActivityKind> {
    [
        ActivityKind::Note,
        ActivityKind::Call,
        ActivityKind::Email,
        ActivityKind::Meeting,
        ActivityKind::Task,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// The canonical text of a time: UTC, to the second (`2025-03-01T10:15:00Z`); CRMs keep
/// different sub-second precision.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The synced fields of `a` that `wants` asks for, into `m` through `put_text` (which
/// canonicalises text). Reference fields hold the CRM's own ids.
pub fn extract(
    a: &Activity,
    wants: impl Fn(&str) -> bool,
    m: &mut FieldMap,
    put_text: impl Fn(&mut FieldMap, &'static str, &str),
) {
    m.insert("kind".into(), Value::String(kind_name(a.kind).into()));
    let text = |m: &mut FieldMap, field: &'static str, v: &Option<String>| {
        if let Some(s) = v.as_deref().filter(|_| wants(field)) {
            put_text(m, field, s);
        }
    };
    text(m, "subject", &a.subject);
    text(m, "body", &a.body);
    if wants("occurred_at") {
        if let Some(t) = a.occurred_at {
            m.insert("occurred_at".into(), Value::String(time_text(t)));
        }
    }
    if wants("duration") {
        if let Some(d) = a.duration_secs {
            m.insert("duration".into(), Value::from(d));
        }
    }
    if wants("direction") {
        if let Some(d) = a
            .direction
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            m.insert("direction".into(), Value::String(d.to_lowercase()));
        }
    }
    if wants("completed") {
        if let Some(c) = a.completed {
            m.insert("completed".into(), Value::Bool(c));
        }
    }
    for (field, id) in [("company", &a.company_id), ("person", &a.person_id)] {
        if let Some(id) = id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            if wants(field) {
                m.insert(field.into(), Value::String(id.to_string()));
            }
        }
    }
}

fn text_of(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Sets one unified `field` of `a` to `v` (`None` clears). `kind` changes only an activity
/// being created (no id yet).
pub fn set(a: &mut Activity, field: &str, v: Option<&Value>) {
    match field {
        "kind" if a.id.is_none() => {
            if let Some(k) = text_of(v).as_deref().and_then(kind_named) {
                a.kind = k;
            }
        }
        "subject" => a.subject = text_of(v),
        "body" => a.body = text_of(v),
        "occurred_at" => {
            a.occurred_at = text_of(v)
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.to_utc())
        }
        "duration" => {
            a.duration_secs = v
                .and_then(Value::as_u64)
                .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
        }
        "direction" => a.direction = text_of(v),
        "completed" => a.completed = v.and_then(Value::as_bool),
        "company" => a.company_id = text_of(v),
        "person" => a.person_id = text_of(v),
        _ => {}
    }
}

/// Whether `crm` keeps the unified `field` on an activity it holds as `kind`: what each
/// CRM's activity type has (connectors' mappings; Close's writable fields per type,
/// close-openapi.yml `POST`/`PUT /activity/{type}/`). `kind` itself, the references and
/// the time every type has; a Close call no subject, a Close note or email no duration,
/// direction or completion, a Close meeting only its title, note, time and contact (the
/// only fields its `PUT` takes); HubSpot notes no subject, and only calls duration, only
/// calls and emails direction, only tasks completion; Salesforce Events (meetings) no
/// completion, Tasks duration and direction only as calls. Custom fields are the
/// configuration's business ([`crate::values::lands`]).
pub fn holds_field(crm: Crm, kind: ActivityKind, field: &str) -> bool {
    use ActivityKind::{Call, Email, Meeting, Note, Task};
    match field {
        "kind" | "occurred_at" | "body" | "person" => true,
        "company" => !(crm == Crm::Close && kind == Meeting),
        "subject" => match crm {
            Crm::Close => kind != Call,
            Crm::HubSpot => kind != Note,
            Crm::Salesforce => true,
        },
        "duration" => match crm {
            Crm::Close | Crm::HubSpot => kind == Call,
            Crm::Salesforce => matches!(kind, Call | Meeting),
        },
        "direction" => match crm {
            Crm::Close | Crm::Salesforce => kind == Call,
            Crm::HubSpot => matches!(kind, Call | Email),
        },
        "completed" => match crm {
            Crm::Close => false,
            Crm::HubSpot => kind == Task,
            Crm::Salesforce => matches!(kind, Note | Call | Email | Task),
        },
        // Fields no activity has (a custom field is decided by the configuration).
        _ => false,
    }
}

/// Why `crm` takes no edit of `a` at all, if it does not: Close lets only draft emails be
/// modified (close-openapi.yml `PUT /activity/email/{id}/`: "Only drafts can be
/// modified"), and every email the sync creates there is logged as sent.
pub fn refuses_edits(crm: Crm, a: &Activity) -> Option<&'static str> {
    (crm == Crm::Close
        && a.kind == ActivityKind::Email
        && a.raw["status"].as_str().is_some_and(|s| s != "draft"))
    .then_some("Close lets only draft emails be modified, and this one is sent")
}

/// The canonical value of `field` once `v` is written into an activity `crm` holds as
/// `kind`, where the CRM keeps less than the unified value: a Salesforce Task's time is a
/// day (`ActivityDate`), read back as its midnight; a Salesforce Event's duration is whole
/// minutes (`DurationInMinutes`, rounded up on write).
fn as_kept(crm: Crm, kind: ActivityKind, field: &str, v: Option<&Value>) -> Option<Value> {
    let v = v?;
    match (crm, kind, field) {
        (Crm::Salesforce, k, "occurred_at") if k != ActivityKind::Meeting => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .and_then(|t| t.to_utc().date_naive().and_hms_opt(0, 0, 0))
            .map(|t| Value::String(time_text(t.and_utc())))
            .or_else(|| Some(v.clone())),
        (Crm::Salesforce, ActivityKind::Meeting, "duration") => Some(
            v.as_u64()
                .map_or_else(|| v.clone(), |s| Value::from(s.div_ceil(60) * 60)),
        ),
        _ => Some(v.clone()),
    }
}

/// Whether writing `v` (`None` clears) into `field` of `a`, an activity `crm` holds whose
/// field reads `now`, changes what `crm` keeps: not for `kind` (an existing activity keeps
/// its kind), a field the activity cannot hold ([`holds_field`]), or a value the CRM would
/// keep as `now` already (a time of the day a Salesforce Task holds). Such a write sends
/// nothing, so it is neither planned nor counted.
pub fn write_lands(
    crm: Crm,
    a: &Activity,
    field: &str,
    v: Option<&Value>,
    now: Option<&Value>,
) -> bool {
    field != "kind"
        && holds_field(crm, a.kind, field)
        && as_kept(crm, a.kind, field, v).as_ref() != now
}

/// Whether `crm` can hold an activity like `a` once created; the kind it is created as
/// there (a Salesforce note is a Task). A refusal is a [`ErrorKind::Validation`] error saying
/// why: the record is reported, never retried, as no later run could create it either.
pub fn holds(crm: Crm, a: &Activity) -> Result<ActivityKind> {
    let refuse = |why: &str| Err(Error::new(ErrorKind::Validation, why.to_string()).with_crm(crm));
    match (crm, a.kind) {
        (Crm::Close, ActivityKind::Meeting) => refuse(
            "Close's API cannot create meetings (they come from its calendar sync); not copied to Close",
        ),
        (Crm::Close, ActivityKind::Task) => refuse(
            "Close tasks are not activities (they have no time, body or contact of an activity); not copied to Close",
        ),
        (Crm::Close, _) if a.company_id.is_none() => refuse(
            "a Close activity belongs to a lead, and this one has no company; not copied to Close",
        ),
        (Crm::Salesforce, ActivityKind::Note) => Ok(ActivityKind::Task),
        (_, kind) => Ok(kind),
    }
}

/// Readies an activity about to be created in `crm` (no id yet): its kind as `crm` holds it,
/// a note made a Salesforce Task marked completed. An activity with an id is left as it is.
pub fn ready_for_create(a: &mut Activity, crm: Crm) -> Result<()> {
    if a.id.is_some() {
        return Ok(());
    }
    let kind = holds(crm, a)?;
    if kind != a.kind {
        // A note is a record of something done, not a to-do.
        if a.completed.is_none() {
            a.completed = Some(true);
        }
        a.kind = kind;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call() -> Activity {
        let mut a = Activity::new(ActivityKind::Call);
        a.subject = Some(" Intro ".into());
        a.occurred_at = DateTime::parse_from_rfc3339("2025-03-01T10:15:00.123+01:00")
            .ok()
            .map(|t| t.to_utc());
        a.duration_secs = Some(90);
        a.direction = Some("Outbound".into());
        a.company_id = Some("lead_1".into());
        a
    }

    #[test]
    fn fields_are_canonical_and_kind_is_always_there() {
        let mut m = FieldMap::new();
        extract(
            &call(),
            |f| f != "subject",
            &mut m,
            |m, f, s| {
                m.insert(f.into(), json!(s.trim()));
            },
        );
        assert_eq!(m["kind"], json!("call"));
        assert_eq!(m["occurred_at"], json!("2025-03-01T09:15:00Z"));
        assert_eq!(m["direction"], json!("outbound"));
        assert_eq!(m["duration"], json!(90));
        assert_eq!(m["company"], json!("lead_1"));
        assert!(!m.contains_key("subject"), "not asked for");
    }

    #[test]
    fn kind_is_set_on_create_only_and_times_round_trip() {
        let mut a = Activity::new(ActivityKind::Note);
        set(&mut a, "kind", Some(&json!("call")));
        set(&mut a, "occurred_at", Some(&json!("2025-03-01T09:15:00Z")));
        assert_eq!(a.kind, ActivityKind::Call);
        assert_eq!(
            a.occurred_at.map(time_text).as_deref(),
            Some("2025-03-01T09:15:00Z")
        );
        a.id = Some("1".into());
        set(&mut a, "kind", Some(&json!("email")));
        assert_eq!(
            a.kind,
            ActivityKind::Call,
            "an existing activity keeps its kind"
        );
    }

    #[test]
    fn a_write_an_activity_cannot_take_does_not_land() {
        let mut call = call();
        call.id = Some("acti_1".into());
        let lands = |crm, a: &Activity, f, v: Value, now: Option<Value>| {
            write_lands(crm, a, f, Some(&v), now.as_ref())
        };
        assert!(!lands(Crm::Close, &call, "completed", json!(false), None));
        assert!(!lands(Crm::Close, &call, "subject", json!("Intro"), None));
        assert!(lands(Crm::Close, &call, "body", json!("Notes"), None));
        assert!(lands(Crm::HubSpot, &call, "subject", json!("Intro"), None));
        assert!(
            !lands(
                Crm::Close,
                &call,
                "kind",
                json!("note"),
                Some(json!("call"))
            ),
            "an existing activity keeps its kind"
        );
        // A Salesforce Task keeps the day; an Event whole minutes.
        let day = Some(json!("2025-03-01T00:00:00Z"));
        assert!(!lands(
            Crm::Salesforce,
            &call,
            "occurred_at",
            json!("2025-03-01T10:15:00Z"),
            day.clone()
        ));
        assert!(lands(
            Crm::Salesforce,
            &call,
            "occurred_at",
            json!("2025-03-02T10:15:00Z"),
            day
        ));
        let mut meeting = call.clone();
        meeting.kind = ActivityKind::Meeting;
        assert!(!lands(
            Crm::Salesforce,
            &meeting,
            "duration",
            json!(90),
            Some(json!(120))
        ));
        assert!(lands(
            Crm::Salesforce,
            &meeting,
            "duration",
            json!(150),
            Some(json!(120))
        ));
        assert!(!lands(
            Crm::Salesforce,
            &meeting,
            "completed",
            json!(true),
            None
        ));
        // Close modifies draft emails only.
        let mut email = Activity::new(ActivityKind::Email);
        email.raw = json!({"id": "acti_2", "status": "sent"});
        assert!(refuses_edits(Crm::Close, &email).is_some());
        assert!(refuses_edits(Crm::HubSpot, &email).is_none());
        email.raw["status"] = json!("draft");
        assert!(refuses_edits(Crm::Close, &email).is_none());
    }

    #[test]
    fn what_a_crm_cannot_hold_is_refused_with_the_reason() {
        let mut meeting = call();
        meeting.kind = ActivityKind::Meeting;
        let e = holds(Crm::Close, &meeting).expect_err("no meeting create");
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.to_string().contains("cannot create meetings"), "{e}");
        let mut orphan = call();
        orphan.company_id = None;
        assert!(holds(Crm::Close, &orphan).is_err());
        assert!(holds(Crm::HubSpot, &orphan).is_ok());

        let mut note = Activity::new(ActivityKind::Note);
        ready_for_create(&mut note, Crm::Salesforce).expect("a Task");
        assert_eq!(
            (note.kind, note.completed),
            (ActivityKind::Task, Some(true))
        );
    }
}
