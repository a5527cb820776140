//! Seeding from the shared world: the companies Salesforce holds become Accounts, their
//! people Contacts (phones kept as typed, `(650) 555-1234`) and their deals Opportunities
//! with a standard stage, amount and close date; of the companies it does not hold, every
//! fourth has its first person as an open Lead.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::data::Data;
use super::schema;
use crate::shared::world::{Crm, World};

/// Standard stages for the world's deal stages (Active, Demo Scheduled, Proposal Sent,
/// Won, Lost).
const STAGES: &[&str] = &[
    "Prospecting",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Closed Won",
    "Closed Lost",
];

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Fills `data` with the Salesforce share of a world of `companies` companies; linear in
/// its size.
pub(crate) fn seed(data: &mut Data, seed: u64, companies: usize) {
    let (Some(account_o), Some(contact_o), Some(opp_o), Some(lead_o)) = (
        schema::object("Account"),
        schema::object("Contact"),
        schema::object("Opportunity"),
        schema::object("Lead"),
    ) else {
        return;
    };
    if companies == 0 {
        return;
    }
    let world = World::generate(seed, companies);
    // Fixed origin so the same seed gives the same data on every run.
    let origin = DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    for company in world
        .companies
        .iter()
        .filter(|c| c.index % 4 == 0 && !world.holds(Crm::Salesforce, c.index))
    {
        let Some(p) = world.people.get(company.people.start) else {
            continue;
        };
        let (first, last) = p.name.split_once(' ').unwrap_or(("", p.name.as_str()));
        data.seed(
            lead_o,
            fields(&[
                ("FirstName", json!(first)),
                ("LastName", json!(last)),
                (
                    "Company",
                    json!(world.company_name(Crm::Salesforce, company)),
                ),
                ("Email", json!(p.email)),
                ("Title", json!(p.title)),
                ("Phone", json!(world.phone(Crm::Salesforce, p))),
                ("Industry", json!(company.industry)),
                ("LeadSource", json!("Web")),
            ]),
            origin + Duration::minutes(company.created_minute),
        );
    }
    for company in world.members(Crm::Salesforce) {
        let at = origin + Duration::minutes(company.created_minute);
        let account = data.seed(
            account_o,
            fields(&[
                ("Name", json!(world.company_name(Crm::Salesforce, company))),
                ("Website", json!(format!("https://{}", company.domain))),
                ("Industry", json!(company.industry)),
                ("Type", json!("Prospect")),
            ]),
            at,
        );
        for (i, p) in world.people[company.people.clone()].iter().enumerate() {
            let (first, last) = p.name.split_once(' ').unwrap_or(("", p.name.as_str()));
            data.seed(
                contact_o,
                fields(&[
                    ("FirstName", json!(first)),
                    ("LastName", json!(last)),
                    ("Email", json!(p.email)),
                    ("Title", json!(p.title)),
                    ("Phone", json!(world.phone(Crm::Salesforce, p))),
                    ("AccountId", json!(account)),
                ]),
                at + Duration::seconds(i as i64 + 1),
            );
        }
        for (i, d) in world.deals[company.deals.clone()].iter().enumerate() {
            let stage = STAGES.get(d.stage).copied().unwrap_or("Prospecting");
            let created = at + Duration::seconds(100 + i as i64);
            data.seed(
                opp_o,
                fields(&[
                    (
                        "Name",
                        json!(format!(
                            "{} deal {}",
                            world.company_name(Crm::Salesforce, company),
                            i + 1
                        )),
                    ),
                    ("AccountId", json!(account)),
                    ("StageName", json!(stage)),
                    ("Amount", json!(d.value_cents as f64 / 100.0)),
                    (
                        "CloseDate",
                        json!(
                            (created + Duration::days(30))
                                .format("%Y-%m-%d")
                                .to_string()
                        ),
                    ),
                ]),
                created,
            );
        }
    }
}
