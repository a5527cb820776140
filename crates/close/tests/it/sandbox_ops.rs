//! Every client operation against the sandbox, over real loopback HTTP.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use crmkit_close::filter::{Condition, Field, Query, SearchRequest};
use crmkit_close::webhook::{DEFAULT_TOLERANCE, EventQuery, verify_headers};
use crmkit_close::{
    ActivityFields, Client, CloseConnector, ContactFields, EmailAddress, Lead, LeadFields,
    OpportunityFields, Patch, PhoneNumber,
};
use crmkit_core::{Change, Connector, ErrorKind, ObjectKind, Record, SecretString};
use crmkit_sandbox::close::CloseSandbox;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::{client, sandbox};

#[tokio::test]
async fn leads_contacts_opportunities_crud() {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    let industry = sb.seed_ids().industry_field.clone();
    let mut custom = BTreeMap::new();
    custom.insert(industry.clone(), json!("Manufacturing"));
    let lead = c
        .leads()
        .create(&LeadFields {
            name: Some("Acme".into()),
            contacts: vec![ContactFields {
                name: Some("Ann".into()),
                phones: Some(vec![PhoneNumber {
                    kind: None,
                    phone: "(650) 555-1234".into(),
                }]),
                ..ContactFields::default()
            }],
            custom,
            ..LeadFields::default()
        })
        .await
        .unwrap();
    assert!(lead.id.starts_with("lead_"));
    assert_eq!(lead.contacts[0].phones[0].phone, "+16505551234");
    assert_eq!(lead.custom().get(&industry), Some(&json!("Manufacturing")));
    assert_eq!(lead.status_label.as_deref(), Some("Potential"));

    let updated = c
        .leads()
        .update(&lead.id, &json!({"description": "Widgets"}))
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("Widgets"));
    assert_eq!(
        updated.name.as_deref(),
        Some("Acme"),
        "PUT is a partial update"
    );

    let contact = c
        .contacts()
        .create(&ContactFields {
            lead_id: Some(lead.id.clone()),
            name: Some("Bob".into()),
            emails: Some(vec![EmailAddress {
                kind: None,
                email: "bob@acme.com".into(),
            }]),
            ..ContactFields::default()
        })
        .await
        .unwrap();
    assert_eq!(
        c.contacts().get(&contact.id).await.unwrap().emails[0].email,
        "bob@acme.com"
    );
    let contact = c
        .contacts()
        .update(&contact.id, &json!({"title": "CTO"}))
        .await
        .unwrap();
    assert_eq!(contact.title.as_deref(), Some("CTO"));

    let won = c
        .opportunity_statuses()
        .list()
        .stream()
        .try_filter(|s| futures::future::ready(s.kind.as_deref() == Some("won")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let opp = c
        .opportunities()
        .create(&OpportunityFields {
            lead_id: Some(lead.id.clone()),
            value: Patch::Set(50_000),
            ..OpportunityFields::default()
        })
        .await
        .unwrap();
    assert_eq!(opp.value, Some(50_000));
    assert_eq!(opp.extra["value_formatted"], "$500");
    assert_eq!(opp.status_type.as_deref(), Some("active"));
    let opp = c
        .opportunities()
        .update(&opp.id, &json!({"status_id": won[0].id}))
        .await
        .unwrap();
    assert!(
        opp.date_won.is_some(),
        "moving to a won status sets date_won"
    );

    let e = c.opportunities().create(&json!({})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(e.field_errors()[0].field, "lead");

    c.leads().delete(&lead.id).await.unwrap();
    assert_eq!(
        c.contacts().get(&contact.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        c.opportunities().get(&opp.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn activities_tasks_and_configuration() {
    let sb = sandbox(6).await;
    let c = client(&sb, "k");
    let lead: Lead = c
        .leads()
        .list()
        .limit(1)
        .stream()
        .try_next()
        .await
        .unwrap()
        .unwrap();
    let note = c
        .activities_of("note")
        .create(&ActivityFields {
            lead_id: Some(lead.id.clone()),
            note: Patch::Set("hi".into()),
            ..ActivityFields::default()
        })
        .await
        .unwrap();
    assert_eq!(note.kind, "Note");
    let call = c
        .activities_of("call")
        .create(&ActivityFields {
            lead_id: Some(lead.id.clone()),
            duration: Patch::Set(60),
            direction: Patch::Set("inbound".into()),
            ..ActivityFields::default()
        })
        .await
        .unwrap();
    assert_eq!(call.status.as_deref(), Some("completed"));
    let email = c
        .activities_of("email")
        .create(&ActivityFields {
            lead_id: Some(lead.id.clone()),
            status: Some("draft".into()),
            subject: Patch::Set("Hello".into()),
            ..ActivityFields::default()
        })
        .await
        .unwrap();
    c.activities_of("email")
        .update(&email.id, &json!({"subject": "Hello again"}))
        .await
        .unwrap();
    let e = c
        .activities_of("email")
        .create(&ActivityFields {
            lead_id: Some(lead.id.clone()),
            status: Some("outbox".into()),
            ..ActivityFields::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.field_errors()[0].field, "sender");
    let meetings: Vec<crmkit_close::Activity> = c
        .activities_of("meeting")
        .list()
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert!(!meetings.is_empty(), "seeded meetings are readable");
    let for_lead: Vec<crmkit_close::Activity> = c
        .activities()
        .list()
        .filter("lead_id", lead.id.clone())
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert!(for_lead.iter().any(|a| a.id == call.id));
    c.activities_of("note").delete(&note.id).await.unwrap();

    let task = c
        .tasks()
        .create(&json!({"lead_id": lead.id, "text": "Call back"}))
        .await
        .unwrap();
    let task = c
        .tasks()
        .update(&task.id, &json!({"is_complete": true}))
        .await
        .unwrap();
    assert!(task.is_complete);

    let pipelines: Vec<crmkit_close::Pipeline> =
        c.pipelines().list().stream().try_collect().await.unwrap();
    assert_eq!(pipelines[0].name, "Sales");
    assert_eq!(pipelines[0].statuses.len(), 5);
    let statuses: Vec<crmkit_close::Status> = c
        .lead_statuses()
        .list()
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(statuses.len(), 4);
    let schema = c.custom_field_schema("lead").await.unwrap();
    assert!(
        schema
            .iter()
            .any(|f| f.name == "Trades" && f.accepts_multiple_values)
    );
    let cf = c
        .custom_fields("contact")
        .create(&json!({"name": "Shoe size", "type": "number"}))
        .await
        .unwrap();
    assert_eq!(
        c.custom_fields("contact").get(&cf.id).await.unwrap().name,
        "Shoe size"
    );
    let users: Vec<crmkit_close::User> = c.users().list().stream().try_collect().await.unwrap();
    assert_eq!(users[0].id, c.me().await.unwrap().id);
    let raw = c
        .raw(&crmkit_core::http::ApiRequest::get(format!(
            "organization/{}/",
            users[0].extra["organizations"][0].as_str().unwrap()
        )))
        .await
        .unwrap();
    assert_eq!(raw["pipelines"][0]["name"], "Sales");
}

/// A client that knows the sandbox's `_skip` ceiling of 20.
fn ceiling_client(sb: &crmkit_sandbox::close::RunningClose) -> Client {
    Client::builder()
        .api_key(SecretString::from("k"))
        .base_url(sb.api_url())
        .max_skip(20)
        .build()
        .unwrap()
}

async fn list_in_pages_of_ten(c: &Client) -> Vec<Lead> {
    c.leads()
        .list()
        .limit(10)
        .stream()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn leads_list_past_the_skip_ceiling_by_keyset_search() {
    let sb = CloseSandbox::builder()
        .seed(9)
        .leads(120)
        .max_skip(20)
        .start()
        .await
        .unwrap();
    let c = ceiling_client(&sb);
    let leads = list_in_pages_of_ten(&c).await;
    let ids: HashSet<&str> = leads.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(leads.len(), 120);
    assert_eq!(ids.len(), 120, "no duplicates across slices");
    assert!(sb.stats().requests.iter().all(|r| r.status == 200));
    // Offsets past the ceiling answer 400: the listing above never used them.
    let e = c
        .raw(&crmkit_core::http::ApiRequest::get("lead/").query("_skip", "30"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn advanced_filtering_pages_with_the_cursor() {
    let sb = sandbox(60).await;
    let c = client(&sb, "k");
    let mut req = SearchRequest::new(Query::and(vec![
        Query::object_type("lead"),
        Query::field(
            Field::RegularField {
                object_type: "lead".into(),
                field_name: "name".into(),
            },
            Condition::Exists,
        ),
    ]))
    .fields("lead", &["id", "name"]);
    req.limit = 7;
    let hits: Vec<Value> = c.search(req).try_collect().await.unwrap();
    assert_eq!(hits.len(), 60);
    assert!(
        hits.iter()
            .all(|h| h["__object_type"] == "lead" && h["name"].is_string())
    );
    let searches = sb
        .stats()
        .requests
        .iter()
        .filter(|r| r.path == "/data/search/")
        .count();
    assert_eq!(searches, 9);

    let text = c
        .search_text(r#"custom.Industry = "Manufacturing" sort:date_created desc"#)
        .await
        .unwrap();
    let ind = sb.seed_ids().industry_field.clone();
    assert!(!text.is_empty());
    assert!(
        text.iter()
            .all(|l| l[format!("custom.{ind}").as_str()] == "Manufacturing")
    );
    let dates: Vec<&str> = text
        .iter()
        .map(|l| l["date_created"].as_str().unwrap())
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "sorted newest first"
    );
}

#[tokio::test]
async fn webhooks_are_signed_delivered_and_logged() {
    let sb = CloseSandbox::builder()
        .webhook_retry(Duration::from_millis(50), 5)
        .start()
        .await
        .unwrap();
    let c = client(&sb, "k");
    let key: Arc<Mutex<Option<SecretString>>> = Arc::default();
    let got: Arc<Mutex<Vec<crmkit_close::webhook::Delivery>>> = Arc::default();
    let fail_first = Arc::new(Mutex::new(true));
    let (k2, g2, f2) = (key.clone(), got.clone(), fail_first.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (key, got, fail) = (k2.clone(), g2.clone(), f2.clone());
            async move {
                if std::mem::replace(&mut *fail.lock().unwrap(), false) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let Some(k) = key.lock().unwrap().clone() else {
                    return StatusCode::SERVICE_UNAVAILABLE;
                };
                match verify_headers(
                    &k,
                    &headers,
                    &body,
                    chrono::Utc::now().timestamp(),
                    DEFAULT_TOLERANCE,
                ) {
                    Ok(d) => {
                        got.lock().unwrap().push(d);
                        StatusCode::OK
                    }
                    Err(_) => StatusCode::UNAUTHORIZED,
                }
            }
        }),
    );
    let url = format!("http://{}/hook", super::serve(app).await);

    let sub = c.webhooks().create(&json!({"url": url, "events": [{"object_type": "lead", "action": "created"}, {"object_type": "lead", "action": "updated"}]})).await.unwrap();
    assert!(sub.id.starts_with("whsub_"));
    assert_eq!(
        sub.signature_key
            .as_ref()
            .map(|k| crmkit_core::ExposeSecret::expose_secret(k).len()),
        Some(64)
    );
    assert!(
        !format!("{sub:?}").contains(crmkit_core::ExposeSecret::expose_secret(
            sub.signature_key.as_ref().unwrap()
        ))
    );
    *key.lock().unwrap() = sub.signature_key.clone();
    let listed: Vec<crmkit_close::WebhookSubscription> =
        c.webhooks().list().stream().try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);

    let lead = c.leads().create(&json!({"name": "Hooked"})).await.unwrap();
    c.leads()
        .update(&lead.id, &json!({"name": "Hooked Inc"}))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "both events arrive, the first after a retry");
    let update = got.iter().find(|d| d.event.action == "updated").unwrap();
    assert_eq!(update.event.previous_data["name"], "Hooked");
    assert!(update.event.changed_fields.contains(&"name".to_string()));
    assert_eq!(update.event.data["name"], "Hooked Inc");

    let events: Vec<crmkit_close::Event> = c
        .events(EventQuery {
            lead_id: Some(lead.id.clone()),
            ..EventQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["updated", "created"]
    );

    c.webhooks()
        .update(&sub.id, &json!({"status": "paused"}))
        .await
        .unwrap();
    c.webhooks().delete(&sub.id).await.unwrap();
    assert_eq!(
        c.webhooks().get(&sub.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn event_log_pages_past_fifty() {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    for i in 0..60 {
        c.leads()
            .create(&json!({"name": format!("L{i}")}))
            .await
            .unwrap();
    }
    let events: Vec<crmkit_close::Event> = c
        .events(EventQuery {
            // object_type + action is one of the documented filter combinations.
            object_type: Some("lead".into()),
            action: Some("created".into()),
            ..EventQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 60);
    assert_eq!(events[0].data["name"], "L59", "newest first");
}

#[tokio::test]
async fn connector_maps_and_reports_per_record() {
    let sb = sandbox(10).await;
    let conn = CloseConnector::new(client(&sb, "k")).with_overlap(Duration::ZERO);
    let companies: Vec<_> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(companies.len(), 10);
    let mid = companies[4].cursor().clone();
    let later = conn.changes(ObjectKind::Company, Some(mid)).count().await;
    assert_eq!(later, 5, "resuming from a cursor skips what came before");

    let Change::Upsert {
        record: Record::Company(first),
        ..
    } = &companies[0]
    else {
        panic!("company")
    };
    let good = Record::Company(crmkit_core::Company {
        id: None,
        name: "New Co".into(),
        url: Some("https://newco.io".into()),
        ..Default::default()
    });
    let bad = Record::Deal(crmkit_core::Deal {
        name: "No lead".into(),
        ..Default::default()
    });
    let deal = Record::Deal(crmkit_core::Deal {
        name: "Big".into(),
        company_id: first.id.clone(),
        amount: Some(crmkit_core::Money::new(120_000, "USD")),
        ..Default::default()
    });
    let out = conn.create(vec![good, bad, deal]).await;
    assert_eq!(out.succeeded().count(), 2);
    let failed: Vec<_> = out.failed().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 1, "the failure names its input");
    assert!(
        failed[0].1.to_string().contains("company_id"),
        "{}",
        failed[0].1
    );

    let deal_id = out.results[2].as_ref().unwrap().id.clone();
    let Record::Deal(d) = conn.get(ObjectKind::Deal, &deal_id).await.unwrap() else {
        panic!("deal")
    };
    assert_eq!(d.amount, Some(crmkit_core::Money::new(120_000, "USD")));
    let hits: Vec<Record> = conn
        .search(ObjectKind::Company, "company:\"New Co\"")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let del = conn
        .delete(vec![out.results[0].as_ref().unwrap().clone()])
        .await;
    assert_eq!(del.succeeded().count(), 1);

    // Activities are found by id alone, although Close's item endpoints are typed.
    let call = conn
        .changes(ObjectKind::Activity, None)
        .try_filter(|c| futures::future::ready(matches!(c, Change::Upsert { record: Record::Activity(a), .. } if a.kind == crmkit_core::ActivityKind::Call)))
        .try_next()
        .await
        .unwrap()
        .expect("seeded calls");
    let call_id = call.id().unwrap().to_string();
    let Record::Activity(a) = conn.get(ObjectKind::Activity, &call_id).await.unwrap() else {
        panic!("activity")
    };
    assert_eq!(a.kind, crmkit_core::ActivityKind::Call);
    let call_ref = crmkit_core::RecordRef::new(
        crmkit_core::Crm::Close,
        ObjectKind::Activity,
        call_id.clone(),
    );
    assert_eq!(conn.delete(vec![call_ref]).await.succeeded().count(), 1);
    let gone = conn.get(ObjectKind::Activity, &call_id).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn slicing_keeps_ids_that_share_a_timestamp_across_pages() {
    // 15 early leads, 15 created at one instant (spanning two pages), 20 later ones: the
    // ceiling falls inside the shared instant, so the new slice must skip all 15 of them.
    let sb = CloseSandbox::builder().max_skip(20).start().await.unwrap();
    let c = ceiling_client(&sb);
    let stamps = (0..15)
        .map(|i| format!("2026-01-01T00:00:{i:02}.000000+00:00"))
        .chain((0..15).map(|_| "2026-02-01T00:00:00.000000+00:00".to_string()))
        .chain((0..20).map(|i| format!("2026-03-01T00:00:{i:02}.000000+00:00")));
    for (i, at) in stamps.enumerate() {
        c.leads()
            .create(&json!({"name": format!("L{i}"), "date_created": at}))
            .await
            .unwrap();
    }
    let leads = list_in_pages_of_ten(&c).await;
    let ids: HashSet<&str> = leads.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(leads.len(), 50);
    assert_eq!(ids.len(), 50, "no lead is yielded twice");
}
