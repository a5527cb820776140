//! `crmkit sync --dry-run`, `sync`, `sync status`, `sync retry list|reset`, `links show`,
//! `conflicts list|resolve` and `init`, run as the binary against sandboxes of one world.

use crmkit_core::Crm;
use crmkit_core::http::ApiRequest;
use crmkit_sandbox::faults::Faults;

use crate::sync_support::*;

async fn run_async(pair: &Pair, dir: &Scratch, args: &[&str]) -> (bool, String, String) {
    let mut child = command(pair, &dir.0, &dir.sqlite(), args)
        .spawn()
        .expect("crmkit starts");
    let status = wait(&mut child).await;
    let out = child.wait_with_output().expect("output");
    (
        status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `crmkit conflicts resolve <id> --value <value>`, as [`run_async`] runs it.
async fn choose(pair: &Pair, dir: &Scratch, id: &str, value: &str) -> (bool, String, String) {
    run_async(pair, dir, &["conflicts", "resolve", id, "--value", value]).await
}

/// `crmkit conflicts resolve <id> --take <crm>`, as [`run_async`] runs it.
async fn take(pair: &Pair, dir: &Scratch, id: &str, crm: &str) -> (bool, String, String) {
    run_async(pair, dir, &["conflicts", "resolve", id, "--take", crm]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_then_sync_links_and_manual_conflicts_are_resolved() {
    let pair = pair(5, 8, Faults::default()).await;
    let dir = Scratch::new("commands");
    // Company names differ between the CRMs by design: with `manual` each is queued.
    std::fs::write(
        dir.0.join("crmkit.toml"),
        "[sync]\ncrms = [\"close\", \"hubspot\"]\n\n[company]\nfields = [\"name\", \"domain\"]\n\n[company.conflict]\npolicy = \"manual\"\n\n[person]\nfields = [\"name\"]\nenabled = false\n\n[deal]\nfields = [\"name\"]\nenabled = false\n",
    )
    .expect("config");
    let before = hubspot_contents(&pair).await;
    let (ok, plan, err) = run_async(&pair, &dir, &["sync", "--dry-run"]).await;
    assert!(ok, "{err}");
    assert!(plan.contains("Plan (dry run"), "{plan}");
    assert!(
        plan.contains("create  hubspot company from close:company:lead_"),
        "{plan}"
    );
    assert!(plan.contains("link    close:"), "{plan}");
    assert!(plan.contains("conflict close:"), "{plan}");
    assert_eq!(
        hubspot_contents(&pair).await,
        before,
        "a dry run writes nothing"
    );
    let (ok, status, err) = run_async(&pair, &dir, &["sync", "status"]).await;
    assert!(ok, "{err}");
    assert!(
        !status.contains("succeeded"),
        "no run stored by the dry run: {status}"
    );

    let (ok, out, err) = run_async(&pair, &dir, &["sync", "--report", "report.json"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("│ hubspot"), "summary table: {out}");
    let r = report(&dir.0);
    assert!(
        r["created"].as_u64() > Some(0) && r["linked"].as_u64() > Some(0),
        "{r}"
    );
    let queued = r["conflicts"].as_array().map(Vec::len).unwrap_or(0);
    assert!(queued > 0, "name conflicts queued: {r}");

    let (ok, status, err) = run_async(&pair, &dir, &["sync", "status"]).await;
    assert!(ok, "{err}");
    assert!(status.contains("succeeded"), "{status}");
    assert!(
        status.contains(&format!("Open conflicts: {queued}")),
        "{status}"
    );
    // The retry list is shown, and the run report lists what was given up.
    assert!(
        status.contains("Retry list: 0 waiting, 0 given up"),
        "{status}"
    );
    assert_eq!(r["given_up"], serde_json::json!([]), "{r}");

    // A linked company, shown by its Close id.
    let lead = r["conflicts"][0]["records"]
        .as_array()
        .and_then(|rs| rs.iter().find(|x| x["crm"] == "close"))
        .and_then(|x| x["id"].as_str())
        .expect("a Close id in the conflict")
        .to_string();
    let (ok, shown, err) = run_async(&pair, &dir, &["links", "show", &lead]).await;
    assert!(ok, "{err}");
    assert!(
        shown.contains(&lead) && shown.contains("hubspot"),
        "{shown}"
    );
    assert!(shown.contains("audit trail"), "{shown}");

    let id = first_conflict(&pair, &dir).await;
    let (ok, out, err) = take(&pair, &dir, &id, "close").await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("written to hubspot:"), "{out}");
    let (ok, list, _) = run_async(&pair, &dir, &["conflicts", "list"]).await;
    assert!(
        ok && !list.contains(&id),
        "resolved conflicts leave the list: {list}"
    );

    // A conflict whose values changed since it was queued (a person renamed the Close
    // company meanwhile) is refused: its stored HubSpot value would overwrite the rename.
    let store = crmkit_store::Store::open(&dir.sqlite())
        .await
        .expect("store opens");
    let open = store.open_conflicts(100).await.expect("conflicts");
    let stale = open.first().expect("another name conflict open");
    let link = store
        .link(&stale.link)
        .await
        .expect("store")
        .expect("linked");
    let lead = link.crm_id(Crm::Close).expect("in Close").to_string();
    let close = close_client(&pair);
    close
        .raw(&ApiRequest::put(
            format!("lead/{lead}/"),
            serde_json::json!({"name": "Renamed meanwhile"}),
        ))
        .await
        .expect("renamed");
    let stale_id = stale.id.to_string();
    let (ok, out, err) = take(&pair, &dir, &stale_id, "hubspot").await;
    assert!(!ok, "refused: {out}\n{err}");
    assert!(
        err.contains("out of date")
            && err.contains(&lead)
            && err.contains("name")
            && err.contains("Renamed meanwhile"),
        "which record and field changed: {err}"
    );
    let now = close
        .raw(&ApiRequest::get(format!("lead/{lead}/")))
        .await
        .expect("read");
    assert_eq!(now["name"], "Renamed meanwhile", "the rename is kept");
    let still = store
        .conflict(&stale.id)
        .await
        .expect("store")
        .expect("kept");
    assert_eq!(still.status, crmkit_store::ConflictStatus::Open);
}

/// The id of the first conflict `crmkit conflicts list` shows.
async fn first_conflict(pair: &Pair, dir: &Scratch) -> String {
    let (ok, list, err) = run_async(pair, dir, &["conflicts", "list"]).await;
    assert!(ok, "{err}");
    list.lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.len() == 36 && w.chars().filter(|c| *c == '-').count() == 4)
        })
        .unwrap_or_else(|| panic!("a conflict id listed: {list}"))
        .to_string()
}

/// Companies synced once between Close and HubSpot under the `manual` rule (the sandbox's
/// matched companies differ in name): the store, the first conflict queued and its link.
async fn manual_company_conflict(
    pair: &Pair,
    dir: &Scratch,
) -> (
    crmkit_store::Store,
    crmkit_store::Conflict,
    crmkit_store::Link,
) {
    std::fs::write(
        dir.0.join("crmkit.toml"),
        "[sync]\ncrms = [\"close\", \"hubspot\"]\n\n[company]\nfields = [\"name\", \"domain\"]\n\n[company.conflict]\npolicy = \"manual\"\n\n[person]\nfields = [\"name\"]\nenabled = false\n\n[deal]\nfields = [\"name\"]\nenabled = false\n",
    )
    .expect("config");
    let (ok, out, err) = run_async(pair, dir, &["sync"]).await;
    assert!(ok, "{out}\n{err}");
    let id = first_conflict(pair, dir).await;
    let store = crmkit_store::Store::open(&dir.sqlite())
        .await
        .expect("store opens");
    let conflict = store
        .conflict(&crmkit_store::ConflictId::new(&id))
        .await
        .expect("store")
        .expect("queued");
    let link = store
        .link(&conflict.link)
        .await
        .expect("store")
        .expect("linked");
    (store, conflict, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_without_a_base_keeps_none_after_a_resolve() {
    let pair = pair(5, 4, Faults::default()).await;
    let dir = Scratch::new("resolve-baseless");
    let (store, conflict, link) = manual_company_conflict(&pair, &dir).await;
    // HubSpot's side as an older crmkit left a create's source: no base stored.
    let link = store
        .update_link(
            &link,
            &crmkit_store::LinkUpdate::new().fields(Crm::HubSpot, None),
        )
        .await
        .expect("base dropped");
    let (ok, out, err) = choose(&pair, &dir, conflict.id.as_ref(), "Chosen Name").await;
    assert!(ok, "{out}\n{err}");
    let after = store.link(&link.id).await.expect("store").expect("linked");
    // Its whole record taken as synced, a domain never synced from there would look
    // agreed; it stays new to the link, planned by the rule next run.
    assert_eq!(after.fields(Crm::HubSpot), None, "{after:?}");
    assert_eq!(
        after.fields(Crm::Close).and_then(|b| b.get("name")),
        Some(&serde_json::json!("Chosen Name")),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_known_deleted_is_neither_read_nor_written_by_a_resolve() {
    let pair = pair(5, 4, Faults::default()).await;
    let dir = Scratch::new("resolve-deleted");
    let (store, conflict, link) = manual_company_conflict(&pair, &dir).await;
    let company = link.crm_id(Crm::HubSpot).expect("in HubSpot").to_string();
    let read_hs = || async {
        hubspot_client(&pair)
            .raw(&ApiRequest::get(format!(
                "crm/v3/objects/companies/{company}?properties=name"
            )))
            .await
            .expect("read")["properties"]["name"]
            .clone()
    };
    let before = read_hs().await;
    // The link knows HubSpot's company as deleted (as a sync marks one gone there).
    store
        .update_link(
            &link,
            &crmkit_store::LinkUpdate::new()
                .hash(Crm::HubSpot, Some(crmkit_sync::plan::DELETED.to_string())),
        )
        .await
        .expect("marked deleted");
    let (ok, out, err) = choose(&pair, &dir, conflict.id.as_ref(), "Chosen Name").await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!("skipped hubspot:{company}, deleted there")),
        "{out}"
    );
    assert_eq!(read_hs().await, before, "HubSpot's record is not written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_whose_second_write_fails_leaves_the_next_sync_to_finish_it() {
    let pair = pair(5, 4, Faults::default()).await;
    let dir = Scratch::new("resolve-partial");
    let (store, conflict, link) = manual_company_conflict(&pair, &dir).await;
    let id = conflict.id.as_ref().to_string();
    let lead = link.crm_id(Crm::Close).expect("in Close").to_string();
    let company = link.crm_id(Crm::HubSpot).expect("in HubSpot").to_string();
    // Close is written first; HubSpot's batch update then fails on every attempt.
    pair.hubspot.set_faults(Faults {
        rate_500: 1.0,
        route: Some("POST /crm/v3/objects/companies/batch/update".into()),
        ..Faults::default()
    });
    let (ok, out, err) = choose(&pair, &dir, &id, "Chosen Name").await;
    assert!(!ok, "the failed write is an error: {out}\n{err}");
    assert!(
        err.contains(&format!(
            "written to close:{lead}, then the write to hubspot {company} failed"
        )) && err.contains("stays open"),
        "what was written, what failed and what comes next: {err}"
    );
    let still = store
        .conflict(&conflict.id)
        .await
        .expect("store")
        .expect("kept");
    assert_eq!(still.status, crmkit_store::ConflictStatus::Open);
    // HubSpot answers again: the next sync sees Close's new name as its change and
    // carries it over, and closes the conflict; nothing is left apart in silence.
    pair.hubspot.set_faults(Faults::default());
    let (ok, out, err) = run_async(&pair, &dir, &["sync"]).await;
    assert!(ok, "{out}\n{err}");
    let close = close_client(&pair)
        .raw(&ApiRequest::get(format!("lead/{lead}/")))
        .await
        .expect("read");
    assert_eq!(close["name"], "Chosen Name", "{close}");
    let hs = hubspot_client(&pair)
        .raw(&ApiRequest::get(format!(
            "crm/v3/objects/companies/{company}?properties=name"
        )))
        .await
        .expect("read");
    assert_eq!(hs["properties"]["name"], "Chosen Name", "{hs}");
    let closed = store
        .conflict(&conflict.id)
        .await
        .expect("store")
        .expect("kept");
    assert_ne!(closed.status, crmkit_store::ConflictStatus::Open);
}

/// Drops `crm`'s stored hash from `link`, keeping its base: the side as a Close lead merge or
/// a HubSpot merge followed by a sync leaves a relinked winner (`Engine::relink`), with no
/// synced state of its own yet.
async fn as_relinked_winner(
    store: &crmkit_store::Store,
    link: &crmkit_store::Link,
    crm: Crm,
    base: Option<serde_json::Value>,
) -> crmkit_store::Link {
    let mut update = crmkit_store::LinkUpdate::new().hash(crm, None);
    if base.is_some() {
        update = update.fields(crm, base);
    }
    let link = store.update_link(link, &update).await.expect("store");
    assert_eq!(link.hash(crm), None, "{link:?}");
    assert!(link.fields(crm).is_some(), "{link:?}");
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_writes_sides_with_a_synced_state_before_a_relinked_one() {
    let pair = pair(5, 4, Faults::default()).await;
    let dir = Scratch::new("resolve-order");
    let (store, conflict, link) = manual_company_conflict(&pair, &dir).await;
    let lead = link.crm_id(Crm::Close).expect("in Close").to_string();
    let company = link.crm_id(Crm::HubSpot).expect("in HubSpot").to_string();
    // Close, first of `[sync] crms`, is the side without a synced state: HubSpot's is
    // written first. Close's write then fails on every attempt.
    as_relinked_winner(&store, &link, Crm::Close, None).await;
    pair.close.set_faults(Faults {
        rate_500: 1.0,
        route: Some("PUT /lead/*".into()),
        ..Faults::default()
    });
    let (ok, out, err) = choose(&pair, &dir, conflict.id.as_ref(), "Chosen Name").await;
    pair.close.set_faults(Faults::default());
    assert!(!ok, "the failed write is an error: {out}\n{err}");
    assert!(
        err.contains(&format!(
            "written to hubspot:{company}, then the write to close {lead} failed"
        )),
        "HubSpot, with a synced state, written before Close: {err}"
    );
    let hs = hubspot_client(&pair)
        .raw(&ApiRequest::get(format!(
            "crm/v3/objects/companies/{company}?properties=name"
        )))
        .await
        .expect("read");
    assert_eq!(hs["properties"]["name"], "Chosen Name", "{hs}");
    let still = store
        .conflict(&conflict.id)
        .await
        .expect("store")
        .expect("kept");
    assert_eq!(still.status, crmkit_store::ConflictStatus::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_joins_the_written_field_to_a_relinked_winners_base_and_stores_no_hash() {
    let pair = pair(5, 4, Faults::default()).await;
    let dir = Scratch::new("resolve-relinked");
    let (store, conflict, link) = manual_company_conflict(&pair, &dir).await;
    // A relinked winner's base holds none of the fields only it holds (its domain here).
    let base = serde_json::json!({"name": conflict.values[&Crm::Close]});
    let link = as_relinked_winner(&store, &link, Crm::Close, Some(base)).await;
    let (ok, out, err) = choose(&pair, &dir, conflict.id.as_ref(), "Chosen Name").await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("close:") && out.contains("hubspot:"), "{out}");
    let after = store.link(&link.id).await.expect("store").expect("linked");
    // With a hash it would stop being a relinked winner; with its read-back as base, its
    // domain would look synced rather than its own addition.
    assert_eq!(after.hash(Crm::Close), None, "{after:?}");
    assert_eq!(
        after.fields(Crm::Close),
        Some(&serde_json::json!({"name": "Chosen Name"})),
        "{after:?}"
    );
    assert!(after.hash(Crm::HubSpot).is_some(), "{after:?}");
    assert_eq!(
        after.fields(Crm::HubSpot).and_then(|b| b.get("name")),
        Some(&serde_json::json!("Chosen Name")),
        "{after:?}"
    );
}

/// A resolve whose sync lease is taken over while it writes (a `crmkit sync --break-lease`
/// started meanwhile) stores nothing: the conflict stays open and the link keeps its synced
/// state, as the new holder may be planning the same link; the taken lease is left alone.
/// (Its renewal, every third of its ten minutes, finds the loss too late for a test; the
/// fence of the closing transaction is what stops this resolve.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_that_lost_its_lease_while_writing_stores_nothing() {
    let pair = pair(5, 4, Faults::default()).await;
    let dir = Scratch::new("resolve-lease-lost");
    let (store, conflict, link) = manual_company_conflict(&pair, &dir).await;
    // HubSpot slow, so the lease is taken over while the resolve reads and writes.
    pair.hubspot.set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    let name = "sync:close-hubspot";
    let thief = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                if let Some(current) = store.lease(name).await.expect("store") {
                    store.release_lease(&current).await.expect("store");
                    return store
                        .acquire_lease(name, "crmkit-sync-1-1", std::time::Duration::from_secs(60))
                        .await
                        .expect("store")
                        .expect("free");
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let (ok, out, err) = choose(&pair, &dir, conflict.id.as_ref(), "Chosen Name").await;
    pair.hubspot.set_faults(Faults::default());
    let taken = thief.await.expect("taken over");
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains(&format!("lease \"{name}\" is no longer held")),
        "{err}"
    );
    let still = store
        .conflict(&conflict.id)
        .await
        .expect("store")
        .expect("kept");
    assert_eq!(still.status, crmkit_store::ConflictStatus::Open);
    let after = store.link(&link.id).await.expect("store").expect("linked");
    for crm in [Crm::Close, Crm::HubSpot] {
        assert_eq!(after.hash(crm), link.hash(crm), "{crm}: {after:?}");
        assert_eq!(after.fields(crm), link.fields(crm), "{crm}: {after:?}");
    }
    assert_eq!(
        store.lease(name).await.expect("store"),
        Some(taken),
        "the new holder keeps it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_close_country_code_is_shown_and_forgotten() {
    let pair = pair(6, 2, Faults::default()).await;
    let dir = Scratch::new("facts");
    std::fs::write(
        dir.0.join("crmkit.toml"),
        "[sync]\ncrms = [\"close\", \"hubspot\"]\n",
    )
    .expect("config");
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "facts", "show"]).await;
    assert!(ok && out.contains("not learned yet"), "{out}\n{err}");
    let store = crmkit_store::Store::open(&dir.sqlite())
        .await
        .expect("store opens");
    let name = crmkit_sync::engine::CLOSE_COUNTRY_CODE;
    store
        .set_account_fact(Crm::Close, name, "44")
        .await
        .expect("stored");
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "facts", "show"]).await;
    assert!(ok && out.contains("+44"), "{out}\n{err}");
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "facts", "forget"]).await;
    assert!(ok && out.contains("forgot"), "{out}\n{err}");
    assert_eq!(
        store.account_fact(Crm::Close, name).await.expect("store"),
        None
    );
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "facts", "forget"]).await;
    assert!(ok && out.contains("nothing to forget"), "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_up_records_are_listed_and_re_armed_for_the_next_sync() {
    use crmkit_core::{Crm, ObjectKind, RecordRef};

    let pair = pair(6, 3, Faults::default()).await;
    let dir = Scratch::new("retry");
    std::fs::write(
        dir.0.join("crmkit.toml"),
        "[sync]\ncrms = [\"close\", \"hubspot\"]\n\n[company]\nfields = [\"name\", \"domain\"]\n\n[person]\nfields = [\"name\"]\nenabled = false\n\n[deal]\nfields = [\"name\"]\nenabled = false\n",
    )
    .expect("config");
    let (ok, out, err) = run_async(&pair, &dir, &["sync"]).await;
    assert!(ok, "{out}\n{err}");
    let (ok, list, err) = run_async(&pair, &dir, &["sync", "retry", "list"]).await;
    assert!(ok, "{err}");
    assert!(
        list.contains("retry list of close-hubspot is empty"),
        "{list}"
    );

    // A linked company given up after its one allowed attempt (as when the CRM refused it).
    let store = crmkit_store::Store::open(&dir.sqlite())
        .await
        .expect("store");
    let link = store
        .list_links(ObjectKind::Company, None, 1)
        .await
        .expect("links")
        .pop()
        .expect("a company linked");
    let lead = link.crm_id(Crm::Close).expect("in Close").to_string();
    let record = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
    let once = crmkit_store::RetryPolicy {
        max_attempts: 1,
        ..crmkit_store::RetryPolicy::default()
    };
    let pair_name = crmkit_sync::engine::pair_name(&[Crm::Close, Crm::HubSpot]);
    let entry = store
        .record_retry(&pair_name, &record, "refused: name too long", &once)
        .await
        .expect("listed");
    assert!(entry.given_up());

    let (ok, list, err) = run_async(&pair, &dir, &["sync", "retry", "list"]).await;
    assert!(ok, "{err}");
    let row = list
        .lines()
        .find(|l| l.contains(&lead))
        .unwrap_or_else(|| panic!("the entry is listed: {list}"));
    for cell in ["close", "company", "yes", "refused: name too long"] {
        assert!(row.contains(cell), "{cell:?} in {row}");
    }
    assert!(list.contains("0 waiting, 1 given up"), "{list}");

    // Bad input is refused and re-arms nothing.
    let (ok, _, err) = run_async(&pair, &dir, &["sync", "retry", "reset"]).await;
    assert!(!ok && err.contains("--all"), "{err}");
    let (ok, _, err) = run_async(&pair, &dir, &["sync", "retry", "reset", "lead_1"]).await;
    assert!(!ok && err.contains("<crm>:<kind>:<id>"), "{err}");
    let missing = "close:company:lead_missing";
    let (ok, _, err) = run_async(
        &pair,
        &dir,
        &["sync", "retry", "reset", &record.to_string(), missing],
    )
    .await;
    assert!(
        !ok && err.contains("not on the retry list") && err.contains(missing),
        "{err}"
    );
    assert!(
        store.retries(&pair_name, None).await.expect("store")[0].given_up(),
        "nothing re-armed by a refused reset"
    );

    // While a sync of the pair runs (here an older crmkit's, configured `[hubspot, close]`,
    // of a live process: pid 1), a reset would race its retry updates: refused, naming the
    // lease.
    let running = store
        .acquire_lease(
            "sync:hubspot-close",
            "crmkit-sync-1-1",
            std::time::Duration::from_secs(600),
        )
        .await
        .expect("store")
        .expect("free");
    for args in [
        &["sync", "retry", "reset", &record.to_string()][..],
        &["sync", "retry", "reset", "--all"][..],
    ] {
        let (ok, out, err) = run_async(&pair, &dir, args).await;
        assert!(
            !ok && err.contains("\"sync:hubspot-close\"") && err.contains("running"),
            "{args:?}: {out}\n{err}"
        );
        // Who holds it, and the way out when that process is gone.
        assert!(
            err.contains("crmkit-sync-1-1") && err.contains("--break-lease"),
            "{args:?}: {err}"
        );
    }
    assert!(
        store.retries(&pair_name, None).await.expect("store")[0].given_up(),
        "nothing re-armed while a sync runs"
    );
    assert_eq!(
        store.lease("sync:close-hubspot").await.expect("store"),
        None,
        "the lease the refused reset took first is given back"
    );
    store.release_lease(&running).await.expect("store");

    let (ok, out, err) = run_async(
        &pair,
        &dir,
        &["sync", "retry", "reset", &record.to_string()],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("re-armed {record}")), "{out}");
    for name in crmkit_sync::engine::lease_names(&[Crm::Close, Crm::HubSpot]) {
        assert_eq!(
            store.lease(&name).await.expect("store"),
            None,
            "{name} released after the reset"
        );
    }
    let (ok, list, err) = run_async(&pair, &dir, &["sync", "retry", "list"]).await;
    assert!(ok, "{err}");
    assert!(list.contains("1 waiting, 0 given up"), "{list}");
    let listed = store.retries(&pair_name, None).await.expect("store");
    assert_eq!(listed[0].attempts, 0, "{listed:?}");
    assert!(listed[0].due(chrono::Utc::now()), "{listed:?}");

    // The next sync tries it again; it syncs and leaves the list.
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "--report", "report.json"]).await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(report(&dir.0)["given_up"], serde_json::json!([]));
    assert!(
        store
            .retries(&pair_name, None)
            .await
            .expect("store")
            .is_empty(),
        "synced, off the list"
    );

    // --all re-arms every given-up entry, and only those.
    store
        .record_retry(&pair_name, &record, "refused again", &once)
        .await
        .expect("listed");
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "retry", "reset", "--all"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1 given-up record(s) re-armed"), "{out}");
    assert!(!store.retries(&pair_name, None).await.expect("store")[0].given_up());
    let (ok, help, _) = run_async(&pair, &dir, &["sync", "retry", "--help"]).await;
    assert!(
        ok && help.contains("reset") && help.contains("list"),
        "{help}"
    );
}

/// On PostgreSQL the leases of a killed sync are only freed with `--break-lease` (another
/// machine may hold them): a reset without it is refused, naming the holder and the flag;
/// with it, the reset goes on, says the next sync reconciles the killed run's writes, and
/// gives every lease back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_reset_breaks_a_killed_syncs_lease_on_postgres_when_asked() {
    use crmkit_core::{Crm, ObjectKind, RecordRef};

    let pair = pair(7, 1, Faults::default()).await;
    let dir = Scratch::new("retry-pg");
    let db = TestDb::postgres().await;
    let store = crmkit_store::Store::open(&db.url).await.expect("store");
    let record = RecordRef::new(Crm::Close, ObjectKind::Company, "lead_1");
    let once = crmkit_store::RetryPolicy {
        max_attempts: 1,
        ..crmkit_store::RetryPolicy::default()
    };
    store
        .record_retry("close-hubspot", &record, "refused", &once)
        .await
        .expect("listed");
    // A sync killed mid-run: no process has an id this high (Linux caps them at 2^22).
    store
        .acquire_lease(
            "sync:close-hubspot",
            "crmkit-sync-4000000000-1",
            std::time::Duration::from_secs(600),
        )
        .await
        .expect("store")
        .expect("free");
    let reset = |extra: &'static [&'static str]| {
        let mut args = vec!["sync", "retry", "reset", "--all"];
        args.extend_from_slice(extra);
        let mut child = command(&pair, &dir.0, &db.url, &args)
            .spawn()
            .expect("crmkit starts");
        async move {
            let status = wait(&mut child).await;
            let out = child.wait_with_output().expect("output");
            (
                status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, out, err) = reset(&[]).await;
    assert!(
        !ok && err.contains("crmkit-sync-4000000000-1") && err.contains("--break-lease"),
        "{out}\n{err}"
    );
    assert!(store.retries("close-hubspot", None).await.expect("store")[0].given_up());

    let (ok, out, err) = reset(&["--break-lease"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1 given-up record(s) re-armed"), "{out}");
    assert!(
        err.contains("freed the lease") && err.contains("the next crmkit sync reconciles"),
        "{err}"
    );
    assert!(!store.retries("close-hubspot", None).await.expect("store")[0].given_up());
    for name in crmkit_sync::engine::lease_names(&[Crm::Close, Crm::HubSpot]) {
        assert_eq!(store.lease(&name).await.expect("store"), None, "{name}");
    }
}

/// One store serves one set of CRMs: a migration of two of them into the store of a
/// three-way sync is refused (it would move two CRMs' bases behind the third's back), names
/// both sets, and starts no run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_into_the_store_of_a_three_way_sync_is_refused() {
    let pair = pair(8, 2, Faults::default()).await;
    let dir = Scratch::new("migrate-set");
    let store = crmkit_store::Store::open(&dir.sqlite())
        .await
        .expect("store");
    // The three-way sync read its feeds: its cursors are stored.
    let key = crmkit_store::CursorKey::new(
        "close-hubspot-salesforce",
        Crm::Salesforce,
        crmkit_core::ObjectKind::Company,
    );
    store.set_cursor(&key, "c").await.expect("store");
    let (ok, out, err) = run_async(
        &pair,
        &dir,
        &["migrate", "--from", "close", "--to", "hubspot"],
    )
    .await;
    assert!(!ok, "{out}\n{err}");
    for part in [
        "close-hubspot-salesforce",
        "close-hubspot",
        "one store serves one set of CRMs",
        "1 change-feed cursors",
        "created again",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    assert_eq!(
        store.runs("close-hubspot", 10).await.expect("store"),
        [],
        "no run started"
    );
    assert!(
        store
            .list_links(crmkit_core::ObjectKind::Company, None, 1)
            .await
            .expect("links")
            .is_empty(),
        "nothing linked"
    );
}

#[test]
fn init_writes_a_config_sync_accepts_and_refuses_to_overwrite_it() {
    let dir = Scratch::new("init");
    std::fs::remove_file(dir.0.join("crmkit.toml")).expect("start without one");
    let init = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_crmkit"))
            .current_dir(&dir.0)
            .args(["--config", "crmkit.toml", "init"])
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = init(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.0.join("crmkit.toml")).expect("written");
    assert!(text.contains("[sync]") && text.contains("# "), "{text}");
    crmkit_sync::Config::from_toml(&text).expect("it parses");
    let again = init(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

/// A resolve stores, for the side it wrote, the value that side reads back as: Close
/// keeps a phone number in E.164, and the next sync must not take that for Close's edit
/// and copy it over the text HubSpot holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_value_the_crm_kept_its_own_way_is_not_synced_back() {
    let pair = pair(7, 0, Faults::default()).await;
    let dir = Scratch::new("resolve-readback");
    std::fs::write(
        dir.0.join("crmkit.toml"),
        "[sync]\ncrms = [\"close\", \"hubspot\"]\n\n[company]\nfields = [\"name\"]\n\n[person]\nfields = [\"name\", \"emails\", \"phones\"]\n\n[person.conflict]\npolicy = \"manual\"\n\n[deal]\nfields = [\"name\"]\nenabled = false\n",
    )
    .expect("config");
    let close = close_client(&pair);
    let lead = close
        .raw(&ApiRequest::post(
            "lead/".to_string(),
            serde_json::json!({"name": "Acme", "contacts": [{"name": "Bob Stone",
                "emails": [{"email": "bob@acme.com", "type": "office"}]}]}),
        ))
        .await
        .expect("lead");
    let contact = lead["contacts"][0]["id"]
        .as_str()
        .expect("contact id")
        .to_string();
    let (ok, out, err) = run_async(&pair, &dir, &["sync"]).await;
    assert!(ok, "{out}\n{err}");
    let store = crmkit_store::Store::open(&dir.sqlite())
        .await
        .expect("store opens");
    let link = store
        .link_by_record(&crmkit_core::RecordRef::new(
            Crm::Close,
            crmkit_core::ObjectKind::Person,
            contact.clone(),
        ))
        .await
        .expect("store")
        .expect("linked");
    let hs = link.crm_id(Crm::HubSpot).expect("in HubSpot").to_string();

    // Both sides given another number: a conflict on phones.
    close
        .raw(&ApiRequest::put(
            format!("contact/{contact}/"),
            serde_json::json!({"phones": [{"phone": "+44 20 7946 0958", "type": "office"}]}),
        ))
        .await
        .expect("Close edit");
    let hubspot = hubspot_client(&pair);
    hubspot
        .raw(
            &ApiRequest::new(
                crmkit_core::http::Method::PATCH,
                format!("crm/v3/objects/contacts/{hs}"),
            )
            .json(serde_json::json!({"properties": {"phone": "(650) 555-0100"}})),
        )
        .await
        .expect("HubSpot edit");
    let (ok, out, err) = run_async(&pair, &dir, &["sync"]).await;
    assert!(ok, "{out}\n{err}");
    let open = store.open_conflicts(100).await.expect("conflicts");
    let conflict = open
        .iter()
        .find(|c| c.link == link.id && c.field == "phones")
        .expect("a phones conflict");

    // A CRM that is no side of the conflict is refused: taken as "empty", it would clear
    // the phones everywhere.
    let (ok, out, err) = take(&pair, &dir, conflict.id.as_ref(), "salesforce").await;
    assert!(!ok, "{out}");
    assert!(err.contains("not part of conflict"), "{err}");
    assert_eq!(
        store.open_conflicts(100).await.expect("conflicts").len(),
        open.len()
    );

    // HubSpot's number taken: Close stores it as +16505550100.
    let (ok, out, err) = take(&pair, &dir, conflict.id.as_ref(), "hubspot").await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("written to close:"), "{out}");
    let phone = close
        .raw(&ApiRequest::get(format!("contact/{contact}/")))
        .await
        .expect("read")["phones"][0]["phone"]
        .clone();
    assert_eq!(phone, "+16505550100");

    // The next sync finds nothing to write: HubSpot keeps the text it holds.
    let (ok, out, err) = run_async(&pair, &dir, &["sync", "--report", "report.json"]).await;
    assert!(ok, "{out}\n{err}");
    let r = report(&dir.0);
    assert_eq!(r["updated"], 0, "{r}");
    let v = hubspot
        .raw(&ApiRequest::get(format!(
            "crm/v3/objects/contacts/{hs}?properties=phone"
        )))
        .await
        .expect("read");
    assert_eq!(v["properties"]["phone"], "(650) 555-0100", "{r}");

    // A resolved conflict is refused before anything is written.
    let (ok, out, err) = take(&pair, &dir, conflict.id.as_ref(), "close").await;
    assert!(!ok, "{out}");
    assert!(err.contains("no longer open"), "{err}");
}
