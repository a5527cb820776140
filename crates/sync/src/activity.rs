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
//! The unified fields are one table, [`ActivityField`]; the configuration's activity fields,
//! the extractor, the setter and [`holds_field`] are all derived from or matched
//! exhaustively over it, so a new field cannot be dropped by one of them unnoticed.
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

/// A unified activity field: the one list of them. The configuration's activity fields
/// ([`crate::config::standard_fields`]), what [`extract`] produces, what [`set`] writes and
/// what [`holds_field`] decides all come from it, and every `match` over it is exhaustive,
/// so a field added here cannot be left out of any of them unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivityField {
    /// What the activity is: note, call, email, meeting, task.
    Kind,
    /// Its title.
    Subject,
    /// Its text.
    Body,
    /// When it happened, canonical time text.
    OccurredAt,
    /// How long it lasted, in seconds.
    Duration,
    /// `inbound` or `outbound`, lower case.
    Direction,
    /// Whether it is done.
    Completed,
    /// The company it belongs to (the CRM's own id).
    Company,
    /// The person it concerns (the CRM's own id).
    Person,
}

impl ActivityField {
    /// Every field, in the order the configuration lists them.
    pub const ALL: [ActivityField; 9] = [
        ActivityField::Kind,
        ActivityField::Subject,
        ActivityField::Body,
        ActivityField::OccurredAt,
        ActivityField::Duration,
        ActivityField::Direction,
        ActivityField::Completed,
        ActivityField::Company,
        ActivityField::Person,
    ];

    /// The names of [`Self::ALL`], as the configuration and field maps spell them.
    pub const NAMES: [&'static str; 9] = {
        let mut names = [""; 9];
        let mut i = 0;
        while i < names.len() {
            names[i] = Self::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The unified name, as the configuration and field maps spell it.
    pub const fn name(self) -> &'static str {
        match self {
            ActivityField::Kind => "kind",
            ActivityField::Subject => "subject",
            ActivityField::Body => "body",
            ActivityField::OccurredAt => "occurred_at",
            ActivityField::Duration => "duration",
            ActivityField::Direction => "direction",
            ActivityField::Completed => "completed",
            ActivityField::Company => "company",
            ActivityField::Person => "person",
        }
    }

    /// The field named `name`, if an activity has one.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
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
    use ActivityField as F;
    m.insert(
        F::Kind.name().into(),
        Value::String(kind_name(a.kind).into()),
    );
    let text = |m: &mut FieldMap, field: F, v: &Option<String>| {
        if let Some(s) = v.as_deref().filter(|_| wants(field.name())) {
            put_text(m, field.name(), s);
        }
    };
    text(m, F::Subject, &a.subject);
    text(m, F::Body, &a.body);
    if wants(F::OccurredAt.name()) {
        if let Some(t) = a.occurred_at {
            m.insert(F::OccurredAt.name().into(), Value::String(time_text(t)));
        }
    }
    if wants(F::Duration.name()) {
        if let Some(d) = a.duration_secs {
            m.insert(F::Duration.name().into(), Value::from(d));
        }
    }
    if wants(F::Direction.name()) {
        if let Some(d) = a
            .direction
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            m.insert(F::Direction.name().into(), Value::String(d.to_lowercase()));
        }
    }
    if wants(F::Completed.name()) {
        if let Some(c) = a.completed {
            m.insert(F::Completed.name().into(), Value::Bool(c));
        }
    }
    for (field, id) in [(F::Company, &a.company_id), (F::Person, &a.person_id)] {
        if let Some(id) = id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            if wants(field.name()) {
                m.insert(field.name().into(), Value::String(id.to_string()));
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
/// being created (no id yet): no CRM turns one kind of activity into another.
pub fn set(a: &mut Activity, field: ActivityField, v: Option<&Value>) {
    match field {
        ActivityField::Kind => {
            if let Some(k) = text_of(v)
                .as_deref()
                .and_then(kind_named)
                .filter(|_| a.id.is_none())
            {
                a.kind = k;
            }
        }
        ActivityField::Subject => a.subject = text_of(v),
        ActivityField::Body => a.body = text_of(v),
        ActivityField::OccurredAt => {
            a.occurred_at = text_of(v)
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.to_utc())
        }
        ActivityField::Duration => {
            a.duration_secs = v
                .and_then(Value::as_u64)
                .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
        }
        ActivityField::Direction => a.direction = text_of(v),
        ActivityField::Completed => a.completed = v.and_then(Value::as_bool),
        ActivityField::Company => a.company_id = text_of(v),
        ActivityField::Person => a.person_id = text_of(v),
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
///
/// The decision is made per [`ActivityField`], exhaustively: a field added to the table
/// does not compile until each CRM's answer for it is written here.
pub fn holds_field(crm: Crm, kind: ActivityKind, field: ActivityField) -> bool {
    use ActivityKind::{Call, Email, Meeting, Note, Task};
    match field {
        ActivityField::Kind
        | ActivityField::OccurredAt
        | ActivityField::Body
        | ActivityField::Person => true,
        ActivityField::Company => !(crm == Crm::Close && kind == Meeting),
        ActivityField::Subject => match crm {
            Crm::Close => kind != Call,
            Crm::HubSpot => kind != Note,
            Crm::Salesforce => true,
        },
        ActivityField::Duration => match crm {
            Crm::Close | Crm::HubSpot => kind == Call,
            Crm::Salesforce => matches!(kind, Call | Meeting),
        },
        // A Close email's `direction` (`incoming`/`outgoing`, `EmailActivity` in
        // close-openapi.yml) is read, but no request sets it: `CreateEmailActivity` has no
        // `direction`, Close derives it from `status` (developer.close.com/api/resources/activities/emails/create:
        // `inbox` "to log an already received email", `sent` "to log an already sent
        // email"), and only drafts can be modified afterwards. The connector logs every
        // email it creates as `sent`; an incoming one would need `inbox`, which requires a
        // `sender` the unified activity does not carry. So Close does not hold it here.
        ActivityField::Direction => match crm {
            Crm::Close | Crm::Salesforce => kind == Call,
            Crm::HubSpot => matches!(kind, Call | Email),
        },
        ActivityField::Completed => match crm {
            Crm::Close => false,
            Crm::HubSpot => kind == Task,
            Crm::Salesforce => matches!(kind, Note | Call | Email | Task),
        },
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
fn as_kept(crm: Crm, kind: ActivityKind, field: ActivityField, v: Option<&Value>) -> Option<Value> {
    let v = v?;
    match (crm, kind, field) {
        (Crm::Salesforce, k, ActivityField::OccurredAt) if k != ActivityKind::Meeting => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .and_then(|t| t.to_utc().date_naive().and_hms_opt(0, 0, 0))
            .map(|t| Value::String(time_text(t.and_utc())))
            .or_else(|| Some(v.clone())),
        (Crm::Salesforce, ActivityKind::Meeting, ActivityField::Duration) => Some(
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
    field: ActivityField,
    v: Option<&Value>,
    now: Option<&Value>,
) -> bool {
    field != ActivityField::Kind
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
    use crate::config;

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
        set(&mut a, ActivityField::Kind, Some(&json!("call")));
        set(
            &mut a,
            ActivityField::OccurredAt,
            Some(&json!("2025-03-01T09:15:00Z")),
        );
        assert_eq!(a.kind, ActivityKind::Call);
        assert_eq!(
            a.occurred_at.map(time_text).as_deref(),
            Some("2025-03-01T09:15:00Z")
        );
        a.id = Some("1".into());
        set(&mut a, ActivityField::Kind, Some(&json!("email")));
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
        assert!(!lands(
            Crm::Close,
            &call,
            ActivityField::Completed,
            json!(false),
            None
        ));
        assert!(!lands(
            Crm::Close,
            &call,
            ActivityField::Subject,
            json!("Intro"),
            None
        ));
        assert!(lands(
            Crm::Close,
            &call,
            ActivityField::Body,
            json!("Notes"),
            None
        ));
        assert!(lands(
            Crm::HubSpot,
            &call,
            ActivityField::Subject,
            json!("Intro"),
            None
        ));
        assert!(
            !lands(
                Crm::Close,
                &call,
                ActivityField::Kind,
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
            ActivityField::OccurredAt,
            json!("2025-03-01T10:15:00Z"),
            day.clone()
        ));
        assert!(lands(
            Crm::Salesforce,
            &call,
            ActivityField::OccurredAt,
            json!("2025-03-02T10:15:00Z"),
            day
        ));
        let mut meeting = call.clone();
        meeting.kind = ActivityKind::Meeting;
        assert!(!lands(
            Crm::Salesforce,
            &meeting,
            ActivityField::Duration,
            json!(90),
            Some(json!(120))
        ));
        assert!(lands(
            Crm::Salesforce,
            &meeting,
            ActivityField::Duration,
            json!(150),
            Some(json!(120))
        ));
        assert!(!lands(
            Crm::Salesforce,
            &meeting,
            ActivityField::Completed,
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

    /// Walks every field the extractor produces, for every kind, and checks each CRM's
    /// answer against what is intended here: a field the extractor gains without an answer
    /// below, or an answer that changes, fails.
    #[test]
    fn every_extracted_field_has_an_intended_answer_for_every_crm() {
        use ActivityKind::{Call, Email, Meeting, Note, Task};
        let kinds = [Note, Call, Email, Meeting, Task];
        // Per field, per CRM (Close, HubSpot, Salesforce): one character per kind in the
        // order of `kinds` (note, call, email, meeting, task), `.` where it is not kept.
        let intended: [(&str, [&str; 3]); 9] = [
            ("kind", ["ncemt", "ncemt", "ncemt"]),
            ("subject", ["n.emt", ".cemt", "ncemt"]),
            ("body", ["ncemt", "ncemt", "ncemt"]),
            ("occurred_at", ["ncemt", "ncemt", "ncemt"]),
            ("duration", [".c...", ".c...", ".c.m."]),
            ("direction", [".c...", ".ce..", ".c..."]),
            ("completed", [".....", "....t", "nce.t"]),
            ("company", ["nce.t", "ncemt", "ncemt"]),
            ("person", ["ncemt", "ncemt", "ncemt"]),
        ];
        let mut produced = std::collections::BTreeSet::new();
        for kind in kinds {
            let mut a = call();
            a.kind = kind;
            a.body = Some("Notes".into());
            a.completed = Some(true);
            a.person_id = Some("cont_1".into());
            let mut m = FieldMap::new();
            extract(
                &a,
                |_| true,
                &mut m,
                |m, f, s| {
                    m.insert(f.into(), json!(s));
                },
            );
            produced.extend(m.keys().map(|f| f.as_str().to_string()));
        }
        let table: Vec<&str> = ActivityField::ALL.iter().map(|f| f.name()).collect();
        let listed: Vec<&str> = intended.iter().map(|(f, _)| *f).collect();
        let table_set: std::collections::BTreeSet<String> =
            table.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            produced, table_set,
            "the extractor produces every field of the table, and no other"
        );
        assert_eq!(listed, table, "an intended answer for every field");
        for name in &produced {
            let field = ActivityField::named(name)
                .unwrap_or_else(|| panic!("{name:?} is extracted but not in the table"));
            let (_, per_crm) = intended
                .iter()
                .find(|(f, _)| f == name)
                .unwrap_or_else(|| panic!("no intended answer for {name:?}"));
            for (crm, kept) in [Crm::Close, Crm::HubSpot, Crm::Salesforce]
                .into_iter()
                .zip(per_crm)
            {
                for (kind, mark) in kinds.into_iter().zip(kept.chars()) {
                    assert_eq!(
                        holds_field(crm, kind, field),
                        mark != '.',
                        "{crm} {kind:?} {name}"
                    );
                }
            }
        }
        assert_eq!(
            config::standard_fields(crmkit_core::ObjectKind::Activity),
            table.as_slice(),
            "the configuration's activity fields are the table's"
        );
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
