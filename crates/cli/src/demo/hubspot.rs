//! The HubSpot part of `crmkit demo`: the HubSpot sandbox seeded from the same seed, and a
//! short tour of the HubSpot client and connector through it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use crmkit_core::http::{ApiRequest, Body};
use crmkit_core::{Connector, Error, ObjectKind, Result, SecretString};
use crmkit_hubspot::associations::default_type_id;
use crmkit_hubspot::batch::UpsertInput;
use crmkit_hubspot::objects::NewAssociation;
use crmkit_hubspot::typed::ContactProperties;
use crmkit_hubspot::webhook::{Received, parse_events, verify_v3};
use crmkit_hubspot::{
    Client, Filter, HubSpotConnector, ObjectType, Properties, ReadOptions, SearchRequest,
};
use crmkit_sandbox::hubspot::{Config, HubSpotSandbox};
use futures::TryStreamExt;
use serde_json::{Map, Value, json};

use super::step;

/// Starts a local receiver that checks each delivery's v3 signature and counts its events.
async fn receiver(secret: SecretString, verified: Arc<Mutex<usize>>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::config(format!("cannot open the webhook receiver: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::config(e.to_string()))?;
    let url = format!("http://{addr}/hooks/hubspot");
    let signed_uri = url.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (secret, verified, uri) = (secret.clone(), verified.clone(), signed_uri.clone());
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let (Some(signature), Some(timestamp)) = (
                header("x-hubspot-signature-v3"),
                header("x-hubspot-request-timestamp"),
            ) else {
                return StatusCode::UNAUTHORIZED;
            };
            let request = Received {
                method: "POST",
                uri: &uri,
                body: &body,
            };
            if verify_v3(&secret, request, signature, timestamp, chrono::Utc::now()).is_err() {
                return StatusCode::UNAUTHORIZED;
            }
            let Ok(events) = parse_events(&body) else {
                return StatusCode::BAD_REQUEST;
            };
            *verified.lock().unwrap_or_else(|p| p.into_inner()) += events.len();
            StatusCode::OK
        }
    };
    let app = axum::Router::new().route("/hooks/hubspot", axum::routing::post(handler));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// The part of a refusal that says what to fix: a field's own message, or the first
/// `message` of the property errors HubSpot lists in its text, else the whole message.
fn headline(e: &Error) -> String {
    if let Some(f) = e.field_errors().first() {
        return f.message.clone();
    }
    let text = e.message();
    text.find('[')
        .and_then(|i| serde_json::from_str::<Vec<Value>>(&text[i..]).ok())
        .and_then(|list| list.first()?["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.to_string())
}

fn count<T>(n: usize, _: T) -> std::future::Ready<Result<usize>> {
    std::future::ready(Ok(n + 1))
}

/// Runs the HubSpot tour, numbering its steps from `first`; returns its summary figures and
/// the number of the step after its last.
pub async fn tour(first: u32, companies: usize, seed: u64) -> Result<(Map<String, Value>, u32)> {
    let config = Config {
        seed,
        companies,
        webhook_retry_base: Duration::from_millis(200),
        webhook_attempts: 5,
        ..Config::default()
    };
    let secret = SecretString::from(config.oauth_client.1.clone());
    let app_id = config.app_id;
    let sandbox = HubSpotSandbox::builder()
        .config(config)
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the HubSpot sandbox: {e}")))?;
    println!(
        "\nHubSpot sandbox at {} seeded from the same world (seed {seed}; HubSpot holds part of its {companies} companies)\n",
        sandbox.base_url()
    );
    let client = Client::builder()
        .access_token(SecretString::from(format!("demo-token-{seed}")))
        .base_url(sandbox.base_url())
        .build()?;
    let mut n = first;
    let mut next = || {
        let current = n;
        n += 1;
        current
    };

    let contacts = client
        .contacts()
        .list(ReadOptions::default(), 100)
        .try_fold(0usize, count)
        .await?;
    let company_list: Vec<_> = client
        .companies()
        .list(ReadOptions::default().properties(["name"]), 100)
        .try_collect()
        .await?;
    step(
        next(),
        &format!(
            "Streamed {contacts} contacts and {} companies",
            company_list.len()
        ),
    );

    let verified: Arc<Mutex<usize>> = Arc::default();
    let url = receiver(secret, verified.clone()).await?;
    client
        .raw(&ApiRequest::put(
            format!("webhooks/v3/{app_id}/settings"),
            json!({ "targetUrl": url }),
        ))
        .await?;
    client
        .raw(&ApiRequest::post(
            format!("webhooks/v3/{app_id}/subscriptions"),
            json!({ "eventType": "contact.creation", "active": true }),
        ))
        .await?;
    step(
        next(),
        &format!("Subscribed to contact.creation, delivered signed to {url}"),
    );

    let company = company_list
        .first()
        .ok_or_else(|| Error::bad_response("the HubSpot sandbox holds no companies"))?;
    let company_name = company.property("name").unwrap_or(&company.id).to_string();
    // contact → company default association (HubSpot association-types table: 279).
    let type_id = default_type_id(&ObjectType::Contacts, &ObjectType::Companies).unwrap_or(279);
    let created = client
        .contacts()
        .create(
            &ContactProperties {
                email: Some("dana@coperniq.example".into()),
                firstname: Some("Dana".into()),
                lastname: Some("Demo".into()),
                ..ContactProperties::default()
            }
            .to_properties(),
            &[NewAssociation::hubspot_defined(company.id.clone(), type_id)],
        )
        .await?;
    step(
        next(),
        &format!(
            "Created contact {} associated with company {} ({company_name})",
            created.id, company.id
        ),
    );

    let patch = ContactProperties {
        jobtitle: Some("Head of Operations".into()),
        ..ContactProperties::default()
    }
    .to_properties();
    let sent = client.contacts().update_request(&created.id, &patch)?;
    let patched = client.contacts().update(&created.id, &patch).await?;
    step(
        next(),
        &format!(
            "Patched contact {}: jobtitle = {} (sent only {})",
            patched.id,
            patched.property("jobtitle").unwrap_or("?"),
            match &sent.body {
                Body::Json(b) => b.to_string(),
                _ => String::new(),
            }
        ),
    );

    let filtered = client
        .contacts()
        .search(
            &SearchRequest::new()
                .filter(Filter::eq("jobtitle", "Head of Operations"))
                .filter(Filter::has_property("email"))
                .properties(["email"])
                .limit(10),
        )
        .await?;
    let found: Vec<&str> = filtered
        .results
        .iter()
        .filter_map(|o| o.property("email"))
        .collect();
    let all = client
        .contacts()
        .search_all(SearchRequest::new().filter(Filter::has_property("email")))
        .try_fold(0usize, count)
        .await?;
    step(
        next(),
        &format!(
            "Search `jobtitle = \"Head of Operations\" AND email HAS_PROPERTY` → {} ({}); search_all(email HAS_PROPERTY) → {all} contacts",
            filtered.total,
            found.join(", ")
        ),
    );

    let upsert = |email: &str, props: &[(&str, &str)]| UpsertInput {
        id: email.to_string(),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Properties>(),
    };
    let emails = [
        "dana@coperniq.example",
        "lee@coperniq.example",
        "sam@coperniq.example",
    ];
    let outcomes = client
        .contacts()
        .batch_upsert(
            "email",
            vec![
                upsert(emails[0], &[("lifecyclestage", "lead")]),
                upsert(emails[1], &[("firstname", "Lee")]),
                // Not a contact property, so this record alone is refused.
                upsert(emails[2], &[("favourite_colour", "teal")]),
            ],
        )
        .await;
    let upserted = outcomes.iter().filter(|o| o.is_ok()).count();
    let upsert_failed = outcomes.len() - upserted;
    let described: Vec<String> = emails
        .iter()
        .zip(&outcomes)
        .map(|(email, o)| match o {
            Ok(u) if u.created => format!("{email} created ({})", u.object.id),
            Ok(u) => format!("{email} updated ({})", u.object.id),
            Err(e) => format!("{email} failed: {}", headline(e)),
        })
        .collect();
    step(
        next(),
        &format!("Batch upsert of 3 by email: {}", described.join("; ")),
    );

    let pipelines = client.pipelines(&ObjectType::Deals).await?;
    let pipeline = pipelines
        .pipelines
        .first()
        .ok_or_else(|| Error::bad_response("the HubSpot sandbox has no deal pipeline"))?;
    let label = pipeline
        .stages
        .last()
        .map(|s| s.label.clone())
        .unwrap_or_default();
    let stage_id = pipelines.stage_id(&pipeline.label, &label).unwrap_or("?");
    let back = pipelines
        .stage(stage_id)
        .map_or("?", |(_, s)| s.label.as_str());
    step(
        next(),
        &format!(
            "Pipeline {:?} has {} stages; stage {label:?} → id {stage_id} → {back:?}",
            pipeline.label,
            pipeline.stages.len()
        ),
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while *verified.lock().unwrap_or_else(|p| p.into_inner()) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let webhooks = *verified.lock().unwrap_or_else(|p| p.into_inner());
    step(
        next(),
        &format!("Webhook v3 signatures verified: {webhooks} contact.creation events"),
    );

    let connector = HubSpotConnector::new(client.clone());
    let changes = connector
        .changes(ObjectKind::Person, None)
        .try_fold(0usize, count)
        .await?;
    let person = connector.get(ObjectKind::Person, &created.id).await?;
    step(
        next(),
        &format!(
            "Connector: {changes} contacts in the change feed up to the server's last whole second; {} read back in the unified model",
            person.describe()
        ),
    );

    let stats = sandbox.stats();
    let mut summary = Map::new();
    for (k, v) in [
        ("hubspot_contacts", json!(contacts)),
        ("hubspot_companies", json!(company_list.len())),
        ("hubspot_search_total", json!(filtered.total)),
        ("hubspot_search_all", json!(all)),
        ("hubspot_upserted", json!(upserted)),
        ("hubspot_upsert_failed", json!(upsert_failed)),
        ("hubspot_webhooks_verified", json!(webhooks)),
        ("hubspot_changes", json!(changes)),
        ("hubspot_requests", json!(stats.requests.len())),
    ] {
        summary.insert(k.to_string(), v);
    }
    Ok((summary, next()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::{ErrorKind, FieldError};

    #[test]
    fn headline_prefers_the_field_then_the_listed_message() {
        let field =
            Error::new(ErrorKind::Validation, "rejected").with_field_errors(vec![FieldError {
                field: "email".into(),
                message: "Email is invalid".into(),
            }]);
        assert_eq!(headline(&field), "Email is invalid");
        let listed = Error::new(
            ErrorKind::Validation,
            r#"VALIDATION_ERROR: not valid: [{"message":"Property \"x\" does not exist"}]"#,
        );
        assert_eq!(headline(&listed), r#"Property "x" does not exist"#);
        let plain = Error::new(ErrorKind::Validation, "no list [here");
        assert_eq!(headline(&plain), "no list [here");
    }

    #[tokio::test]
    async fn the_tour_reports_each_outcome() -> Result<()> {
        let (summary, after) = tour(14, 20, 7).await?;
        assert!(after > 14);
        assert_eq!(summary["hubspot_search_total"], json!(1));
        assert_eq!(summary["hubspot_upserted"], json!(2));
        assert_eq!(summary["hubspot_upsert_failed"], json!(1));
        assert_eq!(summary["hubspot_webhooks_verified"], json!(2));
        assert_eq!(
            summary["hubspot_search_all"],
            json!(summary["hubspot_contacts"].as_u64().unwrap_or(0) + 1)
        );
        Ok(())
    }
}
