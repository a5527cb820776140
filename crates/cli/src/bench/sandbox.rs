//! `bench sandbox`: how fast the Close sandbox seeds, lists through the client, and answers
//! an Advanced Filtering search, with the rate limit out of the way.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crmkit_close::Client;
use crmkit_close::filter::{Condition, Field, Query, SearchRequest};
use crmkit_core::SecretString;
use crmkit_sandbox::close::CloseSandbox;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::failure::Failure;
use crate::progress::Progress;
use crate::waits::Waits;

/// A limit no run reaches, so only the sandbox's own speed is measured.
const UNLIMITED: u32 = 1_000_000_000;

/// Results on the timed search page.
const SEARCH_PAGE: usize = 100;

/// Timed searches; the median is reported so one slow first call does not decide it.
const SEARCH_RUNS: usize = 5;

/// Options of `bench sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leads to seed and list (targets apply to 100,000 on a release build).
    #[arg(long, default_value_t = 100_000, value_parser = crate::bounds::leads())]
    leads: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: Args) -> Result<(), Failure> {
    let window = Duration::from_secs(1);
    let progress = Progress::spinner(&format!("seeding {} leads", args.leads));
    let started = Instant::now();
    let sandbox = CloseSandbox::builder()
        .seed(args.seed)
        .leads(args.leads)
        .rate_limit(UNLIMITED, window)
        .start()
        .await
        .map_err(|e| Failure::Bench(format!("cannot start the sandbox: {e}")))?;
    let seed_s = started.elapsed().as_secs_f64();
    progress.done();
    let seeded = sandbox.count("lead");
    if seeded != args.leads {
        return Err(Failure::Bench(format!(
            "the sandbox holds {seeded} leads after seeding {}",
            args.leads
        )));
    }
    let waits = Waits::default();
    let client = Client::builder()
        .api_key(SecretString::from("bench-key"))
        .base_url(sandbox.api_url())
        .rate_limit(UNLIMITED, window)
        .observer(waits.observer())
        .build()?;

    let progress = Progress::bar(args.leads as u64, "leads listed", &waits);
    let started = Instant::now();
    let mut leads = client.leads().list().stream();
    let mut seen = HashSet::with_capacity(args.leads);
    let (mut listed, mut repeated) = (0usize, 0usize);
    // A lead from the middle of the listing gives the search a condition that matches.
    let mut probe = None;
    while let Some(lead) = leads.try_next().await? {
        listed += 1;
        if listed == args.leads / 2 + 1 {
            probe = Some((lead.name.clone(), lead.status_id.clone()));
        }
        if !seen.insert(lead.id) {
            repeated += 1;
        }
        progress.inc(1);
    }
    let list_s = started.elapsed().as_secs_f64();
    progress.done();
    if listed != args.leads || repeated > 0 {
        return Err(Failure::Bench(format!(
            "listing returned {listed} leads ({} distinct, {repeated} repeated) of {} seeded",
            seen.len(),
            args.leads
        )));
    }
    let list_per_s = listed as f64 / list_s.max(1e-9);

    let request = search_request(probe)?;
    let mut times = Vec::with_capacity(SEARCH_RUNS);
    let mut hits = 0;
    for _ in 0..SEARCH_RUNS {
        let started = Instant::now();
        // Taking at most one page's worth stops the stream before it asks for a second page.
        let page: Vec<_> = client
            .search(request.clone())
            .take(SEARCH_PAGE)
            .try_collect()
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        hits = page.len();
    }
    if hits == 0 {
        return Err(Failure::Bench(
            "the search found no lead, though its condition comes from a listed lead".into(),
        ));
    }
    times.sort_by(f64::total_cmp);
    let search_ms = times[times.len() / 2];

    println!(
        "Seeded {} leads in {seed_s:.2} s (target < 20 s at 100,000), listed them in {list_s:.2} s = {list_per_s:.0}/s (target >= 5,000/s), search page of {hits} in {search_ms:.1} ms (target < 50 ms).",
        args.leads
    );
    println!(
        "bench=sandbox leads={} seed_s={seed_s:.3} list_per_s={list_per_s:.0} search_ms={search_ms:.2}",
        args.leads
    );
    Ok(())
}

/// Leads with the probe's status whose name holds the probe's first word.
fn search_request(
    probe: Option<(Option<String>, Option<String>)>,
) -> Result<SearchRequest, Failure> {
    let (name, status) = probe.ok_or_else(|| Failure::Bench("no lead to search for".into()))?;
    let word = name
        .as_deref()
        .and_then(|n| n.split_whitespace().next())
        .ok_or_else(|| Failure::Bench("the probe lead has no name".into()))?;
    let lead_field = |name: &str| Field::RegularField {
        object_type: "lead".into(),
        field_name: name.into(),
    };
    let mut conditions = vec![
        Query::object_type("lead"),
        Query::field(
            lead_field("name"),
            Condition::Text {
                mode: "full_words".into(),
                value: word.into(),
            },
        ),
    ];
    if let Some(status) = status {
        conditions.push(Query::field(
            lead_field("status_id"),
            Condition::Term {
                values: vec![json!(status)],
            },
        ));
    }
    let mut request =
        SearchRequest::new(Query::and(conditions)).fields("lead", &["id", "display_name"]);
    request.limit = SEARCH_PAGE as u32;
    Ok(request)
}
