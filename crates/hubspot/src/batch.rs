//! Batch create, read, update, upsert and archive, in chunks of 100, with one outcome per
//! record in input order.
//!
//! Chunks go through [`crmkit_core::batch::chunked`]. HubSpot answers a batch with 200/201
//! when every input worked and **207 multi-status** when some failed: `results` for those
//! that worked and `errors` (`StandardError`: `category`, `message`, `context`) for the
//! others (`crm-objects-*-v3.json`, `BatchResponse…WithErrors`). Every create, update and
//! upsert input carries an `objectWriteTraceId` (the three batch input schemas accept it;
//! read and archive inputs do not), which HubSpot echoes on its result. Each result is
//! matched to its input by that trace id, else by record id (update, read) or by the
//! `idProperty` value without regard to case (upsert, and reads or updates by a unique
//! property: HubSpot lowercases emails); each error by the ids or trace ids in its
//! `context`. Results are never matched by position: an input the answer does not account
//! for gets an error saying HubSpot did not report it, never someone else's result.
//!
//! A chunk that fails as a whole:
//! - with a 400 (HubSpot refuses a whole batch when one input is invalid) or a 409 (a batch
//!   create holding one contact whose email exists is refused with "Contact already exists.
//!   Existing ID: N") wrote nothing, so it is classified before anything is sent again:
//!   - inputs the error names in its `context` (ids, trace ids) get that error and the
//!     rest is sent again;
//!   - a property error that does not depend on the value (`PROPERTY_DOESNT_EXIST`, a
//!     read-only property; the property named in `context` or in the message's detail
//!     list) goes to every input carrying that property at once, without further requests
//!     for them (a stale custom field in all 100 inputs costs one request, not 199); the
//!     inputs without it are sent again; for a read, whose property list is shared, it
//!     goes to the whole chunk;
//!   - otherwise (an error one record can cause: a bad value, a duplicate, a 409) the
//!     part is sent again in halves until the refused inputs stand alone, but with at
//!     most `4·⌈log2 n⌉` extra requests for a chunk of `n` inputs ([`split_budget`]: 28
//!     for 100, enough to isolate two bad records). Parts still unresolved when that
//!     budget is spent get the chunk's error (not written; the caller may send them
//!     again), so a chunk costs at most `1 + 4·⌈log2 n⌉` blind requests (plus one per
//!     answer naming inputs) instead of `2n − 1` = 199.
//!
//!   Every other record is still written and each refused one gets HubSpot's own message
//!   (for a 409, naming the existing record);
//! - with a 5xx or a timeout is retried by the transport when sending it twice does no
//!   harm (read, update, upsert, archive), and otherwise (create) reported on each of its
//!   records, since HubSpot may have created them.

use std::collections::VecDeque;

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
    /// Its `objectWriteTraceId` ([`trace_id`] of its position in its chunk), set when the
    /// chunk is sent, so it stays the same in every part a refused chunk is split into.
    trace: String,
}

impl Objects {
    /// The POST of one chunk.
    fn batch_request(&self, op: &Op, inputs: &[Prepared]) -> Result<ApiRequest> {
        let items: Vec<Value> = inputs
            .iter()
            .map(|p| {
                let mut v = p.json.clone();
                if op.traced() {
                    v["objectWriteTraceId"] = json!(p.trace);
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
            let mut properties = options.properties.clone();
            // Results read by a unique property are matched to inputs by its value.
            if let Some(p) = id_property
                && !properties.is_empty()
                && !properties.contains(p)
            {
                properties.push(p.clone());
            }
            body["properties"] = json!(properties);
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

    /// Sends `inputs` (one chunk). A chunk HubSpot refuses as a whole with a 400 or a 409
    /// wrote nothing, so it is sent again without the inputs the error names or that carry
    /// a property the error refuses (which get that error), or, when it names none, in
    /// halves within [`split_budget`] (see the module docs).
    async fn send_splitting(
        &self,
        op: &Op,
        mut inputs: Vec<Prepared>,
    ) -> Result<Vec<Result<Value>>> {
        for (i, p) in inputs.iter_mut().enumerate() {
            p.trace = trace_id(i);
        }
        let mut out: Vec<Option<Result<Value>>> = vec![None; inputs.len()];
        let mut queue: VecDeque<Vec<usize>> = VecDeque::new();
        queue.push_back((0..inputs.len()).collect());
        let mut splits_left = split_budget(inputs.len());
        while let Some(part) = queue.pop_front() {
            let whole = part.len() == inputs.len();
            let sent: Vec<Prepared> = part.iter().map(|&i| inputs[i].clone()).collect();
            match self.send_chunk(op, &sent).await {
                Ok(results) => {
                    for (&i, r) in part.iter().zip(results) {
                        out[i] = Some(r);
                    }
                }
                Err(e) if refused_whole(&e) && part.len() > 1 => {
                    let names = e.body().map(named_in).unwrap_or_default();
                    let refused = e.body().map(refused_properties).unwrap_or_default();
                    let (named, rest): (Vec<usize>, Vec<usize>) = part.iter().partition(|&&i| {
                        names_input(op, &inputs[i], &names) || carries_any(op, &inputs[i], &refused)
                    });
                    if rest.is_empty() || (named.is_empty() && splits_left < 2) {
                        // The error names every input of the part (by id, or by a refused
                        // property they all carry), or the split budget is spent: one
                        // answer for all, no request more.
                        for i in part {
                            out[i] = Some(Err(e.clone().with_record(inputs[i].label.clone())));
                        }
                    } else if named.is_empty() {
                        splits_left -= 2;
                        let (a, b) = part.split_at(part.len() / 2);
                        queue.push_back(a.to_vec());
                        queue.push_back(b.to_vec());
                    } else {
                        for i in named {
                            out[i] = Some(Err(e.clone().with_record(inputs[i].label.clone())));
                        }
                        queue.push_back(rest);
                    }
                }
                // The core spreads a whole-chunk failure over its records.
                Err(e) if whole => return Err(e),
                Err(e) => {
                    for i in part {
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
                trace: String::new(),
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
                trace: String::new(),
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
                trace: String::new(),
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
                    trace: String::new(),
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
/// regard to case (HubSpot stores emails lowercased).
fn same_key(a: &str, b: &str) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

/// The `objectWriteTraceId` of the `i`th input of a chunk: prefixed, so that it can never
/// be read as a record id (HubSpot's are numbers) in an error's `context`.
fn trace_id(i: usize) -> String {
    format!("crmkit-{i}")
}

/// Whether HubSpot refused a whole chunk for something in it: a 400 (one invalid input
/// fails the batch) or a 409 (a batch create with one contact whose email exists answers
/// "Contact already exists. Existing ID: N" for the whole batch).
fn refused_whole(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 409))
}

/// The strings an error body names in `context` (`StandardError.context`: lists of ids or
/// trace ids), its own or that of its detailed `errors`; property names are not records.
pub(crate) fn named_in(body: &Value) -> Vec<String> {
    std::iter::once(body)
        .chain(body["errors"].as_array().into_iter().flatten())
        .flat_map(|e| e["context"].as_object().into_iter().flatten())
        .filter(|(k, _)| !k.to_ascii_lowercase().contains("property"))
        .map(|(_, v)| v)
        .flat_map(|v| match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        })
        .filter_map(|v| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// The extra requests blind halving may spend on one chunk of `n` inputs: `4·⌈log2 n⌉`
/// (28 for 100), enough to isolate two refused inputs (two halves per level each), so a
/// chunk refused for something no answer names costs at most `1 + 4·⌈log2 n⌉` requests
/// instead of `2n − 1`.
pub(crate) fn split_budget(n: usize) -> usize {
    let levels = usize::BITS - n.saturating_sub(1).leading_zeros();
    4 * levels as usize
}

/// Property errors that do not depend on the value (HubSpot's `PROPERTY_DOESNT_EXIST`,
/// and read-only properties, "is a read only property"), with the property each names:
/// from `context` keys about properties (`propertyName`) when the message is about a
/// missing property, and from the detail list HubSpot puts in the message ("Property
/// values were not valid: [{…, "error": "PROPERTY_DOESNT_EXIST", "name": "x"}]").
/// Every input carrying such a property is refused for it, whatever its value.
pub(crate) fn refused_properties(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::iter::once(body).chain(body["errors"].as_array().into_iter().flatten()) {
        let message = e["message"].as_str().unwrap_or_default();
        let value_free = message.contains("does not exist")
            || message.contains("PROPERTY_DOESNT_EXIST")
            || message.contains("read only property")
            || e["code"].as_str() == Some("PROPERTY_DOESNT_EXIST");
        if let Some(detail) = message.find('[').and_then(|at| {
            serde_json::from_str::<Vec<Value>>(message.get(at..).unwrap_or_default()).ok()
        }) {
            for d in detail {
                let code = d["error"].as_str().unwrap_or_default();
                if matches!(code, "PROPERTY_DOESNT_EXIST" | "READ_ONLY_VALUE")
                    && let Some(name) = d["name"].as_str()
                {
                    out.push(name.to_string());
                }
            }
        }
        // `Property "x" does not exist` and `"x" is a read only property`, in prose.
        for (at, _) in message.match_indices("\" does not exist") {
            if let Some(name) = message.get(..at).and_then(|h| h.rsplit('"').next()) {
                // Inside the JSON detail list the quotes are escaped.
                out.push(name.trim_end_matches('\\').to_string());
            }
        }
        for (at, _) in message.match_indices("\" is a read only property") {
            if let Some(name) = message.get(..at).and_then(|h| h.rsplit('"').next()) {
                // Inside the JSON detail list the quotes are escaped.
                out.push(name.trim_end_matches('\\').to_string());
            }
        }
        if value_free {
            for (k, v) in e["context"].as_object().into_iter().flatten() {
                if k.to_ascii_lowercase().contains("property") {
                    match v {
                        Value::Array(a) => {
                            out.extend(a.iter().filter_map(|x| x.as_str().map(str::to_string)))
                        }
                        Value::String(s) => out.push(s.clone()),
                        _ => {}
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether input `p` carries one of the `refused` properties; for a read, whose property
/// list is the request's, every input does.
fn carries_any(op: &Op, p: &Prepared, refused: &[String]) -> bool {
    if refused.is_empty() {
        return false;
    }
    match p.json["properties"].as_object() {
        Some(props) => refused.iter().any(|r| props.contains_key(r)),
        None => matches!(op, Op::Read { .. }),
    }
}

/// Whether `names` (from [`named_in`]) point at input `p`: by its trace id or its key.
fn names_input(op: &Op, p: &Prepared, names: &[String]) -> bool {
    names
        .iter()
        .any(|n| (op.traced() && *n == p.trace) || p.key.as_deref().is_some_and(|k| same_key(k, n)))
}

/// Gives each input of a chunk its outcome from a batch answer (see the module docs).
/// Results are matched by `objectWriteTraceId`, else by id or `idProperty` value, never by
/// position: an input nothing matches gets an error saying HubSpot did not report it.
fn assign(op: &Op, inputs: &[Prepared], body: &Value) -> Vec<Result<Value>> {
    let mut out: Vec<Option<Result<Value>>> = vec![None; inputs.len()];
    let results = body["results"].as_array().cloned().unwrap_or_default();
    let mut unmatched = 0usize;
    for r in results {
        let by_trace = || {
            let t = r["objectWriteTraceId"].as_str()?;
            (0..inputs.len()).find(|&i| op.traced() && out[i].is_none() && inputs[i].trace == t)
        };
        let by_key = || {
            let keys: Vec<&str> = [
                r["id"].as_str(),
                op.id_property().and_then(|p| r["properties"][p].as_str()),
            ]
            .into_iter()
            .flatten()
            .collect();
            (0..inputs.len()).find(|&i| {
                out[i].is_none()
                    && inputs[i]
                        .key
                        .as_deref()
                        .is_some_and(|k| keys.iter().any(|v| same_key(k, v)))
            })
        };
        match by_trace().or_else(by_key) {
            Some(i) => out[i] = Some(Ok(r)),
            None => unmatched += 1,
        }
    }
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let mut stray: Vec<Error> = Vec::new();
    for e in errors {
        let named = named_in(&e);
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
            if out[i].is_none() && names_input(op, p, &named) {
                out[i] = Some(Err(error.clone().with_record(p.label.clone())));
                hit = true;
            }
        }
        if !hit {
            stray.push(error);
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
                let mut message = if why.is_empty() {
                    "HubSpot did not report this record in its batch answer".to_string()
                } else {
                    format!(
                        "HubSpot did not report this record in its batch answer, which has errors naming no record: {why}"
                    )
                };
                if unmatched > 0 {
                    message.push_str(&format!(
                        " ({unmatched} result(s) in the answer match no input; none is guessed to be this one)"
                    ));
                }
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
            .enumerate()
            .map(|(i, k)| Prepared {
                json: json!({ "id": k }),
                key: Some(k.to_string()),
                label: format!("contact {k}"),
                trace: trace_id(i),
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
    fn upserts_match_by_id_property_and_creates_by_trace_never_by_order() {
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
                trace: trace_id(i),
            })
            .collect();
        let traced = json!({"results": [
            {"id": "c", "objectWriteTraceId": "crmkit-2"}, {"id": "a", "objectWriteTraceId": "crmkit-0"}
        ], "errors": [{"category": "VALIDATION_ERROR", "message": "Property \"x\" does not exist", "context": {"objectWriteTraceId": ["crmkit-1"]}}]});
        let out = assign(&Op::Create, &creates, &traced);
        assert_eq!(out[0].as_ref().expect("a")["id"], "a");
        assert_eq!(
            out[1].as_ref().expect_err("b").kind(),
            ErrorKind::Validation
        );
        assert_eq!(out[2].as_ref().expect("c")["id"], "c");

        // Results without trace ids cannot be told apart: no input takes one by position.
        let untraced = json!({"results": [{"id": "a"}, {"id": "b"}, {"id": "c"}]});
        for r in assign(&Op::Create, &creates, &untraced) {
            let e = r.expect_err("not guessed");
            assert!(e.message().contains("did not report"), "{e}");
            assert!(e.message().contains("3 result(s)"), "{e}");
        }
        // An update answered with another record's result, or none, is not taken.
        let stray =
            json!({"results": [{"id": "9", "properties": {}}, {"id": "2", "properties": {}}]});
        let out = assign(
            &Op::Update { id_property: None },
            &keyed(&["1", "2"]),
            &stray,
        );
        assert!(
            out[0]
                .as_ref()
                .expect_err("1 unreported")
                .message()
                .contains("did not report")
        );
        assert_eq!(out[1].as_ref().expect("2")["id"], "2");
        // Upserts by email: a lowercased email still matches, a trace id wins over order.
        let op = Op::Upsert {
            id_property: "email".into(),
        };
        let body = json!({"results": [
            {"id": "5", "new": true, "objectWriteTraceId": "crmkit-1", "properties": {"email": "x@y.com"}},
            {"id": "4", "new": false, "properties": {"email": "mixed@case.com"}}
        ]});
        let out = assign(&op, &keyed(&["Mixed@Case.com", "X@y.com"]), &body);
        assert_eq!(out[0].as_ref().expect("mixed")["id"], "4");
        assert_eq!(out[1].as_ref().expect("x")["id"], "5");
    }

    #[test]
    fn a_refused_batch_names_its_inputs_by_trace_or_key() {
        let inputs = keyed(&["a@x.com", "b@x.com", "c@x.com"]);
        let op = Op::Upsert {
            id_property: "email".into(),
        };
        let body = json!({"status": "error", "message": "Duplicate IDs found in batch input",
            "category": "VALIDATION_ERROR", "context": {"ids": ["B@X.com"]}});
        let names = named_in(&body);
        let hits: Vec<bool> = inputs.iter().map(|p| names_input(&op, p, &names)).collect();
        assert_eq!(hits, [false, true, false]);
        let nested = json!({"errors": [{"message": "bad", "context": {"objectWriteTraceId": ["crmkit-2"]}}]});
        let names = named_in(&nested);
        let hits: Vec<bool> = inputs.iter().map(|p| names_input(&op, p, &names)).collect();
        assert_eq!(hits, [false, false, true]);
        // A record id that equals an input's position names that record only.
        let by_id = keyed(&["1", "0"]);
        let names = named_in(&json!({"context": {"ids": ["0"], "propertyName": ["1"]}}));
        let hits: Vec<bool> = by_id
            .iter()
            .map(|p| names_input(&Op::Update { id_property: None }, p, &names))
            .collect();
        assert_eq!(hits, [false, true]);
        let conflict = json!({"status": "error", "message": "Contact already exists. Existing ID: 5",
            "category": "CONFLICT"});
        assert!(named_in(&conflict).is_empty(), "halved instead");
    }

    #[test]
    fn property_errors_independent_of_the_value_name_their_property() {
        let doesnt = json!({"status": "error", "category": "VALIDATION_ERROR",
            "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"stale\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"stale\"}]",
            "context": {"propertyName": ["stale"]}});
        assert_eq!(refused_properties(&doesnt), ["stale"]);
        let prose =
            json!({"message": "Property values were not valid: Property \"bogus\" does not exist"});
        assert_eq!(refused_properties(&prose), ["bogus"]);
        let ro = json!({"message": "Property values were not valid: \"hs_object_id\" is a read only property; its value cannot be set."});
        assert_eq!(refused_properties(&ro), ["hs_object_id"]);
        // A bad value is one record's fault: nothing to refuse for everyone.
        let value = json!({"message": "Property values were not valid: Email address x is invalid",
            "context": {"propertyName": ["email"]}});
        assert!(refused_properties(&value).is_empty());
        assert_eq!(split_budget(100), 28);
        assert_eq!(split_budget(2), 4);
        assert_eq!(split_budget(1), 0);
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
