//! Bulk API 2.0: ingest jobs (create, upload CSV, close, poll with backoff, then the
//! successful, failed and unprocessed records) and query jobs (poll, then stream the result
//! pages by locator).
//!
//! Source: developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/ (Bulk API
//! 2.0: "Create a Job", "Upload Job Data", "Close or Abort a Job", "Get Job Information",
//! "Get Job Successful/Failed/Unprocessed Record Results", "Get Results for a Query Job").
//! Job states run `Open → UploadComplete → InProgress → JobComplete | Failed | Aborted`.
//! Uploads are CSV with a header row; an empty cell leaves a field alone and `#N/A` sets it
//! to null. Result CSVs carry `sf__Id` and `sf__Created` (successful) or `sf__Error`
//! (failed) before the uploaded columns; [`Client::insert_many`] matches them back to the
//! input by those columns, since the results come in no particular order and carry no row
//! number. Salesforce echoes the values as it processed them, which may differ from the
//! upload (number or boolean spelling), so a record no result row matches is reported with
//! an [`ErrorKind::BadResponse`] "outcome unknown" error, never as a retryable failure
//! (that retry could duplicate it); only rows in `unprocessedrecords/` are
//! [`ErrorKind::Transient`]. The same holds for a whole insert job that was closed (its
//! data handed over for processing) but whose end or results could not be read: every
//! record's outcome is unknown. Creates that must be exact should carry an external id and
//! go through an upsert job ([`Client::upsert_many`]), whose results are matched by that key
//! and which a retry can never duplicate.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use crmkit_core::http::retry::{RetryPolicy, backoff};
use crmkit_core::http::{ApiRequest, Body, Method};
use crmkit_core::{Crm, Error, ErrorKind, Result};
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Client, path_segment};
use crate::ids::SalesforceId;
use crate::sobjects::{Fields, Upserted};

/// What an ingest job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Creates records.
    Insert,
    /// Updates records by `Id`.
    Update,
    /// Upserts by an external id field.
    Upsert,
    /// Deletes by `Id` (to the recycle bin).
    Delete,
    /// Deletes by `Id` for good.
    HardDelete,
}

/// A job's state and counters (`GET jobs/ingest/{id}` or `jobs/query/{id}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job id.
    pub id: String,
    /// `Open`, `UploadComplete`, `InProgress`, `JobComplete`, `Failed` or `Aborted`.
    pub state: String,
    /// The object.
    #[serde(default)]
    pub object: Option<String>,
    /// Records processed so far.
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    /// Records that failed.
    #[serde(default)]
    pub number_records_failed: Option<u64>,
    /// Why the job failed, when it did.
    #[serde(default)]
    pub error_message: Option<String>,
}

impl JobInfo {
    /// Whether the job reached an end state.
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "JobComplete" | "Failed" | "Aborted")
    }
}

/// The outcome of an ingest job, as Salesforce reports it.
#[derive(Debug, Clone, Default)]
pub struct IngestResults {
    /// Written records: id, whether created, and the uploaded columns.
    pub successful: Vec<(String, bool, Map<String, Value>)>,
    /// Refused records: the error and the uploaded columns.
    pub failed: Vec<(String, Map<String, Value>)>,
    /// Records never processed (the job failed or was aborted first).
    pub unprocessed: Vec<Map<String, Value>>,
}

/// How long to wait between polls of a job: from 1 s doubling to 30 s.
fn poll_policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(30),
        ..RetryPolicy::default()
    }
}

/// A CSV cell for a JSON value: `#N/A` for null (Bulk API 2.0's null), text as is.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "#N/A".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The CSV of `records`: the union of their fields as the header, in first-seen order.
pub fn to_csv(records: &[Fields]) -> Result<(Vec<String>, String)> {
    let mut header: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in records {
        for k in r.keys() {
            if k != "attributes" && seen.insert(k.clone()) {
                header.push(k.clone());
            }
        }
    }
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let io = |e: csv::Error| Error::config(format!("cannot write CSV: {e}"));
    w.write_record(&header).map_err(io)?;
    for r in records {
        let row: Vec<String> = header
            .iter()
            .map(|h| r.get(h).map(cell).unwrap_or_default())
            .collect();
        w.write_record(&row).map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::config(format!("cannot write CSV: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::config(format!("CSV: {e}")))?;
    Ok((header, text))
}

/// Parses a result CSV into rows of strings keyed by column.
pub fn parse_csv(text: &str) -> Result<Vec<Map<String, Value>>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| {
        Error::bad_response(format!("a Bulk API result is not valid CSV: {e}"))
            .with_crm(Crm::Salesforce)
    };
    let header: Vec<String> = r
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(bad)?;
        rows.push(
            header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                .collect(),
        );
    }
    Ok(rows)
}

/// The uploaded columns of a result row, as text, to match it to its input row.
fn signature(row: &Map<String, Value>, header: &[String]) -> Vec<String> {
    header
        .iter()
        .map(|h| row.get(h).map(cell).unwrap_or_default())
        .collect()
}

impl Client {
    /// `POST jobs/ingest`: opens an ingest job on `sobject`.
    pub async fn bulk_create_job(
        &self,
        sobject: &str,
        operation: Operation,
        external_id_field: Option<&str>,
    ) -> Result<JobInfo> {
        let mut body = json!({
            "object": path_segment("sObject name", sobject)?,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if let Some(f) = external_id_field {
            body["externalIdFieldName"] = Value::from(f);
        }
        self.json(&ApiRequest::post("jobs/ingest", body)).await
    }

    /// `PUT jobs/ingest/{id}/batches`: uploads the job's CSV.
    pub async fn bulk_upload(&self, job_id: &str, csv: String) -> Result<()> {
        let mut req = ApiRequest::new(
            Method::PUT,
            format!("jobs/ingest/{}/batches", path_segment("job id", job_id)?),
        );
        req.body = Body::Text {
            content_type: "text/csv".into(),
            text: csv,
        };
        self.send(&req).await.map(drop)
    }

    /// `PATCH jobs/ingest/{id}` to `UploadComplete` (`abort` sends `Aborted` instead).
    pub async fn bulk_close(&self, job_id: &str, abort: bool) -> Result<JobInfo> {
        let state = if abort { "Aborted" } else { "UploadComplete" };
        let req = ApiRequest::new(
            Method::PATCH,
            format!("jobs/ingest/{}", path_segment("job id", job_id)?),
        )
        .json(json!({ "state": state }))
        .repeat_safe();
        self.json(&req).await
    }

    /// Polls `jobs/{kind}/{id}` with backoff until the job ends, showing each answer to
    /// `on_poll`.
    async fn bulk_wait(
        &self,
        kind: &str,
        job_id: &str,
        mut on_poll: impl FnMut(&JobInfo),
    ) -> Result<JobInfo> {
        let policy = poll_policy();
        let path = format!("jobs/{kind}/{}", path_segment("job id", job_id)?);
        let mut attempt = 0u32;
        loop {
            let info: JobInfo = self.json(&ApiRequest::get(path.clone())).await?;
            on_poll(&info);
            if info.finished() {
                return Ok(info);
            }
            tokio::time::sleep(backoff(&policy, attempt, fastrand::f64())).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// Waits for an ingest job to end: polls its state from once a second, doubling the
    /// pause up to 30 s. Its results can be read once it has ended.
    pub async fn bulk_wait_ingest(&self, job_id: &str) -> Result<JobInfo> {
        self.bulk_wait("ingest", job_id, |_| ()).await
    }

    /// [`Client::bulk_wait_ingest`], showing every poll's answer to `on_poll` (progress:
    /// `number_records_processed`).
    pub async fn bulk_wait_ingest_with(
        &self,
        job_id: &str,
        on_poll: impl FnMut(&JobInfo),
    ) -> Result<JobInfo> {
        self.bulk_wait("ingest", job_id, on_poll).await
    }

    async fn bulk_csv(&self, path: String) -> Result<Vec<Map<String, Value>>> {
        let req = ApiRequest::get(path).header("Accept", "text/csv");
        let resp = self.send(&req).await?;
        parse_csv(&String::from_utf8_lossy(&resp.body))
    }

    /// The successful, failed and unprocessed records of a finished ingest job (Salesforce
    /// serves them only once the job ended: wait with [`Client::bulk_wait_ingest`]).
    pub async fn bulk_results(&self, job_id: &str) -> Result<IngestResults> {
        let base = format!("jobs/ingest/{}", path_segment("job id", job_id)?);
        let mut out = IngestResults::default();
        for mut row in self.bulk_csv(format!("{base}/successfulResults/")).await? {
            let id = take(&mut row, "sf__Id");
            let created = take(&mut row, "sf__Created").eq_ignore_ascii_case("true");
            out.successful.push((id, created, row));
        }
        for mut row in self.bulk_csv(format!("{base}/failedResults/")).await? {
            take(&mut row, "sf__Id");
            let error = take(&mut row, "sf__Error");
            out.failed.push((error, row));
        }
        out.unprocessed = self.bulk_csv(format!("{base}/unprocessedrecords/")).await?;
        Ok(out)
    }

    /// Runs a whole ingest job: create, upload, close, wait, results.
    pub async fn bulk_ingest(
        &self,
        sobject: &str,
        operation: Operation,
        external_id_field: Option<&str>,
        records: &[Fields],
    ) -> Result<(JobInfo, IngestResults)> {
        self.run_ingest(sobject, operation, external_id_field, records)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`Client::bulk_ingest`], whose error also says whether the job was closed: from
    /// then on Salesforce may process its records whatever the client sees.
    async fn run_ingest(
        &self,
        sobject: &str,
        operation: Operation,
        external_id_field: Option<&str>,
        records: &[Fields],
    ) -> std::result::Result<(JobInfo, IngestResults), (Error, Option<String>)> {
        let (_, csv) = to_csv(records).map_err(|e| (e, None))?;
        let job = self
            .bulk_create_job(sobject, operation, external_id_field)
            .await
            .map_err(|e| (e, None))?;
        if let Err(e) = self.bulk_upload(&job.id, csv).await {
            // Leave no open job behind; the upload's error is the one to report. An open
            // job is never processed, aborted or not.
            let _ = self.bulk_close(&job.id, true).await;
            return Err((e, None));
        }
        let closed = |e: Error| (e, Some(job.id.clone()));
        self.bulk_close(&job.id, false).await.map_err(closed)?;
        let info = self.bulk_wait_ingest(&job.id).await.map_err(closed)?;
        let results = self.bulk_results(&job.id).await.map_err(closed)?;
        Ok((info, results))
    }

    /// Creates `records` of `sobject`, one result per record in input order: through sObject
    /// collections below the client's bulk threshold, through a Bulk API 2.0 insert job from
    /// it on.
    pub async fn insert_many(
        &self,
        sobject: &str,
        records: Vec<Fields>,
    ) -> Vec<Result<SalesforceId>> {
        if records.len() < self.bulk_threshold() {
            return self.collections(sobject).create(records).await;
        }
        let label = |i: usize| format!("{sobject} #{i}");
        let (header, _) = match to_csv(&records) {
            Ok(h) => h,
            Err(e) => {
                return (0..records.len())
                    .map(|i| Err(e.clone().with_record(label(i))))
                    .collect();
            }
        };
        let (info, results) = match self
            .run_ingest(sobject, Operation::Insert, None, &records)
            .await
        {
            Ok(r) => r,
            Err((e, closed)) => {
                // Once closed, the job may have created any of the records: a retry could
                // make them twice, so none is reported as retryable.
                let e = match closed {
                    Some(job) => Error::new(
                        ErrorKind::BadResponse,
                        format!(
                            "the outcome of this record in Bulk API job {job} is unknown: the \
                             job was closed for processing but its results could not be read \
                             ({e}); check before retrying (creates with an external id field \
                             are safe to repeat as upserts)"
                        ),
                    )
                    .with_crm(Crm::Salesforce),
                    None => e,
                };
                return (0..records.len())
                    .map(|i| Err(e.clone().with_record(label(i))))
                    .collect();
            }
        };
        // Result rows in any order: match each to an input row with the same columns.
        let mut pending: HashMap<Vec<String>, VecDeque<Result<SalesforceId>>> = HashMap::new();
        for (id, _, row) in results.successful {
            pending
                .entry(signature(&row, &header))
                .or_default()
                .push_back(Ok(SalesforceId::new(id)));
        }
        for (error, row) in results.failed {
            let (code, message) = error.split_once(':').unwrap_or(("", error.as_str()));
            let e = crate::dialect::error_from_entries(
                400,
                &json!([{ "errorCode": code.trim(), "message": message.trim() }]),
            );
            pending
                .entry(signature(&row, &header))
                .or_default()
                .push_back(Err(e));
        }
        // Only a record Salesforce lists as unprocessed is safe to retry; one whose result
        // row cannot be matched (Salesforce may echo normalised values) may well exist, so
        // its outcome is reported as unknown rather than as a retryable failure.
        let mut unprocessed: HashMap<Vec<String>, usize> = HashMap::new();
        for row in &results.unprocessed {
            *unprocessed.entry(signature(row, &header)).or_default() += 1;
        }
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let sig = signature(r, &header);
                pending
                    .get_mut(&sig)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or_else(|| match unprocessed.get_mut(&sig) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            Err(Error::new(
                                ErrorKind::Transient,
                                format!(
                                    "the Bulk API job {} ended {} without processing this record",
                                    info.id, info.state
                                ),
                            ))
                        }
                        _ => Err(Error::new(
                            ErrorKind::BadResponse,
                            format!(
                                "the outcome of this record in Bulk API job {} is unknown: no \
                                 result row matches it, so it may have been created; check \
                                 before retrying (creates with an external id field are safe \
                                 to repeat as upserts)",
                                info.id
                            ),
                        )),
                    })
                    .map_err(|e| e.with_crm(Crm::Salesforce).with_record(label(i)))
            })
            .collect()
    }

    /// Upserts `records` of `sobject` by their external id `field` (which each must carry),
    /// one result per record in input order: sObject collections below the bulk threshold,
    /// a Bulk API 2.0 upsert job from it on (results matched back by `field`). Repeating it
    /// after any failure updates what the first attempt made, so nothing is created twice.
    pub async fn upsert_many(
        &self,
        sobject: &str,
        field: &str,
        records: Vec<Fields>,
    ) -> Vec<Result<Upserted>> {
        if records.len() < self.bulk_threshold() {
            return self.collections(sobject).upsert(field, records).await;
        }
        // A null key would go out as the CSV null marker `#N/A`, and Salesforce would
        // match or create a record by it: a record without a key fails alone instead.
        let keys = records
            .iter()
            .map(|r| {
                r.iter()
                    .find(|(k, v)| k.eq_ignore_ascii_case(field) && !v.is_null())
                    .map(|(_, v)| cell(v))
                    .filter(|v| !v.trim().is_empty())
            })
            .collect();
        self.bulk_by_key(
            sobject,
            Operation::Upsert,
            Some(field),
            field,
            records,
            keys,
        )
        .await
        .into_iter()
        .map(|r| {
            r.map(|(id, created)| Upserted {
                id: Some(id),
                created,
            })
        })
        .collect()
    }

    /// Patches `records` of `sobject` (each carrying `Id`), one result per record in input
    /// order: sObject collections below the bulk threshold, a Bulk API 2.0 update job from
    /// it on (results matched back by `Id`).
    pub async fn update_many(&self, sobject: &str, records: Vec<Fields>) -> Vec<Result<()>> {
        if records.len() < self.bulk_threshold() {
            return self.collections(sobject).update(records).await;
        }
        let keys: Vec<Option<String>> = records
            .iter()
            .map(|r| {
                r.get("Id")
                    .and_then(Value::as_str)
                    .map(crate::ids::normalize)
            })
            .collect();
        self.bulk_by_key(sobject, Operation::Update, None, "Id", records, keys)
            .await
            .into_iter()
            .map(|r| r.map(drop))
            .collect()
    }

    /// Deletes `ids` of `sobject`, one result per id in input order: sObject collections
    /// below the bulk threshold, a Bulk API 2.0 delete job from it on.
    pub async fn delete_many(&self, sobject: &str, ids: Vec<String>) -> Vec<Result<()>> {
        if ids.len() < self.bulk_threshold() {
            return self.collections(sobject).delete(ids).await;
        }
        let keys = ids.iter().map(|i| Some(crate::ids::normalize(i))).collect();
        let records = ids
            .into_iter()
            .map(|id| {
                let mut f = Fields::new();
                f.insert("Id".into(), Value::String(id));
                f
            })
            .collect();
        self.bulk_by_key(sobject, Operation::Delete, None, "Id", records, keys)
            .await
            .into_iter()
            .map(|r| r.map(drop))
            .collect()
    }

    /// Runs one ingest job and gives each input the outcome of the result row with its key
    /// (`Id`, or the external id field): `sf__Id` of a successful row, the key column of a
    /// failed or unprocessed one. An input without a key fails alone.
    async fn bulk_by_key(
        &self,
        sobject: &str,
        operation: Operation,
        external_id_field: Option<&str>,
        key_field: &str,
        records: Vec<Fields>,
        keys: Vec<Option<String>>,
    ) -> Vec<Result<(SalesforceId, bool)>> {
        let label = |i: usize| format!("{sobject} #{i}");
        let sendable: Vec<Fields> = records
            .iter()
            .zip(&keys)
            .filter(|(_, k)| k.is_some())
            .map(|(r, _)| r.clone())
            .collect();
        let outcome = if sendable.is_empty() {
            Ok(None)
        } else {
            self.bulk_ingest(sobject, operation, external_id_field, &sendable)
                .await
                .map(Some)
        };
        let (info, results) = match outcome {
            Ok(Some(r)) => r,
            Ok(None) => (
                JobInfo {
                    id: String::new(),
                    state: "NotStarted".into(),
                    object: None,
                    number_records_processed: None,
                    number_records_failed: None,
                    error_message: None,
                },
                IngestResults::default(),
            ),
            Err(e) => {
                return (0..records.len())
                    .map(|i| Err(e.clone().with_record(label(i))))
                    .collect();
            }
        };
        let mut by_key: HashMap<String, VecDeque<Result<(SalesforceId, bool)>>> = HashMap::new();
        let key_of = |row: &Map<String, Value>, fallback: &str| {
            let v = row
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key_field))
                .map(|(_, v)| cell(v))
                .unwrap_or_default();
            let v = if v.is_empty() {
                fallback.to_string()
            } else {
                v
            };
            if key_field == "Id" {
                crate::ids::normalize(&v)
            } else {
                v
            }
        };
        for (id, created, row) in &results.successful {
            by_key
                .entry(key_of(row, id))
                .or_default()
                .push_back(Ok((SalesforceId::new(id.clone()), *created)));
        }
        for (error, row) in &results.failed {
            let (code, message) = error.split_once(':').unwrap_or(("", error.as_str()));
            let e = crate::dialect::error_from_entries(
                400,
                &json!([{ "errorCode": code.trim(), "message": message.trim() }]),
            );
            by_key.entry(key_of(row, "")).or_default().push_back(Err(e));
        }
        keys.iter()
            .enumerate()
            .map(|(i, key)| {
                let Some(key) = key else {
                    return Err(Error::new(
                        ErrorKind::Validation,
                        format!("the record has no {key_field}"),
                    )
                    .with_crm(Crm::Salesforce)
                    .with_record(label(i)));
                };
                by_key
                    .get_mut(key)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or_else(|| {
                        Err(Error::new(
                            ErrorKind::Transient,
                            format!(
                                "the Bulk API job {} ended {} without processing this record",
                                info.id, info.state
                            ),
                        ))
                    })
                    .map_err(|e| e.with_crm(Crm::Salesforce).with_record(label(i)))
            })
            .collect()
    }

    /// `POST jobs/query`: starts a query job (`all` for queryAll).
    pub async fn bulk_query_job(&self, soql: &str, all: bool) -> Result<JobInfo> {
        let body = json!({
            "operation": if all { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        self.json(&ApiRequest::post("jobs/query", body)).await
    }

    /// Runs `soql` as a Bulk API 2.0 query job and streams its rows (every value a string,
    /// as the CSV has it), page after page by `Sforce-Locator`.
    pub fn bulk_query(
        &self,
        soql: &str,
        all: bool,
    ) -> BoxStream<'static, Result<Map<String, Value>>> {
        enum Next {
            Start(String),
            Page(String, Option<String>),
            Done,
        }
        let client = self.clone();
        stream::try_unfold(Next::Start(soql.to_string()), move |next| {
            let client = client.clone();
            async move {
                let (job, locator) = match next {
                    Next::Start(q) => {
                        let job = client.bulk_query_job(&q, all).await?;
                        let info = client.bulk_wait("query", &job.id, |_| ()).await?;
                        if info.state != "JobComplete" {
                            return Err(Error::new(
                                ErrorKind::BadResponse,
                                format!(
                                    "the query job {} ended {}: {}",
                                    info.id,
                                    info.state,
                                    info.error_message.unwrap_or_default()
                                ),
                            )
                            .with_crm(Crm::Salesforce));
                        }
                        (job.id, None)
                    }
                    Next::Page(id, locator) => (id, locator),
                    Next::Done => return Ok(None),
                };
                let mut req = ApiRequest::get(format!(
                    "jobs/query/{}/results",
                    path_segment("job id", &job)?
                ))
                .header("Accept", "text/csv");
                if let Some(l) = &locator {
                    req = req.query("locator", l.clone());
                }
                let resp = client.send(&req).await?;
                let rows = parse_csv(&String::from_utf8_lossy(&resp.body))?;
                let next = resp
                    .headers
                    .get("sforce-locator")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && *l != "null")
                    .map(|l| Next::Page(job.clone(), Some(l.to_string())))
                    .unwrap_or(Next::Done);
                Ok(Some((stream::iter(rows.into_iter().map(Ok)), next)))
            }
        })
        .map(|page: Result<_>| match page {
            Ok(s) => s.left_stream(),
            Err(e) => stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten()
        .boxed()
    }
}

fn take(row: &mut Map<String, Value>, key: &str) -> String {
    match row.remove(key) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_with_quotes_commas_and_nulls() {
        let rows: Vec<Fields> = vec![
            serde_json::from_value(json!({"Name": "Acme, \"Inc\"", "NumberOfEmployees": 5}))
                .expect("map"),
            serde_json::from_value(json!({"Name": "B\nline", "Site": null})).expect("map"),
        ];
        let (header, text) = to_csv(&rows).expect("csv");
        assert_eq!(header, vec!["Name", "NumberOfEmployees", "Site"]);
        let back = parse_csv(&text).expect("parses");
        assert_eq!(back[0]["Name"], "Acme, \"Inc\"");
        assert_eq!(back[0]["NumberOfEmployees"], "5");
        assert_eq!(back[1]["Name"], "B\nline");
        assert_eq!(back[1]["Site"], "#N/A");
        assert_eq!(signature(&back[0], &header), signature(&rows[0], &header));
    }
}
