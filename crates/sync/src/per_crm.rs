//! [`PerCrm`]: at most one value per CRM, held inline.
//!
//! The planner keeps several such maps per record (ids, hashes, sides, writes); as a
//! `BTreeMap<Crm, T>` each would allocate a node sized for eleven entries for the two or
//! three it ever holds. This one is an array of three slots: no allocation, and it
//! iterates, compares, prints and serialises as the `BTreeMap` would (in CRM order).

use std::fmt;

use crmkit_core::Crm;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// At most one `T` per CRM, in CRM order.
#[derive(Clone, PartialEq, Eq)]
pub struct PerCrm<T>([Option<T>; 3]);

/// The slot of `crm`, in the order of [`Crm`]'s `Ord`.
fn slot(crm: Crm) -> usize {
    match crm {
        Crm::Close => 0,
        Crm::HubSpot => 1,
        Crm::Salesforce => 2,
    }
}

/// The CRM of slot `i`.
fn crm_of(i: usize) -> Crm {
    [Crm::Close, Crm::HubSpot, Crm::Salesforce][i]
}

impl<T> Default for PerCrm<T> {
    fn default() -> Self {
        Self([None, None, None])
    }
}

impl<T> PerCrm<T> {
    /// Nothing for any CRM.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `crm`'s value, returning the one it replaces.
    pub fn insert(&mut self, crm: Crm, value: T) -> Option<T> {
        self.0[slot(crm)].replace(value)
    }

    /// `crm`'s value.
    pub fn get(&self, crm: &Crm) -> Option<&T> {
        self.0[slot(*crm)].as_ref()
    }

    /// `crm`'s value, to change.
    pub fn get_mut(&mut self, crm: &Crm) -> Option<&mut T> {
        self.0[slot(*crm)].as_mut()
    }

    /// `crm`'s value, set with `make` first when there is none.
    pub fn get_or_insert_with(&mut self, crm: Crm, make: impl FnOnce() -> T) -> &mut T {
        self.0[slot(crm)].get_or_insert_with(make)
    }

    /// Whether `crm` has a value.
    pub fn contains_key(&self, crm: &Crm) -> bool {
        self.0[slot(*crm)].is_some()
    }

    /// Takes `crm`'s value out.
    pub fn remove(&mut self, crm: &Crm) -> Option<T> {
        self.0[slot(*crm)].take()
    }

    /// The values, in CRM order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }

    /// The CRMs that have a value, in order.
    pub fn keys(&self) -> impl Iterator<Item = Crm> + '_ {
        self.iter().map(|(c, _)| c)
    }

    /// Each CRM with its value, in CRM order.
    pub fn iter(&self) -> impl Iterator<Item = (Crm, &T)> {
        self.into_iter()
    }

    /// Each CRM with its value to change, in CRM order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Crm, &mut T)> {
        self.0
            .iter_mut()
            .enumerate()
            .filter_map(|(i, v)| v.as_mut().map(|v| (crm_of(i), v)))
    }

    /// Whether no CRM has a value.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The number of CRMs with a value.
    pub fn len(&self) -> usize {
        self.0.iter().flatten().count()
    }
}

impl<T> std::ops::Index<&Crm> for PerCrm<T> {
    type Output = T;

    /// `crm`'s value; panics when it has none, as a map's index does.
    fn index(&self, crm: &Crm) -> &T {
        self.get(crm)
            .unwrap_or_else(|| panic!("no value for {crm} in this record"))
    }
}

impl<T> IntoIterator for PerCrm<T> {
    type Item = (Crm, T);
    type IntoIter = std::iter::FilterMap<
        std::iter::Enumerate<std::array::IntoIter<Option<T>, 3>>,
        fn((usize, Option<T>)) -> Option<(Crm, T)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (crm_of(i), v)))
    }
}

impl<'a, T> IntoIterator for &'a PerCrm<T> {
    type Item = (Crm, &'a T);
    type IntoIter = std::iter::FilterMap<
        std::iter::Enumerate<std::slice::Iter<'a, Option<T>>>,
        fn((usize, &'a Option<T>)) -> Option<(Crm, &'a T)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (crm_of(i), v)))
    }
}

impl<T> FromIterator<(Crm, T)> for PerCrm<T> {
    fn from_iter<I: IntoIterator<Item = (Crm, T)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (c, v) in iter {
            out.insert(c, v);
        }
        out
    }
}

impl<T> Extend<(Crm, T)> for PerCrm<T> {
    fn extend<I: IntoIterator<Item = (Crm, T)>>(&mut self, iter: I) {
        for (c, v) in iter {
            self.insert(c, v);
        }
    }
}

impl<T, const N: usize> From<[(Crm, T); N]> for PerCrm<T> {
    fn from(values: [(Crm, T); N]) -> Self {
        values.into_iter().collect()
    }
}

impl<T: fmt::Debug> fmt::Debug for PerCrm<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T: Serialize> Serialize for PerCrm<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (c, v) in self.iter() {
            m.serialize_entry(&c, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_as_a_map_of_crm_in_crm_order() {
        let mut m: PerCrm<&str> = [(Crm::Salesforce, "s"), (Crm::Close, "c")].into();
        assert_eq!(m.len(), 2);
        assert_eq!(m.keys().collect::<Vec<_>>(), [Crm::Close, Crm::Salesforce]);
        assert_eq!(m.insert(Crm::Close, "c2"), Some("c"));
        assert_eq!(m[&Crm::Close], "c2");
        assert!(!m.contains_key(&Crm::HubSpot));
        *m.get_or_insert_with(Crm::HubSpot, || "h") = "h2";
        let as_map: BTreeMap<Crm, &str> = m.clone().into_iter().collect();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&as_map).unwrap()
        );
        assert_eq!(format!("{m:?}"), format!("{as_map:?}"));
        assert_eq!(m.remove(&Crm::HubSpot), Some("h2"));
        assert_eq!(m.remove(&Crm::HubSpot), None);
        assert!(!m.is_empty());
        assert!(PerCrm::<u8>::new().is_empty());
    }
}
