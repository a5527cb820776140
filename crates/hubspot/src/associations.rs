//! Associations v4 (`crm-associations-v4.json`): default and labelled create, listing,
//! batch read and delete, the default (unlabelled) and primary type ids, and which of
//! several associated records is "the" linked one ([`sort_by_preference`]).
//!
//! [`Associations::batch_read`] reads every association of every record asked for: ids
//! go in requests of at most [`BATCH_READ_MAX`], and a record whose answer carries
//! `paging.next.after` is asked for again with that `after` until HubSpot sends no more.
//! Per-record errors of a 207 answer are per-record errors, never "no associations": only
//! HubSpot's own "no associations found" answer reads as an empty list, and a record the
//! answer does not mention at all is an error too.

use std::collections::{HashMap, HashSet};

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

/// The type id the "default" association endpoints create from `from` to `to`
/// (`PUT …/associations/default/…`, `batch/associate/default`): HubSpot's unlabelled type
/// (contact → company 279, deal → company 341, contact → deal 4, deal → contact 3, note →
/// contact 202). Never the primary type: ask [`primary_type_id`] for that.
pub fn default_type_id(from: &ObjectType, to: &ObjectType) -> Option<u32> {
    let (f, t) = (singular(from), singular(to));
    type_id(&format!("{f}_TO_{t}"))
}

/// HubSpot's primary type from `from` to `to`, where the pair has one (contact → company 1,
/// deal → company 5, company → contact 2, company → deal 6): it marks the one company a
/// contact or deal belongs to first.
pub fn primary_type_id(from: &ObjectType, to: &ObjectType) -> Option<u32> {
    let (f, t) = (singular(from), singular(to));
    type_id(&format!("PRIMARY_{f}_TO_{t}"))
}

/// Orders the records of type `to` associated with one record of type `from` from the most
/// to the least likely to be "the" linked record, so that the first one is it:
///
/// 1. the one carrying HubSpot's primary type ([`primary_type_id`]);
/// 2. else one associated only by HubSpot's unlabelled type — a pair that still has a
///    user's or app's label but no primary is what a changed link leaves behind, so it
///    ranks below;
/// 3. else any other.
///
/// Ties (several primaries, several unlabelled, several labelled) go to the lowest id,
/// numerically where ids are numbers: a deterministic choice, the same on every read, which
/// is the record HubSpot made first. HubSpot's own order carries no meaning here.
pub fn sort_by_preference(from: &ObjectType, to: &ObjectType, records: &mut [Associated]) {
    let primary = primary_type_id(from, to);
    let rank = |a: &Associated| {
        let hubspot = |t: &AssociationType| t.category == Category::HubspotDefined;
        if a.association_types
            .iter()
            .any(|t| hubspot(t) && Some(t.type_id) == primary)
        {
            0
        } else if a
            .association_types
            .iter()
            .all(|t| hubspot(t) && t.label.is_none())
        {
            1
        } else {
            2
        }
    };
    records.sort_by(|a, b| {
        let id = |x: &Associated| {
            (
                x.to_object_id.parse::<u64>().unwrap_or(u64::MAX),
                x.to_object_id.clone(),
            )
        };
        (rank(a), id(a)).cmp(&(rank(b), id(b)))
    });
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
    /// Its associated records, every page of them.
    pub to: Vec<Associated>,
}

/// Ids per associations batch read: HubSpot refuses more than 1,000 inputs since
/// 2025-02-10 (developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api).
pub const BATCH_READ_MAX: usize = 1_000;

/// Whether a per-record error of a batch read only says the record has no associations of
/// the type asked for (`subCategory` `crm.associations.NO_ASSOCIATIONS_FOUND`, message
/// "No … is associated …").
fn says_none_associated(e: &Value) -> bool {
    let sub = e["subCategory"].as_str().unwrap_or_default();
    let message = e["message"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    sub.to_ascii_uppercase().ends_with("NO_ASSOCIATIONS_FOUND")
        || (message.starts_with("no ") && message.contains(" associated"))
}

/// The status a per-record error of a batch stands for, by its category.
fn status_of(e: &Value) -> u16 {
    match e["category"].as_str() {
        Some("OBJECT_NOT_FOUND") => 404,
        Some("CONFLICT") => 409,
        Some("RATE_LIMITS") => 429,
        Some("INTERNAL_ERROR") => 500,
        _ => 400,
    }
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

    /// The associations of many records at once, every page of each (see the module docs).
    /// The first list holds each record read, in the order asked (an empty `to` when
    /// HubSpot says none is associated); the second one error per record that could not
    /// be read, naming it. A request that fails as a whole is the `Err`.
    pub async fn batch_read(
        &self,
        from: &ObjectType,
        to: &ObjectType,
        ids: &[String],
    ) -> Result<(Vec<AssociationsOf>, Vec<Error>)> {
        let path = Self::batch_path(from, to, "read")?;
        let label = |id: &str| format!("{from} {id}");
        let mut read: HashMap<String, Vec<Associated>> = HashMap::new();
        let mut failed: HashMap<String, Error> = HashMap::new();
        let mut seen_tokens: HashSet<(String, String)> = HashSet::new();
        let mut pending: Vec<(String, Option<String>)> = Vec::new();
        let mut asked = HashSet::new();
        for id in ids {
            if asked.insert(id.clone()) {
                pending.push((id.clone(), None));
            }
        }
        while !pending.is_empty() {
            let mut next = Vec::new();
            for chunk in pending.chunks(BATCH_READ_MAX) {
                let inputs: Vec<Value> = chunk
                    .iter()
                    .map(|(id, after)| match after {
                        Some(a) => json!({ "id": id, "after": a }),
                        None => json!({ "id": id }),
                    })
                    .collect();
                let req = ApiRequest::post(path.clone(), json!({ "inputs": inputs })).repeat_safe();
                let body: Value = self.client.json(&req).await?;
                let mut answered = HashSet::new();
                for r in body["results"].as_array().into_iter().flatten() {
                    let from_id = match &r["from"]["id"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let Some((_, after)) = chunk.iter().find(|(id, _)| *id == from_id) else {
                        continue;
                    };
                    answered.insert(from_id.clone());
                    let page: Vec<Associated> = match serde_json::from_value(r["to"].clone()) {
                        Ok(page) => page,
                        Err(e) => {
                            failed.insert(
                                from_id.clone(),
                                Error::bad_response(format!(
                                    "an association result does not parse: {e}"
                                ))
                                .with_crm(Crm::HubSpot)
                                .with_record(label(&from_id)),
                            );
                            continue;
                        }
                    };
                    read.entry(from_id.clone()).or_default().extend(page);
                    let more = r["paging"]["next"]["after"]
                        .as_str()
                        .filter(|a| !a.is_empty());
                    if let Some(a) = more {
                        if after.as_deref() == Some(a)
                            || !seen_tokens.insert((from_id.clone(), a.to_string()))
                        {
                            failed.insert(
                                from_id.clone(),
                                Error::bad_response(
                                    "HubSpot handed out the same association page token twice; \
                                     paging cannot progress",
                                )
                                .with_crm(Crm::HubSpot)
                                .with_record(label(&from_id)),
                            );
                        } else {
                            next.push((from_id, Some(a.to_string())));
                        }
                    }
                }
                for e in body["errors"].as_array().into_iter().flatten() {
                    let named = crate::batch::named_in(e);
                    let none = says_none_associated(e);
                    for (id, _) in chunk.iter().filter(|(id, _)| named.contains(id)) {
                        answered.insert(id.clone());
                        if none {
                            read.entry(id.clone()).or_default();
                        } else {
                            let status = status_of(e);
                            failed.insert(
                                id.clone(),
                                crate::dialect::error_from_body(status, e.clone())
                                    .with_crm(Crm::HubSpot)
                                    .with_status(status)
                                    .with_record(label(id)),
                            );
                        }
                    }
                }
                for (id, _) in chunk.iter().filter(|(id, _)| !answered.contains(id)) {
                    failed.insert(
                        id.clone(),
                        Error::bad_response(
                            "HubSpot did not report this record in its associations batch answer",
                        )
                        .with_crm(Crm::HubSpot)
                        .with_record(label(id)),
                    );
                }
            }
            next.retain(|(id, _)| !failed.contains_key(id));
            pending = next;
        }
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for id in ids {
            if let Some(e) = failed.remove(id) {
                errors.push(e);
            } else if let Some(to) = read.remove(id) {
                found.push(AssociationsOf {
                    from_id: id.clone(),
                    to,
                });
            }
        }
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
        assert_eq!(default_type_id(&contact, &company), Some(279));
        assert_eq!(default_type_id(&contact, &deal), Some(4));
        assert_eq!(default_type_id(&company, &deal), Some(342));
        assert_eq!(default_type_id(&ObjectType::Deals, &company), Some(341));
        assert_eq!(primary_type_id(&contact, &company), Some(1));
        assert_eq!(primary_type_id(&ObjectType::Deals, &company), Some(5));
        assert_eq!(primary_type_id(&company, &deal), Some(6));
        assert_eq!(primary_type_id(&contact, &deal), None);
        assert_eq!(default_type_id(&deal, &contact), Some(3));
        assert_eq!(default_type_id(&ObjectType::Notes, &contact), Some(202));
        assert_eq!(default_type_id(&ObjectType::Emails, &deal), Some(210));
        assert_eq!(type_id("CONTACT_TO_COMPANY"), Some(279));
        assert_eq!(type_id("nope"), None);
        assert_eq!(HUBSPOT_DEFINED.len(), 332);
    }

    fn listed(id: &str, types: &[(Category, u32, Option<&str>)]) -> Associated {
        Associated {
            to_object_id: id.into(),
            association_types: types
                .iter()
                .map(|(category, type_id, label)| AssociationType {
                    category: *category,
                    type_id: *type_id,
                    label: label.map(str::to_string),
                })
                .collect(),
        }
    }

    fn order(from: &ObjectType, mut v: Vec<Associated>) -> Vec<String> {
        sort_by_preference(from, &ObjectType::Companies, &mut v);
        v.into_iter().map(|a| a.to_object_id).collect()
    }

    #[test]
    fn the_primary_company_comes_first_then_an_unlabelled_one_then_the_lowest_id() {
        use Category::{HubspotDefined as H, UserDefined as U};
        let labelled_old = listed("5", &[(H, 279, None), (U, 1001, Some("Billing"))]);
        let contact = ObjectType::Contacts;
        // The primary wins over a lower id and over labels.
        let v = vec![
            labelled_old.clone(),
            listed("90", &[(H, 279, None), (H, 1, Some("Primary"))]),
        ];
        assert_eq!(order(&contact, v), ["90", "5"]);
        // Deals: 5 is primary there, 1 is not a deal type.
        let v = vec![
            listed("3", &[(H, 341, None)]),
            listed("40", &[(H, 341, None), (H, 5, Some("Primary"))]),
        ];
        assert_eq!(order(&ObjectType::Deals, v), ["40", "3"]);
        // No primary: the unlabelled one over the labelled one left behind.
        let v = vec![labelled_old.clone(), listed("70", &[(H, 279, None)])];
        assert_eq!(order(&contact, v), ["70", "5"]);
        // No primary, several alike: lowest id, numerically.
        let v = vec![
            listed("100", &[(H, 279, None)]),
            listed("20", &[(H, 279, None)]),
        ];
        assert_eq!(order(&contact, v), ["20", "100"]);
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
