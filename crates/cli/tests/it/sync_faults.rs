//! A three-way `crmkit sync` (Close, HubSpot, Salesforce) against sandboxes injecting 429s,
//! 5xx answers and dropped connections: records it could not write are reported by id and
//! reason in the run's JSON report, and reruns converge to what a run without faults makes.

use crmkit_core::Crm;
use crmkit_sandbox::faults::Faults;

use crate::sync_support::*;

const SEED: u64 = 23;
const COMPANIES: usize = 12;

/// Random 429s, 500s, 503s and dropped connections on every route.
fn noisy() -> Faults {
    Faults {
        rate_429: 0.08,
        rate_500: 0.04,
        rate_503: 0.04,
        rate_drop: 0.03,
        ..Faults::default()
    }
}

/// Every request on `route` answered `500` (or `503`).
fn refused(route: &str, unavailable: bool) -> Faults {
    Faults {
        rate_500: if unavailable { 0.0 } else { 1.0 },
        rate_503: if unavailable { 1.0 } else { 0.0 },
        route: Some(route.to_string()),
        ..Faults::default()
    }
}

/// The report's errors that name a company create into `crm` with its source record.
fn create_errors<'a>(errors: &'a [String], crm: &str) -> Vec<&'a String> {
    errors
        .iter()
        .filter(|e| e.starts_with("creating ") && e.contains(":company:"))
        .filter(|e| e.contains(&format!(" in {crm}: ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_way_sync_converges_through_faults_and_reports_what_it_could_not_write() {
    // What a run without faults makes of the same world.
    let calm = trio(SEED, COMPANIES, Faults::default()).await;
    let calm_dir = Scratch::for_pair("faults-ref", &calm);
    converge(&calm, &calm_dir.0, &calm_dir.sqlite(), 6).await;
    let want = all_contents(&calm).await;

    let trio = trio(SEED, COMPANIES, noisy()).await;
    let dir = Scratch::for_pair("faults", &trio);
    let db = dir.sqlite();

    // HubSpot refuses every company batch upsert and Salesforce every Account upsert (their
    // creates, by the marker property or field): each company bound for them is reported with its
    // source id and the reason, and the run exits non-zero. Close keeps its random faults.
    trio.hubspot.set_faults(refused(
        "POST /crm/v3/objects/companies/batch/upsert",
        false,
    ));
    let salesforce = trio.salesforce.as_ref().expect("three-way");
    salesforce.set_faults(refused(
        &format!(
            "PATCH /services/data/v{}/composite/sobjects/Account/*",
            crmkit_salesforce::DEFAULT_API_VERSION
        ),
        true,
    ));
    let (ok, out, err) = run_sync(&trio, &dir.0, &db).await;
    assert!(!ok, "a run with failed writes exits non-zero: {out}\n{err}");
    assert!(err.contains("could not be synced"), "{err}");
    assert!(out.contains("not synced: "), "{out}");
    let report = report(&dir.0);
    let errors: Vec<String> = report["errors"]
        .as_array()
        .expect("errors listed")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    let now = all_contents(&trio).await;
    for (i, (crm, reason)) in [("hubspot", "500"), ("salesforce", "503")]
        .iter()
        .enumerate()
    {
        let (wanted, got) = (&want[i + 1].1, &now[i + 1].1);
        let missing = wanted.rows["company"].len() - got.rows["company"].len();
        assert!(missing > 0, "some companies are not in {crm} yet");
        let reported = create_errors(&errors, crm);
        assert_eq!(
            reported.len(),
            missing,
            "each of the {missing} companies not written to {crm} is reported once, by id: {errors:#?}"
        );
        for e in &reported {
            // "creating close:company:lead_… in hubspot: … 500 …": the source record's id
            // and the CRM's answer.
            let id = e["creating ".len()..].split(' ').next().unwrap_or_default();
            assert!(
                id.rsplit(':').next().is_some_and(|i| i.len() > 3),
                "the record's id is given: {e}"
            );
            assert!(
                e.contains(reason) || e.to_lowercase().contains("server"),
                "the reason is given: {e}"
            );
        }
    }
    assert_eq!(
        report["status"], "partial",
        "the report says the run was partial"
    );

    // With only the random faults left, on all three, reruns converge to a full,
    // duplicate-free copy: the same as the run without faults.
    trio.set_faults(noisy());
    let last = converge(&trio, &dir.0, &db, 10).await;
    assert_eq!(last["errors"].as_array().map(Vec::len), Some(0), "{last}");
    let got = all_contents(&trio).await;
    for ((crm, got), (_, want)) in got.iter().zip(&want) {
        assert_no_duplicates(crm, got, want);
        assert!(
            got.rows == want.rows,
            "{crm} differs from a run without faults: {}",
            diff(got, want)
        );
    }
    assert_all_linked(&db, &[Crm::Close, Crm::HubSpot, Crm::Salesforce]).await;
    let mut statuses = Vec::new();
    let mut limited_somewhere = false;
    // Salesforce's REST API has no 429: its rate limit answers 403 REQUEST_LIMIT_EXCEEDED
    // (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
    // The faults are random shares: a CRM the engine calls only a few times (the echo filter
    // and batch reads keep HubSpot's calls few) may draw no rate limit, so the rate limits
    // are required of the three together, which make enough calls to draw some for certain
    // in practice.
    for (stats, limited) in [
        (trio.close.stats(), 429),
        (trio.hubspot.stats(), 429),
        (salesforce.stats(), 403),
    ] {
        limited_somewhere |= stats.requests.iter().any(|r| r.status == limited);
        statuses.extend(stats.requests.iter().map(|r| r.status));
    }
    assert!(limited_somewhere, "rate limits were answered");
    // 0: a connection dropped without an answer.
    for want in [0, 500, 503] {
        assert!(statuses.contains(&want), "{want} was injected");
    }
}
