//! `bench salesforce-import`: contacts created in the Salesforce sandbox through the
//! client's bulk path (`Client::insert_many`, a Bulk API 2.0 job from its threshold on),
//! then a sample through the one-POST-per-record loop other tools use, against the same
//! sandbox in the same run, extrapolated to the same number of contacts.

use std::time::{Duration, Instant};

use crmkit_core::SecretString;
use crmkit_core::http::ApiRequest;
use crmkit_salesforce::Client;
use crmkit_salesforce::auth::ClientCredentials;
use crmkit_salesforce::sobjects::Fields;
use crmkit_sandbox::salesforce::{RequestLog, RunningSalesforce, SalesforceSandbox};
use serde_json::{Value, json};

use super::reference::http_client;
use crate::bounds;
use crate::failure::Failure;
use crate::progress::Progress;
use crate::waits::Waits;

/// Options of `bench salesforce-import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Contacts to import through crmkit.
    #[arg(long, default_value_t = 10_000, value_parser = bounds::leads())]
    contacts: usize,
    /// Contacts the reference loop creates one POST each; its calls per contact are
    /// measured on these and multiplied out to --contacts.
    #[arg(long, default_value_t = 1_000, value_parser = bounds::leads())]
    reference_sample: usize,
}

/// Starts a Salesforce sandbox with no seed data and a quota the run cannot exhaust.
pub async fn start() -> Result<RunningSalesforce, Failure> {
    SalesforceSandbox::builder()
        .daily_limit(u32::MAX)
        .start()
        .await
        .map_err(|e| Failure::Bench(format!("cannot start the Salesforce sandbox: {e}")))
}

/// A client of the sandbox at `url`, signed in with the client-credentials flow.
pub fn client(url: &str) -> Result<Client, Failure> {
    Ok(Client::builder()
        .instance_url(url)
        .login_url(url)
        .client_credentials(ClientCredentials::new(
            "crmkit-bench",
            SecretString::from("crmkit-bench"),
            url,
        ))
        .build()?)
}

/// The `i`th contact.
pub fn contact(i: usize) -> Fields {
    match json!({
        "FirstName": "Bench",
        "LastName": format!("Contact {i}"),
        "Email": format!("bench-{i}@example.com"),
    }) {
        Value::Object(map) => map,
        _ => Fields::new(),
    }
}

/// Whether a request is a status poll of a Bulk job (`GET …/jobs/ingest/{id}` or
/// `…/jobs/query/{id}`, nothing after the id).
fn is_poll(r: &RequestLog) -> bool {
    let segments: Vec<&str> = r.path.trim_end_matches('/').split('/').collect();
    r.method == "GET"
        && matches!(
            segments.as_slice(),
            [.., "jobs", "ingest" | "query", id] if !id.is_empty()
        )
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: Args) -> Result<(), Failure> {
    let sandbox = start().await?;
    let url = sandbox.instance_url();
    let sf = client(&url)?;
    // Sign in before the clock starts: a token is not part of an import.
    sf.raw(&ApiRequest::get("")).await?;
    let before = sandbox.stats().requests.len();
    let records: Vec<Fields> = (0..args.contacts).map(contact).collect();
    let progress = Progress::spinner(&format!(
        "importing {} contacts through crmkit's bulk path",
        args.contacts
    ));
    let started = Instant::now();
    let outcomes = sf.insert_many("Contact", records).await;
    let elapsed = started.elapsed();
    progress.done();
    let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        return Err(Failure::Bench(format!(
            "{} of {} contacts failed; first: {first}",
            failed.len(),
            args.contacts
        )));
    }
    let stored = sandbox.count("Contact");
    if stored != args.contacts {
        return Err(Failure::Bench(format!(
            "the sandbox holds {stored} contacts after importing {}",
            args.contacts
        )));
    }
    let requests: Vec<RequestLog> = sandbox.stats().requests.split_off(before);
    let polls = requests.iter().filter(|r| is_poll(r)).count();
    let calls = requests.len() - polls;
    let crmkit_per_s = args.contacts as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "crmkit: {} contacts in {:.2} s ({crmkit_per_s:.0} contacts/s): {calls} calls ({}) and {polls} status polls.",
        args.contacts,
        elapsed.as_secs_f64(),
        requests
            .iter()
            .filter(|r| !is_poll(r))
            .map(|r| format!("{} {}", r.method, short(&r.path)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let sample = args.reference_sample.min(args.contacts).max(1);
    let before = sandbox.stats().requests.len();
    let progress = Progress::bar(
        sample as u64,
        "contacts through the reference loop",
        &Waits::default(),
    );
    let reference = reference(&url, args.contacts, sample, &progress).await?;
    progress.done();
    let sent = sandbox.stats().requests.len() - before;
    let per_contact = sent as f64 / sample as f64;
    let reference_calls = (per_contact * args.contacts as f64).round();
    let reference_per_s = sample as f64 / reference.as_secs_f64().max(1e-9);
    println!(
        "reference (one POST per contact, no pause): {sample} contacts in {:.2} s ({reference_per_s:.0} contacts/s), {sent} requests; measured on {sample} of {} contacts and extrapolated.",
        reference.as_secs_f64(),
        args.contacts
    );
    println!(
        "calls={calls} polls={polls} reference_calls={reference_calls:.0} reference_sample={sample} speedup={:.1}",
        crmkit_per_s / reference_per_s
    );
    Ok(())
}

/// The path from the API version on, for the summary line.
fn short(path: &str) -> String {
    let rest = path.split_once("/services/data/").map_or(path, |(_, r)| r);
    let rest = rest.split_once('/').map_or(rest, |(_, r)| r);
    // Job ids differ per run; what the call is matters.
    rest.split('/')
        .map(|s| if s.starts_with("750") { "{id}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Creates `sample` contacts with plain reqwest, one POST to `sobjects/Contact/` each, as
/// hand-written integrations do; numbered after crmkit's so no email repeats.
async fn reference(
    url: &str,
    offset: usize,
    sample: usize,
    progress: &Progress,
) -> Result<Duration, Failure> {
    let http = http_client()?;
    let endpoint = format!(
        "{}/services/data/v{}/sobjects/Contact/",
        url.trim_end_matches('/'),
        crmkit_salesforce::DEFAULT_API_VERSION
    );
    let started = Instant::now();
    for i in 0..sample {
        let answer = http
            .post(&endpoint)
            // The sandbox takes any session id when its auth is lenient, as this one is.
            .bearer_auth("crmkit-bench-session")
            .json(&Value::Object(contact(offset + i)))
            .send()
            .await
            .map_err(|e| Failure::Bench(format!("a reference request failed: {e}")))?;
        if !answer.status().is_success() {
            return Err(Failure::Bench(format!(
                "a reference request was answered {}",
                answer.status()
            )));
        }
        progress.inc(1);
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(method: &str, path: &str) -> RequestLog {
        RequestLog {
            at_ms: 0.0,
            method: method.into(),
            path: path.into(),
            group: "api".into(),
            status: 200,
        }
    }

    #[test]
    fn polls_are_status_reads_of_a_job() {
        assert!(is_poll(&log(
            "GET",
            "/services/data/v59.0/jobs/ingest/7505g01"
        )));
        assert!(!is_poll(&log(
            "GET",
            "/services/data/v59.0/jobs/ingest/7505g01/successfulResults/"
        )));
        assert!(!is_poll(&log(
            "PATCH",
            "/services/data/v59.0/jobs/ingest/7505g01"
        )));
        assert!(!is_poll(&log("POST", "/services/data/v59.0/jobs/ingest")));
        assert_eq!(
            short("/services/data/v59.0/jobs/ingest/7505g01/batches"),
            "jobs/ingest/{id}/batches"
        );
    }
}
