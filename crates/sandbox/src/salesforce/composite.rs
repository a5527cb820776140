//! The composite family: sObject Collections (create, update, upsert, delete, retrieve; at
//! most 200 records, `allOrNone`), Composite (subrequests with `@{ref.field}` references)
//! and sObject Tree. Sources:
//! developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm,
//! resources_composite_composite.htm and resources_composite_sobject_tree.htm.

use axum::body::Bytes;
use axum::http::Method;
use serde_json::{Map, Value, json};

use super::State;
use super::api_error::ApiError;
use super::data::Data;
use super::dispatch::{self, Answer, Req, json_body};
use super::ids;
use super::schema::{self, Object};

type Result<T> = std::result::Result<T, ApiError>;

/// Records per collections call ("up to 200 records").
const COLLECTION_MAX: usize = 200;
/// Subrequests per composite call ("up to 25 subrequests").
const COMPOSITE_MAX: usize = 25;
/// Records per tree call ("up to a total of 200 records across all trees").
const TREE_MAX: usize = 200;

fn too_many() -> ApiError {
    ApiError::bad(
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

fn rolled_back() -> Value {
    json!({"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
           "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
           "fields": []})
}

fn param<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Routes `composite/…` writes.
pub(crate) fn route(
    state: &State,
    data: &mut Data,
    v: &str,
    segs: &[&str],
    req: &Req,
) -> Result<Answer> {
    match (&req.method, segs) {
        (&Method::POST, []) => composite(state, data, v, req),
        (&Method::POST, ["batch"]) => batch(state, data, v, req),
        (&Method::POST, ["sobjects"]) => collection(data, req, Op::Create, v),
        (&Method::PATCH, ["sobjects"]) => collection(data, req, Op::Update, v),
        (&Method::PATCH, ["sobjects", t, field]) => {
            let o = schema::object(t).ok_or_else(ApiError::no_row)?;
            collection(data, req, Op::Upsert(o, field.to_string()), v)
        }
        (&Method::DELETE, ["sobjects"]) => delete(data, req),
        (&Method::POST, ["tree", t]) => {
            let o = schema::object(t).ok_or_else(ApiError::no_row)?;
            tree(data, o, &json_body(req)?)
        }
        _ => Err(ApiError::no_row()),
    }
}

enum Op {
    Create,
    Update,
    Upsert(&'static Object, String),
}

fn records(body: &Value) -> Result<&Vec<Value>> {
    body["records"].as_array().ok_or_else(|| {
        ApiError::bad(
            "JSON_PARSER_ERROR",
            "The request body needs a records array",
        )
    })
}

fn record_type(r: &Value) -> Result<&'static Object> {
    let t = r["attributes"]["type"]
        .as_str()
        .ok_or_else(|| ApiError::bad("INVALID_TYPE", "Must send a concrete entity type."))?;
    schema::object(t).ok_or_else(|| super::soql::invalid_type(t))
}

fn without(r: &Value, keys: &[&str]) -> Value {
    let mut m = r.as_object().cloned().unwrap_or_default();
    m.retain(|k, _| !keys.iter().any(|x| k.eq_ignore_ascii_case(x)) && k != "attributes");
    Value::Object(m)
}

fn one(data: &mut Data, r: &Value, op: &Op, v: &str) -> Result<(String, Option<bool>)> {
    match op {
        Op::Create => {
            let o = record_type(r)?;
            if r.get("Id").is_some() || r.get("id").is_some() {
                return Err(ApiError::bad(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                ));
            }
            Ok((data.create(o, &without(r, &[]))?, None))
        }
        Op::Update => {
            let o = record_type(r)?;
            let id = r["id"]
                .as_str()
                .or_else(|| r["Id"].as_str())
                .ok_or_else(|| {
                    ApiError::bad("MISSING_ARGUMENT", "Id not specified in an update call")
                })?
                .to_string();
            data.update(o, &id, &without(r, &["Id"]))?;
            Ok((ids::to18(&id).unwrap_or(id), None))
        }
        Op::Upsert(o, field) => {
            if record_type(r)?.name != o.name {
                return Err(ApiError::bad(
                    "INVALID_TYPE",
                    format!("Record type must be {}", o.name),
                ));
            }
            let value = r
                .as_object()
                .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .ok_or_else(|| {
                    ApiError::bad("MISSING_ARGUMENT", format!("{field} not specified"))
                })?;
            let (answer, id) =
                dispatch::upsert(data, v, o, field, &value, &without(r, &[]), false)?;
            match (answer.status, id) {
                (300, _) | (_, None) => Err(ApiError::new(
                    300,
                    "DUPLICATE_EXTERNAL_ID",
                    format!(
                        "{field}: more than one record found for external id field: {}",
                        answer.json_body()
                    ),
                )),
                (status, Some(id)) => Ok((id, Some(status == 201))),
            }
        }
    }
}

fn collection(data: &mut Data, req: &Req, op: Op, v: &str) -> Result<Answer> {
    let body = json_body(req)?;
    let recs = records(&body)?;
    if recs.len() > COLLECTION_MAX {
        return Err(too_many());
    }
    let all_or_none = body["allOrNone"] == json!(true);
    data.begin();
    let mut failed = false;
    let mut results: Vec<std::result::Result<Value, Value>> = Vec::with_capacity(recs.len());
    for r in recs {
        match one(data, r, &op, v) {
            Ok((id, created)) => {
                let mut ok = json!({"id": id, "success": true, "errors": []});
                if let Some(c) = created {
                    ok["created"] = json!(c);
                }
                results.push(Ok(ok));
            }
            Err(e) => {
                failed = true;
                results.push(Err(json!({"success": false, "errors": [e.save_error()]})));
            }
        }
    }
    if all_or_none && failed {
        data.rollback();
        let out: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Ok(_) => json!({"id": null, "success": false, "errors": [rolled_back()]}),
                Err(e) => e,
            })
            .collect();
        return Ok(Answer::json(200, Value::Array(out)));
    }
    data.commit();
    Ok(Answer::json(
        200,
        Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| e))
                .collect(),
        ),
    ))
}

fn delete(data: &mut Data, req: &Req) -> Result<Answer> {
    let list: Vec<String> = param(req, "ids")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err(ApiError::bad(
            "MISSING_ARGUMENT",
            "ids parameter must be specified",
        ));
    }
    if list.len() > COLLECTION_MAX {
        return Err(too_many());
    }
    let all_or_none = param(req, "allOrNone") == Some("true");
    data.begin();
    let mut failed = false;
    let mut results = Vec::with_capacity(list.len());
    for id in &list {
        let outcome = match schema::object_of_id(id) {
            Some(o) if ids::to18(id).is_some() => data.delete(o, id),
            _ => Err(ApiError::bad("MALFORMED_ID", format!("malformed id {id}"))),
        };
        match outcome {
            Ok(()) => results.push(Ok(
                json!({"id": ids::to18(id), "success": true, "errors": []}),
            )),
            Err(e) => {
                failed = true;
                results.push(Err(
                    json!({"id": id, "success": false, "errors": [e.save_error()]}),
                ));
            }
        }
    }
    if all_or_none && failed {
        data.rollback();
        let out: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Ok(ok) => json!({"id": ok["id"], "success": false, "errors": [rolled_back()]}),
                Err(e) => e,
            })
            .collect();
        return Ok(Answer::json(200, Value::Array(out)));
    }
    data.commit();
    Ok(Answer::json(
        200,
        Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| e))
                .collect(),
        ),
    ))
}

/// `GET composite/sobjects/{Type}?ids=&fields=`: the records in the order asked, `null`
/// for ids that match nothing.
pub(crate) fn retrieve(
    _state: &State,
    data: &Data,
    v: &str,
    o: &'static Object,
    req: &Req,
) -> Result<Answer> {
    let fields = param(req, "fields")
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::bad("MISSING_ARGUMENT", "fields parameter must be specified"))?;
    let list: Vec<&str> = param(req, "ids")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.len() > 2_000 {
        return Err(too_many());
    }
    let mut out = Vec::with_capacity(list.len());
    for id in list {
        match data.live(o, id) {
            Ok(row) => out.push(dispatch::record(v, o, row, Some(fields))?),
            Err(_) => out.push(Value::Null),
        }
    }
    Ok(Answer::json(200, Value::Array(out)))
}

/// Replaces `@{ref.path}` in a string with the value found in an earlier answer.
fn resolve(s: &str, done: &Map<String, Value>) -> std::result::Result<Value, String> {
    let mut out = String::new();
    let mut rest = s;
    let mut whole: Option<Value> = None;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let expr = &rest[start + 2..start + len];
        let value = lookup(expr, done).ok_or_else(|| expr.to_string())?;
        if start == 0 && start + len + 1 == rest.len() && out.is_empty() {
            whole = Some(value.clone());
        }
        out.push_str(&rest[..start]);
        out.push_str(&match value {
            Value::String(t) => t,
            other => other.to_string(),
        });
        rest = &rest[start + len + 1..];
    }
    if let Some(w) = whole.filter(|_| rest.is_empty()) {
        return Ok(w);
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn lookup(expr: &str, done: &Map<String, Value>) -> Option<Value> {
    let mut parts = expr.split('.');
    let mut cur = done.get(parts.next()?)?.clone();
    for part in parts {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?.clone();
        }
        for idx in indexes.split('[').filter(|x| !x.is_empty()) {
            let n: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(n)?.clone();
        }
    }
    (!cur.is_null()).then_some(cur)
}

fn resolve_value(v: &Value, done: &Map<String, Value>) -> std::result::Result<Value, String> {
    Ok(match v {
        Value::String(s) if s.contains("@{") => resolve(s, done)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, done))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), resolve_value(x, done)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Composite Batch (resources_composite_batch.htm): up to 25 independent subrequests with
/// URLs relative to `/services/data/` (`v59.0/sobjects/Account`); each commits on its own,
/// and `haltOnError` skips the rest after a failure.
fn batch(state: &State, data: &mut Data, v: &str, req: &Req) -> Result<Answer> {
    let body = json_body(req)?;
    let subs = body["batchRequests"].as_array().ok_or_else(|| {
        ApiError::bad(
            "JSON_PARSER_ERROR",
            "The request body needs a batchRequests array",
        )
    })?;
    if subs.len() > COMPOSITE_MAX {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            "The number of subrequests exceeds the maximum of 25",
        ));
    }
    let halt = body["haltOnError"] == json!(true);
    let mut has_errors = false;
    let mut results = Vec::with_capacity(subs.len());
    for sub in subs {
        if halt && has_errors {
            results.push(
                json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED",
                "message": "Batch processing halted per request"}]}),
            );
            continue;
        }
        let url = sub["url"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/');
        let url = url.strip_prefix("services/data/").unwrap_or(url);
        let one = json!({"method": sub["method"], "url": format!("/services/data/{url}"),
                         "body": sub.get("richInput").cloned().unwrap_or(Value::Null)});
        let answer = match subrequest(state, data, v, &one, &Map::new()) {
            Ok(a) => a,
            Err(e) => Answer::json(e.status, json!([e.entry()])),
        };
        has_errors |= answer.status >= 400;
        results.push(json!({"statusCode": answer.status, "result": answer.json_body()}));
    }
    Ok(Answer::json(
        200,
        json!({"hasErrors": has_errors, "results": results}),
    ))
}

fn halted(message: String) -> Value {
    json!([{"errorCode": "PROCESSING_HALTED", "message": message}])
}

fn composite(state: &State, data: &mut Data, v: &str, req: &Req) -> Result<Answer> {
    let body = json_body(req)?;
    let subs = body["compositeRequest"].as_array().ok_or_else(|| {
        ApiError::bad(
            "JSON_PARSER_ERROR",
            "The request body needs a compositeRequest array",
        )
    })?;
    if subs.len() > COMPOSITE_MAX {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            "The number of subrequests exceeds the maximum of 25",
        ));
    }
    // "Up to 5 of these subrequests can be query operations, including Query and QueryAll
    // requests and requests to get the next batch of query results" (resources_composite_composite.htm).
    let queries = subs
        .iter()
        .filter(|sub| {
            let url = sub["url"].as_str().unwrap_or_default();
            let path = url.split('?').next().unwrap_or_default();
            path.contains("/query") || path.contains("/queryAll")
        })
        .count();
    if queries > 5 {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            "A composite request may hold at most 5 query operations",
        ));
    }
    let all_or_none = body["allOrNone"] == json!(true);
    data.begin();
    let mut done = Map::new();
    let mut out: Vec<Value> = Vec::with_capacity(subs.len());
    let mut failed = false;
    // A collection that failed in part keeps its own results in the answer.
    let mut failed_at = None;
    for sub in subs {
        let reference = sub["referenceId"].as_str().unwrap_or_default().to_string();
        if failed && all_or_none {
            out.push(json!({"body": halted("The transaction was rolled back since another operation in the same transaction failed.".into()),
                            "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference}));
            continue;
        }
        let collection = sub["url"].as_str().is_some_and(|u| {
            u.split('?')
                .next()
                .unwrap_or_default()
                .contains("/composite/sobjects")
        });
        let mut sub = sub.clone();
        if all_or_none && collection && sub["body"].is_object() {
            // The outer allOrNone overrides the collections' own (resources_composite_allornone.htm).
            sub["body"]["allOrNone"] = json!(true);
        }
        let answer = match subrequest(state, data, v, &sub, &done) {
            Ok(a) => a,
            Err(e) => Answer::json(e.status, json!([e.entry()])),
        };
        let body = answer.json_body();
        let partial = collection
            && body
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["success"] == json!(false)));
        if all_or_none && partial {
            failed = true;
            failed_at = Some(out.len());
        }
        let mut headers = Map::new();
        for (k, val) in &answer.headers {
            let name = if *k == "location" { "Location" } else { k };
            headers.insert(name.to_string(), json!(val));
        }
        if answer.status >= 400 {
            failed = true;
        } else if !reference.is_empty() {
            done.insert(reference.clone(), body.clone());
        }
        out.push(json!({"body": body, "httpHeaders": headers,
                        "httpStatusCode": answer.status, "referenceId": reference}));
    }
    if failed && all_or_none {
        data.rollback();
        // Earlier successes are reported as rolled back too.
        for (i, r) in out.iter_mut().enumerate() {
            if Some(i) != failed_at && r["httpStatusCode"].as_u64().is_some_and(|s| s < 400) {
                r["body"] = halted("The transaction was rolled back since another operation in the same transaction failed.".into());
                r["httpStatusCode"] = json!(400);
                r["httpHeaders"] = json!({});
            }
        }
    } else {
        data.commit();
    }
    Ok(Answer::json(200, json!({"compositeResponse": out})))
}

fn subrequest(
    state: &State,
    data: &mut Data,
    v: &str,
    sub: &Value,
    done: &Map<String, Value>,
) -> Result<Answer> {
    let unresolved = |expr: String| {
        ApiError::bad(
            "PROCESSING_HALTED",
            format!(
                "Invalid reference specified. No value for {expr} found in the earlier subrequests."
            ),
        )
    };
    let method = sub["method"]
        .as_str()
        .and_then(|m| Method::from_bytes(m.to_uppercase().as_bytes()).ok())
        .ok_or_else(|| ApiError::bad("JSON_PARSER_ERROR", "A subrequest needs a method"))?;
    let url = sub["url"]
        .as_str()
        .ok_or_else(|| ApiError::bad("JSON_PARSER_ERROR", "A subrequest needs a url"))?;
    let url = match resolve(url, done).map_err(unresolved)? {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let rest = path.strip_prefix("/services/data").ok_or_else(|| {
        ApiError::bad(
            "INVALID_URL",
            format!("The url must start with /services/data/v{v}: {path}"),
        )
    })?;
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(dispatch::percent_decode)
        .collect();
    if segments.get(1).is_some_and(|s| s == "composite") && segments.len() == 2 {
        return Err(ApiError::bad(
            "INVALID_URL",
            "A composite request cannot contain a composite request",
        ));
    }
    let params = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                dispatch::percent_decode(&k.replace('+', " ")),
                dispatch::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect();
    let body = match sub.get("body") {
        Some(b) if !b.is_null() => resolve_value(b, done).map_err(unresolved)?.to_string(),
        _ => String::new(),
    };
    let req = Req {
        method,
        segments,
        params,
        body: Bytes::from(body),
        content_type: "application/json".into(),
        batch_size: None,
    };
    dispatch::route(state, data, &req)
}

struct TreeNode {
    object: &'static Object,
    reference: String,
    fields: Value,
    parent: Option<(usize, &'static str)>,
}

fn flatten(
    o: &'static Object,
    r: &Value,
    parent: Option<(usize, &'static str)>,
    depth: usize,
    out: &mut Vec<TreeNode>,
) -> Result<()> {
    if depth > 5 {
        return Err(ApiError::bad(
            "INVALID_INPUT",
            "sObject tree requests support at most 5 levels",
        ));
    }
    let t = record_type(r)?;
    if t.name != o.name {
        return Err(ApiError::bad(
            "INVALID_INPUT",
            format!("Expected a record of type {}, found {}", o.name, t.name),
        ));
    }
    let reference = r["attributes"]["referenceId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if reference.is_empty() {
        return Err(ApiError::bad(
            "INVALID_INPUT",
            "Every record needs attributes.referenceId",
        ));
    }
    let mut fields = Map::new();
    let mut kids = Vec::new();
    for (k, v) in r.as_object().into_iter().flatten() {
        if k == "attributes" {
            continue;
        }
        match o.child(k) {
            Some(child) if v.get("records").is_some() => kids.push((child, v)),
            _ => {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    let me = out.len();
    out.push(TreeNode {
        object: o,
        reference,
        fields: Value::Object(fields),
        parent,
    });
    for (child, v) in kids {
        let co =
            schema::object(child.object).ok_or_else(|| super::soql::invalid_type(child.object))?;
        for cr in v["records"].as_array().into_iter().flatten() {
            flatten(co, cr, Some((me, child.field)), depth + 1, out)?;
        }
    }
    Ok(())
}

/// `POST composite/tree/{Type}`.
fn tree(data: &mut Data, o: &'static Object, body: &Value) -> Result<Answer> {
    let recs = records(body)?;
    let mut nodes = Vec::new();
    for r in recs {
        flatten(o, r, None, 1, &mut nodes)?;
    }
    if nodes.len() > TREE_MAX {
        return Err(too_many());
    }
    data.begin();
    let mut made: Vec<String> = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let mut fields = n.fields.clone();
        if let Some((p, field)) = n.parent
            && let Some(pid) = made.get(p)
        {
            fields[field] = json!(pid);
        }
        match data.create(n.object, &fields) {
            Ok(id) => made.push(id),
            Err(e) => {
                data.rollback();
                return Ok(Answer::json(
                    400,
                    json!({"hasErrors": true, "results": [{"referenceId": n.reference, "errors": [e.save_error()]}]}),
                ));
            }
        }
    }
    data.commit();
    let results: Vec<Value> = nodes
        .iter()
        .zip(&made)
        .map(|(n, id)| json!({"referenceId": n.reference, "id": id}))
        .collect();
    Ok(Answer::json(
        201,
        json!({"hasErrors": false, "results": results}),
    ))
}
