//! `crmkit demo`: the Close sandbox seeded with data, and a tour of the client through it —
//! listing, CRUD, the query language, webhooks with verified signatures, the event log and
//! the unified connector — then the HubSpot sandbox from the same seed and a short tour of
//! the HubSpot client and connector (see [`hubspot`]), then the Salesforce sandbox and a
//! tour of the Salesforce client (see [`salesforce`]), ending in one summary. No network,
//! no credentials.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use crmkit_close::webhook::{DEFAULT_TOLERANCE, EventQuery, verify_headers};
use crmkit_close::{
    ActivityFields, Client, CloseConnector, ContactFields, EmailAddress, EventFilter, LeadFields,
    OpportunityFields, Patch,
};
use crmkit_core::{Connector, Error, ObjectKind, Result, SecretString};
use crmkit_sandbox::close::CloseSandbox;
use futures::TryStreamExt;
use serde_json::{Value, json};

mod hubspot;
mod salesforce;

fn step(n: u32, text: &str) {
    println!("{n:>2}. {text}");
}

/// Starts a local receiver that verifies each delivery and records the event types.
async fn receiver(
    secret: Arc<Mutex<Option<SecretString>>>,
    seen: Arc<Mutex<Vec<String>>>,
) -> Result<String> {
    let handler = move |headers: HeaderMap, body: Bytes| {
        let secret = secret.clone();
        let seen = seen.clone();
        async move {
            let Some(key) = secret.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
                return StatusCode::SERVICE_UNAVAILABLE;
            };
            match verify_headers(
                &key,
                &headers,
                &body,
                chrono::Utc::now().timestamp(),
                DEFAULT_TOLERANCE,
            ) {
                Ok(d) => {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{}.{}", d.event.object_type, d.event.action));
                    StatusCode::OK
                }
                Err(_) => StatusCode::UNAUTHORIZED,
            }
        }
    };
    let app = axum::Router::new().route("/hooks/close", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::config(format!("cannot open the webhook receiver: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::config(e.to_string()))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hooks/close"))
}

/// Runs the demo.
pub async fn run(leads: usize, seed: u64) -> Result<()> {
    let started = Instant::now();
    let sandbox = CloseSandbox::builder()
        .seed(seed)
        .leads(leads)
        .webhook_retry(Duration::from_millis(200), 5)
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the Close sandbox: {e}")))?;
    println!(
        "crmkit demo — Close sandbox at {} seeded with {leads} leads (seed {seed})\n",
        sandbox.api_url()
    );
    let client = Client::builder()
        .api_key(SecretString::from(format!("demo-key-{seed}")))
        .base_url(sandbox.api_url())
        .build()?;

    let me = client.me().await?;
    step(
        1,
        &format!("Authenticated as {}", me.email.as_deref().unwrap_or(&me.id)),
    );

    let all: Vec<crmkit_close::Lead> = client.leads().list().stream().try_collect().await?;
    // Listings page by keyset through search, which returns each object's own fields; the
    // contacts and opportunities are streamed as their own collections.
    let contacts = client
        .contacts()
        .list()
        .stream()
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await?;
    let opportunities = client
        .opportunities()
        .list()
        .stream()
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await?;
    step(
        2,
        &format!(
            "Streamed {} leads, {contacts} contacts and {opportunities} opportunities",
            all.len()
        ),
    );

    let industry = sandbox.seed_ids().industry_field.clone();
    let secret: Arc<Mutex<Option<SecretString>>> = Arc::default();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let url = receiver(secret.clone(), seen.clone()).await?;
    let sub = client
        .webhooks()
        .create(&json!({"url": url, "events": [
            EventFilter { object_type: "lead".into(), action: "created".into() },
            EventFilter { object_type: "opportunity".into(), action: "updated".into() },
        ]}))
        .await?;
    *secret.lock().unwrap_or_else(|p| p.into_inner()) = sub.signature_key.clone();
    step(
        3,
        &format!(
            "Subscribed {} to lead.created and opportunity.updated at {url}",
            sub.id
        ),
    );

    let mut custom = std::collections::BTreeMap::new();
    custom.insert(industry.clone(), json!("MEP Contractor"));
    let lead = client
        .leads()
        .create(&LeadFields {
            name: Some("Coperniq Demo Co".into()),
            url: Patch::Set("https://coperniq.example".into()),
            contacts: vec![ContactFields {
                name: Some("Dana Demo".into()),
                emails: Some(vec![EmailAddress {
                    kind: None,
                    email: "dana@coperniq.example".into(),
                }]),
                ..ContactFields::default()
            }],
            custom,
            ..LeadFields::default()
        })
        .await?;
    step(
        4,
        &format!(
            "Created lead {} with contact {}",
            lead.id, lead.contacts[0].id
        ),
    );

    let opp = client
        .opportunities()
        .create(&OpportunityFields {
            lead_id: Some(lead.id.clone()),
            value: Patch::Set(7_500_000),
            confidence: Patch::Set(40),
            note: Patch::Set("Demo rollout".into()),
            ..OpportunityFields::default()
        })
        .await?;
    let opp = client
        .opportunities()
        .update(&opp.id, &json!({"confidence": 80}))
        .await?;
    step(
        5,
        &format!(
            "Opportunity {} worth ${} moved to {}% confidence",
            opp.id,
            opp.value.unwrap_or(0) / 100,
            opp.confidence.unwrap_or(0)
        ),
    );

    client
        .activities_of("note")
        .create(&ActivityFields {
            lead_id: Some(lead.id.clone()),
            note: Patch::Set("Walked through the rollout plan.".into()),
            ..ActivityFields::default()
        })
        .await?;
    client
        .activities_of("call")
        .create(&ActivityFields {
            lead_id: Some(lead.id.clone()),
            direction: Patch::Set("outbound".into()),
            duration: Patch::Set(420),
            ..ActivityFields::default()
        })
        .await?;
    step(6, "Logged a note and a 7-minute call");

    let query = r#"custom.Industry = "MEP Contractor" opportunities.value >= 5000000 opportunities.status_type:active sort:date_updated desc"#;
    let hits = client.search_text(query).await?;
    let names: Vec<&str> = hits
        .iter()
        .take(3)
        .filter_map(|h| h["name"].as_str())
        .collect();
    step(
        7,
        &format!(
            "Query `{query}` → {} leads, e.g. {}",
            hits.len(),
            names.join("; ")
        ),
    );

    let bad = client.search_text("company:").await.map(|_| ());
    let bad = refused(bad, "a query with an empty value")?;
    step(8, &format!("A bad query explains itself: {bad}"));

    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap_or_else(|p| p.into_inner()).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliveries = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    step(
        9,
        &format!("Webhooks delivered and verified: {}", deliveries.join(", ")),
    );

    let events: Vec<crmkit_close::Event> = client
        .events(EventQuery {
            lead_id: Some(lead.id.clone()),
            ..EventQuery::default()
        })
        .try_collect()
        .await?;
    step(
        10,
        &format!("Event log for the lead: {} events", events.len()),
    );

    let connector = CloseConnector::new(client.clone());
    let changed = connector
        .changes(ObjectKind::Deal, None)
        .try_fold(0usize, |n, _| std::future::ready(Ok(n + 1)))
        .await?;
    let company = connector.get(ObjectKind::Company, &lead.id).await?;
    step(
        11,
        &format!(
            "Connector: {changed} deals in the change feed; {} read back in the unified model",
            company.describe()
        ),
    );

    let err = client
        .leads()
        .create(&json!({"status_id": "stat_doesnotexist"}))
        .await
        .map(|_| ());
    let err = refused(err, "a lead with an unknown status")?;
    step(12, &format!("Validation errors name the field: {err}"));

    client.leads().delete(&lead.id).await?;
    let gone = client
        .leads()
        .get(&lead.id)
        .await
        .map(|_| ())
        .map_err(|e| e.kind());
    step(13, &format!("Deleted the demo lead (now: {gone:?})"));

    let stats = sandbox.stats();
    let mut summary = json!({
        "leads_seeded": leads,
        "leads_streamed": all.len(),
        "search_hits": hits.len(),
        "webhooks_verified": deliveries.len(),
        "events": events.len(),
        "requests": stats.requests.len(),
        "rate_limited": stats.rate_limited,
    });
    let (hubspot, next) = hubspot::tour(14, leads, seed).await?;
    let salesforce = salesforce::tour(next, leads, seed).await?;
    // The sync part keeps to a small world so the demo stays quick.
    let sync = crate::sync::demo::tour(leads.clamp(1, 40), seed).await?;
    if let Some(all) = summary.as_object_mut() {
        all.extend(hubspot);
        all.extend(salesforce);
        all.extend(sync);
        all.insert(
            "seconds".into(),
            json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0),
        );
    }
    println!("\nSummary: {}", summary_line(&summary));
    Ok(())
}

/// The error a step of the tour must produce; its absence means the sandbox or client is broken.
fn refused(outcome: Result<()>, what: &str) -> Result<Error> {
    match outcome {
        Err(e) => Ok(e),
        Ok(()) => Err(Error::bad_response(format!(
            "{what} was accepted, but must be refused"
        ))),
    }
}

fn summary_line(v: &Value) -> String {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
