//! Real-time payloads: Outbound Messages (SOAP notifications and their acknowledgement),
//! Change Data Capture events, Platform Events, and publishing a Platform Event.
//!
//! - **Outbound Messages** (developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm):
//!   Salesforce POSTs a SOAP envelope with up to 100 `Notification`s, each an `Id` and an
//!   `sObject` with the chosen fields. The listener must answer [`ack`]`(true)`; anything
//!   else makes Salesforce send the message again later, so the same notification `Id` can
//!   arrive twice: deduplicate on it. [`parse_outbound`] reads the envelope with a small
//!   XML reader that expands no entities beyond the five predefined ones and character
//!   references, and refuses document type declarations.
//! - **Change Data Capture** (developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_header.htm):
//!   the payload's `ChangeEventHeader` names the entity, the record ids, the change type
//!   (`CREATE`, `UPDATE`, `DELETE`, `UNDELETE` and the `GAP_` variants) and the changed
//!   fields; the other payload fields are the new values.
//! - **Platform Events** (developer.salesforce.com/docs/atlas.en-us.platform_events.meta/platform_events/platform_events_publish_api.htm):
//!   published with `POST sobjects/Foo__e`, delivered as `{"schema","payload","event":{"replayId"}}`.

use crmkit_core::http::ApiRequest;
use crmkit_core::{Crm, Error, ErrorKind, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::client::{Client, path_segment};
use crate::sobjects::{Fields, SaveResult, save_error};

/// One `Notification` of an Outbound Message.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The notification id: the same on every redelivery, so deduplicate on it.
    pub id: String,
    /// The sObject type (`Account`, from `xsi:type="sf:Account"`).
    pub sobject: String,
    /// The fields sent, by API name; `xsi:nil` fields are `null`.
    pub fields: Fields,
}

/// An Outbound Message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The org that sent it.
    pub organization_id: String,
    /// The workflow or flow action.
    pub action_id: String,
    /// The session id, when the action sends one (treat as a secret).
    pub session_id: Option<String>,
    /// The enterprise API URL of the org.
    pub enterprise_url: Option<String>,
    /// The partner API URL of the org.
    pub partner_url: Option<String>,
    /// The notifications, in order.
    pub notifications: Vec<Notification>,
}

/// The SOAP answer acknowledging an Outbound Message (`ack` false asks for redelivery).
pub fn ack(ack: bool) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>{ack}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
    )
}

/// An XML element: local name (prefix dropped), attributes by local name, children, text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn is_nil(&self) -> bool {
        self.attr("nil") == Some("true")
    }
    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name)
            .filter(|c| !c.is_nil())
            .map(|c| c.text.trim().to_string())
    }
}

fn bad_xml(why: &str) -> Error {
    Error::new(
        ErrorKind::Validation,
        format!("not an Outbound Message: {why}"),
    )
    .with_crm(Crm::Salesforce)
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_string()
}

/// Expands the five predefined entities and character references.
fn unescape(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let end = tail
            .find(';')
            .ok_or_else(|| bad_xml("an unterminated entity"))?;
        let ent = &tail[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = ent.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = ent.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| bad_xml("an unknown entity"))?
            }
        };
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_attrs(s: &str) -> Result<Vec<(String, String)>> {
    let mut attrs = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| bad_xml("an attribute without value"))?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after
            .chars()
            .next()
            .ok_or_else(|| bad_xml("an attribute without value"))?;
        if quote != '"' && quote != '\'' {
            return Err(bad_xml("an unquoted attribute"));
        }
        let close = after[1..]
            .find(quote)
            .ok_or_else(|| bad_xml("an unterminated attribute"))?;
        attrs.push((local(name), unescape(&after[1..1 + close])?));
        rest = after[close + 2..].trim_start();
    }
    Ok(attrs)
}

/// Parses a small XML document into its root element.
fn parse_xml(doc: &str) -> Result<Element> {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut rest = doc;
    while !rest.is_empty() {
        if let Some(text_end) = rest.find('<') {
            if text_end > 0 {
                let text = unescape(&rest[..text_end])?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            rest = &rest[text_end..];
        } else {
            if !rest.trim().is_empty() {
                return Err(bad_xml("text after the document"));
            }
            break;
        }
        if let Some(r) = rest.strip_prefix("<?") {
            let end = r
                .find("?>")
                .ok_or_else(|| bad_xml("an unterminated declaration"))?;
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix("<!--") {
            let end = r
                .find("-->")
                .ok_or_else(|| bad_xml("an unterminated comment"))?;
            rest = &r[end + 3..];
        } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
            let end = r
                .find("]]>")
                .ok_or_else(|| bad_xml("an unterminated CDATA section"))?;
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&r[..end]);
            }
            rest = &r[end + 3..];
        } else if rest.starts_with("<!") {
            return Err(bad_xml("document type declarations are not accepted"));
        } else if let Some(r) = rest.strip_prefix("</") {
            let end = r
                .find('>')
                .ok_or_else(|| bad_xml("an unterminated end tag"))?;
            let name = local(r[..end].trim());
            let done = stack
                .pop()
                .ok_or_else(|| bad_xml("an unbalanced end tag"))?;
            if done.name != name || stack.is_empty() {
                return Err(bad_xml("mismatched tags"));
            }
            if let Some(top) = stack.last_mut() {
                top.children.push(done);
            }
            rest = &r[end + 1..];
        } else {
            let r = &rest[1..];
            let end = r.find('>').ok_or_else(|| bad_xml("an unterminated tag"))?;
            let inner = &r[..end];
            let (inner, closed) = match inner.strip_suffix('/') {
                Some(i) => (i, true),
                None => (inner, false),
            };
            let (name, attrs) = match inner.find(char::is_whitespace) {
                Some(i) => (&inner[..i], parse_attrs(&inner[i..])?),
                None => (inner, Vec::new()),
            };
            if stack.len() > 64 {
                return Err(bad_xml("too deeply nested"));
            }
            let el = Element {
                name: local(name.trim()),
                attrs,
                ..Element::default()
            };
            if closed {
                if let Some(top) = stack.last_mut() {
                    top.children.push(el);
                }
            } else {
                stack.push(el);
            }
            rest = &r[end + 1..];
        }
    }
    if stack.len() != 1 {
        return Err(bad_xml("unclosed elements"));
    }
    stack
        .pop()
        .and_then(|mut doc| doc.children.pop())
        .ok_or_else(|| bad_xml("an empty document"))
}

/// Parses an Outbound Message body.
pub fn parse_outbound(body: &str) -> Result<OutboundMessage> {
    let root = parse_xml(body)?;
    let notes = root
        .child("Body")
        .and_then(|b| b.child("notifications"))
        .ok_or_else(|| bad_xml("no soapenv:Body/notifications element"))?;
    let required = |name: &str| {
        notes
            .text_of(name)
            .ok_or_else(|| bad_xml(&format!("no {name}")))
    };
    let mut notifications = Vec::new();
    for n in notes.children.iter().filter(|c| c.name == "Notification") {
        let id = n
            .text_of("Id")
            .ok_or_else(|| bad_xml("a Notification without Id"))?;
        let so = n
            .child("sObject")
            .ok_or_else(|| bad_xml("a Notification without sObject"))?;
        let sobject = so.attr("type").map(local).unwrap_or_default();
        let fields = so
            .children
            .iter()
            .map(|f| {
                let v = if f.is_nil() {
                    Value::Null
                } else {
                    Value::String(f.text.trim().to_string())
                };
                (f.name.clone(), v)
            })
            .collect();
        notifications.push(Notification {
            id,
            sobject,
            fields,
        });
    }
    Ok(OutboundMessage {
        organization_id: required("OrganizationId")?,
        action_id: required("ActionId")?,
        session_id: notes.text_of("SessionId").filter(|s| !s.is_empty()),
        enterprise_url: notes.text_of("EnterpriseUrl"),
        partner_url: notes.text_of("PartnerUrl"),
        notifications,
    })
}

/// What a change event reports.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEventHeader {
    /// The object (`Account`).
    pub entity_name: String,
    /// The records the change concerns.
    #[serde(default)]
    pub record_ids: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `UNDELETE`, `GAP_CREATE`, …, `GAP_OVERFLOW`.
    pub change_type: String,
    /// The API and client that made the change.
    #[serde(default)]
    pub change_origin: String,
    /// The transaction.
    #[serde(default)]
    pub transaction_key: String,
    /// The event's place in its transaction.
    #[serde(default)]
    pub sequence_number: i64,
    /// When the change was committed (epoch milliseconds).
    #[serde(default)]
    pub commit_timestamp: i64,
    /// The commit's number.
    #[serde(default)]
    pub commit_number: i64,
    /// Who committed it.
    #[serde(default)]
    pub commit_user: String,
    /// Fields that changed.
    #[serde(default)]
    pub changed_fields: Vec<String>,
    /// Fields sent as diffs.
    #[serde(default)]
    pub diff_fields: Vec<String>,
    /// Fields set to null.
    #[serde(default)]
    pub nulled_fields: Vec<String>,
}

impl ChangeEventHeader {
    /// Whether the event says changes were lost (`GAP_…`): resynchronise the records.
    pub fn is_gap(&self) -> bool {
        self.change_type.starts_with("GAP_")
    }
}

/// A Change Data Capture event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The header.
    pub header: ChangeEventHeader,
    /// The new values of the fields the event carries.
    pub fields: Fields,
    /// Where it sits in the stream, to resume after it.
    pub replay_id: Option<i64>,
}

/// A Platform Event as delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformEvent {
    /// The channel (`/event/Order_Placed__e`), when the envelope names it.
    pub channel: Option<String>,
    /// The event's fields.
    pub payload: Fields,
    /// Where it sits in the stream.
    pub replay_id: Option<i64>,
}

/// The `data` part of a streaming message: the message's `data`, or the message itself.
fn data(msg: &Value) -> &Value {
    msg.get("data").filter(|d| d.is_object()).unwrap_or(msg)
}

fn replay_id(data: &Value) -> Option<i64> {
    data.get("event")?.get("replayId")?.as_i64()
}

/// Parses a Change Data Capture message (`{"channel","data":{"payload","event"}}`, or its
/// `data`, or a bare payload).
pub fn parse_change_event(msg: &Value) -> Result<ChangeEvent> {
    let d = data(msg);
    let payload = d.get("payload").unwrap_or(d);
    let mut fields = payload.as_object().cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Validation,
            "the change event has no payload object",
        )
    })?;
    let header = fields.remove("ChangeEventHeader").ok_or_else(|| {
        Error::new(
            ErrorKind::Validation,
            "the change event has no ChangeEventHeader",
        )
    })?;
    let header: ChangeEventHeader = serde_json::from_value(header).map_err(|e| {
        Error::new(
            ErrorKind::Validation,
            format!("the ChangeEventHeader does not fit: {e}"),
        )
    })?;
    Ok(ChangeEvent {
        header,
        fields,
        replay_id: replay_id(d),
    })
}

/// Parses a Platform Event message.
pub fn parse_platform_event(msg: &Value) -> Result<PlatformEvent> {
    let d = data(msg);
    let payload = d
        .get("payload")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| Error::new(ErrorKind::Validation, "the platform event has no payload"))?;
    Ok(PlatformEvent {
        channel: msg
            .get("channel")
            .and_then(Value::as_str)
            .map(str::to_string),
        payload,
        replay_id: replay_id(d),
    })
}

impl Client {
    /// Publishes a Platform Event (`POST sobjects/Foo__e`) and returns the id Salesforce
    /// gave it.
    pub async fn publish_event(&self, event: &str, payload: &Map<String, Value>) -> Result<String> {
        if !event.ends_with("__e") {
            return Err(Error::config(format!(
                "{event:?} is not a platform event name (they end in __e)"
            ))
            .with_crm(Crm::Salesforce));
        }
        let path = format!("sobjects/{}/", path_segment("event name", event)?);
        let r: SaveResult = self
            .json(&ApiRequest::post(path, Value::Object(payload.clone())))
            .await?;
        match (r.success, r.id) {
            (true, Some(id)) => Ok(id),
            _ => Err(save_error(&r.errors, event)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_messages_parse_and_hostile_xml_is_refused() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000001AAA</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/59.0/00D000000000001</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/59.0/00D000000000001</PartnerUrl>
   <Notification>
    <Id>04l000000000001AAA</Id>
    <sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>001000000000001AAA</sf:Id>
     <sf:Name>Smith &amp; Sons &lt;EU&gt; &#233;</sf:Name>
     <sf:Website xsi:nil="true"/>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;
        let m = parse_outbound(body).expect("parses");
        assert_eq!(m.organization_id, "00D000000000001AAA");
        assert_eq!(m.session_id, None);
        assert_eq!(m.notifications.len(), 1);
        let n = &m.notifications[0];
        assert_eq!(
            (n.id.as_str(), n.sobject.as_str()),
            ("04l000000000001AAA", "Account")
        );
        assert_eq!(n.fields["Name"], "Smith & Sons <EU> é");
        assert_eq!(n.fields["Website"], Value::Null);
        assert!(ack(true).contains("<Ack>true</Ack>"));
        for bad in [
            "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>",
            "<a><b></a>",
            "<a>&bogus;</a>",
            "",
            "<Envelope><Body/></Envelope>",
        ] {
            assert!(parse_outbound(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn change_and_platform_events_parse() {
        let msg = serde_json::json!({
            "channel": "/data/AccountChangeEvent",
            "data": {
                "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
                "payload": {
                    "ChangeEventHeader": {
                        "entityName": "Account", "recordIds": ["001000000000001AAA"],
                        "changeType": "UPDATE", "changeOrigin": "com/salesforce/api/rest/59.0",
                        "transactionKey": "0002343d-9d90", "sequenceNumber": 1,
                        "commitTimestamp": 1569370290000i64, "commitNumber": 10650336, "commitUser": "005000000000001AAA",
                        "changedFields": ["Name", "LastModifiedDate"], "diffFields": [], "nulledFields": ["Website"]
                    },
                    "Name": "Acme 2"
                },
                "event": {"replayId": 6}
            }
        });
        let e = parse_change_event(&msg).expect("parses");
        assert_eq!(e.header.change_type, "UPDATE");
        assert!(!e.header.is_gap());
        assert_eq!(e.fields["Name"], "Acme 2");
        assert_eq!(e.replay_id, Some(6));
        assert!(parse_change_event(&serde_json::json!({"payload": {}})).is_err());
        let pe = parse_platform_event(&serde_json::json!({
            "channel": "/event/Order__e",
            "data": {"payload": {"Order_Id__c": "42", "CreatedDate": "2024-01-01T00:00:00Z"}, "event": {"replayId": 9}}
        }))
        .expect("parses");
        assert_eq!(pe.channel.as_deref(), Some("/event/Order__e"));
        assert_eq!(pe.payload["Order_Id__c"], "42");
        assert_eq!(pe.replay_id, Some(9));
    }
}
