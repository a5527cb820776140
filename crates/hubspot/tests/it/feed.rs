//! The change feed's checkpoints against the HubSpot sandbox over loopback HTTP: a run that
//! read everything up to its bound moves every position there, so a mass change is not
//! read again run after run.

use std::time::Duration;

use crmkit_core::connector::Change;
use crmkit_core::model::{Activity, ActivityKind, Company};
use crmkit_core::{ChangeCursor, Connector, ObjectKind, Record, Result};
use crmkit_hubspot::HubSpotConnector;
use crmkit_sandbox::faults::Faults;
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use futures::{StreamExt, TryStreamExt};

use crate::client;

async fn sandbox() -> RunningHubSpot {
    HubSpotSandbox::builder()
        .companies(0)
        .burst_limit(100_000, Duration::from_secs(10))
        .start()
        .await
        .expect("sandbox starts")
}

fn company(name: &str) -> Record {
    Record::Company(Company {
        name: name.into(),
        ..Company::default()
    })
}

async fn run(
    conn: &HubSpotConnector,
    kind: ObjectKind,
    cursor: Option<ChangeCursor>,
) -> Vec<Change> {
    conn.changes(kind, cursor)
        .try_collect()
        .await
        .expect("the run reads")
}

fn records(changes: &[Change]) -> usize {
    changes
        .iter()
        .filter(|c| !matches!(c, Change::Checkpoint { .. }))
        .count()
}

#[tokio::test]
async fn a_burst_read_once_is_not_read_again_once_the_overlap_has_passed() {
    let sb = sandbox().await;
    let overlap = Duration::from_secs(2);
    let conn = HubSpotConnector::new(client(&sb.base_url(), "feed-burst")).with_overlap(overlap);
    // A quiet feed still hands out a cursor: the checkpoint.
    let empty = run(&conn, ObjectKind::Company, None).await;
    let [Change::Checkpoint { cursor: before }] = empty.as_slice() else {
        panic!("{empty:?}")
    };
    let made = conn
        .create((0..250).map(|i| company(&format!("Burst {i}"))).collect())
        .await;
    assert_eq!(made.succeeded().count(), 250, "{:?}", made.failed().next());
    // The next run starts after the overlap has passed since the newest record.
    tokio::time::sleep(overlap + Duration::from_millis(1100)).await;
    let first = run(&conn, ObjectKind::Company, Some(before.clone())).await;
    assert_eq!(records(&first), 250);
    let Some(Change::Checkpoint { cursor: after }) = first.last() else {
        panic!(
            "a run that read everything ends with a checkpoint: {:?}",
            first.last()
        )
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let searches = sb.stats().requests.len();
    let second = run(&conn, ObjectKind::Company, Some(after.clone())).await;
    let [Change::Checkpoint { cursor: moved }] = second.as_slice() else {
        panic!(
            "nothing changed, yet the run delivered {} changes",
            records(&second)
        )
    };
    assert_ne!(moved, after, "a quiet run still moves its cursor");
    // One search (and the clock's and archive's lists): no page of the burst read again.
    let calls = sb.stats().requests.len() - searches;
    assert!(calls <= 3, "{calls} calls");
}

#[tokio::test]
async fn a_run_whose_slice_fails_yields_no_checkpoint() {
    let sb = sandbox().await;
    let conn =
        HubSpotConnector::new(client(&sb.base_url(), "feed-fails")).with_overlap(Duration::ZERO);
    let mut note = Activity::new(ActivityKind::Note);
    note.body = Some("n".into());
    note.occurred_at = Some(chrono::Utc::now());
    let mut call = Activity::new(ActivityKind::Call);
    call.body = Some("c".into());
    call.occurred_at = Some(chrono::Utc::now());
    let made = conn
        .create(vec![Record::Activity(note), Record::Activity(call)])
        .await;
    assert_eq!(made.failed().count(), 0, "{:?}", made.results);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The calls' search fails; the other activity types are still read after it.
    sb.set_faults(Faults {
        rate_500: 1.0,
        route: Some("POST /crm/v3/objects/calls/search".into()),
        ..Faults::default()
    });
    let all: Vec<Result<Change>> = conn.changes(ObjectKind::Activity, None).collect().await;
    assert!(all.iter().any(Result::is_err), "{all:?}");
    assert!(
        !all.iter()
            .any(|c| matches!(c, Ok(Change::Checkpoint { .. }))),
        "a checkpoint would pass the calls not read: {all:?}"
    );
    // Once the search answers again, the calls are read.
    sb.set_faults(Faults::default());
    let again = run(&conn, ObjectKind::Activity, None).await;
    assert_eq!(records(&again), 2, "{again:?}");
    assert!(matches!(again.last(), Some(Change::Checkpoint { .. })));
}

#[tokio::test]
async fn a_record_changed_during_a_run_is_read_by_the_next_one() {
    let sb = sandbox().await;
    let conn =
        HubSpotConnector::new(client(&sb.base_url(), "feed-during")).with_overlap(Duration::ZERO);
    let made = conn
        .create(vec![company("A"), company("B"), company("C")])
        .await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{:?}", made.results);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut feed = conn.changes(ObjectKind::Company, None);
    let first = feed.try_next().await.expect("reads").expect("a change");
    // Renamed after the run fixed its bound: its new time is past it.
    let Some(id) = first.id().map(str::to_string) else {
        panic!("{first:?}")
    };
    let Record::Company(mut c) = conn.get(ObjectKind::Company, &id).await.expect("reads") else {
        panic!("company")
    };
    c.name = "Renamed during the run".into();
    assert_eq!(
        conn.update(vec![Record::Company(c)]).await.failed().count(),
        0
    );
    let rest: Vec<Change> = feed.try_collect().await.expect("the run reads");
    let Some(Change::Checkpoint { cursor }) = rest.last() else {
        panic!("{rest:?}")
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let next = run(&conn, ObjectKind::Company, Some(cursor.clone())).await;
    let renamed = next.iter().any(|ch| {
        matches!(ch, Change::Upsert { record: Record::Company(r), .. }
            if r.id.as_deref() == Some(id.as_str()) && r.name == "Renamed during the run")
    });
    assert!(renamed, "{next:?}");
}
