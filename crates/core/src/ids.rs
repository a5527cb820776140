//! Typed ids: one newtype per kind of record, so a lead id cannot be passed where an
//! opportunity id is expected.
//!
//! [`id_type!`](crate::id_type) declares such a type. It is a transparent wrapper around a
//! `String`: it serializes as the bare string, displays and parses as it, and borrows as
//! `&str`. CRM crates declare their own (`id_type!(LeadId, "A Close lead id (lead_…).")`).

/// Declares a typed id: `id_type!(LeadId, "A Close lead id.")`.
///
/// The type gets `Debug`, `Display`, `FromStr` (never fails), `AsRef<str>`, `Borrow<str>`,
/// `From<String>`, `From<&str>`, transparent serde, ordering and hashing, plus `new` and
/// `as_str`.
#[macro_export]
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $doc:literal) => {
        #[doc = $doc]
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $crate::__serde::Serialize for $name {
            fn serialize<S: $crate::__serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                <String as $crate::__serde::Deserialize>::deserialize(deserializer).map(Self)
            }
        }

        impl $name {
            /// Wraps an id as the CRM spells it.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as the CRM spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Ok(Self(s.to_string()))
            }
        }

        impl ::std::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::std::convert::From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl ::std::convert::From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::id_type!(LeadId, "A test lead id.");
    crate::id_type!(DealId, "A test deal id.");

    #[test]
    fn ids_are_transparent_strings_of_distinct_types() {
        let id: LeadId = "lead_abc".parse().unwrap_or_else(|e| match e {});
        assert_eq!(id.to_string(), "lead_abc");
        assert_eq!(id.as_ref(), "lead_abc");
        assert_eq!(format!("{id:?}"), "LeadId(\"lead_abc\")");
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"lead_abc\"")
        );
        let back: LeadId = serde_json::from_str("\"lead_xyz\"").expect("a string id decodes");
        assert_eq!(back, LeadId::new("lead_xyz"));
        assert!(serde_json::from_str::<DealId>("42").is_err());
        let mut set = std::collections::HashSet::new();
        set.insert(id.clone());
        assert!(set.contains("lead_abc"));
        assert_eq!(String::from(id), "lead_abc");
    }
}
