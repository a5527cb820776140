//! Batch create, read, update, upsert and archive, in chunks of 100, with one outcome per
//! record in input order.
//!
//! Chunks go through [`crmkit_core::batch::chunked`]. HubSpot answers a batch with 200/201
//! when every input worked and **207 multi-status** when some failed: `results` for those
//! that worked and `errors` (`StandardError`: `category`, `message`, `context`) for the
//! others (`crm-objects-*-v3.json`, `BatchResponse…WithErrors`). Each result is matched to
//! its input by `objectWriteTraceId` (crmkit sends the input's position), else by id (or
//! the `idProperty` value); each error by the ids or trace ids in its `context`. An input
//! the answer does not account for gets an error saying so, never silence.
//!
//! A chunk that fails as a whole:
//! - with a 400 (HubSpot refuses a whole batch when one input is invalid) is split in
//!   halves and sent again until the invalid inputs stand alone, so every valid record is
//!   still written and each invalid one gets HubSpot's own message;
//! - with a 5xx or a timeout is retried by the transport when sending it twice does no
//!   harm (read, update, upsert, archive), and otherwise (create) reported on each of its
//!   records, since HubSpot may have created them.

use std::collections::VecDeque;
use std::ops::Range;

use crmkit_core::http::ApiRequest;
use crmkit_core::{Crm, Error, ErrorKind, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dialect::error_from_body;
use crate::objects::{HubSpotObject, NewAssociation, Objects, Properties, ReadOptions};

/// Inputs per batch request (HubSpot usage guidelines: batch endpoints take 100 inputs).
pub const BATCH_SIZE: usize = 100;
/// Chunks in flight at once; the rate budgets pace them anyway.
const CONCURRENCY: usize = 4;

/// A record to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateInput {
    /// Its properties.
    pub properties: Properties,
    /// Records to associate it with.
    pub associations: Vec<NewAssociation>,
}

/// A patch of one record: only `properties` are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInput {
    /// The record id (or the `idProperty` value, see [`Objects::batch_update_by`]).
    pub id: String,
    /// The properties to change.
    pub properties: Properties,
}

/// A record of an upsert: created unless one with this `idProperty` value exists.
pub type UpsertInput = UpdateInput;

/// The outcome of one upserted record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Upserted {
    /// The record as it is now.
    #[serde(flatten)]
    pub object: HubSpotObject,
    /// Whether it was created (`new` in HubSpot's answer).
    #[serde(rename = "new", default)]
    pub created: bool,
}

/// Which batch endpoint, and how its inputs are told apart in the answer.
#[derive(Debug, Clone)]
enum Op {
    Create,
    Read {
        options: ReadOptions,
        id_property: Option<String>,
    },
    Update {
        id_property: Option<String>,
    },
    Upsert {
        id_property: String,
    },
    Archive,
}

impl Op {
    fn endpoint(&self) -> &'static str {
        match self {
            Op::Create => "/batch/create",
            Op::Read { .. } => "/batch/read",
            Op::Update { .. } => "/batch/update",
            Op::Upsert { .. } => "/batch/upsert",
            Op::Archive => "/batch/archive",
        }
    }

    /// Whether sending the chunk twice does no harm.
    fn repeat_safe(&self) -> bool {
        !matches!(self, Op::Create)
    }

    /// The property whose value identifies inputs, when it is not the record id.
    fn id_property(&self) -> Option<&str> {
        match self {
            Op::Read { id_property, .. } | Op::Update { id_property } => id_property.as_deref(),
            Op::Upsert { id_property } => Some(id_property),
            _ => None,
        }
    }

    fn traced(&self) -> bool {
        matches!(self, Op::Create | Op::Update { .. } | Op::Upsert { .. })
    }
}

/// One input, ready to send: its JSON and the id it is known by (none for a create).
#[derive(Debug, Clone)]
struct Prepared {
    json: Value,
    key: Option<String>,
    label: String,
}

impl Objects {
    /// The POST of one chunk.
    fn batch_request(&self, op: &Op, inputs: &[Prepared]) -> Result<ApiRequest> {
        let items: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut v = p.json.clone();
                if op.traced() {
                    v["objectWriteTraceId"] = json!(i.to_string());
                }
                v
            })
            .collect();
        let mut body = json!({ "inputs": items });
        if let Op::Read {
            options,
            id_property,
        } = op
        {
            body["properties"] = json!(options.properties);
            body["propertiesWithHistory"] = json!(options.properties_with_history);
            if let Some(p) = id_property {
                body["idProperty"] = json!(p);
            }
        }
        let mut req = ApiRequest::post(self.path(op.endpoint())?, body);
        if let Op::Read { options, .. } = op
            && options.archived
        {
            req = req.query("archived", "true");
        }
        if op.repeat_safe() {
            req = req.repeat_safe();
        }
        Ok(req)
    }

    /// Sends one chunk and gives each input its outcome (a JSON record, or `Null` for an
    /// archive).
    async fn send_chunk(&self, op: &Op, inputs: &[Prepared]) -> Result<Vec<Result<Value>>> {
        let req = self.batch_request(op, inputs)?;
        let resp = self.client().send(&req).await?;
        if matches!(op, Op::Archive) {
            return Ok(inputs.iter().map(|_| Ok(Value::Null)).collect());
        }
        let body: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            Error::bad_response(format!("the batch answer is not JSON: {e}")).with_crm(Crm::HubSpot)
        })?;
        Ok(assign(op, inputs, &body))
    }

    /// Sends `inputs` (one chunk), splitting it on a whole-batch 400 until the invalid
    /// inputs stand alone.
    async fn send_splitting(&self, op: &Op, inputs: Vec<Prepared>) -> Result<Vec<Result<Value>>> {
        let mut out: Vec<Option<Result<Value>>> = vec![None; inputs.len()];
        let mut queue: VecDeque<Range<usize>> = VecDeque::new();
        queue.push_back(0..inputs.len());
        while let Some(range) = queue.pop_front() {
            let whole = range.len() == inputs.len();
            match self.send_chunk(op, &inputs[range.clone()]).await {
                Ok(results) => {
                    for (i, r) in range.zip(results) {
                        out[i] = Some(r);
                    }
                }
                Err(e) if e.status() == Some(400) && range.len() > 1 => {
                    let mid = range.start + range.len() / 2;
                    queue.push_back(range.start..mid);
                    queue.push_back(mid..range.end);
                }
                // The core spreads a whole-chunk failure over its records.
                Err(e) if whole => return Err(e),
                Err(e) => {
                    for i in range {
                        out[i] = Some(Err(e.clone().with_record(inputs[i].label.clone())));
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(
                        Error::bad_response("the batch left this record without an outcome")
                            .with_crm(Crm::HubSpot),
                    )
                })
            })
            .collect())
    }

    async fn run(&self, op: Op, inputs: Vec<Prepared>) -> Vec<Result<Value>> {
        let op = &op;
        crmkit_core::batch::chunked(
            inputs,
            BATCH_SIZE,
            CONCURRENCY,
            |p: &Prepared| p.label.clone(),
            |chunk| self.send_splitting(op, chunk),
        )
        .await
    }

    fn label(&self, key: &str) -> String {
        format!("{} {key}", self.object_type())
    }

    /// Creates every input; one outcome per input, in order.
    pub async fn batch_create(&self, inputs: Vec<CreateInput>) -> Vec<Result<HubSpotObject>> {
        let prepared = inputs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Prepared {
                json: crate::objects::create_body(&c.properties, &c.associations),
                key: None,
                label: format!("new {} #{i}", self.object_type()),
            })
            .collect();
        decode_all(self.run(Op::Create, prepared).await)
    }

    /// Reads records by id (or by the unique property `id_property`, such as `email`).
    pub async fn batch_read(
        &self,
        ids: Vec<String>,
        options: &ReadOptions,
        id_property: Option<&str>,
    ) -> Vec<Result<HubSpotObject>> {
        let prepared = ids
            .into_iter()
            .map(|id| Prepared {
                json: json!({ "id": id }),
                label: self.label(&id),
                key: Some(id),
            })
            .collect();
        let op = Op::Read {
            options: options.clone(),
            id_property: id_property.map(str::to_string),
        };
        decode_all(self.run(op, prepared).await)
    }

    /// Patches records by id: only each input's properties are sent.
    pub async fn batch_update(&self, inputs: Vec<UpdateInput>) -> Vec<Result<HubSpotObject>> {
        decode_all(
            self.run(Op::Update { id_property: None }, self.keyed(inputs, None))
                .await,
        )
    }

    /// Patches records found by the unique property `id_property` (the inputs' `id` holds its
    /// value).
    pub async fn batch_update_by(
        &self,
        id_property: &str,
        inputs: Vec<UpdateInput>,
    ) -> Vec<Result<HubSpotObject>> {
        let op = Op::Update {
            id_property: Some(id_property.to_string()),
        };
        decode_all(self.run(op, self.keyed(inputs, Some(id_property))).await)
    }

    /// Creates or updates records by the unique property `id_property` (such as `email`).
    pub async fn batch_upsert(
        &self,
        id_property: &str,
        inputs: Vec<UpsertInput>,
    ) -> Vec<Result<Upserted>> {
        let op = Op::Upsert {
            id_property: id_property.to_string(),
        };
        decode_all(self.run(op, self.keyed(inputs, Some(id_property))).await)
    }

    /// Archives records by id (HubSpot answers 204).
    pub async fn batch_archive(&self, ids: Vec<String>) -> Vec<Result<()>> {
        let prepared = ids
            .into_iter()
            .map(|id| Prepared {
                json: json!({ "id": id }),
                label: self.label(&id),
                key: Some(id),
            })
            .collect();
        self.run(Op::Archive, prepared)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()))
            .collect()
    }

    fn keyed(&self, inputs: Vec<UpdateInput>, id_property: Option<&str>) -> Vec<Prepared> {
        inputs
            .into_iter()
            .map(|u| {
                let mut json = json!({ "id": u.id, "properties": u.properties });
                if let Some(p) = id_property {
                    json["idProperty"] = json!(p);
                }
                Prepared {
                    json,
                    label: self.label(&u.id),
                    key: Some(u.id),
                }
            })
            .collect()
    }
}

fn decode_all<T: serde::de::DeserializeOwned>(results: Vec<Result<Value>>) -> Vec<Result<T>> {
    results
        .into_iter()
        .map(|r| {
            r.and_then(|v| {
                serde_json::from_value(v).map_err(|e| {
                    Error::bad_response(format!("a batch result does not parse: {e}"))
                        .with_crm(Crm::HubSpot)
                })
            })
        })
        .collect()
}

/// Whether `value` is the key of an input: ids exactly, `idProperty` values (emails) without
/// regard to case.
fn same_key(a: &str, b: &str) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

/// Gives each input of a chunk its outcome from a batch answer (see the module docs).
fn assign(op: &Op, inputs: &[Prepared], body: &Value) -> Vec<Result<Value>> {
    let mut out: Vec<Option<Result<Value>>> = vec![None; inputs.len()];
    let results = body["results"].as_array().cloned().unwrap_or_default();
    let mut unmatched = Vec::new();
    for r in results {
        let by_trace = r["objectWriteTraceId"]
            .as_str()
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|i| *i < inputs.len() && out[*i].is_none());
        let by_key = || {
            let keys: Vec<&str> = [
                r["id"].as_str(),
                op.id_property().and_then(|p| r["properties"][p].as_str()),
            ]
            .into_iter()
            .flatten()
            .collect();
            (0..inputs.len()).find(|i| {
                out[*i].is_none()
                    && inputs[*i]
                        .key
                        .as_deref()
                        .is_some_and(|k| keys.iter().any(|v| same_key(k, v)))
            })
        };
        match by_trace.or_else(by_key) {
            Some(i) => out[i] = Some(Ok(r)),
            None => unmatched.push(r),
        }
    }
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let mut stray: Vec<Error> = Vec::new();
    for e in errors {
        let named: Vec<String> = e["context"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
            .flat_map(|v| match v {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            })
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let status = match e["category"].as_str() {
            Some("OBJECT_NOT_FOUND") => 404,
            Some("CONFLICT") => 409,
            _ => 400,
        };
        let error = error_from_body(status, e.clone())
            .with_crm(Crm::HubSpot)
            .with_status(status);
        let mut hit = false;
        for (i, p) in inputs.iter().enumerate() {
            let trace = i.to_string();
            let named_here = named.iter().any(|n| {
                (op.traced() && *n == trace) || p.key.as_deref().is_some_and(|k| same_key(k, n))
            });
            if out[i].is_none() && named_here {
                out[i] = Some(Err(error.clone().with_record(p.label.clone())));
                hit = true;
            }
        }
        if !hit {
            stray.push(error);
        }
    }
    // Without trace ids or keys in the answer (a create whose results carry no trace id),
    // a complete answer free of errors is taken in input order.
    let open: Vec<usize> = (0..inputs.len()).filter(|i| out[*i].is_none()).collect();
    if stray.is_empty() && open.len() == unmatched.len() {
        for (i, r) in open.into_iter().zip(unmatched) {
            out[i] = Some(Ok(r));
        }
    }
    out.into_iter()
        .zip(inputs)
        .map(|(r, p)| {
            r.unwrap_or_else(|| {
                let why = stray
                    .iter()
                    .map(Error::message)
                    .collect::<Vec<_>>()
                    .join("; ");
                let kind = stray.first().map_or(ErrorKind::BadResponse, Error::kind);
                let message = if why.is_empty() {
                    "HubSpot's batch answer does not account for this record".to_string()
                } else {
                    format!("HubSpot's batch answer does not say which record failed: {why}")
                };
                Err(Error::new(kind, message)
                    .with_crm(Crm::HubSpot)
                    .with_record(p.label.clone()))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(keys: &[&str]) -> Vec<Prepared> {
        keys.iter()
            .map(|k| Prepared {
                json: json!({ "id": k }),
                key: Some(k.to_string()),
                label: format!("contact {k}"),
            })
            .collect()
    }

    #[test]
    fn a_multi_status_becomes_one_outcome_per_input_in_order() {
        let body = json!({
            "status": "COMPLETE",
            "results": [{"id": "3", "properties": {}}, {"id": "1", "properties": {}}],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": ["2"]}, "errors": [], "links": {}}]
        });
        let op = Op::Read {
            options: ReadOptions::default(),
            id_property: None,
        };
        let out = assign(&op, &keyed(&["1", "2", "3"]), &body);
        assert_eq!(out[0].as_ref().expect("1")["id"], "1");
        let e = out[1].as_ref().expect_err("2 missing");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("may be deleted"), "{e}");
        assert_eq!(e.record(), Some("contact 2"));
        assert_eq!(out[2].as_ref().expect("3")["id"], "3");
    }

    #[test]
    fn upserts_match_by_id_property_and_creates_by_trace_or_order() {
        let op = Op::Upsert {
            id_property: "email".into(),
        };
        let body = json!({"results": [
            {"id": "77", "new": true, "properties": {"email": "b@x.com"}},
            {"id": "76", "new": false, "properties": {"email": "a@x.com"}}
        ]});
        let out = assign(&op, &keyed(&["A@x.com", "b@x.com"]), &body);
        assert_eq!(out[0].as_ref().expect("a")["id"], "76");
        assert_eq!(out[1].as_ref().expect("b")["id"], "77");

        let creates: Vec<Prepared> = (0..3)
            .map(|i| Prepared {
                json: json!({}),
                key: None,
                label: format!("new #{i}"),
            })
            .collect();
        let traced = json!({"results": [
            {"id": "c", "objectWriteTraceId": "2"}, {"id": "a", "objectWriteTraceId": "0"}
        ], "errors": [{"category": "VALIDATION_ERROR", "message": "Property \"x\" does not exist", "context": {"objectWriteTraceId": ["1"]}}]});
        let out = assign(&Op::Create, &creates, &traced);
        assert_eq!(out[0].as_ref().expect("a")["id"], "a");
        assert_eq!(
            out[1].as_ref().expect_err("b").kind(),
            ErrorKind::Validation
        );
        assert_eq!(out[2].as_ref().expect("c")["id"], "c");

        let untraced = json!({"results": [{"id": "a"}, {"id": "b"}, {"id": "c"}]});
        let out = assign(&Op::Create, &creates, &untraced);
        assert_eq!(out[2].as_ref().expect("c")["id"], "c");
    }

    #[test]
    fn an_error_naming_no_input_is_reported_on_every_open_input() {
        let body = json!({"results": [{"id": "1"}], "errors": [
            {"category": "VALIDATION_ERROR", "message": "something failed", "context": {}}
        ]});
        let out = assign(
            &Op::Update { id_property: None },
            &keyed(&["1", "2", "3"]),
            &body,
        );
        assert!(out[0].is_ok());
        for r in &out[1..] {
            let e = r.as_ref().expect_err("unaccounted");
            assert!(e.message().contains("something failed"), "{e}");
        }
    }
}
