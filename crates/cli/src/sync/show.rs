//! How sync results, links, conflicts and the store's state are printed.

use std::collections::BTreeMap;
use std::io::Write;

use comfy_table::{Table, presets};
use crmkit_core::{Crm, ObjectKind};
use crmkit_store::{Link, Store};
use crmkit_sync::Report;
use serde_json::Value;

use super::{Tally, store_err};
use crate::failure::Failure;

fn short(v: &Option<Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => "(empty)".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_BORDERS_ONLY);
    t
}

/// Prints a dry run's plan: per kind and CRM the creates, updates, links and conflicts,
/// each with its field diffs.
pub fn plan(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(out, "Plan (dry run: nothing is written)")?;
    let mut counts: BTreeMap<(ObjectKind, Crm), [usize; 4]> = BTreeMap::new();
    for p in &report.plans {
        writeln!(out, "\n== {}s ==", p.kind)?;
        for g in &p.groups {
            if g.link.is_none() && g.ids.len() >= 2 {
                let ids: Vec<String> = g.ids.iter().map(|(c, id)| format!("{c}:{id}")).collect();
                writeln!(out, "link    {} (matched)", ids.join(" <-> "))?;
                for crm in g.ids.keys() {
                    counts.entry((p.kind, crm)).or_default()[2] += 1;
                }
            }
            for c in &g.creates {
                counts.entry((p.kind, c.target)).or_default()[0] += 1;
                writeln!(out, "create  {} {} from {}", c.target, p.kind, c.source)?;
                for (field, value) in &c.fields {
                    writeln!(out, "          {field} = {}", short(value))?;
                }
            }
            for u in &g.updates {
                counts.entry((p.kind, u.target.crm)).or_default()[1] += 1;
                writeln!(out, "update  {}", u.target)?;
                for ch in &u.changes {
                    writeln!(
                        out,
                        "          {}: {} -> {}",
                        ch.field,
                        short(&ch.from),
                        short(&ch.to)
                    )?;
                }
            }
            for c in &g.conflicts {
                for crm in c.values.keys() {
                    counts.entry((p.kind, *crm)).or_default()[3] += 1;
                }
                let ids: Vec<String> = g.ids.iter().map(|(c, id)| format!("{c}:{id}")).collect();
                writeln!(
                    out,
                    "conflict {} field {} (manual)",
                    ids.join(" <-> "),
                    c.field
                )?;
                for (crm, v) in &c.values {
                    writeln!(out, "          {crm}: {}", short(v))?;
                }
            }
        }
        for a in &p.ambiguous {
            let c: Vec<String> = a.candidates.iter().map(ToString::to_string).collect();
            writeln!(
                out,
                "review  {} matches several: {}",
                a.record,
                c.join(", ")
            )?;
        }
        for d in &p.deletions {
            writeln!(out, "deleted {} (policy {:?})", d.deleted, d.policy)?;
        }
        for e in &p.errors {
            writeln!(out, "error   {}: {}", e.record, e.message)?;
        }
        for n in &p.notices {
            writeln!(out, "note    {}: {}", n.record, n.message)?;
        }
        if p.unchanged > 0 || p.echoes > 0 {
            writeln!(
                out,
                "({} unchanged, {} echoes of our own writes)",
                p.unchanged, p.echoes
            )?;
        }
    }
    let mut t = table();
    t.set_header(vec![
        "object",
        "crm",
        "creates",
        "updates",
        "links",
        "conflicts",
    ]);
    for ((kind, crm), [c, u, l, x]) in &counts {
        t.add_row(vec![
            kind.to_string(),
            crm.to_string(),
            c.to_string(),
            u.to_string(),
            l.to_string(),
            x.to_string(),
        ]);
    }
    writeln!(out, "\n{t}")?;
    Ok(())
}

/// Prints a run's summary table (per CRM and object) and what it linked, resolved and
/// could not write, then its notices (done otherwise, or never doable: not failures).
pub fn summary(
    out: &mut impl Write,
    report: &Report,
    tallies: &BTreeMap<(Crm, ObjectKind), Tally>,
) -> std::io::Result<()> {
    let mut t = table();
    t.set_header(vec![
        "crm", "object", "read", "created", "updated", "deleted", "failed",
    ]);
    for ((crm, kind), x) in tallies {
        t.add_row(vec![
            crm.to_string(),
            kind.to_string(),
            x.read.to_string(),
            x.created.to_string(),
            x.updated.to_string(),
            x.deleted.to_string(),
            x.failed.to_string(),
        ]);
    }
    writeln!(out, "{t}")?;
    writeln!(
        out,
        "created {} · updated {} · linked {} · deleted {} · echoes skipped {} · recovered {} · conflicts queued {} · reviews {}",
        report.created,
        report.updated,
        report.linked,
        report.deleted,
        report.echoes,
        report.recovered,
        report.conflicts.len(),
        report.ambiguous.len()
    )?;
    for e in &report.errors {
        writeln!(out, "not synced: {e}")?;
    }
    for c in &report.cascades {
        writeln!(out, "kept: {c}")?;
    }
    for n in &report.notices {
        writeln!(out, "note: {n}")?;
    }
    if report.retrying > 0 {
        writeln!(
            out,
            "{} record(s) on the retry list (crmkit sync status)",
            report.retrying
        )?;
    }
    for g in &report.given_up {
        writeln!(
            out,
            "given up after {} attempts: {}: {}",
            g.attempts, g.record, g.reason
        )?;
    }
    Ok(())
}

/// Prints the last runs, the cursors and the open conflicts and reviews.
pub async fn status(store: &Store, pair: &str, runs: u32) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let list = store.runs(pair, runs).await.map_err(store_err)?;
    let mut t = table();
    t.set_header(vec![
        "run",
        "started",
        "status",
        "read",
        "created",
        "updated",
        "failed",
        "conflicts",
    ]);
    for r in &list {
        t.add_row(vec![
            r.id.to_string(),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.status.to_string(),
            r.counts.read.to_string(),
            r.counts.created.to_string(),
            r.counts.updated.to_string(),
            r.counts.failed.to_string(),
            r.counts.conflicts.to_string(),
        ]);
    }
    writeln!(out, "Runs of {pair}\n{t}")?;
    let cursors = store.cursors(pair).await.map_err(store_err)?;
    let mut t = table();
    t.set_header(vec!["crm", "object", "cursor", "moved"]);
    for c in &cursors {
        let v = if c.value.chars().count() > 60 {
            format!("{}…", c.value.chars().take(59).collect::<String>())
        } else {
            c.value.clone()
        };
        t.add_row(vec![
            c.key.crm.to_string(),
            c.key.object.to_string(),
            v,
            c.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    writeln!(out, "Cursors\n{t}")?;
    let conflicts = store.open_conflicts(1000).await.map_err(store_err)?;
    let reviews = store.open_reviews(1000).await.map_err(store_err)?;
    writeln!(
        out,
        "Open conflicts: {} (crmkit conflicts list)",
        conflicts.len()
    )?;
    writeln!(out, "Open reviews: {}", reviews.len())?;
    let retries = store.retries(pair, None).await.map_err(store_err)?;
    let given_up = retries.iter().filter(|r| r.given_up()).count();
    writeln!(
        out,
        "Retry list: {} waiting, {given_up} given up",
        retries.len() - given_up
    )?;
    for r in &retries {
        let next = match r.next_attempt_at {
            Some(t) => format!("next attempt {}", t.format("%Y-%m-%d %H:%M:%S")),
            None => "given up".to_string(),
        };
        writeln!(
            out,
            "  {} ({} attempts, {next}): {}",
            r.record, r.attempts, r.reason
        )?;
    }
    for r in &reviews {
        writeln!(
            out,
            "  {} {}: {} {}",
            r.id, r.entity, r.reason, r.candidates
        )?;
    }
    Ok(())
}

/// Prints `pair`'s retry list.
pub async fn retries(store: &Store, pair: &str) -> Result<(), Failure> {
    let list = store.retries(pair, None).await.map_err(store_err)?;
    let mut out = std::io::stdout().lock();
    if list.is_empty() {
        writeln!(out, "the retry list of {pair} is empty")?;
        return Ok(());
    }
    let mut t = table();
    t.set_header(vec![
        "crm",
        "kind",
        "id",
        "attempts",
        "next due",
        "given up",
        "last reason",
    ]);
    for r in &list {
        t.add_row(vec![
            r.record.crm.to_string(),
            r.record.object.to_string(),
            r.record.id.clone(),
            r.attempts.to_string(),
            r.next_attempt_at.map_or("-".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            }),
            if r.given_up() { "yes" } else { "no" }.to_string(),
            r.reason.clone(),
        ]);
    }
    let given_up = list.iter().filter(|r| r.given_up()).count();
    writeln!(out, "Retry list of {pair}\n{t}")?;
    writeln!(
        out,
        "{} waiting, {given_up} given up; re-arm with: crmkit sync retry reset --all | <crm>:<kind>:<id>…",
        list.len() - given_up
    )?;
    Ok(())
}

/// Prints the open conflicts.
pub async fn conflicts(store: &Store) -> Result<(), Failure> {
    let list = store.open_conflicts(1000).await.map_err(store_err)?;
    let mut out = std::io::stdout().lock();
    if list.is_empty() {
        writeln!(out, "no open conflicts")?;
        return Ok(());
    }
    let mut t = table();
    t.set_header(vec!["conflict", "object", "field", "values", "link"]);
    for c in &list {
        let values: Vec<String> = c
            .values
            .iter()
            .map(|(crm, v)| format!("{crm}: {}", short(&Some(v.clone()))))
            .collect();
        t.add_row(vec![
            c.id.to_string(),
            c.entity.to_string(),
            c.field.clone(),
            values.join("\n"),
            c.link.to_string(),
        ]);
    }
    writeln!(out, "{t}")?;
    writeln!(
        out,
        "settle one with: crmkit conflicts resolve <conflict> --take <crm> | --value <value>"
    )?;
    Ok(())
}

/// Prints one link: its ids and hashes per CRM, last sync, conflicts and audit trail.
pub async fn link(store: &Store, link: &Link) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "link {} ({}, version {})",
        link.id, link.entity, link.version
    )?;
    let mut t = table();
    t.set_header(vec!["crm", "id", "hash"]);
    for crm in [Crm::Close, Crm::HubSpot, Crm::Salesforce] {
        if let Some(id) = link.crm_id(crm) {
            t.add_row(vec![
                crm.to_string(),
                id.to_string(),
                link.hash(crm).unwrap_or("-").to_string(),
            ]);
        }
    }
    writeln!(out, "{t}")?;
    for (label, v) in [
        ("email", &link.email),
        ("domain", &link.domain),
        ("company", &link.company_name),
    ] {
        if let Some(v) = v {
            writeln!(out, "{label}: {v}")?;
        }
    }
    writeln!(
        out,
        "last synced: {} (source {})",
        link.last_synced_at
            .map_or("never".to_string(), |t| t.to_rfc3339()),
        link.sync_source.map_or("-".to_string(), |c| c.to_string())
    )?;
    let conflicts = store.link_conflicts(&link.id).await.map_err(store_err)?;
    for c in &conflicts {
        writeln!(
            out,
            "conflict {} on {} ({}): {:?}",
            c.id, c.field, c.status, c.values
        )?;
    }
    let audit = store.link_audit(&link.id).await.map_err(store_err)?;
    let mut t = table();
    t.set_header(vec!["at", "crm", "field", "before", "after", "source"]);
    for a in &audit {
        t.add_row(vec![
            a.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            a.crm.to_string(),
            a.field.clone(),
            short(&a.before),
            short(&a.after),
            a.source.clone(),
        ]);
    }
    writeln!(out, "audit trail ({} changes)\n{t}", audit.len())?;
    Ok(())
}
