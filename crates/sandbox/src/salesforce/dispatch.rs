//! Routing of `/services/data/vXX.X/…` to the handlers, on the blocking pool: GETs under
//! the shared read lock, everything else under the write lock (a composite request holds
//! it for all its subrequests, so all-or-none can roll back).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Value, json};

use super::State;
use super::api_error::{ApiError, reply, text};
use super::data::{Data, sf_time};
use super::query::{self, Ctx};
use super::schema::{self, FType, Object};
use super::{bulk, composite, ids};
use crate::shared::store::TimeField;

/// A request below `/services/data/`.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    /// The method.
    pub method: Method,
    /// The path segments after `/services/data/`, version first.
    pub segments: Vec<String>,
    /// The query parameters.
    pub params: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// The `Content-Type`.
    pub content_type: String,
    /// The query batch size asked for by `Sforce-Query-Options: batchSize=N`.
    pub batch_size: Option<usize>,
}

/// The batch size of a `Sforce-Query-Options` header (`batchSize=N`, N from 200 to 2,000,
/// default 2,000; the answer may still use another size). Outside the range Salesforce
/// keeps its bounds, which is what this does.
/// <https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm>
pub(crate) fn batch_size(header: &str) -> Option<usize> {
    header
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .map(|n| n.clamp(200, 2_000))
}

/// An answer's body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// JSON.
    Json(Value),
    /// Text with its content type (CSV).
    Text(&'static str, String),
    /// Nothing (204).
    Empty,
}

/// A handler's answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: Body,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// A JSON answer.
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
        }
    }

    /// 204 No Content.
    pub(crate) fn empty() -> Self {
        Self {
            status: 204,
            body: Body::Empty,
            headers: Vec::new(),
        }
    }

    /// The body as JSON (null when empty; text as a string).
    pub(crate) fn json_body(&self) -> Value {
        match &self.body {
            Body::Json(v) => v.clone(),
            Body::Text(_, t) => Value::String(t.clone()),
            Body::Empty => Value::Null,
        }
    }

    fn into_response(self) -> Response {
        let mut r = match self.body {
            Body::Json(v) => reply(self.status, v),
            Body::Text(ct, t) => text(self.status, ct, t),
            Body::Empty => reply(self.status, Value::Null),
        };
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /services/data/`: the versions (restforce `services_data_success_response.json`).
pub(crate) async fn versions() -> Response {
    let list: Vec<Value> = [
        ("55.0", "Summer '22"),
        ("56.0", "Winter '23"),
        ("57.0", "Spring '23"),
        ("58.0", "Summer '23"),
        ("59.0", "Winter '24"),
        ("60.0", "Spring '24"),
        ("61.0", "Summer '24"),
        ("62.0", "Winter '25"),
    ]
    .iter()
    .map(|(v, l)| json!({"version": v, "label": l, "url": format!("/services/data/v{v}")}))
    .collect();
    reply(200, Value::Array(list))
}

/// Any other path: the REST API's 404.
pub(crate) async fn not_found() -> Response {
    ApiError::no_row().into_response()
}

/// Serves one REST request off the async workers.
pub(crate) async fn api(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches("/services/data")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let batch_size = headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(batch_size);
    let req = Req {
        method,
        segments,
        params,
        body,
        content_type,
        batch_size,
    };
    let worker = Arc::clone(&state);
    let joined = tokio::task::spawn_blocking(move || {
        if req.method == Method::GET {
            let data = state.read();
            route_read(&state, &data, &req)
        } else {
            let mut data = state.write();
            route(&state, &mut data, &req)
        }
    })
    .await;
    let resp = match joined {
        Ok(Ok(a)) => a.into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => {
            ApiError::new(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.").into_response()
        }
    };
    super::outbound::flush(&worker);
    resp
}

/// Decodes `%XX` escapes of a path segment (external id values are URL-encoded).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn version(req: &Req) -> Result<&str> {
    req.segments
        .first()
        .and_then(|v| v.strip_prefix('v'))
        .filter(|v| v.split('.').all(|p| p.chars().all(|c| c.is_ascii_digit())))
        .ok_or_else(ApiError::no_row)
}

pub(crate) fn ctx<'a>(state: &'a State, version: &'a str) -> Ctx<'a> {
    Ctx {
        version,
        page_size: state.config.page_size,
        sub_page: state.config.subquery_page_size,
        cursors: &state.cursors,
    }
}

fn object(name: &str) -> Result<&'static Object> {
    schema::object(name).ok_or_else(ApiError::no_row)
}

fn param<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The body as JSON.
pub(crate) fn json_body(req: &Req) -> Result<Value> {
    if req.body.is_empty() {
        return Err(ApiError::bad(
            "JSON_PARSER_ERROR",
            "The HTTP entity body is required, but this request has no entity body.",
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad(
            "JSON_PARSER_ERROR",
            format!("Unexpected character in the request body: {e}"),
        )
    })
}

/// Routes a read.
pub(crate) fn route_read(state: &State, data: &Data, req: &Req) -> Result<Answer> {
    let v = version(req)?;
    let segs: Vec<&str> = req.segments[1..].iter().map(String::as_str).collect();
    let ctx = ctx(state, v);
    match segs.as_slice() {
        [] => {
            let names = [
                "sobjects",
                "query",
                "queryAll",
                "composite",
                "limits",
                "jobs",
            ];
            let map: serde_json::Map<String, Value> = names
                .iter()
                .map(|n| (n.to_string(), json!(format!("/services/data/v{v}/{n}"))))
                .collect();
            Ok(Answer::json(200, Value::Object(map)))
        }
        ["sobjects"] => Ok(Answer::json(200, schema::describe_global(v))),
        ["sobjects", t] => {
            let o = object(t)?;
            let d = schema::describe(v, o);
            let basic: serde_json::Map<String, Value> = d
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k != "fields" && *k != "childRelationships")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Answer::json(
                200,
                json!({"objectDescribe": basic, "recentItems": []}),
            ))
        }
        ["sobjects", t, "describe"] => Ok(Answer::json(200, schema::describe(v, object(t)?))),
        ["sobjects", t, "updated"] => updated(state, data, object(t)?, req, false),
        ["sobjects", t, "deleted"] => updated(state, data, object(t)?, req, true),
        ["sobjects", t, id] => {
            let o = object(t)?;
            // Reading a deleted record is a plain 404 (only writes name ENTITY_IS_DELETED).
            let row = data.live(o, id_segment(id)?).map_err(|e| {
                if e.code == "ENTITY_IS_DELETED" {
                    ApiError::no_row()
                } else {
                    e
                }
            })?;
            Ok(Answer::json(200, record(v, o, row, param(req, "fields"))?))
        }
        ["sobjects", t, field, value] => {
            let o = object(t)?;
            let f = ext_field(o, field)?;
            let matches = live_matches(data, o, f, value);
            match matches.as_slice() {
                [] => Err(ApiError::no_row()),
                [one] => {
                    let row = data.live(o, one)?;
                    Ok(Answer::json(200, record(v, o, row, param(req, "fields"))?))
                }
                many => Ok(multiple(v, o, many)),
            }
        }
        ["query"] | ["queryAll"] => {
            let q = param(req, "q").ok_or_else(|| {
                ApiError::bad("MALFORMED_QUERY", "A query string has to be specified")
            })?;
            // The header's batch size, but never larger than the emulator's own page
            // (a configured smaller page stands for rows Salesforce cuts batches short on).
            let ctx = Ctx {
                page_size: req
                    .batch_size
                    .map_or(ctx.page_size, |n| n.min(ctx.page_size)),
                ..ctx
            };
            Ok(Answer::json(
                200,
                query::run(&ctx, data, q, segs[0] == "queryAll")?,
            ))
        }
        ["query", locator] | ["queryAll", locator] => {
            Ok(Answer::json(200, query::more(&ctx, data, locator)?))
        }
        ["limits"] => Ok(Answer::json(200, limits(state))),
        ["composite", "sobjects", t] => composite::retrieve(state, data, v, object(t)?, req),
        ["jobs", ..] => bulk::read(state, data, v, &segs[1..], req),
        _ => Err(ApiError::no_row()),
    }
}

/// Routes any request.
pub(crate) fn route(state: &State, data: &mut Data, req: &Req) -> Result<Answer> {
    if req.method == Method::GET {
        return route_read(state, data, req);
    }
    let v = version(req)?.to_string();
    let segs: Vec<&str> = req.segments[1..].iter().map(String::as_str).collect();
    match (&req.method, segs.as_slice()) {
        (&Method::POST, ["sobjects", t]) => {
            let o = object(t)?;
            let id = data.create(o, &json_body(req)?)?;
            // restforce `create_success_response.json`; 201 per the REST guide.
            let mut a = Answer::json(201, json!({"id": id, "success": true, "errors": []}));
            a.headers.push((
                "location",
                format!("/services/data/v{v}/sobjects/{}/{id}", o.name),
            ));
            Ok(a)
        }
        (&Method::PATCH, ["sobjects", t, id]) => {
            data.update(object(t)?, id_segment(id)?, &json_body(req)?)?;
            Ok(Answer::empty())
        }
        (&Method::DELETE, ["sobjects", t, id]) => {
            data.delete(object(t)?, id_segment(id)?)?;
            Ok(Answer::empty())
        }
        (&Method::PATCH | &Method::POST, ["sobjects", t, field, value]) => {
            let o = object(t)?;
            let body = json_body(req)?;
            let update_only = param(req, "updateOnly") == Some("true");
            upsert(data, &v, o, field, value, &body, update_only).map(|(a, _)| a)
        }
        (&Method::POST, ["sobjects", t, "Id" | "id"]) => {
            // POST to sobjects/{Type}/Id creates (dome-upsert.html, API 37.0+).
            let o = object(t)?;
            let id = data.create(o, &json_body(req)?)?;
            Ok(Answer::json(
                201,
                json!({"id": id, "success": true, "errors": [], "created": true}),
            ))
        }
        (&Method::DELETE, ["sobjects", t, field, value]) => {
            let o = object(t)?;
            let f = ext_field(o, field)?;
            let matches = live_matches(data, o, f, value);
            match matches.as_slice() {
                [] => Err(ApiError::no_row()),
                [one] => {
                    data.delete(o, &one.clone())?;
                    Ok(Answer::empty())
                }
                many => Ok(multiple(&v, o, many)),
            }
        }
        (_, ["composite", ..]) => composite::route(state, data, &v, &segs[1..], req),
        (_, ["jobs", ..]) => bulk::write(state, data, &v, &segs[1..], req),
        _ => Err(ApiError::new(
            405,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{}' not allowed. Allowed are GET", req.method),
        )),
    }
}

/// A path segment that should be a record id: one that is not an id at all is read as an
/// external id field without a value, as the real API answers it (restforce
/// `delete_error_response.json`: "Provided external ID field does not exist or is not
/// accessible: rid").
fn id_segment(id: &str) -> Result<&str> {
    if ids::to18(id).is_some() {
        Ok(id)
    } else {
        Err(ApiError::not_found(format!(
            "Provided external ID field does not exist or is not accessible: {id}"
        )))
    }
}

/// A record with `attributes`, all fields or the `fields=` list.
pub(crate) fn record(
    v: &str,
    o: &'static Object,
    row: &Value,
    fields: Option<&str>,
) -> Result<Value> {
    let id = row["Id"].as_str().unwrap_or_default();
    let mut out = serde_json::Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": o.name, "url": format!("/services/data/v{v}/sobjects/{}/{id}", o.name)}),
    );
    match fields.filter(|f| !f.trim().is_empty()) {
        Some(list) => {
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let f = o.field(name).ok_or_else(|| {
                    ApiError::bad(
                        "INVALID_FIELD",
                        format!("No such column '{name}' on sobject of type {}", o.name),
                    )
                })?;
                out.insert(f.name.into(), row[f.name].clone());
            }
        }
        None => {
            for f in &o.fields {
                out.insert(f.name.into(), row[f.name].clone());
            }
        }
    }
    Ok(Value::Object(out))
}

fn ext_field(o: &'static Object, name: &str) -> Result<&'static schema::Field> {
    o.field(name).filter(|f| f.id_lookup).ok_or_else(|| {
        // restforce `upsert_error_response.json`.
        ApiError::not_found(format!(
            "Provided external ID field does not exist or is not accessible: {name}"
        ))
    })
}

fn live_matches(data: &Data, o: &'static Object, f: &schema::Field, value: &str) -> Vec<String> {
    if f.ftype == FType::Id {
        return ids::to18(value)
            .filter(|id| data.live(o, id).is_ok())
            .into_iter()
            .collect();
    }
    // Matching by an external id ignores case only for a Unique case-insensitive field
    // (<https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_upsert.htm>);
    // the index folds case for every other text field too, as SOQL compares them.
    let folds = f.unique && !f.case_sensitive;
    data.lookup(o, f, &Value::String(value.to_string()))
        .into_iter()
        .filter(|id| data.live(o, id).is_ok())
        .filter(|id| {
            folds
                || data
                    .get(o.name, id)
                    .is_some_and(|r| r[f.name].as_str() == Some(value))
        })
        .collect()
}

/// 300 Multiple Choices with the matching records' URLs (restforce
/// `upsert_multiple_error_response.json`).
fn multiple(v: &str, o: &Object, ids: &[String]) -> Answer {
    let urls: Vec<Value> = ids
        .iter()
        .map(|id| json!(format!("/services/data/v{v}/sobjects/{}/{id}", o.name)))
        .collect();
    Answer::json(300, Value::Array(urls))
}

/// Whether a version answers an upsert update with 200 and a body (46.0 and later) rather
/// than 204 (dome-upsert.html).
fn upsert_has_body(v: &str) -> bool {
    v.split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= 46)
}

/// Upsert by external id (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm):
/// no match creates (201, `created: true`), one match updates (200 `created: false` from
/// 46.0, 204 before), several are a 300 listing them. The answer and the record id.
pub(crate) fn upsert(
    data: &mut Data,
    v: &str,
    o: &'static Object,
    field: &str,
    value: &str,
    body: &Value,
    update_only: bool,
) -> Result<(Answer, Option<String>)> {
    let f = ext_field(o, field)?;
    let mut body = body.clone();
    if let Some(m) = body.as_object_mut() {
        let given = m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(f.name))
            .map(|(k, v)| (k.clone(), v.clone()));
        if let Some((k, given)) = given {
            let same = given
                .as_str()
                .is_some_and(|g| g.eq_ignore_ascii_case(value));
            if !same {
                return Err(ApiError::bad(
                    "INVALID_FIELD",
                    format!(
                        "The value of the external ID field {} in the body differs from the one in the URL",
                        f.name
                    ),
                )
                .with_fields([f.name]));
            }
            m.remove(&k);
        }
        m.remove("Id");
    }
    let matches = live_matches(data, o, f, value);
    match matches.as_slice() {
        [] => {
            if update_only || f.ftype == FType::Id {
                return Err(ApiError::no_row());
            }
            if let Some(m) = body.as_object_mut() {
                m.insert(f.name.to_string(), json!(value));
            }
            let id = data.create(o, &body)?;
            Ok((
                Answer::json(
                    201,
                    json!({"id": id, "success": true, "errors": [], "created": true}),
                ),
                Some(id),
            ))
        }
        [one] => {
            let id = one.clone();
            data.update(o, &id, &body)?;
            let a = if upsert_has_body(v) {
                Answer::json(
                    200,
                    json!({"id": id, "success": true, "errors": [], "created": false}),
                )
            } else {
                Answer::empty()
            };
            Ok((a, Some(id)))
        }
        many => Ok((multiple(v, o, many), None)),
    }
}

fn limits(state: &State) -> Value {
    let (used, max) = state.usage();
    // Key names and shape: developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm.
    json!({
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
        "SingleEmail": {"Max": 15, "Remaining": 15},
        "MassEmail": {"Max": 10, "Remaining": 10},
    })
}

fn truncate_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// getUpdated / getDeleted
/// (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getupdated.htm>,
/// <https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm>):
/// ids changed (or deleted) with `SystemModstamp` in `[start, end)`.
///
/// As the SOAP reference states for both calls
/// (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm>,
/// <https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getupdated.htm>):
/// the seconds of `start` and `end` are ignored (unless
/// [`super::Config::replication_whole_minutes`] is off); `start` must precede `end` by more
/// than one minute, else `INVALID_REPLICATION_DATE`. getDeleted answers for no more than 15
/// days before the day of the call, getUpdated for 30 days (an earlier start is
/// `INVALID_REPLICATION_DATE`). `earliestDateAvailable` is where the deletion log starts:
/// the 15-day window, or the last purge when later (a start before it is answered, without
/// the purged deletions);
/// `latestDateCovered` is the (cut) end, never past the org's clock.
fn updated(
    state: &State,
    data: &Data,
    o: &'static Object,
    req: &Req,
    deleted: bool,
) -> Result<Answer> {
    let parse = |name: &str| -> Result<DateTime<Utc>> {
        let s = param(req, name).ok_or_else(|| {
            ApiError::bad(
                "MISSING_ARGUMENT",
                format!("{name} parameter must be specified"),
            )
        })?;
        // A `+` left unencoded in the query string arrives as a space.
        let s = &s.replace(' ', "+");
        super::data::parse_datetime(s)
            .or_else(|| crate::shared::time::parse_time(s))
            .ok_or_else(|| {
                ApiError::bad(
                    "INVALID_REPLICATION_DATE",
                    format!("{name} is not a valid date: {s}"),
                )
            })
    };
    let (mut start, mut end) = (parse("start")?, parse("end")?);
    let now = data.clock();
    let whole = state.config.replication_whole_minutes;
    if whole {
        start = truncate_minute(start);
        end = truncate_minute(end.min(now));
    } else {
        end = end.min(now + Duration::milliseconds(1));
    }
    let gap = if whole {
        Duration::minutes(1)
    } else {
        Duration::zero()
    };
    if end - start <= gap {
        return Err(ApiError::bad(
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate by more than one minute",
        ));
    }
    // "no more than 15 days previous to the day the call is executed": from midnight UTC.
    let days = if deleted { 15 } else { 30 };
    let window = (now - Duration::days(days))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now - Duration::days(days), |t| t.and_utc());
    if start < window {
        return Err(ApiError::bad(
            "INVALID_REPLICATION_DATE",
            format!("startDate cannot be more than {days} days ago"),
        ));
    }
    // A purge is not refused: the answer is a 200 whose `earliestDateAvailable` (the last
    // physically deleted record) is later than the start, which tells the caller to resync
    // (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted_getdeletedresult.htm>),
    // and the purged deletions are gone from it.
    let log_start = data.purged_through.map_or(window, |p| p.max(window));
    let ids = data.by_time(o.name, TimeField::Updated, Some(start), Some(end), false);
    let rows = ids.iter().filter_map(|id| data.get(o.name, id));
    let covered = sf_time(end);
    if deleted {
        let purged = |r: &Value| {
            data.purged_through.is_some_and(|p| {
                r["SystemModstamp"]
                    .as_str()
                    .and_then(super::data::parse_datetime)
                    .is_none_or(|t| t <= p)
            })
        };
        let list: Vec<Value> = rows
            .filter(|r| r["IsDeleted"] == json!(true) && !purged(r))
            .map(|r| json!({"id": r["Id"], "deletedDate": r["SystemModstamp"]}))
            .collect();
        Ok(Answer::json(
            200,
            json!({"deletedRecords": list,
                   "earliestDateAvailable": sf_time(truncate_minute(log_start)),
                   "latestDateCovered": covered}),
        ))
    } else {
        let list: Vec<Value> = rows
            .filter(|r| r["IsDeleted"] != json!(true))
            .map(|r| r["Id"].clone())
            .collect();
        Ok(Answer::json(
            200,
            json!({"ids": list, "latestDateCovered": covered}),
        ))
    }
}
