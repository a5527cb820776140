//! Seeding from the shared world: the companies HubSpot holds, their contacts and deals,
//! associated both ways with HubSpot's default association type ids.

use chrono::{DateTime, Duration, Utc};

use super::data::{Assoc, Data};
use super::kinds::ObjectType;
use crate::shared::world::{Crm, World};

/// Deal stage ids of the default pipeline for the world's stages (Active, Demo Scheduled,
/// Proposal Sent, Won, Lost).
const STAGES: &[&str] = &[
    "appointmentscheduled",
    "presentationscheduled",
    "contractsent",
    "closedwon",
    "closedlost",
];

fn link(
    data: &mut Data,
    from: &'static ObjectType,
    from_id: &str,
    to: &'static ObjectType,
    to_id: &str,
    there: u32,
    back: u32,
) {
    data.associate(
        from,
        from_id,
        Assoc {
            to_type: to.plural,
            to_id: to_id.to_string(),
            type_id: there,
        },
    );
    data.associate(
        to,
        to_id,
        Assoc {
            to_type: from.plural,
            to_id: from_id.to_string(),
            type_id: back,
        },
    );
}

fn id_of(row: &serde_json::Value) -> String {
    row["id"].as_str().unwrap_or_default().to_string()
}

/// Fills `data` with the HubSpot share of a world of `companies` companies.
pub(crate) fn seed(data: &mut Data, seed: u64, companies: usize) {
    let (Some(company_t), Some(contact_t), Some(deal_t)) = (
        ObjectType::parse("companies"),
        ObjectType::parse("contacts"),
        ObjectType::parse("deals"),
    ) else {
        return;
    };
    let world = World::generate(seed, companies);
    // Fixed origin so the same seed gives the same data on every run.
    let origin = DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    for company in world.members(Crm::HubSpot) {
        let at = origin + Duration::minutes(company.created_minute);
        let props = vec![
            (
                "name".to_string(),
                world.company_name(Crm::HubSpot, company),
            ),
            ("domain".to_string(), company.domain.clone()),
        ];
        let Ok(row) = data.create(company_t, props, Some(at)) else {
            continue;
        };
        let company_id = id_of(&row);
        let mut people = vec![];
        for (i, p) in world.people[company.people.clone()].iter().enumerate() {
            let (first, last) = p.name.split_once(' ').unwrap_or((p.name.as_str(), ""));
            let props = vec![
                ("firstname".to_string(), first.to_string()),
                ("lastname".to_string(), last.to_string()),
                ("email".to_string(), p.email.clone()),
                ("jobtitle".to_string(), p.title.clone()),
                ("phone".to_string(), world.phone(Crm::HubSpot, p)),
            ];
            let Ok(row) = data.create(contact_t, props, Some(at + Duration::seconds(i as i64 + 1)))
            else {
                continue;
            };
            let id = id_of(&row);
            // contact → company 279 / company → contact 280 (unlabeled defaults, association-types table).
            link(data, contact_t, &id, company_t, &company_id, 279, 280);
            people.push(id);
        }
        for (i, d) in world.deals[company.deals.clone()].iter().enumerate() {
            let props = vec![
                (
                    "dealname".to_string(),
                    format!(
                        "{} deal {}",
                        world.company_name(Crm::HubSpot, company),
                        i + 1
                    ),
                ),
                (
                    "amount".to_string(),
                    format!("{}.{:02}", d.value_cents / 100, d.value_cents % 100),
                ),
                ("pipeline".to_string(), "default".to_string()),
                (
                    "dealstage".to_string(),
                    STAGES
                        .get(d.stage)
                        .copied()
                        .unwrap_or("appointmentscheduled")
                        .to_string(),
                ),
            ];
            let Ok(row) = data.create(deal_t, props, Some(at + Duration::seconds(100 + i as i64)))
            else {
                continue;
            };
            let id = id_of(&row);
            // deal → company 341 / company → deal 342; deal → contact 3 / contact → deal 4.
            link(data, deal_t, &id, company_t, &company_id, 341, 342);
            for person in &people {
                link(data, deal_t, &id, contact_t, person, 3, 4);
            }
        }
    }
}
