//! `/crm/v3/objects/{type}`: read one, list with `after` paging, create, patch and archive,
//! and the rendering of a row as HubSpot's `SimplePublicObject`.

use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::data::Data;
use super::kinds::ObjectType;

/// The largest list page: 100 (HubSpot CRM API guide, "limit … maximum 100"); a larger
/// `limit` is capped rather than refused (sandbox's choice; the spec encodes no maximum).
pub(crate) const LIST_MAX: usize = 100;
/// The page size when none is asked for (the specs' default of 10).
pub(crate) const LIST_DEFAULT: usize = 10;

/// What to show of each record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    /// Properties asked for; the type's defaults when `None`.
    pub properties: Option<Vec<String>>,
    /// Properties whose history to include.
    pub history: Vec<String>,
    /// Types whose associations to include.
    pub associations: Vec<&'static ObjectType>,
}

/// Every value of a repeated or comma-separated query parameter.
pub(crate) fn list_param(params: &[(String, String)], name: &str) -> Option<Vec<String>> {
    let values: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    params.iter().any(|(k, _)| k == name).then_some(values)
}

/// One query parameter.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Shape {
    /// Reads `properties`, `propertiesWithHistory` and `associations` from the query.
    pub(crate) fn from_query(params: &[(String, String)]) -> Self {
        Self {
            properties: list_param(params, "properties"),
            history: list_param(params, "propertiesWithHistory").unwrap_or_default(),
            associations: list_param(params, "associations")
                .unwrap_or_default()
                .iter()
                .filter_map(|s| ObjectType::parse(s))
                .collect(),
        }
    }

    /// Reads `properties` and `propertiesWithHistory` from a batch or search body.
    pub(crate) fn from_body(body: &Value) -> Self {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        Self {
            properties: body.get("properties").map(strings),
            history: strings(&body["propertiesWithHistory"]),
            associations: vec![],
        }
    }
}

/// A row as `SimplePublicObject`: only the properties asked for (unset ones as null),
/// property values as strings.
pub(crate) fn render(data: &Data, t: &ObjectType, row: &Value, shape: &Shape) -> Value {
    let stored = &row["properties"];
    let mut props = Map::new();
    match &shape.properties {
        Some(names) if !names.is_empty() => {
            // Requested properties the type knows appear, null when unset; unknown names are
            // skipped silently on reads (HubSpot ignores them on GET).
            for n in names.iter().filter(|n| data.kind(t, n).is_some()) {
                props.insert(n.clone(), stored.get(n).cloned().unwrap_or(Value::Null));
            }
        }
        _ => {
            for n in t.defaults {
                props.insert(
                    (*n).to_string(),
                    stored.get(*n).cloned().unwrap_or(Value::Null),
                );
            }
        }
    }
    let mut out = json!({"id": row["id"], "properties": props,
                         "createdAt": row["date_created"], "updatedAt": row["date_updated"],
                         "archived": row["archived"]});
    if let Some(at) = row.get("archivedAt") {
        out["archivedAt"] = at.clone();
    }
    if !shape.history.is_empty() {
        let mut h = Map::new();
        for n in shape.history.iter().filter(|n| data.kind(t, n).is_some()) {
            h.insert(
                n.clone(),
                row["history"].get(n).cloned().unwrap_or_else(|| json!([])),
            );
        }
        out["propertiesWithHistory"] = Value::Object(h);
    }
    let id = row["id"].as_str().unwrap_or_default();
    let mut assoc = Map::new();
    for to in &shape.associations {
        // One entry per associated record, however many types link the pair.
        let mut seen = std::collections::HashSet::new();
        let results: Vec<Value> = data
            .associations(t, id, to)
            .iter()
            .filter(|a| seen.insert(a.to_id.clone()))
            .map(|a| json!({"id": a.to_id, "type": format!("{}_to_{}", t.singular, to.singular)}))
            .collect();
        if !results.is_empty() {
            assoc.insert(to.plural.to_string(), json!({"results": results}));
        }
    }
    if !assoc.is_empty() {
        out["associations"] = Value::Object(assoc);
    }
    out
}

fn archived_param(params: &[(String, String)]) -> bool {
    param(params, "archived") == Some("true")
}

/// `GET /crm/v3/objects/{type}/{id}`.
pub(crate) fn get(
    data: &Data,
    t: &ObjectType,
    id: &str,
    params: &[(String, String)],
) -> Result<Value, ApiError> {
    let archived = archived_param(params);
    let found = data
        .resolve(t, id, param(params, "idProperty"))?
        .and_then(|id| data.table(t).and_then(|tb| tb.get(&id)))
        .filter(|row| row["archived"] == json!(archived));
    let row = found.ok_or_else(|| ApiError::not_found(format!("resource not found: {id}")))?;
    Ok(render(data, t, row, &Shape::from_query(params)))
}

/// `GET /crm/v3/objects/{type}`: ascending ids; `after` is the position to continue from.
pub(crate) fn list(
    data: &Data,
    t: &ObjectType,
    params: &[(String, String)],
) -> Result<Value, ApiError> {
    let limit = match param(params, "limit") {
        None => LIST_DEFAULT,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiError::invalid(format!("limit must be an integer, got {s}")))?
            .clamp(1, LIST_MAX),
    };
    let after = match param(params, "after") {
        None | Some("") => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::invalid(format!(
                "after must be a cursor from paging.next.after, got {s}"
            ))
        })?,
    };
    let archived = archived_param(params);
    let shape = Shape::from_query(params);
    let Some(tb) = data.table(t) else {
        return Ok(json!({"results": []}));
    };
    let mut page = tb
        .after_seq(after)
        .filter(|(_, r)| r["archived"] == json!(archived));
    let mut results = Vec::with_capacity(limit);
    let mut last = after;
    for (seq, row) in page.by_ref().take(limit) {
        last = seq;
        results.push(render(data, t, row, &shape));
    }
    let mut out = json!({"results": results});
    if results_full(&out, limit) && page.next().is_some() {
        let next = last.to_string();
        out["paging"] = json!({"next": {"after": next,
            "link": format!("https://api.hubapi.com/crm/v3/objects/{}?after={next}", t.plural)}});
    }
    Ok(out)
}

fn results_full(out: &Value, limit: usize) -> bool {
    out["results"].as_array().is_some_and(|r| r.len() == limit)
}

/// Reads the `associations` of a create body into (type, id, type id) triples, refusing
/// records that do not exist.
fn create_associations(
    data: &Data,
    body: &Value,
) -> Result<Vec<(&'static ObjectType, String, u32)>, ApiError> {
    let mut out = vec![];
    for a in body["associations"].as_array().into_iter().flatten() {
        let to_id = a["to"]["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| a["to"]["id"].to_string());
        let type_id = a["types"][0]["associationTypeId"].as_u64().unwrap_or(0) as u32;
        let to = super::TYPES
            .iter()
            .find(|t| data.table(t).and_then(|tb| tb.get(&to_id)).is_some())
            .ok_or_else(|| {
                ApiError::invalid(format!("No object with id {to_id} to associate with"))
            })?;
        out.push((to, to_id, type_id));
    }
    Ok(out)
}

/// Creates one record from a create body (`properties` and `associations`), as a single
/// create and each batch create input do.
pub(crate) fn create_linked(
    data: &mut Data,
    t: &'static ObjectType,
    body: &Value,
) -> Result<Value, ApiError> {
    let props = data.validate(t, &body["properties"])?;
    let links = create_associations(data, body)?;
    let row = data.create(t, props, None)?;
    let id = row["id"].as_str().unwrap_or_default().to_string();
    for (to, to_id, type_id) in links {
        // The targets were checked above, so linking cannot fail here.
        super::associations::link(data, t, &id, to, &to_id, &[type_id])?;
    }
    Ok(row)
}

/// `POST /crm/v3/objects/{type}` → 201 with the record.
pub(crate) fn create(
    data: &mut Data,
    t: &'static ObjectType,
    body: &Value,
) -> Result<Value, ApiError> {
    let row = create_linked(data, t, body)?;
    Ok(render(
        data,
        t,
        &row,
        &Shape {
            properties: Some(all_set(&row)),
            ..Shape::default()
        },
    ))
}

/// Every property a row holds, so a write's answer shows what was stored.
pub(crate) fn all_set(row: &Value) -> Vec<String> {
    row["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `PATCH /crm/v3/objects/{type}/{id}` → 200 with the record.
pub(crate) fn update(
    data: &mut Data,
    t: &ObjectType,
    id: &str,
    params: &[(String, String)],
    body: &Value,
) -> Result<Value, ApiError> {
    let props = data.validate(t, &body["properties"])?;
    let id = data
        .resolve(t, id, param(params, "idProperty"))?
        .ok_or_else(|| ApiError::not_found(format!("resource not found: {id}")))?;
    let row = data.update(t, &id, props)?;
    Ok(render(
        data,
        t,
        &row,
        &Shape {
            properties: Some(all_set(&row)),
            ..Shape::default()
        },
    ))
}
