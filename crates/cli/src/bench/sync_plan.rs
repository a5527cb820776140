//! `bench sync-plan`: the sync planner's speed and memory on synthetic record pairs.

use crate::failure::Failure;

/// Options of `bench sync-plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Record pairs to plan (targets apply to 1,000,000 on a release build).
    #[arg(long, default_value_t = 1_000_000)]
    pairs: usize,
    /// Record pairs per plan (each plan one run's changes, with its own matching index).
    #[arg(long, default_value_t = crmkit_sync::bench::PLAN_PAIRS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    plan_pairs: usize,
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), Failure> {
    let r = crmkit_sync::bench::bench_sync_plan(args.pairs, args.plan_pairs);
    if r.writes != args.pairs {
        return Err(Failure::Bench(format!(
            "the plans hold {} writes or links for {} pairs",
            r.writes, args.pairs
        )));
    }
    // `seconds` and `pairs_per_s` are planning time; `wall_*` include building the
    // synthetic input (see crmkit_sync::bench).
    println!(
        "pairs={} plan_pairs={} seconds={:.3} pairs_per_s={:.0} wall_seconds={:.3} wall_pairs_per_s={:.0} peak_rss_mb={:.1}",
        r.pairs,
        r.plan_pairs,
        r.seconds,
        r.pairs_per_s,
        r.wall_seconds,
        r.pairs as f64 / r.wall_seconds,
        crmkit_sync::bench::peak_rss_mb()
    );
    Ok(())
}
