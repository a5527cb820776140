//! Contacts: emails and E.164 phones.

use serde_json::{Map, Value, json};

use super::super::api_error::ApiError;
use super::super::data::Data;
use super::{check_custom_fields, require_row};

/// A contact being created or updated.
pub(super) fn contact(
    data: &mut Data,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    if let Some(Value::Array(emails)) = obj.get_mut("emails") {
        for (i, e) in emails.iter_mut().enumerate() {
            let addr = e["email"].as_str().unwrap_or_default().to_string();
            if !addr.contains('@') {
                return Err(ApiError::field(
                    &format!("emails.{i}.email"),
                    "Enter a valid email address.",
                ));
            }
            e["email_lower"] = json!(addr.to_lowercase());
            if e.get("type").is_none() {
                e["type"] = json!("office");
            }
        }
    }
    if let Some(Value::Array(phones)) = obj.get_mut("phones") {
        for (i, p) in phones.iter_mut().enumerate() {
            let raw = p["phone"].as_str().unwrap_or_default();
            let Some(norm) = e164(raw) else {
                return Err(ApiError::field(
                    &format!("phones.{i}.phone"),
                    "Enter a valid phone number.",
                ));
            };
            p["phone"] = json!(norm);
            if p.get("type").is_none() {
                p["type"] = json!("office");
            }
        }
    }
    // Without a lead_id (or with a null one) on create, the write creates the lead once
    // everything is checked. On update a null would orphan the contact, which belongs to
    // exactly one lead (developer.close.com/resources/contacts).
    match obj.get("lead_id") {
        None => {}
        Some(Value::String(lead)) => require_row(data, "lead", lead, "lead")?,
        Some(Value::Null) if creating => {}
        Some(Value::Null) => {
            return Err(ApiError::field("lead", "This field may not be null."));
        }
        Some(_) => return Err(ApiError::field("lead", "Not a valid string.")),
    }
    if creating {
        obj.entry("emails").or_insert(json!([]));
        obj.entry("phones").or_insert(json!([]));
        obj.entry("urls").or_insert(json!([]));
    }
    check_custom_fields(data, "contact", obj, current)
}

/// A phone as Close stores it: E.164 (developer.close.com/api/resources/contacts/create).
/// A number after `+` carries its country code. A number without one gets the country
/// code of the Close user's Country setting (help.close.com/v1/docs/account-settings,
/// "Country Settings"); the sandbox's account is set to the United States, hence `+1`
/// before ten digits, while eleven starting with `1` already carry it. Close documents no
/// reading of an international dialling prefix (the United States' is `011`, not `00`), so
/// the sandbox reads none: `0044 …` is not a number it takes.
fn e164(raw: &str) -> Option<String> {
    let raw = raw.trim_start();
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    match (raw.starts_with('+'), digits.len()) {
        (true, n) => (8..=15).contains(&n).then(|| format!("+{digits}")),
        (false, 10) => Some(format!("+1{digits}")),
        (false, 11) if digits.starts_with('1') => Some(format!("+{digits}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(e164("(650) 555-1234").as_deref(), Some("+16505551234"));
        assert_eq!(e164("+44 20 7946 0958").as_deref(), Some("+442079460958"));
        assert_eq!(e164("0044 20 7946 0958"), None);
        assert_eq!(e164("1 650 555 1234").as_deref(), Some("+16505551234"));
        assert_eq!(e164("00 12"), None);
        assert_eq!(e164("12"), None);
    }
}
