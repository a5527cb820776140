//! Salesforce record ids: a three-character key prefix naming the object, twelve
//! case-sensitive base-62 characters, and (in the 18-character form) a three-character
//! suffix that encodes the case of the first fifteen, so case-insensitive tools can tell
//! ids apart. The API answers 18-character ids and accepts either form.
//! (help.salesforce.com "What is a Salesforce ID?", and the suffix algorithm described at
//! developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm#i1435616.)

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The three-character suffix of a 15-character id.
fn suffix(id15: &[u8]) -> String {
    id15.chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX[bits])
        })
        .collect()
}

/// The 18-character form of a 15- or 18-character id, or `None` when it is not an id
/// (wrong length or characters, or an 18-character id whose suffix does not match).
pub(crate) fn to18(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    match bytes.len() {
        15 => Some(format!("{id}{}", suffix(bytes))),
        18 => {
            // The suffix is compared case-insensitively: it exists for case-blind tools.
            let head = &bytes[..15];
            let want = suffix(head);
            want.eq_ignore_ascii_case(&id[15..])
                .then(|| format!("{}{want}", &id[..15]))
        }
        _ => None,
    }
}

/// The id made from a key prefix and a sequence number (`001` + pod + number, 18 chars).
pub(crate) fn make(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 7];
    let mut v = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    // `5g00000` stands for the instance and reserved characters real ids carry.
    let id15 = format!(
        "{prefix}5g000{}",
        std::str::from_utf8(&digits).unwrap_or("0000000")
    );
    format!("{id15}{}", suffix(id15.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_and_eighteen_character_forms_agree() {
        // A pair widely quoted from Salesforce's own documentation examples.
        assert_eq!(
            to18("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        let id = make("006", 123_456);
        assert_eq!(id.len(), 18);
        assert_eq!(to18(&id).as_deref(), Some(id.as_str()));
        assert_eq!(to18(&id[..15]).as_deref(), Some(id.as_str()));
        assert_eq!(to18(&id.to_lowercase()), None);
        assert_eq!(to18("001-bad"), None);
    }
}
