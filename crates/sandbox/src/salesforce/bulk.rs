//! Bulk API 2.0 (developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm):
//! ingest jobs (create, `PUT …/batches` of CSV, `PATCH` to `UploadComplete` or `Aborted`,
//! job info, `successfulResults/`, `failedResults/`, `unprocessedrecords/` as CSV, delete)
//! and query jobs (create, poll, `results` pages chosen by `locator` and `maxRecords`, with
//! `Sforce-Locator` and `Sforce-NumberOfRecords`). CSV is parsed for real, with the job's
//! column delimiter and line ending.
//!
//! A job is processed when its upload completes; the answer to that `PATCH` still says
//! `UploadComplete`, the next poll finds `InProgress` and the one after `JobComplete` (or
//! `Failed`), as a client polling the real service sees the states go by.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::Method;
use base64::Engine;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::State;
use super::api_error::ApiError;
use super::data::{Data, sf_time};
use super::dispatch::{self, Answer, Body, Req, json_body};
use super::query;
use super::schema::{self, Object};
use super::soql::{self, Item, Query};

type Result<T> = std::result::Result<T, ApiError>;

/// The upload limit per job (150 MB; bulk_api_2_0_limits).
const MAX_UPLOAD: usize = 150 * 1024 * 1024;

#[derive(Debug, Clone)]
struct Format {
    delimiter: u8,
    delimiter_name: String,
    crlf: bool,
}

impl Format {
    fn from(body: &Value) -> Result<Self> {
        let name = body["columnDelimiter"]
            .as_str()
            .unwrap_or("COMMA")
            .to_string();
        let delimiter = match name.as_str() {
            "COMMA" => b',',
            "BACKQUOTE" => b'`',
            "CARET" => b'^',
            "PIPE" => b'|',
            "SEMICOLON" => b';',
            "TAB" => b'\t',
            other => {
                return Err(ApiError::bad(
                    "INVALIDJOB",
                    format!("Invalid column delimiter: {other}"),
                ));
            }
        };
        let crlf = match body["lineEnding"].as_str().unwrap_or("LF") {
            "LF" => false,
            "CRLF" => true,
            other => {
                return Err(ApiError::bad(
                    "INVALIDJOB",
                    format!("Invalid line ending: {other}"),
                ));
            }
        };
        Ok(Self {
            delimiter,
            delimiter_name: name,
            crlf,
        })
    }

    fn write(&self, headers: &[String], rows: &[Vec<String>]) -> String {
        let mut w = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .terminator(if self.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .from_writer(Vec::new());
        let _ = w.write_record(headers);
        for r in rows {
            let _ = w.write_record(r);
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[derive(Debug, Clone)]
struct Ingest {
    info: Value,
    object: &'static Object,
    operation: String,
    external_id: Option<String>,
    format: Format,
    uploads: Vec<Vec<u8>>,
    uploaded: usize,
    columns: Vec<String>,
    success: Vec<Vec<String>>,
    failed: Vec<Vec<String>>,
    unprocessed: Vec<Vec<String>>,
    done: bool,
}

#[derive(Debug, Clone)]
struct QueryJob {
    info: Value,
    object: &'static Object,
    query: Arc<Query>,
    ids: Arc<Vec<String>>,
    format: Format,
    polled: bool,
}

/// The Bulk 2.0 jobs of the org.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    ingest: HashMap<String, Ingest>,
    query: HashMap<String, QueryJob>,
    next: u64,
}

impl Jobs {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        super::ids::make(prefix, self.next)
    }
}

fn no_job() -> ApiError {
    ApiError::not_found("Could not find job").code("NOT_FOUND")
}

/// Results exist only for a job that ended: "for a completed job"
/// (<https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm>).
/// Before that the answer is a 400 `InvalidJobState`, the Bulk API 2.0 error for an
/// operation the job's state does not allow
/// (<https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0_errors.htm>).
fn finished(info: &Value) -> Result<()> {
    match info["state"].as_str() {
        Some("JobComplete" | "Failed" | "Aborted") => Ok(()),
        state => Err(ApiError::bad(
            "InvalidJobState",
            format!(
                "Job {} is in state {}: its results are available once it is complete",
                info["id"].as_str().unwrap_or_default(),
                state.unwrap_or("unknown")
            ),
        )),
    }
}

fn csv_answer(status: u16, text: String) -> Answer {
    Answer {
        status,
        body: Body::Text("text/csv", text),
        headers: Vec::new(),
    }
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, Jobs> {
    state.jobs.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads of `jobs/…` (job info, lists, results).
pub(crate) fn read(
    state: &State,
    data: &Data,
    _v: &str,
    segs: &[&str],
    req: &Req,
) -> Result<Answer> {
    let mut jobs = lock(state);
    match segs {
        ["ingest"] => {
            let list: Vec<Value> = jobs.ingest.values().map(|j| j.info.clone()).collect();
            Ok(Answer::json(
                200,
                json!({"done": true, "records": list, "nextRecordsUrl": null}),
            ))
        }
        ["query"] => {
            let list: Vec<Value> = jobs.query.values().map(|j| j.info.clone()).collect();
            Ok(Answer::json(
                200,
                json!({"done": true, "records": list, "nextRecordsUrl": null}),
            ))
        }
        ["ingest", id] => {
            let job = jobs.ingest.get_mut(*id).ok_or_else(no_job)?;
            // A closed job is picked up (`InProgress`) before it completes; each poll sees
            // one step, so a client meets every documented state on its way
            // (<https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_info.htm>).
            if job.done && job.info["state"] == "InProgress" {
                job.info["state"] = json!("JobComplete");
            } else if job.done && job.info["state"] == "UploadComplete" {
                job.info["state"] = json!("InProgress");
            }
            Ok(Answer::json(200, job.info.clone()))
        }
        ["ingest", id, which] => {
            let job = jobs.ingest.get(*id).ok_or_else(no_job)?;
            finished(&job.info)?;
            let (mut headers, rows) = match *which {
                "successfulResults" => (
                    vec!["sf__Id".to_string(), "sf__Created".to_string()],
                    &job.success,
                ),
                "failedResults" => (
                    vec!["sf__Id".to_string(), "sf__Error".to_string()],
                    &job.failed,
                ),
                "unprocessedrecords" => (Vec::new(), &job.unprocessed),
                _ => return Err(ApiError::no_row()),
            };
            headers.extend(job.columns.iter().cloned());
            Ok(csv_answer(200, job.format.write(&headers, rows)))
        }
        ["query", id] => {
            let job = jobs.query.get_mut(*id).ok_or_else(no_job)?;
            // UploadComplete, then InProgress, then JobComplete, one step per poll.
            if job.info["state"] == "InProgress" {
                job.info["state"] = json!("JobComplete");
            } else if job.info["state"] == "UploadComplete" {
                if job.polled {
                    job.info["state"] = json!("InProgress");
                }
                job.polled = true;
            }
            Ok(Answer::json(200, job.info.clone()))
        }
        ["query", id, "results"] => {
            let job = jobs.query.get(*id).ok_or_else(no_job)?;
            finished(&job.info)?;
            let start = match req
                .params
                .iter()
                .find(|(k, _)| k == "locator")
                .map(|(_, v)| v.as_str())
            {
                None | Some("") => 0,
                Some(l) => base64::engine::general_purpose::STANDARD
                    .decode(l)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| {
                        ApiError::bad("INVALIDLOCATOR", format!("Invalid locator: {l}"))
                    })?,
            };
            let max = req
                .params
                .iter()
                .find(|(k, _)| k == "maxRecords")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(state.config.bulk_results_page.max(1));
            let end = (start + max).min(job.ids.len());
            let slice = job.ids.get(start..end).unwrap_or_default();
            let (headers, rows) = query::flat(data, job.object, &job.query, slice);
            let mut a = csv_answer(200, job.format.write(&headers, &rows));
            let locator = if end < job.ids.len() {
                base64::engine::general_purpose::STANDARD.encode(end.to_string())
            } else {
                "null".to_string()
            };
            a.headers.push(("sforce-locator", locator));
            a.headers
                .push(("sforce-numberofrecords", rows.len().to_string()));
            Ok(a)
        }
        _ => Err(ApiError::no_row()),
    }
}

/// Writes of `jobs/…`.
pub(crate) fn write(
    state: &State,
    data: &mut Data,
    v: &str,
    segs: &[&str],
    req: &Req,
) -> Result<Answer> {
    match (&req.method, segs) {
        (&Method::POST, ["ingest"]) => create_ingest(state, data, v, &json_body(req)?),
        (&Method::PUT, ["ingest", id, "batches"]) => {
            if !req.content_type.is_empty() && !req.content_type.starts_with("text/csv") {
                return Err(ApiError::bad(
                    "INVALIDCONTENT",
                    format!(
                        "Unsupported content type {}; upload text/csv",
                        req.content_type
                    ),
                ));
            }
            let mut jobs = lock(state);
            let job = jobs.ingest.get_mut(*id).ok_or_else(no_job)?;
            if job.info["state"] != "Open" {
                return Err(ApiError::new(
                    409,
                    "INVALIDJOBSTATE",
                    "Job is not in Open state",
                ));
            }
            if job.uploaded + req.body.len() > MAX_UPLOAD {
                return Err(ApiError::bad("EXCEEDED_QUOTA", "The upload exceeds 150 MB"));
            }
            job.uploaded += req.body.len();
            job.uploads.push(req.body.to_vec());
            Ok(Answer::json(201, Value::Null).with_empty())
        }
        (&Method::PATCH, ["ingest", id]) => {
            let body = json_body(req)?;
            let mut jobs = lock(state);
            let job = jobs.ingest.get_mut(*id).ok_or_else(no_job)?;
            match (body["state"].as_str(), job.info["state"].as_str()) {
                (Some("UploadComplete"), Some("Open")) => {
                    job.info["state"] = json!("UploadComplete");
                    let answer = job.info.clone();
                    process(data, job);
                    Ok(Answer::json(200, answer))
                }
                (Some("Aborted"), Some("Open" | "UploadComplete")) => {
                    job.info["state"] = json!("Aborted");
                    if let Ok((columns, rows)) = parse_uploads(job) {
                        job.columns = columns;
                        job.unprocessed = rows;
                    }
                    job.uploads.clear();
                    Ok(Answer::json(200, job.info.clone()))
                }
                (Some(s), Some(now)) => Err(ApiError::bad(
                    "INVALIDJOBSTATE",
                    format!("Cannot change the job state from {now} to {s}"),
                )),
                _ => Err(ApiError::bad(
                    "INVALIDJOB",
                    "state must be UploadComplete or Aborted",
                )),
            }
        }
        (&Method::DELETE, ["ingest", id]) => {
            let mut jobs = lock(state);
            let job = jobs.ingest.get(*id).ok_or_else(no_job)?;
            // Only a job that is no longer open can be deleted (delete_job.htm: "UploadComplete,
            // JobComplete, Aborted, or Failed").
            if job.info["state"] == "Open" {
                return Err(ApiError::bad(
                    "INVALIDJOBSTATE",
                    "Only a job in state UploadComplete, JobComplete, Aborted or Failed can be deleted",
                ));
            }
            jobs.ingest.remove(*id);
            Ok(Answer::empty())
        }
        (&Method::POST, ["query"]) => create_query(state, data, v, &json_body(req)?),
        (&Method::PATCH, ["query", id]) => {
            let body = json_body(req)?;
            let mut jobs = lock(state);
            let job = jobs.query.get_mut(*id).ok_or_else(no_job)?;
            if body["state"] == "Aborted" {
                job.info["state"] = json!("Aborted");
                return Ok(Answer::json(200, job.info.clone()));
            }
            Err(ApiError::bad("INVALIDJOB", "state must be Aborted"))
        }
        (&Method::DELETE, ["query", id]) => {
            lock(state).query.remove(*id).ok_or_else(no_job)?;
            Ok(Answer::empty())
        }
        _ => Err(ApiError::no_row()),
    }
}

impl Answer {
    fn with_empty(mut self) -> Self {
        self.body = Body::Empty;
        self
    }
}

fn api_version(v: &str) -> Value {
    v.parse::<f64>().map_or(json!(v), |n| json!(n))
}

fn create_ingest(state: &State, data: &Data, v: &str, body: &Value) -> Result<Answer> {
    let name = body["object"].as_str().unwrap_or_default();
    let object = schema::object(name).ok_or_else(|| {
        ApiError::bad(
            "INVALIDJOB",
            format!("Entity '{name}' is not supported by the Bulk API."),
        )
    })?;
    let operation = body["operation"].as_str().unwrap_or_default().to_string();
    if !matches!(
        operation.as_str(),
        "insert" | "update" | "upsert" | "delete" | "hardDelete"
    ) {
        return Err(ApiError::bad(
            "INVALIDJOB",
            format!("Invalid operation: {operation}"),
        ));
    }
    let external_id = body["externalIdFieldName"].as_str().map(str::to_string);
    if operation == "upsert" && external_id.is_none() {
        return Err(ApiError::bad(
            "INVALIDJOB",
            "externalIdFieldName is required for upsert",
        ));
    }
    let format = Format::from(body)?;
    let mut jobs = lock(state);
    let id = jobs.id("750");
    let now = sf_time(Utc::now());
    let mut info = json!({
        "id": id, "operation": operation, "object": object.name,
        "createdById": data.user_id, "createdDate": now, "systemModstamp": now,
        "state": "Open", "concurrencyMode": "Parallel", "contentType": "CSV",
        "apiVersion": api_version(v), "jobType": "V2Ingest",
        "contentUrl": format!("services/data/v{v}/jobs/ingest/{id}/batches"),
        "lineEnding": if format.crlf { "CRLF" } else { "LF" },
        "columnDelimiter": format.delimiter_name,
        "numberRecordsProcessed": 0, "numberRecordsFailed": 0, "retries": 0,
        "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
    });
    if let Some(e) = &external_id {
        info["externalIdFieldName"] = json!(e);
    }
    jobs.ingest.insert(
        id,
        Ingest {
            info: info.clone(),
            object,
            operation,
            external_id,
            format,
            uploads: Vec::new(),
            uploaded: 0,
            columns: Vec::new(),
            success: Vec::new(),
            failed: Vec::new(),
            unprocessed: Vec::new(),
            done: false,
        },
    );
    Ok(Answer::json(200, info))
}

type Rows = (Vec<String>, Vec<Vec<String>>);

fn parse_uploads(job: &Ingest) -> std::result::Result<Rows, String> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for upload in &job.uploads {
        let mut r = csv::ReaderBuilder::new()
            .delimiter(job.format.delimiter)
            .has_headers(true)
            .from_reader(upload.as_slice());
        let header: Vec<String> = r
            .headers()
            .map_err(|e| format!("InvalidBatch : {e}"))?
            .iter()
            .map(str::to_string)
            .collect();
        if columns.is_empty() {
            columns = header;
        } else if columns != header {
            return Err("InvalidBatch : every upload must have the same header row".into());
        }
        for rec in r.records() {
            let rec = rec.map_err(|e| format!("InvalidBatch : {e}"))?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
    }
    Ok((columns, rows))
}

/// The field values of one CSV row: empty cells are left out, `#N/A` sets null, and
/// `Relationship.ExternalIdField` columns resolve the parent by its external id
/// (bulk_api_2_0 "Prepare CSV Files").
fn row_fields(
    data: &Data,
    o: &'static Object,
    columns: &[String],
    row: &[String],
) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for (c, cell) in columns.iter().zip(row) {
        if cell.is_empty() {
            continue;
        }
        let value = if cell == "#N/A" {
            Value::Null
        } else {
            json!(cell)
        };
        if let Some((rel, ext)) = c.split_once('.') {
            let f = o
                .relationship(rel)
                .ok_or_else(|| soql::no_column(rel, o.name))?;
            let target = f
                .refs
                .first()
                .and_then(|r| schema::object(r))
                .ok_or_else(|| soql::no_column(rel, o.name))?;
            let ef = target
                .field(ext)
                .filter(|x| x.id_lookup)
                .ok_or_else(|| soql::no_column(ext, target.name))?;
            let found: Vec<String> = data
                .lookup(target, ef, &value)
                .into_iter()
                .filter(|id| data.live(target, id).is_ok())
                .collect();
            match found.as_slice() {
                [one] => {
                    m.insert(f.name.to_string(), json!(one));
                }
                [] => {
                    return Err(ApiError::bad(
                        "INVALID_FIELD",
                        format!(
                            "Foreign key external ID: {cell} not found for field {ext} in entity {}",
                            target.name
                        ),
                    ));
                }
                _ => {
                    return Err(ApiError::bad(
                        "INVALID_FIELD",
                        format!(
                            "More than 1 record found for {ext} = {cell} in entity {}",
                            target.name
                        ),
                    ));
                }
            }
        } else {
            m.insert(c.clone(), value);
        }
    }
    Ok(m)
}

fn error_text(e: &ApiError) -> String {
    // `sf__Error` is `CODE:message:fields --` in failedResults.
    format!("{}:{}:{} --", e.code, e.message, e.fields.join(","))
}

fn process(data: &mut Data, job: &mut Ingest) {
    let start = std::time::Instant::now();
    job.done = true;
    let (columns, rows) = match parse_uploads(job) {
        Ok(x) => x,
        Err(message) => {
            job.info["state"] = json!("Failed");
            job.info["errorMessage"] = json!(message);
            return;
        }
    };
    if rows.is_empty() && columns.is_empty() {
        job.info["state"] = json!("Failed");
        job.info["errorMessage"] = json!("No data uploaded for this job");
        return;
    }
    let o = job.object;
    let id_col = columns.iter().position(|c| c.eq_ignore_ascii_case("Id"));
    for row in &rows {
        let given_id = id_col.and_then(|i| row.get(i)).cloned().unwrap_or_default();
        let outcome: Result<(String, bool)> = (|| {
            let mut fields = row_fields(data, o, &columns, row)?;
            match job.operation.as_str() {
                "insert" => Ok((data.create(o, &Value::Object(fields))?, true)),
                "update" => {
                    if given_id.is_empty() {
                        return Err(ApiError::bad(
                            "MISSING_ARGUMENT",
                            "Id not specified in an update call",
                        ));
                    }
                    fields.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
                    data.update(o, &given_id, &Value::Object(fields))?;
                    Ok((
                        super::ids::to18(&given_id).unwrap_or(given_id.clone()),
                        false,
                    ))
                }
                "delete" | "hardDelete" => {
                    data.delete(o, &given_id)?;
                    Ok((
                        super::ids::to18(&given_id).unwrap_or(given_id.clone()),
                        false,
                    ))
                }
                _ => {
                    let ext = job.external_id.clone().unwrap_or_default();
                    let value = fields
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&ext))
                        .and_then(|(_, v)| v.as_str().map(str::to_string))
                        .ok_or_else(|| {
                            ApiError::bad("MISSING_ARGUMENT", format!("{ext} not specified"))
                        })?;
                    let (answer, id) = dispatch::upsert(
                        data,
                        "59.0",
                        o,
                        &ext,
                        &value,
                        &Value::Object(fields),
                        false,
                    )?;
                    match id {
                        Some(id) => Ok((id, answer.status == 201)),
                        None => Err(ApiError::new(
                            300,
                            "DUPLICATE_EXTERNAL_ID",
                            format!(
                                "{ext}: more than one record found for external id field: {}",
                                answer.json_body()
                            ),
                        )),
                    }
                }
            }
        })();
        match outcome {
            Ok((id, created)) => {
                let mut r = vec![id, created.to_string()];
                r.extend(row.iter().cloned());
                job.success.push(r);
            }
            Err(e) => {
                let mut r = vec![given_id.clone(), error_text(&e)];
                r.extend(row.iter().cloned());
                job.failed.push(r);
            }
        }
    }
    job.columns = columns;
    job.uploads.clear();
    let ms = start.elapsed().as_millis() as u64;
    job.info["numberRecordsProcessed"] = json!(job.success.len() + job.failed.len());
    job.info["numberRecordsFailed"] = json!(job.failed.len());
    job.info["totalProcessingTime"] = json!(ms);
    job.info["apiActiveProcessingTime"] = json!(ms);
    job.info["systemModstamp"] = json!(sf_time(Utc::now()));
}

fn create_query(state: &State, data: &Data, v: &str, body: &Value) -> Result<Answer> {
    let operation = body["operation"].as_str().unwrap_or("query").to_string();
    if !matches!(operation.as_str(), "query" | "queryAll") {
        return Err(ApiError::bad(
            "INVALIDJOB",
            format!("Invalid operation: {operation}"),
        ));
    }
    let text = body["query"]
        .as_str()
        .ok_or_else(|| ApiError::bad("INVALIDJOB", "query is required"))?;
    let q = soql::parse(text)?;
    if q.items.iter().any(|i| !matches!(i, Item::Field(_))) {
        // Bulk queries return flat CSV: no subqueries or aggregates (bulk_api_2_0_query considerations).
        return Err(ApiError::bad(
            "INVALIDJOB",
            "Bulk API 2.0 queries support neither subqueries nor aggregate functions",
        ));
    }
    let object = schema::object(&q.from).ok_or_else(|| soql::invalid_type(&q.from))?;
    let ids = soql::select(data, object, &q, operation == "queryAll")?;
    let format = Format::from(body)?;
    let mut jobs = lock(state);
    let id = jobs.id("750");
    let now = sf_time(Utc::now());
    let info = json!({
        "id": id, "operation": operation, "object": object.name,
        "createdById": data.user_id, "createdDate": now, "systemModstamp": now,
        "state": "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV",
        "apiVersion": api_version(v), "jobType": "V2Query",
        "lineEnding": if format.crlf { "CRLF" } else { "LF" },
        "columnDelimiter": format.delimiter_name,
        "numberRecordsProcessed": ids.len(), "retries": 0, "totalProcessingTime": 0,
    });
    jobs.query.insert(
        id,
        QueryJob {
            info: info.clone(),
            object,
            query: Arc::new(q),
            ids: Arc::new(ids),
            format,
            polled: false,
        },
    );
    Ok(Answer::json(200, info))
}
