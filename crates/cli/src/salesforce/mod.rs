//! `crmkit salesforce …`: SOQL queries, records of any sObject type, Bulk API 2.0 imports
//! and the org's limits.
//!
//! - `crmkit salesforce query 'SOQL' [--all] [--max N] [--output …]` streams the records
//!   page after page through `nextRecordsUrl` (`--all` reads through `queryAll`, deleted
//!   and archived records too). Table and CSV show the select list's columns (a parent's
//!   field as `Account.Name`, a subquery as its child count); JSON and NDJSON whole records.
//! - `crmkit salesforce sobject <Type> get|create|update|delete|upsert|describe [ID]
//!   [Field=value…] [--data '{…}'] [--external-id Field=value] [--fields A,B]`: only the
//!   fields given are sent, so an update changes nothing else; upsert matches on
//!   `--external-id`; describe lists the fields (type, required on create, external id,
//!   active picklist values).
//! - `crmkit salesforce bulk import FILE.csv --object Contact [--operation insert|update|
//!   upsert --external-id-field F] [--failed PATH]`: one Bulk API 2.0 ingest job with a
//!   progress bar; prints the successful and failed counts and writes the failed (and
//!   unprocessed) rows, each with its `sf__Error`, to `FILE.failed.csv` or `--failed`. It
//!   exits non-zero when any row failed.
//! - `crmkit salesforce limits`: each limit's maximum, remaining and used.
//!
//! The client comes from `SF_*` variables or `[salesforce]` in `crmkit.toml` (see
//! `Settings::salesforce_var`).

pub mod doctor;
mod import;
pub mod input;

use clap::{Subcommand, ValueEnum};
use crmkit_core::{Error, ErrorKind};
use crmkit_salesforce::Client;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::Outcome;
use crate::config::Settings;
use crate::output::{Format, Printer};
use crate::waits::Waits;
use crate::{listing, print_one};

/// The `crmkit salesforce` subcommands.
#[derive(Debug, Subcommand)]
pub enum SalesforceCommand {
    /// Run a SOQL query and print every record, e.g. `query 'SELECT Id, Name FROM Account'`.
    Query {
        /// The SOQL query.
        soql: String,
        /// Read through queryAll: deleted and archived records too.
        #[arg(long)]
        all: bool,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Records of one sObject type: get, create, update, delete, upsert, describe.
    Sobject(SobjectArgs),
    /// Bulk API 2.0 jobs.
    Bulk {
        #[command(subcommand)]
        command: BulkCommand,
    },
    /// The org's limits: maximum, remaining and used of each.
    Limits {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

/// The `crmkit salesforce bulk` subcommands.
#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Import a CSV file (a header row of field names) through one Bulk API 2.0 ingest job.
    Import(import::Args),
}

/// What to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SobjectAction {
    /// Read a record by id or by --external-id.
    Get,
    /// Create a record from the fields given.
    Create,
    /// Change only the fields given.
    Update,
    /// Delete a record (to the recycle bin).
    Delete,
    /// Create or update the record --external-id names.
    Upsert,
    /// The type's fields: type, whether a create needs it, external id, active picklist
    /// values.
    Describe,
}

/// `crmkit salesforce sobject …`.
#[derive(Debug, clap::Args)]
pub struct SobjectArgs {
    /// The sObject type: Account, Contact, Lead, Opportunity, Task, Event or any other.
    object: String,
    /// What to do.
    #[arg(value_enum)]
    action: SobjectAction,
    /// The record id (get, update, delete), then the fields to write as Field=value words
    /// (create, update, upsert); `Field=` clears a field.
    words: Vec<String>,
    /// Fields to write as a JSON object, e.g. '{"LastName":"Lovelace"}' (Field=value words
    /// win over it).
    #[arg(long)]
    data: Option<String>,
    /// The external id field and value that name the record (upsert; get instead of an id),
    /// e.g. --external-id Email__c=ada@example.com.
    #[arg(long)]
    external_id: Option<String>,
    /// Fields to read (get), e.g. --fields Id,Name; all of them when not given.
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// Runs a `crmkit salesforce` command with the client `settings` describe.
pub async fn run(settings: &Settings, command: SalesforceCommand) -> Outcome {
    let waits = Waits::default();
    let client = || {
        settings
            .salesforce_builder()?
            .observer(waits.observer())
            .build()
    };
    match command {
        SalesforceCommand::Query {
            soql,
            all,
            max,
            output,
        } => query(&client()?, &soql, all, max, output, &waits).await,
        SalesforceCommand::Sobject(args) => sobject(&client()?, args).await,
        SalesforceCommand::Bulk {
            command: BulkCommand::Import(args),
        } => {
            // Read the file first, so a bad file needs no sign-in.
            let prepared = import::prepare(&args)?;
            import::run(&client()?, &args, prepared, &waits).await
        }
        SalesforceCommand::Limits { output } => limits(&client()?, output).await,
    }
}

/// Streams the records of `soql` to stdout in `format`.
pub async fn query(
    client: &Client,
    soql: &str,
    all: bool,
    max: Option<usize>,
    format: Format,
    waits: &Waits,
) -> Outcome {
    let mut names = input::columns(soql);
    if names.is_empty() {
        return Err(Error::new(
            ErrorKind::Validation,
            format!("{soql:?} is not a SOQL query (SELECT fields FROM object …)"),
        )
        .into());
    }
    names.dedup();
    let cols = input::leak(names);
    let records = if all {
        client.query_all(soql)
    } else {
        client.query(soql)
    };
    let rows = records
        .map_ok(move |record| match format {
            Format::Json | Format::Ndjson => Value::Object(record),
            Format::Table | Format::Csv => input::flat(&record, cols),
        })
        .boxed();
    listing::print_stream(rows, cols, format, max, "records", waits).await?;
    Ok(())
}

async fn sobject(client: &Client, args: SobjectArgs) -> Outcome {
    let refuse =
        |m: String| -> crate::failure::Failure { Error::new(ErrorKind::Validation, m).into() };
    // The first word is the record id unless it is already a Field=value.
    let (id, assignments) = match args.words.split_first() {
        Some((first, rest)) if !input::is_assignment(first) => (Some(first.as_str()), rest),
        _ => (None, args.words.as_slice()),
    };
    let object = args.object.as_str();
    let records = client.sobject(object);
    let action = args.action;
    let needs_id = || {
        id.ok_or_else(|| {
            refuse(format!(
                "{} needs the record id, e.g. `crmkit salesforce sobject {object} {} 003…`",
                name(action),
                name(action)
            ))
        })
    };
    let to_write = || -> Result<_, crate::failure::Failure> {
        let fields = input::fields(args.data.as_deref(), assignments)?;
        if fields.is_empty() {
            return Err(refuse(format!(
                "{} needs the fields to write: Field=value words or --data '{{…}}'",
                name(action)
            )));
        }
        Ok(fields)
    };
    let no_words = |what: &str| -> Result<(), crate::failure::Failure> {
        if assignments.is_empty() && args.data.is_none() {
            Ok(())
        } else {
            Err(refuse(format!("{what} takes no fields to write")))
        }
    };
    let outcome = |id: &str, result: &str| json!({ "id": id, "result": result });
    let cols: &'static [&'static str] = &["id", "result"];
    match action {
        SobjectAction::Get => {
            no_words("get")?;
            let record = match (&args.external_id, id) {
                (Some(ext), None) => {
                    let (field, value) = input::external_id(ext)?;
                    records.get_by_external_id(&field, &value).await?
                }
                (None, Some(id)) => {
                    let fields: Vec<&str> = args.fields.iter().map(String::as_str).collect();
                    records.get(id, &fields).await?
                }
                (Some(_), Some(_)) => {
                    return Err(refuse("get takes the id or --external-id, not both".into()));
                }
                (None, None) => {
                    return Err(refuse(format!(
                        "get needs the record id or --external-id Field=value, e.g. `crmkit salesforce sobject {object} get 003…`"
                    )));
                }
            };
            print_record(record, args.output)?;
        }
        SobjectAction::Create => {
            if let Some(extra) = id {
                return Err(refuse(format!(
                    "create takes no record id ({extra:?}); give the fields as Field=value"
                )));
            }
            let created = records.create(&to_write()?).await?;
            print_one(&outcome(created.as_str(), "created"), cols, args.output)?;
        }
        SobjectAction::Update => {
            let id = needs_id()?;
            records.update(id, &to_write()?).await?;
            print_one(&outcome(id, "updated"), cols, args.output)?;
        }
        SobjectAction::Delete => {
            let id = needs_id()?;
            no_words("delete")?;
            records.delete(id).await?;
            print_one(&outcome(id, "deleted"), cols, args.output)?;
        }
        SobjectAction::Describe => {
            no_words("describe")?;
            let described = records.describe().await?;
            let cols: &'static [&'static str] =
                &["name", "type", "required", "external_id", "picklist"];
            let mut printer = Printer::list(std::io::stdout().lock(), cols, args.output)?;
            for f in &described.fields {
                let picklist: Vec<&str> = f
                    .picklist_values
                    .iter()
                    .filter(|v| v.active)
                    .map(|v| v.value.as_str())
                    .collect();
                printer.write(&json!({
                    "name": f.name,
                    "type": f.field_type,
                    "required": f.required_on_create(),
                    "external_id": f.external_id,
                    "picklist": picklist.join(";"),
                }))?;
            }
            printer.finish()?;
        }
        SobjectAction::Upsert => {
            let Some(ext) = &args.external_id else {
                return Err(refuse(format!(
                    "upsert needs --external-id Field=value naming the record, e.g. `crmkit salesforce sobject {object} upsert --external-id Email__c=ada@example.com LastName=Lovelace`"
                )));
            };
            if let Some(extra) = id {
                return Err(refuse(format!(
                    "upsert takes no record id ({extra:?}); --external-id names the record"
                )));
            }
            let (field, value) = input::external_id(ext)?;
            let done = records.upsert(&field, &value, &to_write()?).await?;
            let shown = done
                .id
                .as_ref()
                .map_or_else(|| format!("{field}={value}"), |i| i.as_str().to_string());
            let result = if done.created { "created" } else { "updated" };
            print_one(&outcome(&shown, result), cols, args.output)?;
        }
    }
    Ok(())
}

fn name(action: SobjectAction) -> &'static str {
    match action {
        SobjectAction::Get => "get",
        SobjectAction::Create => "create",
        SobjectAction::Update => "update",
        SobjectAction::Delete => "delete",
        SobjectAction::Upsert => "upsert",
        SobjectAction::Describe => "describe",
    }
}

/// One record: whole as JSON, else one `field value` row per field (a record has too many
/// fields for one table row).
fn print_record(record: crmkit_salesforce::sobjects::Fields, format: Format) -> Outcome {
    match format {
        Format::Json | Format::Ndjson => print_one(&Value::Object(record), &["Id"], format)?,
        Format::Table | Format::Csv => {
            let cols: &'static [&'static str] = &["field", "value"];
            let mut printer = Printer::list(std::io::stdout().lock(), cols, format)?;
            for (field, value) in record.into_iter().filter(|(k, _)| k != "attributes") {
                printer.write(&json!({ "field": field, "value": value }))?;
            }
            printer.finish()?;
        }
    }
    Ok(())
}

async fn limits(client: &Client, format: Format) -> Outcome {
    let limits = client.limits().await?;
    let cols: &'static [&'static str] = &["name", "max", "remaining", "used"];
    let mut printer = Printer::list(std::io::stdout().lock(), cols, format)?;
    for (name, limit) in limits {
        printer.write(&json!({
            "name": name,
            "max": limit.max,
            "remaining": limit.remaining,
            "used": limit.max.saturating_sub(limit.remaining),
        }))?;
    }
    Ok(printer.finish()?)
}
