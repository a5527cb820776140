//! `crmkit salesforce bulk import`: a CSV file through one Bulk API 2.0 ingest job, with a
//! progress bar of the rows the job has processed, and the failed rows written out.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use crmkit_core::{Error, ErrorKind};
use crmkit_salesforce::Client;
use crmkit_salesforce::bulk::{IngestResults, JobInfo, Operation};

use crate::Outcome;
use crate::failure::Failure;
use crate::progress::Progress;
use crate::waits::Waits;

/// Largest file one job takes: Bulk API 2.0 accepts at most 150 MB of base64-encoded
/// upload, about 100 MB of CSV (Bulk API 2.0 limits,
/// developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_bulkapi.htm).
const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// What the job does with each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportOperation {
    /// Create a record per row.
    Insert,
    /// Change the record each row's Id names.
    Update,
    /// Create or update by --external-id-field.
    Upsert,
}

/// Options of `crmkit salesforce bulk import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The CSV file: a header row of field names, then one record per row.
    file: PathBuf,
    /// The sObject type the rows are, e.g. Contact.
    #[arg(long)]
    object: String,
    /// What to do with each row.
    #[arg(long, value_enum, default_value_t = ImportOperation::Insert)]
    operation: ImportOperation,
    /// The external id field an upsert matches rows on.
    #[arg(long)]
    external_id_field: Option<String>,
    /// Where failed and unprocessed rows go (default: FILE with .failed.csv in place of .csv).
    #[arg(long)]
    failed: Option<PathBuf>,
}

/// The file, read and checked before anything is sent.
pub struct Prepared {
    header: Vec<String>,
    csv: String,
    rows: u64,
}

fn invalid(message: String) -> Failure {
    Error::new(ErrorKind::Validation, message).into()
}

/// Reads and checks the file: a header, whole rows of as many cells, within the upload
/// limit. The rows are written back with LF line ends, which the job is opened with, so a
/// file saved with CRLF imports too.
pub fn prepare(args: &Args) -> Result<Prepared, Failure> {
    let path = &args.file;
    let shown = path.display();
    if args.operation == ImportOperation::Upsert && args.external_id_field.is_none() {
        return Err(invalid(
            "--operation upsert needs --external-id-field, the field rows are matched on".into(),
        ));
    }
    let size = std::fs::metadata(path)
        .map_err(|e| invalid(format!("cannot read {shown}: {e}")))?
        .len();
    if size > MAX_UPLOAD_BYTES {
        return Err(invalid(format!(
            "{shown} has {size} bytes; one Bulk API 2.0 job takes at most {MAX_UPLOAD_BYTES} (100 MB): split the file"
        )));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| invalid(format!("cannot read {shown}: {e}")))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| invalid(format!("{shown}: the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(invalid(format!("{shown} has no header row of field names")));
    }
    if let Some(i) = header.iter().position(String::is_empty) {
        return Err(invalid(format!(
            "{shown}: column {} has no field name",
            i + 1
        )));
    }
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let io = |e: csv::Error| invalid(format!("{shown}: {e}"));
    out.write_record(&header).map_err(io)?;
    let mut rows = 0u64;
    for record in reader.records() {
        // The csv reader refuses a row with another number of cells, naming its line.
        let record = record.map_err(|e| invalid(format!("{shown}: {e}")))?;
        out.write_record(&record).map_err(io)?;
        rows += 1;
    }
    if rows == 0 {
        return Err(invalid(format!("{shown} has a header but no rows")));
    }
    let bytes = out
        .into_inner()
        .map_err(|e| invalid(format!("{shown}: {e}")))?;
    let csv = String::from_utf8(bytes).map_err(|_| {
        invalid(format!(
            "{shown} is not UTF-8 text, which Bulk API 2.0 needs"
        ))
    })?;
    Ok(Prepared { header, csv, rows })
}

/// Runs the job and reports what became of the rows.
pub async fn run(client: &Client, args: &Args, file: Prepared, waits: &Waits) -> Outcome {
    let operation = match args.operation {
        ImportOperation::Insert => Operation::Insert,
        ImportOperation::Update => Operation::Update,
        ImportOperation::Upsert => Operation::Upsert,
    };
    let job = client
        .bulk_create_job(&args.object, operation, args.external_id_field.as_deref())
        .await?;
    eprintln!(
        "job {} opened: {} {} rows of {}",
        job.id,
        name(args.operation),
        file.rows,
        args.object
    );
    if let Err(e) = client.bulk_upload(&job.id, file.csv).await {
        // Leave no open job behind; the upload's error is the one to report.
        let _ = client.bulk_close(&job.id, true).await;
        return Err(e.into());
    }
    client.bulk_close(&job.id, false).await?;
    let info = wait(client, &job.id, file.rows, waits).await?;
    if info.state != "JobComplete" {
        return Err(Error::new(
            ErrorKind::Validation,
            format!(
                "the Bulk API job {} ended {}: {}",
                info.id,
                info.state,
                info.error_message.as_deref().unwrap_or("no reason given")
            ),
        )
        .into());
    }
    let results = client.bulk_results(&job.id).await?;
    let failed = results.failed.len() + results.unprocessed.len();
    println!(
        "job {}: successful={} failed={}",
        job.id,
        results.successful.len(),
        failed
    );
    if failed == 0 {
        return Ok(());
    }
    let path = args
        .failed
        .clone()
        .unwrap_or_else(|| failed_path(&args.file));
    write_failed(&path, &file.header, &results)?;
    println!("failed rows written to {}", path.display());
    Err(Error::new(
        ErrorKind::Validation,
        format!(
            "{failed} of {} rows were not imported; each is in {} with its sf__Error",
            file.rows,
            path.display()
        ),
    )
    .into())
}

/// Waits for the job through the client's poll (with its backoff), moving the bar to the
/// rows it has processed.
async fn wait(client: &Client, job_id: &str, rows: u64, waits: &Waits) -> Result<JobInfo, Failure> {
    let progress = Progress::bar(rows, "rows processed", waits);
    let mut shown = 0u64;
    let info = client
        .bulk_wait_ingest_with(job_id, |info| {
            let processed = info.number_records_processed.unwrap_or(0).min(rows);
            progress.inc(processed.saturating_sub(shown));
            shown = shown.max(processed);
        })
        .await?;
    progress.done();
    Ok(info)
}

fn name(op: ImportOperation) -> &'static str {
    match op {
        ImportOperation::Insert => "inserting",
        ImportOperation::Update => "updating",
        ImportOperation::Upsert => "upserting",
    }
}

/// `contacts.csv` → `contacts.failed.csv`, next to it.
fn failed_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    file.with_file_name(format!("{stem}.failed.csv"))
}

/// Writes `sf__Error` and the file's own columns for each failed row, then each row the
/// job left unprocessed (its error says so), so the file can be fixed and imported again.
fn write_failed(path: &Path, header: &[String], results: &IngestResults) -> Result<(), Failure> {
    let shown = path.display();
    let mut out = csv::Writer::from_path(path)
        .map_err(|e| invalid(format!("cannot write the failed rows to {shown}: {e}")))?;
    let io = |e: csv::Error| invalid(format!("cannot write the failed rows to {shown}: {e}"));
    out.write_record(std::iter::once("sf__Error").chain(header.iter().map(String::as_str)))
        .map_err(io)?;
    let unprocessed = "UNPROCESSED: the job ended before processing this row";
    let rows = results
        .failed
        .iter()
        .map(|(error, row)| (error.as_str(), row))
        .chain(results.unprocessed.iter().map(|row| (unprocessed, row)));
    for (error, row) in rows {
        let cells = header.iter().map(|h| match row.get(h) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        });
        out.write_record(std::iter::once(error.to_string()).chain(cells))
            .map_err(io)?;
    }
    out.flush()
        .map_err(|e| invalid(format!("cannot write the failed rows to {shown}: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_rows_go_next_to_the_file() {
        assert_eq!(
            failed_path(Path::new("/tmp/in/contacts.csv")),
            PathBuf::from("/tmp/in/contacts.failed.csv")
        );
    }
}
