//! Associations v4 (`/crm/v4/objects/{from}/{id}/associations/…` and
//! `/crm/v4/associations/{from}/{to}/batch/…`, crm-associations-v4.json), with HubSpot's
//! default association type ids and their reverses (hubspot-api-python
//! `hubspot/crm/association_type.py`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::{Assoc, Data, iso};
use super::kinds::ObjectType;

/// (from, to, unlabeled type id, its reverse), from HubSpot's defined association types.
const DEFAULTS: &[(&str, &str, u32, u32)] = &[
    ("contact", "company", 279, 280),
    ("deal", "contact", 3, 4),
    ("deal", "company", 341, 342),
    ("note", "contact", 202, 201),
    ("note", "company", 190, 189),
    ("note", "deal", 214, 213),
    ("call", "contact", 194, 193),
    ("call", "company", 182, 181),
    ("call", "deal", 206, 205),
    ("task", "contact", 204, 203),
    ("task", "company", 192, 191),
    ("task", "deal", 216, 215),
    ("meeting", "contact", 200, 199),
    ("meeting", "company", 188, 187),
    ("meeting", "deal", 212, 211),
    ("email", "contact", 198, 197),
    ("email", "company", 186, 185),
    ("email", "deal", 210, 209),
];

/// The primary types (contact ↔ company, deal ↔ company), labelled "Primary".
const PRIMARY: &[u32] = &[1, 2, 5, 6];

/// Primary and parent/child pairs that have a reverse but are not the unlabeled default.
const OTHERS: &[(u32, u32)] = &[(1, 2), (5, 6), (13, 14)];

/// The unlabeled default type id from one type to another.
pub(crate) fn default_type(from: &ObjectType, to: &ObjectType) -> Option<u32> {
    DEFAULTS.iter().find_map(|(f, t, id, back)| {
        if *f == from.singular && *t == to.singular {
            Some(*id)
        } else if *t == from.singular && *f == to.singular {
            Some(*back)
        } else {
            None
        }
    })
}

/// The type id of the same association seen from the other side; user-defined labels are
/// their own reverse (sandbox's choice).
pub(crate) fn reverse(type_id: u32) -> u32 {
    DEFAULTS
        .iter()
        .map(|(_, _, a, b)| (*a, *b))
        .chain(OTHERS.iter().copied())
        .find_map(|(a, b)| {
            if a == type_id {
                Some(b)
            } else if b == type_id {
                Some(a)
            } else {
                None
            }
        })
        .unwrap_or(type_id)
}

/// The category of a type id: HubSpot's own ids are below 1,000 (sandbox's reading).
fn category(type_id: u32) -> &'static str {
    if type_id < 1_000 {
        "HUBSPOT_DEFINED"
    } else {
        "USER_DEFINED"
    }
}

fn exists(data: &Data, t: &ObjectType, id: &str) -> bool {
    data.table(t)
        .and_then(|tb| tb.get(id))
        .is_some_and(|r| r["archived"] == json!(false))
}

fn id_number(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// Links both ways with each type id.
pub(crate) fn link(
    data: &mut Data,
    from: &'static ObjectType,
    from_id: &str,
    to: &'static ObjectType,
    to_id: &str,
    type_ids: &[u32],
) -> Result<(), ApiError> {
    for (t, id) in [(from, from_id), (to, to_id)] {
        if !exists(data, t, id) {
            return Err(ApiError::not_found(format!(
                "No {} with id {id}",
                t.singular
            )));
        }
    }
    // A primary association comes with the unlabelled one: HubSpot lists a primary company
    // as `{typeId: 1, label: "Primary"}` next to `{typeId: 279, label: null}`
    // (github.com/HubSpot/hubspot-api-ruby/issues/171).
    let mut type_ids = type_ids.to_vec();
    if type_ids.iter().any(|n| PRIMARY.contains(n))
        && let Some(unlabeled) = default_type(from, to)
        && !type_ids.contains(&unlabeled)
    {
        type_ids.push(unlabeled);
    }
    for type_id in &type_ids {
        data.associate(
            from,
            from_id,
            Assoc {
                to_type: to.plural,
                to_id: to_id.to_string(),
                type_id: *type_id,
            },
        );
        data.associate(
            to,
            to_id,
            Assoc {
                to_type: from.plural,
                to_id: from_id.to_string(),
                type_id: reverse(*type_id),
            },
        );
    }
    Ok(())
}

fn specs(body: &Value) -> Result<Vec<u32>, ApiError> {
    let list = body.as_array().ok_or_else(|| {
        ApiError::invalid("Invalid input JSON: expected an array of association specs")
    })?;
    list.iter()
        .map(|s| {
            s["associationTypeId"]
                .as_u64()
                .map(|n| n as u32)
                .ok_or_else(|| ApiError::invalid("associationTypeId is required"))
        })
        .collect()
}

fn pair(
    from: &ObjectType,
    from_id: &str,
    to: &ObjectType,
    to_id: &str,
    labels: Vec<Value>,
) -> Value {
    json!({"fromObjectTypeId": from.type_id, "fromObjectId": id_number(from_id),
           "toObjectTypeId": to.type_id, "toObjectId": id_number(to_id), "labels": labels})
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` with labels → 201.
pub(crate) fn put_labels(
    data: &mut Data,
    from: &'static ObjectType,
    from_id: &str,
    to: &'static ObjectType,
    to_id: &str,
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    let ids = specs(body)?;
    link(data, from, from_id, to, to_id, &ids)?;
    Ok((201, pair(from, from_id, to, to_id, vec![])))
}

fn default_result(from_id: &str, to_id: &str, type_id: u32) -> Value {
    json!({"from": {"id": from_id}, "to": {"id": to_id},
           "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}})
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}` → 200.
pub(crate) fn put_default(
    data: &mut Data,
    from: &'static ObjectType,
    from_id: &str,
    to: &'static ObjectType,
    to_id: &str,
) -> Result<(u16, Value), ApiError> {
    let type_id = default_type(from, to).ok_or_else(|| {
        ApiError::invalid(format!(
            "No default association from {} to {}",
            from.plural, to.plural
        ))
    })?;
    link(data, from, from_id, to, to_id, &[type_id])?;
    let now = iso(chrono::Utc::now());
    Ok((
        200,
        json!({"status": "COMPLETE", "startedAt": now, "completedAt": now,
                    "results": [default_result(from_id, to_id, type_id),
                                default_result(to_id, from_id, reverse(type_id))]}),
    ))
}

/// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` → 204.
pub(crate) fn delete(
    data: &mut Data,
    from: &ObjectType,
    from_id: &str,
    to: &ObjectType,
    to_id: &str,
) -> (u16, Value) {
    data.unlink(from, from_id, to, to_id);
    data.unlink(to, to_id, from, from_id);
    (204, Value::Null)
}

fn grouped(data: &Data, from: &ObjectType, from_id: &str, to: &ObjectType) -> Vec<Value> {
    let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in data.associations(from, from_id, to) {
        by_id
            .entry(a.to_id.clone())
            .or_default()
            .push(json!({"category": category(a.type_id), "typeId": a.type_id,
                         "label": PRIMARY.contains(&a.type_id).then_some("Primary")}));
    }
    by_id
        .into_iter()
        .map(|(id, types)| json!({"toObjectId": id_number(&id), "associationTypes": types}))
        .collect()
}

/// `GET /crm/v4/objects/{from}/{id}/associations/{to}` (one page holds them all; the
/// sandbox does not page associations).
pub(crate) fn list(
    data: &Data,
    from: &ObjectType,
    from_id: &str,
    to: &ObjectType,
) -> Result<Value, ApiError> {
    if !exists(data, from, from_id) {
        return Err(ApiError::not_found(format!(
            "No {} with id {from_id}",
            from.singular
        )));
    }
    Ok(json!({"results": grouped(data, from, from_id, to)}))
}

fn batch_inputs(body: &Value) -> Result<&Vec<Value>, ApiError> {
    let inputs = body["inputs"]
        .as_array()
        .ok_or_else(|| ApiError::invalid("Invalid input JSON: inputs is required"))?;
    if inputs.len() > super::batch::BATCH_MAX {
        return Err(ApiError::invalid(format!(
            "Too many inputs: {} (the limit is {})",
            inputs.len(),
            super::batch::BATCH_MAX
        )));
    }
    Ok(inputs)
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn batch_answer(ok: u16, results: Vec<Value>, errors: Vec<Value>) -> (u16, Value) {
    let now = iso(chrono::Utc::now());
    let mut body =
        json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    if errors.is_empty() {
        return (ok, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    (207, body)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/{create,associate/default,read,archive,labels/archive}`.
pub(crate) fn batch(
    data: &mut Data,
    from: &'static ObjectType,
    to: &'static ObjectType,
    op: &[&str],
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    let inputs = batch_inputs(body)?;
    let mut results = vec![];
    let mut errors = vec![];
    match op {
        ["create"] => {
            for i in inputs {
                let (f, t) = (text(&i["from"]["id"]), text(&i["to"]["id"]));
                match specs(&i["types"]).and_then(|ids| link(data, from, &f, to, &t, &ids)) {
                    Ok(()) => results.push(pair(from, &f, to, &t, vec![])),
                    Err(e) => errors.push(e.standard()),
                }
            }
            Ok(batch_answer(201, results, errors))
        }
        ["associate", "default"] => {
            for i in inputs {
                let (f, t) = (text(&i["from"]["id"]), text(&i["to"]["id"]));
                match put_default(data, from, &f, to, &t) {
                    Ok((_, body)) => {
                        results.extend(body["results"].as_array().cloned().unwrap_or_default())
                    }
                    Err(e) => errors.push(e.standard()),
                }
            }
            Ok(batch_answer(200, results, errors))
        }
        ["read"] => {
            for i in inputs {
                let f = text(&i["id"]);
                if exists(data, from, &f) {
                    results.push(json!({"from": {"id": f}, "to": grouped(data, from, &f, to)}));
                } else {
                    errors.push(
                        ApiError::not_found(format!("No {} with id {f}", from.singular))
                            .with_context(json!({"ids": [f]}))
                            .standard(),
                    );
                }
            }
            Ok(batch_answer(200, results, errors))
        }
        ["archive"] => {
            for i in inputs {
                let f = text(&i["from"]["id"]);
                for t in i["to"].as_array().into_iter().flatten() {
                    delete(data, from, &f, to, &text(&t["id"]));
                }
            }
            Ok((204, Value::Null))
        }
        ["labels", "archive"] => {
            // Removes only the given types between each pair, the pair's other labels
            // staying; but "Deleting an unlabeled association will also delete all labeled
            // associations between those two objects" (crm-associations-v4.json,
            // `/batch/labels/archive`).
            let unlabeled = default_type(from, to);
            for i in inputs {
                let (f, t) = (text(&i["from"]["id"]), text(&i["to"]["id"]));
                for type_id in specs(&i["types"])? {
                    if Some(type_id) == unlabeled {
                        delete(data, from, &f, to, &t);
                    } else {
                        data.unlink_type(from, &f, to, &t, type_id);
                        data.unlink_type(to, &t, from, &f, reverse(type_id));
                    }
                }
            }
            Ok((204, Value::Null))
        }
        _ => Err(ApiError::not_found("No such associations batch operation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mission_table_and_its_reverses() {
        let t = |s| ObjectType::parse(s);
        let pairs = [
            ("contacts", "companies", 279),
            ("contacts", "deals", 4),
            ("companies", "deals", 342),
            ("deals", "contacts", 3),
        ];
        for (f, to, id) in pairs {
            let (Some(f), Some(to)) = (t(f), t(to)) else {
                panic!("types exist")
            };
            assert_eq!(default_type(f, to), Some(id));
        }
        assert_eq!(reverse(1), 2);
        assert_eq!(reverse(6), 5);
        assert_eq!(reverse(279), 280);
    }
}
