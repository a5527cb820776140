//! Associations v4, pipelines, properties and owners against a fake, and the search budget.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use crmkit_hubspot::associations::{AssociationSpec, default_type_id};
use crmkit_hubspot::schema::NewProperty;
use crmkit_hubspot::{ObjectType, SearchRequest};
use futures::TryStreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::{Log, client, log, serve};

async fn labelled(State(l): State<Log>, axum::Json(body): axum::Json<Value>) -> impl IntoResponse {
    l.lock().expect("log").push(("labelled".into(), body));
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"fromObjectTypeId":"0-1","fromObjectId":1,"toObjectTypeId":"0-2","toObjectId":2,"labels":[]}),
        ),
    )
}

async fn default_pair(State(l): State<Log>) -> impl IntoResponse {
    l.lock().expect("log").push(("default".into(), Value::Null));
    axum::Json(json!({"status":"COMPLETE","results":[]}))
}

async fn listed(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    let after = q.get("after").cloned();
    let (ids, next) = match after.as_deref() {
        None => (vec![11, 12], Some("p2")),
        _ => (vec![13], None),
    };
    let results: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"toObjectId": id, "associationTypes": [{"category":"HUBSPOT_DEFINED","typeId":279,"label":null}]}))
        .collect();
    let mut page = json!({"results": results});
    if let Some(n) = next {
        page["paging"] = json!({"next": {"after": n}});
    }
    axum::Json(page)
}

async fn batch_read(axum::Json(body): axum::Json<Value>) -> impl IntoResponse {
    assert_eq!(body["inputs"].as_array().map(Vec::len), Some(2));
    (
        StatusCode::MULTI_STATUS,
        axum::Json(json!({"status":"COMPLETE",
            "results":[{"from":{"id":"1"},"to":[{"toObjectId":5,"associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":1,"label":"Primary"}]}]}],
            "errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"No contact with id 2","context":{"ids":["2"]}}]})),
    )
}

async fn pipelines() -> impl IntoResponse {
    axum::Json(
        json!({"results":[{"id":"default","label":"Sales Pipeline","displayOrder":0,"archived":false,
        "stages":[{"id":"closedwon","label":"Closed Won","displayOrder":5,"metadata":{"probability":"1.0","isClosed":"true"},"archived":false}]}]}),
    )
}

async fn create_property(
    State(l): State<Log>,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    l.lock()
        .expect("log")
        .push(("property".into(), body.clone()));
    (StatusCode::CREATED, axum::Json(body))
}

async fn owners(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    if q.contains_key("after") {
        return axum::Json(
            json!({"results":[{"id":"2","email":"b@x.com","type":"PERSON","archived":false}]}),
        );
    }
    axum::Json(
        json!({"results":[{"id":"1","email":"a@x.com","firstName":"A","userId":9,"type":"PERSON","archived":false}],
        "paging":{"next":{"after":"1"}}}),
    )
}

#[tokio::test]
async fn associations_pipelines_properties_and_owners() {
    let l = log();
    let app = Router::new()
        .route(
            "/crm/v4/objects/contacts/1/associations/companies/2",
            put(labelled).delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/crm/v4/objects/contacts/1/associations/default/companies/2",
            put(default_pair),
        )
        .route(
            "/crm/v4/objects/contacts/1/associations/companies",
            get(listed),
        )
        .route(
            "/crm/v4/associations/contacts/companies/batch/read",
            post(batch_read),
        )
        .route("/crm/v3/pipelines/deals", get(pipelines))
        .route("/crm/v3/properties/contacts", post(create_property))
        .route("/crm/v3/owners", get(owners))
        .with_state(l.clone());
    let c = client(&serve(app).await, "schema");
    let (contact, company) = (ObjectType::Contacts, ObjectType::Companies);
    let a = c.associations();
    a.associate_default(&contact, "1", &company, "2")
        .await
        .expect("default");
    let type_id = default_type_id(&contact, &company).expect("known");
    a.associate(
        &contact,
        "1",
        &company,
        "2",
        &[AssociationSpec::hubspot_defined(type_id)],
    )
    .await
    .expect("201");
    assert_eq!(
        l.lock().expect("log")[1].1,
        json!([{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":279}])
    );
    let listed: Vec<_> = a
        .list(&contact, "1", &company)
        .try_collect()
        .await
        .expect("lists");
    let ids: Vec<&str> = listed.iter().map(|x| x.to_object_id.as_str()).collect();
    assert_eq!(ids, ["11", "12", "13"]);
    let (found, errors) = a
        .batch_read(&contact, &company, &["1".into(), "2".into()])
        .await
        .expect("207");
    assert_eq!(found[0].from_id, "1");
    assert_eq!(found[0].to[0].to_object_id, "5");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), crmkit_core::ErrorKind::NotFound);
    a.remove(&contact, "1", &company, "2").await.expect("204");

    let p = c.pipelines(&ObjectType::Deals).await.expect("pipelines");
    assert_eq!(
        p.stage_id("Sales Pipeline", "Closed Won"),
        Some("closedwon")
    );

    let made = c
        .create_property(
            &contact,
            &NewProperty {
                name: "tier".into(),
                label: "Tier".into(),
                kind: "enumeration".into(),
                field_type: "select".into(),
                group_name: "contactinformation".into(),
                description: None,
                options: vec![crmkit_hubspot::schema::PropertyOption {
                    label: "Gold".into(),
                    value: "gold".into(),
                    display_order: Some(0),
                    hidden: false,
                }],
                has_unique_value: None,
            },
        )
        .await
        .expect("201");
    assert_eq!(made.options[0].value, "gold");

    let owners: Vec<_> = c.owners().try_collect().await.expect("owners");
    assert_eq!(owners.len(), 2);
    assert_eq!(owners[0].user_id, Some(9));
}

#[tokio::test]
async fn searches_keep_to_their_own_budget_of_five_per_second() {
    let seen = Arc::new(Mutex::new(0u32));
    let s = seen.clone();
    let app = Router::new().route(
        "/crm/v3/objects/contacts/search",
        post(move || {
            let s = s.clone();
            async move {
                *s.lock().expect("n") += 1;
                axum::Json(json!({"total":0,"results":[]}))
            }
        }),
    );
    let c = client(&serve(app).await, "search-budget");
    let start = Instant::now();
    for _ in 0..7 {
        c.contacts()
            .search(&SearchRequest::new())
            .await
            .expect("searched");
    }
    // The sixth and seventh wait for the first second to pass.
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(*seen.lock().expect("n"), 7);
}
