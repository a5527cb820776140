//! The sync part of `crmkit demo`: Close, HubSpot and Salesforce sandboxes seeded from one
//! world, a real three-way sync between them on an in-memory store, and what it linked,
//! created, updated and which conflicts it settled how; then a second run that writes
//! nothing. The
//! tour syncs companies and people; deals and activities (which `crmkit sync` syncs with
//! `[deal]` and `[activity]` in `crmkit.toml`) are left out of it.

use std::sync::Arc;
use std::time::Duration;

use crmkit_core::{Connector, Crm, Result, SecretString};
use crmkit_store::Store;
use crmkit_sync::{Config, Engine};
use serde_json::{Map, Value, json};

use super::world;
use crate::config::Settings;
use crate::waits::Waits;

fn step(n: u32, text: &str) {
    println!("S{n}. {text}");
}

fn show(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "(empty)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    }
}

/// Runs the sync tour over a world of `companies` companies; its summary figures.
pub async fn tour(companies: usize, seed: u64) -> Result<Map<String, Value>> {
    println!(
        "\nSync: Close, HubSpot and Salesforce seeded from one world, kept in agreement all ways"
    );
    let sb = world::start(&world::Options {
        seed,
        companies,
        rate_limit: 1_000_000,
        ..world::Options::default()
    })
    .await?;
    let mut settings = Settings::default();
    settings.close.api_key = Some(SecretString::from("demo".to_string()));
    settings.close.base_url = Some(sb.close.api_url());
    settings.hubspot.access_token = Some(SecretString::from("demo".to_string()));
    settings.hubspot.base_url = Some(sb.hubspot.base_url());
    // The sandbox's connected app signs in with the client-credentials flow.
    settings.salesforce.instance_url = Some(sb.salesforce.instance_url());
    settings.salesforce.login_url = Some(sb.salesforce.instance_url());
    settings.salesforce.client_id = Some("crmkit-sandbox".to_string());
    settings.salesforce.client_secret = Some(SecretString::from("crmkit-sandbox".to_string()));
    let store = Store::open("sqlite::memory:")
        .await
        .map_err(|e| crmkit_core::Error::config(format!("sync store: {e}")))?;
    let mut config = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
    // The seeded Close opportunity statuses are ids no default stage map knows.
    config.deal.enabled = false;
    let conns: Vec<Arc<dyn Connector>> =
        super::connect::connectors(&settings, &config.sync.crms, &Waits::default()).await?;
    let engine_crms = config.sync.crms.clone();
    let engine = Engine::new(config, store.clone(), conns)?;
    step(
        1,
        &format!(
            "World seed {seed}: {companies} companies in Close, about 70 % of them in HubSpot under names without the legal suffix, about half in Salesforce"
        ),
    );
    let first = engine.run().await?;
    step(
        2,
        &format!(
            "First sync: read {}, linked {} existing records across the CRMs (by e-mail, domain or name), created {}, updated {}, {} ambiguous matches queued for review",
            first.read,
            first.linked,
            first.created,
            first.updated,
            first.ambiguous.len()
        ),
    );
    // Creates per CRM: the tour shows the sync went all three ways.
    let mut created: Vec<(Crm, usize)> = engine_crms.iter().map(|c| (*c, 0)).collect();
    for (_, c) in first.plans.iter().flat_map(|p| p.creates()) {
        if let Some(n) = created.iter_mut().find(|(crm, _)| *crm == c.target) {
            n.1 += 1;
        }
    }
    println!(
        "    created  {}",
        created
            .iter()
            .map(|(c, n)| format!("{n} in {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // What waits (a person whose company went to review) or failed, by record and reason.
    for e in first.errors.iter().take(3) {
        println!("    not yet   {e}");
    }
    let mut decided = 0;
    let mut shown = (0, 0, 0);
    for plan in &first.plans {
        for g in &plan.groups {
            if g.link.is_none() && g.ids.len() > 1 && shown.0 < 2 {
                shown.0 += 1;
                let ids: Vec<String> = g.ids.iter().map(|(c, id)| format!("{c}:{id}")).collect();
                println!("    linked   {} {}", plan.kind, ids.join(" <-> "));
            }
            for c in g.creates.iter().take(1) {
                if shown.1 < 2 {
                    shown.1 += 1;
                    let name = c.fields.get("name").cloned().flatten();
                    println!(
                        "    created  {} {} in {} from {}",
                        plan.kind,
                        show(&name),
                        c.target,
                        c.source
                    );
                }
            }
            for d in &g.decisions {
                if d.rule.is_some() {
                    decided += 1;
                    if shown.2 < 3 {
                        shown.2 += 1;
                        println!(
                            "    resolved {} {}: {} wins with {} ({})",
                            plan.kind,
                            d.field,
                            d.winner,
                            show(&d.value),
                            d.rule.clone().unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    step(
        3,
        &format!(
            "{decided} field conflicts settled by policy (default last_write_wins: each CRM's own modification time)"
        ),
    );
    // HubSpot's feed leaves the current second for the next run.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = engine.run().await?;
    step(
        4,
        &format!(
            "Second sync: read {}, recognised {} as our own writes or unchanged, wrote {} (nothing to do)",
            second.read,
            second.echoes,
            second.created + second.updated + second.deleted
        ),
    );
    store.close().await;
    let mut out = Map::new();
    out.insert("sync_linked".into(), json!(first.linked));
    out.insert("sync_created".into(), json!(first.created));
    for (crm, n) in &created {
        out.insert(format!("sync_created_{crm}"), json!(n));
    }
    out.insert("sync_updated".into(), json!(first.updated));
    // Records either run could not write yet, each reported by id and reason.
    out.insert(
        "sync_errors".into(),
        json!(first.errors.len() + second.errors.len()),
    );
    out.insert("sync_conflicts_settled".into(), json!(decided));
    out.insert(
        "sync_second_run_writes".into(),
        json!(second.created + second.updated + second.deleted),
    );
    Ok(out)
}
