//! Search: operators, group and filter limits, sorts, paging and the 10,000 cap.

use serde_json::{Value, json};

use std::time::Duration;

use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};

use super::{Hs, ids};

/// A sandbox whose windows do not interfere with these tests (the limits have their own tests).
async fn roomy() -> RunningHubSpot {
    HubSpotSandbox::builder()
        .burst_limit(10_000, Duration::from_secs(10))
        .search_limit(1_000)
        .start()
        .await
        .expect("starts")
}

async fn seed_deals(hs: &Hs, amounts: &[&str]) -> Vec<String> {
    let inputs: Vec<Value> = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"properties": {"dealname": format!("Deal {i} alpha"), "amount": a, "dealstage": "closedwon"}}))
        .collect();
    let a = hs
        .post(
            "/crm/v3/objects/deals/batch/create",
            &json!({"inputs": inputs}),
        )
        .await;
    ids(&a.body)
}

#[tokio::test]
async fn groups_are_ored_and_filters_anded() {
    let sb = roomy().await;
    let hs = Hs::new(&sb);
    let made = seed_deals(&hs, &["5", "50", "500", "5000"]).await;
    let search = |body: Value| {
        let hs = &hs;
        async move { hs.post("/crm/v3/objects/deals/search", &body).await }
    };
    let f = |op: &str, v: Value| json!({"propertyName": "amount", "operator": op, "value": v});
    let a = search(
        json!({"filterGroups": [{"filters": [f("GT", json!("10")), f("LT", json!(1000))]}]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["total"], json!(2), "numeric, not text, comparison");
    let b = search(json!({"filterGroups": [{"filters": [f("EQ", json!("5"))]}, {"filters": [f("GTE", json!("5000"))]}]})).await;
    assert_eq!(b.body["total"], json!(2));
    let between = search(json!({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "BETWEEN", "value": "50", "highValue": "500"}]}]})).await;
    assert_eq!(between.body["total"], json!(2));
    let inn = search(json!({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "NOT_IN", "values": ["5", "50"]}]}]})).await;
    assert_eq!(inn.body["total"], json!(2));
    let token = search(json!({"filterGroups": [{"filters": [{"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "ALPHA"}]}]})).await;
    assert_eq!(token.body["total"], json!(4), "text is case-insensitive");
    let enum_case = search(json!({"filterGroups": [{"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "CLOSEDWON"}]}]})).await;
    assert_eq!(
        enum_case.body["total"],
        json!(0),
        "enumerations are case-sensitive"
    );
    let none = search(json!({"filterGroups": [{"filters": [{"propertyName": "closedate", "operator": "NOT_HAS_PROPERTY"}]}]})).await;
    assert_eq!(none.body["total"], json!(4));
    let sorted = search(
        json!({"sorts": [{"propertyName": "amount", "direction": "DESCENDING"}], "limit": 2}),
    )
    .await;
    assert_eq!(ids(&sorted.body), [made[3].clone(), made[2].clone()]);
    assert_eq!(sorted.body["paging"]["next"]["after"], json!("2"));
    let last = search(json!({"sorts": [{"propertyName": "amount", "direction": "DESCENDING"}], "limit": 2, "after": "2"})).await;
    assert_eq!(ids(&last.body), [made[1].clone(), made[0].clone()]);
    assert!(last.body.get("paging").is_none());
}

#[tokio::test]
async fn limits_are_400s() {
    let sb = roomy().await;
    let hs = Hs::new(&sb);
    let filter = json!({"propertyName": "dealname", "operator": "HAS_PROPERTY"});
    let groups = |n: usize, per: usize| json!({"filterGroups": vec![json!({"filters": vec![filter.clone(); per]}); n]});
    for (body, ok) in [
        (groups(5, 3), true),
        (groups(6, 1), false),
        (groups(1, 7), false),
        (groups(4, 5), false),
    ] {
        let a = hs.post("/crm/v3/objects/deals/search", &body).await;
        assert_eq!(a.status == 200, ok, "{body}");
        if !ok {
            assert_eq!(a.body["category"], json!("VALIDATION_ERROR"));
        }
    }
    let past = hs
        .post("/crm/v3/objects/deals/search", &json!({"after": "10000"}))
        .await;
    assert_eq!(past.status, 400);
    let big = hs
        .post("/crm/v3/objects/deals/search", &json!({"limit": 201}))
        .await;
    assert_eq!(big.status, 400);
    let unknown = hs
        .post("/crm/v3/objects/deals/search", &json!({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]}))
        .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn the_10000_cap_ends_paging_while_total_counts_everything() {
    let sb = roomy().await;
    let hs = Hs::new(&sb);
    for chunk in 0..101 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {"name": format!("c{chunk}-{i}")}}))
            .collect();
        let a = hs
            .post(
                "/crm/v3/objects/companies/batch/create",
                &json!({"inputs": inputs}),
            )
            .await;
        assert_eq!(a.status, 201);
    }
    let a = hs
        .post(
            "/crm/v3/objects/companies/search",
            &json!({"limit": 200, "after": "9800"}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["total"], json!(10_100));
    assert_eq!(ids(&a.body).len(), 200);
    assert!(a.body.get("paging").is_none(), "no page beyond 10,000");
}
