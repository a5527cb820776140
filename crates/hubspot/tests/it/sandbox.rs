//! The client's main operations against the crmkit HubSpot sandbox, which was written from
//! HubSpot's documents independently of the client.

use std::time::Duration;

use crmkit_core::{ErrorKind, SecretString};
use crmkit_hubspot::associations::default_type_id;
use crmkit_hubspot::batch::{CreateInput, UpdateInput};
use crmkit_hubspot::objects::NewAssociation;
use crmkit_hubspot::search::Direction;
use crmkit_hubspot::{
    Client, Filter, ObjectType, Properties, RateTier, ReadOptions, SearchRequest,
};
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use futures::TryStreamExt;

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn seeded() -> RunningHubSpot {
    HubSpotSandbox::builder()
        .seed(7)
        .companies(30)
        .start()
        .await
        .expect("sandbox starts")
}

/// Requests the sandbox logged under paths containing `part`.
fn requests_to(sb: &RunningHubSpot, part: &str) -> usize {
    sb.stats()
        .requests
        .iter()
        .filter(|r| r.path.contains(part))
        .count()
}

#[tokio::test]
async fn objects_get_list_create_patch_archive() {
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "objects");
    for (objects, name) in [
        (hs.contacts(), "contacts"),
        (hs.companies(), "companies"),
        (hs.deals(), "deals"),
    ] {
        let all: Vec<_> = objects
            .list(ReadOptions::default(), 7)
            .try_collect()
            .await
            .expect("lists");
        assert_eq!(all.len(), sb.count(name), "{name}: every page read");
        assert!(all.len() > 7, "{name}: more than one page");
        let mut ids: Vec<_> = all.iter().map(|o| o.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "{name}: no record twice");
        let one = objects
            .get(&all[0].id, &ReadOptions::default())
            .await
            .expect("gets");
        assert_eq!(one.id, all[0].id);
    }

    let company = hs
        .companies()
        .create(
            &props(&[("name", "Loopback Ltd"), ("domain", "loopback.example")]),
            &[],
        )
        .await
        .expect("company created");
    let type_id =
        default_type_id(&ObjectType::Contacts, &ObjectType::Companies).expect("known type");
    let contact = hs
        .contacts()
        .create(
            &props(&[
                ("email", "ada@loopback.example"),
                ("firstname", "Ada"),
                ("lastname", "Lovelace"),
            ]),
            &[NewAssociation::hubspot_defined(company.id.clone(), type_id)],
        )
        .await
        .expect("contact created");
    let read = hs
        .contacts()
        .get(
            &contact.id,
            &ReadOptions::default()
                .properties(["firstname", "lastname", "email"])
                .associations(["companies"]),
        )
        .await
        .expect("reads");
    let linked: Vec<_> = read
        .associations
        .as_ref()
        .and_then(|a| a.get("companies"))
        .map(|a| a.results.iter().map(|r| r.id.clone()).collect())
        .unwrap_or_default();
    assert_eq!(linked, vec![company.id.clone()]);

    hs.contacts()
        .update(&contact.id, &props(&[("firstname", "Augusta")]))
        .await
        .expect("patched");
    let after = hs
        .contacts()
        .get(
            &contact.id,
            &ReadOptions::default().properties(["firstname", "lastname", "email"]),
        )
        .await
        .expect("reads");
    assert_eq!(after.property("firstname"), Some("Augusta"));
    assert_eq!(
        after.property("lastname"),
        Some("Lovelace"),
        "not sent, kept"
    );
    assert_eq!(after.property("email"), Some("ada@loopback.example"));

    hs.contacts().archive(&contact.id).await.expect("archived");
    let gone = hs
        .contacts()
        .get(&contact.id, &ReadOptions::default())
        .await
        .expect_err("archived");
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_naming_the_existing_id() {
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "conflict");
    let first = hs
        .contacts()
        .create(&props(&[("email", "dup@loopback.example")]), &[])
        .await
        .expect("created");
    let e = hs
        .contacts()
        .create(&props(&[("email", "dup@loopback.example")]), &[])
        .await
        .expect_err("duplicate");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains(&first.id), "{e}");

    let outcomes = hs
        .contacts()
        .batch_create(vec![CreateInput {
            properties: props(&[("email", "dup@loopback.example")]),
            associations: Vec::new(),
        }])
        .await;
    let e = outcomes[0].as_ref().expect_err("duplicate in a batch");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains(&first.id), "{e}");
}

#[tokio::test]
async fn search_filters_and_sorts() {
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "search");
    let inputs = (0..12)
        .map(|i| CreateInput {
            properties: props(&[
                ("email", &format!("s{i}@search.example")),
                ("firstname", if i % 2 == 0 { "Even" } else { "Odd" }),
                ("lastname", &format!("L{:02}", i)),
            ]),
            associations: Vec::new(),
        })
        .collect();
    for r in hs.contacts().batch_create(inputs).await {
        r.expect("created");
    }
    let page = hs
        .contacts()
        .search(
            &SearchRequest::new()
                .filter(Filter::eq("firstname", "Even"))
                .filter(Filter::contains_token("email", "*@search.example"))
                .sort("lastname", Direction::Descending)
                .properties(["lastname", "firstname"])
                .limit(4),
        )
        .await
        .expect("searches");
    assert_eq!(page.total, 6);
    let names: Vec<_> = page
        .results
        .iter()
        .map(|o| o.property("lastname").unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["L10", "L08", "L06", "L04"]);
    let after = page.next_after().expect("more").to_string();
    let rest = hs
        .contacts()
        .search(
            &SearchRequest::new()
                .filter(Filter::eq("firstname", "Even"))
                .filter(Filter::contains_token("email", "*@search.example"))
                .sort("lastname", Direction::Descending)
                .properties(["lastname"])
                .limit(4)
                .after(after),
        )
        .await
        .expect("second page");
    assert_eq!(rest.results.len(), 2);
    assert!(rest.next_after().is_none());
}

#[tokio::test]
async fn search_all_reads_past_the_result_cap() {
    // The sandbox's 10,000-result cap is fixed, so the test holds more records than that and
    // lets the budgets be generous so it stays quick.
    let sb = HubSpotSandbox::builder()
        .burst_limit(100_000, Duration::from_secs(10))
        .search_limit(1_000)
        .start()
        .await
        .expect("sandbox starts");
    let hs = Client::builder()
        .access_token(SecretString::from("search-all".to_string()))
        .base_url(sb.base_url())
        .tier(RateTier::Custom(100_000))
        .search_per_second(1_000)
        .retry(crate::fast_retry())
        .build()
        .expect("client builds");
    let n = 10_050;
    let inputs = (0..n)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("c{i}@many.example"))]),
            associations: Vec::new(),
        })
        .collect();
    for r in hs.contacts().batch_create(inputs).await {
        r.expect("created");
    }
    let all: Vec<_> = hs
        .contacts()
        .search_all(SearchRequest::new().properties(["email"]))
        .try_collect()
        .await
        .expect("reads every record");
    let mut ids: Vec<_> = all.iter().map(|o| o.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(all.len(), n, "no record twice");

    // Again while a side task patches records (each patch moves its record to "now", past
    // the run's upper bound, the clock at its start, so the next run delivers it): every
    // record that did not change is read exactly once; a patched one at most once per
    // instant it held.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let patcher = {
        let (hs, stop) = (hs.clone(), stop.clone());
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut patched = Vec::new();
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < ids.len() {
                // Spread over the whole range, oldest first, so some are read before
                // and again after they move.
                let id = &ids[(i * 7919) % ids.len()];
                hs.contacts()
                    .update(id, &props(&[("firstname", &format!("moved {i}"))]))
                    .await
                    .expect("patched");
                patched.push(id.clone());
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            patched
        })
    };
    let again: Vec<_> = hs
        .contacts()
        .search_all(SearchRequest::new().properties(["email"]))
        .try_collect()
        .await
        .expect("reads every record while records change");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let patched = patcher.await.expect("patcher");
    assert!(!patched.is_empty(), "records changed during the run");
    let mut reads: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for o in &again {
        *reads.entry(o.id.as_str()).or_default() += 1;
    }
    for id in &ids {
        let count = reads.get(id.as_str()).copied().unwrap_or(0);
        let moves = patched.iter().filter(|p| *p == id).count();
        if moves == 0 {
            assert_eq!(count, 1, "{id} did not change and was read {count} times");
        } else {
            assert!(
                count <= 1 + moves,
                "{id} read {count} times, patched {moves} times"
            );
        }
    }
}

#[tokio::test]
async fn search_all_walks_a_crowded_instant_by_id() {
    let sb = HubSpotSandbox::builder()
        .burst_limit(100_000, Duration::from_secs(10))
        .search_limit(1_000)
        .start()
        .await
        .expect("sandbox starts");
    let hs = Client::builder()
        .access_token(SecretString::from("search-tie".to_string()))
        .base_url(sb.base_url())
        .tier(RateTier::Custom(100_000))
        .search_per_second(1_000)
        .retry(crate::fast_retry())
        .build()
        .expect("client builds");
    let n = 300;
    let inputs = (0..n)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("t{i}@tie.example"))]),
            associations: Vec::new(),
        })
        .collect();
    for r in hs.contacts().batch_create(inputs).await {
        r.expect("created");
    }
    let page = 3;
    let all: Vec<_> = hs
        .contacts()
        .search_all(SearchRequest::new().properties(["email"]).limit(page))
        .try_collect()
        .await
        .expect("reads every record");
    let mut ids: Vec<_> = all.iter().map(|o| o.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((ids.len(), all.len()), (n, n), "each record once");
    // Records written together share one millisecond; an instant holding more than a page
    // is walked by `lastmodifieddate = t AND hs_object_id > last` on the sandbox too.
    let mut per_instant = std::collections::HashMap::new();
    for o in &all {
        *per_instant
            .entry(
                o.property("lastmodifieddate")
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_insert(0usize) += 1;
    }
    let crowded = per_instant.values().copied().max().unwrap_or_default();
    assert!(crowded > page, "an instant fuller than a page: {crowded}");
}

#[tokio::test]
async fn batch_writes_chunk_and_report_each_record() {
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "batch");
    let before = requests_to(&sb, "/batch/create");
    let mut inputs: Vec<CreateInput> = (0..150)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("b{i}@batch.example"))]),
            associations: Vec::new(),
        })
        .collect();
    inputs[120].properties = props(&[("no_such_property", "x")]);
    let created = hs.contacts().batch_create(inputs).await;
    assert_eq!(created.len(), 150);
    assert_eq!(
        requests_to(&sb, "/batch/create") - before,
        2,
        "chunks of 100"
    );
    for (i, r) in created.iter().enumerate() {
        match r {
            Ok(o) if i != 120 => assert_eq!(
                o.property("email"),
                Some(format!("b{i}@batch.example").as_str())
            ),
            Err(e) if i == 120 => assert_eq!(e.kind(), ErrorKind::Validation, "{e}"),
            other => panic!("input {i}: {other:?}"),
        }
    }
    let ids: Vec<String> = created
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|o| o.id.clone()))
        .collect();

    let mut to_read = ids[..3].to_vec();
    to_read.push("999999999".into());
    let read = hs
        .contacts()
        .batch_read(to_read, &ReadOptions::default().properties(["email"]), None)
        .await;
    assert!(read[..3].iter().all(Result::is_ok), "{read:?}");
    assert_eq!(
        read[3].as_ref().expect_err("missing").kind(),
        ErrorKind::NotFound
    );

    let updated = hs
        .contacts()
        .batch_update(
            ids[..2]
                .iter()
                .map(|id| UpdateInput {
                    id: id.clone(),
                    properties: props(&[("firstname", "Batched")]),
                })
                .collect(),
        )
        .await;
    for r in &updated {
        assert_eq!(
            r.as_ref().expect("updated").property("firstname"),
            Some("Batched")
        );
    }
    let kept = hs
        .contacts()
        .get(
            &ids[0],
            &ReadOptions::default().properties(["email", "firstname"]),
        )
        .await
        .expect("reads");
    assert_eq!(kept.property("email"), Some("b0@batch.example"));

    let upserted = hs
        .contacts()
        .batch_upsert(
            "email",
            vec![
                UpdateInput {
                    id: "b1@batch.example".into(),
                    properties: props(&[("lastname", "Up")]),
                },
                UpdateInput {
                    id: "new@batch.example".into(),
                    properties: props(&[("lastname", "New")]),
                },
            ],
        )
        .await;
    let first = upserted[0].as_ref().expect("upserted");
    let second = upserted[1].as_ref().expect("upserted");
    assert_eq!(first.object.id, ids[1]);
    assert!(!first.created);
    assert!(second.created);

    let company = hs
        .companies()
        .create(&props(&[("name", "Batch Co")]), &[])
        .await
        .expect("company");
    let type_id =
        default_type_id(&ObjectType::Contacts, &ObjectType::Companies).expect("known type");
    let linked = hs
        .contacts()
        .batch_create(vec![CreateInput {
            properties: props(&[("email", "linked@batch.example")]),
            associations: vec![NewAssociation::hubspot_defined(company.id.clone(), type_id)],
        }])
        .await;
    let linked = linked[0].as_ref().expect("created with an association");
    let to: Vec<_> = hs
        .associations()
        .list(&ObjectType::Contacts, &linked.id, &ObjectType::Companies)
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(to.len(), 1, "the batch input's association was made");
    assert_eq!(to[0].to_object_id, company.id);

    let archived = hs.contacts().batch_archive(ids.clone()).await;
    assert!(archived.iter().all(Result::is_ok), "{archived:?}");
    let e = hs
        .contacts()
        .get(&ids[140], &ReadOptions::default())
        .await
        .expect_err("archived");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn concurrent_tasks_stay_within_a_lowered_burst_limit() {
    let sb = HubSpotSandbox::builder()
        .seed(3)
        .companies(5)
        .burst_limit(10, Duration::from_secs(1))
        .start()
        .await
        .expect("sandbox starts");
    let hs = crate::client(&sb.base_url(), "burst");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let hs = hs.clone();
            tokio::spawn(async move {
                for _ in 0..8 {
                    hs.owners().try_collect::<Vec<_>>().await.expect("lists");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let stats = sb.stats();
    assert_eq!(stats.rate_limited, 0, "{:?}", stats.requests);
    assert_eq!(requests_to(&sb, "/crm/v3/owners"), 32);
}

#[tokio::test]
async fn a_daily_429_fails_later_requests_locally() {
    let sb = HubSpotSandbox::builder()
        .daily_limit(3)
        .start()
        .await
        .expect("sandbox starts");
    // Another program spends the token's daily quota, so the client learns of it only from
    // the 429 it gets.
    let other = reqwest::Client::new();
    for _ in 0..3 {
        let r = other
            .get(format!("{}/crm/v3/owners", sb.base_url()))
            .bearer_auth("daily")
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
    }
    let hs = crate::client(&sb.base_url(), "daily");
    for _ in 0..3 {
        let e = hs
            .owners()
            .try_collect::<Vec<_>>()
            .await
            .expect_err("over quota");
        assert_eq!(e.kind(), ErrorKind::QuotaExhausted, "{e}");
    }
    let stats = sb.stats();
    assert_eq!(stats.rate_limited, 1, "one DAILY 429: {:?}", stats.requests);
    assert_eq!(
        requests_to(&sb, "/crm/v3/owners"),
        4,
        "nothing sent after the daily 429: {:?}",
        stats.requests
    );
}

#[tokio::test]
async fn associations_pipelines_and_owners() {
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "schema");
    let contact = hs
        .contacts()
        .create(&props(&[("email", "assoc@loopback.example")]), &[])
        .await
        .expect("contact");
    let deal = hs
        .deals()
        .create(&props(&[("dealname", "Loopback deal")]), &[])
        .await
        .expect("deal");
    let assoc = hs.associations();
    assoc
        .associate_default(
            &ObjectType::Contacts,
            &contact.id,
            &ObjectType::Deals,
            &deal.id,
        )
        .await
        .expect("associated");
    let listed: Vec<_> = assoc
        .list(&ObjectType::Contacts, &contact.id, &ObjectType::Deals)
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].to_object_id, deal.id);
    let expected = default_type_id(&ObjectType::Contacts, &ObjectType::Deals);
    assert!(
        listed[0]
            .association_types
            .iter()
            .any(|t| Some(t.type_id) == expected),
        "{listed:?}"
    );
    let (back, errors) = assoc
        .batch_read(
            &ObjectType::Deals,
            &ObjectType::Contacts,
            std::slice::from_ref(&deal.id),
        )
        .await
        .expect("batch reads");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(back[0].to[0].to_object_id, contact.id);

    let pipelines = hs.pipelines(&ObjectType::Deals).await.expect("pipelines");
    let id = pipelines
        .stage_id("default", "Closed Won")
        .expect("label to id")
        .to_string();
    assert_eq!(id, "closedwon");
    let (p, s) = pipelines.stage(&id).expect("id to label");
    assert_eq!((p.id.as_str(), s.label.as_str()), ("default", "Closed Won"));

    let owners: Vec<_> = hs.owners().try_collect().await.expect("owners");
    assert!(!owners.is_empty());
    let one = hs.owner(&owners[0].id).await.expect("owner");
    assert_eq!(one.email, owners[0].email);
}

#[tokio::test]
async fn the_default_type_id_is_the_type_the_default_endpoint_creates() {
    use crmkit_hubspot::associations::{AssociationSpec, primary_type_id};
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "default-types");
    let (contacts, companies, deals) = (
        ObjectType::Contacts,
        ObjectType::Companies,
        ObjectType::Deals,
    );
    let assoc = hs.associations();
    for from in [&contacts, &deals] {
        let record = hs
            .objects(from.clone())
            .create(&Properties::new(), &[])
            .await
            .expect("record");
        let (plain, primary) = (
            hs.companies()
                .create(&props(&[("name", "Plain")]), &[])
                .await
                .expect("company"),
            hs.companies()
                .create(&props(&[("name", "Primary")]), &[])
                .await
                .expect("company"),
        );
        assoc
            .associate_default(from, &record.id, &companies, &plain.id)
            .await
            .expect("default");
        let default = default_type_id(from, &companies).expect("known");
        let primary_type = primary_type_id(from, &companies).expect("known");
        assert_ne!(default, primary_type);
        assoc
            .associate(
                from,
                &record.id,
                &companies,
                &primary.id,
                &[AssociationSpec::hubspot_defined(primary_type)],
            )
            .await
            .expect("primary");
        let listed: Vec<_> = assoc
            .list(from, &record.id, &companies)
            .try_collect()
            .await
            .expect("lists");
        let types = |id: &str| {
            let mut t: Vec<u32> = listed
                .iter()
                .filter(|a| a.to_object_id == id)
                .flat_map(|a| a.association_types.iter().map(|t| t.type_id))
                .collect();
            t.sort();
            t
        };
        // The default endpoint makes exactly the type `default_type_id` names.
        assert!(types(&plain.id).contains(&default), "{listed:?}");
        // A primary association carries the unlabelled one too.
        let mut both = vec![default, primary_type];
        both.sort();
        assert_eq!(types(&primary.id), both, "{listed:?}");
    }
}

#[tokio::test]
async fn whole_batch_refusals_are_split_against_the_sandbox() {
    let sb = seeded().await;
    let hs = crate::client(&sb.base_url(), "batch-refusals");

    // One record named twice: HubSpot (and the sandbox) refuse the whole upsert with a 400
    // naming it; the other input is written, both duplicates are reported.
    let before = requests_to(&sb, "/batch/upsert");
    let upserted = hs
        .contacts()
        .batch_upsert(
            "email",
            ["a@dup.example", "b@dup.example", "A@dup.example"]
                .iter()
                .map(|e| UpdateInput {
                    id: e.to_string(),
                    properties: props(&[("firstname", "D")]),
                })
                .collect(),
        )
        .await;
    for i in [0, 2] {
        let e = upserted[i].as_ref().expect_err("duplicate");
        assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
        assert!(e.message().contains("Duplicate IDs"), "{e}");
    }
    assert!(upserted[1].as_ref().expect("written").created);
    assert_eq!(
        requests_to(&sb, "/batch/upsert") - before,
        2,
        "refused, then resent without the named ones"
    );
    let found = hs
        .contacts()
        .batch_read(
            vec!["a@dup.example".into(), "b@dup.example".into()],
            &ReadOptions::default().properties(["email"]),
            Some("email"),
        )
        .await;
    assert_eq!(
        found[0].as_ref().expect_err("never written").kind(),
        ErrorKind::NotFound
    );
    assert!(found[1].is_ok());

    // A batch create holding existing emails: a whole-batch 409 naming only the first
    // existing contact; halving writes every new contact and reports each existing one.
    let existing = hs
        .contacts()
        .batch_create(
            ["x1@dup.example", "x3@dup.example"]
                .iter()
                .map(|e| CreateInput {
                    properties: props(&[("email", e)]),
                    associations: Vec::new(),
                })
                .collect(),
        )
        .await;
    let ids: Vec<String> = existing
        .iter()
        .map(|r| r.as_ref().expect("created").id.clone())
        .collect();
    let before = requests_to(&sb, "/batch/create");
    let emails = [
        "n0@dup.example",
        "x1@dup.example",
        "n2@dup.example",
        "x3@dup.example",
        "n4@dup.example",
    ];
    let created = hs
        .contacts()
        .batch_create(
            emails
                .iter()
                .map(|e| CreateInput {
                    properties: props(&[("email", e)]),
                    associations: Vec::new(),
                })
                .collect(),
        )
        .await;
    for (i, r) in created.iter().enumerate() {
        match (i, r) {
            (1 | 3, Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                let id = if i == 1 { &ids[0] } else { &ids[1] };
                assert!(e.message().contains(&format!("Existing ID: {id}")), "{e}");
            }
            (0 | 2 | 4, Ok(o)) => assert_eq!(o.property("email"), Some(emails[i])),
            other => panic!("input {i}: {other:?}"),
        }
    }
    let sent = requests_to(&sb, "/batch/create") - before;
    assert!(sent <= 1 + 4 * 3, "bounded halving: {sent} requests");
}

#[tokio::test]
async fn a_restored_record_comes_back_to_the_change_feed() {
    use crmkit_core::connector::Change;
    use crmkit_core::{Connector, ObjectKind};
    let sb = HubSpotSandbox::builder()
        .burst_limit(1000, Duration::from_secs(10))
        .start()
        .await
        .expect("sandbox starts");
    let hs = crate::client(&sb.base_url(), "restore");
    let made = hs
        .companies()
        .create(&props(&[("name", "Phoenix")]), &[])
        .await
        .expect("created");
    let conn = crmkit_hubspot::HubSpotConnector::new(hs.clone());
    // The run's bound is HubSpot's clock in whole seconds: let it pass each write.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("first run");
    let cursor = first.last().expect("changes").cursor().clone();

    hs.companies().archive(&made.id).await.expect("archived");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_collect()
        .await
        .expect("second run");
    assert!(
        second
            .iter()
            .any(|c| matches!(c, Change::Deleted { record, .. } if record.id == made.id)),
        "tombstone: {second:?}"
    );
    let cursor = second.last().expect("changes").cursor().clone();

    sb.restore("companies", &made.id).expect("restored");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_collect()
        .await
        .expect("third run");
    assert!(
        third
            .iter()
            .any(|c| matches!(c, Change::Upsert { .. }) && c.id() == Some(made.id.as_str())),
        "restored record is an upsert again: {third:?}"
    );
    let back = hs
        .companies()
        .get(&made.id, &ReadOptions::default().properties(["name"]))
        .await
        .expect("live again");
    assert_eq!(back.property("name"), Some("Phoenix"));
    assert!(
        sb.restore("companies", &made.id).is_err(),
        "not archived any more"
    );
}

#[tokio::test]
async fn a_refresh_storm_against_the_sandbox_refreshes_once() {
    use crmkit_hubspot::auth::OAuthApp;
    let sb = HubSpotSandbox::builder()
        .burst_limit(1000, Duration::from_secs(10))
        .start()
        .await
        .expect("sandbox starts");
    let app = OAuthApp::new("sandbox-client", SecretString::from("sandbox-secret"))
        .base_url(&sb.base_url());
    let code = sb.issue_oauth_code();
    let mut tokens = app
        .exchange_code(&code, "http://localhost/callback")
        .await
        .expect("the code exchanges");
    assert_eq!(sb.stats().code_exchanges, 1);
    let seed = crate::client(&sb.base_url(), "storm-seed")
        .contacts()
        .create(&props(&[("email", "storm@example.com")]), &[])
        .await
        .expect("created");
    // The client believes its token expired: 50 concurrent calls refresh once, ahead.
    tokens.expires_in = Some(0);
    let hs = Client::builder()
        .oauth(app, tokens)
        .expect("has a refresh token")
        .base_url(sb.base_url())
        .retry(crate::fast_retry())
        .build()
        .expect("builds");
    let storm = |hs: Client, id: String| async move {
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let (hs, id) = (hs.clone(), id.clone());
                tokio::spawn(async move { hs.contacts().get(&id, &ReadOptions::default()).await })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("the call works");
        }
    };
    storm(hs.clone(), seed.id.clone()).await;
    assert_eq!(sb.stats().token_refreshes, 1, "one refresh for 50 calls");
    // The sandbox expires every token: 50 concurrent calls meet a 401 and refresh once more.
    sb.expire_tokens();
    storm(hs.clone(), seed.id.clone()).await;
    assert_eq!(
        sb.stats().token_refreshes,
        2,
        "one refresh for the 401 storm"
    );
}
