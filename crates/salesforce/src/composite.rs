//! The composite family: sObject collections (create, update, upsert, delete up to 200
//! records per call with `allOrNone: false`, one outcome per record), composite requests
//! with references between subrequests, and sObject trees.
//!
//! Sources: developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm,
//! …/resources_composite_composite.htm and …/resources_composite_sobject_tree.htm.
//! Collections answer HTTP 200 with an array of save results in request order; inside them
//! errors carry `statusCode` (not `errorCode`). Large inputs are cut into calls of 200 by
//! the core batch fan-out, and a call that fails as a whole fails each of its records.

use crmkit_core::batch;
use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{Crm, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Client, path_segment};
use crate::ids::SalesforceId;
use crate::sobjects::{Fields, SaveResult, Upserted, save_error};

/// Most records per collections call.
pub const COLLECTION_SIZE: usize = 200;
/// Most subrequests in one composite request (REST API guide, "Composite": "up to 25
/// subrequests").
pub const MAX_SUBREQUESTS: usize = 25;
/// Most records in one sObject tree request, over all its trees (REST API guide, "sObject
/// Tree": "up to 200 records").
pub const MAX_TREE_RECORDS: usize = 200;
/// Collection calls in flight at once for one write.
const CONCURRENCY: usize = 4;
/// Most ids per collections retrieve (`GET composite/sobjects/{Type}?ids=…`). The REST API
/// guide says about 800 ids fit before the URL is too long (HTTP 414); 200 leaves room for
/// a long field list as well.
pub const RETRIEVE_SIZE: usize = 200;

/// The sObject collections of one type.
#[derive(Debug, Clone)]
pub struct Collections {
    client: Client,
    sobject: String,
}

fn label(sobject: &str, i: usize, fields: &Fields) -> String {
    match fields.get("Id").and_then(Value::as_str) {
        Some(id) => format!("{sobject} {id}"),
        None => format!("{sobject} #{i}"),
    }
}

fn with_type(sobject: &str, fields: Fields) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({ "type": sobject }));
    m.extend(fields);
    Value::Object(m)
}

fn outcome(r: SaveResult, label: &str) -> Result<Upserted> {
    match (r.success, r.id) {
        (true, Some(id)) => Ok(Upserted {
            id: Some(SalesforceId::new(id)),
            created: r.created.unwrap_or(false),
        }),
        (true, None) => Ok(Upserted {
            id: None,
            created: r.created.unwrap_or(false),
        }),
        (false, _) => Err(save_error(&r.errors, label)),
    }
}

fn invalid_id(sobject: &str, id: &str) -> Error {
    Error::new(
        ErrorKind::Validation,
        format!("{id:?} is not a valid record id"),
    )
    .with_crm(Crm::Salesforce)
    .with_record(format!("{sobject} {id}"))
}

impl Client {
    /// The sObject collections of `sobject`.
    pub fn collections(&self, sobject: impl Into<String>) -> Collections {
        Collections {
            client: self.clone(),
            sobject: sobject.into(),
        }
    }
}

impl Collections {
    async fn call(&self, req: ApiRequest, labels: Vec<String>) -> Result<Vec<Result<Upserted>>> {
        let results: Vec<SaveResult> = self.client.json(&req).await?;
        if results.len() != labels.len() {
            return Err(Error::bad_response(format!(
                "the collection answered {} results for {} records",
                results.len(),
                labels.len()
            ))
            .with_crm(Crm::Salesforce));
        }
        Ok(results
            .into_iter()
            .zip(&labels)
            .map(|(r, l)| outcome(r, l))
            .collect())
    }

    async fn run<F>(&self, records: Vec<Fields>, build: F) -> Vec<Result<Upserted>>
    where
        F: Fn(Vec<Value>) -> Result<ApiRequest>,
    {
        let sobject = self.sobject.clone();
        let items: Vec<(String, Fields)> = records
            .into_iter()
            .enumerate()
            .map(|(i, f)| (label(&sobject, i, &f), f))
            .collect();
        batch::chunked(
            items,
            COLLECTION_SIZE,
            CONCURRENCY,
            |(l, _)| l.clone(),
            |chunk| {
                let labels: Vec<String> = chunk.iter().map(|(l, _)| l.clone()).collect();
                let body: Vec<Value> = chunk
                    .into_iter()
                    .map(|(_, f)| with_type(&sobject, f))
                    .collect();
                let req = build(body);
                async move { self.call(req?, labels).await }
            },
        )
        .await
    }

    /// `POST composite/sobjects`: creates each record; one result (the new id) per record.
    pub async fn create(&self, records: Vec<Fields>) -> Vec<Result<SalesforceId>> {
        self.run(records, |records| {
            Ok(ApiRequest::post(
                "composite/sobjects",
                json!({ "allOrNone": false, "records": records }),
            ))
        })
        .await
        .into_iter()
        .map(|r| {
            r.and_then(|u| {
                u.id.ok_or_else(|| Error::bad_response("a created record came back without id"))
            })
        })
        .collect()
    }

    /// `PATCH composite/sobjects`: patches each record (each must carry `Id`).
    pub async fn update(&self, records: Vec<Fields>) -> Vec<Result<()>> {
        let mut out: Vec<Option<Result<()>>> = Vec::with_capacity(records.len());
        let mut send = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            if r.get("Id").and_then(Value::as_str).is_some() {
                out.push(None);
                send.push(r);
            } else {
                out.push(Some(Err(Error::new(
                    ErrorKind::Validation,
                    "an update needs the record's Id",
                )
                .with_crm(Crm::Salesforce)
                .with_record(format!("{} #{i}", self.sobject)))));
            }
        }
        let done = self
            .run(send, |records| {
                Ok(ApiRequest::new(Method::PATCH, "composite/sobjects")
                    .json(json!({ "allOrNone": false, "records": records }))
                    .repeat_safe())
            })
            .await
            .into_iter();
        in_order(out, done.map(|r| r.map(drop)))
    }

    /// `PATCH composite/sobjects/{Type}/{field}`: upserts each record by its external id
    /// `field` (which each record must carry); `created` tells inserts from updates.
    pub async fn upsert(&self, field: &str, records: Vec<Fields>) -> Vec<Result<Upserted>> {
        let path = path_segment("sObject name", &self.sobject).and_then(|s| {
            Ok(format!(
                "composite/sobjects/{s}/{}",
                path_segment("field name", field)?
            ))
        });
        self.run(records, move |records| {
            Ok(ApiRequest::new(Method::PATCH, path.clone()?)
                .json(json!({ "allOrNone": false, "records": records }))
                .repeat_safe())
        })
        .await
    }

    /// `GET composite/sobjects/{Type}?ids=…&fields=…`: the records with `ids`, with
    /// `fields`, one result per id in order, [`RETRIEVE_SIZE`] ids per call. Salesforce
    /// answers `null` in the place of an id it cannot find (or the caller cannot see),
    /// which becomes that id's `NotFound` (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm).
    /// An id that cannot be one fails alone, before anything is sent.
    pub async fn retrieve(&self, ids: &[String], fields: &[&str]) -> Vec<Result<Fields>> {
        let sobject = self.sobject.clone();
        let path =
            path_segment("sObject name", &sobject).map(|s| format!("composite/sobjects/{s}"));
        let fields = fields.join(",");
        let mut out: Vec<Option<Result<Fields>>> = Vec::with_capacity(ids.len());
        let mut send = Vec::new();
        for id in ids {
            if path_segment("record id", id).is_ok() && !id.contains(',') {
                out.push(None);
                send.push(id.clone());
            } else {
                out.push(Some(Err(invalid_id(&sobject, id))));
            }
        }
        let done = batch::chunked(
            send,
            RETRIEVE_SIZE,
            CONCURRENCY,
            |id| format!("{sobject} {id}"),
            |chunk| {
                let req = path.clone().map(|p| {
                    ApiRequest::get(p)
                        .query("ids", chunk.join(","))
                        .query("fields", fields.clone())
                });
                let sobject = sobject.clone();
                async move {
                    let found: Vec<Option<Fields>> = self.client.json(&req?).await?;
                    if found.len() != chunk.len() {
                        return Err(Error::bad_response(format!(
                            "the collection answered {} records for {} ids",
                            found.len(),
                            chunk.len()
                        ))
                        .with_crm(Crm::Salesforce));
                    }
                    Ok(found
                        .into_iter()
                        .zip(chunk)
                        .map(|(f, id)| {
                            f.ok_or_else(|| {
                                Error::new(ErrorKind::NotFound, format!("no {sobject} {id}"))
                                    .with_crm(Crm::Salesforce)
                                    .with_record(format!("{sobject} {id}"))
                            })
                        })
                        .collect())
                }
            },
        )
        .await
        .into_iter();
        in_order(out, done)
    }

    /// `DELETE composite/sobjects?ids=…&allOrNone=false`: deletes each id. An id that
    /// cannot be one fails alone, before anything is sent.
    pub async fn delete(&self, ids: Vec<String>) -> Vec<Result<()>> {
        let sobject = self.sobject.clone();
        let mut out: Vec<Option<Result<()>>> = Vec::with_capacity(ids.len());
        let mut send = Vec::new();
        for id in ids {
            if path_segment("record id", &id).is_ok() && !id.contains(',') {
                out.push(None);
                send.push(id);
            } else {
                out.push(Some(Err(invalid_id(&sobject, &id))));
            }
        }
        let done = batch::chunked(
            send,
            COLLECTION_SIZE,
            CONCURRENCY,
            |id| format!("{sobject} {id}"),
            |chunk| {
                let labels: Vec<String> =
                    chunk.iter().map(|id| format!("{sobject} {id}")).collect();
                let req = ApiRequest::delete("composite/sobjects")
                    .query("ids", chunk.join(","))
                    .query("allOrNone", "false");
                async move {
                    let results = self.call(req, labels).await?;
                    Ok(results.into_iter().map(|r| r.map(drop)).collect())
                }
            },
        )
        .await
        .into_iter();
        in_order(out, done)
    }
}

/// One subrequest of a composite request. `url` is relative to the REST root
/// (`sobjects/Account`); `@{ref.id}` references an earlier subrequest's answer.
#[derive(Debug, Clone)]
pub struct Subrequest {
    /// HTTP method.
    pub method: Method,
    /// Path below the REST root.
    pub url: String,
    /// Name later subrequests reference it by.
    pub reference_id: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Subrequest {
    /// A subrequest.
    pub fn new(method: Method, url: impl Into<String>, reference_id: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            reference_id: reference_id.into(),
            body: None,
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// One answer of a composite request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubResponse {
    /// The answer's body.
    #[serde(default)]
    pub body: Value,
    /// Its headers (`Location`).
    #[serde(default)]
    pub http_headers: Map<String, Value>,
    /// Its status.
    pub http_status_code: u16,
    /// The subrequest it answers.
    pub reference_id: String,
}

impl SubResponse {
    /// The answer as a result: a non-2xx status becomes the error its body describes.
    pub fn into_result(self) -> Result<Value> {
        if (200..300).contains(&self.http_status_code) {
            Ok(self.body)
        } else {
            Err(
                crate::dialect::error_from_entries(self.http_status_code, &self.body)
                    .with_crm(Crm::Salesforce)
                    .with_status(self.http_status_code)
                    .with_record(self.reference_id),
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeAnswer {
    composite_response: Vec<SubResponse>,
}

/// One record of an sObject tree, with its children by relationship name.
#[derive(Debug, Clone)]
pub struct TreeRecord {
    /// sObject type.
    pub sobject: String,
    /// Name the answer reports its id under.
    pub reference_id: String,
    /// Its fields.
    pub fields: Fields,
    /// Children by relationship name (`Contacts`).
    pub children: Vec<(String, Vec<TreeRecord>)>,
}

impl TreeRecord {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            json!({ "type": self.sobject, "referenceId": self.reference_id }),
        );
        m.extend(self.fields.clone());
        for (rel, kids) in &self.children {
            m.insert(
                rel.clone(),
                json!({ "records": kids.iter().map(TreeRecord::to_json).collect::<Vec<_>>() }),
            );
        }
        Value::Object(m)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TreeAnswer {
    #[serde(default)]
    has_errors: bool,
    #[serde(default)]
    results: Vec<Value>,
}

impl Client {
    /// `POST composite`: runs `requests` in order, later ones referring to earlier answers
    /// (`@{refAccount.id}`). With `all_or_none`, any failure rolls every one back.
    pub async fn composite(
        &self,
        requests: Vec<Subrequest>,
        all_or_none: bool,
    ) -> Result<Vec<SubResponse>> {
        if requests.is_empty() || requests.len() > MAX_SUBREQUESTS {
            return Err(Error::config(format!(
                "a composite request takes 1 to {MAX_SUBREQUESTS} subrequests, not {}",
                requests.len()
            ))
            .with_crm(Crm::Salesforce));
        }
        let root = format!("/services/data/v{}/", self.api_version());
        let list: Vec<Value> = requests
            .iter()
            .map(|r| {
                let mut v = json!({
                    "method": r.method.as_str(),
                    "url": format!("{root}{}", r.url.trim_start_matches('/')),
                    "referenceId": r.reference_id,
                });
                if let Some(b) = &r.body {
                    v["body"] = b.clone();
                }
                v
            })
            .collect();
        let req = ApiRequest::post(
            "composite",
            json!({ "allOrNone": all_or_none, "compositeRequest": list }),
        );
        let a: CompositeAnswer = self.json(&req).await?;
        Ok(a.composite_response)
    }

    /// `POST composite/tree/{Type}`: creates records with their children in one call and
    /// returns each reference id with its new id. A tree is saved whole or not at all; the
    /// error names each failing reference.
    pub async fn tree(
        &self,
        sobject: &str,
        records: &[TreeRecord],
    ) -> Result<Vec<(String, SalesforceId)>> {
        fn count(r: &TreeRecord) -> usize {
            1 + r
                .children
                .iter()
                .flat_map(|(_, kids)| kids)
                .map(count)
                .sum::<usize>()
        }
        let total: usize = records.iter().map(count).sum();
        if total == 0 || total > MAX_TREE_RECORDS {
            return Err(Error::config(format!(
                "an sObject tree request takes 1 to {MAX_TREE_RECORDS} records, not {total}"
            ))
            .with_crm(Crm::Salesforce));
        }
        let path = format!("composite/tree/{}", path_segment("sObject name", sobject)?);
        let body =
            json!({ "records": records.iter().map(TreeRecord::to_json).collect::<Vec<_>>() });
        let resp = self.send(&ApiRequest::post(path, body)).await;
        let a: TreeAnswer = match resp {
            Ok(r) => serde_json::from_slice(&r.body)?,
            Err(e) => match e.body().cloned().map(serde_json::from_value::<TreeAnswer>) {
                Some(Ok(a)) if a.has_errors => a,
                _ => return Err(e),
            },
        };
        if a.has_errors {
            let errors: Vec<String> = a
                .results
                .iter()
                .filter_map(|r| {
                    let errs = r["errors"].as_array()?;
                    let e = save_error(errs, r["referenceId"].as_str().unwrap_or("?"));
                    Some(e.to_string())
                })
                .collect();
            return Err(Error::new(
                ErrorKind::Validation,
                format!("the tree was not saved: {}", errors.join("; ")),
            )
            .with_crm(Crm::Salesforce));
        }
        Ok(a.results
            .iter()
            .filter_map(|r| {
                Some((
                    r["referenceId"].as_str()?.to_string(),
                    SalesforceId::new(r["id"].as_str()?),
                ))
            })
            .collect())
    }
}

/// The results in input order: each slot settled before sending (`Some`) as it is, each
/// other from the batch answers (`sent`) in turn; an answer missing is that record's error.
fn in_order<T>(
    slots: Vec<Option<Result<T>>>,
    mut sent: impl Iterator<Item = Result<T>>,
) -> Vec<Result<T>> {
    slots
        .into_iter()
        .map(|slot| match slot {
            Some(r) => r,
            None => sent
                .next()
                .unwrap_or_else(|| Err(Error::bad_response("missing result"))),
        })
        .collect()
}
