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
//! - a field we sent is missing from the read-back where the side held nothing before
//!   either, or an `emails`/`phones` list holds some (at least one) of the values we sent:
//!   the CRM ignored it or kept what it can (a property it does not keep, a single e-mail of
//!   two): the read-back value is the base. A field missing that held a value before, an
//!   emptied list, or another list short of an element is someone's edit;
//! - a field we sent reads back the same in substance: the CRM normalised it (free text —
//!   name, title, description, subject, body, custom fields — with the same letters and
//!   digits regardless of case, punctuation and spacing; a `phones` number read back as
//!   what the written CRM itself makes of the number we sent (see [`phone_kept_as`]: only
//!   Close rewrites phones, to E.164: `+44 20 7946 0958` reads back as `+442079460958`
//!   (one sent with the international prefix `00` has no such form, see [`phone_kept_as`]), `1 650 555 0100` as `+16505550100`, and a number sent without a
//!   country code as `+`, the Close account's country code and the same digits, whatever
//!   that code is here: [`CountryCode::Any`]); a
//!   time read back as midnight of the same day, where the CRM keeps a date only, as
//!   Salesforce's Task `ActivityDate`): the read-back value is the base. E-mails, domains,
//!   urls and ids are compared exactly: there a dot or a hyphen is a different value;
//! - otherwise (a value other than the one expected, beyond canonical form and such
//!   normalisation) it is someone else's edit: the field keeps the side's old base, and the
//!   side's stored hash is that of the base, so the next run sees the edit as that side's
//!   change and syncs it.
//!
//! The cost: a CRM that rewrites a value we sent in substance (not only its form) has its
//! value synced back to the others once, after which all agree; an edit that only reformats
//! a value we just wrote is taken as the CRM's normalisation.

use crmkit_core::Crm;
use serde_json::Value;

use crate::values::{Field, FieldMap};

/// The name of the Close account's phone country code among the facts the store keeps
/// ([`crmkit_store::Store::account_fact`]), learned by [`country_code_seen`].
pub const CLOSE_COUNTRY_CODE: &str = "phone_country_code";

/// Which country code Close may have given a phone number sent without one.
///
/// Close gives such a number "the default country code from Account Settings"
/// (help.close.com/v1/docs/account-settings, "Country Settings"), which its API does not
/// tell. Reading back our own write, a second after it, any code is taken as that default
/// (`Any`): the other way, Close's E.164 text would be copied back over the text a person
/// typed in the other CRMs after every such write. Comparing linked records that nobody
/// changed (a stale divergence, [`kept_alike`]) is another matter: those values may have
/// been apart since before the link, and `(650) 555-0100` against `+446505550100` are two
/// numbers, so once Close was seen to add a code to one of our writes (`Learned(Some)`,
/// stored as [`CLOSE_COUNTRY_CODE`]) only that code counts. Until then (`Learned(None)`:
/// every store from before the code was learned) any code counts, as for `Any`: the
/// trade-off is that, until Close has shown its code, a number differing from Close's only
/// by a country prefix is taken as Close's normalisation, not as another number; the other
/// way every contact synced before the upgrade would get a phones conflict as soon as it
/// is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountryCode<'a> {
    /// Any code of one to three digits: the read-back of our own write.
    Any,
    /// Only the code learned from Close's read-backs; none learned yet, any (as `Any`).
    Learned(Option<&'a str>),
}

/// The base to store for a side we wrote, when the read-back shows someone else's edit:
/// `None` when the read-back is the base as it is.
///
/// `crm` is the side written, `read_back` what it holds now, `before` what the side held when planned (`None`
/// for a create), `sent` what we wrote (`None` values are clears), `old_base` the side's
/// stored base.
pub(super) fn base_after_write(
    crm: Crm,
    read_back: &FieldMap,
    before: Option<&FieldMap>,
    sent: &crate::values::Writes,
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
        let was = before.and_then(|b| b.get(f));
        let kept_by_crm = sent.contains_key(f) && kept_part(*f, now, expected, was);
        let normalised =
            sent.contains_key(f) && same_in_substance(crm, *f, now, expected, CountryCode::Any);
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

/// The base of a record of `crm` created by a write that sent `sent`, read back only later
/// (after an interruption, or on the run after its read-back failed) as `read_back`: `None`
/// when the read-back is the base, else the base with the value sent for each field that
/// reads back as someone's edit. The check is the one after any write
/// ([`base_after_write`]), as if the record had held what it holds now before: only a field
/// sent that reads back otherwise (beyond the CRM's keeping of it: Close's E.164 of a phone
/// number) is an edit, its base the value sent; a field sent that reads back empty is taken
/// as one the CRM did not keep (a clear is never guessed), and a field the CRM filled by
/// itself is its own, as after a create.
pub(crate) fn created_base(
    crm: Crm,
    read_back: &FieldMap,
    sent: &crate::values::Writes,
) -> Option<FieldMap> {
    let sent_values: FieldMap = sent
        .iter()
        .filter_map(|(f, v)| v.clone().map(|v| (*f, v)))
        .collect();
    base_after_write(crm, read_back, Some(read_back), sent, Some(&sent_values))
}

/// Whether `a`, held by `a_crm`, and `b`, held by `b_crm`, are one value of `field` as the
/// two CRMs keep it: one is what its CRM makes of the other (see [`same_in_substance`]).
/// Such values differ between linked records for good without anyone having diverged. A
/// list part of the other is not judged here: that depends on which CRM holds fewer (see
/// the planner's `kept_fewer`).
///
/// A phone number without a country code is alike a Close number only with the code
/// learned from Close's read-backs (`close_code`, see [`CountryCode`]): the two values may
/// have been apart since before the link, when no write of ours explains them. Until a
/// code is learned, any code of one to three digits is (see [`CountryCode`] for the cost).
pub(crate) fn kept_alike(
    field: Field,
    a_crm: Crm,
    a: &Value,
    b_crm: Crm,
    b: &Value,
    close_code: Option<&str>,
) -> bool {
    let code = CountryCode::Learned(close_code);
    same_in_substance(a_crm, field, Some(a), Some(b), code)
        || same_in_substance(b_crm, field, Some(b), Some(a), code)
}

/// Whether `now` is what a CRM keeps of a value we sent (`sent`) to `field`, which held
/// `was` before: nothing, only where it held nothing before either (a property the CRM does
/// not keep; a cleared value is an edit), or some (at least one) of the values of an
/// `emails`/`phones` list (one e-mail of two, where it keeps a single one).
fn kept_part(field: Field, now: Option<&Value>, sent: Option<&Value>, was: Option<&Value>) -> bool {
    match (now, sent) {
        (None, _) => was.is_none_or(is_empty),
        (Some(Value::Array(kept)), Some(Value::Array(sent))) => {
            matches!(field.as_str(), "emails" | "phones")
                && !kept.is_empty()
                && kept.iter().all(|v| sent.contains(v))
        }
        _ => false,
    }
}

/// Whether a value holds nothing: null, an empty string or an empty list.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether `field` holds free text, whose case, punctuation and spacing a CRM may reshape;
/// e-mails, domains, urls and ids are not: there each character counts.
fn free_text(field: Field) -> bool {
    matches!(
        field.as_str(),
        "name" | "first_name" | "last_name" | "title" | "description" | "subject" | "body"
    ) || field.as_str().starts_with("custom.")
}

/// Whether `now`, read back from `crm`, is what `crm` makes of the phone number we sent
/// as `sent` (where it keeps the text as given, only that exact text is); `code` is which
/// country code Close may have added to a number sent without one ([`CountryCode`]).
///
/// Close keeps phones in E.164 (its contacts' `phone`, e.g. `+14155552671`, shown as
/// `phone_formatted`: developer.close.com/api/resources/contacts/create):
///
/// - a number sent with a leading `+` carries its country code: Close's form of it is
///   exactly `+` and its digits;
/// - one sent with the international prefix `00` (`0044 20 7946 0958`) has no form taken
///   as Close's: `00` is the prefix ITU-T recommends and most countries dial, but not every
///   country (the United States dial `011`, and Brazil dials `00` and a carrier's two digits,
///   where `0021 1 650 555 0100` is `+1 650 555 0100`, not `+211…`), so "`+` and the digits
///   after `00`" could make two numbers one; Close's E.164 of it is an edit, synced back once;
/// - one sent without either gets the account's default country code (see
///   [`CountryCode`]): `+`, that code, then exactly the digits we sent (a leading `0`
///   kept, as Italy's, or dropped as a national trunk prefix, as the United Kingdom's),
///   or, where the digits sent already start with the code (`1 650 555 0100` in a `+1`
///   account), `+` and the digits as sent. With [`CountryCode::Any`] (our own write, read
///   back) or no code learned yet, any code of one to three digits, or none, is taken as
///   Close's doing; the cost: a person who, in the second between our write and our
///   read-back, gives the same digits another country code has that edit taken as synced.
///   A trunk prefix other than a single `0` (Hungary's `06`) is not known here: such a
///   number against Close's form of it is alike only before a code is learned.
///
/// Digits changed, or a form other than E.164, stay an edit.
///
/// HubSpot's `phone` properties and Salesforce's `Phone` fields are text, stored through
/// the API as sent (Salesforce formats numbers typed in its UI only), so they have no phone
/// normalisation here.
fn phone_kept_as(crm: Crm, sent: &str, now: &str, code: CountryCode<'_>) -> bool {
    match crm {
        Crm::Close => {
            let Some(stored) = e164_digits(now) else {
                return false;
            };
            let digits: String = sent.chars().filter(char::is_ascii_digit).collect();
            let sent = sent.trim_start();
            if sent.starts_with('+') {
                return stored == digits;
            }
            if sent.starts_with("00") {
                return false;
            }
            let national = digits.strip_prefix('0').unwrap_or(&digits);
            if national.is_empty() {
                return false;
            }
            match code {
                // Digits read back as they were sent, with no code added, are Close's doing
                // only where the digits already started with the account's code. Unknown
                // here, that is taken only for a North American number written with its
                // `1`, which is both that plan's country code and its trunk prefix: no code
                // added to `6505550100` is `+6505550100`, Singapore's 65 and no US number.
                CountryCode::Any | CountryCode::Learned(None) => {
                    (stored == digits && nanp_with_code(&digits))
                        || stored
                            .strip_suffix(national)
                            .is_some_and(|code| (1..=3).contains(&code.len()))
                }
                // Close may keep a leading `0` (Italy's numbers keep it after `+39`) or
                // drop it as a trunk prefix (the United Kingdom's after `+44`).
                CountryCode::Learned(Some(code)) => {
                    (stored == digits && digits.starts_with(code))
                        || stored.strip_prefix(code) == Some(digits.as_str())
                        || stored.strip_prefix(code) == Some(national)
                }
            }
        }
        Crm::HubSpot | Crm::Salesforce => false,
    }
}

/// Whether `digits` are a North American Numbering Plan number with its leading `1`:
/// `1`, an area code and an exchange code each starting with 2 to 9, and four digits.
fn nanp_with_code(digits: &str) -> bool {
    let d = digits.as_bytes();
    d.len() == 11 && d[0] == b'1' && (b'2'..=b'9').contains(&d[1]) && (b'2'..=b'9').contains(&d[4])
}

/// The digits of `phone` when it is in E.164: `+` and 8 to 15 digits (E.164 allows at most
/// 15; fewer than 8 is no number Close takes).
fn e164_digits(phone: &str) -> Option<&str> {
    let digits = phone.strip_prefix('+')?;
    (digits.bytes().all(|b| b.is_ascii_digit()) && (8..=15).contains(&digits.len()))
        .then_some(digits)
}

/// The country code Close was seen to give a phone number we sent without one, if the
/// read-back of a write to `crm` shows one: the first number of `phones` sent without `+`
/// or `00` that reads back as `+`, a country code and the digits sent. The code is what
/// precedes all the digits sent where that is a country code (Italy keeps a leading `0`:
/// `06 1234 5678` as `+390612345678` shows `39`), else what precedes them without a
/// leading trunk `0` (`020 7946 0958` as `+442079460958` shows `44`). Only an assigned
/// country code is taken ([`is_country_code`]), so a trunk prefix other than `0` shows
/// nothing (Hungary's `06 1 234 5678` as `+3612345678` is not taken for code `3`). A number
/// read back as its own digits (`1 650 555 0100` as `+16505550100`) shows no code: where
/// its code ends is not known.
pub(super) fn country_code_seen(
    crm: Crm,
    read_back: &FieldMap,
    sent: &crate::values::Writes,
) -> Option<String> {
    if crm != Crm::Close {
        return None;
    }
    let field = Field::intern("phones");
    let (Some(Value::Array(now)), Some(Some(Value::Array(sent)))) =
        (read_back.get(&field), sent.get(&field))
    else {
        return None;
    };
    if now.len() != sent.len() {
        return None;
    }
    now.iter().zip(sent).find_map(|(now, sent)| {
        let (Some(now), Some(sent)) = (now.as_str(), sent.as_str()) else {
            return None;
        };
        let stored = e164_digits(now)?;
        let sent = sent.trim_start();
        if sent.starts_with('+') || sent.starts_with("00") {
            return None;
        }
        let digits: String = sent.chars().filter(char::is_ascii_digit).collect();
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        if national.is_empty() || stored == digits {
            return None;
        }
        [digits.as_str(), national]
            .into_iter()
            .filter_map(|d| stored.strip_suffix(d))
            .find(|code| is_country_code(code))
            .map(str::to_string)
    })
}

/// The country calling codes ITU-T assigns (ITU-T, "List of ITU-T Recommendation E.164
/// assigned country codes", the Annex to the ITU Operational Bulletin): one, two and three
/// digits, sorted, geographic and the shared non-geographic ones (800, 808, 870, 881–883,
/// 888, 979…). Spare codes (`210`, `259`, `671`…) are no country's.
const COUNTRY_CODES: [u16; 218] = [
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 379, 380, 381, 382, 383, 385, 386, 387, 388, 389, 420, 421, 423, 500, 501, 502, 503, 504,
    505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674,
    675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808,
    850, 852, 853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965,
    966, 967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 991, 992, 993, 994, 995, 996, 998,
];

/// Whether `code` is an assigned country code ([`COUNTRY_CODES`]): E.164 codes are
/// prefix-free (none is the start of another), which tells `39` from `390` and `3`.
fn is_country_code(code: &str) -> bool {
    (1..=3).contains(&code.len())
        && !code.starts_with('0')
        && code.bytes().all(|b| b.is_ascii_digit())
        && code
            .parse::<u16>()
            .is_ok_and(|n| COUNTRY_CODES.binary_search(&n).is_ok())
}

/// Whether two values of `field` (`now` read back from `crm`, `sent` written) differ only in
/// form: a time kept as that day's date; free text with the same letters and digits
/// (ignoring case, punctuation and spacing); a phone read back as `crm` stores the number
/// sent; lists element by element.
fn same_in_substance(
    crm: Crm,
    field: Field,
    now: Option<&Value>,
    sent: Option<&Value>,
    code: CountryCode<'_>,
) -> bool {
    match (now, sent) {
        (Some(Value::String(now)), Some(Value::String(sent))) => {
            if same_day_kept_as_date(now, sent) {
                return true;
            }
            let letters = |s: &str| -> String {
                s.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect()
            };
            (free_text(field) && letters(now) == letters(sent))
                || (field.as_str() == "phones" && phone_kept_as(crm, sent, now, code))
        }
        (Some(Value::Array(now)), Some(Value::Array(sent))) => {
            now.len() == sent.len()
                && now
                    .iter()
                    .zip(sent)
                    .all(|(x, y)| same_in_substance(crm, field, Some(x), Some(y), code))
        }
        _ => false,
    }
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
        let sent = crate::values::Writes::from([(Field::intern("name"), Some(json!("Acme Inc")))]);
        // Our write landed; someone changed the description meanwhile.
        let read_back = map(&[
            ("name", json!("Acme Inc")),
            ("description", json!("theirs")),
        ]);
        let base = base_after_write(
            Crm::Close,
            &read_back,
            Some(&before),
            &sent,
            Some(&old_base),
        );
        assert_eq!(
            base,
            Some(map(&[
                ("name", json!("Acme Inc")),
                ("description", json!("old"))
            ]))
        );
        // Someone overwrote the very field we wrote.
        let read_back = map(&[("name", json!("Acme Corp")), ("description", json!("old"))]);
        let base = base_after_write(
            Crm::Close,
            &read_back,
            Some(&before),
            &sent,
            Some(&old_base),
        );
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
        let sent = crate::values::Writes::from([
            (Field::intern("name"), Some(json!("Acme Inc"))),
            (Field::intern("url"), Some(json!("https://acme.com"))),
        ]);
        // The CRM kept the name and ignored the url.
        let read_back = map(&[("name", json!("Acme Inc"))]);
        assert_eq!(
            base_after_write(Crm::Close, &read_back, Some(&before), &sent, Some(&before)),
            None
        );
        // It keeps one e-mail of the two sent.
        let sent = crate::values::Writes::from([(
            Field::intern("emails"),
            Some(json!(["a@x.com", "b@x.com"])),
        )]);
        let read_back = map(&[("name", json!("Acme")), ("emails", json!(["a@x.com"]))]);
        assert_eq!(
            base_after_write(Crm::Close, &read_back, Some(&before), &sent, Some(&before)),
            None
        );
        // A phone number normalised by the CRM is not an edit.
        let sent = crate::values::Writes::from([(
            Field::intern("phones"),
            Some(json!(["+1 (234) 361-7485"])),
        )]);
        let read_back = map(&[("name", json!("Acme")), ("phones", json!(["+12343617485"]))]);
        assert_eq!(
            base_after_write(Crm::Close, &read_back, Some(&before), &sent, Some(&before)),
            None
        );
        let read_back = map(&[("name", json!("Acme")), ("phones", json!(["+12343610000"]))]);
        assert!(
            base_after_write(Crm::Close, &read_back, Some(&before), &sent, Some(&before)).is_some()
        );
        // A create: what the CRM filled in by itself is not an edit.
        let read_back = map(&[("name", json!("Acme Inc")), ("domain", json!("acme.com"))]);
        assert_eq!(
            base_after_write(Crm::Close, &read_back, None, &sent, None),
            None
        );
    }

    #[test]
    fn a_create_and_a_time_kept_as_a_date_are_the_crms_shaping_not_edits() {
        // A note created in Salesforce reads back as a completed Task with a date only.
        let sent = crate::values::Writes::from([
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
        assert_eq!(
            base_after_write(Crm::Salesforce, &read_back, None, &sent, None),
            None
        );
        // An update of the time, kept as that day's date: normalised, not an edit.
        let before = map(&[("occurred_at", json!("2025-03-01T00:00:00Z"))]);
        let sent = crate::values::Writes::from([(
            Field::intern("occurred_at"),
            Some(json!("2025-03-02T14:30:00Z")),
        )]);
        let read_back = map(&[("occurred_at", json!("2025-03-02T00:00:00Z"))]);
        assert_eq!(
            base_after_write(
                Crm::Salesforce,
                &read_back,
                Some(&before),
                &sent,
                Some(&before)
            ),
            None
        );
        // Another day is someone's edit.
        let read_back = map(&[("occurred_at", json!("2025-03-05T00:00:00Z"))]);
        assert!(
            base_after_write(
                Crm::Salesforce,
                &read_back,
                Some(&before),
                &sent,
                Some(&before)
            )
            .is_some()
        );
    }

    /// `base_after_write` for an update of `field` from `was` to `sent`, read back as `now`:
    /// `true` when it is taken as someone's edit.
    fn edited(field: &str, was: Option<Value>, sent: Value, now: Option<Value>) -> bool {
        edited_in(Crm::Close, field, was, sent, now)
    }

    /// [`edited`], written to `crm`.
    fn edited_in(
        crm: Crm,
        field: &str,
        was: Option<Value>,
        sent: Value,
        now: Option<Value>,
    ) -> bool {
        let f = Field::intern(field);
        let before: FieldMap = was.into_iter().map(|v| (f, v)).collect();
        let read_back: FieldMap = now.into_iter().map(|v| (f, v)).collect();
        let sent = crate::values::Writes::from([(f, Some(sent))]);
        base_after_write(crm, &read_back, Some(&before), &sent, Some(&before)).is_some()
    }

    #[test]
    fn a_user_edit_right_after_our_write_is_not_taken_for_normalisation() {
        // Cleared by the user: the field held a value before, so missing now is an edit.
        assert!(edited("title", Some(json!("CTO")), json!("CEO"), None));
        // Missing where it was missing before too: the CRM does not keep it.
        assert!(!edited("title", None, json!("CEO"), None));
        // A list emptied, or an element removed where the CRM keeps them all.
        let two = json!(["a@x.com", "b@x.com"]);
        assert!(edited(
            "emails",
            Some(json!(["a@x.com"])),
            two.clone(),
            Some(json!([]))
        ));
        let tags = json!(["vip", "eu"]);
        assert!(edited(
            "tags",
            Some(json!(["vip"])),
            tags,
            Some(json!(["vip"]))
        ));
        // Characters that count in an e-mail, a domain, an id.
        assert!(edited(
            "emails",
            Some(json!(["j@x.com"])),
            json!(["john.smith@x.com"]),
            Some(json!(["johnsmith@x.com"]))
        ));
        assert!(edited(
            "domain",
            Some(json!("old.com")),
            json!("ac-me.com"),
            Some(json!("acme.com"))
        ));
        assert!(edited(
            "external_id",
            None,
            json!("1234567"),
            Some(json!("91234567"))
        ));
        // A number that is not a phone list does not gain a country code.
        assert!(edited(
            "custom.cf_phone",
            None,
            json!("2343617485"),
            Some(json!("+442343617485"))
        ));
        // A phone we sent with its country code read back with another.
        assert!(edited(
            "phones",
            None,
            json!(["+12343617485"]),
            Some(json!(["+442343617485"]))
        ));
        // Free text reshaped by the CRM is still normalisation.
        assert!(!edited(
            "name",
            None,
            json!("acme  inc."),
            Some(json!("Acme Inc"))
        ));
    }

    #[test]
    fn only_the_written_crms_own_phone_normalisation_is_not_an_edit() {
        let phones = |v: &[&str]| json!(v);
        // Each (sent, read back) pair is an edit or not, as `edit` says.
        let check = |cases: &[(&str, &str)], edit: bool| {
            for (sent, now) in cases {
                assert_eq!(
                    edited("phones", None, phones(&[sent]), Some(phones(&[now]))),
                    edit,
                    "{sent} -> {now}"
                );
            }
        };
        // Close's E.164 of a number sent with its country code after `+`: spacing and
        // punctuation dropped.
        check(
            &[
                ("+44 20 7946 0958", "+442079460958"),
                ("+1 (650) 555-0100", "+16505550100"),
                ("+16505550100", "+16505550100"),
            ],
            false,
        );
        // A number sent without a country code gets the Close account's, whichever it is,
        // a national trunk 0 dropped; one whose digits already start with the code keeps
        // them.
        check(
            &[
                ("(650) 555-0100", "+16505550100"),
                ("030 1234567", "+49301234567"),
                ("555 0100", "+445550100"),
                ("(650) 555-0100", "+446505550100"),
                ("1 650 555 0100", "+16505550100"),
            ],
            false,
        );
        // Other digits, a form that is not E.164, no country code or one too long, a code
        // changed on a number sent with one (after `+` or `00`): someone's edit.
        check(
            &[
                ("555 0100", "+44 555 0100"),
                ("(650) 555-0100", "+33 6505550100"),
                ("(650) 555-0100", "+16505550199"),
                ("6505550100", "+12346505550100"),
                ("+44 20 7946 0958", "+4420794609"),
                ("+44 20 7946 0958", "+12079460958"),
                ("0044 20 7946 0958", "+12079460958"),
                ("0044 20 7946 0958", "+10044207946095"),
                // `00` is not every country's international prefix.
                ("0044 20 7946 0958", "+442079460958"),
                ("0021 1 650 555 0100", "+2116505550100"),
                ("6505550100", "+6505550100"),
            ],
            true,
        );
        // HubSpot and Salesforce keep phone text as given: any other text is an edit.
        for crm in [Crm::HubSpot, Crm::Salesforce] {
            assert!(edited_in(
                crm,
                "phones",
                None,
                phones(&["(650) 555-0100"]),
                Some(phones(&["+16505550100"]))
            ));
            assert!(!edited_in(
                crm,
                "phones",
                None,
                phones(&["(650) 555-0100"]),
                Some(phones(&["(650) 555-0100"]))
            ));
        }
    }

    #[test]
    fn linked_phones_nobody_changed_are_alike_with_the_learned_country_code_or_any_before() {
        let phones = Field::intern("phones");
        let alike = |hs: &str, close: &str, code: Option<&str>| {
            kept_alike(
                phones,
                Crm::HubSpot,
                &json!([hs]),
                Crm::Close,
                &json!([close]),
                code,
            )
        };
        // The account's code, learned: Close's form of the number.
        assert!(alike("(650) 555-0100", "+16505550100", Some("1")));
        assert!(alike("1 650 555 0100", "+16505550100", Some("1")));
        assert!(alike("020 7946 0958", "+442079460958", Some("44")));
        // Another code is another number, however the values came apart.
        assert!(!alike("(650) 555-0100", "+446505550100", Some("1")));
        assert!(!alike("6505550100", "+6505550100", Some("1")));
        // Italy keeps the leading 0 after its code; its mobiles have none.
        assert!(alike("06 1234 5678", "+390612345678", Some("39")));
        assert!(alike("333 123 4567", "+393331234567", Some("39")));
        assert!(!alike("06 1234 5678", "+440612345678", Some("39")));
        // Hungary's trunk `06` is not known: alike only before a code is learned.
        assert!(!alike("06 1 234 5678", "+3612345678", Some("36")));
        assert!(alike("1 234 5678", "+3612345678", Some("36")));
        // No code learned yet (a store from before codes were learned): any code of one to
        // three digits is taken as Close's, so links synced before raise no conflict.
        assert!(alike("(650) 555-0100", "+16505550100", None));
        assert!(alike("(650) 555-0100", "+446505550100", None));
        assert!(alike("06 1 234 5678", "+3612345678", None));
        assert!(!alike("(650) 555-0100", "+16505550199", None));
        assert!(!alike("6505550100", "+12346505550100", None));
        // A number carrying its code is one whatever the account's code.
        assert!(alike("+44 20 7946 0958", "+442079460958", None));
        assert!(!alike("0021 1 650 555 0100", "+2116505550100", None));
        // The same digits behind a `+`, no code added: another country's number.
        assert!(!alike("6505550100", "+6505550100", None));
        assert!(alike("1 650 555 0100", "+16505550100", None));
        assert!(!alike("0044 20 7946 0958", "+12079460958", Some("1")));
    }

    #[test]
    fn only_assigned_country_codes_count() {
        assert!(COUNTRY_CODES.is_sorted());
        for code in [
            "1", "7", "20", "44", "39", "211", "225", "262", "353", "380", "383", "420", "599",
            "852", "971", "998",
        ] {
            assert!(is_country_code(code), "{code} is assigned");
        }
        // Spare codes, prefixes of assigned ones, longer codes of a shorter one, and what is
        // no code at all.
        for code in [
            "2", "3", "21", "35", "210", "259", "280", "384", "422", "671", "684", "978", "999",
            "440", "390", "100", "12", "01", "", "4a", "4444",
        ] {
            assert!(!is_country_code(code), "{code} is no country code");
        }
    }

    #[test]
    fn the_country_code_close_gave_a_number_we_sent_is_learned() {
        let phones = Field::intern("phones");
        let seen = |crm: Crm, sent: &[&str], now: &[&str]| {
            let read_back: FieldMap = [(phones, json!(now))].into_iter().collect();
            let sent = crate::values::Writes::from([(phones, Some(json!(sent)))]);
            country_code_seen(crm, &read_back, &sent)
        };
        assert_eq!(
            seen(Crm::Close, &["(650) 555-0100"], &["+16505550100"]).as_deref(),
            Some("1")
        );
        assert_eq!(
            seen(
                Crm::Close,
                &["+44 20 7946 0958", "030 1234567"],
                &["+442079460958", "+49301234567"]
            )
            .as_deref(),
            Some("49")
        );
        // United States and United Kingdom: a trunk 0 dropped.
        assert_eq!(
            seen(Crm::Close, &["020 7946 0958"], &["+442079460958"]).as_deref(),
            Some("44")
        );
        // Italy keeps the leading 0 (`39`, not `390`); its mobiles have none.
        assert_eq!(
            seen(Crm::Close, &["06 1234 5678"], &["+390612345678"]).as_deref(),
            Some("39")
        );
        assert_eq!(
            seen(Crm::Close, &["333 123 4567"], &["+393331234567"]).as_deref(),
            Some("39")
        );
        // Egypt drops its trunk 0 after `20`, whose own 0 looks like a kept one: `2` is no
        // country code.
        assert_eq!(
            seen(Crm::Close, &["02 1234 5678"], &["+20212345678"]).as_deref(),
            Some("20")
        );
        // Hungary's trunk `06` dropped: `3` is no country code, nothing is learned; a
        // number sent without the trunk shows `36`.
        assert_eq!(seen(Crm::Close, &["06 1 234 5678"], &["+3612345678"]), None);
        assert_eq!(
            seen(Crm::Close, &["1 234 5678"], &["+3612345678"]).as_deref(),
            Some("36")
        );
        // Numbers that carried their code, or kept their digits: nothing shows the
        // account's code.
        assert_eq!(
            seen(Crm::Close, &["+44 20 7946 0958"], &["+442079460958"]),
            None
        );
        assert_eq!(
            seen(Crm::Close, &["0044 20 7946 0958"], &["+442079460958"]),
            None
        );
        assert_eq!(
            seen(Crm::Close, &["1 650 555 0100"], &["+16505550100"]),
            None
        );
        // Other digits, or another CRM: nothing learned.
        assert_eq!(
            seen(Crm::Close, &["(650) 555-0100"], &["+16505550199"]),
            None
        );
        assert_eq!(
            seen(Crm::HubSpot, &["(650) 555-0100"], &["+16505550100"]),
            None
        );
    }
}
