//! The `crmkit` command line.
//!
//! Listings (`crmkit close leads list`, `crmkit close search`) print each record as it
//! arrives instead of collecting the listing first. `--output` picks the shape:
//!
//! | format | what it prints |
//! |---|---|
//! | `table` (default) | the main fields in aligned columns, in chunks of 100 rows, each with its header |
//! | `json` | one JSON array of whole objects, streamed element by element (`jq '.[]'`); a single object for get, create and update |
//! | `ndjson` | one whole JSON object per line |
//! | `csv` | the main fields with a header row |
//!
//! While stdout goes to a file or a pipe and stderr is a terminal, stderr shows a running
//! count with the rate. While the client holds a request back it says so, counting down:
//! `waiting 3.2 s for the rate limit (GET lead/)` or `retrying after 503 in 1.0 s (GET
//! lead/)`; a page that takes more than a second otherwise shows `waiting for the answer`.
//! Benchmarks, whose totals are known, draw a bar with the time left. A closed pipe
//! (`| head`) ends the command quietly.
//! `crmkit completions bash|zsh|fish|powershell|elvish` prints a completion script.
//!
//! A listing that fails part way still prints the records it fetched (a JSON array is
//! closed, so it parses) and then exits non-zero with `error: the listing stopped after N
//! <records>: <why>`. `--filter` is refused where Close would ignore it: leads take none
//! (narrow them with `crmkit close search`), contacts only `lead_id`. Numeric options are
//! range-checked when read (`--window-ms` 1 ms to one day, limits at least 1).
//!
//! `crmkit hubspot <object> list|get|create|update|archive|search`, `crmkit hubspot
//! associate` and `crmkit hubspot pipelines` work the same way (see the `hubspot` module);
//! `HUBSPOT_ACCESS_TOKEN` and `HUBSPOT_BASE_URL`, or `[hubspot] access_token, base_url` in
//! `crmkit.toml`, configure them.
//!
//! `crmkit salesforce query|sobject|bulk import|limits` do the same for Salesforce (see the
//! `salesforce` module), configured by `SF_*` variables or `[salesforce]` in `crmkit.toml`;
//! `crmkit sandbox salesforce` prints the lines that point them at a local emulator.
//!
//! `crmkit bench sandbox` and `crmkit bench close-import` measure the sandbox and the
//! budgeted client; each ends with one line of `name=value` figures (see their `--help`).

/// The allocator: mimalloc, because planning a sync allocates and frees many small values
/// (field values, ids, hashes) and glibc's malloc spent much of a plan's time on them. Its
/// v2 line, because v3 handed freed pages back and faulted them in again on every chunk of
/// `bench sync-plan` (a seventh of the time); v2 keeps them for reuse, which bounds a long
/// `crmkit sync` or sandbox process by its peak, not its total, allocation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bounds;
mod config;
mod demo;
mod failure;
mod hubspot;
mod listing;
mod output;
mod progress;
mod salesforce;
mod sync;
mod waits;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use crmkit_close::Client;
use crmkit_core::http::ApiRequest;
use crmkit_core::{Error, ExposeSecret};
use serde_json::Value;

use config::Settings;
use failure::Failure;
use output::{Format, Printer};
use waits::Waits;

/// What a command ends with.
type Outcome = std::result::Result<(), Failure>;

/// Lead fields a search returns: the table columns plus what a JSON reader most often wants
/// (`/data/search/` returns only `id` without `_fields`; close-openapi.yml /data/search/).
const SEARCH_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "name",
    "status_id",
    "status_label",
    "url",
    "description",
    "date_created",
    "date_updated",
];

/// crmkit: CRM clients, sync and a local sandbox of Close, HubSpot and Salesforce.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "crmkit.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system offline against seeded sandbox CRMs and print a summary.
    Demo {
        /// Leads to seed.
        #[arg(long, default_value_t = 200)]
        leads: usize,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Work with Close.
    Close {
        #[command(subcommand)]
        command: CloseCommand,
    },
    /// Work with HubSpot: records of any object type, associations, pipelines.
    #[command(
        after_help = "Records: crmkit hubspot <OBJECT> list|get|create|update|archive|search [ID] [OPTIONS],\nwhere OBJECT is contacts, companies, deals, notes, calls, tasks, meetings, emails or any\ntype name or id; see `crmkit hubspot contacts --help`."
    )]
    Hubspot {
        #[command(subcommand)]
        command: hubspot::HubSpotCommand,
    },
    /// Work with Salesforce: SOQL queries, records of any sObject type, Bulk API 2.0 imports,
    /// limits.
    Salesforce {
        #[command(subcommand)]
        command: salesforce::SalesforceCommand,
    },
    /// Check each configured credential with a cheap call (and HubSpot's scopes,
    /// Salesforce's API version and daily quota).
    Doctor,
    /// Run a sandbox CRM.
    Sandbox {
        #[command(subcommand)]
        crm: SandboxCommand,
    },
    /// Run a benchmark; the last line holds the figures as name=value pairs.
    Bench {
        #[command(subcommand)]
        bench: bench::Bench,
    },
    /// Sync the configured CRMs both ways (`--dry-run` prints the plan); `sync status`;
    /// `sync retry list|reset` (the retry list; given-up records re-armed).
    Sync(sync::SyncArgs),
    /// Show what the sync store links across CRMs.
    Links {
        #[command(subcommand)]
        command: sync::LinksCommand,
    },
    /// List and settle field conflicts the sync queued (policy `manual`).
    Conflicts {
        #[command(subcommand)]
        command: sync::ConflictsCommand,
    },
    /// Copy everything from one CRM into another through the sync engine (the source wins).
    Migrate(sync::MigrateArgs),
    /// Write a commented crmkit.toml.
    Init(sync::InitArgs),
    /// Print a shell completion script, e.g. `crmkit completions bash > ~/.local/share/bash-completion/completions/crmkit`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Close, HubSpot and Salesforce sandboxes seeded from one shared world (overlapping
    /// records with differing fields); prints the `export` lines that point crmkit at them.
    All {
        /// Seed of the world.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Companies in the world (at most 10,000,000).
        #[arg(long, default_value_t = 40, value_parser = bounds::leads())]
        companies: usize,
        /// Close's port on 127.0.0.1 (0 for any free port).
        #[arg(long, default_value_t = 8025)]
        close_port: u16,
        /// HubSpot's port on 127.0.0.1 (0 for any free port).
        #[arg(long, default_value_t = 8026)]
        hubspot_port: u16,
        /// Salesforce's port on 127.0.0.1 (0 for any free port).
        #[arg(long, default_value_t = 8027)]
        salesforce_port: u16,
        /// Faults each injects from the start, as JSON, e.g. '{"rate_429":0.05}'.
        #[arg(long)]
        faults: Option<String>,
    },
    /// The Close API emulator.
    Close {
        /// Port on 127.0.0.1 (0 for any free port).
        #[arg(long, default_value_t = 8025)]
        port: u16,
        /// Seed of ids and data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Leads to seed (at most 10,000,000).
        #[arg(long, default_value_t = 100, value_parser = bounds::leads())]
        leads: usize,
        /// Accepted API key (repeatable); any non-empty key when none is given.
        #[arg(long = "api-key")]
        api_keys: Vec<String>,
        /// Requests per endpoint group per window (at least 1).
        #[arg(long, default_value_t = 100, value_parser = bounds::rate_limit())]
        rate_limit: u32,
        /// The rate window in milliseconds (1 to 86,400,000, one day).
        #[arg(long, default_value_t = 10_000, value_parser = bounds::window_ms())]
        window_ms: u64,
        /// Faults to inject from the start, as JSON, e.g. '{"rate_429":0.05,"latency_ms":20}'.
        #[arg(long)]
        faults: Option<String>,
    },
    /// The HubSpot API emulator, served at the root of its port like api.hubapi.com.
    Hubspot {
        /// Port on 127.0.0.1 (0 for any free port).
        #[arg(long, default_value_t = 8026)]
        port: u16,
        /// Seed of ids and data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Companies to seed, with their contacts and deals (at most 10,000,000).
        #[arg(long, default_value_t = 100, value_parser = bounds::leads())]
        companies: usize,
        /// Accepted bearer token (repeatable); any non-empty token when none is given.
        #[arg(long = "token")]
        tokens: Vec<String>,
        /// Requests per ten seconds per token: 100, or 190 for higher tiers (at least 1).
        #[arg(long, default_value_t = 100, value_parser = bounds::rate_limit())]
        burst_limit: u32,
        /// Faults to inject from the start, as JSON, e.g. '{"rate_429":0.05,"latency_ms":20}'.
        #[arg(long)]
        faults: Option<String>,
    },
    /// The Salesforce API emulator, an org instance and its login host on one port.
    Salesforce {
        /// Port on 127.0.0.1 (0 for any free port).
        #[arg(long, default_value_t = 8027)]
        port: u16,
        /// Seed of ids and data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// World companies to generate (at most 10,000,000); Salesforce holds about half as
        /// Accounts, with their Contacts and Opportunities.
        #[arg(long, default_value_t = 100, value_parser = bounds::leads())]
        companies: usize,
        /// API requests per day for the org (at least 1; a Developer Edition org has 15,000).
        #[arg(long, default_value_t = 15_000, value_parser = bounds::rate_limit())]
        daily_limit: u32,
        /// Records per query page (at least 1; Salesforce's default is 2,000).
        #[arg(long, default_value_t = 2_000, value_parser = bounds::leads())]
        page_size: usize,
        /// Faults to inject from the start, as JSON, e.g. '{"rate_500":0.05,"latency_ms":20}'.
        #[arg(long)]
        faults: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CloseResource {
    Leads,
    Contacts,
    Opportunities,
    Activities,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Action {
    List,
    Get,
    Create,
    Update,
    Delete,
}

#[derive(Debug, Subcommand)]
enum CloseCommand {
    /// Search leads with the Close query language, e.g. 'company:Acme sort:date_updated desc'.
    Search {
        /// The query.
        query: String,
        /// Stop after this many leads.
        #[arg(long)]
        max: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    #[command(flatten)]
    Resource(ResourceCommand),
}

#[derive(Debug, clap::Args)]
struct ResourceArgs {
    /// What to do.
    #[arg(value_enum)]
    action: Action,
    /// The object id (get, update, delete).
    id: Option<String>,
    /// JSON fields (create, update), e.g. '{"name": "Acme"}'.
    #[arg(long)]
    data: Option<String>,
    /// Filters for list, e.g. --filter lead_id=lead_… (repeatable): contacts take only
    /// lead_id, leads none (use `close search`), opportunities and activities the fields
    /// Close documents for them, such as date_created__gte.
    #[arg(long = "filter", value_parser = parse_filter)]
    filters: Vec<(String, String)>,
    /// Stop after this many objects (list).
    #[arg(long)]
    max: Option<usize>,
    /// Activity type (note, call, email, meeting, sms): needed to create; found from the id otherwise.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Debug, Subcommand)]
enum ResourceCommand {
    /// Leads.
    Leads(ResourceArgs),
    /// Contacts.
    Contacts(ResourceArgs),
    /// Opportunities.
    Opportunities(ResourceArgs),
    /// Activities.
    Activities(ResourceArgs),
}

fn parse_filter(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

/// `--faults` as JSON (none when not given), with each share a number from 0 to 1 and the
/// latency within [`bounds::MAX_LATENCY_MS`].
fn parse_faults(text: Option<&str>) -> crmkit_core::Result<crmkit_sandbox::faults::Faults> {
    let Some(text) = text else {
        return Ok(crmkit_sandbox::faults::Faults::default());
    };
    let faults: crmkit_sandbox::faults::Faults = serde_json::from_str(text)
        .map_err(|e| Error::config(format!("--faults is not valid: {e}")))?;
    let shares = [
        ("rate_429", faults.rate_429),
        ("rate_500", faults.rate_500),
        ("rate_503", faults.rate_503),
        ("rate_drop", faults.rate_drop),
        ("rate_processed_drop", faults.rate_processed_drop),
    ];
    if let Some((name, share)) = shares.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        return Err(Error::config(format!(
            "--faults {name} is {share}; a share must be from 0 to 1"
        )));
    }
    if faults.latency_ms > bounds::MAX_LATENCY_MS {
        return Err(Error::config(format!(
            "--faults latency_ms is {}; it must be at most {} (one minute)",
            faults.latency_ms,
            bounds::MAX_LATENCY_MS
        )));
    }
    Ok(faults)
}

/// The error of a sandbox (`which`: Close, HubSpot, Salesforce) that could not listen on
/// `port`.
pub(crate) fn cannot_start(which: &'static str, port: u16) -> impl FnOnce(std::io::Error) -> Error {
    move |e| {
        Error::config(format!(
            "cannot start the {which} sandbox on port {port}: {e}"
        ))
    }
}

/// Waits until the user presses Ctrl-C (a sandbox command serves until then).
pub(crate) async fn until_ctrl_c() -> crmkit_core::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Error::config(format!("cannot wait for Ctrl-C: {e}")))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_closed_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Demo { leads, seed } => Ok(demo::run(leads, seed).await?),
        Command::Bench { bench } => bench::run(bench).await,
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "crmkit", &mut out);
            Ok(std::io::Write::flush(&mut out)?)
        }
        Command::Sandbox {
            crm:
                SandboxCommand::Close {
                    port,
                    seed,
                    leads,
                    api_keys,
                    rate_limit,
                    window_ms,
                    faults,
                },
        } => {
            let faults = parse_faults(faults.as_deref())?;
            let mut b = crmkit_sandbox::close::CloseSandbox::builder()
                .faults(faults)
                .seed(seed)
                .leads(leads)
                .rate_limit(rate_limit, Duration::from_millis(window_ms))
                .bind(([127, 0, 0, 1], port).into());
            for k in api_keys {
                b = b.api_key(k);
            }
            let sandbox = b.start().await.map_err(cannot_start("Close", port))?;
            println!(
                "Close sandbox listening at {} (API root {})",
                sandbox.base_url(),
                sandbox.api_url()
            );
            println!(
                "Point crmkit at it with CLOSE_BASE_URL={} and any CLOSE_API_KEY. Ctrl-C stops it.",
                sandbox.api_url()
            );
            Ok(until_ctrl_c().await?)
        }
        Command::Sandbox {
            crm:
                SandboxCommand::Hubspot {
                    port,
                    seed,
                    companies,
                    tokens,
                    burst_limit,
                    faults,
                },
        } => {
            let faults = parse_faults(faults.as_deref())?;
            let sandbox = crmkit_sandbox::hubspot::HubSpotSandbox::builder()
                .faults(faults)
                .seed(seed)
                .companies(companies)
                .tokens(tokens)
                .burst_limit(burst_limit, Duration::from_secs(10))
                .bind(([127, 0, 0, 1], port).into())
                .start()
                .await
                .map_err(cannot_start("HubSpot", port))?;
            println!("HubSpot sandbox listening at {}", sandbox.base_url());
            println!(
                "Point a HubSpot client at it with HUBSPOT_BASE_URL={} and any HUBSPOT_ACCESS_TOKEN. Ctrl-C stops it.",
                sandbox.base_url()
            );
            Ok(until_ctrl_c().await?)
        }
        Command::Sandbox {
            crm:
                SandboxCommand::Salesforce {
                    port,
                    seed,
                    companies,
                    daily_limit,
                    page_size,
                    faults,
                },
        } => {
            let faults = parse_faults(faults.as_deref())?;
            let sandbox = crmkit_sandbox::salesforce::SalesforceSandbox::builder()
                .faults(faults)
                .seed(seed)
                .companies(companies)
                .daily_limit(daily_limit)
                .page_size(page_size)
                .bind(([127, 0, 0, 1], port).into())
                .start()
                .await
                .map_err(cannot_start("Salesforce", port))?;
            let url = sandbox.instance_url();
            println!("Salesforce sandbox listening at {url}");
            println!(
                "Point crmkit at it with these lines (environment or .env); it accepts any client id and secret, and a JWT signed by any key. Ctrl-C stops it."
            );
            for line in salesforce_env(&url) {
                println!("{line}");
            }
            Ok(until_ctrl_c().await?)
        }
        Command::Sandbox {
            crm:
                SandboxCommand::All {
                    seed,
                    companies,
                    close_port,
                    hubspot_port,
                    salesforce_port,
                    faults,
                },
        } => {
            let faults = parse_faults(faults.as_deref())?;
            Ok(sync::world::run(sync::world::Options {
                seed,
                companies,
                ports: (close_port, hubspot_port, salesforce_port),
                faults,
                rate_limit: 100,
            })
            .await?)
        }
        Command::Sync(args) => sync::sync(&cli.config, args).await,
        Command::Links { command } => sync::links(command).await,
        Command::Conflicts { command } => sync::conflicts(&cli.config, command).await,
        Command::Migrate(args) => sync::migrate(&cli.config, args).await,
        Command::Init(args) => sync::init(&cli.config, args),
        Command::Doctor => doctor(&Settings::load(&cli.config)?).await,
        Command::Salesforce { command } => {
            salesforce::run(&Settings::load(&cli.config)?, command).await
        }
        Command::Hubspot { command } => hubspot::run(&Settings::load(&cli.config)?, command).await,
        Command::Close { command } => {
            let waits = Waits::default();
            let client = Settings::load(&cli.config)?
                .close_builder()?
                .observer(waits.observer())
                .build()?;
            match command {
                CloseCommand::Search { query, max, output } => {
                    let req = client
                        .search_text_request(&query)
                        .await?
                        .fields("lead", SEARCH_FIELDS);
                    let leads = client.search(req);
                    let cols = output::columns("leads");
                    listing::print_stream(leads, cols, output, max, "leads", &waits).await?;
                    Ok(())
                }
                CloseCommand::Resource(r) => resource(&client, r, &waits).await,
            }
        }
    }
}

async fn doctor(settings: &Settings) -> Outcome {
    let mut problems = 0;
    match settings.close_client() {
        Err(e) => {
            println!("close: not configured ({e})");
        }
        Ok(client) => match client.me().await {
            Ok(me) => println!(
                "close: ok — authenticated as {} at {}",
                me.email.unwrap_or(me.id),
                client.transport().base_url()
            ),
            Err(e) => {
                problems += 1;
                let hint = match e.kind() {
                    crmkit_core::ErrorKind::Auth => {
                        "the API key is wrong or revoked; create a new one in Close under Settings → API Keys"
                    }
                    crmkit_core::ErrorKind::Transient => {
                        "Close could not be reached; check the network or CLOSE_BASE_URL"
                    }
                    _ => "see the error above",
                };
                println!("close: FAILED — {e}\n       fix: {hint}");
            }
        },
    }
    if let Some(secret) = &settings.close.webhook_secret {
        let hex_key = secret.expose_secret().trim();
        if hex_key.len() == 64 && crmkit_close::webhook::sign(secret, "0", b"").is_ok() {
            println!("close webhook secret: ok");
        } else {
            problems += 1;
            println!(
                "close webhook secret: FAILED — CLOSE_WEBHOOK_SECRET must be the subscription's signature_key, 64 hex characters"
            );
        }
    }
    problems += hubspot::doctor::check(settings).await;
    problems += salesforce::doctor::check(settings).await;
    if problems > 0 {
        return Err(Error::config(format!("{problems} credential(s) failed")).into());
    }
    Ok(())
}

async fn resource(client: &Client, cmd: ResourceCommand, waits: &Waits) -> Outcome {
    let (name, args) = match cmd {
        ResourceCommand::Leads(a) => ("leads", a),
        ResourceCommand::Contacts(a) => ("contacts", a),
        ResourceCommand::Opportunities(a) => ("opportunities", a),
        ResourceCommand::Activities(a) => ("activities", a),
    };
    let collection = match (name, args.kind.as_deref()) {
        ("leads", _) => "lead/".to_string(),
        ("contacts", _) => "contact/".to_string(),
        ("opportunities", _) => "opportunity/".to_string(),
        (_, Some(kind)) => format!("activity/{kind}/"),
        (_, None) if matches!(args.action, Action::Create) => {
            return Err(Error::config("creating an activity needs --type note|call|email").into());
        }
        _ => "activity/".to_string(),
    };
    let data = || -> crmkit_core::Result<Value> {
        let text = args
            .data
            .as_deref()
            .ok_or_else(|| Error::config("this action needs --data '{…}' with the fields"))?;
        serde_json::from_str(text)
            .map_err(|e| Error::config(format!("--data is not valid JSON: {e}")))
    };
    let id = || -> crmkit_core::Result<&str> {
        args.id
            .as_deref()
            .ok_or_else(|| Error::config(format!("this action needs the {name} id")))
    };
    // Activity item endpoints are typed; without --type, find the type from the id.
    let item = || async {
        let id = id()?;
        if name == "activities" && args.kind.is_none() {
            return Ok::<_, Error>(format!("{}{id}/", client.find_activity(id).await?.0));
        }
        Ok(format!("{collection}{id}/"))
    };
    let cols = output::columns(name);
    match args.action {
        Action::List => {
            check_filters(name, &args.filters)?;
            let mut builder = client.resource::<Value>(&collection).list();
            for (k, v) in &args.filters {
                builder = builder.filter(k.clone(), v.clone());
            }
            let stream = builder.stream();
            listing::print_stream(stream, cols, args.output, args.max, name, waits).await?;
        }
        Action::Get => {
            let row = client.raw(&ApiRequest::get(item().await?)).await?;
            print_one(&row, cols, args.output)?;
        }
        Action::Create => {
            let row = client.raw(&ApiRequest::post(collection, data()?)).await?;
            print_one(&row, cols, args.output)?;
        }
        Action::Update => {
            let row = client.raw(&ApiRequest::put(item().await?, data()?)).await?;
            print_one(&row, cols, args.output)?;
        }
        Action::Delete => {
            client.raw(&ApiRequest::delete(item().await?)).await?;
            println!("deleted {}", id()?);
        }
    }
    Ok(())
}

/// Refuses a `--filter` the listing would silently drop: Close's `GET /lead/` documents no
/// filters and `GET /contact/` only `lead_id` (close-openapi.yml /lead/, /contact/), so
/// either would come back unfiltered.
fn check_filters(name: &str, filters: &[(String, String)]) -> crmkit_core::Result<()> {
    let refused = |msg: String| Err(Error::new(crmkit_core::ErrorKind::Validation, msg));
    match name {
        "leads" if !filters.is_empty() => refused(
            "leads list takes no --filter, since Close lists leads unfiltered; narrow leads with `crmkit close search 'QUERY'` instead".into(),
        ),
        "contacts" => match filters.iter().find(|(k, _)| k != "lead_id") {
            Some((k, _)) => refused(format!(
                "contacts list supports only --filter lead_id=…, not {k}, since Close documents no other filter on contacts"
            )),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The variables that point crmkit at a Salesforce sandbox at `url`: the client-credentials
/// flow, which the sandbox's token endpoint serves at the instance itself.
fn salesforce_env(url: &str) -> [String; 4] {
    [
        format!("SF_INSTANCE_URL={url}"),
        format!("SF_LOGIN_URL={url}"),
        "SF_CLIENT_ID=crmkit-sandbox".to_string(),
        "SF_CLIENT_SECRET=crmkit-sandbox".to_string(),
    ]
}

fn print_one(row: &Value, cols: &'static [&'static str], format: Format) -> std::io::Result<()> {
    let mut printer = Printer::one(std::io::stdout().lock(), cols, format)?;
    printer.write(row)?;
    printer.finish()
}
