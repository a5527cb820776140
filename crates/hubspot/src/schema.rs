//! Pipelines and stages (label ↔ id), properties and property groups, and owners
//! (`crm-pipelines-v3.json`, `crm-properties-v3.json`, `crm-owners-v3.json`).

use std::collections::BTreeMap;

use crmkit_core::Result;
use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, path_segment};
use crate::objects::{ObjectType, Paging};

/// A pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// The stage id (`appointmentscheduled` in the default deal pipeline).
    pub id: String,
    /// Its label.
    pub label: String,
    /// Its position.
    #[serde(default)]
    pub display_order: i64,
    /// `probability`, `isClosed` … as strings.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
}

/// A pipeline and its stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    /// The pipeline id (`default` for the default deal pipeline).
    pub id: String,
    /// Its label.
    pub label: String,
    /// Its position.
    #[serde(default)]
    pub display_order: i64,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
    /// Its stages.
    #[serde(default)]
    pub stages: Vec<Stage>,
}

/// The pipelines of one object type, to turn labels into ids and back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pipelines {
    /// The pipelines.
    pub pipelines: Vec<Pipeline>,
}

impl Pipelines {
    /// The pipeline whose id or label (case-insensitive) is `key`.
    pub fn pipeline(&self, key: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == key).or_else(|| {
            self.pipelines
                .iter()
                .find(|p| p.label.eq_ignore_ascii_case(key))
        })
    }

    /// The id of the stage labelled (or with id) `stage` in pipeline `pipeline`.
    pub fn stage_id(&self, pipeline: &str, stage: &str) -> Option<&str> {
        let p = self.pipeline(pipeline)?;
        p.stages
            .iter()
            .find(|s| s.id == stage)
            .or_else(|| {
                p.stages
                    .iter()
                    .find(|s| s.label.eq_ignore_ascii_case(stage))
            })
            .map(|s| s.id.as_str())
    }

    /// The pipeline and stage of stage id `stage_id`.
    pub fn stage(&self, stage_id: &str) -> Option<(&Pipeline, &Stage)> {
        self.pipelines
            .iter()
            .find_map(|p| p.stages.iter().find(|s| s.id == stage_id).map(|s| (p, s)))
    }
}

/// One option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    /// Its label.
    pub label: String,
    /// The value stored.
    pub value: String,
    /// Its position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
    /// Whether it is hidden in forms.
    #[serde(default)]
    pub hidden: bool,
}

/// A property definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// The internal name.
    pub name: String,
    /// The label.
    pub label: String,
    /// `string`, `number`, `enumeration`, `date`, `datetime`, `bool`, `phone_number`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `text`, `select`, `checkbox`, …
    pub field_type: String,
    /// The group it belongs to.
    pub group_name: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The options of an enumeration.
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// Whether values must be unique (usable as `idProperty`).
    #[serde(default)]
    pub has_unique_value: bool,
    /// Whether HubSpot defined it.
    #[serde(default)]
    pub hubspot_defined: Option<bool>,
}

/// A property to create: only what is set is sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewProperty {
    /// The internal name.
    pub name: String,
    /// The label.
    pub label: String,
    /// The type (`string`, `enumeration`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The field type (`text`, `select`, …).
    pub field_type: String,
    /// The group.
    pub group_name: String,
    /// Its description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The options of an enumeration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PropertyOption>,
    /// Whether values must be unique.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_unique_value: Option<bool>,
}

/// A property group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroup {
    /// The internal name.
    pub name: String,
    /// The label.
    pub label: String,
    /// Its position.
    #[serde(default)]
    pub display_order: i64,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
}

/// A user or queue records can be assigned to (`hubspot_owner_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// The owner id.
    pub id: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The user id.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// `PERSON` or `QUEUE`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
}

#[derive(Deserialize)]
struct Results<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

impl Client {
    /// The pipelines of `object_type` (`deals`, `tickets`).
    pub async fn pipelines(&self, object_type: &ObjectType) -> Result<Pipelines> {
        let r: Results<Pipeline> = self
            .json(&ApiRequest::get(format!(
                "crm/v3/pipelines/{}",
                object_type.segment()?
            )))
            .await?;
        Ok(Pipelines {
            pipelines: r.results,
        })
    }

    /// The property definitions of `object_type`.
    pub async fn properties(&self, object_type: &ObjectType) -> Result<Vec<Property>> {
        let r: Results<Property> = self
            .json(&ApiRequest::get(format!(
                "crm/v3/properties/{}",
                object_type.segment()?
            )))
            .await?;
        Ok(r.results)
    }

    /// Creates a custom property (HubSpot answers 201).
    pub async fn create_property(
        &self,
        object_type: &ObjectType,
        property: &NewProperty,
    ) -> Result<Property> {
        let body = serde_json::to_value(property)?;
        self.json(&ApiRequest::post(
            format!("crm/v3/properties/{}", object_type.segment()?),
            body,
        ))
        .await
    }

    /// The property groups of `object_type`.
    pub async fn property_groups(&self, object_type: &ObjectType) -> Result<Vec<PropertyGroup>> {
        let r: Results<PropertyGroup> = self
            .json(&ApiRequest::get(format!(
                "crm/v3/properties/{}/groups",
                object_type.segment()?
            )))
            .await?;
        Ok(r.results)
    }

    /// Every owner, as a stream over `after`.
    pub fn owners(&self) -> BoxStream<'static, Result<Owner>> {
        let client = self.clone();
        paginate(None::<String>, move |after| {
            let client = client.clone();
            async move {
                let mut req = ApiRequest::get("crm/v3/owners").query("limit", "100");
                if let Some(a) = after {
                    req = req.query("after", a);
                }
                let page: Results<Owner> = client.json(&req).await?;
                Ok(Page {
                    items: page.results,
                    next: page.paging.and_then(|p| p.next).map(|n| Some(n.after)),
                })
            }
        })
        .boxed()
    }

    /// One owner.
    pub async fn owner(&self, id: &str) -> Result<Owner> {
        self.json(&ApiRequest::get(format!(
            "crm/v3/owners/{}",
            path_segment("owner id", id)?
        )))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stage_labels_and_ids_both_ways() {
        let p: Pipeline = serde_json::from_value(json!({
        "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": false,
        "createdAt": "1970-01-01T00:00:00Z", "updatedAt": "1970-01-01T00:00:00Z",
        "stages": [
            {"id": "appointmentscheduled", "label": "Appointment Scheduled", "displayOrder": 0,
             "metadata": {"probability": "0.2", "isClosed": "false"}, "archived": false},
            {"id": "closedwon", "label": "Closed Won", "displayOrder": 5,
             "metadata": {"probability": "1.0", "isClosed": "true"}, "archived": false}
        ]}))
        .expect("parses");
        let all = Pipelines { pipelines: vec![p] };
        assert_eq!(
            all.stage_id("Sales Pipeline", "closed won"),
            Some("closedwon")
        );
        assert_eq!(all.stage_id("default", "closedwon"), Some("closedwon"));
        assert_eq!(all.stage_id("default", "nope"), None);
        let (pipeline, stage) = all.stage("appointmentscheduled").expect("found");
        assert_eq!(pipeline.id, "default");
        assert_eq!(stage.label, "Appointment Scheduled");
    }

    #[test]
    fn a_new_property_sends_only_what_is_set() {
        let p = NewProperty {
            name: "crmkit_id".into(),
            label: "crmkit id".into(),
            kind: "string".into(),
            field_type: "text".into(),
            group_name: "contactinformation".into(),
            description: None,
            options: Vec::new(),
            has_unique_value: Some(true),
        };
        assert_eq!(
            serde_json::to_value(&p).expect("json"),
            json!({"name": "crmkit_id", "label": "crmkit id", "type": "string", "fieldType": "text",
                   "groupName": "contactinformation", "hasUniqueValue": true})
        );
    }
}
