//! Property definitions: `/crm/v3/properties/{type}` (list, read one, create a custom
//! property; crm-properties-v3.json) and the older `/properties/v2/{object}/properties`
//! that existing integrations still call (a bare JSON array).

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::Data;
use super::kinds::{ObjectType, PropKind};
use super::pipelines::STAGES;

const CREATED: &str = "2026-01-01T00:00:00.000Z";

fn group(t: &ObjectType) -> String {
    match t.plural {
        "contacts" | "companies" | "deals" => format!("{}information", t.singular),
        _ => "engagement".to_string(),
    }
}

fn builtin(t: &ObjectType, name: &str, kind: PropKind, order: usize) -> Value {
    let (ty, field) = match kind {
        PropKind::Text => ("string", "text"),
        PropKind::Number => ("number", "number"),
        PropKind::Date => ("datetime", "date"),
        PropKind::Enum => ("enumeration", "select"),
    };
    let options: Vec<Value> = if t.plural == "deals" && name == "dealstage" {
        STAGES
            .iter()
            .enumerate()
            .map(|(i, (id, label, _))| json!({"label": label, "value": id, "displayOrder": i, "hidden": false}))
            .collect()
    } else if t.plural == "deals" && name == "pipeline" {
        vec![
            json!({"label": "Sales Pipeline", "value": "default", "displayOrder": 0, "hidden": false}),
        ]
    } else {
        vec![]
    };
    let read_only = t.maintained().contains(&name) || t.read_only(name);
    json!({"name": name, "label": name, "type": ty, "fieldType": field, "groupName": group(t),
           "description": "", "options": options, "displayOrder": order,
           "hasUniqueValue": false, "hidden": false, "hubspotDefined": true, "formField": !read_only,
           "calculated": read_only, "externalOptions": false,
           "modificationMetadata": {"archivable": false, "readOnlyDefinition": true, "readOnlyValue": read_only},
           "createdAt": CREATED, "updatedAt": CREATED, "archived": false})
}

/// Every definition of a type: maintained, built-in, then custom.
fn all(data: &Data, t: &ObjectType) -> Vec<Value> {
    let mut names: Vec<(&str, PropKind)> = vec![];
    for n in t.maintained() {
        if !names.iter().any(|(m, _)| *m == n) {
            names.push((n, t.kind(n).unwrap_or(PropKind::Date)));
        }
    }
    names.extend(t.known.iter().copied());
    let mut out: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, (n, k))| builtin(t, n, *k, i))
        .collect();
    out.extend(data.custom(t).iter().cloned());
    out
}

/// `GET /crm/v3/properties/{type}[/{name}]`.
pub(crate) fn get(data: &Data, t: &ObjectType, rest: &[&str]) -> Result<Value, ApiError> {
    match rest {
        [] => Ok(json!({"results": all(data, t)})),
        [name] => all(data, t)
            .into_iter()
            .find(|p| p["name"] == *name)
            .ok_or_else(|| {
                ApiError::not_found(format!("Unable to find property {name} on {}", t.plural))
            }),
        _ => Err(ApiError::not_found("No such properties path")),
    }
}

/// `GET /properties/v2/{object}/properties`: the v2 shape, a bare array.
pub(crate) fn get_v2(data: &Data, t: &ObjectType) -> Value {
    let v2: Vec<Value> = all(data, t)
        .iter()
        .map(|p| {
            json!({"name": p["name"], "label": p["label"], "description": p["description"],
                   "groupName": p["groupName"], "type": p["type"], "fieldType": p["fieldType"],
                   "options": p["options"], "displayOrder": p["displayOrder"],
                   "readOnlyValue": p["modificationMetadata"]["readOnlyValue"],
                   "readOnlyDefinition": p["modificationMetadata"]["readOnlyDefinition"],
                   "hidden": p["hidden"], "hubspotDefined": p["hubspotDefined"],
                   "calculated": p["calculated"], "externalOptions": p["externalOptions"],
                   "formField": p["formField"], "deleted": false})
        })
        .collect();
    Value::Array(v2)
}

/// `POST /crm/v3/properties/{type}` → 201; `name, label, type, fieldType, groupName` are
/// required (crm-properties-v3.json `PropertyCreate`); an existing name is a 409.
pub(crate) fn create(data: &mut Data, t: &ObjectType, body: &Value) -> Result<Value, ApiError> {
    let field = |k: &str| body[k].as_str().filter(|s| !s.is_empty());
    let (Some(name), Some(label), Some(ty), Some(fty), Some(grp)) = (
        field("name"),
        field("label"),
        field("type"),
        field("fieldType"),
        field("groupName"),
    ) else {
        return Err(ApiError::invalid(
            "name, label, type, fieldType and groupName are required",
        ));
    };
    const TYPES: &[&str] = &[
        "bool",
        "date",
        "datetime",
        "enumeration",
        "number",
        "phone_number",
        "string",
    ];
    if !TYPES.contains(&ty) {
        return Err(ApiError::invalid(format!("Unknown property type {ty}")));
    }
    if data.kind(t, name).is_some() {
        return Err(ApiError {
            status: 409,
            category: "OBJECT_ALREADY_EXISTS",
            message: format!("Property named '{name}' already exists."),
            context: Value::Null,
        });
    }
    let now = super::data::iso(chrono::Utc::now());
    let def = json!({"name": name, "label": label, "type": ty, "fieldType": fty, "groupName": grp,
                     "description": body["description"].as_str().unwrap_or_default(),
                     "options": body["options"].as_array().cloned().unwrap_or_default(),
                     "displayOrder": body["displayOrder"].as_i64().unwrap_or(-1),
                     "hasUniqueValue": body["hasUniqueValue"].as_bool().unwrap_or(false),
                     "hidden": body["hidden"].as_bool().unwrap_or(false), "hubspotDefined": false,
                     "formField": body["formField"].as_bool().unwrap_or(false),
                     "calculated": false, "externalOptions": false,
                     "modificationMetadata": {"archivable": true, "readOnlyDefinition": false, "readOnlyValue": false},
                     "createdAt": now, "updatedAt": now, "archived": false});
    data.add_custom(t, def.clone());
    Ok(def)
}
