//! What a written record's side stores as its base after our write.
//!
//! A written record is read back, so a CRM that normalises a value does not make our write
//! look like its own change next run. But someone may edit the record between our write and
//! our read-back; storing the read-back as the base would take that edit as synced, and it
//! would never reach the other CRMs. The rule, per field of the read-back:
//!
//! - it holds what we expected (what we sent, for a field we wrote; what we read while
//!   planning, for a field we left alone; for a field a create did not send, whatever the
//!   CRM set): the read-back value is the base;
//! - a field we sent is missing from the read-back and was empty before our write: the CRM
//!   ignored it (a property it does not keep); a field that held a value and reads back
//!   empty was cleared by someone;
//! - e-mails or phones read back as a non-empty part of the list we sent: the CRM kept
//!   what it can (a single e-mail of two); an emptied list is someone's edit;
//! - a field we sent reads back the same in substance: the CRM normalised it. Free text
//!   (names, titles, descriptions, subjects, bodies, custom text) with the same letters and
//!   digits regardless of case, punctuation and spacing; phones with the same digits, or a
//!   country code of one to three digits put in front of a number we sent without one
//!   (Close stores `(234) 361-7485` as `+12343617485`); a time read back as midnight of the
//!   same day, where the CRM keeps a date only (Salesforce's Task `ActivityDate`). E-mails,
//!   domains, URLs, references and other coded values must read back exactly as sent
//!   (in canonical form): `john.smith@…` → `johnsmith@…` is an edit;
//! - otherwise (a value other than the one expected, beyond canonical form and such
//!   normalisation) it is someone else's edit: the field keeps the side's old base, and the
//!   side's stored hash is that of the base, so the next run sees the edit as that side's
//!   change and syncs it.
//!
//! The cost: a CRM that rewrites a value we sent in substance (not only its form) has its
//! value synced back to the others once, after which all agree; an edit that only reformats
//! a value we just wrote is taken as the CRM's normalisation.

use serde_json::Value;

use crate::values::{Field, FieldMap};

/// The base to store for a side we wrote, when the read-back shows someone else's edit:
/// `None` when the read-back is the base as it is.
///
/// `read_back` is what the CRM holds now, `before` what the side held when planned (`None`
/// for a create), `sent` what we wrote (`None` values are clears), `old_base` the side's
/// stored base.
pub(super) fn base_after_write(
    read_back: &FieldMap,
    before: Option<&FieldMap>,
    sent: &std::collections::BTreeMap<Field, Option<Value>>,
    old_base: Option<&FieldMap>,
) -> Option<FieldMap> {
    // A create: no one else can have edited it yet (see the module docs).
    before?;
    let mut fields: std::collections::BTreeSet<Field> = read_back.keys().copied().collect();
    fields.extend(sent.keys().copied());
    fields.extend(before.into_iter().flat_map(|b| b.keys().copied()));
    let mut base = FieldMap::new();
    let mut edited = false;
    for f in &fields {
        let now = read_back.get(f);
        let expected = match (sent.get(f), before) {
            (Some(v), _) => v.as_ref(),
            (None, Some(b)) => b.get(f),
            (None, None) => now,
        };
        let was_empty = before.is_none_or(|b| b.get(f).is_none());
        let kept_by_crm = sent.contains_key(f) && kept_part(f, now, expected, was_empty);
        let normalised = sent.contains_key(f) && same_in_substance(f, now, expected);
        let keep = if now == expected || kept_by_crm || normalised {
            now
        } else {
            edited = true;
            old_base.and_then(|b| b.get(f))
        };
        if let Some(v) = keep {
            base.insert(*f, v.clone());
        }
    }
    edited.then_some(base)
}

/// Whether `now` is what a CRM keeps of a value we sent (`sent`) to `field`: nothing, for a
/// field that was empty before the write (`was_empty`), or a non-empty part of the e-mails
/// or phones we sent (a CRM that keeps a single one).
fn kept_part(field: &str, now: Option<&Value>, sent: Option<&Value>, was_empty: bool) -> bool {
    match (now, sent) {
        (None, _) => was_empty,
        (Some(Value::Array(kept)), Some(Value::Array(sent))) => {
            matches!(field, "emails" | "phones")
                && !kept.is_empty()
                && kept.iter().all(|v| sent.contains(v))
        }
        _ => false,
    }
}

/// Fields whose values are codes (addresses, ids, choices): any difference is a change.
const CODED: &[&str] = &[
    "emails",
    "domain",
    "url",
    "company",
    "person",
    "stage",
    "currency",
    "kind",
    "direction",
];

/// Whether two values of `field` differ only in form (see the module docs); lists element
/// by element.
fn same_in_substance(field: &str, a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::String(now)), Some(Value::String(sent))) => {
            if same_day_kept_as_date(now, sent) {
                return true;
            }
            if field == "phones" {
                return same_phone(now, sent);
            }
            let letters = |s: &str| -> String {
                s.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect()
            };
            !CODED.contains(&field) && letters(now) == letters(sent)
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| same_in_substance(field, Some(x), Some(y)))
        }
        _ => false,
    }
}

/// Whether the phone number `now` is `sent` reformatted: the same digits, or a country code
/// of one to three digits put in front of a number sent without one.
fn same_phone(now: &str, sent: &str) -> bool {
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let (n, s) = (digits(now), digits(sent));
    if n == s {
        return true;
    }
    let international = sent.trim_start().starts_with('+');
    !international && s.len() >= 7 && n.len() > s.len() && n.len() - s.len() <= 3 && n.ends_with(&s)
}

/// Whether `kept` is `sent` (a canonical time, `2025-03-02T14:30:00Z`) held as a date only:
/// midnight of the same day.
fn same_day_kept_as_date(kept: &str, sent: &str) -> bool {
    let is_date = |s: &str| {
        s.len() >= 10
            && s.as_bytes()[4] == b'-'
            && s.as_bytes()[7] == b'-'
            && s.is_char_boundary(10)
    };
    is_date(kept)
        && is_date(sent)
        && kept[..10] == sent[..10]
        && matches!(&kept[10..], "" | "T00:00:00Z")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn map(pairs: &[(&str, Value)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| (Field::intern(k), v.clone()))
            .collect()
    }

    #[test]
    fn an_edit_made_between_our_write_and_our_read_back_keeps_the_old_base() {
        let before = map(&[("name", json!("Acme")), ("description", json!("old"))]);
        let old_base = before.clone();
        let sent = BTreeMap::from([(Field::intern("name"), Some(json!("Acme Inc")))]);
        // Our write landed; someone changed the description meanwhile.
        let read_back = map(&[
            ("name", json!("Acme Inc")),
            ("description", json!("theirs")),
        ]);
        let base = base_after_write(&read_back, Some(&before), &sent, Some(&old_base));
        assert_eq!(
            base,
            Some(map(&[
                ("name", json!("Acme Inc")),
                ("description", json!("old"))
            ]))
        );
        // Someone overwrote the very field we wrote.
        let read_back = map(&[("name", json!("Acme Corp")), ("description", json!("old"))]);
        let base = base_after_write(&read_back, Some(&before), &sent, Some(&old_base));
        assert_eq!(
            base,
            Some(map(&[
                ("name", json!("Acme")),
                ("description", json!("old"))
            ]))
        );
    }

    #[test]
    fn a_read_back_as_expected_or_missing_a_sent_field_is_the_base() {
        let before = map(&[("name", json!("Acme"))]);
        let sent = BTreeMap::from([
            (Field::intern("name"), Some(json!("Acme Inc"))),
            (Field::intern("url"), Some(json!("https://acme.com"))),
        ]);
        // The CRM kept the name and ignored the url.
        let read_back = map(&[("name", json!("Acme Inc"))]);
        assert_eq!(
            base_after_write(&read_back, Some(&before), &sent, Some(&before)),
            None
        );
        // It keeps one e-mail of the two sent.
        let sent = BTreeMap::from([(Field::intern("emails"), Some(json!(["a@x.com", "b@x.com"])))]);
        let read_back = map(&[("name", json!("Acme")), ("emails", json!(["a@x.com"]))]);
        assert_eq!(
            base_after_write(&read_back, Some(&before), &sent, Some(&before)),
            None
        );
        // A phone number normalised by the CRM is not an edit.
        let sent = BTreeMap::from([(Field::intern("phones"), Some(json!(["(234) 361-7485"])))]);
        let read_back = map(&[("name", json!("Acme")), ("phones", json!(["+12343617485"]))]);
        assert_eq!(
            base_after_write(&read_back, Some(&before), &sent, Some(&before)),
            None
        );
        let read_back = map(&[("name", json!("Acme")), ("phones", json!(["+12343610000"]))]);
        assert!(base_after_write(&read_back, Some(&before), &sent, Some(&before)).is_some());
        // A create: what the CRM filled in by itself is not an edit.
        let read_back = map(&[("name", json!("Acme Inc")), ("domain", json!("acme.com"))]);
        assert_eq!(base_after_write(&read_back, None, &sent, None), None);
    }

    #[test]
    fn a_create_and_a_time_kept_as_a_date_are_the_crms_shaping_not_edits() {
        // A note created in Salesforce reads back as a completed Task with a date only.
        let sent = BTreeMap::from([
            (Field::intern("kind"), Some(json!("note"))),
            (
                Field::intern("occurred_at"),
                Some(json!("2025-03-02T14:30:00Z")),
            ),
        ]);
        let read_back = map(&[
            ("kind", json!("task")),
            ("completed", json!(true)),
            ("occurred_at", json!("2025-03-02T00:00:00Z")),
        ]);
        assert_eq!(base_after_write(&read_back, None, &sent, None), None);
        // An update of the time, kept as that day's date: normalised, not an edit.
        let before = map(&[("occurred_at", json!("2025-03-01T00:00:00Z"))]);
        let sent = BTreeMap::from([(
            Field::intern("occurred_at"),
            Some(json!("2025-03-02T14:30:00Z")),
        )]);
        let read_back = map(&[("occurred_at", json!("2025-03-02T00:00:00Z"))]);
        assert_eq!(
            base_after_write(&read_back, Some(&before), &sent, Some(&before)),
            None
        );
        // Another day is someone's edit.
        let read_back = map(&[("occurred_at", json!("2025-03-05T00:00:00Z"))]);
        assert!(base_after_write(&read_back, Some(&before), &sent, Some(&before)).is_some());
    }

    #[test]
    fn edits_that_look_like_normalisation_of_coded_values_are_edits() {
        let edited = |field: &str, before: Value, sent: Value, now: Option<Value>| {
            let before = map(&[(field, before)]);
            let sent = BTreeMap::from([(Field::intern(field), Some(sent))]);
            let read_back = match now {
                Some(v) => map(&[(field, v)]),
                None => FieldMap::new(),
            };
            base_after_write(&read_back, Some(&before), &sent, Some(&before)).is_some()
        };
        // Cleared right after our write: the field held a value before.
        assert!(edited("title", json!("CEO"), json!("CTO"), None));
        // A list emptied, or an element the CRM could keep removed by someone.
        assert!(edited(
            "emails",
            json!(["a@x.com"]),
            json!(["b@x.com"]),
            Some(json!([]))
        ));
        assert!(edited(
            "domain",
            json!("acme.com"),
            json!("ac-me.com"),
            Some(json!("acme.com"))
        ));
        assert!(edited(
            "emails",
            json!(["x@y.com"]),
            json!(["john.smith@x.com"]),
            Some(json!(["johnsmith@x.com"]))
        ));
        // A number sent with its country code, read back with another one.
        assert!(edited(
            "phones",
            json!(["+1 555 0100 000"]),
            json!(["+12343617485"]),
            Some(json!(["+442343617485"]))
        ));
        // Free text reformatted is still the CRM's doing.
        assert!(!edited(
            "name",
            json!("Acme"),
            json!("ACME, Inc."),
            Some(json!("Acme Inc"))
        ));
    }
}
