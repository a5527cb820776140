//! Create, read, update, delete and list for every collection, with Close's validation
//! rules, partial-update PUT, cascading deletes and events for every change.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::data::{Data, parse_time, stamp};
use super::kinds::{Kind, event_type};

/// An error answer in Close's shapes.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 `{"errors": [], "field-errors": {...}}`.
    Fields(Map<String, Value>),
    /// 400 `{"errors": [...], "field-errors": {}}`.
    Errors(Vec<String>),
    /// 404 `{"error": "Empty query: X matching query does not exist."}`.
    NotFound(String),
    /// 405.
    MethodNotAllowed,
}

impl ApiError {
    pub(crate) fn field(name: &str, message: &str) -> Self {
        let mut m = Map::new();
        m.insert(name.into(), Value::String(message.into()));
        ApiError::Fields(m)
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::Fields(_) | ApiError::Errors(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            ApiError::Fields(m) => json!({"errors": [], "field-errors": m}),
            ApiError::Errors(e) => json!({"errors": e, "field-errors": {}}),
            ApiError::NotFound(model) => {
                json!({"error": format!("Empty query: {model} matching query does not exist.")})
            }
            ApiError::MethodNotAllowed => {
                json!({"error": "The method is not allowed for the requested URL."})
            }
        }
    }
}

/// A successful change: the answer, its status, and the events it caused.
pub(crate) struct Changed {
    pub status: u16,
    pub body: Value,
    pub events: Vec<Value>,
}

/// Limits of the list endpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListLimits {
    pub max_limit: usize,
    pub max_skip: usize,
}

type Params = [(String, String)];

fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Compares a stored value with a filter value: numbers as numbers, times as times,
/// everything else as text.
fn compare(stored: &Value, wanted: &str) -> Option<std::cmp::Ordering> {
    match stored {
        Value::Number(n) => n.as_f64()?.partial_cmp(&wanted.parse::<f64>().ok()?),
        Value::String(s) => match (parse_time(s), parse_time(wanted)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(s.as_str().cmp(wanted)),
        },
        Value::Bool(b) => Some(b.to_string().as_str().cmp(wanted)),
        Value::Null => None,
        _ => None,
    }
}

fn matches_filter(row: &Value, key: &str, wanted: &str) -> bool {
    use std::cmp::Ordering::*;
    let (field, op) = match key.rsplit_once("__") {
        Some((f, op)) if ["gte", "gt", "lte", "lt", "in"].contains(&op) => (f, op),
        _ => (key, "eq"),
    };
    let stored = &row[field];
    match op {
        "in" => wanted.split(',').any(|w| compare(stored, w) == Some(Equal)),
        "eq" => compare(stored, wanted) == Some(Equal),
        "gte" => matches!(compare(stored, wanted), Some(Greater | Equal)),
        "gt" => compare(stored, wanted) == Some(Greater),
        "lte" => matches!(compare(stored, wanted), Some(Less | Equal)),
        "lt" => compare(stored, wanted) == Some(Less),
        _ => false,
    }
}

/// Orders rows by a field (`-field` for descending), numbers and times understood.
pub(crate) fn sort_rows(rows: &mut [&Value], order_by: &str) {
    let (field, desc) = match order_by.strip_prefix('-') {
        Some(f) => (f, true),
        None => (order_by, false),
    };
    rows.sort_by(|a, b| {
        let o = match (&a[field], &b[field]) {
            (Value::String(x), Value::String(y)) => match (parse_time(x), parse_time(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.cmp(y),
            },
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(std::cmp::Ordering::Equal),
            (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
            (Value::Null, _) => std::cmp::Ordering::Less,
            (_, Value::Null) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        };
        if desc { o.reverse() } else { o }
    });
}

/// Keeps only the requested fields (`_fields=id,name`); `custom` keeps every custom field.
pub(crate) fn select_fields(obj: Value, fields: Option<&str>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &obj) else {
        return obj;
    };
    if fields.split(',').any(|f| f.trim() == "_all") {
        return obj;
    }
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    let kept = map
        .iter()
        .filter(|(k, _)| {
            wanted.contains(&k.as_str()) || (wanted.contains(&"custom") && k.starts_with("custom."))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// `GET /{collection}/`.
pub(crate) fn list(
    data: &Data,
    kind: Kind,
    params: &Params,
    limits: ListLimits,
) -> Result<Value, ApiError> {
    let limit_max = limits.max_limit;
    let limit = match param(params, "_limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::field("_limit", "A valid integer is required."))?,
        None => limit_max,
    };
    if limit > limit_max {
        return Err(ApiError::Errors(vec![format!(
            "_limit must be at most {limit_max}."
        )]));
    }
    let skip = match param(params, "_skip") {
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiError::field("_skip", "A valid integer is required."))?,
        None => 0,
    };
    if skip > limits.max_skip {
        return Err(ApiError::Errors(vec![format!(
            "_skip must be at most {}. Page deeper by narrowing the query with a date_created range.",
            limits.max_skip
        )]));
    }
    if kind == Kind::Activity(None)
        && ["_type", "user_id", "contact_id"]
            .iter()
            .any(|k| param(params, k).is_some())
        && param(params, "lead_id").is_none()
    {
        return Err(ApiError::Errors(vec![
            "The _type, user_id and contact_id filters require lead_id.".into(),
        ]));
    }
    let type_filter = kind
        .activity_type()
        .map(str::to_string)
        .or_else(|| param(params, "_type").map(|t| t.to_string()));
    // References until the page is cut, so a listing copies one page, not the table.
    let mut rows: Vec<&Value> = data
        .rows(kind.table())
        .filter(|row| match kind {
            Kind::CustomField(object) => row["object_type"] == object,
            _ => true,
        })
        .filter(|row| match &type_filter {
            Some(types) => types
                .split(',')
                .any(|t| row["_type"].as_str() == Some(t.trim())),
            None => true,
        })
        .filter(|row| {
            params
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .all(|(k, v)| matches_filter(row, k, v))
        })
        .collect();
    if let Some(order) = param(params, "_order_by") {
        sort_rows(&mut rows, order);
    }
    let total = rows.len();
    let fields = param(params, "_fields");
    let page: Vec<Value> = rows
        .iter()
        .skip(skip)
        .take(limit)
        .map(|r| select_fields(render(data, kind.table(), (*r).clone()), fields))
        .collect();
    let has_more = skip + page.len() < total;
    let mut body = json!({"data": page, "has_more": has_more, "total_results": total});
    if kind == Kind::Opportunity {
        // Close's aggregates cover every opportunity the filters match, not just this page.
        let sum = |period: &str| -> i64 {
            rows.iter()
                .filter(|o| o["value_period"] == period)
                .filter_map(|o| o["value"].as_i64())
                .sum()
        };
        body["total_value_one_time"] = json!(sum("one_time"));
        body["total_value_monthly"] = json!(sum("monthly"));
        body["total_value_annual"] = json!(sum("annual"));
    }
    Ok(body)
}

/// `GET /{collection}/{id}/`.
pub(crate) fn get(data: &Data, kind: Kind, id: &str, params: &Params) -> Result<Value, ApiError> {
    let row = find(data, kind, id)?;
    Ok(select_fields(
        render(data, kind.table(), row.clone()),
        param(params, "_fields"),
    ))
}

fn find<'a>(data: &'a Data, kind: Kind, id: &str) -> Result<&'a Value, ApiError> {
    data.get(kind.table(), id)
        .filter(|row| match kind {
            Kind::Activity(Some(_)) => row["_type"].as_str() == kind.activity_type(),
            Kind::CustomField(o) => row["object_type"] == o,
            _ => true,
        })
        .ok_or_else(|| ApiError::NotFound(kind.model_name()))
}

/// Adds the derived fields Close returns: nested children of a lead, labels, formatted values.
pub(crate) fn render(data: &Data, table: &str, mut row: Value) -> Value {
    match table {
        "lead" => {
            let id = row["id"].clone();
            let children = |t: &'static str| -> Vec<Value> {
                data.rows(t)
                    .filter(|c| c["lead_id"] == id)
                    .map(|c| render(data, t, c.clone()))
                    .collect()
            };
            row["contacts"] = Value::Array(children("contact"));
            row["opportunities"] = Value::Array(children("opportunity"));
            row["tasks"] = Value::Array(children("task"));
            row["display_name"] = row["name"].clone();
            if let Some(s) = row["status_id"]
                .as_str()
                .and_then(|s| data.get("status_lead", s))
            {
                row["status_label"] = s["label"].clone();
            }
            row["html_url"] = json!(format!(
                "https://app.close.com/lead/{}/",
                id.as_str().unwrap_or_default()
            ));
        }
        "opportunity" => {
            if let Some(s) = row["status_id"]
                .as_str()
                .and_then(|s| data.get("status_opportunity", s))
            {
                row["status_label"] = s["label"].clone();
                row["status_type"] = s["type"].clone();
                row["pipeline_id"] = s["pipeline_id"].clone();
                if let Some(p) = s["pipeline_id"]
                    .as_str()
                    .and_then(|p| data.get("pipeline", p))
                {
                    row["pipeline_name"] = p["name"].clone();
                }
            }
            if let Some(lead) = row["lead_id"].as_str().and_then(|l| data.get("lead", l)) {
                row["lead_name"] = lead["name"].clone();
            }
            let cents = row["value"].as_i64().unwrap_or(0);
            row["value_formatted"] = json!(format_dollars(cents));
        }
        "pipeline" => {
            let id = row["id"].clone();
            row["statuses"] = Value::Array(
                data.rows("status_opportunity")
                    .filter(|s| s["pipeline_id"] == id)
                    .cloned()
                    .collect(),
            );
        }
        _ => {}
    }
    row
}

fn format_dollars(cents: i64) -> String {
    let dollars = cents / 100;
    let digits = dollars.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if dollars < 0 { "-" } else { "" };
    match cents % 100 {
        0 => format!("{sign}${grouped}"),
        c => format!("{sign}${grouped}.{:02}", c.abs()),
    }
}

fn require_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a str, ApiError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Null) | None => Err(ApiError::field(field, "This field is required.")),
        _ => Err(ApiError::field(field, "Not a valid string.")),
    }
}

fn require_lead(data: &Data, obj: &Map<String, Value>) -> Result<(), ApiError> {
    let lead = require_str(obj, "lead_id", "lead")?;
    data.get("lead", lead)
        .map(|_| ())
        .ok_or_else(|| ApiError::field("lead", "Object does not exist."))
}

fn one_of(obj: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<(), ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(v) => Err(ApiError::field(
            key,
            &format!(
                "\"{}\" is not a valid choice (one of: {}).",
                v.as_str().unwrap_or(&v.to_string()),
                allowed.join(", ")
            ),
        )),
    }
}

fn int_in(obj: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<(), ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(ApiError::field(
                key,
                &format!("Must be an integer between {min} and {max}."),
            )),
        },
    }
}

/// Normalises a phone number to E.164 the way Close does for North American numbers.
fn e164(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    match (raw.trim_start().starts_with('+'), digits.len()) {
        (true, 8..=15) => Some(format!("+{digits}")),
        (false, 10) => Some(format!("+1{digits}")),
        (false, 11) if digits.starts_with('1') => Some(format!("+{digits}")),
        _ => None,
    }
}

fn check_custom_fields(
    data: &Data,
    object: &str,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let keys: Vec<String> = obj
        .keys()
        .filter(|k| k.starts_with("custom."))
        .cloned()
        .collect();
    let mut errors = Map::new();
    for key in keys {
        let rest = &key["custom.".len()..];
        let (cf_id, op) = match rest.rsplit_once('.') {
            Some((id, op @ ("add" | "remove"))) => (id, Some(op)),
            _ => (rest, None),
        };
        let Some(cf) = data.rows("custom_field").find(|cf| {
            cf["id"] == cf_id && (cf["object_type"] == object || cf["object_type"] == "shared")
        }) else {
            errors.insert(key.clone(), json!("Unknown custom field."));
            continue;
        };
        let multi = cf["accepts_multiple_values"].as_bool().unwrap_or(false);
        let value = obj.remove(&key).unwrap_or(Value::Null);
        let base = format!("custom.{cf_id}");
        let check = |v: &Value| -> Result<(), String> {
            match cf["type"].as_str().unwrap_or("text") {
                "number" if !v.is_number() => Err("A valid number is required.".into()),
                "choices" => {
                    let ok = cf["choices"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|x| x == v));
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("{v} is not a valid choice."))
                    }
                }
                "date" | "datetime" if v.as_str().and_then(parse_time).is_none() => {
                    Err("A valid date is required.".into())
                }
                _ => Ok(()),
            }
        };
        let result = match (op, value) {
            (_, Value::Null) if op.is_none() => {
                obj.insert(base, Value::Null);
                Ok(())
            }
            (None, Value::Array(items)) if multi => items.iter().try_for_each(check).map(|_| {
                obj.insert(base, Value::Array(items));
            }),
            (None, Value::Array(_)) => Err("This field accepts one value.".to_string()),
            (None, v) => check(&v).map(|_| {
                let v = if multi { Value::Array(vec![v]) } else { v };
                obj.insert(base, v);
            }),
            (Some(op), v) if multi => check(&v).map(|_| {
                let mut items: Vec<Value> = current
                    .and_then(|c| c.get(&base))
                    .and_then(|x| x.as_array().cloned())
                    .unwrap_or_default();
                items.retain(|x| x != &v);
                if op == "add" {
                    items.push(v);
                }
                obj.insert(base, Value::Array(items));
            }),
            (Some(_), _) => Err("Only multi-value fields support .add and .remove.".to_string()),
        };
        if let Err(msg) = result {
            errors.insert(key, Value::String(msg));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Fields(errors))
    }
}

/// Checks `obj` (the fields being written) for `kind`, filling defaults on create.
fn validate(
    data: &mut Data,
    kind: Kind,
    obj: &mut Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let creating = current.is_none();
    match kind {
        Kind::Lead => {
            if !creating && obj.contains_key("contacts") {
                return Err(ApiError::field(
                    "contacts",
                    "Nested contacts cannot be updated here; use the contact endpoints.",
                ));
            }
            if obj.contains_key("status") && obj.contains_key("status_id") {
                return Err(ApiError::Errors(vec![
                    "Give status_id or status, not both.".into(),
                ]));
            }
            if let Some(label) = obj.remove("status") {
                let found = data
                    .rows("status_lead")
                    .find(|s| s["label"] == label)
                    .map(|s| s["id"].clone());
                match found {
                    Some(id) => {
                        obj.insert("status_id".into(), id);
                    }
                    None => {
                        return Err(ApiError::field(
                            "status",
                            &format!(
                                "Not a valid choice. Please go to Customizations in your organization settings and add {label} to the list of lead statuses."
                            ),
                        ));
                    }
                }
            }
            if let Some(id) = obj.get("status_id") {
                if data
                    .get("status_lead", id.as_str().unwrap_or_default())
                    .is_none()
                {
                    return Err(ApiError::field(
                        "status",
                        &format!(
                            "Not a valid choice. Please go to Customizations in your organization settings and add {id} to the list of lead statuses."
                        ),
                    ));
                }
            } else if creating {
                if let Some(first) = data.rows("status_lead").next() {
                    obj.insert("status_id".into(), first["id"].clone());
                }
            }
            if creating && !obj.contains_key("name") {
                obj.insert("name".into(), json!(""));
            }
            obj.entry("description").or_insert(json!(""));
            obj.entry("url").or_insert(Value::Null);
            obj.entry("addresses").or_insert(json!([]));
            check_custom_fields(data, "lead", obj, current)
        }
        Kind::Contact => {
            if let Some(Value::Array(emails)) = obj.get_mut("emails") {
                for (i, e) in emails.iter_mut().enumerate() {
                    let addr = e["email"].as_str().unwrap_or_default().to_string();
                    if !addr.contains('@') {
                        return Err(ApiError::field(
                            &format!("emails.{i}.email"),
                            "Enter a valid email address.",
                        ));
                    }
                    e["email_lower"] = json!(addr.to_lowercase());
                    if e.get("type").is_none() {
                        e["type"] = json!("office");
                    }
                }
            }
            if let Some(Value::Array(phones)) = obj.get_mut("phones") {
                for (i, p) in phones.iter_mut().enumerate() {
                    let raw = p["phone"].as_str().unwrap_or_default();
                    let Some(norm) = e164(raw) else {
                        return Err(ApiError::field(
                            &format!("phones.{i}.phone"),
                            "Enter a valid phone number.",
                        ));
                    };
                    p["phone"] = json!(norm);
                    if p.get("type").is_none() {
                        p["type"] = json!("office");
                    }
                }
            }
            if let Some(lead) = obj.get("lead_id").and_then(Value::as_str) {
                if data.get("lead", lead).is_none() {
                    return Err(ApiError::field("lead", "Object does not exist."));
                }
            } else if creating {
                // Close creates a lead named after the contact when none is given.
                let name = obj.get("name").cloned().unwrap_or(json!(""));
                let lead_id = data.new_id("lead");
                let now = stamp(Utc::now());
                let first_status = data.rows("status_lead").next().map(|s| s["id"].clone());
                let lead = json!({"id": lead_id, "name": name, "description": "", "url": null,
                    "addresses": [], "status_id": first_status, "organization_id": data.org_id,
                    "date_created": now, "date_updated": now});
                data.insert("lead", lead);
                obj.insert("lead_id".into(), json!(lead_id));
            }
            obj.entry("emails").or_insert(json!([]));
            obj.entry("phones").or_insert(json!([]));
            obj.entry("urls").or_insert(json!([]));
            check_custom_fields(data, "contact", obj, current)
        }
        Kind::Opportunity => {
            if creating || obj.contains_key("lead_id") {
                require_lead(data, obj)?;
            }
            int_in(obj, "value", 0, i64::MAX)?;
            int_in(obj, "confidence", 0, 100)?;
            one_of(obj, "value_period", &["one_time", "monthly", "annual"])?;
            let pipeline = obj
                .get("pipeline_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(p) = &pipeline
                && data.get("pipeline", p).is_none()
            {
                return Err(ApiError::field("pipeline", "Object does not exist."));
            }
            if let Some(sid) = obj.get("status_id").and_then(Value::as_str) {
                let Some(status) = data.get("status_opportunity", sid) else {
                    return Err(ApiError::field("status", "Object does not exist."));
                };
                if let Some(p) = &pipeline
                    && status["pipeline_id"] != p.as_str()
                {
                    return Err(ApiError::field(
                        "status",
                        "The status does not belong to the given pipeline.",
                    ));
                }
                if status["type"] == "won"
                    && current.is_none_or(|c| c.get("date_won").is_none_or(Value::is_null))
                {
                    obj.insert(
                        "date_won".into(),
                        json!(Utc::now().format("%Y-%m-%d").to_string()),
                    );
                }
            } else if creating {
                let first = data
                    .rows("status_opportunity")
                    .find(|s| {
                        pipeline
                            .as_ref()
                            .is_none_or(|p| s["pipeline_id"] == p.as_str())
                    })
                    .map(|s| s["id"].clone());
                obj.insert("status_id".into(), first.unwrap_or(Value::Null));
            }
            obj.remove("pipeline_id");
            if creating {
                obj.entry("value_period").or_insert(json!("one_time"));
                obj.entry("value_currency").or_insert(json!("USD"));
                obj.entry("confidence").or_insert(json!(0));
                obj.entry("note").or_insert(json!(""));
                obj.entry("date_won").or_insert(Value::Null);
            }
            check_custom_fields(data, "opportunity", obj, current)
        }
        Kind::Task => {
            if creating || obj.contains_key("lead_id") {
                require_lead(data, obj)?;
            }
            if creating {
                require_str(obj, "text", "text")?;
                one_of(obj, "_type", &["lead", "outgoing_call"])?;
                obj.entry("_type").or_insert(json!("lead"));
                obj.entry("is_complete").or_insert(json!(false));
                let dateless = !obj.contains_key("date");
                obj.entry("is_dateless").or_insert(json!(dateless));
            }
            Ok(())
        }
        Kind::Activity(Some(seg)) => {
            if creating || obj.contains_key("lead_id") {
                require_lead(data, obj)?;
            }
            if let Some(contact) = obj.get("contact_id").and_then(Value::as_str)
                && data.get("contact", contact).is_none()
            {
                return Err(ApiError::field("contact", "Object does not exist."));
            }
            match seg {
                "note"
                    if creating && !obj.contains_key("note") && !obj.contains_key("note_html") =>
                {
                    return Err(ApiError::field("note", "This field is required."));
                }
                "call" => {
                    one_of(obj, "direction", &["outbound", "inbound"])?;
                    int_in(obj, "duration", 0, i64::from(u32::MAX))?;
                    if creating {
                        obj.entry("status").or_insert(json!("completed"));
                        obj.entry("direction").or_insert(json!("outbound"));
                    }
                }
                "email" => {
                    let statuses = ["inbox", "draft", "scheduled", "outbox", "sent"];
                    if creating {
                        require_str(obj, "status", "status")?;
                    }
                    one_of(obj, "status", &statuses)?;
                    if let Some(c) = current
                        && c.get("status").and_then(Value::as_str) != Some("draft")
                    {
                        return Err(ApiError::Errors(vec![
                            "Only draft emails can be modified.".into(),
                        ]));
                    }
                    let status = obj
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("draft")
                        .to_string();
                    let status = status.as_str();
                    if ["inbox", "scheduled", "outbox"].contains(&status)
                        && !obj.contains_key("sender")
                    {
                        return Err(ApiError::field("sender", "This field is required."));
                    }
                    if creating {
                        obj.entry("direction")
                            .or_insert(json!(if status == "inbox" {
                                "incoming"
                            } else {
                                "outgoing"
                            }));
                    }
                }
                "meeting" if creating => return Err(ApiError::MethodNotAllowed),
                _ => {}
            }
            if creating {
                obj.insert("_type".into(), json!(kind.activity_type()));
                obj.entry("activity_at").or_insert(json!(stamp(Utc::now())));
            }
            check_custom_fields(data, "activity", obj, current)
        }
        Kind::Activity(None) => Err(ApiError::MethodNotAllowed),
        Kind::LeadStatus => {
            if creating {
                require_str(obj, "label", "label")?;
            }
            Ok(())
        }
        Kind::OpportunityStatus => {
            if creating {
                require_str(obj, "label", "label")?;
                require_str(obj, "type", "type")?;
                let p = require_str(obj, "pipeline_id", "pipeline_id")?;
                if data.get("pipeline", p).is_none() {
                    return Err(ApiError::field("pipeline", "Object does not exist."));
                }
            }
            one_of(obj, "type", &["active", "won", "lost"])
        }
        Kind::Pipeline => {
            if creating {
                require_str(obj, "name", "name")?;
            }
            Ok(())
        }
        Kind::CustomField(object) => {
            if creating {
                require_str(obj, "name", "name")?;
                require_str(obj, "type", "type")?;
                obj.insert("object_type".into(), json!(object));
                obj.entry("accepts_multiple_values").or_insert(json!(false));
            }
            one_of(
                obj,
                "type",
                &[
                    "text", "number", "date", "datetime", "choices", "user", "contact", "hidden",
                ],
            )?;
            if obj.get("type").and_then(Value::as_str) == Some("choices")
                && !obj.get("choices").is_some_and(Value::is_array)
            {
                return Err(ApiError::field(
                    "choices",
                    "Choices fields need a list of choices.",
                ));
            }
            Ok(())
        }
        Kind::Webhook => {
            if creating || obj.contains_key("url") {
                let url = require_str(obj, "url", "url")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ApiError::field("url", "Enter a valid URL."));
                }
            }
            if creating || obj.contains_key("events") {
                let ok = obj
                    .get("events")
                    .and_then(Value::as_array)
                    .is_some_and(|evs| {
                        !evs.is_empty()
                            && evs
                                .iter()
                                .all(|e| e["object_type"].is_string() && e["action"].is_string())
                    });
                if !ok {
                    return Err(ApiError::field(
                        "events",
                        "A non-empty list of {object_type, action} is required.",
                    ));
                }
            }
            one_of(obj, "status", &["active", "paused"])?;
            if creating {
                if data.rows("webhook").count() >= 40 {
                    return Err(ApiError::Errors(vec![
                        "An organization may have at most 40 webhook subscriptions.".into(),
                    ]));
                }
                let mut key = [0u8; 32];
                key.iter_mut().for_each(|b| *b = data.rng.u8(..));
                obj.insert("signature_key".into(), json!(hex::encode(key)));
                obj.entry("status").or_insert(json!("active"));
                obj.entry("verify_ssl").or_insert(json!(true));
            }
            Ok(())
        }
    }
}

fn body_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::Errors(vec![
            "The request body must be a JSON object.".into(),
        ])),
    }
}

fn change_event(
    data: &mut Data,
    table: &'static str,
    action: &str,
    row: &Value,
    previous: Map<String, Value>,
    method: &str,
    path: &str,
) -> Option<Value> {
    let object_type = event_type(table, row)?;
    let changed: Vec<String> = previous.keys().cloned().collect();
    let lead_id = if table == "lead" {
        row["id"].as_str()
    } else {
        row["lead_id"].as_str()
    }
    .map(str::to_string);
    let rendered = render(data, table, row.clone());
    Some(data.record_event(
        &object_type,
        action,
        row["id"].as_str().unwrap_or_default(),
        lead_id.as_deref(),
        rendered,
        previous,
        changed,
        method,
        path,
    ))
}

/// `POST /{collection}/`.
pub(crate) fn create(
    data: &mut Data,
    kind: Kind,
    body: Value,
    path: &str,
) -> Result<Changed, ApiError> {
    let mut obj = body_object(body)?;
    obj.remove("id");
    let nested_contacts = if kind == Kind::Lead {
        obj.remove("contacts")
    } else {
        None
    };
    validate(data, kind, &mut obj, None)?;
    let id = data.new_id(kind.prefix());
    let now = stamp(Utc::now());
    obj.insert("id".into(), json!(id));
    obj.entry("date_created").or_insert(json!(now));
    obj.insert("date_updated".into(), json!(now));
    obj.insert("organization_id".into(), json!(data.org_id));
    if matches!(
        kind,
        Kind::Lead | Kind::Contact | Kind::Opportunity | Kind::Task | Kind::Activity(_)
    ) {
        obj.insert("created_by".into(), json!(data.user_id));
        obj.insert("updated_by".into(), json!(data.user_id));
        obj.entry("user_id").or_insert(json!(data.user_id));
    }
    let row = Value::Object(obj);
    data.insert(kind.table(), row.clone());
    let mut events: Vec<Value> = change_event(
        data,
        kind.table(),
        "created",
        &row,
        Map::new(),
        "POST",
        path,
    )
    .into_iter()
    .collect();
    if let Some(Value::Array(contacts)) = nested_contacts {
        for (i, mut c) in contacts.into_iter().enumerate() {
            c["lead_id"] = json!(id);
            match create(data, Kind::Contact, c, "/api/v1/contact/") {
                Ok(done) => events.extend(done.events),
                Err(ApiError::Fields(f)) => {
                    // Undo the lead so a bad nested contact leaves nothing half-created.
                    delete(data, Kind::Lead, &id, path).ok();
                    let prefixed = f
                        .into_iter()
                        .map(|(k, v)| (format!("contacts.{i}.{k}"), v))
                        .collect();
                    return Err(ApiError::Fields(prefixed));
                }
                Err(e) => {
                    delete(data, Kind::Lead, &id, path).ok();
                    return Err(e);
                }
            }
        }
    }
    let stored = data.get(kind.table(), &id).cloned().unwrap_or(row);
    let status = if kind == Kind::Webhook { 201 } else { 200 };
    Ok(Changed {
        status,
        body: render(data, kind.table(), stored),
        events,
    })
}

/// `PUT /{collection}/{id}/`: a partial update.
pub(crate) fn update(
    data: &mut Data,
    kind: Kind,
    id: &str,
    body: Value,
    path: &str,
) -> Result<Changed, ApiError> {
    let current = find(data, kind, id)?
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut obj = body_object(body)?;
    for k in [
        "id",
        "organization_id",
        "date_created",
        "created_by",
        "signature_key",
        "_type",
        "object_type",
    ] {
        obj.remove(k);
    }
    validate(data, kind, &mut obj, Some(&current))?;
    let mut previous = Map::new();
    for (k, v) in &obj {
        let old = current.get(k).cloned().unwrap_or(Value::Null);
        if &old != v {
            previous.insert(k.clone(), old);
        }
    }
    let table = kind.table();
    let row = {
        let user_id = data.user_id.clone();
        let row = data.table_mut(table).get_mut(id).expect("row found above");
        for (k, v) in obj {
            row[k.as_str()] = v;
        }
        if !previous.is_empty() {
            previous.insert("date_updated".into(), row["date_updated"].clone());
            row["date_updated"] = json!(stamp(Utc::now()));
            row["updated_by"] = json!(user_id);
        }
        row.clone()
    };
    let events = if previous.is_empty() {
        Vec::new()
    } else {
        change_event(data, table, "updated", &row, previous, "PUT", path)
            .into_iter()
            .collect()
    };
    Ok(Changed {
        status: 200,
        body: render(data, table, row),
        events,
    })
}

/// `DELETE /{collection}/{id}/`; deleting a lead deletes everything under it.
pub(crate) fn delete(
    data: &mut Data,
    kind: Kind,
    id: &str,
    path: &str,
) -> Result<Changed, ApiError> {
    find(data, kind, id)?;
    let mut events = Vec::new();
    if kind == Kind::Lead {
        for table in ["contact", "opportunity", "task", "activity"] {
            let children: Vec<String> = data
                .rows(table)
                .filter(|r| r["lead_id"] == id)
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect();
            for child in children {
                if let Some(row) = data.table_mut(table).remove(&child) {
                    events.extend(change_event(
                        data,
                        table,
                        "deleted",
                        &row,
                        Map::new(),
                        "DELETE",
                        path,
                    ));
                }
            }
        }
    }
    let row = data
        .table_mut(kind.table())
        .remove(id)
        .expect("row found above");
    events.extend(change_event(
        data,
        kind.table(),
        "deleted",
        &row,
        Map::new(),
        "DELETE",
        path,
    ));
    let (status, body) = if kind == Kind::Pipeline {
        (204, Value::Null)
    } else {
        (200, json!({}))
    };
    Ok(Changed {
        status,
        body,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_grouped() {
        assert_eq!(format_dollars(50000), "$500");
        assert_eq!(format_dollars(100000000), "$1,000,000");
        assert_eq!(format_dollars(12345), "$123.45");
    }

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(e164("(650) 555-1234").as_deref(), Some("+16505551234"));
        assert_eq!(e164("+44 20 7946 0958").as_deref(), Some("+442079460958"));
        assert_eq!(e164("12"), None);
    }
}
