//! `crmkit hubspot …`: records of any object type, associations and pipelines.
//!
//! `crmkit hubspot <object> list|get|create|update|archive|search`, where `<object>` is
//! `contacts`, `companies`, `deals`, `notes`, `calls`, `tasks`, `meetings`, `emails` or any
//! type name or id the API accepts (`p_my_object`, `2-12345`). Without `--properties` the
//! table's columns are asked for. `--data` takes `{"properties":{…}}` or the properties
//! alone; an update sends only the properties given. Search ANDs its `--filter 'prop OP
//! value'`s; unsorted it reads past HubSpot's 10,000-result cap (oldest change first),
//! with `--sort` it stops at the cap and says so.

pub mod doctor;
mod input;
mod rows;

use clap::{Parser, Subcommand, ValueEnum};
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::{Error, ErrorKind};
use crmkit_hubspot::association_types::HUBSPOT_DEFINED;
use crmkit_hubspot::associations::{AssociationSpec, Category, type_id};
use crmkit_hubspot::objects::MAX_LIST_PAGE;
use crmkit_hubspot::search::SearchLimits;
use crmkit_hubspot::{Client, ObjectType, Objects, ReadOptions, SearchRequest};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::Outcome;
use crate::config::Settings;
use crate::output::{Format, Printer};
use crate::waits::Waits;
use crate::{listing, print_one};

/// The `crmkit hubspot` subcommands.
#[derive(Debug, Subcommand)]
pub enum HubSpotCommand {
    /// Associate two records, e.g. `associate contacts 51 companies 7`: the default type,
    /// or the one given with --label.
    Associate {
        /// The first record's object type.
        from_type: String,
        /// The first record's id.
        from_id: String,
        /// The second record's object type.
        to_type: String,
        /// The second record's id.
        to_id: String,
        /// The association type: its id (e.g. 279) or HubSpot's name for it (e.g.
        /// CONTACT_TO_COMPANY); a label of your own by its type id.
        #[arg(long)]
        label: Option<String>,
    },
    /// The pipelines of deals (default) or tickets, with each stage's label and id.
    Pipelines {
        /// The object type.
        #[arg(default_value = "deals")]
        object: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Records: `crmkit hubspot <object> list|get|create|update|archive|search …` (see
    /// `crmkit hubspot contacts --help`).
    #[command(external_subcommand)]
    Object(Vec<String>),
}

/// What to do with records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RecordAction {
    List,
    Get,
    Create,
    Update,
    Archive,
    Search,
}

/// Records of one object type.
#[derive(Debug, Parser)]
#[command(name = "crmkit hubspot")]
struct RecordArgs {
    /// The object type: contacts, companies, deals, notes, calls, tasks, meetings, emails,
    /// or any type name or id (0-1, p_my_object, 2-12345).
    object: String,
    /// What to do.
    #[arg(value_enum)]
    action: RecordAction,
    /// The record id (get, update, archive).
    id: Option<String>,
    /// Properties to read, e.g. --properties email,firstname (the table's columns if not given).
    #[arg(long, value_delimiter = ',')]
    properties: Vec<String>,
    /// Properties to write (create, update), '{"properties":{"email":"a@b.c"}}' or '{"email":"a@b.c"}'.
    #[arg(long)]
    data: Option<String>,
    /// A search filter 'property OPERATOR value' (repeatable, AND-ed), e.g. 'email EQ a@b.c',
    /// 'amount BETWEEN 10,20', 'dealstage IN a,b', 'phone HAS_PROPERTY'.
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Search order, property[:asc|desc]; a sorted search stops at HubSpot's 10,000 results.
    #[arg(long)]
    sort: Option<String>,
    /// Stop after this many records (list, search).
    #[arg(long)]
    max: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// Runs a `crmkit hubspot` command with the client `settings` describe.
pub async fn run(settings: &Settings, command: HubSpotCommand) -> Outcome {
    let waits = Waits::default();
    let client = || {
        settings
            .hubspot_builder()?
            .observer(waits.observer())
            .build()
    };
    match command {
        HubSpotCommand::Object(raw) => {
            // Read the record arguments first, so `--help` and mistakes need no token.
            let words = std::iter::once("crmkit hubspot".to_string()).chain(raw);
            let args = RecordArgs::try_parse_from(words).unwrap_or_else(|e| e.exit());
            records_command(&client()?, args, &waits).await
        }
        HubSpotCommand::Associate {
            from_type,
            from_id,
            to_type,
            to_id,
            label,
        } => {
            let associations = client()?.associations();
            let (from, to) = (ObjectType::from(from_type), ObjectType::from(to_type));
            match label {
                None => {
                    associations
                        .associate_default(&from, &from_id, &to, &to_id)
                        .await?;
                    println!("associated {from} {from_id} with {to} {to_id} (default type)");
                }
                Some(label) => {
                    let spec = association(&label)?;
                    associations
                        .associate(&from, &from_id, &to, &to_id, &[spec])
                        .await?;
                    println!(
                        "associated {from} {from_id} with {to} {to_id} (type {})",
                        spec.association_type_id
                    );
                }
            }
            Ok(())
        }
        HubSpotCommand::Pipelines { object, output } => {
            let pipelines = client()?.pipelines(&ObjectType::from(object)).await?;
            let cols = &[
                "pipeline",
                "pipeline_id",
                "stage",
                "stage_id",
                "display_order",
            ];
            let mut printer = Printer::list(std::io::stdout().lock(), cols, output)?;
            for p in &pipelines.pipelines {
                for s in &p.stages {
                    printer.write(&json!({
                        "pipeline": p.label,
                        "pipeline_id": p.id,
                        "stage": s.label,
                        "stage_id": s.id,
                        "display_order": s.display_order,
                    }))?;
                }
            }
            Ok(printer.finish()?)
        }
    }
}

/// The association type of `--label`: a type id, or the name of one of HubSpot's own;
/// an id HubSpot does not define is taken as a label of the account's own (USER_DEFINED).
fn association(label: &str) -> crmkit_core::Result<AssociationSpec> {
    let id = label
        .trim()
        .parse::<u32>()
        .ok()
        .or_else(|| type_id(label.trim()));
    let Some(id) = id else {
        return Err(Error::new(
            ErrorKind::Validation,
            format!(
                "--label {label:?} is neither an association type id nor a HubSpot-defined type name such as CONTACT_TO_COMPANY"
            ),
        ));
    };
    let association_category = if HUBSPOT_DEFINED.iter().any(|(_, known)| *known == id) {
        Category::HubspotDefined
    } else {
        Category::UserDefined
    };
    Ok(AssociationSpec {
        association_category,
        association_type_id: id,
    })
}

async fn records_command(client: &Client, args: RecordArgs, waits: &Waits) -> Outcome {
    let object_type = ObjectType::from(args.object.as_str());
    let what = object_type.to_string();
    let properties: Vec<String> = if args.properties.is_empty() {
        rows::default_properties(&object_type)
            .iter()
            .map(|p| p.to_string())
            .collect()
    } else {
        args.properties.clone()
    };
    let cols = rows::columns(&properties);
    let format = args.output;
    let objects = client.objects(object_type);
    let refuse = |m: String| Error::new(ErrorKind::Validation, m);
    let id = || {
        args.id
            .as_deref()
            .ok_or_else(|| refuse(format!("{:?} needs the record id", args.action)))
    };
    let data = || -> crmkit_core::Result<_> {
        let text = args.data.as_deref().ok_or_else(|| {
            refuse("this action needs --data '{\"properties\":{…}}' with the properties".into())
        })?;
        input::properties(text)
    };
    if args.action != RecordAction::Search && (!args.filters.is_empty() || args.sort.is_some()) {
        return Err(refuse(format!(
            "--filter and --sort belong to search; use `crmkit hubspot {} search --filter …`",
            args.object
        ))
        .into());
    }
    let read = ReadOptions::default().properties(properties.clone());
    match args.action {
        RecordAction::List => {
            let page = args
                .max
                .map_or(MAX_LIST_PAGE, |m| m.clamp(1, MAX_LIST_PAGE));
            let stream = objects
                .list(read, page)
                .map_ok(move |r| rows::row(r, format))
                .boxed();
            listing::print_stream(stream, cols, format, args.max, &what, waits).await?;
        }
        RecordAction::Search => {
            let stream = search(&objects, &args, properties)?
                .map_ok(move |r| rows::row(r, format))
                .boxed();
            listing::print_stream(stream, cols, format, args.max, &what, waits).await?;
        }
        RecordAction::Get => {
            let record = objects.get(id()?, &read).await?;
            print_one(&rows::row(record, format), cols, format)?;
        }
        RecordAction::Create => {
            let record = objects.create(&data()?, &[]).await?;
            print_one(&rows::row(record, format), cols, format)?;
        }
        RecordAction::Update => {
            let record = objects.update(id()?, &data()?).await?;
            print_one(&rows::row(record, format), cols, format)?;
        }
        RecordAction::Archive => {
            let id = id()?;
            objects.archive(id).await?;
            println!("archived {what} {id}");
        }
    }
    Ok(())
}

/// The records `args` search for: all of them by keyset slicing when unsorted, else pages
/// in the asked order up to HubSpot's result cap.
fn search(
    objects: &Objects,
    args: &RecordArgs,
    properties: Vec<String>,
) -> crmkit_core::Result<BoxStream<'static, crmkit_core::Result<crmkit_hubspot::HubSpotObject>>> {
    let limits = SearchLimits::DOCUMENTED;
    let page = args
        .max
        .map_or(limits.max_page_size, |m| m.clamp(1, limits.max_page_size));
    let mut req = SearchRequest::new().properties(properties).limit(page);
    for f in &args.filters {
        req = req.filter(input::filter(f)?);
    }
    req.validate(&limits)?;
    let Some(sort) = &args.sort else {
        return Ok(objects.search_all(req));
    };
    let (property, direction) = input::sort(sort)?;
    let req = req.sort(property, direction);
    let objects = objects.clone();
    let stream = paginate(None::<String>, move |after| {
        let objects = objects.clone();
        let mut req = req.clone();
        async move {
            if let Some(after) = after {
                // HubSpot answers 400 from this offset on (HubSpot CRM search guide).
                if after
                    .parse::<usize>()
                    .is_ok_and(|n| n >= limits.max_results)
                {
                    return Err(Error::new(
                        ErrorKind::Validation,
                        format!(
                            "HubSpot returns at most {} results of a sorted search; drop --sort to read them all, oldest change first",
                            limits.max_results
                        ),
                    ));
                }
                req = req.after(after);
            }
            let page = objects.search(&req).await?;
            Ok(Page {
                next: page.next_after().map(|a| Some(a.to_string())),
                items: page.results,
            })
        }
    });
    Ok(stream.boxed())
}
