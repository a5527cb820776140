//! The records: one indexed table per object type, the contact email index, associations,
//! and the writes that keep `hs_object_id`, the creation and modification properties and
//! each property's history right.
//!
//! A row is `{"id", "date_created", "date_updated", "archived", "properties", "history"}`;
//! the two dates feed the shared time indexes.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::kinds::{ObjectType, PropKind, TYPES};
use crate::shared::store::Table;

/// One association from a record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Assoc {
    /// The plural name of the other record's type.
    pub to_type: &'static str,
    /// The other record's id.
    pub to_id: String,
    /// The association type id (e.g. 279 contact → company).
    pub type_id: u32,
}

/// Every record of one running emulator.
#[derive(Debug)]
pub(crate) struct Data {
    tables: HashMap<&'static str, Table>,
    /// Lower-cased email → id of the live contact holding it.
    emails: HashMap<String, String>,
    assoc: HashMap<(&'static str, String), Vec<Assoc>>,
    /// Webhook events of the writes not yet handed to the deliverer.
    outbox: Vec<Value>,
    /// Custom property definitions per type (`/crm/v3/properties`).
    custom: HashMap<&'static str, Vec<Value>>,
    /// Ids merged away → the record they were merged into, per type.
    aliases: HashMap<(&'static str, String), String>,
    next_id: u64,
    last_micros: i64,
}

/// A timestamp as HubSpot writes them, millisecond precision (`2019-10-30T03:30:17.883Z`).
pub(crate) fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Turns one written value into HubSpot's string form; objects and arrays are refused.
fn as_text(name: &str, v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::invalid(format!(
            "Property values were not valid: {name} must be a string"
        ))),
    }
}

/// Adds what HubSpot computes from written values: a deal's `hs_deal_stage_probability`
/// follows its stage's probability ("defaults to the deal stage probability",
/// knowledge.hubspot.com/crm-deals/hubspots-default-deal-properties).
fn derive(t: &ObjectType, props: &mut Vec<(String, String)>) {
    if t.plural != "deals" {
        return;
    }
    let Some(stage) = props
        .iter()
        .find(|(k, _)| k == "dealstage")
        .map(|(_, v)| v.clone())
    else {
        return;
    };
    let probability = super::pipelines::STAGES
        .iter()
        .find(|(id, _, _)| *id == stage)
        .map(|(_, _, p)| (*p).to_string())
        .unwrap_or_default();
    props.retain(|(k, _)| k != "hs_deal_stage_probability");
    props.push(("hs_deal_stage_probability".to_string(), probability));
}

impl Data {
    /// Empty tables; ids start at `first_id`.
    pub(crate) fn new(first_id: u64) -> Self {
        Self {
            tables: TYPES.iter().map(|t| (t.plural, Table::new(None))).collect(),
            emails: HashMap::new(),
            assoc: HashMap::new(),
            custom: HashMap::new(),
            aliases: HashMap::new(),
            outbox: Vec::new(),
            next_id: first_id,
            last_micros: 0,
        }
    }

    /// Takes the webhook events written since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.outbox)
    }

    fn event(&mut self, t: &ObjectType, kind: &str, id: &str, change: Option<(&str, &str)>) {
        let mut e = json!({"subscriptionType": format!("{}.{kind}", t.singular),
                           "objectId": id.parse::<u64>().unwrap_or_default(),
                           "occurredAt": chrono::Utc::now().timestamp_millis(),
                           "changeSource": "API"});
        if let Some((name, value)) = change {
            e["propertyName"] = json!(name);
            e["propertyValue"] = json!(value);
        }
        self.outbox.push(e);
    }

    /// The table of a type.
    pub(crate) fn table(&self, t: &ObjectType) -> Option<&Table> {
        self.tables.get(t.plural)
    }

    /// "Now", never earlier than an earlier write. It is never later than the wall clock
    /// either: a record's `updatedAt` is when it was written (crm-objects-contacts-v3.json,
    /// `SimplePublicObject`), so writes within one millisecond share it, as on HubSpot,
    /// where a batch's records carry one timestamp.
    fn now(&mut self) -> chrono::DateTime<chrono::Utc> {
        let now = chrono::Utc::now().timestamp_micros();
        let micros = now.max(self.last_micros);
        self.last_micros = micros;
        chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default()
    }

    /// How a property of `t` compares, or `None` when it does not exist (built-in or custom).
    pub(crate) fn kind(&self, t: &ObjectType, name: &str) -> Option<PropKind> {
        t.kind(name).or_else(|| {
            self.custom
                .get(t.plural)
                .and_then(|defs| defs.iter().find(|d| d["name"] == name))
                .map(|d| match d["type"].as_str() {
                    Some("number") => PropKind::Number,
                    Some("date" | "datetime") => PropKind::Date,
                    Some("enumeration" | "bool") => PropKind::Enum,
                    _ => PropKind::Text,
                })
        })
    }

    /// Custom property definitions of a type, in creation order.
    pub(crate) fn custom(&self, t: &ObjectType) -> &[Value] {
        self.custom.get(t.plural).map_or(&[], Vec::as_slice)
    }

    /// Adds a custom property definition.
    pub(crate) fn add_custom(&mut self, t: &ObjectType, def: Value) {
        self.custom.entry(t.plural).or_default().push(def);
    }

    /// Checks written properties: each must exist on the type and not be maintained by HubSpot.
    pub(crate) fn validate(
        &self,
        t: &ObjectType,
        props: &Value,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let Some(map) = props.as_object() else {
            if props.is_null() {
                return Ok(vec![]);
            }
            return Err(ApiError::invalid(
                "Invalid input JSON: properties must be an object",
            ));
        };
        let unknown: Vec<&String> = map.keys().filter(|k| self.kind(t, k).is_none()).collect();
        if !unknown.is_empty() {
            // Message shape and PROPERTY_DOESNT_EXIST code: HubSpot CRM objects API error responses.
            let details: Vec<Value> = unknown
                .iter()
                .map(|k| {
                    json!({"isValid": false, "message": format!("Property \"{k}\" does not exist"),
                               "error": "PROPERTY_DOESNT_EXIST", "name": k})
                })
                .collect();
            return Err(ApiError::invalid(format!(
                "Property values were not valid: {}",
                Value::Array(details)
            ))
            .with_context(json!({"propertyName": unknown})));
        }
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            if t.read_only(k) {
                // Read-only properties are refused on write (crm-objects-*-v3.json PATCH:
                // "Read-only and non-existent properties will result in an error").
                return Err(ApiError::invalid(format!(
                    "Property values were not valid: \"{k}\" is a read only property; its value cannot be set."
                )));
            }
            out.push((k.clone(), as_text(k, v)?));
        }
        if t.plural == "contacts"
            && let Some((_, email)) = out.iter().find(|(k, _)| k == "email")
            && !email.is_empty()
            && !email.contains('@')
        {
            return Err(ApiError::invalid(format!(
                "Property values were not valid: Email address {email} is invalid"
            )));
        }
        Ok(out)
    }

    /// The live contact holding `email`.
    pub(crate) fn contact_by_email(&self, email: &str) -> Option<&str> {
        self.emails.get(&email.to_lowercase()).map(String::as_str)
    }

    fn email_conflict(
        &self,
        props: &[(String, String)],
        own: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some((_, email)) = props.iter().find(|(k, _)| k == "email") else {
            return Ok(());
        };
        match self.contact_by_email(email) {
            Some(existing) if Some(existing) != own && !email.is_empty() => Err(ApiError {
                status: 409,
                category: "CONFLICT",
                // "Contact already exists. Existing ID: N" (HubSpot CRM contacts API, 409 on a duplicate email).
                message: format!("Contact already exists. Existing ID: {existing}"),
                context: Value::Null,
            }),
            _ => Ok(()),
        }
    }

    /// Whether `name` holds unique values on `t`, so it can be an `idProperty`: the record
    /// id, contacts' `email`, and custom properties created with `hasUniqueValue: true`
    /// (developers.hubspot.com/changelog/updating-objects-by-custom-field-and-adding-owner-properties-via-the-api).
    pub(crate) fn is_unique(&self, t: &ObjectType, name: &str) -> bool {
        name == "hs_object_id"
            || (t.plural == "contacts" && name == "email")
            || self
                .custom(t)
                .iter()
                .any(|d| d["name"] == name && d["hasUniqueValue"] == json!(true))
    }

    /// The record holding `value` in the custom unique property `name`: a live one first,
    /// else an archived one.
    fn holder(&self, t: &ObjectType, name: &str, value: &str) -> Option<String> {
        let tb = self.table(t)?;
        let mut archived = None;
        for (_, row) in tb.after_seq(0) {
            if row["properties"][name].as_str() != Some(value) {
                continue;
            }
            let id = row["id"].as_str().unwrap_or_default().to_string();
            if row["archived"] == json!(false) {
                return Some(id);
            }
            archived.get_or_insert(id);
        }
        archived
    }

    /// Refuses a write that would give a custom unique property a value another live
    /// record holds: such properties are HubSpot's "Unique ID properties"
    /// (developers.hubspot.com/changelog/updating-objects-by-custom-field-and-adding-owner-properties-via-the-api).
    /// No public document shows the duplicate's answer; the sandbox answers it as HubSpot
    /// answers a duplicate email, 409 `CONFLICT` naming the existing id, in its own words.
    fn unique_conflict(
        &self,
        t: &ObjectType,
        props: &[(String, String)],
        own: Option<&str>,
    ) -> Result<(), ApiError> {
        for (k, v) in props {
            if v.is_empty() || k == "email" || !self.is_unique(t, k) {
                continue;
            }
            if let Some(existing) = self.holder(t, k, v).filter(|e| Some(e.as_str()) != own)
                && self
                    .table(t)
                    .and_then(|tb| tb.get(&existing))
                    .is_some_and(|r| r["archived"] == json!(false))
            {
                return Err(ApiError {
                    status: 409,
                    category: "CONFLICT",
                    message: format!(
                        "A {} with {k} \"{v}\" already exists. Existing ID: {existing}",
                        t.singular
                    ),
                    context: json!({"propertyName": [k]}),
                });
            }
        }
        Ok(())
    }

    /// Resolves `id` (or the value of a unique `id_property`) to a record id, live or
    /// archived; a merged-away id resolves to the record it was merged into.
    pub(crate) fn resolve(
        &self,
        t: &ObjectType,
        id: &str,
        id_property: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        match id_property {
            None | Some("hs_object_id") => Ok(self
                .table(t)
                .and_then(|tb| tb.get(id))
                .map(|_| id.to_string())
                .or_else(|| self.aliases.get(&(t.plural, id.to_string())).cloned())),
            Some("email") if t.plural == "contacts" => {
                Ok(self.contact_by_email(id).map(str::to_string))
            }
            Some(p) if self.is_unique(t, p) => Ok(self.holder(t, p, id)),
            Some(p) => Err(ApiError::invalid(format!(
                "{p} is not a unique property of {}: idProperty must name a property with hasUniqueValue",
                t.plural
            ))),
        }
    }

    /// Creates a record; returns its row.
    pub(crate) fn create(
        &mut self,
        t: &ObjectType,
        props: Vec<(String, String)>,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Value, ApiError> {
        let mut props = props;
        derive(t, &mut props);
        if t.plural == "contacts" {
            self.email_conflict(&props, None)?;
        }
        self.unique_conflict(t, &props, None)?;
        let when = match at {
            Some(at) => at,
            None => self.now(),
        };
        let stamp = iso(when);
        self.next_id += 1;
        let id = self.next_id.to_string();
        let mut properties = Map::new();
        let mut history = Map::new();
        let mut set = |k: &str, v: String, history: &mut Map<String, Value>| {
            history.insert(
                k.to_string(),
                json!([{"value": v, "timestamp": stamp, "sourceType": "API"}]),
            );
            properties.insert(k.to_string(), Value::String(v));
        };
        for (k, v) in props {
            if !v.is_empty() {
                set(&k, v, &mut history);
            }
        }
        for k in t.maintained() {
            let v = if k == "hs_object_id" {
                id.clone()
            } else {
                stamp.clone()
            };
            set(k, v, &mut history);
        }
        if let Some(Value::String(email)) = properties.get("email") {
            self.emails.insert(email.to_lowercase(), id.clone());
        }
        let row = json!({"id": id, "date_created": stamp, "date_updated": stamp, "archived": false,
                         "properties": properties, "history": history});
        if let Some(tb) = self.tables.get_mut(t.plural) {
            tb.insert(row.clone());
        }
        self.event(t, "creation", &id, None);
        Ok(row)
    }

    /// Applies a patch to a live record: only the properties given change; an empty string
    /// clears one (B2). Returns the changed row.
    pub(crate) fn update(
        &mut self,
        t: &ObjectType,
        id: &str,
        props: Vec<(String, String)>,
    ) -> Result<Value, ApiError> {
        let live = self
            .table(t)
            .and_then(|tb| tb.get(id))
            .is_some_and(|r| r["archived"] == json!(false));
        if !live {
            return Err(ApiError::not_found(format!("resource not found: {id}")));
        }
        let mut props = props;
        derive(t, &mut props);
        if t.plural == "contacts" {
            self.email_conflict(&props, Some(id))?;
        }
        self.unique_conflict(t, &props, Some(id))?;
        let stamp = iso(self.now());
        let old_email = self.row_prop(t, id, "email");
        let modified = t.modified;
        for (k, v) in &props {
            self.event(t, "propertyChange", id, Some((k, v)));
        }
        let row = self
            .tables
            .get_mut(t.plural)
            .and_then(|tb| {
                tb.update(id, |row| {
                    row["date_updated"] = json!(stamp);
                    let mut changes = props;
                    changes.push((modified.to_string(), stamp.clone()));
                    for (k, v) in changes {
                        let entry = json!({"value": v, "timestamp": stamp, "sourceType": "API"});
                        if let Some(h) = row["history"].as_object_mut() {
                            match h.get_mut(&k).and_then(Value::as_array_mut) {
                                Some(list) => list.insert(0, entry),
                                None => {
                                    h.insert(k.clone(), json!([entry]));
                                }
                            }
                        }
                        if let Some(p) = row["properties"].as_object_mut() {
                            if v.is_empty() {
                                p.remove(&k);
                            } else {
                                p.insert(k, Value::String(v));
                            }
                        }
                    }
                })
            })
            .cloned()
            .unwrap_or(Value::Null);
        if t.plural == "contacts" {
            let new_email = row["properties"]["email"].as_str().map(str::to_lowercase);
            if old_email.as_deref().map(str::to_lowercase) != new_email {
                if let Some(old) = old_email {
                    self.emails.remove(&old.to_lowercase());
                }
                if let Some(new) = new_email {
                    self.emails.insert(new, id.to_string());
                }
            }
        }
        Ok(row)
    }

    fn row_prop(&self, t: &ObjectType, id: &str, name: &str) -> Option<String> {
        self.table(t)?.get(id)?["properties"][name]
            .as_str()
            .map(str::to_string)
    }

    /// Archives a live record (its email becomes free again); false when there is none.
    pub(crate) fn archive(&mut self, t: &ObjectType, id: &str) -> bool {
        let live = self
            .table(t)
            .and_then(|tb| tb.get(id))
            .is_some_and(|r| r["archived"] == json!(false));
        if !live {
            return false;
        }
        if let Some(email) = self.row_prop(t, id, "email") {
            self.emails.remove(&email.to_lowercase());
        }
        let stamp = iso(self.now());
        if let Some(tb) = self.tables.get_mut(t.plural) {
            tb.update(id, |row| {
                row["archived"] = json!(true);
                row["archivedAt"] = json!(stamp);
            });
        }
        self.event(t, "deletion", id, None);
        true
    }

    /// Restores an archived record, as a user does from the recycle bin within 90 days of
    /// deletion (knowledge.hubspot.com/records/restore-deleted-records; HubSpot documents no
    /// public API for it): it is live again with its id, properties and associations, its
    /// modified time moves to now, and a `{type}.restore` webhook event goes out ("Restore:
    /// When an object is restored (opposite of delete)", no extra payload properties,
    /// https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks). A
    /// contact whose email another live contact took meanwhile cannot come back (409, as
    /// creating it would be). Returns the restored row.
    pub(crate) fn restore(&mut self, t: &ObjectType, id: &str) -> Result<Value, ApiError> {
        let archived = self
            .table(t)
            .and_then(|tb| tb.get(id))
            .is_some_and(|r| r["archived"] == json!(true));
        if !archived {
            return Err(ApiError::not_found(format!(
                "No archived {} with id {id}",
                t.singular
            )));
        }
        let email = self.row_prop(t, id, "email").filter(|e| !e.is_empty());
        if t.plural == "contacts"
            && let Some(email) = &email
        {
            self.email_conflict(&[("email".to_string(), email.clone())], Some(id))?;
        }
        let stamp = iso(self.now());
        let modified = t.modified;
        let row = self
            .tables
            .get_mut(t.plural)
            .and_then(|tb| {
                tb.update(id, |row| {
                    row["archived"] = json!(false);
                    if let Some(o) = row.as_object_mut() {
                        o.remove("archivedAt");
                    }
                    row["date_updated"] = json!(stamp);
                    row["properties"][modified] = json!(stamp);
                })
            })
            .cloned()
            .unwrap_or(Value::Null);
        if t.plural == "contacts"
            && let Some(email) = email
        {
            self.emails.insert(email.to_lowercase(), id.to_string());
        }
        self.event(t, "restore", id, None);
        Ok(row)
    }

    /// Deletes a record for good (GDPR delete): no archived copy stays behind.
    pub(crate) fn purge(&mut self, t: &ObjectType, id: &str) -> bool {
        if let Some(email) = self.row_prop(t, id, "email")
            && self.contact_by_email(&email) == Some(id)
        {
            self.emails.remove(&email.to_lowercase());
        }
        let gone = self
            .tables
            .get_mut(t.plural)
            .and_then(|tb| tb.remove(id))
            .is_some();
        if let Some(links) = self.assoc.remove(&(t.plural, id.to_string())) {
            for a in links {
                if let Some(back) = self.assoc.get_mut(&(a.to_type, a.to_id.clone())) {
                    back.retain(|b| !(b.to_type == t.plural && b.to_id == id));
                }
            }
        }
        if gone {
            self.event(t, "privacyDeletion", id, None);
        }
        gone
    }

    /// Moves every association of `from_id` onto `to_id` (both directions), for merges.
    pub(crate) fn move_associations(&mut self, t: &ObjectType, from_id: &str, to_id: &str) {
        let links = self
            .assoc
            .remove(&(t.plural, from_id.to_string()))
            .unwrap_or_default();
        for a in links {
            if let Some(back) = self.assoc.get_mut(&(a.to_type, a.to_id.clone())) {
                for b in back
                    .iter_mut()
                    .filter(|b| b.to_type == t.plural && b.to_id == from_id)
                {
                    b.to_id = to_id.to_string();
                }
                back.dedup();
            }
            let own = self.assoc.entry((t.plural, to_id.to_string())).or_default();
            if !own.contains(&a) {
                own.push(a);
            }
        }
    }

    /// Takes `from_id` out of the table once merged into `into_id`: HubSpot lists it nowhere
    /// (not even as archived) and answers its id with the merged record ("both of the
    /// previous IDs will point to the resulting merged record",
    /// developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies).
    pub(crate) fn merge_away(&mut self, t: &ObjectType, from_id: &str, into_id: &str) {
        if let Some(email) = self.row_prop(t, from_id, "email")
            && self.contact_by_email(&email) == Some(from_id)
        {
            self.emails.remove(&email.to_lowercase());
        }
        if let Some(tb) = self.tables.get_mut(t.plural) {
            tb.remove(from_id);
        }
        for target in self.aliases.values_mut().filter(|v| *v == from_id) {
            *target = into_id.to_string();
        }
        self.aliases
            .insert((t.plural, from_id.to_string()), into_id.to_string());
    }

    /// Queues a merge event (`{type}.merge`; HubSpot webhooks guide).
    pub(crate) fn merge_event(&mut self, t: &ObjectType, primary: &str, merged: &str) {
        let num = |s: &str| s.parse::<u64>().unwrap_or_default();
        self.outbox
            .push(json!({"subscriptionType": format!("{}.merge", t.singular),
                                "objectId": num(primary), "primaryObjectId": num(primary),
                                "mergedObjectIds": [num(merged)], "newObjectId": num(primary),
                                "occurredAt": chrono::Utc::now().timestamp_millis(),
                                "changeSource": "API"}));
    }

    /// The stored properties of a live record.
    pub(crate) fn live_properties(&self, t: &ObjectType, id: &str) -> Option<Map<String, Value>> {
        let row = self.table(t)?.get(id)?;
        if row["archived"] != json!(false) {
            return None;
        }
        row["properties"].as_object().cloned()
    }

    /// Records an association from one record to another (one direction).
    pub(crate) fn associate(&mut self, from: &ObjectType, from_id: &str, a: Assoc) {
        let list = self
            .assoc
            .entry((from.plural, from_id.to_string()))
            .or_default();
        if !list.contains(&a) {
            list.push(a);
        }
    }

    /// Removes every association from one record to another (one direction).
    pub(crate) fn unlink(
        &mut self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
        to_id: &str,
    ) {
        if let Some(list) = self.assoc.get_mut(&(from.plural, from_id.to_string())) {
            list.retain(|a| !(a.to_type == to.plural && a.to_id == to_id));
        }
    }

    /// Removes one association type from one record to another (one direction), leaving
    /// the pair's other types (labels) in place.
    pub(crate) fn unlink_type(
        &mut self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
        to_id: &str,
        type_id: u32,
    ) {
        if let Some(list) = self.assoc.get_mut(&(from.plural, from_id.to_string())) {
            list.retain(|a| !(a.to_type == to.plural && a.to_id == to_id && a.type_id == type_id));
        }
    }

    /// The associations of a record towards one type.
    pub(crate) fn associations(
        &self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
    ) -> Vec<&Assoc> {
        self.assoc
            .get(&(from.plural, from_id.to_string()))
            .into_iter()
            .flatten()
            .filter(|a| a.to_type == to.plural)
            .collect()
    }
}
