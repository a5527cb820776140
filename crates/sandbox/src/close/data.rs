//! The emulator's records: JSON objects in insertion order, one table per collection.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use fastrand::Rng;
use serde_json::{Map, Value, json};

use crate::names;

/// Rows of one collection, kept in insertion order.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: BTreeMap<u64, Value>,
    index: HashMap<String, u64>,
}

impl Table {
    pub(crate) fn get(&self, id: &str) -> Option<&Value> {
        self.index.get(id).and_then(|s| self.rows.get(s))
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        let seq = *self.index.get(id)?;
        self.rows.get_mut(&seq)
    }

    pub(crate) fn insert(&mut self, seq: u64, row: Value) {
        let id = row["id"].as_str().unwrap_or_default().to_string();
        self.index.insert(id, seq);
        self.rows.insert(seq, row);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Value> {
        let seq = self.index.remove(id)?;
        self.rows.remove(&seq)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Value> {
        self.rows.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

/// Everything the Close emulator holds.
#[derive(Debug)]
pub(crate) struct Data {
    pub rng: Rng,
    seq: u64,
    pub tables: HashMap<&'static str, Table>,
    pub org_id: String,
    pub user_id: String,
    pub events: VecDeque<Value>,
}

/// How many events the log keeps (Close keeps 30 days; a bound keeps long runs small).
pub(crate) const EVENT_LOG_CAP: usize = 100_000;

impl Data {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng::with_seed(seed);
        let org_id = names::close_id(&mut rng, "orga");
        let user_id = names::close_id(&mut rng, "user");
        Self {
            rng,
            seq: 0,
            tables: HashMap::new(),
            org_id,
            user_id,
            events: VecDeque::new(),
        }
    }

    pub(crate) fn new_id(&mut self, prefix: &str) -> String {
        names::close_id(&mut self.rng, prefix)
    }

    pub(crate) fn table(&self, name: &'static str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub(crate) fn table_mut(&mut self, name: &'static str) -> &mut Table {
        self.tables.entry(name).or_default()
    }

    pub(crate) fn get(&self, table: &'static str, id: &str) -> Option<&Value> {
        self.table(table).and_then(|t| t.get(id))
    }

    pub(crate) fn rows(&self, table: &'static str) -> impl Iterator<Item = &Value> {
        self.table(table).into_iter().flat_map(|t| t.iter())
    }

    pub(crate) fn insert(&mut self, table: &'static str, row: Value) {
        self.seq += 1;
        let seq = self.seq;
        self.table_mut(table).insert(seq, row);
    }

    /// Appends an event to the log, newest last, and returns it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_event(
        &mut self,
        object_type: &str,
        action: &str,
        object_id: &str,
        lead_id: Option<&str>,
        data: Value,
        previous: Map<String, Value>,
        changed: Vec<String>,
        method: &str,
        path: &str,
    ) -> Value {
        let now = stamp(Utc::now());
        let event = json!({
            "id": self.new_id("ev"),
            "object_type": object_type,
            "action": action,
            "object_id": object_id,
            "lead_id": lead_id,
            "organization_id": self.org_id,
            "user_id": self.user_id,
            "api_key_id": null,
            "request_id": self.new_id("req"),
            "date_created": now,
            "date_updated": now,
            "meta": {"request_method": method, "request_path": path},
            "changed_fields": changed,
            "previous_data": previous,
            "data": data,
        });
        self.events.push_back(event.clone());
        if self.events.len() > EVENT_LOG_CAP {
            self.events.pop_front();
        }
        event
    }
}

/// Close's timestamp format: microseconds and `+00:00`.
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Parses the timestamps and dates Close accepts in filters.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
