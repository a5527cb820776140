//! Deterministic seed data: statuses, a pipeline, custom fields, and the shared world's
//! companies as leads with contacts, opportunities and activities that look like a real
//! sales team's.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::data::{Data, stamp};
use super::kinds::Kind;
use super::writes::create;
use crate::names;
use crate::shared::world::{Crm, DEAL_STAGES, World};

/// Ids of the seeded configuration, for callers that want to refer to it.
#[derive(Debug, Clone)]
pub struct SeedIds {
    /// The `Industry` lead custom field (single choice).
    pub industry_field: String,
    /// The `Trades` lead custom field (multiple choices).
    pub trades_field: String,
    /// The `Sales` pipeline.
    pub pipeline: String,
}

fn made(data: &mut Data, kind: Kind, body: Value) -> Value {
    create(data, kind, body, "/seed")
        .map(|c| c.body)
        .unwrap_or_else(|e| panic!("seed data is valid: {:?}", e.body()))
}

fn backdate(data: &mut Data, table: &'static str, id: &Value, at: DateTime<Utc>) {
    data.update_row(table, id.as_str().unwrap_or_default(), |row| {
        row["date_created"] = json!(stamp(at));
        row["date_updated"] = json!(stamp(at));
    });
}

/// Fills `data` with `leads` leads of the shared world of `seed` (the world the other
/// sandboxes started with the same seed hold their share of) and the configuration they use.
pub(crate) fn seed(data: &mut Data, seed: u64, leads: usize) -> SeedIds {
    data.seeding = true;
    for label in ["Potential", "Qualified", "Customer", "Bad Fit"] {
        made(data, Kind::LeadStatus, json!({"label": label}));
    }
    let pipeline = made(data, Kind::Pipeline, json!({"name": "Sales"}))["id"].clone();
    let mut opp_statuses = Vec::new();
    // The world's deal stages, in order; the last two are closed.
    for (n, label) in DEAL_STAGES.iter().enumerate() {
        let ty = match DEAL_STAGES.len() - n {
            2 => "won",
            1 => "lost",
            _ => "active",
        };
        let s = made(
            data,
            Kind::OpportunityStatus,
            json!({"label": label, "type": ty, "pipeline_id": pipeline}),
        );
        opp_statuses.push(s["id"].clone());
    }
    let industry = made(
        data,
        Kind::CustomField("lead"),
        json!({"name": "Industry", "type": "choices", "choices": names::INDUSTRIES}),
    )["id"]
        .clone();
    let trades = made(data, Kind::CustomField("lead"), json!({"name": "Trades", "type": "choices", "choices": names::TRADES, "accepts_multiple_values": true}))["id"].clone();
    let ind_key = format!("custom.{}", industry.as_str().unwrap_or_default());
    let trades_key = format!("custom.{}", trades.as_str().unwrap_or_default());
    // Fixed origin so the same seed gives the same data on every run.
    let origin = DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .expect("valid constant")
        .with_timezone(&Utc);
    let world = World::generate(seed, leads);
    for company in world.members(Crm::Close) {
        let i = company.index;
        let contacts: Vec<Value> = world.people[company.people.clone()]
            .iter()
            .map(|p| {
                json!({"name": p.name, "title": p.title,
                       "emails": [{"type": "office", "email": p.email}],
                       "phones": [{"type": "office", "phone": world.phone(Crm::Close, p)}]})
            })
            .collect();
        let name = world.company_name(Crm::Close, company);
        let mut body = json!({
            "name": name,
            "url": format!("https://{}", company.domain),
            "description": format!("{name} in the {} market.", company.industry),
            "contacts": contacts,
        });
        body[ind_key.as_str()] = json!(company.industry);
        body[trades_key.as_str()] = json!(company.trades);
        let at = origin + Duration::minutes(company.created_minute);
        let lead = made(data, Kind::Lead, body);
        let lead_id = lead["id"].clone();
        backdate(data, "lead", &lead_id, at);
        for c in lead["contacts"].as_array().into_iter().flatten() {
            backdate(data, "contact", &c["id"], at);
        }
        for deal in &world.deals[company.deals.clone()] {
            let status = opp_statuses[deal.stage.min(opp_statuses.len() - 1)].clone();
            let o = made(
                data,
                Kind::Opportunity,
                json!({"lead_id": lead_id, "status_id": status, "value": deal.value_cents,
                "value_period": "one_time", "confidence": deal.confidence, "note": "Seeded opportunity"}),
            );
            backdate(data, "opportunity", &o["id"], at + Duration::hours(2));
        }
        let company = name;
        let contact_id = lead["contacts"][0]["id"].clone();
        let n = made(
            data,
            Kind::Activity(Some("note")),
            json!({"lead_id": lead_id, "note": format!("Intro call notes for {company}.")}),
        );
        backdate(data, "activity", &n["id"], at + Duration::hours(1));
        if i % 2 == 0 {
            let duration = data.rng.u32(30..=1800);
            let c = made(
                data,
                Kind::Activity(Some("call")),
                json!({"lead_id": lead_id, "contact_id": contact_id,
                "direction": "outbound", "duration": duration, "note": "Discovery call"}),
            );
            backdate(data, "activity", &c["id"], at + Duration::hours(3));
        }
        if i % 3 == 0 {
            let e = made(
                data,
                Kind::Activity(Some("email")),
                json!({"lead_id": lead_id, "contact_id": contact_id,
                "status": "sent", "subject": "Following up", "body_text": "Thanks for your time today."}),
            );
            backdate(data, "activity", &e["id"], at + Duration::hours(4));
        }
        if i % 5 == 0 {
            let id = data.new_id("acti");
            let when = stamp(at + Duration::days(2));
            let meeting = json!({"id": id, "_type": "Meeting", "lead_id": lead_id, "contact_id": contact_id,
                "title": format!("Site visit at {company}"), "note": "", "starts_at": when, "activity_at": when,
                "duration": 3600, "organization_id": data.org_id, "user_id": data.user_id,
                "date_created": when, "date_updated": when});
            data.insert("activity", meeting);
        }
    }
    data.events.clear();
    data.seeding = false;
    SeedIds {
        industry_field: industry.as_str().unwrap_or_default().to_string(),
        trades_field: trades.as_str().unwrap_or_default().to_string(),
        pipeline: pipeline.as_str().unwrap_or_default().to_string(),
    }
}
