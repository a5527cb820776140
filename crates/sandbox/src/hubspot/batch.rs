//! `/crm/v3/objects/{type}/batch/{read,create,update,upsert,archive}`: at most 100 inputs,
//! 207 multi-status with `numErrors` and `errors[]` when some inputs fail. Two inputs naming
//! one record (400 "Duplicate IDs found in batch input") and a batch create holding an
//! existing contact's email (409 "Contact already exists. Existing ID: N") refuse the whole
//! batch, as HubSpot does (sources at `inputs` and `create`).

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::{Data, iso};
use super::kinds::ObjectType;
use super::objects::{Shape, all_set, create_linked, render};

/// Inputs per batch request: 100 (HubSpot usage guidelines, "batch … up to 100 records").
pub(crate) const BATCH_MAX: usize = 100;

fn inputs(body: &Value) -> Result<&Vec<Value>, ApiError> {
    let inputs = body["inputs"]
        .as_array()
        .ok_or_else(|| ApiError::invalid("Invalid input JSON: inputs is required"))?;
    if inputs.len() > BATCH_MAX {
        return Err(ApiError::invalid(format!(
            "Too many inputs: {} (the limit is {BATCH_MAX})",
            inputs.len()
        ))
        .with_context(json!({"limit": [BATCH_MAX.to_string()]})));
    }
    // HubSpot refuses the whole batch (nothing written) when two inputs name the same
    // record: 400 VALIDATION_ERROR "Duplicate IDs found in batch input: [N]. IDs must be
    // unique" with `context.ids` naming them — HubSpot's answer as recorded in
    // https://github.com/rudderlabs/rudder-transformer (test/integrations/destinations/hs,
    // "Duplicate IDs found in batch input"); also
    // https://github.com/segmentio/action-destinations/pull/3969 (a batch upsert naming one
    // `idProperty` value twice is rejected). Emails compare without case (HubSpot
    // lowercases them).
    let mut seen = std::collections::BTreeSet::new();
    let mut dups: Vec<String> = vec![];
    for input in inputs {
        let id = id_of(input);
        if id.is_empty() {
            continue;
        }
        let by = input["idProperty"].as_str().or(body["idProperty"].as_str());
        let key = if by == Some("email") {
            id.to_lowercase()
        } else {
            id.clone()
        };
        if !seen.insert(key) && !dups.contains(&id) {
            dups.push(id);
        }
    }
    if !dups.is_empty() {
        return Err(ApiError::invalid(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            dups.join(", ")
        ))
        .with_context(json!({"ids": dups})));
    }
    Ok(inputs)
}

fn id_of(input: &Value) -> String {
    match &input["id"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The `BatchResponse` body, and its status: `ok` when nothing failed, 207 otherwise.
fn answer(ok: u16, results: Vec<Value>, errors: Vec<Value>) -> (u16, Value) {
    let now = iso(chrono::Utc::now());
    let mut body = json!({"status": "COMPLETE", "results": results,
                          "requestedAt": now, "startedAt": now, "completedAt": now});
    if errors.is_empty() {
        return (ok, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    (207, body)
}

/// `batch/read`: missing ids become one OBJECT_NOT_FOUND error naming them. `archived` is a
/// query parameter (crm-objects-*-v3.json, `batch/read` parameters); `idProperty` in the
/// body may name any unique property.
pub(crate) fn read(
    data: &Data,
    t: &ObjectType,
    params: &[(String, String)],
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    let inputs = inputs(body)?;
    let shape = Shape::from_body(body);
    let id_property = body["idProperty"].as_str();
    let archived = super::objects::param(params, "archived") == Some("true");
    let mut results = vec![];
    let mut missing = vec![];
    for input in inputs {
        let id = id_of(input);
        let row = data
            .resolve(t, &id, id_property)?
            .and_then(|id| data.table(t).and_then(|tb| tb.get(&id)))
            .filter(|r| r["archived"] == json!(archived));
        match row {
            Some(row) => results.push(render(data, t, row, &shape)),
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![ApiError::not_found(format!(
            "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
            t.upper
        ))
        .with_context(json!({"ids": missing}))
        .standard()]
    };
    Ok(answer(200, results, errors))
}

/// A written record as a batch answers it, echoing the input's `objectWriteTraceId`
/// (crm-objects-contacts-v3.json: `SimplePublicObject.objectWriteTraceId`, "An identifier
/// used for tracing the write request for the object") so callers can match results to inputs.
fn written(data: &Data, t: &ObjectType, row: &Value, input: &Value) -> Value {
    let mut out = render(
        data,
        t,
        row,
        &Shape {
            properties: Some(all_set(row)),
            ..Shape::default()
        },
    );
    if let Some(trace) = input["objectWriteTraceId"].as_str() {
        out["objectWriteTraceId"] = json!(trace);
    }
    out
}

/// `batch/create` → 201, or 207 with the inputs that failed. Each input's `associations`
/// are made as on a single create (crm-objects-contacts-v3.json,
/// `SimplePublicObjectBatchInputForCreate` requires `associations`).
pub(crate) fn create(
    data: &mut Data,
    t: &'static ObjectType,
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    // A batch create holding a contact whose email exists is refused as a whole (nothing
    // written) with the 409 of the first such input only: "Contact already exists.
    // Existing ID: N", category CONFLICT, no `context`
    // (https://github.com/HubSpot/hubspot-api-python/issues/51: two existing emails in one
    // batch create answer with the first one's 409 alone).
    if t.plural == "contacts" {
        for input in inputs(body)? {
            let email = input["properties"]["email"].as_str().unwrap_or_default();
            if let Some(existing) = data.contact_by_email(email).filter(|_| !email.is_empty()) {
                return Err(ApiError {
                    status: 409,
                    category: "CONFLICT",
                    message: format!("Contact already exists. Existing ID: {existing}"),
                    context: Value::Null,
                });
            }
        }
    }
    each_input(data, t, body, 201, |data, input| {
        create_linked(data, t, input).map(|row| (row, None))
    })
}

/// `batch/update` → 200, or 207 with the inputs that failed.
pub(crate) fn update(
    data: &mut Data,
    t: &ObjectType,
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    each_input(data, t, body, 200, |data, input| {
        let key = id_of(input);
        let p = data.validate(t, &input["properties"])?;
        let id = data
            .resolve(t, &key, input["idProperty"].as_str())?
            .ok_or_else(|| {
                ApiError::not_found(format!("resource not found: {key}"))
                    .with_context(json!({"ids": [key]}))
            })?;
        data.update(t, &id, p).map(|row| (row, None))
    })
}

/// `batch/upsert` by a unique `idProperty` (contacts' `email`, or a custom property created
/// with `hasUniqueValue`): results carry `new`.
pub(crate) fn upsert(
    data: &mut Data,
    t: &ObjectType,
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    each_input(data, t, body, 200, |data, input| {
        let key = id_of(input);
        let id_property = input["idProperty"].as_str();
        data.validate(t, &input["properties"]).and_then(|mut p| {
            match data.resolve(t, &key, id_property)? {
                Some(id)
                    if data
                        .table(t)
                        .and_then(|tb| tb.get(&id))
                        .is_some_and(|r| r["archived"] == json!(false)) =>
                {
                    data.update(t, &id, p).map(|r| (r, Some(false)))
                }
                _ => {
                    // A new record takes the key as its unique property value.
                    if let Some(prop) = id_property.filter(|p| *p != "hs_object_id")
                        && !p.iter().any(|(k, _)| k == prop)
                    {
                        p.push((prop.to_string(), key.clone()));
                    }
                    data.create(t, p, None).map(|r| (r, Some(true)))
                }
            }
        })
    })
}

/// Runs `write` on each input and answers `ok`, or 207 with the inputs that failed; a
/// `Some(new)` from `write` is reported as the result's `new` (upserts).
fn each_input(
    data: &mut Data,
    t: &ObjectType,
    body: &Value,
    ok: u16,
    write: impl Fn(&mut Data, &Value) -> Result<(Value, Option<bool>), ApiError>,
) -> Result<(u16, Value), ApiError> {
    let mut results = vec![];
    let mut errors = vec![];
    for input in inputs(body)? {
        match write(data, input) {
            Ok((row, new)) => {
                let mut r = written(data, t, &row, input);
                if let Some(new) = new {
                    r["new"] = json!(new);
                }
                results.push(r);
            }
            Err(e) => errors.push(e.standard()),
        }
    }
    Ok(answer(ok, results, errors))
}

/// `batch/archive` → 204; ids that do not exist are ignored.
pub(crate) fn archive(
    data: &mut Data,
    t: &ObjectType,
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    for input in inputs(body)? {
        data.archive(t, &id_of(input));
    }
    Ok((204, Value::Null))
}
