//! The unified model on Close: Company = lead, Person = contact, Deal = opportunity,
//! Activity = note, call, email or meeting activity.

use async_trait::async_trait;
use crmkit_core::connector::Change;
use crmkit_core::http::ApiRequest;
use crmkit_core::model::{Activity, ActivityKind, Company, Deal, Money, Person};
use crmkit_core::{
    BatchOutcome, ChangeCursor, Connector, Crm, Error, ObjectKind, Record, RecordRef, Result,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::models::{self, EmailAddress, PhoneNumber};
use crate::query;
use crate::search::{Condition, Field, Query, SearchRequest, Sort};

/// Writes in flight at once for a batch; Close has no batch endpoints.
const WRITE_CONCURRENCY: usize = 4;

/// [`Connector`] for Close.
#[derive(Debug, Clone)]
pub struct CloseConnector {
    client: Client,
}

impl CloseConnector {
    /// A connector using `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn object_type(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Company => "lead",
        ObjectKind::Person => "contact",
        ObjectKind::Deal => "opportunity",
        ObjectKind::Activity => "activity",
    }
}

/// The collection of a kind; activities have one per type, found with
/// [`Client::find_activity`].
fn collection(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Company => Some("lead/"),
        ObjectKind::Person => Some("contact/"),
        ObjectKind::Deal => Some("opportunity/"),
        ObjectKind::Activity => None,
    }
}

fn time(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str().and_then(crmkit_core::time::parse_timestamp)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn custom(raw: &Value) -> Map<String, Value> {
    raw.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("custom.")
                .map(|id| (id.to_string(), v.clone()))
        })
        .collect()
}

fn domain_of(url: &str) -> Option<String> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()?;
    let host = host.trim_start_matches("www.").to_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Maps a Close object (as JSON) of `kind` to a unified record.
pub(crate) fn to_record(kind: ObjectKind, raw: Value) -> Result<Record> {
    let id = text(&raw["id"]);
    let (created_at, updated_at) = (time(&raw["date_created"]), time(&raw["date_updated"]));
    let custom = custom(&raw).into_iter().collect();
    Ok(match kind {
        ObjectKind::Company => Record::Company(Company {
            id,
            name: text(&raw["name"])
                .or_else(|| text(&raw["display_name"]))
                .unwrap_or_default(),
            domain: raw["url"].as_str().and_then(domain_of),
            url: text(&raw["url"]),
            description: text(&raw["description"]),
            status: text(&raw["status_label"]),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        ObjectKind::Person => {
            let c: models::Contact = serde_json::from_value(raw.clone())?;
            Record::Person(Person {
                id,
                name: c.name.unwrap_or_default(),
                title: c.title,
                emails: c.emails.into_iter().map(|e| e.email).collect(),
                phones: c.phones.into_iter().map(|p| p.phone).collect(),
                company_id: c.lead_id,
                custom,
                created_at,
                updated_at,
                raw,
            })
        }
        ObjectKind::Deal => Record::Deal(Deal {
            id,
            name: text(&raw["note"])
                .or_else(|| text(&raw["lead_name"]))
                .unwrap_or_default(),
            amount: raw["value"]
                .as_i64()
                .map(|v| Money::new(v, raw["value_currency"].as_str().unwrap_or("USD"))),
            stage_id: text(&raw["status_id"]),
            pipeline_id: text(&raw["pipeline_id"]),
            confidence: raw["confidence"].as_u64().map(|c| c.min(100) as u8),
            company_id: text(&raw["lead_id"]),
            person_id: text(&raw["contact_id"]),
            close_date: time(&raw["date_won"]),
            custom,
            created_at,
            updated_at,
            raw,
        }),
        ObjectKind::Activity => {
            let kind = match raw["_type"].as_str().unwrap_or_default() {
                "Call" => ActivityKind::Call,
                "Email" => ActivityKind::Email,
                "Meeting" => ActivityKind::Meeting,
                "Note" => ActivityKind::Note,
                other => {
                    return Err(Error::bad_response(format!(
                        "activity type {other:?} has no unified equivalent"
                    )));
                }
            };
            let mut a = Activity::new(kind);
            a.id = id;
            a.subject = text(&raw["subject"]).or_else(|| text(&raw["title"]));
            a.body = text(&raw["note"]).or_else(|| text(&raw["body_text"]));
            a.occurred_at = time(&raw["activity_at"]).or(created_at);
            a.duration_secs = raw["duration"].as_u64().map(|d| d as u32);
            a.direction = text(&raw["direction"]);
            a.company_id = text(&raw["lead_id"]);
            a.person_id = text(&raw["contact_id"]);
            a.custom = custom;
            a.created_at = created_at;
            a.updated_at = updated_at;
            a.raw = raw;
            Record::Activity(a)
        }
    })
}

fn with_custom(mut body: Value, custom: &std::collections::BTreeMap<String, Value>) -> Value {
    for (k, v) in custom {
        body[format!("custom.{k}").as_str()] = v.clone();
    }
    body
}

/// The Close write payload of a unified record, and the path to create it at.
fn to_close(record: &Record) -> Result<(String, Value)> {
    let strip_nulls = |v: Value| match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    };
    Ok(match record {
        Record::Company(c) => (
            "lead/".into(),
            with_custom(
                strip_nulls(json!({"name": c.name, "url": c.url, "description": c.description})),
                &c.custom,
            ),
        ),
        Record::Person(p) => {
            let emails: Vec<EmailAddress> = p
                .emails
                .iter()
                .map(|e| EmailAddress {
                    kind: Some("office".into()),
                    email: e.clone(),
                })
                .collect();
            let phones: Vec<PhoneNumber> = p
                .phones
                .iter()
                .map(|n| PhoneNumber {
                    kind: Some("office".into()),
                    phone: n.clone(),
                })
                .collect();
            (
                "contact/".into(),
                with_custom(
                    strip_nulls(
                        json!({"name": p.name, "title": p.title, "lead_id": p.company_id, "emails": emails, "phones": phones}),
                    ),
                    &p.custom,
                ),
            )
        }
        Record::Deal(d) => {
            let company = d.company_id.as_ref().ok_or_else(|| {
                Error::new(
                    crmkit_core::ErrorKind::Validation,
                    "a Close opportunity needs the lead it belongs to",
                )
                .with_field_errors(vec![crmkit_core::FieldError {
                    field: "company_id".into(),
                    message: "required".into(),
                }])
            })?;
            let mut body = json!({"lead_id": company, "note": d.name, "status_id": d.stage_id, "contact_id": d.person_id,
                "confidence": d.confidence});
            if let Some(m) = &d.amount {
                body["value"] = json!(m.minor);
                body["value_currency"] = json!(m.currency);
            }
            (
                "opportunity/".into(),
                with_custom(strip_nulls(body), &d.custom),
            )
        }
        Record::Activity(a) => {
            let seg = match a.kind {
                ActivityKind::Note => "note",
                ActivityKind::Call => "call",
                ActivityKind::Email => "email",
                ActivityKind::Meeting => "meeting",
                ActivityKind::Task => {
                    return Err(Error::config(
                        "Close tasks are not activities; create them with Client::tasks()",
                    ));
                }
            };
            let mut body = json!({"lead_id": a.company_id, "contact_id": a.person_id, "duration": a.duration_secs,
                "direction": a.direction});
            match a.kind {
                ActivityKind::Email => {
                    body["subject"] = json!(a.subject);
                    body["body_text"] = json!(a.body);
                    body["status"] = json!("sent");
                }
                _ => body["note"] = json!(a.body),
            }
            (
                format!("activity/{seg}/"),
                with_custom(strip_nulls(body), &a.custom),
            )
        }
    })
}

fn record_ref(kind: ObjectKind, v: &Value) -> Result<RecordRef> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| Error::bad_response("Close returned an object without an id"))?;
    Ok(RecordRef::new(Crm::Close, kind, id))
}

impl CloseConnector {
    async fn write(&self, record: Record, update: bool) -> Result<RecordRef> {
        let kind = record.kind();
        let label = record.describe();
        let (collection, body) =
            to_close(&record).map_err(|e| e.with_crm(Crm::Close).with_record(label.clone()))?;
        let req = match (update, record.id()) {
            (false, _) => ApiRequest::post(collection, body),
            (true, Some(id)) => {
                let mut body = body;
                if let Value::Object(m) = &mut body {
                    m.remove("lead_id");
                }
                ApiRequest::put(format!("{collection}{id}/"), body)
            }
            (true, None) => {
                return Err(Error::config("an update needs the record's id").with_record(label));
            }
        };
        let v = self
            .client
            .raw(&req)
            .await
            .map_err(|e| e.with_record(label))?;
        record_ref(kind, &v)
    }

    async fn each<F, Fut>(&self, items: Vec<Record>, f: F) -> BatchOutcome
    where
        F: Fn(Record) -> Fut,
        Fut: std::future::Future<Output = Result<RecordRef>>,
    {
        let results = stream::iter(items.into_iter().map(f))
            .buffered(WRITE_CONCURRENCY)
            .collect()
            .await;
        BatchOutcome { results }
    }
}

#[async_trait]
impl Connector for CloseConnector {
    fn crm(&self) -> Crm {
        Crm::Close
    }

    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        let ot = object_type(kind);
        let mut parts = vec![Query::object_type(ot)];
        if let Some(c) = &since {
            parts.push(Query::field(
                Field::RegularField {
                    object_type: ot.into(),
                    field_name: "date_updated".into(),
                },
                Condition::MomentRange {
                    gte: Some(c.0.clone()),
                    lt: None,
                },
            ));
        }
        let mut req = SearchRequest::new(Query::and(parts)).fields(ot, &["_all"]);
        req.sort.push(Sort {
            direction: "asc".into(),
            field: Field::RegularField {
                object_type: ot.into(),
                field_name: "date_updated".into(),
            },
        });
        self.client
            .search(req)
            .and_then(move |raw| async move {
                let cursor =
                    ChangeCursor(raw["date_updated"].as_str().unwrap_or_default().to_string());
                Ok(Change {
                    record: to_record(kind, raw)?,
                    cursor,
                })
            })
            .boxed()
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        let v = match collection(kind) {
            Some(c) => {
                self.client
                    .raw(&ApiRequest::get(format!("{c}{id}/")))
                    .await?
            }
            None => self.client.find_activity(id).await?.1,
        };
        to_record(kind, v)
    }

    async fn create(&self, records: Vec<Record>) -> BatchOutcome {
        self.each(records, |r| self.write(r, false)).await
    }

    async fn update(&self, records: Vec<Record>) -> BatchOutcome {
        self.each(records, |r| self.write(r, true)).await
    }

    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome {
        let results = stream::iter(refs.into_iter().map(|r| async move {
            let collection = match collection(r.object) {
                Some(c) => c.to_string(),
                None => self.client.find_activity(&r.id).await?.0,
            };
            let req = ApiRequest::delete(format!("{collection}{}/", r.id));
            self.client
                .raw(&req)
                .await
                .map(|_| r.clone())
                .map_err(|e| e.with_record(r.to_string()))
        }))
        .buffered(WRITE_CONCURRENCY)
        .collect()
        .await;
        BatchOutcome { results }
    }

    fn search(&self, kind: ObjectKind, text: &str) -> BoxStream<'_, Result<Record>> {
        if kind != ObjectKind::Company {
            let e = Error::config(
                "the Close query language searches companies (leads); filter people, deals and activities through them",
            );
            return stream::once(async { Err(e) }).boxed();
        }
        let text = text.to_string();
        stream::once(async move { self.client.search_text_request(&text).await })
            .map_ok(|req| self.client.search(req.fields("lead", &["_all"])))
            .try_flatten()
            .and_then(|raw| async move { to_record(ObjectKind::Company, raw) })
            .boxed()
    }
}

impl Client {
    /// Compiles a text query (resolving `custom.<name>` through the lead custom fields) into
    /// an Advanced Filtering request for leads.
    pub async fn search_text_request(&self, text: &str) -> Result<SearchRequest> {
        let parsed = query::parse(text)?;
        let wanted = query::custom_field_names(&parsed);
        let fields = if wanted.is_empty() {
            Vec::new()
        } else {
            self.custom_field_schema("lead").await?
        };
        let resolve = |name: &str| {
            fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| f.id.clone())
        };
        Ok(query::compile(&parsed, chrono::Utc::now(), &resolve)?)
    }

    /// Runs a text query and returns the matching leads (whole objects).
    pub async fn search_text(&self, text: &str) -> Result<Vec<Value>> {
        let req = self
            .search_text_request(text)
            .await?
            .fields("lead", &["_all"]);
        self.search(req).try_collect().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_maps_to_company_with_domain_and_custom_fields() {
        let r = to_record(
            ObjectKind::Company,
            json!({"id": "lead_1", "name": "Acme", "url": "https://www.Acme.com/about", "custom.cf_a": 1,
                   "date_updated": "2024-05-01T12:00:00.000000+00:00"}),
        )
        .unwrap();
        let Record::Company(c) = r else {
            panic!("company")
        };
        assert_eq!(c.domain.as_deref(), Some("acme.com"));
        assert_eq!(c.custom.get("cf_a"), Some(&json!(1)));
        assert!(c.updated_at.is_some());
        assert_eq!(c.raw["id"], "lead_1");
    }

    #[test]
    fn deal_without_company_is_a_field_error() {
        let e = to_close(&Record::Deal(Deal::default())).unwrap_err();
        assert_eq!(e.field_errors()[0].field, "company_id");
    }
}
