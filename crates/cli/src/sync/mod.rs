//! `crmkit sync`, `crmkit sync status`, `crmkit sync retry list|reset`, `crmkit links show`,
//! `crmkit conflicts list|resolve`,
//! `crmkit migrate` and `crmkit init`: the sync engine (`crmkit-sync`) on the store
//! (`crmkit-store`) with connectors built from the same settings as the other commands.
//!
//! The store is `--database-url`, else `DATABASE_URL`, else the SQLite file `crmkit.db`.
//! The sync configuration is the `[sync]`, `[company]`, `[person]`, `[deal]` and
//! `[activity]` tables of `crmkit.toml` (`crmkit init` writes a commented one, activities
//! on); without a `[sync]` table every CRM with credentials is synced with the defaults
//! (activities off). Close, HubSpot and Salesforce are supported; Salesforce keeps markers
//! in an External ID text field (`External_Id__c`, or `SF_MARKER_FIELD`) on Account,
//! Contact, Opportunity, and Task and Event for activities.

pub(crate) mod connect;
pub mod demo;
mod show;
mod watch;
pub mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crmkit_core::{Connector, Crm, Error, ObjectKind, RecordRef};
use crmkit_store::{ConflictId, Link, LinkId, Store};
use crmkit_sync::config::{FieldType, PolicyKind};
use crmkit_sync::{Config, Engine, Report};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::failure::Failure;
use crate::waits::Waits;

pub use watch::{Board, Tally};

/// Parses a CRM name.
pub fn parse_crm(s: &str) -> Result<Crm, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "close" => Ok(Crm::Close),
        "hubspot" => Ok(Crm::HubSpot),
        "salesforce" => Ok(Crm::Salesforce),
        other => Err(format!(
            "unknown CRM {other:?}: use close, hubspot or salesforce"
        )),
    }
}

/// Where the sync state lives.
#[derive(Debug, Clone, clap::Args)]
pub struct Db {
    /// The sync database: postgres://… or a SQLite file (default: DATABASE_URL, else crmkit.db).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

/// `crmkit sync`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SyncArgs {
    /// Print the plan (creates, updates, links, conflicts per CRM, with field diffs) and
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the JSON run report to this file instead of printing it.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// On PostgreSQL, free the leases of an interrupted sync whose process no longer runs on
    /// this machine (on SQLite that happens on its own): those of the set of CRMs under
    /// every order (`sync:*`) and those of each of its CRMs (`sync-crm:*`).
    #[arg(long)]
    pub break_lease: bool,
    #[command(flatten)]
    pub db: Db,
    #[command(subcommand)]
    pub command: Option<SyncCommand>,
}

/// `crmkit sync <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum SyncCommand {
    /// The last runs, the cursors, and the open conflicts and reviews.
    Status {
        /// Runs to show.
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// The retry list: records that failed on their own and are tried again by later runs,
    /// or were given up after `[sync.retry] max_attempts` failures.
    Retry {
        #[command(subcommand)]
        command: RetryCommand,
    },
    /// What the sync learned about the CRM accounts from their answers: the country code
    /// the Close account gives phone numbers sent without one.
    Facts {
        #[command(subcommand)]
        command: FactsCommand,
    },
}

/// `crmkit sync facts <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum FactsCommand {
    /// Shows what was learned.
    Show,
    /// Forgets the Close account's learned phone country code (learned wrongly, or the
    /// account's setting changed): learned again from the next number Close reads back
    /// with a code added; until then any assigned code counts as Close's. Refused while a
    /// sync of these CRMs is running.
    Forget {
        /// On PostgreSQL, first free the leases of an interrupted sync whose process no
        /// longer runs on this machine, as `crmkit sync --break-lease` does.
        #[arg(long)]
        break_lease: bool,
    },
}

/// `crmkit sync retry <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum RetryCommand {
    /// Every entry: CRM, kind, id, attempts, when it is due next, whether it was given up,
    /// and why its last attempt failed.
    List,
    /// Re-arms entries (once what made them fail is fixed): their attempts start again from
    /// zero and they are due now, so the next `crmkit sync` tries them again. Refused while
    /// a sync of these CRMs is running.
    Reset {
        /// Re-arm every given-up entry (entries still waiting keep their back-off).
        #[arg(long, conflicts_with = "records", required_unless_present = "records")]
        all: bool,
        /// The records to re-arm, as `<crm>:<kind>:<id>` (`crmkit sync retry list` shows
        /// them), given up or still waiting.
        #[arg(value_name = "CRM:KIND:ID", value_parser = parse_record)]
        records: Vec<RecordRef>,
        /// On PostgreSQL, first free the leases (`sync:*` and `sync-crm:*`) of an
        /// interrupted sync whose process no longer runs on this machine (on SQLite that
        /// happens on its own), as `crmkit sync --break-lease` does.
        #[arg(long)]
        break_lease: bool,
    },
}

/// Parses a record as `<crm>:<kind>:<id>` (`hubspot:person:101`).
pub fn parse_record(s: &str) -> Result<RecordRef, String> {
    let mut parts = s.splitn(3, ':');
    let (Some(crm), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "{s:?} is not <crm>:<kind>:<id> (hubspot:person:101)"
        ));
    };
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "company" => ObjectKind::Company,
        "person" => ObjectKind::Person,
        "deal" => ObjectKind::Deal,
        "activity" => ObjectKind::Activity,
        other => {
            return Err(format!(
                "unknown kind {other:?}: use company, person, deal or activity"
            ));
        }
    };
    let id = id.trim();
    if id.is_empty() {
        return Err(format!("{s:?} has no record id"));
    }
    Ok(RecordRef::new(parse_crm(crm)?, kind, id))
}

/// `crmkit links`.
#[derive(Debug, clap::Subcommand)]
pub enum LinksCommand {
    /// A link by its uuid or by any CRM id it holds: ids per CRM, hashes, last sync, the
    /// audit trail and its conflicts.
    Show {
        /// A link uuid or a CRM record id.
        id: String,
        #[command(flatten)]
        db: Db,
    },
}

/// `crmkit conflicts`.
#[derive(Debug, clap::Subcommand)]
pub enum ConflictsCommand {
    /// The open conflicts.
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Settles a conflict: writes the chosen value to every linked CRM that differs.
    Resolve {
        /// The conflict's id.
        id: String,
        /// Take this CRM's value.
        #[arg(long, value_parser = parse_crm, conflicts_with = "value", required_unless_present = "value")]
        take: Option<Crm>,
        /// Take this value (JSON, or plain text).
        #[arg(long)]
        value: Option<String>,
        /// On PostgreSQL, first free the leases of an interrupted sync whose process no
        /// longer runs, as `crmkit sync --break-lease` does.
        #[arg(long)]
        break_lease: bool,
        #[command(flatten)]
        db: Db,
    },
}

/// `crmkit migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The CRM copied from; it wins every field.
    #[arg(long, value_parser = parse_crm)]
    pub from: Crm,
    /// The CRM copied into.
    #[arg(long, value_parser = parse_crm)]
    pub to: Crm,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the JSON run report to this file instead of printing it.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub db: Db,
}

/// `crmkit init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The CRMs to sync.
    #[arg(long, value_parser = parse_crm, value_delimiter = ',', default_value = "close,hubspot")]
    pub crms: Vec<Crm>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Runs `crmkit sync retry list|reset` on the retry list of `crms`.
async fn retry(store: &Store, crms: &[Crm], command: RetryCommand) -> Result<(), Failure> {
    let pair = crmkit_sync::engine::pair_name(crms);
    let RetryCommand::Reset {
        all,
        records,
        break_lease,
    } = command
    else {
        return show::retries(store, &pair).await;
    };
    // A run records and clears retry entries as it goes: a reset holds the pair's leases, as
    // a run does, and writes fenced by them, so it never interleaves with a run's updates
    // (the leases of a killed sync are freed first, as `crmkit sync` does).
    connect::free_dead_lease(store, crms, break_lease, connect::Freeing::Reset).await?;
    let leases = hold_sync_leases(
        store,
        crms,
        &pair,
        RESET_LEASE_TTL,
        "the retry list cannot be reset meanwhile and nothing was re-armed",
    )
    .await?;
    let out = reset_retries(store, &pair, &leases, all, &records).await;
    let released = crmkit_sync::engine::release_leases(store, &leases)
        .await
        .map_err(Failure::from);
    out?;
    released
}

async fn facts(store: &Store, crms: &[Crm], command: FactsCommand) -> Result<(), Failure> {
    let name = crmkit_sync::engine::CLOSE_COUNTRY_CODE;
    let FactsCommand::Forget { break_lease } = command else {
        let code = store
            .account_fact(Crm::Close, name)
            .await
            .map_err(store_err)?;
        println!(
            "Close phone country code: {}",
            code.map_or(
                "not learned yet (any assigned code counts as Close's)".into(),
                |c| {
                    format!(
                        "+{c} (learned from a read-back; `crmkit sync facts forget` forgets it)"
                    )
                }
            )
        );
        return Ok(());
    };
    // A run reads the learned code when it starts and stores one it sees: the forgetting
    // holds the sync leases, as a run does, so it never lands in the middle of one.
    connect::free_dead_lease(store, crms, break_lease, connect::Freeing::Reset).await?;
    let pair = crmkit_sync::engine::pair_name(crms);
    let leases = hold_sync_leases(
        store,
        crms,
        &pair,
        RESET_LEASE_TTL,
        "the learned facts cannot be changed meanwhile and nothing was forgotten",
    )
    .await?;
    let forgotten = async {
        let mut tx = store.begin().await.map_err(store_err)?;
        for lease in &leases {
            tx.fence(lease).await.map_err(store_err)?;
        }
        let had = tx
            .forget_account_fact(Crm::Close, name)
            .await
            .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok::<_, Failure>(had)
    }
    .await;
    let released = crmkit_sync::engine::release_leases(store, &leases)
        .await
        .map_err(Failure::from);
    if forgotten? {
        println!("forgot the Close phone country code: the next read-back teaches it again");
    } else {
        println!("no Close phone country code was learned: nothing to forget");
    }
    released
}

/// How long a `crmkit sync retry reset` holds the pair's leases at most (it gives them back
/// at once; a killed one's expire then, or the next command frees them on SQLite).
const RESET_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a `crmkit conflicts resolve` holds the pair's leases at most: it reads and
/// writes the record in each CRM meanwhile, which a rate limit may slow down.
const RESOLVE_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Takes every sync lease of `crms` ([`crmkit_sync::engine::lease_names`], in that order as
/// a run does) for `ttl`; refused, naming the lease and saying what was not done
/// (`refused`), while a sync of the pair holds one.
async fn hold_sync_leases(
    store: &Store,
    crms: &[Crm],
    pair: &str,
    ttl: std::time::Duration,
    refused: &str,
) -> Result<Vec<crmkit_store::Lease>, Failure> {
    // Taken as a run takes them, under a holder naming this process, so a killed command's
    // leases are freed like a killed run's ([`connect::free_dead_lease`]).
    match crmkit_sync::engine::take_leases(store, crms, ttl).await? {
        Ok(leases) => Ok(leases),
        Err(name) => {
            // Who holds it and until when, as far as the store still says (it may have
            // been released since).
            let holder = match store.lease(&name).await.ok().flatten() {
                Some(l) => format!(
                    "held by {} until {} (database clock)",
                    l.holder,
                    l.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => "held".to_string(),
            };
            Err(Error::new(
                crmkit_core::ErrorKind::Conflict,
                format!(
                    "lease {name:?} is {holder}: a sync touching {pair} is running, or \
                         was killed before it released it; {refused}. Run this again once \
                         that sync has ended; if its process no longer runs, on PostgreSQL pass \
                         --break-lease (on SQLite its lease is freed on its own), or wait \
                         until the lease expires"
                ),
            )
            .into())
        }
    }
}

/// Re-arms `records` (or, with `all`, every given-up entry) of `pair`'s retry list in one
/// transaction fenced by `leases`.
async fn reset_retries(
    store: &Store,
    pair: &str,
    leases: &[crmkit_store::Lease],
    all: bool,
    records: &[RecordRef],
) -> Result<(), Failure> {
    let mut tx = store.begin().await.map_err(store_err)?;
    for lease in leases {
        tx.fence(lease).await.map_err(store_err)?;
    }
    if all {
        let done = tx.reset_given_up(pair).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        for e in &done {
            println!("re-armed {}", e.record);
        }
        println!(
            "{} given-up record(s) re-armed: the next crmkit sync tries them again",
            done.len()
        );
        return Ok(());
    }
    // One transaction: a record not listed (a typo, or synced meanwhile) re-arms nothing
    // at all.
    let mut missing = Vec::new();
    for r in records {
        if tx.reset_retry(pair, r).await.map_err(store_err)?.is_none() {
            missing.push(r.to_string());
        }
    }
    if !missing.is_empty() {
        tx.rollback().await.map_err(store_err)?;
        return Err(Error::new(
            crmkit_core::ErrorKind::NotFound,
            format!(
                "not on the retry list of {pair}: {} (crmkit sync retry list shows it); \
                 nothing was re-armed",
                missing.join(", ")
            ),
        )
        .into());
    }
    tx.commit().await.map_err(store_err)?;
    for r in records {
        println!("re-armed {r}");
    }
    println!(
        "{} record(s) re-armed: the next crmkit sync tries them again",
        records.len()
    );
    Ok(())
}

/// Runs `crmkit sync`.
pub async fn sync(config_path: &Path, args: SyncArgs) -> Result<(), Failure> {
    let store = connect::open_store(args.db.database_url.as_deref()).await?;
    match args.command {
        Some(SyncCommand::Status { runs }) => {
            let settings = Settings::load(config_path)?;
            let config = connect::load_config(config_path, &settings)?;
            return show::status(&store, &pair(&config), runs).await;
        }
        Some(SyncCommand::Retry { command }) => {
            let settings = Settings::load(config_path)?;
            let config = connect::load_config(config_path, &settings)?;
            return retry(&store, &config.sync.crms, command).await;
        }
        Some(SyncCommand::Facts { command }) => {
            let settings = Settings::load(config_path)?;
            let config = connect::load_config(config_path, &settings)?;
            return facts(&store, &config.sync.crms, command).await;
        }
        None => {}
    }
    let settings = Settings::load(config_path)?;
    let config = connect::load_config(config_path, &settings)?;
    if !args.dry_run {
        connect::free_dead_lease(
            &store,
            &config.sync.crms,
            args.break_lease,
            connect::Freeing::Sync,
        )
        .await?;
    }
    run_engine(
        &settings,
        config,
        store,
        args.dry_run,
        args.report.as_deref(),
    )
    .await
}

/// Runs `crmkit migrate --from A --to B`: a sync of the two in which `from` wins every
/// field, so records missing in `to` are created through its batch paths and linked.
pub async fn migrate(config_path: &Path, args: MigrateArgs) -> Result<(), Failure> {
    if args.from == args.to {
        return Err(Error::config("--from and --to name the same CRM").into());
    }
    let settings = Settings::load(config_path)?;
    // The entity settings of crmkit.toml (fields, custom fields, stage maps) apply; the CRMs
    // and the conflict policy are the migration's.
    let mut config = connect::load_config(config_path, &settings)
        .unwrap_or_else(|_| Config::new(vec![args.from, args.to]));
    // A run of [from, to] like any other, so one store still serves one set of CRMs: into a
    // store of a three-way sync the engine refuses it. Letting it in "because it only
    // creates" would not be safe: it also links and moves the bases of `from` and `to`,
    // so the three-way run would never send what it copied to the third CRM; a three-way
    // `crmkit sync` creates missing records itself.
    config.sync.crms = vec![args.from, args.to];
    config.sync.dry_run = false;
    for kind in [ObjectKind::Company, ObjectKind::Person, ObjectKind::Deal] {
        let e = match kind {
            ObjectKind::Company => &mut config.company,
            ObjectKind::Person => &mut config.person,
            _ => &mut config.deal,
        };
        e.conflict.policy = Some(PolicyKind::Primary);
        e.conflict.primary = Some(args.from);
        e.conflict.fields.clear();
    }
    let store = connect::open_store(args.db.database_url.as_deref()).await?;
    if !args.dry_run {
        connect::free_dead_lease(&store, &config.sync.crms, false, connect::Freeing::Sync).await?;
    }
    run_engine(
        &settings,
        config,
        store,
        args.dry_run,
        args.report.as_deref(),
    )
    .await
}

/// Writes a commented `crmkit.toml`.
pub fn init(config_path: &Path, args: InitArgs) -> Result<(), Failure> {
    if config_path.exists() && !args.force {
        return Err(Error::config(format!(
            "{} exists; pass --force to overwrite it",
            config_path.display()
        ))
        .into());
    }
    let mut text = crmkit_sync::config::render_default(&args.crms);
    text.push_str(
        "\n# Credentials may live here too (the environment wins):\n# [close]\n# api_key = \"…\"\n# base_url = \"https://api.close.com/api/v1/\"\n# [hubspot]\n# access_token = \"…\"\n",
    );
    Config::from_toml(&text)?;
    std::fs::write(config_path, text)?;
    println!("wrote {}", config_path.display());
    Ok(())
}

fn pair(config: &Config) -> String {
    crmkit_sync::engine::pair_name(&config.sync.crms)
}

/// Builds the watched connectors and runs (or plans) one sync, then prints the plan or
/// the summary and the run report.
async fn run_engine(
    settings: &Settings,
    config: Config,
    store: Store,
    dry_run: bool,
    report_path: Option<&Path>,
) -> Result<(), Failure> {
    let waits = Waits::default();
    let board = Board::new(waits.clone(), !dry_run);
    let conns: Vec<Arc<dyn Connector>> = connect::connectors(settings, &config.sync.crms, &waits)
        .await?
        .into_iter()
        .map(|c| board.watch(c))
        .collect();
    let engine = Engine::new(config, store.clone(), conns)?;
    let started = std::time::Instant::now();
    let outcome = if dry_run {
        engine.dry_run().await
    } else {
        engine.run().await
    };
    let tallies = board.finish();
    let report = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if dry_run {
        show::plan(&mut out, &report)?;
    } else {
        show::summary(&mut out, &report, &tallies)?;
    }
    let json = run_report(&report, &tallies, seconds);
    match report_path {
        Some(p) => {
            let full = if dry_run {
                serde_json::to_value(&report).unwrap_or(json)
            } else {
                json
            };
            std::fs::write(p, serde_json::to_string_pretty(&full).unwrap_or_default())?;
        }
        None if !dry_run => {
            use std::io::Write;
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            )?;
        }
        None => {}
    }
    if !report.errors.is_empty() && !dry_run {
        return Err(Error::new(
            crmkit_core::ErrorKind::Transient,
            format!(
                "{} record(s) could not be synced (listed above with the reason); run crmkit sync again to retry them",
                report.errors.len()
            ),
        )
        .into());
    }
    Ok(())
}

/// The JSON run report: counts, per CRM and object tallies, every record not synced with
/// the reason (`errors`: the run is partial), and the notices (`notices`: done otherwise, or
/// never doable; not failures).
pub fn run_report(
    report: &Report,
    tallies: &BTreeMap<(Crm, ObjectKind), Tally>,
    seconds: f64,
) -> Value {
    let per: Vec<Value> = tallies
        .iter()
        .map(|((crm, kind), t)| {
            json!({"crm": crm, "object": kind, "read": t.read, "created": t.created,
                   "updated": t.updated, "deleted": t.deleted, "failed": t.failed})
        })
        .collect();
    json!({
        "run": report.run.as_ref().map(|r| r.to_string()),
        "dry_run": report.dry_run,
        "status": if report.errors.is_empty() { "succeeded" } else { "partial" },
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "read": report.read,
        "created": report.created,
        "updated": report.updated,
        "linked": report.linked,
        "deleted": report.deleted,
        "echoes": report.echoes,
        "recovered": report.recovered,
        "per_crm": per,
        "conflicts": report.conflicts,
        "ambiguous": report.ambiguous,
        "errors": report.errors,
        "cascades": report.cascades,
        "notices": report.notices,
        "retried": report.retried,
        "retrying": report.retrying,
        "given_up": report.given_up,
    })
}

/// Finds a link by its uuid or by any CRM id.
async fn find_link(store: &Store, id: &str) -> Result<Option<Link>, Failure> {
    let map = |e: crmkit_store::Error| Failure::Crm(Error::config(format!("sync store: {e}")));
    if let Some(l) = store.link(&LinkId::new(id)).await.map_err(map)? {
        return Ok(Some(l));
    }
    for crm in [Crm::Close, Crm::HubSpot, Crm::Salesforce] {
        for kind in [ObjectKind::Company, ObjectKind::Person, ObjectKind::Deal] {
            if let Some(l) = store
                .link_by_record(&RecordRef::new(crm, kind, id))
                .await
                .map_err(map)?
            {
                return Ok(Some(l));
            }
        }
    }
    Ok(None)
}

/// Runs `crmkit links`.
pub async fn links(cmd: LinksCommand) -> Result<(), Failure> {
    let LinksCommand::Show { id, db } = cmd;
    let store = connect::open_store(db.database_url.as_deref()).await?;
    let Some(link) = find_link(&store, &id).await? else {
        return Err(Error::new(
            crmkit_core::ErrorKind::NotFound,
            format!("no link holds {id:?}"),
        )
        .into());
    };
    show::link(&store, &link).await
}

/// Runs `crmkit conflicts`.
pub async fn conflicts(config_path: &Path, cmd: ConflictsCommand) -> Result<(), Failure> {
    match cmd {
        ConflictsCommand::List { db } => {
            let store = connect::open_store(db.database_url.as_deref()).await?;
            show::conflicts(&store).await
        }
        ConflictsCommand::Resolve {
            id,
            take,
            value,
            break_lease,
            db,
        } => {
            let store = connect::open_store(db.database_url.as_deref()).await?;
            let settings = Settings::load(config_path)?;
            let config = connect::load_config(config_path, &settings)?;
            // A run plans from the links' stored bases and closes conflicts it finds
            // settled: a resolve holds the pair's leases, as a run does, so neither acts on
            // what the other is changing (a killed sync's leases are freed first).
            let crms = &config.sync.crms;
            connect::free_dead_lease(&store, crms, break_lease, connect::Freeing::Reset).await?;
            let leases = hold_sync_leases(
                &store,
                crms,
                &pair(&config),
                RESOLVE_LEASE_TTL,
                "the conflict cannot be resolved meanwhile and nothing was written",
            )
            .await?;
            // Renewed while the records are read and written (a slow CRM may take longer
            // than the leases live); once one is lost, nothing more is written.
            let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let renewal = crmkit_sync::engine::renew_leases(
                store.clone(),
                leases.clone(),
                RESOLVE_LEASE_TTL,
                std::sync::Arc::clone(&lost),
            );
            let held = Held {
                leases: &leases,
                lost: &lost,
            };
            let out = resolve(&settings, &config, &store, &held, &id, take, value).await;
            renewal.abort();
            let released = crmkit_sync::engine::release_leases(&store, &leases)
                .await
                .map_err(Failure::from);
            out?;
            released
        }
    }
}

/// `--value`'s text as a value of the conflict's field, read the way the field's values
/// are held: a custom field by its configured `type` (`ty`), which a value held apart from
/// it (a number field holding text a CRM let in) does not override; a built-in field as its
/// conflict's values show it. Text stays text (`123` is the text "123"; a JSON string such
/// as `'"Acme"'` is read as its text), a number must read as one, a list or an object is
/// given as JSON of that shape. Empty text clears the field. A value that does not fit is
/// refused, naming the field.
fn typed_value(
    field: &str,
    ty: Option<FieldType>,
    text: &str,
    values: &std::collections::BTreeMap<Crm, Value>,
) -> Result<Option<Value>, Failure> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let json: Option<Value> = serde_json::from_str(text).ok();
    let refused = |holds: &str, example: &str| -> Failure {
        Error::config(format!(
            "{field} holds {holds}: --value {text:?} is not one (e.g. --value '{example}'); \
             nothing was written"
        ))
        .into()
    };
    // A value of the kind the field holds: any number stands for a number field.
    let a_number = json!(0);
    let held = match ty {
        Some(FieldType::Text) => None,
        Some(FieldType::Number) => Some(&a_number),
        None => values.values().find(|v| !v.is_null()),
    };
    let value = match held {
        None | Some(Value::Null | Value::String(_)) => match json {
            Some(Value::String(s)) => Value::String(s),
            _ => Value::String(text.to_string()),
        },
        Some(Value::Number(_)) => json
            .filter(Value::is_number)
            .ok_or_else(|| refused("numbers", "1500.5"))?,
        Some(Value::Bool(_)) => json
            .filter(Value::is_boolean)
            .ok_or_else(|| refused("true or false", "true"))?,
        Some(Value::Array(_)) => json
            .filter(Value::is_array)
            .ok_or_else(|| refused("a list, given as JSON", r#"["a@acme.com"]"#))?,
        Some(Value::Object(_)) => json
            .filter(Value::is_object)
            .ok_or_else(|| refused("an object, given as JSON", r#"{"key": "value"}"#))?,
    };
    Ok(Some(value))
}

/// A value as shown in a message: its JSON, or "(empty)".
fn shown(v: Option<&Value>) -> String {
    v.map_or("(empty)".to_string(), Value::to_string)
}

/// The id in `to` of the `kind` record `id` of `from`, through its link; `None` when it is
/// not linked there.
async fn translate(
    store: &Store,
    kind: ObjectKind,
    from: Crm,
    id: &str,
    to: Crm,
) -> Result<Option<String>, Failure> {
    if from == to {
        return Ok(Some(id.to_string()));
    }
    let link = store
        .link_by_record(&RecordRef::new(from, kind, id))
        .await
        .map_err(store_err)?;
    Ok(link.and_then(|l| l.crm_id(to).map(str::to_string)))
}

/// `update` with `crm`'s side as [`crmkit_sync::engine::side_after_write`] judged it; a
/// side it leaves without a base (none was stored) is not touched.
fn stored(
    update: crmkit_store::LinkUpdate,
    crm: Crm,
    after: Option<(
        Option<crmkit_sync::values::FieldsHash>,
        crmkit_sync::values::FieldMap,
    )>,
) -> crmkit_store::LinkUpdate {
    match after {
        Some((Some(hash), base)) => {
            crmkit_sync::engine::stored_side(update, crm, hash.as_str(), &base)
        }
        Some((None, base)) => crmkit_sync::engine::stored_base(update, crm, &base),
        None => update,
    }
}

fn store_err(e: crmkit_store::Error) -> Failure {
    Failure::Crm(Error::config(format!("sync store: {e}")))
}

/// The sync leases a command holds, and whether their renewal found one lost.
struct Held<'a> {
    leases: &'a [crmkit_store::Lease],
    lost: &'a std::sync::atomic::AtomicBool,
}

impl Held<'_> {
    /// Fails once a lease is known lost: another holder (a sync started with
    /// `--break-lease`) may be writing the same records.
    fn check(&self, written: &[String]) -> Result<(), Failure> {
        if !self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        Err(Error::new(
            crmkit_core::ErrorKind::Conflict,
            format!(
                "the sync leases were lost (taken over by another process) before the next \
                 write, so nothing more was written{}",
                if written.is_empty() {
                    String::new()
                } else {
                    format!(" (written before: {})", written.join(", "))
                }
            ),
        )
        .into())
    }
}

async fn resolve(
    settings: &Settings,
    config: &Config,
    store: &Store,
    held: &Held<'_>,
    id: &str,
    take: Option<Crm>,
    value: Option<String>,
) -> Result<(), Failure> {
    let conflict_id = ConflictId::new(id);
    let conflict = store
        .conflict(&conflict_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            Error::new(
                crmkit_core::ErrorKind::NotFound,
                format!("no conflict {id}"),
            )
        })?;
    // Checked under the leases: a run closes the conflicts it finds settled (superseded),
    // and writing a closed conflict's values would overwrite what decided it.
    if conflict.status != crmkit_store::ConflictStatus::Open {
        let by = conflict.resolved_by.as_deref().unwrap_or("someone");
        return Err(Error::new(
            crmkit_core::ErrorKind::Conflict,
            format!(
                "conflict {id} is no longer open: it was resolved by {by} (a sync closes a \
                 conflict it finds settled or superseded); nothing was written. `crmkit \
                 conflicts list` shows the open ones"
            ),
        )
        .into());
    }
    let chosen: Option<Value> = match (take, value) {
        (Some(crm), _) => match conflict.values.get(&crm) {
            Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
            // Not a side of the conflict: taken as "empty", it would clear the field in
            // every CRM.
            None => {
                return Err(Error::config(format!(
                    "{crm} is not part of conflict {id} (its values are from {}): nothing \
                     was written",
                    conflict
                        .values
                        .keys()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into());
            }
        },
        (None, Some(text)) => {
            let ty = config
                .entity(conflict.entity)
                .and_then(|c| c.custom.get(&conflict.field))
                .map(crmkit_sync::config::CustomField::field_type);
            typed_value(&conflict.field, ty, &text, &conflict.values)?
        }
        (None, None) => return Err(Error::config("give --take <crm> or --value <value>").into()),
    };
    let link = store
        .link(&conflict.link)
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            Error::new(
                crmkit_core::ErrorKind::NotFound,
                format!("the link of conflict {id} is gone"),
            )
        })?;
    let cfg = config
        .entity(conflict.entity)
        .ok_or_else(|| Error::config(format!("{}s are not synced", conflict.entity)))?;
    // A side known to be deleted is neither read nor written (a sync would not recreate it
    // either), and the output says so.
    let (deleted, crms): (Vec<Crm>, Vec<Crm>) = config
        .sync
        .crms
        .iter()
        .copied()
        .filter(|c| link.crm_id(*c).is_some())
        .partition(|c| link.hash(*c) == Some(crmkit_sync::plan::DELETED));
    let waits = Waits::default();
    let conns = connect::connectors(settings, &crms, &waits).await?;
    // References are compared (and queued) as the anchor CRM's ids, the first of
    // `[sync] crms`, as the sync plans them.
    let anchor = config.sync.crms.first().copied().unwrap_or(Crm::Close);
    let reference = crmkit_sync::values::reference_kind(&conflict.field);
    // Every record read first: a value changed since the conflict was queued (an edit,
    // or a sync that settled it) makes its stored values stale, and writing one of them
    // would overwrite the newer value.
    let mut current = Vec::new();
    let mut stale = Vec::new();
    for conn in &conns {
        let crm = conn.crm();
        let Some(rid) = link.crm_id(crm) else {
            continue;
        };
        let record = conn.get(conflict.entity, rid).await?;
        let before = crmkit_sync::values::extract(&record, crm, cfg)?;
        let mut now = before.get(conflict.field.as_str()).cloned();
        if let (Some(kind), Some(Value::String(local))) = (reference, &now) {
            now = translate(store, kind, crm, local, anchor)
                .await?
                .map(Value::String);
        }
        let queued = conflict.values.get(&crm).filter(|v| !v.is_null()).cloned();
        if conflict.values.contains_key(&crm) && now != queued {
            stale.push(format!(
                "{crm} {} {rid}: {} is {} now, {} when the conflict was queued",
                conflict.entity,
                conflict.field,
                shown(now.as_ref()),
                shown(queued.as_ref())
            ));
        } else if !conflict.values.contains_key(&crm) {
            // A CRM the conflict does not name is written too: only where it still holds
            // what was last synced to it, so an edit made there since is not overwritten.
            let held = before.get(conflict.field.as_str());
            let last = crmkit_sync::engine::last_synced(&link, crm, &before);
            let synced = last
                .as_ref()
                .and_then(|b| b.get(conflict.field.as_str()))
                .filter(|v| !v.is_null());
            let unknown = last.is_none() && held.is_some();
            if unknown || (last.is_some() && held != synced) {
                stale.push(format!(
                    "{crm} {} {rid}: {} is {} now, {} when last synced",
                    conflict.entity,
                    conflict.field,
                    shown(held),
                    if unknown {
                        "unknown".to_string()
                    } else {
                        shown(synced)
                    }
                ));
            }
        }
        current.push((conn, crm, rid, record, before, now));
    }
    if !stale.is_empty() {
        return Err(Error::config(format!(
            "conflict {id} is out of date, its values changed since it was queued ({}): \
             nothing was written; run `crmkit sync` to plan the record again (it closes the \
             conflict or queues it anew with the current values)",
            stale.join("; ")
        ))
        .into());
    }
    // Sides with a synced state first: should a later write fail, a side written before it
    // holds the chosen value against its last-synced one, an edit the next sync carries on.
    // A side with none (new to the link, or a relinked merge winner) is no edit by itself,
    // so it is written last.
    current.sort_by_key(|(_, crm, ..)| link.hash(*crm).is_none());
    let field = crmkit_sync::values::Field::intern(&conflict.field);
    let mut written = Vec::new();
    // What the link stores for each side afterwards, so the next run sees no change where
    // the side holds the chosen value (see `crmkit_sync::engine::side_after_write`).
    let mut update = crmkit_store::LinkUpdate::new();
    let mut out = Ok(());
    for (conn, crm, rid, record, before, now) in current {
        if now == chosen {
            // Not written: its base of the field becomes what it holds, the chosen value,
            // as its own ids for a reference.
            let held: crmkit_sync::values::Writes =
                [(field, before.get(&field).cloned())].into_iter().collect();
            let after = crmkit_sync::engine::side_after_write(&link, crm, &before, &before, &held);
            update = stored(update, crm, after);
            continue;
        }
        // Written, then read back and judged as a run judges its writes.
        let step = async {
            held.check(&written)?;
            // A reference is chosen as the anchor's id: written as this CRM's own id of
            // the same record, never as another CRM's id.
            let value = match (reference, &chosen) {
                (Some(kind), Some(Value::String(anchored))) => {
                    match translate(store, kind, anchor, anchored, crm).await? {
                        Some(local) => Some(Value::String(local)),
                        None => {
                            return Err(Error::config(format!(
                                "{} {anchored} of {anchor}, chosen for {} of {crm} {rid}, is \
                                 not linked in {crm}: run `crmkit sync` to link it first{}",
                                kind,
                                conflict.field,
                                if written.is_empty() {
                                    " (nothing was written)".to_string()
                                } else {
                                    format!(" (written so far: {})", written.join(", "))
                                }
                            ))
                            .into());
                        }
                    }
                }
                _ => chosen.clone(),
            };
            let changes: crmkit_sync::values::Writes = [(field, value)].into_iter().collect();
            let mut record = record;
            crmkit_sync::values::apply(&mut record, crm, cfg, &changes)?;
            let mut out = conn.update(vec![record]).await;
            match out.results.pop() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Failure::from(e)),
                None => {
                    return Err(Error::bad_response(format!(
                        "no result for the update of {crm} {rid}"
                    ))
                    .into());
                }
            }
            // The CRM may keep the value its own way (one e-mail of two, a phone in E.164,
            // a time as a date): its read-back is the base, or the next run would take it
            // for an edit there and copy it over the others.
            let read_back = conn.get(conflict.entity, rid).await?;
            let read_back = crmkit_sync::values::extract(&read_back, crm, cfg)?;
            Ok(crmkit_sync::engine::side_after_write(
                &link, crm, &read_back, &before, &changes,
            ))
        }
        .await;
        match step {
            Ok(after) => {
                update = stored(update, crm, after);
                written.push(format!("{crm}:{rid}"));
            }
            Err(e) if written.is_empty() => {
                out = Err(e);
                break;
            }
            Err(e) => {
                let kind = match &e {
                    Failure::Crm(c) => c.kind(),
                    _ => crmkit_core::ErrorKind::BadResponse,
                };
                out = Err(Error::new(
                    kind,
                    format!(
                        "conflict {id}: {} = {} was written to {}, then the write to {crm} \
                         {rid} failed: {e}. The conflict stays open and no side's synced \
                         state was changed, so the next `crmkit sync` takes the new value \
                         where it was written for that CRM's edit and carries it to the \
                         others (settled by the field's rule where another CRM's value \
                         changed too)",
                        conflict.field,
                        shown(chosen.as_ref()),
                        written.join(", ")
                    ),
                )
                .into());
                break;
            }
        }
    }
    // Every write went through: one transaction fenced by the leases stores the sides' new
    // bases and closes the conflict. After a failed write nothing is stored: a side written
    // before it keeps its last-synced base, so the next run sees the chosen value there as
    // that side's change and propagates it (its bases stored instead, the written and the
    // unwritten CRMs would both look unchanged and stay apart in silence).
    if out.is_ok() {
        let mut tx = store.begin().await.map_err(store_err)?;
        for lease in held.leases {
            tx.fence(lease).await.map_err(store_err)?;
        }
        tx.update_link(&link, &update).await.map_err(store_err)?;
        let resolution =
            json!({"field": conflict.field, "value": chosen, "take": take, "written": written});
        tx.resolve_conflict(&conflict_id, &resolution, "crmkit conflicts resolve")
            .await
            .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
    }
    out?;
    println!(
        "resolved {id}: {} = {} (written to {}){}",
        conflict.field,
        chosen.map_or("(empty)".to_string(), |v| v.to_string()),
        if written.is_empty() {
            "none: every CRM already agreed".to_string()
        } else {
            written.join(", ")
        },
        deleted
            .iter()
            .filter_map(|c| link
                .crm_id(*c)
                .map(|rid| format!("; skipped {c}:{rid}, deleted there")))
            .collect::<String>()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn held(v: Value) -> BTreeMap<Crm, Value> {
        BTreeMap::from([(Crm::Close, v), (Crm::HubSpot, Value::Null)])
    }

    #[test]
    fn a_notice_is_printed_and_reported_apart_from_failures() {
        let report = Report {
            notices: vec![
                "close:person:cont_1: created in hubspot under 12: its company 11 \
                           was merged into it (merge under review)"
                    .into(),
            ],
            ..Report::default()
        };
        let mut out = Vec::new();
        show::summary(&mut out, &report, &BTreeMap::new()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("note: close:person:cont_1: created in hubspot under 12"),
            "{out}"
        );
        assert!(!out.contains("not synced"), "{out}");
        let json = run_report(&report, &BTreeMap::new(), 0.0);
        assert_eq!(json["status"], "succeeded", "{json}");
        assert_eq!(json["errors"], json!([]), "{json}");
        assert_eq!(json["notices"], json!(report.notices), "{json}");
    }

    #[test]
    fn a_chosen_value_is_read_as_the_field_holds_its_values() {
        let text = held(json!("Acme"));
        assert_eq!(
            typed_value("name", None, "123", &text).unwrap(),
            Some(json!("123")),
            "text stays text"
        );
        assert_eq!(
            typed_value("name", None, "true", &text).unwrap(),
            Some(json!("true"))
        );
        assert_eq!(
            typed_value("name", None, r#""Acme Inc""#, &text).unwrap(),
            Some(json!("Acme Inc"))
        );
        assert_eq!(
            typed_value("name", None, "  ", &text).unwrap(),
            None,
            "clears"
        );
        let number = held(json!(1200));
        assert_eq!(
            typed_value("amount", None, "1500.5", &number).unwrap(),
            Some(json!(1500.5))
        );
        let e = typed_value("amount", None, "lots", &number)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("amount") && e.contains("lots") && !e.contains("  "),
            "{e}"
        );
        let list = held(json!(["a@acme.com"]));
        assert_eq!(
            typed_value("emails", None, r#"["b@acme.com"]"#, &list).unwrap(),
            Some(json!(["b@acme.com"]))
        );
        let e = typed_value("emails", None, "b@acme.com", &list)
            .unwrap_err()
            .to_string();
        assert!(e.contains("emails") && e.contains("list"), "{e}");
        // A custom field's configured type decides, whatever a CRM let it hold.
        let odd = held(json!("n/a"));
        let e = typed_value("budget", Some(FieldType::Number), "lots", &odd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("budget") && e.contains("numbers"), "{e}");
        assert_eq!(
            typed_value("budget", Some(FieldType::Number), "1500", &odd).unwrap(),
            Some(json!(1500))
        );
        assert_eq!(
            typed_value("tier", Some(FieldType::Text), "2.10", &number).unwrap(),
            Some(json!("2.10"))
        );
    }
}
