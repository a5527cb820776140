//! Table storage with the indexes that lists and searches need: rows by id, insertion order,
//! `(date_created, id)` and `(date_updated, id)` orderings, and children by parent id.
//!
//! Every emulator keeps its records as JSON objects in these tables, so a page of a list or
//! a search touches the rows it returns (plus an ordered-index walk), never the whole table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use serde_json::Value;

use crate::shared::time::micros;

/// A position in a time index: microseconds since the epoch, then the id as a tie-breaker.
pub type TimeKey = (i64, String);

/// Which time index to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// `date_created`.
    Created,
    /// `date_updated`.
    Updated,
}

impl TimeField {
    /// The JSON field the index is built from.
    pub fn field(self) -> &'static str {
        match self {
            TimeField::Created => "date_created",
            TimeField::Updated => "date_updated",
        }
    }
}

#[derive(Debug)]
struct Row {
    seq: u64,
    value: Value,
}

/// One collection: JSON objects with an `"id"` field, indexed.
#[derive(Debug)]
pub struct Table {
    parent_field: Option<&'static str>,
    next_seq: u64,
    rows: HashMap<String, Row>,
    by_seq: BTreeMap<u64, String>,
    created: BTreeSet<TimeKey>,
    updated: BTreeSet<TimeKey>,
    children: HashMap<String, BTreeMap<u64, String>>,
}

impl Table {
    /// An empty table; `parent_field` (e.g. `lead_id`) gets a children index when given.
    pub fn new(parent_field: Option<&'static str>) -> Self {
        Self {
            parent_field,
            next_seq: 0,
            rows: HashMap::new(),
            by_seq: BTreeMap::new(),
            created: BTreeSet::new(),
            updated: BTreeSet::new(),
            children: HashMap::new(),
        }
    }

    fn time_key(value: &Value, field: &str, id: &str) -> TimeKey {
        (
            value[field].as_str().and_then(micros).unwrap_or(i64::MIN),
            id.to_string(),
        )
    }

    fn parent_of(&self, value: &Value) -> Option<String> {
        self.parent_field
            .and_then(|f| value[f].as_str())
            .map(str::to_string)
    }

    fn index(&mut self, id: &str, seq: u64, value: &Value) {
        self.created
            .insert(Self::time_key(value, "date_created", id));
        self.updated
            .insert(Self::time_key(value, "date_updated", id));
        if let Some(p) = self.parent_of(value) {
            self.children
                .entry(p)
                .or_default()
                .insert(seq, id.to_string());
        }
    }

    fn unindex(&mut self, id: &str, seq: u64, value: &Value) {
        self.created
            .remove(&Self::time_key(value, "date_created", id));
        self.updated
            .remove(&Self::time_key(value, "date_updated", id));
        if let Some(p) = self.parent_of(value)
            && let Some(kids) = self.children.get_mut(&p)
        {
            kids.remove(&seq);
            if kids.is_empty() {
                self.children.remove(&p);
            }
        }
    }

    /// The row with `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.rows.get(id).map(|r| &r.value)
    }

    /// Adds (or replaces) a row keyed by its `"id"`.
    pub fn insert(&mut self, value: Value) {
        let id = value["id"].as_str().unwrap_or_default().to_string();
        self.remove(&id);
        self.next_seq += 1;
        let seq = self.next_seq;
        self.index(&id, seq, &value);
        self.by_seq.insert(seq, id.clone());
        self.rows.insert(id, Row { seq, value });
    }

    /// Changes a row in place, keeping every index right; returns the changed row.
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut Value)) -> Option<&Value> {
        let mut row = self.rows.remove(id)?;
        self.unindex(id, row.seq, &row.value);
        change(&mut row.value);
        self.index(id, row.seq, &row.value);
        self.rows.insert(id.to_string(), row);
        self.get(id)
    }

    /// Removes the row with `id`.
    pub fn remove(&mut self, id: &str) -> Option<Value> {
        let row = self.rows.remove(id)?;
        self.unindex(id, row.seq, &row.value);
        self.by_seq.remove(&row.seq);
        Some(row.value)
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The insertion sequence number of `id` (a stable position for cursors).
    pub fn seq(&self, id: &str) -> Option<u64> {
        self.rows.get(id).map(|r| r.seq)
    }

    /// Rows in insertion order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Value> + '_ {
        self.by_seq.values().filter_map(|id| self.get(id))
    }

    /// Rows inserted after sequence number `seq`, in insertion order, with their numbers.
    pub fn after_seq(&self, seq: u64) -> impl Iterator<Item = (u64, &Value)> + '_ {
        self.by_seq
            .range((Bound::Excluded(seq), Bound::Unbounded))
            .filter_map(|(s, id)| self.get(id).map(|v| (*s, v)))
    }

    /// Rows whose parent field equals `parent`, in insertion order.
    pub fn children(&self, parent: &str) -> impl Iterator<Item = &Value> + '_ {
        self.children
            .get(parent)
            .into_iter()
            .flat_map(|kids| kids.values())
            .filter_map(|id| self.get(id))
    }

    /// Rows ordered by a time index within `(lower, upper)`, ascending or descending.
    pub fn by_time<'a>(
        &'a self,
        field: TimeField,
        lower: Bound<TimeKey>,
        upper: Bound<TimeKey>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = (&'a TimeKey, &'a Value)> + 'a> {
        let set = match field {
            TimeField::Created => &self.created,
            TimeField::Updated => &self.updated,
        };
        // BTreeSet::range panics on an inverted range or on equal bounds both excluded.
        let empty = match (&lower, &upper) {
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
                l > u
                    || (l == u
                        && !matches!((&lower, &upper), (Bound::Included(_), Bound::Included(_))))
            }
            _ => false,
        };
        if empty {
            return Box::new(std::iter::empty());
        }
        let range = set.range((lower, upper));
        let lookup = move |k: &'a TimeKey| self.get(&k.1).map(|v| (k, v));
        if descending {
            Box::new(range.rev().filter_map(lookup))
        } else {
            Box::new(range.filter_map(lookup))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(id: &str, lead: &str, created: &str) -> Value {
        json!({"id": id, "lead_id": lead, "date_created": created, "date_updated": created})
    }

    #[test]
    fn indexes_follow_updates_and_removals() {
        let mut t = Table::new(Some("lead_id"));
        t.insert(row("a", "l1", "2026-01-02T00:00:00+00:00"));
        t.insert(row("b", "l1", "2026-01-01T00:00:00+00:00"));
        t.insert(row("c", "l2", "2026-01-03T00:00:00+00:00"));
        let ids = |it: Vec<&Value>| -> Vec<String> {
            it.iter()
                .map(|v| v["id"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(ids(t.children("l1").collect()), ["a", "b"]);
        let by_created = |t: &Table| {
            ids(t
                .by_time(
                    TimeField::Created,
                    Bound::Unbounded,
                    Bound::Unbounded,
                    false,
                )
                .map(|(_, v)| v)
                .collect())
        };
        assert_eq!(by_created(&t), ["b", "a", "c"]);
        t.update("b", |v| {
            v["lead_id"] = json!("l2");
            v["date_created"] = json!("2026-01-04T00:00:00+00:00");
        });
        assert_eq!(ids(t.children("l1").collect()), ["a"]);
        assert_eq!(ids(t.children("l2").collect()), ["b", "c"]);
        assert_eq!(by_created(&t), ["a", "c", "b"]);
        let k = (0, "x".to_string());
        let none = t.by_time(
            TimeField::Updated,
            Bound::Excluded(k.clone()),
            Bound::Excluded(k),
            false,
        );
        assert_eq!(none.count(), 0);
        t.remove("a");
        assert_eq!(t.children("l1").count(), 0);
        assert_eq!(by_created(&t), ["c", "b"]);
        assert_eq!(ids(t.iter().collect()), ["b", "c"]);
    }
}
