//! Associations v4 (`crm-associations-v4.json`): default and labelled create, listing,
//! batch read and delete, and the default type ids.

use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::{Crm, Error, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::association_types::HUBSPOT_DEFINED;
use crate::client::{Client, path_segment};
use crate::objects::ObjectType;

/// One association type: category and id (`AssociationSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationSpec {
    /// `HUBSPOT_DEFINED`, `USER_DEFINED`, `INTEGRATOR_DEFINED` or `WORK`.
    pub association_category: Category,
    /// The type id.
    pub association_type_id: u32,
}

impl AssociationSpec {
    /// A HubSpot-defined type.
    pub fn hubspot_defined(type_id: u32) -> Self {
        Self {
            association_category: Category::HubspotDefined,
            association_type_id: type_id,
        }
    }
}

/// Who defined an association type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    /// HubSpot's defaults.
    HubspotDefined,
    /// Labels made by users.
    UserDefined,
    /// Labels made by apps.
    IntegratorDefined,
    /// Work associations.
    Work,
}

/// An association type on a listed association (`{category, typeId, label}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    /// Who defined it.
    pub category: Category,
    /// The type id.
    pub type_id: u32,
    /// Its label; `None` for the unlabelled default.
    #[serde(default)]
    pub label: Option<String>,
}

/// One associated record and how it is associated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Associated {
    /// The associated record.
    #[serde(deserialize_with = "id_text")]
    pub to_object_id: String,
    /// The types of the association.
    #[serde(default)]
    pub association_types: Vec<AssociationType>,
}

fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("not an id: {other}"))),
    }
}

/// The id of a default association type by its name (`CONTACT_TO_COMPANY` → 279).
pub fn type_id(name: &str) -> Option<u32> {
    HUBSPOT_DEFINED
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, id)| *id)
}

fn singular(t: &ObjectType) -> String {
    let s = t.as_str().to_ascii_uppercase();
    match s.as_str() {
        "COMPANIES" => "COMPANY".into(),
        _ => s.strip_suffix('S').map(str::to_string).unwrap_or(s),
    }
}

/// The default type id from `from` to `to`: the primary type where HubSpot has one (contact
/// → company 1, company → deal 6), else the plain one (contact → deal 4, deal → contact 3,
/// note → contact 202).
pub fn default_type_id(from: &ObjectType, to: &ObjectType) -> Option<u32> {
    let (f, t) = (singular(from), singular(to));
    type_id(&format!("PRIMARY_{f}_TO_{t}")).or_else(|| type_id(&format!("{f}_TO_{t}")))
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    results: Vec<Associated>,
    #[serde(default)]
    paging: Option<crate::objects::Paging>,
}

/// The associations of one record with its associated records, from a batch read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationsOf {
    /// The record.
    pub from_id: String,
    /// Its associated records (first page of each).
    pub to: Vec<Associated>,
}

/// Associations v4.
#[derive(Debug, Clone)]
pub struct Associations {
    client: Client,
}

fn seg(t: &ObjectType) -> Result<&str> {
    t.segment()
}

impl Associations {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    fn pair_path(
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
        to_id: &str,
        default: bool,
    ) -> Result<String> {
        Ok(format!(
            "crm/v4/objects/{}/{}/associations/{}{}/{}",
            seg(from)?,
            path_segment("record id", from_id)?,
            if default { "default/" } else { "" },
            seg(to)?,
            path_segment("record id", to_id)?
        ))
    }

    /// Associates two records with the default (unlabelled) type (`PUT …/associations/default/…`).
    pub async fn associate_default(
        &self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
        to_id: &str,
    ) -> Result<()> {
        let req = ApiRequest::new(
            crmkit_core::http::Method::PUT,
            Self::pair_path(from, from_id, to, to_id, true)?,
        );
        self.client.send(&req).await.map(|_| ())
    }

    /// Associates two records with the given types (labels); HubSpot answers 201.
    pub async fn associate(
        &self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
        to_id: &str,
        types: &[AssociationSpec],
    ) -> Result<Value> {
        let req = ApiRequest::put(
            Self::pair_path(from, from_id, to, to_id, false)?,
            json!(types),
        );
        self.client.raw(&req).await
    }

    /// Removes every association between two records (204).
    pub async fn remove(
        &self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
        to_id: &str,
    ) -> Result<()> {
        let req = ApiRequest::delete(Self::pair_path(from, from_id, to, to_id, false)?);
        self.client.send(&req).await.map(|_| ())
    }

    /// The records of type `to` associated with record `from_id`, as a stream over `after`.
    pub fn list(
        &self,
        from: &ObjectType,
        from_id: &str,
        to: &ObjectType,
    ) -> BoxStream<'static, Result<Associated>> {
        let path = (|| {
            Ok::<_, Error>(format!(
                "crm/v4/objects/{}/{}/associations/{}",
                seg(from)?,
                path_segment("record id", from_id)?,
                seg(to)?
            ))
        })();
        let client = self.client.clone();
        paginate(None::<String>, move |after| {
            let client = client.clone();
            let path = path.clone();
            async move {
                let mut req = ApiRequest::get(path?).query("limit", "500");
                if let Some(a) = after {
                    req = req.query("after", a);
                }
                let page: ListPage = client.json(&req).await?;
                Ok(Page {
                    items: page.results,
                    next: page.paging.and_then(|p| p.next).map(|n| Some(n.after)),
                })
            }
        })
        .boxed()
    }

    fn batch_path(from: &ObjectType, to: &ObjectType, action: &str) -> Result<String> {
        Ok(format!(
            "crm/v4/associations/{}/{}/batch/{action}",
            seg(from)?,
            seg(to)?
        ))
    }

    /// The associations of many records at once (first page of each); records HubSpot
    /// reports as failed (207) are left out, with their errors in the second list.
    pub async fn batch_read(
        &self,
        from: &ObjectType,
        to: &ObjectType,
        ids: &[String],
    ) -> Result<(Vec<AssociationsOf>, Vec<Error>)> {
        if ids.len() > crate::batch::BATCH_SIZE {
            return Err(Error::config(format!(
                "{} ids; a batch read takes at most {}",
                ids.len(),
                crate::batch::BATCH_SIZE
            ))
            .with_crm(Crm::HubSpot));
        }
        let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let req = ApiRequest::post(
            Self::batch_path(from, to, "read")?,
            json!({ "inputs": inputs }),
        )
        .repeat_safe();
        let body: Value = self.client.json(&req).await?;
        let mut found = Vec::new();
        for r in body["results"].as_array().into_iter().flatten() {
            let to: Vec<Associated> = serde_json::from_value(r["to"].clone()).map_err(|e| {
                Error::bad_response(format!("an association result does not parse: {e}"))
                    .with_crm(Crm::HubSpot)
            })?;
            let from_id = match &r["from"]["id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            found.push(AssociationsOf { from_id, to });
        }
        let errors = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| crate::dialect::error_from_body(400, e.clone()).with_crm(Crm::HubSpot))
            .collect();
        Ok((found, errors))
    }

    /// Associates pairs `(from_id, to_id)` with the default type, at most 100 per call.
    pub async fn batch_associate_default(
        &self,
        from: &ObjectType,
        to: &ObjectType,
        pairs: &[(String, String)],
    ) -> Result<Value> {
        let inputs: Vec<Value> = pairs
            .iter()
            .map(|(f, t)| json!({"from": {"id": f}, "to": {"id": t}}))
            .collect();
        let req = ApiRequest::post(
            Self::batch_path(from, to, "associate/default")?,
            json!({ "inputs": inputs }),
        )
        .repeat_safe();
        self.client.raw(&req).await
    }

    /// Removes every association of each pair `(from_id, to_id)` (204).
    pub async fn batch_archive(
        &self,
        from: &ObjectType,
        to: &ObjectType,
        pairs: &[(String, String)],
    ) -> Result<()> {
        let inputs: Vec<Value> = pairs
            .iter()
            .map(|(f, t)| json!({"from": {"id": f}, "to": [{"id": t}]}))
            .collect();
        let req = ApiRequest::post(
            Self::batch_path(from, to, "archive")?,
            json!({ "inputs": inputs }),
        )
        .repeat_safe();
        self.client.send(&req).await.map(|_| ())
    }
}

impl Client {
    /// Associations v4.
    pub fn associations(&self) -> Associations {
        Associations::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_types_of_the_mission_table() {
        let (contact, company, deal) = (
            ObjectType::Contacts,
            ObjectType::Companies,
            ObjectType::Deals,
        );
        assert_eq!(default_type_id(&contact, &company), Some(1));
        assert_eq!(default_type_id(&contact, &deal), Some(4));
        assert_eq!(default_type_id(&company, &deal), Some(6));
        assert_eq!(default_type_id(&deal, &contact), Some(3));
        assert_eq!(default_type_id(&ObjectType::Notes, &contact), Some(202));
        assert_eq!(default_type_id(&ObjectType::Emails, &deal), Some(210));
        assert_eq!(type_id("CONTACT_TO_COMPANY"), Some(279));
        assert_eq!(type_id("nope"), None);
        assert_eq!(HUBSPOT_DEFINED.len(), 332);
    }

    #[test]
    fn specs_and_listings_serialize_as_documented() {
        assert_eq!(
            json!([AssociationSpec::hubspot_defined(279)]),
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}])
        );
        let a: Associated = serde_json::from_value(json!({"toObjectId": 951, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null},
            {"category": "USER_DEFINED", "typeId": 7, "label": "Billing"}]}))
        .expect("parses");
        assert_eq!(a.to_object_id, "951");
        assert_eq!(a.association_types[1].label.as_deref(), Some("Billing"));
        assert!(
            Associations::pair_path(
                &ObjectType::Contacts,
                "1/2",
                &ObjectType::Companies,
                "3",
                true
            )
            .is_err()
        );
        assert_eq!(
            Associations::pair_path(
                &ObjectType::Contacts,
                "1",
                &ObjectType::Companies,
                "3",
                true
            )
            .expect("path"),
            "crm/v4/objects/contacts/1/associations/default/companies/3"
        );
    }
}
