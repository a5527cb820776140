//! `bench_sync_plan`: how fast the planner matches, hashes and resolves record pairs in
//! memory (`crmkit bench sync-plan`).
//!
//! The pairs are planned in chunks of [`PLAN_PAIRS`] (by default), on every core. Per
//! chunk, the input is built first and not timed: the synthetic records (in a real run the
//! connectors deliver them) and the stored link states of the linked half (in a real run
//! the store's rows). Then what is timed: mapping and hashing each record as the engine
//! does on reading it ([`Seen::new`]: extract, canonical form, SHA-256), sorting them into
//! linked and unlinked records, the real [`plan::plan`] (matching index, components,
//! conflict resolution, patches with their records) and dropping the plan. There is no
//! bench-only path through the planner; the write count returned is checked against the
//! number of pairs.
//!
//! The timed part is measured in CPU time of the thread doing it (the clock
//! `CLOCK_THREAD_CPUTIME_ID`), so what else the machine runs meanwhile (a build on the
//! other core, say) does not count as planning time: on these 2-core machines a compiler
//! running beside the benchmark made its wall-clock figure swing from 850,000 to 180,000
//! pairs/s. Shared caches and memory bandwidth still slow it, so a quiet machine is still
//! the place to compare runs. The wall time of the whole run, input building included, is
//! reported beside it.
//!
//! Each chunk is its own plan with its own matching index, as if each were one run's
//! changes; the synthetic pairs are built so each pair's two records share a chunk.

use std::time::Instant;

use cpu_time::ThreadTime;

use crmkit_core::{Company, Crm, ObjectKind, Record};

use crate::config::Config;
use crate::per_crm::PerCrm;
use crate::plan::{self, Input, LinkState, RefTable, Seen, Sides};

/// Pairs planned per plan by default: a plan of 512 records (a run's changes, a listing
/// page or two of each CRM), whose working set (about 4 KB a pair: the records, their
/// mapped fields, keys and the plan; 1 MB in all) stays in a core's own cache (2 MB of L2
/// on these machines) between mapping and planning. Larger plans are slower per pair, as
/// their records come back from the shared cache or main memory: on an Intel Xeon machine
/// 1,024 pairs a plan ran 8–10% slower than 256 and 4,096 13–14% slower; on another machine,
/// with an older planner, 4,096 ran at about half the speed of 1,024 (`crmkit bench
/// sync-plan --plan-pairs`). A sync run plans each kind's changes as one plan, however
/// many: a run with thousands of changes plans at the slower rate.
pub const PLAN_PAIRS: usize = 256;

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Record pairs planned.
    pub pairs: usize,
    /// Record pairs per plan.
    pub plan_pairs: usize,
    /// Planning time in seconds: the CPU time of the timed part on the busiest thread (see
    /// the module docs).
    pub seconds: f64,
    /// Pairs planned per second of planning time.
    pub pairs_per_s: f64,
    /// Wall time of the whole run in seconds, building the synthetic input included.
    pub wall_seconds: f64,
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
/// resolve). Uses every core of the machine, one plan of `plan_pairs` pairs (at least one)
/// per task.
pub fn bench_sync_plan(n: usize, plan_pairs: usize) -> BenchReport {
    let plan_pairs = plan_pairs.max(1);
    let config = Config::new(vec![Crm::Close, Crm::HubSpot]);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(plan_pairs)
        .map(|s| (s, (s + plan_pairs).min(n)))
        .collect();
    let started = Instant::now();
    // Per core: the writes its plans held and its planning time.
    let per_core: Vec<(usize, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let config = &config;
                let chunks = &chunks;
                scope.spawn(move || {
                    chunks.iter().skip(t).step_by(threads).fold(
                        (0, 0.0),
                        |(writes, secs), (a, b)| {
                            let input = synthetic_chunk(config, *a, *b);
                            let timed = ThreadTime::now();
                            let w = plan_chunk(config, input);
                            (writes + w, secs + timed.elapsed().as_secs_f64())
                        },
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0.0)))
            .collect()
    });
    let wall_seconds = started.elapsed().as_secs_f64().max(1e-9);
    let seconds = per_core
        .iter()
        .map(|(_, s)| *s)
        .fold(0.0, f64::max)
        .max(1e-9);
    BenchReport {
        pairs: n,
        plan_pairs,
        seconds,
        pairs_per_s: n as f64 / seconds,
        wall_seconds,
        writes: per_core.iter().map(|(w, _)| w).sum(),
    }
}

/// One synthetic pair as the planner is given it: each CRM's record, and the stored link
/// state for a linked pair.
type SyntheticPair = (Record, Record, Option<LinkState>);

/// The input of pairs `from..to`: half linked with HubSpot's side renamed since the last
/// sync (its stored hash is the old one), half unlinked with the same domain.
fn synthetic_chunk(config: &Config, from: usize, to: usize) -> Vec<SyntheticPair> {
    let cfg = &config.company;
    (from..to)
        .map(|i| {
            let close = company(text("lead_", i, ""), i, false);
            let hs = company(text("", i, ""), i, i % 2 == 0);
            let link = (i % 2 == 0).then(|| {
                let stored = crate::values::extract(&close, Crm::Close, cfg)
                    .map(|f| crate::values::hash(&f).to_string())
                    .unwrap_or_default();
                LinkState {
                    key: text("", i, ""),
                    ids: PerCrm::from([
                        (Crm::Close, text("lead_", i, "")),
                        (Crm::HubSpot, text("", i, "")),
                    ]),
                    hashes: PerCrm::from([(Crm::Close, stored.clone()), (Crm::HubSpot, stored)]),
                    bases: PerCrm::new(),
                }
            });
            (close, hs, link)
        })
        .collect()
}

/// The timed part: maps and hashes the records, plans them and drops the plan; returns the
/// writes and new links the plan held.
fn plan_chunk(config: &Config, pairs: Vec<SyntheticPair>) -> usize {
    let cfg = &config.company;
    let mut input = Input {
        linked: Vec::with_capacity(pairs.len().div_ceil(2)),
        unlinked: Vec::with_capacity(pairs.len()),
        ..Input::default()
    };
    for (close, hs, link) in pairs {
        let (Ok(c), Ok(h)) = (
            Seen::new(Crm::Close, close, cfg, true),
            Seen::new(Crm::HubSpot, hs, cfg, true),
        ) else {
            continue;
        };
        match link {
            Some(link) => input
                .linked
                .push((link, Sides::from([(Crm::Close, c), (Crm::HubSpot, h)]))),
            None => {
                input.unlinked.push(c);
                input.unlinked.push(h);
            }
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
        let r = bench_sync_plan(1000, 300);
        assert_eq!(r.pairs, 1000);
        // 500 linked pairs with a rename to copy, 500 newly matched pairs to link.
        assert_eq!(r.writes, 1000);
    }
}
