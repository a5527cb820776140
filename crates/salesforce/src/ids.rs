//! Salesforce record ids: 15 characters, case-sensitive, or 18 characters with a
//! case-insensitive checksum suffix.
//!
//! The suffix encodes, for each of the three 5-character chunks of the 15-character id, which
//! characters are upper-case letters (bit `i` for character `i`), as one character of
//! `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345` (Salesforce Help, "What is a Case Safe ID?"; the id
//! `001D000000IqhSL` is `001D000000IqhSLIAZ` in the REST API guide's examples). Every id this
//! crate hands out is the 18-character form, so two spellings of one record compare equal.

use crmkit_core::{Crm, Error, ErrorKind, Result};

crmkit_core::id_type!(
    SalesforceId,
    "A Salesforce record id, normally the 18-character case-safe form (see [`SalesforceId::parse`])."
);

const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The three checksum characters of a 15-character id.
pub fn checksum(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .take(3)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX[bits] as char
        })
        .collect()
}

impl SalesforceId {
    /// Checks `id` (15 or 18 alphanumeric characters) and returns its 18-character form.
    /// An 18-character id whose suffix does not match its first 15 characters is refused:
    /// it was mistyped or had its case changed.
    pub fn parse(id: &str) -> Result<Self> {
        let id = id.trim();
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Validation,
                format!("{id:?} is not a Salesforce id: {why}"),
            )
            .with_crm(Crm::Salesforce)
        };
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("only letters and digits are allowed"));
        }
        match id.len() {
            15 => Ok(Self::new(format!("{id}{}", checksum(id)))),
            18 => {
                let (base, suffix) = id.split_at(15);
                if !suffix.eq_ignore_ascii_case(&checksum(base)) {
                    return Err(bad("the last three characters do not match the id"));
                }
                Ok(Self::new(format!("{base}{}", suffix.to_ascii_uppercase())))
            }
            _ => Err(bad("it must have 15 or 18 characters")),
        }
    }

    /// The case-sensitive 15-character form.
    pub fn to_15(&self) -> &str {
        self.as_str().get(..15).unwrap_or(self.as_str())
    }

    /// The 18-character form (the id itself when it was parsed).
    pub fn to_18(&self) -> String {
        match self.as_str().len() {
            15 => format!("{}{}", self.as_str(), checksum(self.as_str())),
            _ => self.as_str().to_string(),
        }
    }

    /// The three-character key prefix naming the object type (`001` Account, `003` Contact).
    pub fn key_prefix(&self) -> &str {
        self.as_str().get(..3).unwrap_or_default()
    }
}

/// Whether `a` and `b` name the same record, whichever of the two forms each is in.
pub fn same_record(a: &str, b: &str) -> bool {
    match (SalesforceId::parse(a), SalesforceId::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The 18-character form of `id` if it is a valid id, else `id` unchanged (ids read from the
/// API are already 18 characters; this only normalises what users type).
pub fn normalize(id: &str) -> String {
    SalesforceId::parse(id).map_or_else(|_| id.to_string(), SalesforceId::into_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_to_eighteen_and_back() {
        let id = SalesforceId::parse("001D000000IqhSL").expect("valid");
        assert_eq!(id.as_str(), "001D000000IqhSLIAZ");
        assert_eq!(id.to_15(), "001D000000IqhSL");
        assert_eq!(id.key_prefix(), "001");
        assert_eq!(
            SalesforceId::parse("001D000000IqhSLiaz").expect("case-insensitive suffix"),
            id
        );
        assert!(same_record("001D000000IqhSL", "001D000000IqhSLIAZ"));
        // Case matters in the first 15: this is another record.
        assert!(!same_record("001d000000IqhSL", "001D000000IqhSL"));
        assert_eq!(checksum("000000000000000"), "AAA");
        assert_eq!(checksum("AAAAAAAAAAAAAAA"), "555");
    }

    proptest::proptest! {
        #[test]
        fn any_fifteen_character_id_round_trips(id in "[a-zA-Z0-9]{15}") {
            let long = SalesforceId::parse(&id).expect("valid");
            proptest::prop_assert_eq!(long.as_str().len(), 18);
            proptest::prop_assert_eq!(long.to_15(), id.as_str());
            // The suffix survives any change of case, the first 15 characters do not.
            let shouted = format!("{}{}", &long.as_str()[..15], long.as_str()[15..].to_ascii_lowercase());
            proptest::prop_assert_eq!(SalesforceId::parse(&shouted).expect("valid"), long.clone());
            proptest::prop_assert_eq!(SalesforceId::parse(long.as_str()).expect("valid"), long);
        }
    }

    #[test]
    fn wrong_ids_are_refused() {
        for bad in [
            "",
            "001",
            "001D000000IqhSLIAA",
            "001D000000Iqh L",
            "001D000000IqhSL/x",
        ] {
            let e = SalesforceId::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Validation);
        }
        assert_eq!(normalize("not-an-id"), "not-an-id");
    }
}
