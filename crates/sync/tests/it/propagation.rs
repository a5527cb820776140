//! Records and changes flow both ways; matched records are linked, not duplicated; a second
//! run writes nothing and our own writes are not echoed back.

use crmkit_core::{Crm, ObjectKind, RecordRef};
use serde_json::json;

use super::{Db, World, config};

#[tokio::test]
async fn records_flow_both_ways_and_a_second_run_writes_nothing() {
    records_flow_both_ways(Db::Sqlite).await;
}

#[tokio::test]
async fn records_flow_both_ways_on_postgres() {
    records_flow_both_ways(Db::Postgres).await;
}

async fn records_flow_both_ways(db: Db) {
    let w = World::on(db).await;
    let acme = w
        .close_lead(json!({"name": "Acme Inc", "url": "https://acme.com",
            "contacts": [{"name": "Ann Smith", "title": "CTO", "emails": [{"email": "Ann@Acme.com", "type": "office"}]}]}))
        .await;
    let globex = w
        .hs_create(
            "companies",
            json!({"name": "Globex", "domain": "globex.com", "description": "Makes globes"}),
        )
        .await;
    let bob = w
        .hs_create_linked(
            "contacts",
            json!({"firstname": "Bob", "lastname": "Jones", "email": "bob@globex.com"}),
            Some(&globex),
        )
        .await;
    let engine = w.engine(config());
    w.settle().await;
    let first = engine.run().await.expect("first run");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(
        first.created, 4,
        "Acme and Ann to HubSpot, Globex and Bob to Close: {first:?}"
    );

    // Acme in HubSpot, with Ann associated to it.
    let companies = w.hs_all("companies", "name,domain,website").await;
    let hs_acme = companies
        .iter()
        .find(|c| c["properties"]["name"] == "Acme Inc")
        .expect("Acme created in HubSpot");
    let hs_acme_id = hs_acme["id"].as_str().unwrap().to_string();
    let contacts = w
        .hs_all(
            "contacts",
            "email,firstname,lastname,jobtitle,associatedcompanyid",
        )
        .await;
    let ann = contacts
        .iter()
        .find(|c| c["properties"]["email"] == "ann@acme.com")
        .expect("Ann created in HubSpot");
    assert_eq!(ann["properties"]["jobtitle"], "CTO");
    let link = w
        .store
        .link_by_record(&RecordRef::new(
            Crm::Close,
            ObjectKind::Company,
            acme.clone(),
        ))
        .await
        .unwrap()
        .expect("Acme linked");
    assert_eq!(link.crm_id(Crm::HubSpot), Some(hs_acme_id.as_str()));

    // Globex and Bob in Close, Bob under Globex's lead.
    let leads = w.close_leads().await;
    let close_globex = leads
        .iter()
        .find(|l| l["name"] == "Globex")
        .expect("Globex in Close");
    assert_eq!(close_globex["description"], "Makes globes");
    let bob_link = w
        .store
        .link_by_record(&RecordRef::new(
            Crm::HubSpot,
            ObjectKind::Person,
            bob.clone(),
        ))
        .await
        .unwrap()
        .expect("Bob linked");
    let close_bob = w
        .close_get(&format!(
            "contact/{}/",
            bob_link.crm_id(Crm::Close).expect("Bob in Close")
        ))
        .await;
    assert_eq!(
        close_bob["lead_id"], close_globex["id"],
        "{:?} {leads:?}",
        first.plans[1]
    );
    assert_eq!(close_bob["name"], "Bob Jones");

    // Nothing changed since: nothing is written, and our own creates come back as echoes.
    w.settle().await;
    w.reset_stats();
    let second = engine.run().await.expect("second run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert!(!second.wrote(), "{second:?}");
    assert_eq!(w.writes(), Vec::<String>::new());
    assert!(
        second.echoes >= 1,
        "the records written by run one came back: {second:?}"
    );

    // A change on each side goes to the other, once.
    w.close_update(
        &format!("lead/{acme}/"),
        json!({"description": "Anvils and more"}),
    )
    .await;
    w.hs_update("companies", &globex, &[("name", "Globex Corporation")])
        .await;
    w.settle().await;
    w.reset_stats();
    let third = engine.run().await.expect("third run");
    assert!(third.errors.is_empty(), "{:?}", third.errors);
    assert_eq!(third.updated, 2, "{third:?}");
    let companies = w.hs_all("companies", "name,description").await;
    let hs_acme = companies
        .iter()
        .find(|c| c["id"] == hs_acme_id.as_str())
        .unwrap();
    assert_eq!(hs_acme["properties"]["description"], "Anvils and more");
    let close_globex = w
        .close_get(&format!("lead/{}/", close_globex["id"].as_str().unwrap()))
        .await;
    assert_eq!(close_globex["name"], "Globex Corporation");

    w.settle().await;
    w.reset_stats();
    let fourth = engine.run().await.expect("fourth run");
    assert!(
        !fourth.wrote(),
        "no echo of the third run's writes: {fourth:?}"
    );
    assert_eq!(w.writes(), Vec::<String>::new());
}

/// A contact moved to another lead in Close moves to the linked company in HubSpot, and the
/// next run writes nothing.
#[tokio::test]
async fn a_contact_moved_to_another_lead_moves_to_the_linked_company() {
    let w = World::new().await;
    let engine = w.engine(config());
    let globex = w
        .close_lead(json!({"name": "Globex", "url": "https://globex.com"}))
        .await;
    let (bob, hs_bob) = super::linked_bob(&w, &engine).await;
    let hs_globex = w
        .linked_id(
            &RecordRef::new(Crm::Close, ObjectKind::Company, globex.clone()),
            Crm::HubSpot,
        )
        .await;
    let hs_company = |w: &World| {
        let hs_bob = hs_bob.clone();
        let conn = w.connectors[1].clone();
        async move {
            match conn.get(ObjectKind::Person, &hs_bob).await {
                Ok(crmkit_core::Record::Person(p)) => p.company_id,
                other => panic!("HubSpot contact {hs_bob}: {other:?}"),
            }
        }
    };
    assert_ne!(hs_company(&w).await.as_deref(), Some(hs_globex.as_str()));

    w.close_update(&format!("contact/{bob}/"), json!({"lead_id": globex}))
        .await;
    w.settle().await;
    let moved = engine.run().await.expect("run after the move");
    assert!(moved.errors.is_empty(), "{:?}", moved.errors);
    assert_eq!(moved.updated, 1, "{moved:?}");
    assert_eq!(hs_company(&w).await.as_deref(), Some(hs_globex.as_str()));

    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run after the move is synced");
    assert!(!again.wrote(), "{again:?}");
    assert_eq!(w.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn matching_records_are_linked_and_ambiguous_ones_queued_never_merged() {
    let w = World::new().await;
    let close_initech = w
        .close_lead(json!({"name": "Initech, Inc.", "url": "https://www.initech.com/",
            "contacts": [{"name": "Peter Gibbons", "emails": [{"email": " Peter@Initech.com", "type": "office"}]}]}))
        .await;
    let hs_initech = w
        .hs_create(
            "companies",
            json!({"name": "Initech", "domain": "initech.com", "description": "TPS reports"}),
        )
        .await;
    w.hs_create_linked(
        "contacts",
        json!({"firstname": "Peter", "lastname": "Gibbons", "email": "peter@initech.com"}),
        Some(&hs_initech),
    )
    .await;
    // Two Close leads with the same normalised name and no domain: HubSpot's one is ambiguous.
    w.close_lead(json!({"name": "Umbrella LLC"})).await;
    w.close_lead(json!({"name": "Umbrella Corp"})).await;
    w.hs_create("companies", json!({"name": "Umbrella"})).await;

    let engine = w.engine(config());
    w.settle().await;
    let report = engine.run().await.expect("run");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.linked, 2, "Initech and Peter matched: {report:?}");
    let ambiguous: Vec<_> = report.ambiguous.iter().map(|a| a.record.crm).collect();
    assert_eq!(ambiguous.len(), 3, "{:?}", report.ambiguous);
    assert_eq!(
        report.created, 0,
        "nothing created for matched or ambiguous records"
    );
    assert_eq!(w.hs_sb.count("companies"), 2);
    assert_eq!(w.close_leads().await.len(), 3);

    // The match filled the empty field on the Close side.
    let lead = w.close_get(&format!("lead/{close_initech}/")).await;
    assert_eq!(lead["description"], "TPS reports");
    let link = w
        .store
        .link_by_record(&RecordRef::new(
            Crm::HubSpot,
            ObjectKind::Company,
            hs_initech,
        ))
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(link.crm_id(Crm::Close), Some(close_initech.as_str()));
}

#[tokio::test]
async fn deals_cross_with_their_stage_amount_and_company() {
    let w = World::new().await;
    let statuses = w.close_get("status/opportunity/").await;
    let status = |label: &str| close_status(&statuses, label);
    let mut c = deal_config(&statuses, true);
    c.deal.fields = ["name", "amount", "currency", "stage", "company"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // HubSpot deals have `deal_currency_code` out of the box
    // (https://knowledge.hubspot.com/properties/hubspots-default-deal-properties), and so
    // does the sandbox: nothing is defined here.
    let lead = w
        .close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.close
        .raw(&crmkit_core::http::ApiRequest::post(
            "opportunity/",
            json!({"lead_id": lead, "note": "Anvil order", "status_id": status("Demo Scheduled"),
                   "value": 150_050, "value_currency": "USD"}),
        ))
        .await
        .expect("opportunity");
    w.settle().await;
    let engine = w.engine(c);
    let first = engine.run().await.expect("run");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.created, 2, "the company, then its deal: {first:?}");
    let deals = w
        .hs_all("deals", "dealname,amount,dealstage,deal_currency_code")
        .await;
    assert_eq!(deals.len(), 1, "{deals:?}");
    let deal = &deals[0]["properties"];
    assert_eq!(deal["dealstage"], "presentationscheduled");
    assert_eq!(deal["dealname"], "Anvil order");
    let amount: f64 = deal["amount"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("amount");
    assert_eq!(amount, 1500.5);

    // Won in HubSpot: the opportunity follows.
    let hs_id = deals[0]["id"].as_str().expect("id").to_string();
    w.hs_update("deals", &hs_id, &[("dealstage", "closedwon")])
        .await;
    w.settle().await;
    let won = engine.run().await.expect("run");
    assert!(won.errors.is_empty(), "{:?}", won.errors);
    assert_eq!(won.updated, 1, "{won:?}");
    let opps = w.close_get(&format!("opportunity/?lead_id={lead}")).await;
    assert_eq!(
        opps["data"][0]["status_id"].as_str(),
        Some(status("Won").as_str())
    );

    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run");
    assert!(!again.wrote(), "{again:?}");
    assert_eq!(w.writes(), Vec::<String>::new());
}

/// The id of Close's opportunity status `label`.
fn close_status(statuses: &serde_json::Value, label: &str) -> String {
    statuses["data"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["label"] == label))
        .and_then(|s| s["id"].as_str())
        .unwrap_or_else(|| panic!("Close status {label}: {statuses}"))
        .to_string()
}

/// Deals synced with the default stages mapped to Close's `statuses` and HubSpot's, but
/// Qualified, and Proposal only `with_proposal`; retries due at once.
fn deal_config(statuses: &serde_json::Value, with_proposal: bool) -> crmkit_sync::Config {
    let mut c = config();
    c.deal.enabled = true;
    c.deal.fields = ["name", "stage", "company"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let stages = &mut c.deal.pipelines.get_mut("default").expect("default").stages;
    for (unified, close_label, hubspot) in [
        ("New", "Active", "appointmentscheduled"),
        ("Demo", "Demo Scheduled", "presentationscheduled"),
        ("Proposal", "Proposal Sent", "decisionmakerboughtin"),
        ("Won", "Won", "closedwon"),
        ("Lost", "Lost", "closedlost"),
    ] {
        let s = stages.get_mut(unified).expect("default stage");
        s.close = Some(close_status(statuses, close_label));
        s.hubspot = Some(hubspot.into());
    }
    stages.remove("Qualified");
    if !with_proposal {
        stages.remove("Proposal");
    }
    c.sync.retry.first_delay_seconds = 0;
    c
}

/// [`deal_config`] with deletions propagated.
fn propagating(statuses: &serde_json::Value, with_proposal: bool) -> crmkit_sync::Config {
    let mut c = deal_config(statuses, with_proposal);
    c.deal.delete = crmkit_sync::config::DeletePolicy::Propagate;
    c
}

/// After a waiting merge was followed: `lead` holds its two Close deals, none created for
/// the winner, and nothing is left on the retry list.
async fn merges_followed(w: &World, engine: &crmkit_sync::engine::Engine, lead: &str) {
    let opps = w.close_get(&format!("opportunity/?lead_id={lead}")).await;
    assert_eq!(
        opps["data"].as_array().map(Vec::len),
        Some(2),
        "no Close deal created for the winner: {opps}"
    );
    let left = w.store.retries(engine.pair(), None).await.expect("retries");
    assert!(
        left.is_empty(),
        "the merges' retry entries are gone: {left:?}"
    );
}

/// Creates a Close opportunity `note` on `lead` in Close status `status`: its id.
async fn close_opportunity(w: &World, lead: &str, note: &str, status: &str) -> String {
    w.close
        .raw(&crmkit_core::http::ApiRequest::post(
            "opportunity/",
            json!({"lead_id": lead, "note": note, "status_id": status}),
        ))
        .await
        .expect("opportunity")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// A Close opportunity on lead "Acme", synced to HubSpot, whose HubSpot deal (the loser)
/// is then merged into one in a stage the configuration does not map yet (the winner):
/// Close's statuses, the lead, the opportunity, the loser's and the winner's ids.
async fn deal_merged_into_an_unmapped_winner(
    w: &World,
    c: impl Fn(&serde_json::Value) -> crmkit_sync::Config,
) -> (serde_json::Value, String, String, String, String) {
    let statuses = w.close_get("status/opportunity/").await;
    let lead = w
        .close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    let opp = close_opportunity(w, &lead, "Anvil order", &close_status(&statuses, "Active")).await;
    w.settle().await;
    let first = w.engine(c(&statuses)).run().await.expect("run");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let loser = w
        .store
        .link_by_record(&RecordRef::new(Crm::Close, ObjectKind::Deal, opp.clone()))
        .await
        .expect("store")
        .expect("linked")
        .crm_id(Crm::HubSpot)
        .expect("in HubSpot")
        .to_string();
    let winner = w
        .hs_create(
            "deals",
            json!({"dealname": "Anvil order", "dealstage": "decisionmakerboughtin",
                "pipeline": "default"}),
        )
        .await;
    w.hs.raw(&crmkit_core::http::ApiRequest::post(
        "crm/v3/objects/deals/merge",
        json!({"primaryObjectId": winner, "objectIdToMerge": loser}),
    ))
    .await
    .expect("merged");
    w.settle().await;
    (statuses, lead, opp, loser, winner)
}

#[tokio::test]
async fn a_deal_merged_into_one_in_an_unmapped_stage_waits_without_holding_the_kind_and_is_relinked_once_mapped()
 {
    let w = World::new().await;
    let (statuses, lead, opp, loser, winner) =
        deal_merged_into_an_unmapped_winner(&w, |s| deal_config(s, true)).await;
    let opp_ref = RecordRef::new(Crm::Close, ObjectKind::Deal, opp.clone());
    let engine = w.engine(deal_config(&statuses, true));
    let unmapped = w.engine(deal_config(&statuses, false));
    let cursor = crmkit_store::CursorKey::new(unmapped.pair(), Crm::HubSpot, ObjectKind::Deal);
    let before = w.store.cursor(&cursor).await.expect("cursor");
    let waiting = unmapped.run().await.expect("run");
    assert_eq!(waiting.relinked, 0, "{waiting:?}");
    assert!(
        waiting.flagged.is_empty(),
        "not queued for review: {waiting:?}"
    );
    assert!(w.store.open_reviews(10).await.expect("store").is_empty());
    let link = w
        .store
        .link_by_record(&opp_ref)
        .await
        .expect("store")
        .expect("still linked");
    assert_ne!(link.hash(Crm::HubSpot), Some("deleted"), "{link:?}");
    // The winner waits on the retry list with the merge, so HubSpot's deal cursor moves past
    // the merge rather than holding every deal until the stage is mapped.
    assert_ne!(
        w.store.cursor(&cursor).await.expect("cursor"),
        before,
        "the HubSpot deal cursor is held by the unmappable merge winner: {waiting:?}"
    );
    let listed = w
        .store
        .retries(unmapped.pair(), Some(ObjectKind::Deal))
        .await
        .expect("retries");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].record,
        RecordRef::new(Crm::HubSpot, ObjectKind::Deal, winner.clone())
    );
    assert_eq!(listed[0].merged_from.as_deref(), Some(loser.as_str()));

    // Another deal, made meanwhile, syncs while the winner still waits.
    let other = close_opportunity(
        &w,
        &lead,
        "Hammer order",
        &close_status(&statuses, "Active"),
    )
    .await;
    w.settle().await;
    let meanwhile = unmapped.run().await.expect("run");
    assert_eq!(meanwhile.created, 1, "{meanwhile:?}");
    assert_eq!(meanwhile.relinked, 0, "{meanwhile:?}");
    assert!(
        w.store
            .link_by_record(&RecordRef::new(Crm::Close, ObjectKind::Deal, other))
            .await
            .expect("store")
            .and_then(|l| l.crm_id(Crm::HubSpot).map(str::to_string))
            .is_some(),
        "the other deal reaches HubSpot: {meanwhile:?}"
    );

    // Mapped: the merge, remembered with the winner, relinks the Close deal to the winner;
    // nothing is created again in Close, and the winner leaves the retry list.
    w.settle().await;
    let mapped = engine.run().await.expect("run");
    assert_eq!(mapped.relinked, 1, "{mapped:?}");
    assert_eq!(mapped.created, 0, "{mapped:?}");
    let link = w
        .store
        .link_by_record(&opp_ref)
        .await
        .expect("store")
        .expect("linked");
    assert_eq!(link.crm_id(Crm::HubSpot), Some(winner.as_str()));
    merges_followed(&w, &engine, &lead).await;
}

/// Two deals merged one after another into the same winner while its stage is unmapped:
/// both merges wait on the winner's retry entry, and once the stage is mapped both are
/// followed, one relinked to the winner and the other (the winner linked by then) queued for
/// review with its side noted gone, neither forgotten nor created again.
#[tokio::test]
async fn two_deals_merged_into_one_unmapped_winner_both_wait_and_are_both_followed_once_mapped() {
    let w = World::new().await;
    let (statuses, lead, first_opp, first_loser, winner) =
        deal_merged_into_an_unmapped_winner(&w, |s| deal_config(s, true)).await;
    let unmapped = w.engine(deal_config(&statuses, false));
    let waiting = unmapped.run().await.expect("run");
    assert_eq!(waiting.relinked, 0, "{waiting:?}");
    // A second Close deal reaches HubSpot, and its deal is merged into the same winner.
    let second_opp = close_opportunity(
        &w,
        &lead,
        "Hammer order",
        &close_status(&statuses, "Active"),
    )
    .await;
    w.settle().await;
    let created = unmapped.run().await.expect("run");
    assert_eq!(created.created, 1, "{created:?}");
    let second_ref = RecordRef::new(Crm::Close, ObjectKind::Deal, second_opp.clone());
    let second_loser = w.linked_id(&second_ref, Crm::HubSpot).await;
    w.hs.raw(&crmkit_core::http::ApiRequest::post(
        "crm/v3/objects/deals/merge",
        json!({"primaryObjectId": winner, "objectIdToMerge": second_loser}),
    ))
    .await
    .expect("merged");
    w.settle().await;
    let both = unmapped.run().await.expect("run");
    assert_eq!(both.relinked, 0, "{both:?}");
    assert!(both.flagged.is_empty(), "{both:?}");
    let listed = w
        .store
        .retries(unmapped.pair(), Some(ObjectKind::Deal))
        .await
        .expect("retries");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].record,
        RecordRef::new(Crm::HubSpot, ObjectKind::Deal, winner.clone())
    );
    assert_eq!(
        listed[0].merged_losers().collect::<Vec<_>>(),
        [first_loser.as_str(), second_loser.as_str()],
        "both merges wait on the winner: {listed:?}"
    );

    // Mapped: one merge relinks its Close deal to the winner; the winner is then linked, so
    // the other goes to review.
    w.settle().await;
    let engine = w.engine(deal_config(&statuses, true));
    let mapped = engine.run().await.expect("run");
    assert_eq!(mapped.relinked, 1, "{mapped:?}");
    assert_eq!(mapped.created, 0, "{mapped:?}");
    assert_eq!(mapped.flagged.len(), 1, "{mapped:?}");
    let first_ref = RecordRef::new(Crm::Close, ObjectKind::Deal, first_opp);
    let mut sides = Vec::new();
    for r in [&first_ref, &second_ref] {
        let link = w
            .store
            .link_by_record(r)
            .await
            .expect("store")
            .expect("linked");
        sides.push((
            link.crm_id(Crm::HubSpot).map(str::to_string),
            link.hash(Crm::HubSpot).map(str::to_string),
        ));
    }
    let relinked = sides
        .iter()
        .filter(|(id, _)| id.as_deref() == Some(winner.as_str()))
        .count();
    assert_eq!(
        relinked, 1,
        "one Close deal linked to the winner: {sides:?}"
    );
    let gone: Vec<&String> = sides
        .iter()
        .filter(|(_, h)| h.as_deref() == Some("deleted"))
        .filter_map(|(id, _)| id.as_ref())
        .collect();
    assert_eq!(gone.len(), 1, "the other's side is noted gone: {sides:?}");
    assert!(
        [&first_loser, &second_loser].contains(&gone[0]),
        "the side noted gone is a merged deal's: {sides:?}"
    );
    assert_eq!(
        mapped.flagged,
        [RecordRef::new(
            Crm::HubSpot,
            ObjectKind::Deal,
            gone[0].clone()
        )],
        "{mapped:?}"
    );
    let reviews = w.store.open_reviews(10).await.expect("store");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    merges_followed(&w, &engine, &lead).await;
}

/// While a merge waits for its winner to be mapped, the link names the merged record: an
/// edit of its counterpart waits with the merge, named as the reason, rather than reading
/// the merged record (which answers with the winner under another id, a failed read, or
/// "not found", flagged under `propagate` for a review saying to delete the linked
/// records). Once mapped, the merge is followed and the edit reaches the winner.
#[tokio::test]
async fn an_edit_linked_to_a_merged_record_waits_with_the_merge_and_flags_nothing() {
    let w = World::new().await;
    let (statuses, _, opp, _, winner) =
        deal_merged_into_an_unmapped_winner(&w, |s| propagating(s, true)).await;
    // Waiting is no failure: however long the stage stays unmapped, the edit is never given
    // up (one attempt would give up a failure).
    let mut c = propagating(&statuses, false);
    c.sync.retry.max_attempts = 1;
    let unmapped = w.engine(c);
    let waiting = unmapped.run().await.expect("run");
    assert_eq!(waiting.relinked, 0, "{waiting:?}");
    w.close_update(
        &format!("opportunity/{opp}/"),
        json!({"note": "Anvil order, two crates"}),
    )
    .await;
    w.settle().await;
    let edited = unmapped.run().await.expect("run");
    assert!(edited.flagged.is_empty(), "nothing flagged: {edited:?}");
    assert_eq!(edited.updated, 0, "{edited:?}");
    assert!(
        w.store.open_reviews(10).await.expect("store").is_empty(),
        "no review to delete anything"
    );
    let opp_ref = RecordRef::new(Crm::Close, ObjectKind::Deal, opp.clone());
    let link = w
        .store
        .link_by_record(&opp_ref)
        .await
        .expect("store")
        .expect("linked");
    assert_ne!(link.hash(Crm::HubSpot), Some("deleted"), "{link:?}");
    let listed = w
        .store
        .retries(unmapped.pair(), Some(ObjectKind::Deal))
        .await
        .expect("retries");
    let edit = listed
        .iter()
        .find(|e| e.record == opp_ref)
        .unwrap_or_else(|| panic!("the edit waits on the retry list: {listed:?}"));
    assert!(edit.reason.contains("merge"), "{edit:?}");
    for _ in 0..2 {
        let again = unmapped.run().await.expect("run");
        assert!(again.given_up.is_empty(), "{again:?}");
    }
    // Mapped: the merge is followed and the edit reaches the winner.
    w.settle().await;
    let mapped = w
        .engine(propagating(&statuses, true))
        .run()
        .await
        .expect("run");
    assert!(mapped.errors.is_empty(), "{mapped:?}");
    assert_eq!(mapped.relinked, 1, "{mapped:?}");
    assert!(mapped.flagged.is_empty(), "{mapped:?}");
    let deal =
        w.hs.raw(&crmkit_core::http::ApiRequest::get(format!(
            "crm/v3/objects/deals/{winner}?properties=dealname"
        )))
        .await
        .expect("read");
    assert_eq!(
        deal["properties"]["dealname"], "Anvil order, two crates",
        "{deal}"
    );
    assert!(w.store.open_reviews(10).await.expect("store").is_empty());
}

/// A deletion under `propagate` linked to a record merged into a waiting winner is not sent
/// to the merged id (which may answer for the winner, holding both deals): it goes to review.
#[tokio::test]
async fn a_deletion_linked_to_a_merged_record_goes_to_review_while_the_merge_waits() {
    let w = World::new().await;
    let (statuses, _, opp, _, winner) =
        deal_merged_into_an_unmapped_winner(&w, |s| propagating(s, true)).await;
    let unmapped = w.engine(propagating(&statuses, false));
    assert_eq!(unmapped.run().await.expect("run").relinked, 0);
    w.close
        .raw(&crmkit_core::http::ApiRequest::new(
            crmkit_core::http::Method::DELETE,
            format!("opportunity/{opp}/"),
        ))
        .await
        .expect("deleted");
    w.settle().await;
    let r = unmapped.run().await.expect("run");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert!(
        r.errors.iter().any(|e| e.contains("not propagated")),
        "{:?}",
        r.errors
    );
    let reviews = w.store.open_reviews(10).await.expect("store");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    w.hs.raw(&crmkit_core::http::ApiRequest::get(format!(
        "crm/v3/objects/deals/{winner}"
    )))
    .await
    .expect("the winner stays");
}

#[tokio::test]
async fn a_deal_in_an_unmapped_stage_is_synced_once_the_stage_is_mapped() {
    let w = World::new().await;
    let statuses = w.close_get("status/opportunity/").await;
    let status = |label: &str| close_status(&statuses, label);
    let deal_config = |with_proposal: bool| deal_config(&statuses, with_proposal);
    let lead = w
        .close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    close_opportunity(&w, &lead, "Anvil order", &status("Proposal Sent")).await;
    w.settle().await;
    let first = w.engine(deal_config(false)).run().await.expect("run");
    assert!(
        first.errors.iter().any(|e| e.contains("stage map")),
        "the unmapped stage is reported: {:?}",
        first.errors
    );
    assert_eq!(w.hs_all("deals", "dealname").await.len(), 0);
    // The deal is on the retry list, so the Close deal cursor moves on past it: one
    // unmappable record does not stop the kind.
    let engine = w.engine(deal_config(false));
    let key =
        crmkit_store::CursorKey::new(engine.pair(), Crm::Close, crmkit_core::ObjectKind::Deal);
    assert!(
        w.store.cursor(&key).await.expect("cursor").is_some(),
        "the Close deal cursor is held by one unmappable deal"
    );
    let listed = w
        .store
        .retries(engine.pair(), Some(crmkit_core::ObjectKind::Deal))
        .await
        .expect("retries");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].record.crm, Crm::Close);
    assert!(listed[0].reason.contains("stage map"), "{listed:?}");

    // The stage gets mapped: the deal, unchanged since, is read again (from the retry list,
    // or the feed's overlap window) and crosses, and leaves the list.
    w.settle().await;
    let second = w.engine(deal_config(true)).run().await.expect("run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let deals = w.hs_all("deals", "dealname,dealstage").await;
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0]["properties"]["dealstage"], "decisionmakerboughtin");
    assert!(
        w.store
            .retries(engine.pair(), None)
            .await
            .expect("retries")
            .is_empty()
    );
}
