//! `bench_sync_plan`: how fast the planner matches, hashes and resolves record pairs in
//! memory (`crmkit bench sync-plan`).
//!
//! What is timed, per chunk of pairs and on every core: building the synthetic records
//! (a few short strings each), mapping and hashing each record
//! as the engine does on reading it ([`Seen::new`]: extract, canonical form, SHA-256),
//! building the stored link states, the real [`plan::plan`] (matching index, components,
//! conflict resolution, patches with their records) and dropping the plan. Nothing is
//! precomputed outside the timed section and there is no bench-only path through the
//! planner; the write count returned is checked against the number of pairs.

use std::time::Instant;

use crmkit_core::{Company, Crm, ObjectKind, Record};

use crate::config::Config;
use crate::per_crm::PerCrm;
use crate::plan::{self, Input, LinkState, RefTable, Seen, Sides};

/// Pairs planned per chunk: the engine plans a page of changes at a time, so memory stays
/// bounded whatever the total.
const CHUNK: usize = 4096;

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Record pairs planned.
    pub pairs: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Pairs per second.
    pub pairs_per_s: f64,
    /// Writes the plans held (a check that the work was done: every pair has one).
    pub writes: usize,
}

/// `prefix`, the decimal digits of `i`, then `suffix`: `format!` without its formatting
/// machinery, which took a tenth of the run building the synthetic input.
fn text(prefix: &str, i: usize, suffix: &str) -> String {
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(prefix.len() + (digits.len() - at) + suffix.len());
    out.push_str(prefix);
    // ASCII digits only, so always UTF-8.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
    out.push_str(suffix);
    out
}

fn company(id: String, i: usize, renamed: bool) -> Record {
    Record::Company(Company {
        id: Some(id),
        name: text("Company ", i, if renamed { " Renamed" } else { " Inc" }),
        domain: Some(text("company", i, ".example")),
        url: Some(text("https://www.company", i, ".example/")),
        description: Some(text("Customer number ", i, "")),
        ..Company::default()
    })
}

/// Plans `n` synthetic Close/HubSpot company pairs: half are linked with one side changed
/// (hash, resolve, patch), half unlinked with differing fields (match by domain, link,
/// resolve). Uses every core of the machine, one chunk of pairs per task.
pub fn bench_sync_plan(n: usize) -> BenchReport {
    let config = Config::new(vec![Crm::Close, Crm::HubSpot]);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(CHUNK)
        .map(|s| (s, (s + CHUNK).min(n)))
        .collect();
    let started = Instant::now();
    let writes: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let config = &config;
                let chunks = &chunks;
                scope.spawn(move || {
                    chunks
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|(a, b)| plan_chunk(config, *a, *b))
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    BenchReport {
        pairs: n,
        seconds,
        pairs_per_s: n as f64 / seconds,
        writes,
    }
}

fn plan_chunk(config: &Config, from: usize, to: usize) -> usize {
    let cfg = &config.company;
    let mut input = Input {
        linked: Vec::with_capacity((to - from).div_ceil(2)),
        unlinked: Vec::with_capacity(to - from),
        ..Input::default()
    };
    for i in from..to {
        let close = company(text("lead_", i, ""), i, false);
        let hs = company(text("", i, ""), i, i % 2 == 0);
        let (Ok(c), Ok(h)) = (
            Seen::new(Crm::Close, close, cfg, true),
            Seen::new(Crm::HubSpot, hs, cfg, true),
        ) else {
            continue;
        };
        if i % 2 == 0 {
            // Linked; HubSpot renamed it since: its stored hash is the old one.
            let link = LinkState {
                key: text("", i, ""),
                ids: PerCrm::from([
                    (Crm::Close, c.id().to_string()),
                    (Crm::HubSpot, h.id().to_string()),
                ]),
                hashes: PerCrm::from([
                    (Crm::Close, c.hash.clone()),
                    (Crm::HubSpot, c.hash.clone()),
                ]),
                bases: PerCrm::new(),
            };
            input
                .linked
                .push((link, Sides::from([(Crm::Close, c), (Crm::HubSpot, h)])));
        } else {
            input.unlinked.push(c);
            input.unlinked.push(h);
        }
    }
    let p = plan::plan(config, ObjectKind::Company, input, &RefTable::default());
    p.updates().count() + p.groups.iter().filter(|g| g.link.is_none()).count()
}

/// The peak resident memory of this process in MiB (Linux `VmHWM`), or 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_text_is_what_format_would_write() {
        for i in [0, 7, 10, 99, 12345, usize::MAX] {
            assert_eq!(text("a ", i, " b"), format!("a {i} b"));
        }
    }

    #[test]
    fn every_synthetic_pair_is_planned() {
        let r = bench_sync_plan(1000);
        assert_eq!(r.pairs, 1000);
        // 500 linked pairs with a rename to copy, 500 newly matched pairs to link.
        assert_eq!(r.writes, 1000);
    }
}

#[cfg(test)]
mod phases {
    use super::*;
    #[test]
    #[ignore]
    fn phases() {
        let config = Config::new(vec![Crm::Close, Crm::HubSpot]);
        let cfg = &config.company;
        let n = 4096usize;
        let reps = 50;
        let (mut tg, mut ts, mut tl, mut tp, mut td) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for _ in 0..reps {
            let t = Instant::now();
            let recs: Vec<(Record, Record)> = (0..n)
                .map(|i| {
                    (
                        company(format!("lead_{i}"), i, false),
                        company(format!("{i}"), i, i % 2 == 0),
                    )
                })
                .collect();
            tg += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let seen: Vec<(Seen, Seen)> = recs
                .into_iter()
                .map(|(a, b)| {
                    (
                        Seen::new(Crm::Close, a, cfg, true).unwrap(),
                        Seen::new(Crm::HubSpot, b, cfg, true).unwrap(),
                    )
                })
                .collect();
            ts += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut input = Input::default();
            for (i, (c, h)) in seen.into_iter().enumerate() {
                if i % 2 == 0 {
                    let link = LinkState {
                        key: i.to_string(),
                        ids: PerCrm::from([
                            (Crm::Close, c.id().to_string()),
                            (Crm::HubSpot, h.id().to_string()),
                        ]),
                        hashes: PerCrm::from([
                            (Crm::Close, c.hash.clone()),
                            (Crm::HubSpot, c.hash.clone()),
                        ]),
                        bases: PerCrm::new(),
                    };
                    input
                        .linked
                        .push((link, Sides::from([(Crm::Close, c), (Crm::HubSpot, h)])));
                } else {
                    input.unlinked.push(c);
                    input.unlinked.push(h);
                }
            }
            tl += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let p = plan::plan(&config, ObjectKind::Company, input, &RefTable::default());
            tp += t.elapsed().as_secs_f64();
            let t = Instant::now();
            drop(p);
            td += t.elapsed().as_secs_f64();
        }
        let per = |x: f64| x / (n * reps) as f64 * 1e9;
        eprintln!(
            "ns/pair gen={:.0} seen={:.0} link={:.0} plan={:.0} drop={:.0}",
            per(tg),
            per(ts),
            per(tl),
            per(tp),
            per(td)
        );
    }
}
