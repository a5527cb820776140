//! `crmkit salesforce …`: SOQL queries, records of any sObject, describe, limits, and the
//! Salesforce line of `crmkit doctor`.
//!
//! Credentials come from the environment (or `.env`): `SF_CLIENT_ID`, `SF_USERNAME` and
//! `SF_PRIVATE_KEY_PATH` for the JWT bearer flow, or `SF_REFRESH_TOKEN`, client
//! credentials, or `SF_ACCESS_TOKEN` with `SF_INSTANCE_URL` (see `crmkit_salesforce::Client::from_env`).

use clap::Subcommand;
use crmkit_core::{Error, ErrorKind};
use crmkit_salesforce::ClientBuilder;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::Outcome;
use crate::output::Format;
use crate::waits::Waits;
use crate::{listing, print_one};

/// The `crmkit salesforce` subcommands.
#[derive(Debug, Subcommand)]
pub enum SalesforceCommand {
    /// Run a SOQL query and print every record, page after page.
    Query {
        /// The query, e.g. "SELECT Id, Name FROM Account WHERE Name LIKE 'A%'".
        soql: String,
        /// Use queryAll: deleted and archived records too.
        #[arg(long)]
        all: bool,
        /// Print at most this many records.
        #[arg(long)]
        max: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Read one record.
    Get {
        /// The sObject, e.g. Account.
        sobject: String,
        /// The record id (15 or 18 characters).
        id: String,
        /// Only these fields, comma separated.
        #[arg(long)]
        fields: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        output: Format,
    },
    /// Create a record from a JSON object of fields.
    Create {
        /// The sObject, e.g. Contact.
        sobject: String,
        /// The fields, e.g. '{"LastName":"Lovelace"}'.
        #[arg(long)]
        data: String,
    },
    /// Change only the fields given (`null` clears one).
    Update {
        /// The sObject.
        sobject: String,
        /// The record id.
        id: String,
        /// The fields to change.
        #[arg(long)]
        data: String,
    },
    /// Delete a record.
    Delete {
        /// The sObject.
        sobject: String,
        /// The record id.
        id: String,
    },
    /// An sObject's fields: type, whether a create needs it, picklist values.
    Describe {
        /// The sObject.
        sobject: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// The org's limits (daily API requests and the rest).
    Limits {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

fn fields_of(data: &str) -> Result<crmkit_salesforce::Fields, Error> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::new(
            ErrorKind::Validation,
            "--data must be a JSON object of fields, e.g. '{\"Name\":\"Acme\"}'",
        )),
    }
}

/// The plain field names of a query's select list, for table and CSV columns (leaked once:
/// the process prints one listing and ends).
fn select_columns(soql: &str) -> &'static [&'static str] {
    let upper = soql.to_ascii_uppercase();
    let (Some(start), Some(end)) = (upper.find("SELECT "), upper.find(" FROM ")) else {
        return &["Id"];
    };
    // Items as (text, kind): a field, a function call (an aggregate, which Salesforce
    // names expr0, expr1, …) or a subquery (no column).
    let mut depth = 0;
    let mut items: Vec<(String, Option<bool>)> = Vec::new();
    let mut current = String::new();
    let mut call: Option<bool> = None;
    for c in soql[start + 7..end.max(start + 7)].chars() {
        match c {
            '(' => {
                if depth == 0 {
                    call = Some(!current.trim().is_empty());
                }
                depth += 1;
            }
            ')' => depth -= 1,
            ',' if depth == 0 => items.push((std::mem::take(&mut current), call.take())),
            c if depth == 0 => current.push(c),
            _ => {}
        }
    }
    items.push((current, call));
    let mut aggregates = 0;
    let cols: Vec<&'static str> = items
        .into_iter()
        .filter_map(|(text, call)| match call {
            Some(false) => None,
            Some(true) => {
                aggregates += 1;
                Some(format!("expr{}", aggregates - 1))
            }
            None => Some(text.trim().to_string()),
        })
        .filter(|c| !c.is_empty() && !c.contains(' '))
        .map(|c| &*Box::leak(c.into_boxed_str()))
        .collect();
    if cols.is_empty() {
        &["Id"]
    } else {
        Box::leak(cols.into_boxed_slice())
    }
}

/// A child-to-parent path (`Account.Name`) read out of a record, so table columns show it.
fn flatten(mut row: Value, cols: &[&str]) -> Value {
    for c in cols.iter().filter(|c| c.contains('.')) {
        let v = c
            .split('.')
            .try_fold(&row, |v, part| v.get(part))
            .cloned()
            .unwrap_or(Value::Null);
        if let Value::Object(m) = &mut row {
            m.insert(c.to_string(), v);
        }
    }
    row
}

/// Runs a `crmkit salesforce` command.
pub async fn run(command: SalesforceCommand) -> Outcome {
    let waits = Waits::default();
    let client = ClientBuilder::from_env()?
        .observer(waits.observer())
        .build()?;
    match command {
        SalesforceCommand::Query {
            soql,
            all,
            max,
            output,
        } => {
            let cols = select_columns(&soql);
            let rows = if all {
                client.query_all(soql)
            } else {
                client.query(soql)
            };
            let rows = rows.map(move |r| r.map(|f| flatten(Value::Object(f), cols)));
            listing::print_stream(rows.boxed(), cols, output, max, "records", &waits).await?;
            Ok(())
        }
        SalesforceCommand::Get {
            sobject,
            id,
            fields,
            output,
        } => {
            let wanted: Vec<String> = fields
                .unwrap_or_default()
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
            let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
            let record = client.sobject(&sobject).get(&id, &refs).await?;
            Ok(print_one(&Value::Object(record), &["Id", "Name"], output)?)
        }
        SalesforceCommand::Create { sobject, data } => {
            let id = client.sobject(&sobject).create(&fields_of(&data)?).await?;
            println!("{id}");
            Ok(())
        }
        SalesforceCommand::Update { sobject, id, data } => {
            client
                .sobject(&sobject)
                .update(&id, &fields_of(&data)?)
                .await?;
            println!("updated {sobject} {id}");
            Ok(())
        }
        SalesforceCommand::Delete { sobject, id } => {
            client.sobject(&sobject).delete(&id).await?;
            println!("deleted {sobject} {id}");
            Ok(())
        }
        SalesforceCommand::Describe { sobject, output } => {
            let d = client.sobject(&sobject).describe().await?;
            let rows = d.fields.iter().map(|f| {
                Ok(json!({
                    "name": f.name,
                    "type": f.field_type,
                    "required": f.required_on_create(),
                    "external_id": f.external_id,
                    "picklist": f.picklist_values.iter().filter(|v| v.active).map(|v| v.value.as_str()).collect::<Vec<_>>().join(";"),
                }))
            });
            let cols: &'static [&'static str] =
                &["name", "type", "required", "external_id", "picklist"];
            listing::print_stream(
                futures::stream::iter(rows.collect::<Vec<_>>()).boxed(),
                cols,
                output,
                None,
                "fields",
                &waits,
            )
            .await?;
            Ok(())
        }
        SalesforceCommand::Limits { output } => {
            let limits = client.limits().await?;
            let rows: Vec<_> = limits
                .into_iter()
                .map(|(name, l)| Ok(json!({"name": name, "max": l.max, "remaining": l.remaining})))
                .collect();
            listing::print_stream(
                futures::stream::iter(rows).boxed(),
                &["name", "max", "remaining"],
                output,
                None,
                "limits",
                &waits,
            )
            .await?;
            Ok(())
        }
    }
}

/// The doctor's Salesforce line; returns the number of problems (0 or 1).
pub async fn doctor() -> usize {
    let configured = ["SF_CLIENT_ID", "SF_ACCESS_TOKEN", "SF_REFRESH_TOKEN"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()));
    if !configured {
        println!(
            "salesforce: not configured (set SF_CLIENT_ID, SF_USERNAME and SF_PRIVATE_KEY_PATH)"
        );
        return 0;
    }
    let client = match crmkit_salesforce::Client::from_env() {
        Ok(c) => c,
        Err(e) => {
            println!("salesforce: FAILED — {e}");
            return 1;
        }
    };
    match client.limits().await {
        Ok(limits) => {
            let daily = limits.get("DailyApiRequests").cloned().unwrap_or_default();
            println!(
                "salesforce: ok — {} of {} daily API requests left at {}",
                daily.remaining,
                daily.max,
                client.transport().current_base_url()
            );
            0
        }
        Err(e) => {
            let hint = match e.kind() {
                ErrorKind::Auth => {
                    "check SF_CLIENT_ID, SF_USERNAME, the key's certificate on the connected app, and SF_LOGIN_URL (test.salesforce.com for sandboxes)"
                }
                ErrorKind::QuotaExhausted => "the org's daily API requests are used up",
                ErrorKind::Transient => "Salesforce could not be reached; check the network",
                _ => "see the error above",
            };
            println!("salesforce: FAILED — {e}\n       fix: {hint}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_lists_become_columns_without_subqueries() {
        assert_eq!(
            select_columns("SELECT Id, Name, Account.Name, (SELECT Id FROM Contacts) FROM Account"),
            ["Id", "Name", "Account.Name"]
        );
        assert_eq!(
            select_columns(
                "SELECT StageName, COUNT(Id), MAX(Amount) FROM Opportunity GROUP BY StageName"
            ),
            ["StageName", "expr0", "expr1"]
        );
        assert_eq!(select_columns("nonsense"), ["Id"]);
        let row = flatten(
            json!({"Id": "1", "Account": {"Name": "Acme"}}),
            &["Account.Name"],
        );
        assert_eq!(row["Account.Name"], "Acme");
        assert!(fields_of("[1]").is_err());
    }
}
