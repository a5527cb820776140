//! `bench salesforce-query`: every contact of a large Salesforce sandbox streamed by SOQL,
//! page after page through `nextRecordsUrl`, with this process's peak memory measured.
//!
//! The sandbox runs as a child process (`crmkit sandbox salesforce --port 0`), so the
//! memory measured is the client's alone. The contacts are loaded through Bulk API 2.0 jobs
//! of [`LOAD_CHUNK`] rows; then the peak (`VmHWM` in `/proc/self/status`) is reset by
//! writing `5` to `/proc/self/clear_refs` (Linux 4.0 on, proc(5)) so it covers the query
//! alone. Where the reset is refused, the peak covers the loading too and the output says so.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crmkit_salesforce::bulk::Operation;
use crmkit_salesforce::sobjects::Fields;
use futures::TryStreamExt;

use super::salesforce_import::{client, contact};
use crate::bounds;
use crate::failure::Failure;
use crate::progress::Progress;
use crate::waits::Waits;

/// Contacts per Bulk API 2.0 job while loading the sandbox.
const LOAD_CHUNK: usize = 25_000;

/// Options of `bench salesforce-query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Contacts to load and stream back.
    #[arg(long, default_value_t = 200_000, value_parser = bounds::leads())]
    records: usize,
}

/// The sandbox child process, stopped when dropped.
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `crmkit sandbox salesforce` on a free port and reads its instance URL from the
/// `SF_INSTANCE_URL=` line it prints.
fn spawn() -> Result<(Sandbox, String), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Bench(format!("cannot find the crmkit executable: {e}")))?;
    let mut child = Command::new(exe)
        .args([
            "sandbox",
            "salesforce",
            "--port",
            "0",
            "--companies",
            "0",
            "--daily-limit",
            &u32::MAX.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::Bench(format!("cannot start the sandbox process: {e}")))?;
    let stdout = child.stdout.take();
    let sandbox = Sandbox(child);
    let Some(stdout) = stdout else {
        return Err(Failure::Bench("the sandbox process has no stdout".into()));
    };
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line.map_err(|e| Failure::Bench(format!("cannot read the sandbox: {e}")))?;
        if let Some(url) = line.strip_prefix("SF_INSTANCE_URL=") {
            // Keep reading what it prints after, so it never writes into a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((sandbox, url.trim().to_string()));
        }
    }
    Err(Failure::Bench(
        "the sandbox process ended without printing SF_INSTANCE_URL".into(),
    ))
}

/// `VmHWM` of this process in MB.
fn peak_rss_mb() -> Result<f64, Failure> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Failure::Bench(format!("cannot read /proc/self/status: {e}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| Failure::Bench("/proc/self/status shows no VmHWM".into()))
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: Args) -> Result<(), Failure> {
    let (sandbox, url) = tokio::task::spawn_blocking(spawn)
        .await
        .map_err(|e| Failure::Bench(format!("cannot start the sandbox process: {e}")))??;
    let sf = client(&url)?;
    let waits = Waits::default();
    let progress = Progress::bar(
        args.records as u64,
        "contacts loaded by Bulk API 2.0",
        &waits,
    );
    let load_started = Instant::now();
    let mut start = 0;
    while start < args.records {
        let end = (start + LOAD_CHUNK).min(args.records);
        let records: Vec<Fields> = (start..end).map(contact).collect();
        let (job, results) = sf
            .bulk_ingest("Contact", Operation::Insert, None, &records)
            .await?;
        if results.successful.len() != records.len() {
            return Err(Failure::Bench(format!(
                "loading job {} created {} of {} contacts",
                job.id,
                results.successful.len(),
                records.len()
            )));
        }
        progress.inc((end - start) as u64);
        start = end;
    }
    progress.done();
    let load_s = load_started.elapsed().as_secs_f64();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let progress = Progress::counter("contacts streamed", &waits);
    let started = Instant::now();
    let soql = "SELECT Id, FirstName, LastName, Email, CreatedDate FROM Contact";
    let streamed = sf
        .query(soql)
        .try_fold(0usize, |n, record| {
            progress.inc(1);
            // Each record is looked at, as a consumer would, and then let go.
            let ok = record.contains_key("Id");
            async move { Ok(n + usize::from(ok)) }
        })
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    progress.done();
    let peak = peak_rss_mb()?;
    drop(sandbox);
    if streamed != args.records {
        return Err(Failure::Bench(format!(
            "the query streamed {streamed} contacts with an Id of {} loaded",
            args.records
        )));
    }
    println!(
        "loaded {} contacts in {load_s:.1} s; streamed them by `{soql}` in {elapsed:.2} s ({:.0} records/s); peak RSS {}.",
        args.records,
        streamed as f64 / elapsed.max(1e-9),
        if reset {
            "measured over the query alone (VmHWM reset after loading)"
        } else {
            "covers the loading too (/proc/self/clear_refs refused the reset)"
        }
    );
    println!(
        "records={streamed} peak_rss_mb={peak:.1} records_per_s={:.0}",
        streamed as f64 / elapsed.max(1e-9)
    );
    Ok(())
}
