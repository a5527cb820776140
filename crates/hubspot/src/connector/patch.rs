//! Unified records to HubSpot property writes: creates send what is set, updates send only
//! what differs from the record's own `raw`.
//!
//! Both sides of an update are compared in one canonical form (the properties a record maps
//! to), so a record read and written back unchanged sends nothing even where HubSpot's text
//! differs from crmkit's (`"1234.5"` vs `"1234.50"`, a call of 12,500 ms read as 12 s).
//! A contact's name, phones and email are compacted on read (`firstname` + `lastname`
//! joined, empty phone properties dropped), so they are diffed per HubSpot property against
//! `raw` instead: a phone stays in the property it came from, an added one fills an empty
//! one (never shifting the others), an unchanged name sends nothing and a renamed one-word
//! name stays in the part it was in. What cannot be written (secondary emails, a third
//! phone) is a per-record validation error, not a silent success. An
//! empty string clears a property (crm-objects-contacts-v3.json, PATCH: "Properties values
//! can be cleared by passing an empty string").

use std::collections::BTreeMap;

use crmkit_core::{Error, ErrorKind, Record, Result};
use serde_json::Value;

use super::mapping::{
    activity_props, decimal, format_time, is_mapped, object_type_of, split_name, to_record,
};
use crate::objects::{HubSpotObject, ObjectType, Properties};

/// Every typed property a record maps to, `""` for unset ones. Secondary emails
/// (`hs_additional_emails`) and `associatedcompanyid` are read only here: HubSpot manages
/// the first, and links are written through associations.
fn canonical(record: &Record) -> Properties {
    let mut p = Properties::new();
    let mut put = |k: &str, v: Option<String>| {
        p.insert(k.to_string(), v.unwrap_or_default());
    };
    match record {
        Record::Company(c) => {
            put("name", Some(c.name.clone()));
            put("domain", c.domain.clone());
            put("website", c.url.clone());
            put("description", c.description.clone());
            put("lifecyclestage", c.status.clone());
        }
        Record::Person(r) => {
            let (first, last) = split_name(&r.name);
            put("firstname", Some(first));
            put("lastname", Some(last));
            put("jobtitle", r.title.clone());
            put("email", r.emails.first().cloned());
            put("phone", r.phones.first().cloned());
            put("mobilephone", r.phones.get(1).cloned());
        }
        Record::Deal(d) => {
            put("dealname", Some(d.name.clone()));
            put("amount", d.amount.as_ref().map(|m| decimal(m.minor)));
            if let Some(m) = &d.amount {
                put("deal_currency_code", Some(m.currency.clone()));
            }
            put("dealstage", d.stage_id.clone());
            put("pipeline", d.pipeline_id.clone());
            // Confidence is never written: HubSpot calculates `hs_deal_stage_probability`
            // from the deal's stage and refuses it on write.
            put("closedate", d.close_date.map(format_time));
        }
        Record::Activity(a) => {
            let t = object_type_of(record);
            let (body, subject) = activity_props(&t);
            put("hs_timestamp", a.occurred_at.map(format_time));
            put(body, a.body.clone());
            if let Some(s) = subject {
                put(s, a.subject.clone());
            }
            match t {
                ObjectType::Calls => {
                    put(
                        "hs_call_duration",
                        a.duration_secs.map(|s| (u64::from(s) * 1000).to_string()),
                    );
                    put(
                        "hs_call_direction",
                        a.direction.as_ref().map(|d| d.to_ascii_uppercase()),
                    );
                }
                ObjectType::Tasks => put(
                    "hs_task_status",
                    a.completed
                        .map(|c| if c { "COMPLETED" } else { "NOT_STARTED" }.to_string()),
                ),
                ObjectType::Emails => put(
                    "hs_email_direction",
                    a.direction.as_deref().map(|d| {
                        if d.eq_ignore_ascii_case("inbound") {
                            "INCOMING_EMAIL".to_string()
                        } else {
                            "EMAIL".to_string()
                        }
                    }),
                ),
                _ => {}
            }
        }
    }
    p
}

/// A custom value as HubSpot's string (`Null` clears).
fn custom_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The HubSpot object this record was read from, when `raw` is one with the record's id.
pub(super) fn baseline(record: &Record) -> Option<HubSpotObject> {
    let id = record.id()?;
    let o: HubSpotObject = serde_json::from_value(record.raw().clone()).ok()?;
    (o.id == id).then_some(o)
}

/// The links (company, person) a record holds.
pub(super) fn links(record: &Record) -> (Option<&str>, Option<&str>) {
    match record {
        Record::Company(_) => (None, None),
        Record::Person(p) => (p.company_id.as_deref(), None),
        Record::Deal(d) => (d.company_id.as_deref(), d.person_id.as_deref()),
        Record::Activity(a) => (a.company_id.as_deref(), a.person_id.as_deref()),
    }
}

/// The properties of a create: only those set.
pub(super) fn create_properties(record: &Record) -> Properties {
    let t = object_type_of(record);
    let mut p: Properties = canonical(record)
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    for (k, v) in record.custom() {
        if !is_mapped(&t, k) && !v.is_null() {
            p.insert(k.clone(), custom_text(v));
        }
    }
    p
}

/// What an update sends, and the links (company, person) before it, from `raw` when it is
/// this record's (see the module docs).
#[derive(Debug)]
pub(super) struct Update {
    /// The properties to patch.
    pub properties: Properties,
    /// The links `raw` had, when the record carries its own `raw`.
    pub before: Option<(Option<String>, Option<String>)>,
}

/// The patch of an update.
pub(super) fn update(record: &Record) -> Result<Update> {
    if record.id().is_none_or(str::is_empty) {
        return Err(Error::new(
            ErrorKind::Validation,
            "an update needs the record's HubSpot id",
        ));
    }
    let t = object_type_of(record);
    let now = canonical(record);
    let base = baseline(record);
    let before = base.as_ref().map(|o| to_record(&t, o)).transpose()?;
    let mut properties = Properties::new();
    match &before {
        Some(b) => {
            let was = canonical(b);
            for (k, v) in now {
                if was.get(&k).map_or(!v.is_empty(), |w| *w != v) {
                    properties.insert(k, v);
                }
            }
        }
        None => properties.extend(now.into_iter().filter(|(_, v)| !v.is_empty())),
    }
    if let (Record::Person(p), Some(o)) = (record, &base) {
        // Names, phones and emails are compacted on read (empty slots dropped, parts
        // joined), so their canonical slots say nothing about where a value sits in
        // HubSpot; they are diffed per property against `raw` instead.
        for k in ["firstname", "lastname", "phone", "mobilephone", "email"] {
            properties.remove(k);
        }
        let raw = |k: &str| o.property(k).map(str::trim).unwrap_or("").to_string();
        let mut send = |k: &str, v: String| {
            if raw(k) != v {
                properties.insert(k.to_string(), v);
            }
        };
        for (k, v) in name_parts(&p.name, &raw("firstname"), &raw("lastname")) {
            send(k, v);
        }
        let slots = PHONES.map(raw);
        for (k, v) in PHONES.into_iter().zip(phone_slots(&slots, &p.phones)?) {
            send(k, v);
        }
        send("email", p.emails.first().cloned().unwrap_or_default());
    }
    if let Record::Person(p) = record {
        check_person(p, base.as_ref())?;
    }
    let old: BTreeMap<&str, &str> = base
        .as_ref()
        .map(|o| {
            o.properties
                .iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in record.custom() {
        if is_mapped(&t, k) {
            continue;
        }
        let v = custom_text(v);
        let unchanged = base.is_some() && old.get(k.as_str()).copied().unwrap_or("") == v;
        if !unchanged {
            properties.insert(k.clone(), v);
        }
    }
    Ok(Update {
        properties,
        before: before.as_ref().map(|b| {
            let (c, p) = links(b);
            (c.map(str::to_string), p.map(str::to_string))
        }),
    })
}

/// Refuses a create HubSpot cannot hold whole (see [`check_person`]).
pub(super) fn check_create(record: &Record) -> Result<()> {
    match record {
        Record::Person(p) => check_person(p, None),
        _ => Ok(()),
    }
}

/// The phone properties a person's `phones` come from, in order.
const PHONES: [&str; 2] = ["phone", "mobilephone"];

/// The `firstname` and `lastname` to hold `name`, given what they hold now: an unchanged
/// name keeps both parts as they are (whatever split HubSpot has), and a one-word name
/// stays in the part it was in (a last-name-only contact renamed keeps it a last name).
fn name_parts(name: &str, first: &str, last: &str) -> Vec<(&'static str, String)> {
    let name = name.trim();
    let joined = [first, last]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name == joined {
        return Vec::new();
    }
    if !name.contains(' ') && first.is_empty() && !last.is_empty() {
        return vec![("firstname", String::new()), ("lastname", name.to_string())];
    }
    // A part the new name still starts or ends with stays as HubSpot holds it, so a
    // two-word first name ("Mary Ann") is never re-split by a change of the last name.
    let keep = |part: &str, rest: Option<&str>| {
        rest.filter(|_| !part.is_empty())
            .map(|r| r.trim().to_string())
    };
    if let Some(l) = keep(
        first,
        name.strip_prefix(first).and_then(|r| r.strip_prefix(' ')),
    ) {
        return vec![("firstname", first.to_string()), ("lastname", l)];
    }
    if let Some(f) = keep(
        last,
        name.strip_suffix(last).and_then(|r| r.strip_suffix(' ')),
    ) {
        return vec![("firstname", f), ("lastname", last.to_string())];
    }
    let (f, l) = split_name(name);
    vec![("firstname", f), ("lastname", l)]
}

/// The values of the phone properties (`slots`, as HubSpot holds them) after the person's
/// `phones` are written: a number still listed stays in its property, a removed one is
/// cleared, and an added one goes to the first property left empty; nothing shifts.
/// More numbers than properties is an error naming the field, not a silent drop.
fn phone_slots(slots: &[String; 2], phones: &[String]) -> Result<[String; 2]> {
    let phones: Vec<&str> = phones
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    let mut out: [String; 2] = Default::default();
    let mut placed = vec![false; phones.len()];
    for (slot, was) in out.iter_mut().zip(slots) {
        if let Some(i) = (0..phones.len()).find(|&i| !placed[i] && phones[i] == was) {
            placed[i] = true;
            *slot = was.clone();
        }
    }
    for (i, p) in phones.iter().enumerate().filter(|(i, _)| !placed[*i]) {
        let Some(slot) = out.iter_mut().find(|s| s.is_empty()) else {
            return Err(Error::new(
                ErrorKind::Validation,
                format!(
                    "phones: HubSpot holds two numbers per contact (phone, mobilephone); \
                     number {} ({p}) has no property to go to",
                    i + 1
                ),
            ));
        };
        *slot = (*p).to_string();
    }
    Ok(out)
}

/// Refuses what a contact write cannot hold: secondary emails (and, without `raw`, a
/// third phone number). HubSpot fills `hs_additional_emails` itself (from merges and its
/// secondary-email feature); the CRM v3 objects API offers no write for it, and the only
/// documented one is the legacy `/contacts/v1/secondary-email/{vid}` family, a developer
/// preview "subject to bugs and breaking changes"
/// (legacydocs.hubspot.com/docs/methods/contacts/update-secondary-email), which crmkit
/// does not call. So a changed list of secondary addresses is a per-record error naming
/// the field rather than a success that wrote nothing.
fn check_person(p: &crmkit_core::model::Person, base: Option<&HubSpotObject>) -> Result<()> {
    let was: Vec<String> = base
        .and_then(|o| o.property("hs_additional_emails"))
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if base.is_none() {
        // Without `raw` the numbers go to phone, mobilephone in order; a third has nowhere.
        phone_slots(&Default::default(), &p.phones)?;
    }
    let now: Vec<String> = p
        .emails
        .iter()
        .skip(1)
        .map(|e| e.trim().to_string())
        .collect();
    if now != was && !(was.is_empty() && now.is_empty()) {
        return Err(Error::new(
            ErrorKind::Validation,
            format!(
                "emails: HubSpot's secondary addresses (hs_additional_emails) cannot be written \
                 through the CRM objects API; only the first email (email) can be written (had {was:?}, \
                 asked for {now:?})"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::model::{Company, Deal, Money};
    use serde_json::json;

    fn read(t: &ObjectType, v: Value) -> Record {
        to_record(t, &serde_json::from_value(v).expect("object")).expect("maps")
    }

    #[test]
    fn a_record_written_back_unchanged_sends_nothing() {
        let r = read(
            &ObjectType::Deals,
            json!({"id": "5", "properties": {"dealname": "D", "amount": "1234.5",
                   "closedate": "2024-05-01T00:00:00Z", "custom_x": "1", "hs_lastmodifieddate": "2024-05-01T00:00:00Z"}}),
        );
        let u = update(&r).expect("patch");
        assert!(u.properties.is_empty(), "{:?}", u.properties);
    }

    #[test]
    fn only_changed_fields_are_sent_and_clears_are_empty_strings() {
        let Record::Deal(mut d) = read(
            &ObjectType::Deals,
            json!({"id": "5", "properties": {"dealname": "D", "amount": "10", "pipeline": "default", "custom_x": "1"}}),
        ) else {
            panic!("deal")
        };
        d.amount = Some(Money::new(2000, "USD"));
        d.pipeline_id = None;
        d.custom.insert("custom_x".into(), Value::Null);
        let u = update(&Record::Deal(d)).expect("patch");
        let sent: Vec<(&str, &str)> = u
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            sent,
            [("amount", "20.00"), ("custom_x", ""), ("pipeline", "")]
        );
    }

    #[test]
    fn without_raw_only_set_fields_are_sent() {
        let c = Record::Company(Company {
            id: Some("1".into()),
            name: "Acme".into(),
            ..Company::default()
        });
        let u = update(&c).expect("patch");
        assert_eq!(u.properties.len(), 1);
        assert!(u.before.is_none());
        let no_id = Record::Deal(Deal::default());
        assert_eq!(
            update(&no_id).err().map(|e| e.kind()),
            Some(ErrorKind::Validation)
        );
    }
    fn person(props: Value) -> crmkit_core::model::Person {
        let Record::Person(p) = read(
            &ObjectType::Contacts,
            json!({"id": "7", "properties": props}),
        ) else {
            panic!("person")
        };
        p
    }

    fn sent(p: crmkit_core::model::Person) -> Vec<(String, String)> {
        update(&Record::Person(p))
            .expect("patch")
            .properties
            .into_iter()
            .collect()
    }

    #[test]
    fn phones_stay_in_their_properties_and_an_added_one_fills_the_empty_one() {
        let mut p = person(json!({"mobilephone": "+1555"}));
        p.phones.push("+1777".into());
        assert_eq!(sent(p), [("phone".into(), "+1777".into())]);
        let mut p = person(json!({"phone": "+1", "mobilephone": "+2"}));
        p.phones.remove(0);
        assert_eq!(sent(p), [("phone".into(), String::new())], "no shift");
        let mut p = person(json!({"phone": "+1", "mobilephone": "+2"}));
        p.phones.push("+3".into());
        let e = update(&Record::Person(p)).expect_err("no third property");
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("phones"), "{e}");
    }

    #[test]
    fn names_change_only_the_parts_that_changed() {
        let p = person(json!({"lastname": "Smith"}));
        assert!(sent(p).is_empty(), "unchanged");
        let mut p = person(json!({"lastname": "Smith"}));
        p.name = "Smyth".into();
        assert_eq!(sent(p), [("lastname".into(), "Smyth".into())]);
        let mut p = person(json!({"firstname": "Ada"}));
        p.name = "Ida".into();
        assert_eq!(sent(p), [("firstname".into(), "Ida".into())]);
        let mut p = person(json!({"firstname": "Ada", "lastname": "Lovelace"}));
        p.name = "Ada King".into();
        assert_eq!(sent(p), [("lastname".into(), "King".into())]);
        let mut p = person(json!({"firstname": "Mary Ann", "lastname": "Smith"}));
        p.name = "Mary Ann Jones".into();
        assert_eq!(sent(p), [("lastname".into(), "Jones".into())]);
        let mut p = person(json!({"firstname": "Ada", "lastname": "van Rossum"}));
        p.name = "Ida van Rossum".into();
        assert_eq!(sent(p), [("firstname".into(), "Ida".into())]);
    }

    #[test]
    fn a_secondary_email_that_cannot_be_written_is_an_error() {
        let p = person(json!({"email": "a@x.io", "hs_additional_emails": "b@x.io"}));
        assert!(sent(p).is_empty(), "unchanged secondaries are fine");
        let mut p = person(json!({"email": "a@x.io"}));
        p.emails.push("b@x.io".into());
        let e = update(&Record::Person(p)).expect_err("read-only");
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("hs_additional_emails"), "{e}");
        let mut p = person(json!({"email": "a@x.io"}));
        p.emails.push("b@x.io".into());
        p.raw = Value::Null;
        assert!(check_create(&Record::Person(p)).is_err(), "creates too");
    }
}
