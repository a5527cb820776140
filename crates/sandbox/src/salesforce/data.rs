//! The org's records: one shared-layer [`Table`] per object (rows by id, insertion order,
//! `CreatedDate` and `SystemModstamp` orderings), an equality index over reference,
//! lookup and external id fields, field validation on every write, the derived fields
//! Salesforce maintains, an undo journal for all-or-none requests, and the change list
//! outbound messages are made from.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::ids;
use super::schema::{self, Access, FType, Field, Object};
use crate::shared::store::{Table, TimeField};
use crate::shared::time::parse_time;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Deleted.
    Deleted,
}

/// One change, for outbound messages.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The object.
    pub object: &'static str,
    /// What happened.
    pub kind: ChangeKind,
    /// The record after the change.
    pub record: Value,
}

type Undo = (&'static str, String, Option<Value>);

/// The org's data.
pub(crate) struct Data {
    tables: HashMap<&'static str, Table>,
    index: HashMap<(&'static str, &'static str), HashMap<String, BTreeSet<String>>>,
    next: u64,
    journal: Vec<Undo>,
    marks: Vec<(usize, usize)>,
    last_micros: i64,
    /// How far the org's clock runs ahead of the machine's (tests of long quiet spells).
    pub clock_offset: chrono::Duration,
    /// Deletions up to this time were purged from the deletion log (the Recycle Bin
    /// emptied), so getDeleted no longer answers for them.
    pub purged_through: Option<DateTime<Utc>>,
    /// Changes not yet handed to outbound messaging.
    pub events: Vec<Change>,
    /// The user the API acts as (`OwnerId`, `CreatedById` defaults).
    pub user_id: String,
    /// The organisation id.
    pub org_id: String,
}

/// A timestamp in Salesforce's wire form, `2024-01-31T12:00:00.000+0000`.
pub(crate) fn sf_time(t: DateTime<Utc>) -> String {
    // The RFC 3339 writer is much cheaper than a strftime pattern, and seeding calls this
    // for every record.
    let mut text = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    text.pop();
    text.push_str("+0000");
    text
}

/// Parses a datetime as the API accepts it (ISO 8601 with `Z`, `+00:00` or `+0000`).
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    // `+0000` is how the API writes every timestamp; read it on the RFC 3339 fast path.
    if let Some(head) = s.strip_suffix("+0000")
        && let Ok(t) = DateTime::parse_from_rfc3339(&format!("{head}Z"))
    {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if s.contains('T') {
        return parse_time(s);
    }
    None
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The key a value is indexed and compared under (ids as 18 characters, text lower-cased
/// unless the field is case-sensitive).
pub(crate) fn index_key(field: &Field, v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if matches!(field.ftype, FType::Id | FType::Reference) => {
            Some(ids::to18(s).unwrap_or_else(|| s.clone()))
        }
        other if field.case_sensitive => Some(as_text(other)),
        other => Some(as_text(other).to_lowercase()),
    }
}

impl Data {
    /// An empty org; ids are numbered from `first_id`.
    pub(crate) fn new(first_id: u64) -> Self {
        let mut data = Self {
            tables: schema::objects()
                .iter()
                .map(|o| (o.name, Table::new(None)))
                .collect(),
            index: HashMap::new(),
            next: first_id,
            journal: Vec::new(),
            marks: Vec::new(),
            last_micros: 0,
            clock_offset: chrono::Duration::zero(),
            purged_through: None,
            events: Vec::new(),
            user_id: ids::make("005", first_id),
            org_id: ids::make("00D", first_id),
        };
        data.next += 1;
        let now = data.now();
        let user = json!({
            "Id": data.user_id, "Username": "admin@sandbox.example", "FirstName": "Sandbox",
            "LastName": "Admin", "Name": "Sandbox Admin", "Email": "admin@sandbox.example",
            "Alias": "sadmin", "IsActive": true,
        });
        if let (Some(o), Value::Object(m)) = (schema::object("User"), user) {
            let row = data.complete(o, m, &now, &now);
            data.put(o, row);
        }
        data
    }

    /// The current time in whole seconds, never before an earlier answer and never after
    /// the clock. Salesforce's audit fields come in whole seconds (`.000`), so writes in the
    /// same second share their `SystemModstamp` and only `(SystemModstamp, Id)` orders them;
    /// and they are never later than the server's clock, which the `Date` header and
    /// getDeleted's `latestDateCovered` read
    /// (<https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm>).
    pub(crate) fn now(&mut self) -> DateTime<Utc> {
        let micros = self.clock().timestamp() * 1_000_000;
        let micros = micros.max(self.last_micros);
        self.last_micros = micros;
        DateTime::from_timestamp_micros(micros).unwrap_or_else(Utc::now)
    }

    /// The org's clock: the machine's, moved by [`Data::clock_offset`].
    pub(crate) fn clock(&self) -> DateTime<Utc> {
        Utc::now()
            .checked_add_signed(self.clock_offset)
            .unwrap_or_else(Utc::now)
    }

    /// The table of `object`.
    pub(crate) fn table(&self, object: &str) -> Option<&Table> {
        self.tables.get(object)
    }

    /// The record `id` of `object`, deleted or not.
    pub(crate) fn get(&self, object: &str, id: &str) -> Option<&Value> {
        let id = ids::to18(id)?;
        self.tables.get(object)?.get(&id)
    }

    /// The live record `id` of any object.
    pub(crate) fn get_any(&self, id: &str) -> Option<(&'static Object, &Value)> {
        let o = schema::object_of_id(id)?;
        let row = self.get(o.name, id)?;
        (row["IsDeleted"] != json!(true)).then_some((o, row))
    }

    /// Ids of records of `object` whose indexed `field` equals `value` (deleted ones too).
    pub(crate) fn lookup(
        &self,
        object: &'static Object,
        field: &Field,
        value: &Value,
    ) -> Vec<String> {
        let Some(key) = index_key(field, value) else {
            return Vec::new();
        };
        self.index
            .get(&(object.name, field.name))
            .and_then(|m| m.get(&key))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn reindex(&mut self, o: &'static Object, id: &str, old: Option<&Value>, new: Option<&Value>) {
        for f in o.fields.iter().filter(|f| f.indexed) {
            let before = old.and_then(|r| index_key(f, &r[f.name]));
            let after = new.and_then(|r| index_key(f, &r[f.name]));
            if before == after {
                continue;
            }
            let m = self.index.entry((o.name, f.name)).or_default();
            if let Some(k) = before
                && let Some(set) = m.get_mut(&k)
            {
                set.remove(id);
                if set.is_empty() {
                    m.remove(&k);
                }
            }
            if let Some(k) = after {
                m.entry(k).or_default().insert(id.to_string());
            }
        }
    }

    /// Stores `row` (it carries `Id`), keeping indexes and the journal right.
    fn put(&mut self, o: &'static Object, mut row: Value) {
        let id = row["Id"].as_str().unwrap_or_default().to_string();
        row["id"] = json!(id);
        for (key, field) in [
            ("date_created", "CreatedDate"),
            ("date_updated", "SystemModstamp"),
        ] {
            let t = row[field]
                .as_str()
                .and_then(parse_datetime)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            row[key] = json!(t);
        }
        let Some(table) = self.tables.get_mut(o.name) else {
            return;
        };
        let old = table.remove(&id);
        if !self.marks.is_empty() {
            self.journal.push((o.name, id.clone(), old.clone()));
        }
        self.reindex(o, &id, old.as_ref(), Some(&row));
        if let Some(t) = self.tables.get_mut(o.name) {
            t.insert(row);
        }
    }

    /// Starts recording changes so that [`Data::rollback`] can undo them; calls nest (a
    /// collection inside a composite request rolls back on its own or with its parent).
    pub(crate) fn begin(&mut self) {
        self.marks.push((self.journal.len(), self.events.len()));
    }

    /// Keeps the changes since the matching [`Data::begin`] (an enclosing one may still
    /// undo them).
    pub(crate) fn commit(&mut self) {
        self.marks.pop();
        if self.marks.is_empty() {
            self.journal.clear();
        }
    }

    /// Undoes every change since the matching [`Data::begin`].
    pub(crate) fn rollback(&mut self) {
        let Some((undo_len, events)) = self.marks.pop() else {
            return;
        };
        self.events.truncate(events);
        let undo = self.journal.split_off(undo_len);
        if self.marks.is_empty() {
            self.journal.clear();
        }
        for (object, id, old) in undo.into_iter().rev() {
            let Some(o) = schema::object(object) else {
                continue;
            };
            let current = self.tables.get_mut(object).and_then(|t| t.remove(&id));
            self.reindex(o, &id, current.as_ref(), old.as_ref());
            if let (Some(old), Some(t)) = (old, self.tables.get_mut(object)) {
                t.insert(old);
            }
        }
    }

    /// A full row from the given fields: every field present (null when unset), the
    /// system fields and Salesforce's defaults and derived values filled in.
    fn complete(
        &self,
        o: &'static Object,
        given: Map<String, Value>,
        created: &DateTime<Utc>,
        modified: &DateTime<Utc>,
    ) -> Value {
        let mut row = Map::new();
        for f in &o.fields {
            let v = given.get(f.name).cloned().unwrap_or(Value::Null);
            let v = if v.is_null() && f.ftype == FType::Boolean {
                json!(false)
            } else {
                v
            };
            row.insert(f.name.to_string(), v);
        }
        row.insert("IsDeleted".into(), json!(false));
        row.insert("CreatedDate".into(), json!(sf_time(*created)));
        row.insert("LastModifiedDate".into(), json!(sf_time(*modified)));
        row.insert("SystemModstamp".into(), json!(sf_time(*modified)));
        for f in ["CreatedById", "LastModifiedById"] {
            row.insert(f.into(), json!(self.user_id));
        }
        if o.field("OwnerId").is_some() && row["OwnerId"].is_null() {
            row.insert("OwnerId".into(), json!(self.user_id));
        }
        let mut row = Value::Object(row);
        derive(o, &mut row, &given);
        row
    }

    /// Creates a record of `o` from a request body; its id.
    pub(crate) fn create(&mut self, o: &'static Object, body: &Value) -> Result<String, ApiError> {
        if !o.createable {
            return Err(ApiError::bad(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                format!("entity type {} does not support create", o.name),
            ));
        }
        let given = self.validate(o, body, true)?;
        self.check_unique(o, None, &given)?;
        let id = ids::make(o.prefix, self.next);
        self.next += 1;
        let now = self.now();
        let mut row = self.complete(o, given, &now, &now);
        row["Id"] = json!(id);
        check_event(o, &row)?;
        self.put(o, row.clone());
        self.events.push(Change {
            object: o.name,
            kind: ChangeKind::Created,
            record: row.clone(),
        });
        self.primary_contact(o, &row, None)?;
        Ok(id)
    }

    /// Inserts a seeded record as it stands (dates given), without validation or events.
    pub(crate) fn seed(
        &mut self,
        o: &'static Object,
        given: Map<String, Value>,
        created: DateTime<Utc>,
    ) -> String {
        let id = ids::make(o.prefix, self.next);
        self.next += 1;
        let mut row = self.complete(o, given, &created, &created);
        row["Id"] = json!(id);
        self.put(o, row);
        id
    }

    /// The live record `id` of `o`, or the REST answer for a missing or deleted one.
    pub(crate) fn live(&self, o: &'static Object, id: &str) -> Result<&Value, ApiError> {
        let row = ids::to18(id)
            .filter(|id| id.starts_with(o.prefix))
            .and_then(|id| self.tables.get(o.name)?.get(&id))
            .ok_or_else(ApiError::no_row)?;
        if row["IsDeleted"] == json!(true) {
            return Err(ApiError::not_found("entity is deleted").code("ENTITY_IS_DELETED"));
        }
        Ok(row)
    }

    /// Applies a patch to record `id` of `o`.
    pub(crate) fn update(
        &mut self,
        o: &'static Object,
        id: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let old = self.live(o, id)?.clone();
        let given = self.validate(o, body, false)?;
        self.check_unique(o, Some(id), &given)?;
        let now = self.now();
        let mut row = old;
        for (k, v) in &given {
            row[k.as_str()] = v.clone();
        }
        row["LastModifiedDate"] = json!(sf_time(now));
        row["SystemModstamp"] = json!(sf_time(now));
        row["LastModifiedById"] = json!(self.user_id);
        derive(o, &mut row, &given);
        check_event(o, &row)?;
        let before = self.live(o, id)?.clone();
        self.put(o, row.clone());
        self.events.push(Change {
            object: o.name,
            kind: ChangeKind::Updated,
            record: row.clone(),
        });
        self.primary_contact(o, &row, Some(&before))?;
        Ok(())
    }

    /// Keeps an Opportunity's `ContactId` and its primary OpportunityContactRole in step:
    /// an Opportunity created with `ContactId` gets a primary role for that contact; a role
    /// made primary takes the flag from the others and sets the Opportunity's `ContactId`;
    /// the primary role losing the flag clears it (Object Reference, Opportunity
    /// `ContactId` and OpportunityContactRole `IsPrimary`: "Each Opportunity has only one
    /// primary contact",
    /// <https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunitycontactrole.htm>).
    /// UNCONFIRMED by Salesforce: that a role made primary demotes the previous primary
    /// (rather than being refused) is this emulator's reading of "only one", which only a
    /// third-party how-to of the UI states (salesforcedictionary.com/how-to/primary-contact).
    fn primary_contact(
        &mut self,
        o: &'static Object,
        row: &Value,
        before: Option<&Value>,
    ) -> Result<(), ApiError> {
        let Some(roles) = schema::object("OpportunityContactRole") else {
            return Ok(());
        };
        match o.name {
            "Opportunity" if before.is_none() && row["ContactId"].is_string() => {
                let role = json!({
                    "OpportunityId": row["Id"], "ContactId": row["ContactId"], "IsPrimary": true,
                });
                self.create(roles, &role).map(drop)
            }
            "OpportunityContactRole" => {
                let primary = row["IsPrimary"] == json!(true);
                let was = before.is_some_and(|b| b["IsPrimary"] == json!(true));
                if primary {
                    let mine = row["Id"].as_str().unwrap_or_default().to_string();
                    let others = roles
                        .field("OpportunityId")
                        .map(|f| self.lookup(roles, f, &row["OpportunityId"]))
                        .unwrap_or_default();
                    for other in others.into_iter().filter(|id| *id != mine) {
                        if let Ok(r) = self.live(roles, &other)
                            && r["IsPrimary"] == json!(true)
                        {
                            let mut r = r.clone();
                            r["IsPrimary"] = json!(false);
                            r["SystemModstamp"] = json!(sf_time(self.now()));
                            self.put(roles, r);
                        }
                    }
                    self.set_opportunity_contact(&row["OpportunityId"], row["ContactId"].clone());
                } else if was {
                    self.set_opportunity_contact(&row["OpportunityId"], Value::Null);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sets the derived `ContactId` of the live Opportunity `id`; a change moves its
    /// `SystemModstamp`, as a system update does. UNCONFIRMED: no Salesforce page says a
    /// change of the primary OpportunityContactRole moves the Opportunity's
    /// `SystemModstamp`; a real org may not, and then a feed on Opportunity alone misses it.
    fn set_opportunity_contact(&mut self, id: &Value, contact: Value) {
        let (Some(o), Some(id)) = (schema::object("Opportunity"), id.as_str()) else {
            return;
        };
        let Ok(row) = self.live(o, id) else {
            return;
        };
        if row["ContactId"] == contact {
            return;
        }
        let mut row = row.clone();
        row["ContactId"] = contact;
        row["SystemModstamp"] = json!(sf_time(self.now()));
        self.put(o, row);
    }

    /// Refuses a value of a Unique field that another live record holds (compared without
    /// case, as the index keys are), with Salesforce's `DUPLICATE_VALUE`.
    fn check_unique(
        &self,
        o: &'static Object,
        id: Option<&str>,
        given: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        let me = id.and_then(ids::to18);
        for f in o.fields.iter().filter(|f| f.unique) {
            let Some(v) = given.get(f.name).filter(|v| !v.is_null()) else {
                continue;
            };
            let other = self
                .lookup(o, f, v)
                .into_iter()
                .find(|other| Some(other) != me.as_ref() && self.live(o, other).is_ok());
            if let Some(other) = other {
                return Err(ApiError::bad(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other}",
                        f.name
                    ),
                )
                .with_fields([f.name]));
            }
        }
        Ok(())
    }

    /// Moves record `id` of `o` to the recycle bin: it stays visible to `queryAll` with
    /// `IsDeleted = true` and to getDeleted.
    pub(crate) fn delete(&mut self, o: &'static Object, id: &str) -> Result<(), ApiError> {
        if !o.createable {
            return Err(ApiError::bad(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                format!("entity type {} does not support delete", o.name),
            ));
        }
        let mut row = self.live(o, id)?.clone();
        let now = self.now();
        row["IsDeleted"] = json!(true);
        row["SystemModstamp"] = json!(sf_time(now));
        self.put(o, row.clone());
        if o.name == "OpportunityContactRole" && row["IsPrimary"] == json!(true) {
            self.set_opportunity_contact(&row["OpportunityId"], Value::Null);
        }
        self.events.push(Change {
            object: o.name,
            kind: ChangeKind::Deleted,
            record: row,
        });
        Ok(())
    }

    /// Checks a write body against the object's fields; the coerced values to set.
    pub(crate) fn validate(
        &self,
        o: &'static Object,
        body: &Value,
        create: bool,
    ) -> Result<Map<String, Value>, ApiError> {
        let Some(map) = body.as_object() else {
            return Err(ApiError::bad(
                "JSON_PARSER_ERROR",
                "The request body must be a JSON object of field values",
            ));
        };
        let mut out = Map::new();
        let mut read_only = Vec::new();
        for (k, v) in map {
            if k == "attributes" {
                continue;
            }
            let Some(f) = o.field(k) else {
                return Err(ApiError::bad(
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {}", o.name),
                )
                .with_fields([k.as_str()]));
            };
            if f.name == "Id" && !create {
                continue;
            }
            if f.access == Access::ReadOnly || (!create && f.access == Access::CreateOnly) {
                read_only.push(f.name);
                continue;
            }
            out.insert(f.name.to_string(), self.coerce(f, v)?);
        }
        if !read_only.is_empty() {
            // The wording of the REST API's refusal of read-only fields.
            return Err(ApiError::bad(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    read_only.join(", ")
                ),
            )
            .with_fields(read_only));
        }
        let missing: Vec<&str> = o
            .fields
            .iter()
            .filter(|f| f.required && f.access != Access::ReadOnly)
            .filter(|f| {
                let v = out.get(f.name);
                if create {
                    v.is_none_or(Value::is_null) || v.is_some_and(|v| v == "")
                } else {
                    v.is_some_and(|v| v.is_null() || v == "")
                }
            })
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(missing));
        }
        Ok(out)
    }

    fn coerce(&self, f: &Field, v: &Value) -> Result<Value, ApiError> {
        let parse_err = |kind: &str| {
            ApiError::bad(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {kind} from {} value {} or request may be missing a required field",
                    match v {
                        Value::String(_) => "VALUE_STRING",
                        Value::Number(_) => "VALUE_NUMBER",
                        Value::Bool(_) => "VALUE_BOOLEAN",
                        _ => "START_OBJECT",
                    },
                    as_text(v)
                ),
            )
            .with_fields([f.name])
        };
        if v.is_null() {
            return Ok(if f.ftype == FType::Boolean {
                json!(false)
            } else {
                Value::Null
            });
        }
        match f.ftype {
            t if t.textual() => {
                if v.is_object() || v.is_array() {
                    return Err(parse_err("string"));
                }
                let s = as_text(v);
                if s.is_empty() {
                    return Ok(Value::Null);
                }
                if s.chars().count() > f.length {
                    return Err(ApiError::bad(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {} (max length={})",
                            f.label,
                            s.chars().take(40).collect::<String>(),
                            f.length
                        ),
                    )
                    .with_fields([f.name]));
                }
                if t == FType::Email && !valid_email(&s) {
                    return Err(ApiError::bad(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {s}", f.label),
                    )
                    .with_fields([f.name]));
                }
                if f.restricted && !f.picklist.contains(&s.as_str()) {
                    return Err(ApiError::bad(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!("{}: bad value for restricted picklist field: {s}", f.label),
                    )
                    .with_fields([f.name]));
                }
                Ok(json!(s))
            }
            FType::Boolean => match v {
                Value::Bool(b) => Ok(json!(b)),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(json!(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(json!(false)),
                _ => Err(parse_err("boolean")),
            },
            FType::Int => match v {
                Value::Number(n) if n.is_i64() => Ok(v.clone()),
                Value::Number(n) => n
                    .as_f64()
                    .filter(|x| x.fract() == 0.0)
                    .map(|x| json!(x as i64))
                    .ok_or_else(|| parse_err("int")),
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(|n| json!(n))
                    .map_err(|_| parse_err("int")),
                _ => Err(parse_err("int")),
            },
            t if t.numeric() => match v {
                Value::Number(_) => Ok(v.clone()),
                Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                    .ok_or_else(|| parse_err("double")),
                _ => Err(parse_err("double")),
            },
            FType::Date => {
                let s = as_text(v);
                if s.is_empty() {
                    return Ok(Value::Null);
                }
                // A datetime is accepted for a date and keeps its date part.
                let day = s.get(..10).unwrap_or_default();
                NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .ok()
                    .filter(|_| s.len() == 10 || parse_datetime(&s).is_some())
                    .map(|d| json!(d.format("%Y-%m-%d").to_string()))
                    .ok_or_else(|| parse_err("date"))
            }
            FType::DateTime => {
                let s = as_text(v);
                if s.is_empty() {
                    return Ok(Value::Null);
                }
                parse_datetime(&s)
                    .or_else(|| parse_time(&s))
                    .map(|t| json!(sf_time(t)))
                    .ok_or_else(|| parse_err("datetime"))
            }
            FType::Id | FType::Reference => {
                let s = as_text(v);
                if s.is_empty() {
                    return Ok(Value::Null);
                }
                let wrong = || {
                    ApiError::bad(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", f.label),
                    )
                    .with_fields([f.name])
                };
                let id = ids::to18(&s).ok_or_else(wrong)?;
                let target = schema::object_of_id(&id)
                    .filter(|t| f.refs.contains(&t.name))
                    .ok_or_else(wrong)?;
                if self
                    .get(target.name, &id)
                    .is_none_or(|r| r["IsDeleted"] == json!(true))
                {
                    return Err(ApiError::bad(
                        "INVALID_CROSS_REFERENCE_KEY",
                        format!("invalid cross reference id: {s}"),
                    )
                    .with_fields([f.name]));
                }
                Ok(json!(id))
            }
            _ => Ok(v.clone()),
        }
    }

    /// Ids of `object` records whose `SystemModstamp` (or `CreatedDate`) lies in
    /// `[from, to)`, in that order.
    pub(crate) fn by_time(
        &self,
        object: &str,
        field: TimeField,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        descending: bool,
    ) -> Vec<String> {
        use std::ops::Bound;
        let Some(t) = self.tables.get(object) else {
            return Vec::new();
        };
        let lower = from.map_or(Bound::Unbounded, |f| {
            Bound::Included((f.timestamp_micros(), String::new()))
        });
        let upper = to.map_or(Bound::Unbounded, |u| {
            Bound::Excluded((u.timestamp_micros(), String::new()))
        });
        t.by_time(field, lower, upper, descending)
            .map(|(k, _)| k.1.clone())
            .collect()
    }
}

fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The values Salesforce derives: full names, the stage's probability, closed and won
/// flags and forecast category (Opportunity), default statuses (Lead, Task), and an
/// Event's start, end and duration.
fn derive(o: &Object, row: &mut Value, given: &Map<String, Value>) {
    if o.field("Name")
        .is_some_and(|f| f.access == Access::ReadOnly)
    {
        let first = row["FirstName"].as_str().unwrap_or_default().to_string();
        let last = row["LastName"].as_str().unwrap_or_default().to_string();
        row["Name"] = json!(format!("{first} {last}").trim().to_string());
    }
    match o.name {
        "Opportunity" => {
            let stage = row["StageName"].as_str().unwrap_or_default().to_string();
            if let Some(&(_, p, closed, won, forecast)) =
                schema::STAGES.iter().find(|s| s.0 == stage)
            {
                if given.contains_key("StageName") && !given.contains_key("Probability")
                    || row["Probability"].is_null()
                {
                    row["Probability"] = json!(p);
                }
                if given.contains_key("StageName") && !given.contains_key("ForecastCategoryName")
                    || row["ForecastCategoryName"].is_null()
                {
                    row["ForecastCategoryName"] = json!(forecast);
                }
                row["IsClosed"] = json!(closed);
                row["IsWon"] = json!(won);
            }
        }
        "Lead" if row["Status"].is_null() => {
            row["Status"] = json!(schema::LEAD_STATUSES[0]);
        }
        "Task" => {
            if row["Status"].is_null() {
                row["Status"] = json!(schema::TASK_STATUSES[0]);
            }
            if row["Priority"].is_null() {
                row["Priority"] = json!("Normal");
            }
            row["IsClosed"] = json!(row["Status"] == "Completed");
        }
        "Event" => derive_event(row, given),
        _ => {}
    }
}

fn derive_event(row: &mut Value, given: &Map<String, Value>) {
    if row["IsAllDayEvent"] == json!(true) {
        if row["DurationInMinutes"].is_null() {
            row["DurationInMinutes"] = json!(1440);
        }
        return;
    }
    let start = row["ActivityDateTime"]
        .as_str()
        .or_else(|| row["StartDateTime"].as_str())
        .and_then(parse_datetime);
    let Some(start) = start else {
        return;
    };
    row["ActivityDateTime"] = json!(sf_time(start));
    row["StartDateTime"] = json!(sf_time(start));
    row["ActivityDate"] = json!(start.format("%Y-%m-%d").to_string());
    let end_given = given.contains_key("EndDateTime") && !given.contains_key("DurationInMinutes");
    match (
        row["EndDateTime"].as_str().and_then(parse_datetime),
        row["DurationInMinutes"].as_i64(),
    ) {
        (Some(end), _) if end_given || row["DurationInMinutes"].is_null() => {
            row["DurationInMinutes"] = json!((end - start).num_minutes());
        }
        (_, Some(minutes)) => {
            row["EndDateTime"] = json!(sf_time(start + chrono::Duration::minutes(minutes)));
        }
        _ => {}
    }
}

/// An Event needs `ActivityDateTime` with `DurationInMinutes` or `EndDateTime`, or, when
/// all-day, `ActivityDate` (Object Reference: Event, `EndDateTime` and `IsAllDayEvent`).
fn check_event(o: &Object, row: &Value) -> Result<(), ApiError> {
    if o.name != "Event" {
        return Ok(());
    }
    let missing: Vec<&str> = if row["IsAllDayEvent"] == json!(true) {
        if row["ActivityDate"].is_null() {
            vec!["ActivityDate"]
        } else {
            vec![]
        }
    } else if row["ActivityDateTime"].is_null() {
        vec!["ActivityDateTime"]
    } else if row["DurationInMinutes"].is_null() && row["EndDateTime"].is_null() {
        vec!["DurationInMinutes"]
    } else {
        vec![]
    };
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
        )
        .with_fields(missing))
    }
}
