//! Outbound Messages: when a record of a configured object is created or edited, a SOAP
//! `notifications` message (up to 100 `Notification`s) is POSTed as `text/xml` to the
//! endpoint, and retried with a growing delay until the endpoint answers a
//! `notificationsResponse` whose `Ack` is `true`
//! (developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm
//! and sforce_api_om_outboundmessaging_wsdl.htm). A redelivery carries the same
//! notification `Id`, so receivers can dedupe.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::State;
use super::data::ChangeKind;
use super::schema;
use crate::shared::webhook::{self, Delivery, RetrySchedule};

/// Notifications per message ("A single SOAP message can include up to 100
/// notifications").
const BATCH: usize = 100;

/// One outbound message definition: an object, the endpoint, and the fields sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The object whose creations and edits are sent (`Account`).
    pub object: String,
    /// The endpoint URL.
    pub url: String,
    /// The fields each notification carries (`Id` always); every set field when empty.
    pub fields: Vec<String>,
}

/// A notification waiting to go out: which definition, and its `<Notification>` XML.
#[derive(Debug)]
pub(crate) struct Pending {
    rule: usize,
    xml: String,
}

/// Escapes text for XML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn notification(id: &str, object: &str, record: &Value, fields: &[String]) -> String {
    let mut sobject = String::new();
    let o = schema::object(object);
    let mut names: Vec<String> = vec!["Id".into()];
    if fields.is_empty() {
        if let Some(o) = o {
            names.extend(
                o.fields
                    .iter()
                    .filter(|f| f.name != "Id" && !record[f.name].is_null())
                    .map(|f| f.name.to_string()),
            );
        }
    } else {
        names.extend(fields.iter().filter(|f| *f != "Id").cloned());
    }
    for name in names {
        let canonical = o
            .and_then(|o| o.field(&name))
            .map_or(name.clone(), |f| f.name.to_string());
        match &record[canonical.as_str()] {
            Value::Null => sobject.push_str(&format!("<sf:{canonical} xsi:nil=\"true\"/>")),
            Value::String(s) => {
                sobject.push_str(&format!("<sf:{canonical}>{}</sf:{canonical}>", escape(s)))
            }
            other => sobject.push_str(&format!("<sf:{canonical}>{other}</sf:{canonical}>")),
        }
    }
    format!(
        "<Notification><Id>{id}</Id><sObject xsi:type=\"sf:{object}\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">{sobject}</sObject></Notification>"
    )
}

fn envelope(org: &str, action: &str, instance: &str, notifications: &[String]) -> String {
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
            "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
            "<soapenv:Body><notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">",
            "<OrganizationId>{org}</OrganizationId><ActionId>{action}</ActionId>",
            "<SessionId xsi:nil=\"true\"/>",
            "<EnterpriseUrl>{instance}/services/Soap/c/59.0/{org15}</EnterpriseUrl>",
            "<PartnerUrl>{instance}/services/Soap/u/59.0/{org15}</PartnerUrl>",
            "{body}</notifications></soapenv:Body></soapenv:Envelope>"
        ),
        org = org,
        org15 = org.get(..15).unwrap_or(org),
        action = action,
        instance = instance,
        body = notifications.concat(),
    )
}

/// Whether an answer acknowledges the message: a `notificationsResponse` with
/// `<Ack>true</Ack>` (any namespace prefix).
pub(crate) fn acked(status: u16, body: &str) -> bool {
    if !(200..300).contains(&status) {
        return false;
    }
    let lower = body.to_lowercase().replace(char::is_whitespace, "");
    lower.contains("notificationsresponse")
        && lower
            .split("ack>")
            .skip(1)
            .any(|rest| rest.starts_with("true</"))
}

/// Hands the changes of the last request to outbound messaging.
pub(crate) fn flush(state: &State) {
    if state.read().events.is_empty() {
        return;
    }
    let changes = std::mem::take(&mut state.write().events);
    let rules = &state.config.outbound;
    if rules.is_empty() {
        return;
    }
    for change in changes {
        if change.kind == ChangeKind::Deleted {
            continue;
        }
        for (i, rule) in rules.iter().enumerate() {
            if !rule.object.eq_ignore_ascii_case(change.object) {
                continue;
            }
            let id = super::ids::make("04l", state.next_notification());
            let xml = notification(&id, change.object, &change.record, &rule.fields);
            let _ = state.outbound.send(Pending { rule: i, xml });
        }
    }
}

/// Sends pending notifications, at most [`BATCH`] per message and endpoint, each message
/// retried on its own until acknowledged or out of attempts.
pub(crate) async fn run(state: Arc<State>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        while let Ok(more) = rx.try_recv() {
            pending.push(more);
        }
        for (i, rule) in state.config.outbound.iter().enumerate() {
            let mine: Vec<String> = pending
                .iter()
                .filter(|p| p.rule == i)
                .map(|p| p.xml.clone())
                .collect();
            for chunk in mine.chunks(BATCH) {
                let org = state.read().org_id.clone();
                let action = super::ids::make("04k", i as u64 + 1);
                let instance = state.instance.get().cloned().unwrap_or_default();
                let body = envelope(&org, &action, &instance, chunk);
                let schedule = RetrySchedule {
                    base: state.config.outbound_retry_base,
                    max_delay: state.config.outbound_retry_max,
                    attempts: state.config.outbound_attempts,
                };
                let (state, http, url) = (state.clone(), http.clone(), rule.url.clone());
                tokio::spawn(async move {
                    let how = Delivery {
                        content_type: "text/xml; charset=utf-8",
                        acked,
                    };
                    let headers = || Some(vec![("soapaction", "\"\"".to_string())]);
                    webhook::deliver_as(
                        &http,
                        &url,
                        &body,
                        how,
                        schedule,
                        &state.gate.stats,
                        headers,
                    )
                    .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_true_ack_acknowledges() {
        let ok = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>";
        assert!(acked(200, ok));
        assert!(!acked(500, ok));
        assert!(!acked(200, &ok.replace("true", "false")));
        assert!(!acked(200, ""));
    }
}
