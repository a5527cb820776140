//! Printing records as a table, JSON or CSV.

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns of the main fields.
    Table,
    /// One JSON document per line.
    Json,
    /// CSV with a header row.
    Csv,
}

/// The columns shown for a resource in table and CSV output.
pub fn columns(resource: &str) -> &'static [&'static str] {
    match resource {
        "leads" => &["id", "display_name", "status_label", "url", "date_updated"],
        "contacts" => &["id", "name", "title", "lead_id", "date_updated"],
        "opportunities" => &[
            "id",
            "lead_name",
            "status_label",
            "value",
            "confidence",
            "date_updated",
        ],
        "activities" => &["id", "_type", "lead_id", "date_created"],
        _ => &["id"],
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Prints `rows` in `format`.
pub fn print(rows: &[Value], cols: &[&str], format: Format) {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for r in rows {
                let _ = writeln!(out, "{r}");
            }
        }
        Format::Csv => {
            let _ = writeln!(out, "{}", cols.join(","));
            for r in rows {
                let line: Vec<String> = cols.iter().map(|c| csv_field(&cell(&r[*c]))).collect();
                let _ = writeln!(out, "{}", line.join(","));
            }
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    cols.iter()
                        .map(|c| cell(&r[*c]).chars().take(48).collect())
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |vals: Vec<String>| {
                vals.iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            let _ = writeln!(
                out,
                "{}",
                line(cols.iter().map(|c| c.to_uppercase()).collect())
            );
            for r in cells {
                let _ = writeln!(out, "{}", line(r));
            }
        }
    }
}

/// Shows a running count on stderr when it is a terminal.
pub struct Progress {
    on: bool,
    n: usize,
}

impl Progress {
    /// A progress counter, silent unless stderr is a terminal.
    pub fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            n: 0,
        }
    }

    /// Counts one more item.
    pub fn tick(&mut self) {
        self.n += 1;
        if self.on && self.n % 100 == 0 {
            eprint!("\rfetched {} …", self.n);
        }
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.on && self.n >= 100 {
            eprint!("\r\x1b[2K");
        }
    }
}
