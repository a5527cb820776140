//! sObject REST resources: create, read, patch, delete, upsert by external id, describe
//! (cached per client), and the replication calls getUpdated and getDeleted.
//!
//! Records travel as JSON maps of field name to value ([`Fields`]); [`crate::typed`] has
//! typed structs for the standard objects that turn into such maps with only the fields
//! that are set. Updates are `PATCH` requests carrying only the fields given; a field is
//! cleared only by sending it as `null` explicitly.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{Crm, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Client, encode_segment, path_segment};
use crate::ids::SalesforceId;

/// A record's fields by API name, as sent and received.
pub type Fields = Map<String, Value>;

/// The org's limits by name (`DailyApiRequests`, `DailyBulkV2QueryJobs`, …).
pub type Limits = std::collections::BTreeMap<String, Limit>;

/// One entry of `GET limits/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limit {
    /// The allowance.
    #[serde(default)]
    pub max: i64,
    /// What is left of it.
    #[serde(default)]
    pub remaining: i64,
}

/// The answer to a create (`{"id","success","errors"}`), or one entry of a collection answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SaveResult {
    /// The record's id, when it was written.
    #[serde(default)]
    pub id: Option<String>,
    /// Whether it was written.
    #[serde(default)]
    pub success: bool,
    /// Why not.
    #[serde(default)]
    pub errors: Vec<Value>,
    /// For upserts: whether the record was created (`false` when an existing one was updated).
    #[serde(default)]
    pub created: Option<bool>,
}

/// What an upsert by external id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// The record's id (absent when an old API version answered 204 without a body).
    pub id: Option<SalesforceId>,
    /// Whether a new record was inserted.
    pub created: bool,
}

/// One field of a describe.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    /// API name.
    pub name: String,
    /// Label.
    #[serde(default)]
    pub label: String,
    /// Field type (`string`, `picklist`, `reference`, `datetime`, …).
    #[serde(rename = "type", default)]
    pub field_type: String,
    /// Whether it may be empty.
    #[serde(default)]
    pub nillable: bool,
    /// Whether it may be set on create.
    #[serde(default)]
    pub createable: bool,
    /// Whether it may be changed.
    #[serde(default)]
    pub updateable: bool,
    /// Whether Salesforce fills it when a create leaves it out.
    #[serde(default)]
    pub defaulted_on_create: bool,
    /// Whether it is an external id.
    #[serde(default)]
    pub external_id: bool,
    /// Whether it is Unique.
    #[serde(default)]
    pub unique: bool,
    /// Whether a Unique field's values are compared with case. SOQL compares every other
    /// text field without case; upserts match without case only Unique fields that are
    /// not case-sensitive.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Picklist values, for picklists.
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
    /// Object types a reference points to.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// The relationship name of a reference (`Account` for `AccountId`).
    #[serde(default)]
    pub relationship_name: Option<String>,
    /// Maximum length of text fields.
    #[serde(default)]
    pub length: u32,
}

impl FieldDescribe {
    /// Whether a create must set it: createable, not nillable and not defaulted.
    pub fn required_on_create(&self) -> bool {
        self.createable && !self.nillable && !self.defaulted_on_create
    }
}

/// One picklist value.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    /// The API value.
    pub value: String,
    /// The label.
    #[serde(default)]
    pub label: Option<String>,
    /// Whether it can be chosen.
    #[serde(default)]
    pub active: bool,
    /// Whether it is the default.
    #[serde(default)]
    pub default_value: bool,
}

/// `GET sobjects/{Type}/describe/`, the parts a client uses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Describe {
    /// API name.
    pub name: String,
    /// Label.
    #[serde(default)]
    pub label: String,
    /// The id prefix of its records.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Whether it is a custom object.
    #[serde(default)]
    pub custom: bool,
    /// Fields.
    #[serde(default)]
    pub fields: Vec<FieldDescribe>,
    /// Child relationships (for parent-child subqueries).
    #[serde(default)]
    pub child_relationships: Vec<Value>,
}

impl Describe {
    /// The field named `name` (case-insensitive, as in SOQL).
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Fields a create must set.
    pub fn required_fields(&self) -> Vec<&FieldDescribe> {
        self.fields
            .iter()
            .filter(|f| f.required_on_create())
            .collect()
    }

    /// The active values of picklist `name`.
    pub fn picklist(&self, name: &str) -> Vec<&str> {
        self.field(name)
            .map(|f| {
                f.picklist_values
                    .iter()
                    .filter(|v| v.active)
                    .map(|v| v.value.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fields marked as external ids.
    pub fn external_id_fields(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|f| f.external_id)
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// `GET sobjects/{Type}/updated/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Updated {
    /// Ids changed in the range.
    #[serde(default)]
    pub ids: Vec<String>,
    /// The end of the range the answer covers.
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

/// One entry of `GET sobjects/{Type}/deleted/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    /// The deleted record's id.
    pub id: String,
    /// When it was deleted.
    pub deleted_date: String,
}

/// `GET sobjects/{Type}/deleted/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Records deleted in the range.
    #[serde(default)]
    pub deleted_records: Vec<DeletedRecord>,
    /// The earliest date the org still knows deletions from.
    #[serde(default)]
    pub earliest_date_available: Option<String>,
    /// The end of the range the answer covers.
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

/// A replication date as getUpdated/getDeleted take it (whole seconds, UTC).
pub fn replication_date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Turns the `errors` of a save result into one error naming `record`.
pub(crate) fn save_error(errors: &[Value], record: &str) -> Error {
    let mut e = crate::dialect::error_from_entries(400, &Value::Array(errors.to_vec()));
    if errors.is_empty() {
        e = Error::new(
            ErrorKind::BadResponse,
            "Salesforce reported a failure without errors",
        );
    }
    e.with_crm(Crm::Salesforce).with_record(record.to_string())
}

/// The records of one sObject type.
#[derive(Debug, Clone)]
pub struct SObjects {
    client: Client,
    name: String,
}

impl SObjects {
    pub(crate) fn new(client: Client, name: String) -> Self {
        Self { client, name }
    }

    /// The sObject's API name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn base(&self) -> Result<String> {
        Ok(format!(
            "sobjects/{}",
            path_segment("sObject name", &self.name)?
        ))
    }

    fn record_path(&self, id: &str) -> Result<String> {
        Ok(format!(
            "{}/{}",
            self.base()?,
            path_segment("record id", id)?
        ))
    }

    /// `GET sobjects/{Type}/{id}`, with only `fields` when given.
    pub async fn get(&self, id: &str, fields: &[&str]) -> Result<Fields> {
        let mut req = ApiRequest::get(self.record_path(id)?);
        if !fields.is_empty() {
            req = req.query("fields", fields.join(","));
        }
        self.client.json(&req).await
    }

    /// `GET sobjects/{Type}/{field}/{value}`: the record whose external id `field` is
    /// `value`.
    pub async fn get_by_external_id(&self, field: &str, value: &str) -> Result<Fields> {
        let path = format!(
            "{}/{}/{}",
            self.base()?,
            path_segment("field name", field)?,
            encode_segment(value)
        );
        self.client.json(&ApiRequest::get(path)).await
    }

    /// `POST sobjects/{Type}/`: creates a record and returns its id.
    pub async fn create(&self, fields: &Fields) -> Result<SalesforceId> {
        let req = ApiRequest::post(format!("{}/", self.base()?), Value::Object(fields.clone()));
        let r: SaveResult = self.client.json(&req).await?;
        match (r.success, r.id) {
            (true, Some(id)) => Ok(SalesforceId::new(id)),
            _ => Err(save_error(&r.errors, &format!("new {}", self.name))),
        }
    }

    /// `PATCH sobjects/{Type}/{id}`: changes only the fields given (`null` clears one).
    pub async fn update(&self, id: &str, patch: &Fields) -> Result<()> {
        if patch.is_empty() {
            return Ok(());
        }
        let req = ApiRequest::new(Method::PATCH, self.record_path(id)?)
            .json(Value::Object(patch.clone()))
            // The same patch applied twice leaves the same record.
            .repeat_safe();
        self.client.send(&req).await.map(drop)
    }

    /// `DELETE sobjects/{Type}/{id}`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.client
            .send(&ApiRequest::delete(self.record_path(id)?))
            .await
            .map(drop)
    }

    /// `PATCH sobjects/{Type}/{field}/{value}`: inserts or updates the record whose external
    /// id `field` is `value`. Several matches are an [`ErrorKind::Conflict`] error listing
    /// them (HTTP 300); nothing is written then.
    pub async fn upsert(&self, field: &str, value: &str, fields: &Fields) -> Result<Upserted> {
        let mut body = fields.clone();
        // Salesforce refuses a body naming the id or the external id field itself.
        body.retain(|k, _| !k.eq_ignore_ascii_case("Id") && !k.eq_ignore_ascii_case(field));
        let path = format!(
            "{}/{}/{}",
            self.base()?,
            path_segment("field name", field)?,
            encode_segment(value)
        );
        let req = ApiRequest::new(Method::PATCH, path)
            .json(Value::Object(body))
            .repeat_safe();
        let resp = self.client.send(&req).await?;
        if resp.status == 204 || resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Upserted {
                id: None,
                created: resp.status == 201,
            });
        }
        let r: SaveResult = serde_json::from_slice(&resp.body)?;
        if !r.success && !r.errors.is_empty() {
            return Err(save_error(
                &r.errors,
                &format!("{} {field}={value}", self.name),
            ));
        }
        Ok(Upserted {
            id: r.id.map(SalesforceId::new),
            created: r.created.unwrap_or(resp.status == 201),
        })
    }

    /// The describe (fields, picklists, required fields), read once per client.
    pub async fn describe(&self) -> Result<Arc<Describe>> {
        if let Some(d) = self.client.cached_describe(&self.name) {
            return Ok(d);
        }
        let d: Describe = self
            .client
            .json(&ApiRequest::get(format!("{}/describe/", self.base()?)))
            .await?;
        let d = Arc::new(d);
        self.client.store_describe(&self.name, d.clone());
        Ok(d)
    }

    /// `GET sobjects/{Type}/updated/?start=&end=`: ids changed in `[start, end]` (within the
    /// last 30 days; Salesforce truncates to the minute).
    pub async fn updated(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Updated> {
        let req = ApiRequest::get(format!("{}/updated/", self.base()?))
            .query("start", replication_date(start))
            .query("end", replication_date(end));
        self.client.json(&req).await
    }

    /// `GET sobjects/{Type}/deleted/?start=&end=`: records deleted in `[start, end]`.
    pub async fn deleted(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Deleted> {
        let req = ApiRequest::get(format!("{}/deleted/", self.base()?))
            .query("start", replication_date(start))
            .query("end", replication_date(end));
        self.client.json(&req).await
    }
}
