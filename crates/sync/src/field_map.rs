//! [`FieldMap`]: a record's synced fields, unified name → canonical value.
//!
//! A record has a handful of synced fields, read for every record of a run and compared,
//! hashed and copied while planning. As a `BTreeMap` each map took a node sized for eleven
//! entries and walked it on every lookup; this is one sorted list, allocated once at the
//! size it needs, searched by bisection. It iterates, compares, prints and serialises
//! exactly as the `BTreeMap<Field, Value>` it replaces (in field order), so hashes and
//! stored values are unchanged.

use std::borrow::Borrow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::values::{Field, name_cmp};

/// Unified field name → value, in field order: [`FieldMap`] for values read, [`Writes`]
/// for values to set (`None` clears).
#[derive(Clone, PartialEq)]
pub struct FieldList<V>(Vec<(Field, V)>);

/// Unified field name → canonical non-empty value, in field order.
pub type FieldMap = FieldList<Value>;

/// Unified field name → the value to set (`None`: clear it), in field order.
pub type Writes = FieldList<Option<Value>>;

impl<V> Default for FieldList<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> FieldList<V> {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// No fields, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(f, _)| name_cmp(f.as_str(), key))
    }

    /// The value of `key`.
    pub fn get<K: Borrow<str> + ?Sized>(&self, key: &K) -> Option<&V> {
        self.find(key.borrow()).ok().map(|i| &self.0[i].1)
    }

    /// The value of `key`, to change.
    pub fn get_mut<K: Borrow<str> + ?Sized>(&mut self, key: &K) -> Option<&mut V> {
        self.find(key.borrow()).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key<K: Borrow<str> + ?Sized>(&self, key: &K) -> bool {
        self.find(key.borrow()).is_ok()
    }

    /// Sets `field`, returning the value it replaces.
    ///
    /// Inlined: fields set in name order (as a record's are read) are each appended, and a
    /// value built by the caller and handed to a call was copied from where it had just
    /// been written, stalling the processor (a store it could not forward) for every field
    /// of every record read.
    #[inline(always)]
    pub fn insert(&mut self, field: Field, value: V) -> Option<V> {
        if self.0.last().is_none_or(|(last, _)| *last < field) {
            self.0.push((field, value));
            return None;
        }
        self.insert_among(field, value)
    }

    /// [`FieldList::insert`] of a field that does not come last.
    fn insert_among(&mut self, field: Field, value: V) -> Option<V> {
        match self.find(field.as_str()) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (field, value));
                None
            }
        }
    }

    /// Takes `key`'s value out.
    pub fn remove<K: Borrow<str> + ?Sized>(&mut self, key: &K) -> Option<V> {
        self.find(key.borrow()).ok().map(|i| self.0.remove(i).1)
    }

    /// Keeps the fields `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Field, &mut V) -> bool) {
        self.0.retain_mut(|(f, v)| keep(f, v));
    }

    /// Each field with its value, in field order.
    pub fn iter(&self) -> Iter<'_, V> {
        self.0.iter().map(|(f, v)| (f, v))
    }

    /// Each field with its value to change, in field order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Field, &mut V)> {
        self.0.iter_mut().map(|(f, v)| (&*f, v))
    }

    /// The fields, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Field> {
        self.0.iter().map(|(f, _)| f)
    }

    /// The values, in field order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no field.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The iterator of [`FieldList::iter`].
pub type Iter<'a, V> =
    std::iter::Map<std::slice::Iter<'a, (Field, V)>, fn(&'a (Field, V)) -> (&'a Field, &'a V)>;

impl<K: Borrow<str> + ?Sized, V> std::ops::Index<&K> for FieldList<V> {
    type Output = V;

    /// `key`'s value; panics when it has none, as a map's index does.
    fn index(&self, key: &K) -> &V {
        let key = key.borrow();
        self.get(key)
            .unwrap_or_else(|| panic!("no value for field {key}"))
    }
}

impl<'a, V> IntoIterator for &'a FieldList<V> {
    type Item = (&'a Field, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> IntoIterator for FieldList<V> {
    type Item = (Field, V);
    type IntoIter = std::vec::IntoIter<(Field, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<V> FromIterator<(Field, V)> for FieldList<V> {
    /// Later values of a field replace earlier ones, as inserting them one by one would.
    fn from_iter<I: IntoIterator<Item = (Field, V)>>(iter: I) -> Self {
        let mut v: Vec<(Field, V)> = iter.into_iter().collect();
        // Stable, so of equal fields the last one given stays last and wins below.
        v.sort_by_key(|a| a.0);
        let mut out: Vec<(Field, V)> = Vec::with_capacity(v.len());
        for (f, x) in v {
            match out.last_mut() {
                Some(last) if last.0 == f => last.1 = x,
                _ => out.push((f, x)),
            }
        }
        Self(out)
    }
}

impl<V> Extend<(Field, V)> for FieldList<V> {
    fn extend<I: IntoIterator<Item = (Field, V)>>(&mut self, iter: I) {
        for (f, v) in iter {
            self.insert(f, v);
        }
    }
}

impl<V, const N: usize> From<[(Field, V); N]> for FieldList<V> {
    fn from(fields: [(Field, V); N]) -> Self {
        fields.into_iter().collect()
    }
}

impl<V: fmt::Debug> fmt::Debug for FieldList<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for FieldList<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (f, v) in self.iter() {
            m.serialize_entry(f, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for FieldList<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Fields<V> {
            type Value = FieldList<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of field values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<FieldList<V>, A::Error> {
                // The input's claimed size is capped, as serde's own maps do.
                let mut out = FieldList::with_capacity(a.size_hint().unwrap_or(0).min(64));
                while let Some((f, v)) = a.next_entry::<Field, V>()? {
                    out.insert(f, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn behaves_as_the_btreemap_it_replaces() {
        let pairs = [
            ("name", json!("Acme")),
            ("amount", json!(3)),
            ("zeta", json!([1])),
            ("name", json!("Acme 2")),
        ];
        let m: FieldMap = pairs
            .iter()
            .map(|(k, v)| (Field::intern(k), v.clone()))
            .collect();
        let b: BTreeMap<Field, Value> = pairs
            .iter()
            .map(|(k, v)| (Field::intern(k), v.clone()))
            .collect();
        assert_eq!(m.len(), b.len());
        assert!(m.iter().eq(b.iter()));
        assert_eq!(m["name"], json!("Acme 2"));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
        let back: FieldMap = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);

        let mut m = m;
        assert_eq!(m.insert(Field::new("beta"), json!(1)), None);
        assert_eq!(m.insert(Field::new("beta"), json!(2)), Some(json!(1)));
        assert_eq!(
            m.keys().map(|f| f.as_str()).collect::<Vec<_>>(),
            ["amount", "beta", "name", "zeta"]
        );
        assert_eq!(m.remove("amount"), Some(json!(3)));
        assert!(!m.contains_key("amount") && m.get("amount").is_none());
        m.retain(|f, _| f.as_str() != "zeta");
        assert_eq!(m.len(), 2);
        assert!(FieldMap::new().is_empty());
    }
}
