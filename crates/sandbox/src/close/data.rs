//! The emulator's records: JSON objects in insertion order, one table per collection.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use fastrand::Rng;
use serde_json::{Map, Value, json};

use crate::names;
pub(crate) use crate::shared::store::Table;
pub(crate) use crate::shared::time::parse_time;

/// The field that ties a row of `table` to its parent, indexed for nested reads.
fn parent_field(table: &str) -> Option<&'static str> {
    match table {
        "contact" | "opportunity" | "task" | "activity" => Some("lead_id"),
        "status_opportunity" => Some("pipeline_id"),
        "custom_field" => Some("object_type"),
        _ => None,
    }
}

/// Everything the Close emulator holds.
#[derive(Debug)]
pub(crate) struct Data {
    pub rng: Rng,
    pub tables: HashMap<&'static str, Table>,
    pub org_id: String,
    pub user_id: String,
    /// The event log, oldest first; each event with its sequence number (the cursor).
    pub events: VecDeque<(u64, Value)>,
    event_seq: u64,
    /// While seeding, changes record no events (the log starts empty anyway).
    pub seeding: bool,
    /// The `request_id` of the request being served: every event one request causes
    /// shares it, which is what the event log's `request_id` filter finds
    /// (developer.close.com/resources/event-log).
    request_id: String,
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
            event_seq: 0,
            seeding: false,
            request_id: String::new(),
            tables: HashMap::new(),
            org_id,
            user_id,
            events: VecDeque::new(),
        }
    }

    /// Starts serving a new write request: its events get a fresh `request_id`.
    pub(crate) fn begin_request(&mut self) {
        self.request_id = self.new_id("req");
    }

    pub(crate) fn new_id(&mut self, prefix: &str) -> String {
        names::close_id(&mut self.rng, prefix)
    }

    pub(crate) fn table(&self, name: &'static str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub(crate) fn table_mut(&mut self, name: &'static str) -> &mut Table {
        self.tables
            .entry(name)
            .or_insert_with(|| Table::new(parent_field(name)))
    }

    /// Changes a row in place through the table, so its indexes follow.
    pub(crate) fn update_row(
        &mut self,
        table: &'static str,
        id: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        self.table_mut(table).update(id, change).cloned()
    }

    pub(crate) fn get(&self, table: &'static str, id: &str) -> Option<&Value> {
        self.table(table).and_then(|t| t.get(id))
    }

    pub(crate) fn rows(&self, table: &'static str) -> impl Iterator<Item = &Value> {
        self.table(table).into_iter().flat_map(|t| t.iter())
    }

    /// Rows of `table` under `parent` (through the children index).
    pub(crate) fn children<'a>(
        &'a self,
        table: &'static str,
        parent: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.table(table)
            .into_iter()
            .flat_map(move |t| t.children(parent))
    }

    pub(crate) fn insert(&mut self, table: &'static str, row: Value) {
        self.table_mut(table).insert(row);
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
            "request_id": self.request_id,
            "date_created": now,
            "date_updated": now,
            "meta": {"request_method": method, "request_path": path},
            "changed_fields": changed,
            "previous_data": previous,
            "data": data,
        });
        self.event_seq += 1;
        self.events.push_back((self.event_seq, event.clone()));
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

/// `t` in microseconds rounded up, for an exclusive upper bound on a time index (whose keys
/// are rounded down): a row kept by `time < t` has a key below it, including a row stored at
/// the microsecond `t` falls inside.
pub(crate) fn micros_up(t: DateTime<Utc>) -> i64 {
    let partial = t.timestamp_subsec_nanos() % 1000 != 0;
    t.timestamp_micros().saturating_add(i64::from(partial))
}
