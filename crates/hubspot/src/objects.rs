//! CRM v3 objects of any type: read, list as a stream over `after`, create, patch, archive.
//!
//! Paths and parameters are the same for every object type (`crm-objects-*-v3.json`,
//! `crm-objects-generic-v3.json`): `GET/POST /crm/v3/objects/{type}`,
//! `GET/PATCH/DELETE /crm/v3/objects/{type}/{id}`. Every property value is a string.

use std::collections::BTreeMap;
use std::fmt;

use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{Crm, Error, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Client, path_segment};

/// An object type: one of the standard ones, or any other by the name or id the API accepts
/// (`p_my_object`, `2-12345`, `0-46`). Names are sent as given, so anything the API accepts
/// works; the standard ones are recognised by singular name, plural name or id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `contacts` (`0-1`).
    Contacts,
    /// `companies` (`0-2`).
    Companies,
    /// `deals` (`0-3`).
    Deals,
    /// `notes`.
    Notes,
    /// `calls`.
    Calls,
    /// `tasks`.
    Tasks,
    /// `meetings`.
    Meetings,
    /// `emails`.
    Emails,
    /// Any other type, as the API spells it.
    Other(String),
}

impl ObjectType {
    /// The path segment sent: the plural name of a standard type, else the name as given.
    pub fn as_str(&self) -> &str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
            ObjectType::Notes => "notes",
            ObjectType::Calls => "calls",
            ObjectType::Tasks => "tasks",
            ObjectType::Meetings => "meetings",
            ObjectType::Emails => "emails",
            ObjectType::Other(s) => s,
        }
    }

    /// The property holding the last modification time: contacts have `lastmodifieddate`,
    /// every other type `hs_lastmodifieddate` (HubSpot CRM search guide, default properties).
    pub fn modified_property(&self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// The path segment, refused when it could change the URL.
    pub(crate) fn segment(&self) -> Result<&str> {
        path_segment("object type", self.as_str())
    }
}

impl From<&str> for ObjectType {
    fn from(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "contact" | "contacts" | "0-1" => ObjectType::Contacts,
            "company" | "companies" | "0-2" => ObjectType::Companies,
            "deal" | "deals" | "0-3" => ObjectType::Deals,
            "note" | "notes" => ObjectType::Notes,
            "call" | "calls" => ObjectType::Calls,
            "task" | "tasks" => ObjectType::Tasks,
            "meeting" | "meetings" => ObjectType::Meetings,
            "email" | "emails" => ObjectType::Emails,
            _ => ObjectType::Other(s.trim().to_string()),
        }
    }
}

impl From<String> for ObjectType {
    fn from(s: String) -> Self {
        ObjectType::from(s.as_str())
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value of a property's history (`propertiesWithHistory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueWithTimestamp {
    /// The value then.
    pub value: Option<String>,
    /// When it was set.
    pub timestamp: Option<String>,
    /// What set it (`CRM_UI`, `API`, …).
    #[serde(default)]
    pub source_type: Option<String>,
    /// The source's id.
    #[serde(default)]
    pub source_id: Option<String>,
    /// The source's label.
    #[serde(default)]
    pub source_label: Option<String>,
    /// The user who set it.
    #[serde(default)]
    pub updated_by_user_id: Option<i64>,
}

/// One associated record in a v3 read (`{"id":"99","type":"contact_to_company"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociatedId {
    /// The associated record's id.
    pub id: String,
    /// The association type, such as `contact_to_company`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The associations of one type on a read record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociatedIds {
    /// The associated records (first page).
    #[serde(default)]
    pub results: Vec<AssociatedId>,
}

/// A CRM record as HubSpot sends it (`SimplePublicObjectWithAssociations`). A property
/// HubSpot has no value for is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotObject {
    /// The record id.
    pub id: String,
    /// The properties asked for (or the type's defaults).
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    /// The history of the properties asked for with `propertiesWithHistory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_with_history: Option<BTreeMap<String, Vec<ValueWithTimestamp>>>,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it was last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
    /// When it was archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// Associated records by type, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associations: Option<BTreeMap<String, AssociatedIds>>,
    /// The trace id of the batch input this record answers (batch writes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

impl HubSpotObject {
    /// The value of property `name`, if set.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// Property values to write. Only the properties set here are sent, so an update is a
/// patch; an empty string clears a value (crm-objects-contacts-v3.json, PATCH).
pub type Properties = BTreeMap<String, String>;

/// What a read or list returns besides the default properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Properties to return (`properties`); empty means the type's defaults.
    pub properties: Vec<String>,
    /// Properties to return with their history (`propertiesWithHistory`).
    pub properties_with_history: Vec<String>,
    /// Object types whose associated ids to return (`associations`).
    pub associations: Vec<String>,
    /// Return archived records only (`archived=true`).
    pub archived: bool,
}

impl ReadOptions {
    /// Asks for `names` as properties.
    pub fn properties<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.properties.extend(names.into_iter().map(Into::into));
        self
    }

    /// Asks for the history of `names`.
    pub fn with_history<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.properties_with_history
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Asks for the ids of associated records of `types`.
    pub fn associations<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.associations.extend(types.into_iter().map(Into::into));
        self
    }

    /// Reads archived records.
    pub fn archived(mut self, archived: bool) -> Self {
        self.archived = archived;
        self
    }

    fn apply(&self, mut req: ApiRequest) -> ApiRequest {
        for (key, list) in [
            ("properties", &self.properties),
            ("propertiesWithHistory", &self.properties_with_history),
            ("associations", &self.associations),
        ] {
            if !list.is_empty() {
                req = req.query(key, list.join(","));
            }
        }
        if self.archived {
            req = req.query("archived", "true");
        }
        req
    }
}

/// An association to create with a new record (`associations` of a create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssociation {
    /// The record to associate with.
    pub to_id: String,
    /// The association type id (`HUBSPOT_DEFINED`), such as 279 for contact → company.
    pub type_id: u32,
    /// The category: `HUBSPOT_DEFINED`, `USER_DEFINED` or `INTEGRATOR_DEFINED`.
    pub category: String,
}

impl NewAssociation {
    /// A HubSpot-defined association of type `type_id` to `to_id`.
    pub fn hubspot_defined(to_id: impl Into<String>, type_id: u32) -> Self {
        Self {
            to_id: to_id.into(),
            type_id,
            category: "HUBSPOT_DEFINED".into(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "to": {"id": self.to_id},
            "types": [{"associationCategory": self.category, "associationTypeId": self.type_id}],
        })
    }
}

/// The body of a create: properties plus associations.
pub(crate) fn create_body(properties: &Properties, associations: &[NewAssociation]) -> Value {
    json!({
        "properties": properties,
        "associations": associations.iter().map(NewAssociation::to_json).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    results: Vec<HubSpotObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

/// `paging` of a list or search answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

/// `paging.next`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct NextPage {
    /// Numeric in search answers, a string token in lists: both are kept as text.
    #[serde(deserialize_with = "text")]
    pub after: String,
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, found {other}"
        ))),
    }
}

/// The largest page of a list (HubSpot docs as widely cited; the spec encodes none).
pub const MAX_LIST_PAGE: usize = 100;

/// The records of one object type.
#[derive(Debug, Clone)]
pub struct Objects {
    client: Client,
    object_type: ObjectType,
}

impl Objects {
    pub(crate) fn new(client: Client, object_type: ObjectType) -> Self {
        Self {
            client,
            object_type,
        }
    }

    /// The object type.
    pub fn object_type(&self) -> &ObjectType {
        &self.object_type
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// `crm/v3/objects/{type}` plus `rest`.
    pub(crate) fn path(&self, rest: &str) -> Result<String> {
        Ok(format!(
            "crm/v3/objects/{}{rest}",
            self.object_type.segment()?
        ))
    }

    fn record(&self, id: &str) -> String {
        format!("{} {id}", self.object_type)
    }

    fn item_path(&self, id: &str) -> Result<String> {
        let id = path_segment("record id", id).map_err(|e| e.with_record(self.record(id)))?;
        self.path(&format!("/{id}"))
    }

    /// The GET of record `id`, with `options`.
    pub fn get_request(&self, id: &str, options: &ReadOptions) -> Result<ApiRequest> {
        Ok(options.apply(ApiRequest::get(self.item_path(id)?)))
    }

    /// Reads record `id`.
    pub async fn get(&self, id: &str, options: &ReadOptions) -> Result<HubSpotObject> {
        self.client.json(&self.get_request(id, options)?).await
    }

    /// Reads the record whose unique property `id_property` (such as `email`) is `value`.
    pub async fn get_by(
        &self,
        id_property: &str,
        value: &str,
        options: &ReadOptions,
    ) -> Result<HubSpotObject> {
        let req = self
            .get_request(value, options)?
            .query("idProperty", id_property);
        self.client.json(&req).await
    }

    /// The GET of one list page.
    pub fn list_request(
        &self,
        options: &ReadOptions,
        limit: usize,
        after: Option<&str>,
    ) -> Result<ApiRequest> {
        let mut req = ApiRequest::get(self.path("")?)
            .query("limit", limit.clamp(1, MAX_LIST_PAGE).to_string());
        if let Some(a) = after {
            req = req.query("after", a);
        }
        Ok(options.apply(req))
    }

    /// Every record, `page_size` (at most 100) per request, following `paging.next.after`
    /// until a page has none. A server that hands back the cursor it was given is an error,
    /// not a loop.
    pub fn list(
        &self,
        options: ReadOptions,
        page_size: usize,
    ) -> BoxStream<'static, Result<HubSpotObject>> {
        let this = self.clone();
        paginate(None::<String>, move |after| {
            let this = this.clone();
            let options = options.clone();
            async move {
                let req = this.list_request(&options, page_size, after.as_deref())?;
                let page: ListPage = this.client.json(&req).await?;
                Ok(Page {
                    items: page.results,
                    next: page.paging.and_then(|p| p.next).map(|n| Some(n.after)),
                })
            }
        })
        .boxed()
    }

    /// The POST of a create.
    pub fn create_request(
        &self,
        properties: &Properties,
        associations: &[NewAssociation],
    ) -> Result<ApiRequest> {
        Ok(ApiRequest::post(
            self.path("")?,
            create_body(properties, associations),
        ))
    }

    /// Creates a record (HubSpot answers 201) and returns it.
    pub async fn create(
        &self,
        properties: &Properties,
        associations: &[NewAssociation],
    ) -> Result<HubSpotObject> {
        self.client
            .json(&self.create_request(properties, associations)?)
            .await
    }

    /// The PATCH of an update: only `properties` are sent.
    pub fn update_request(&self, id: &str, properties: &Properties) -> Result<ApiRequest> {
        if properties.is_empty() {
            return Err(Error::config("an update must set at least one property")
                .with_crm(Crm::HubSpot)
                .with_record(self.record(id)));
        }
        Ok(ApiRequest::new(Method::PATCH, self.item_path(id)?)
            .json(json!({ "properties": properties })))
    }

    /// Updates record `id`: only the properties in `properties` change.
    pub async fn update(&self, id: &str, properties: &Properties) -> Result<HubSpotObject> {
        self.client
            .json(&self.update_request(id, properties)?)
            .await
    }

    /// Updates the record whose unique property `id_property` is `value`.
    pub async fn update_by(
        &self,
        id_property: &str,
        value: &str,
        properties: &Properties,
    ) -> Result<HubSpotObject> {
        let req = self
            .update_request(value, properties)?
            .query("idProperty", id_property);
        self.client.json(&req).await
    }

    /// Archives record `id` (HubSpot answers 204).
    pub async fn archive(&self, id: &str) -> Result<()> {
        self.client
            .send(&ApiRequest::delete(self.item_path(id)?))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::SecretString;
    use crmkit_core::http::Body;

    fn client() -> Client {
        Client::builder()
            .access_token(SecretString::from("t"))
            .base_url("http://127.0.0.1:9")
            .build()
            .expect("builds")
    }

    fn body(req: &ApiRequest) -> Value {
        match &req.body {
            Body::Json(v) => v.clone(),
            other => panic!("not JSON: {other:?}"),
        }
    }

    #[test]
    fn types_by_singular_plural_or_id() {
        for s in ["contact", "contacts", "0-1", "Contacts"] {
            assert_eq!(ObjectType::from(s), ObjectType::Contacts, "{s}");
        }
        assert_eq!(ObjectType::from("0-2"), ObjectType::Companies);
        assert_eq!(ObjectType::from("deal"), ObjectType::Deals);
        assert_eq!(ObjectType::from("p_cars").as_str(), "p_cars");
        assert_eq!(ObjectType::Contacts.modified_property(), "lastmodifieddate");
        assert_eq!(ObjectType::Deals.modified_property(), "hs_lastmodifieddate");
        let bad = client()
            .objects("a/b")
            .get_request("1", &ReadOptions::default());
        assert!(bad.is_err());
    }

    #[test]
    fn reads_carry_the_documented_parameters() {
        let c = client();
        let opts = ReadOptions::default()
            .properties(["email", "firstname"])
            .with_history(["lifecyclestage"])
            .associations(["companies", "deals"])
            .archived(true);
        let req = c.contacts().get_request("512", &opts).expect("req");
        assert_eq!(req.path, "crm/v3/objects/contacts/512");
        assert_eq!(
            req.query,
            vec![
                ("properties".to_string(), "email,firstname".to_string()),
                ("propertiesWithHistory".into(), "lifecyclestage".into()),
                ("associations".into(), "companies,deals".into()),
                ("archived".into(), "true".into()),
            ]
        );
        let list = c
            .deals()
            .list_request(&ReadOptions::default(), 500, Some("abc"))
            .expect("req");
        assert_eq!(list.path, "crm/v3/objects/deals");
        assert_eq!(
            list.query,
            vec![
                ("limit".to_string(), "100".to_string()),
                ("after".into(), "abc".into())
            ]
        );
        assert!(c.contacts().get_request("a/../b", &opts).is_err());
    }

    #[test]
    fn updates_are_patches_of_the_properties_set() {
        let c = client();
        let mut p = Properties::new();
        p.insert("firstname".into(), "Ada".into());
        let req = c.contacts().update_request("7", &p).expect("req");
        assert_eq!(req.method, Method::PATCH);
        assert_eq!(body(&req), json!({"properties": {"firstname": "Ada"}}));
        assert!(
            c.contacts()
                .update_request("7", &Properties::new())
                .is_err()
        );
        let create = c
            .notes()
            .create_request(&p, &[NewAssociation::hubspot_defined("9", 202)])
            .expect("req");
        assert_eq!(
            body(&create),
            json!({"properties": {"firstname": "Ada"}, "associations": [
                {"to": {"id": "9"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}
            ]})
        );
    }

    #[test]
    fn objects_parse_with_null_values_and_history() {
        let o: HubSpotObject = serde_json::from_value(json!({
            "id": "512",
            "properties": {"email": "a@b.com", "phone": null},
            "propertiesWithHistory": {"email": [{"value": "a@b.com", "timestamp": "2019-12-07T16:50:06.678Z", "sourceType": "API"}]},
            "createdAt": "2019-10-30T03:30:17.883Z",
            "updatedAt": "2019-12-07T16:50:06.678Z",
            "archived": false,
            "associations": {"companies": {"results": [{"id": "99", "type": "contact_to_company"}]}}
        }))
        .expect("parses");
        assert_eq!(o.property("email"), Some("a@b.com"));
        assert_eq!(o.property("phone"), None);
        assert_eq!(
            o.associations.expect("assoc")["companies"].results[0].id,
            "99"
        );
        let h = o.properties_with_history.expect("history");
        assert_eq!(h["email"][0].source_type.as_deref(), Some("API"));
    }
}
