//! Outbound Messages: SOAP notifications, retried until a true Ack.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use crmkit_sandbox::salesforce::SalesforceSandbox;
use serde_json::json;

use super::Sf;

const ACK: &str = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>ACK</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>";

fn notification_ids(xml: &str) -> Vec<String> {
    xml.split("<Notification><Id>")
        .skip(1)
        .filter_map(|s| s.split_once("</Id>").map(|(id, _)| id.to_string()))
        .collect()
}

#[tokio::test]
async fn changes_are_posted_as_soap_until_acknowledged() {
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let seen2 = seen.clone();
    let receiver = Router::new().route(
        "/om",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen2.clone();
            async move {
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                s.push((headers, String::from_utf8_lossy(&body).into_owned()));
                // The first answer refuses (Ack false); later ones acknowledge.
                let ack = if s.len() == 1 { "false" } else { "true" };
                (StatusCode::OK, ACK.replace("ACK", ack))
            }
        }),
    );
    let served = crmkit_sandbox::server::serve(receiver, ([127, 0, 0, 1], 0).into())
        .await
        .expect("receiver starts");
    let url = format!("http://{}/om", served.addr());
    let sb = SalesforceSandbox::builder()
        .outbound_message("Account", &url, ["Name", "Industry"])
        .outbound_retry(Duration::from_millis(20), 5)
        .start()
        .await
        .expect("starts");
    let api = Sf::new(&sb);
    let a = api
        .post(
            "/sobjects/Account",
            &json!({"Name": "Acme & Sons", "Industry": "Energy"}),
        )
        .await;
    assert_eq!(a.status, 201);
    api.post("/sobjects/Contact", &json!({"LastName": "Not sent"}))
        .await;
    let mut tries = 0;
    while seen.lock().map(|s| s.len()).unwrap_or(0) < 2 && tries < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        tries += 1;
    }
    let got = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(got.len(), 2, "one refused delivery, one acknowledged");
    let (headers, xml) = &got[0];
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/xml"))
    );
    assert!(xml.contains("<notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">"));
    assert!(
        xml.contains("<sf:Name>Acme &amp; Sons</sf:Name><sf:Industry>Energy</sf:Industry>"),
        "{xml}"
    );
    assert!(xml.contains(&format!(
        "<sf:Id>{}</sf:Id>",
        a.body["id"].as_str().unwrap_or_default()
    )));
    assert!(!xml.contains("Not sent"));
    assert_eq!(
        notification_ids(xml),
        notification_ids(&got[1].1),
        "a redelivery keeps the notification Id"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        seen.lock().map(|s| s.len()).unwrap_or(0),
        2,
        "no delivery after the Ack"
    );
}
