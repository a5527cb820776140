//! Printing records as they arrive: a table, one JSON array, NDJSON or CSV.
//!
//! Nothing here holds a whole listing: JSON, NDJSON and CSV write each record as it comes,
//! and a table is printed in chunks of [`TABLE_CHUNK`] rows, each with its header.

use std::io::{self, Write};

use comfy_table::{Table, presets};
use serde_json::Value;

/// Rows buffered per printed table, so column widths fit the rows shown without holding
/// the whole listing.
pub const TABLE_CHUNK: usize = 100;

/// Longest cell shown in a table; the rest of a long value is cut so rows stay on one line.
const TABLE_CELL_CHARS: usize = 48;

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns of the main fields, in chunks of 100 rows.
    Table,
    /// One JSON array of whole objects (a single object for get, create and update).
    Json,
    /// One whole JSON object per line.
    Ndjson,
    /// CSV of the main fields with a header row.
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

enum Sink<W: Write> {
    Table { out: W, rows: Vec<Vec<String>> },
    Json { out: W, started: bool },
    Ndjson(W),
    Csv(Box<csv::Writer<W>>),
}

/// Writes records one at a time in a [`Format`].
pub struct Printer<W: Write> {
    sink: Sink<W>,
    cols: &'static [&'static str],
    /// Whether anything was printed yet (a table with no rows still shows its header once).
    printed: bool,
    /// Whether a JSON result is a list (an array) or one object.
    many: bool,
}

impl<W: Write> Printer<W> {
    /// A printer of a listing: JSON output is one array.
    pub fn list(out: W, cols: &'static [&'static str], format: Format) -> io::Result<Self> {
        Self::new(out, cols, format, true)
    }

    /// A printer of one record: JSON output is that object alone.
    pub fn one(out: W, cols: &'static [&'static str], format: Format) -> io::Result<Self> {
        Self::new(out, cols, format, false)
    }

    fn new(out: W, cols: &'static [&'static str], format: Format, many: bool) -> io::Result<Self> {
        let sink = match format {
            Format::Table => Sink::Table {
                out,
                rows: Vec::new(),
            },
            Format::Json => Sink::Json {
                out,
                started: false,
            },
            Format::Ndjson => Sink::Ndjson(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(cols).map_err(csv_io)?;
                Sink::Csv(Box::new(w))
            }
        };
        Ok(Self {
            sink,
            cols,
            printed: false,
            many,
        })
    }

    /// Prints one record (a table waits until its chunk is full).
    pub fn write(&mut self, row: &Value) -> io::Result<()> {
        let cols = self.cols;
        match &mut self.sink {
            Sink::Table { rows, .. } => {
                rows.push(
                    cols.iter()
                        .map(|c| cell(&row[*c]).chars().take(TABLE_CELL_CHARS).collect())
                        .collect(),
                );
                if rows.len() >= TABLE_CHUNK {
                    self.print_table()?;
                }
            }
            Sink::Json { out, started } => {
                let lead = match (self.many, *started) {
                    (true, false) => "[\n",
                    (true, true) => ",\n",
                    (false, _) => "",
                };
                *started = true;
                out.write_all(lead.as_bytes())?;
                serde_json::to_writer(&mut *out, row)?;
                if !self.many {
                    out.write_all(b"\n")?;
                }
            }
            Sink::Ndjson(out) => {
                serde_json::to_writer(&mut *out, row)?;
                out.write_all(b"\n")?;
            }
            Sink::Csv(w) => {
                w.write_record(cols.iter().map(|c| cell(&row[*c])))
                    .map_err(csv_io)?;
            }
        }
        Ok(())
    }

    /// Pushes what is printed so far to the output, e.g. before waiting for the next page.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Table { out, .. } | Sink::Json { out, .. } | Sink::Ndjson(out) => out.flush(),
            Sink::Csv(w) => w.flush(),
        }
    }

    /// Prints what is buffered and closes the JSON array.
    pub fn finish(self) -> io::Result<()> {
        self.end(true)
    }

    /// Ends a listing that broke off: prints the rows already buffered and closes the JSON
    /// array, so what was printed stays whole and valid; unlike [`Self::finish`] it adds no
    /// empty table or empty array when nothing came.
    pub fn finish_cut(self) -> io::Result<()> {
        self.end(false)
    }

    fn end(mut self, complete: bool) -> io::Result<()> {
        match &mut self.sink {
            Sink::Table { rows, .. } => {
                if !rows.is_empty() || (complete && !self.printed) {
                    self.print_table()?;
                }
            }
            Sink::Json { out, started } => match (self.many, *started) {
                (true, true) => out.write_all(b"\n]\n")?,
                (true, false) if complete => out.write_all(b"[]\n")?,
                (true, false) | (false, _) => {}
            },
            Sink::Ndjson(_) | Sink::Csv(_) => {}
        }
        self.flush()
    }

    fn print_table(&mut self) -> io::Result<()> {
        let Sink::Table { out, rows } = &mut self.sink else {
            return Ok(());
        };
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_header(self.cols.iter().map(|c| c.to_uppercase()));
        for row in rows.drain(..) {
            table.add_row(row);
        }
        self.printed = true;
        // Preset NOTHING pads the last column too; trailing blanks only get in a pager's way.
        for line in table.lines() {
            writeln!(out, "{}", line.trim_end())?;
        }
        out.flush()
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn print(format: Format, many: bool, rows: &[Value]) -> String {
        let mut out = Vec::new();
        let mut p = Printer::new(&mut out, &["id", "name"], format, many).unwrap();
        for r in rows {
            p.write(r).unwrap();
        }
        p.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    fn rows(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("lead_{i}"), "name": format!("Acme, \"{i}\"")}))
            .collect()
    }

    #[test]
    fn json_is_one_array_also_when_empty() {
        let text = print(Format::Json, true, &rows(3));
        let parsed: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, rows(3));
        assert_eq!(print(Format::Json, true, &[]), "[]\n");
    }

    #[test]
    fn json_of_one_record_is_the_object() {
        let text = print(Format::Json, false, &rows(1));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), rows(1)[0]);
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        let text = print(Format::Ndjson, true, &rows(3));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, rows(3));
    }

    #[test]
    fn csv_quotes_and_has_a_header() {
        let text = print(Format::Csv, true, &rows(2));
        assert_eq!(
            text,
            "id,name\nlead_0,\"Acme, \"\"0\"\"\"\nlead_1,\"Acme, \"\"1\"\"\"\n"
        );
        assert_eq!(print(Format::Csv, true, &[]), "id,name\n");
    }

    #[test]
    fn table_prints_in_chunks_with_a_header_each() {
        let text = print(Format::Table, true, &rows(TABLE_CHUNK + 1));
        assert_eq!(text.lines().filter(|l| l.starts_with(" ID")).count(), 2);
        assert_eq!(
            text.lines().filter(|l| l.contains("lead_")).count(),
            TABLE_CHUNK + 1
        );
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn empty_table_shows_its_header() {
        let text = print(Format::Table, true, &[]);
        assert_eq!(text.trim(), "ID  NAME");
    }

    fn print_cut(format: Format, rows: &[Value]) -> String {
        let mut out = Vec::new();
        let mut p = Printer::list(&mut out, &["id", "name"], format).unwrap();
        for r in rows {
            p.write(r).unwrap();
        }
        p.finish_cut().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_cut_listing_keeps_its_rows_and_stays_valid() {
        let text = print_cut(Format::Table, &rows(TABLE_CHUNK + 7));
        assert_eq!(
            text.lines().filter(|l| l.contains("lead_")).count(),
            TABLE_CHUNK + 7
        );
        let parsed: Vec<Value> = serde_json::from_str(&print_cut(Format::Json, &rows(3))).unwrap();
        assert_eq!(parsed, rows(3));
        assert_eq!(print_cut(Format::Table, &[]), "");
        assert_eq!(print_cut(Format::Json, &[]), "");
    }

    #[test]
    fn table_writes_nothing_until_a_chunk_is_full() {
        let mut out = Vec::new();
        let mut p = Printer::list(&mut out, &["id"], Format::Table).unwrap();
        for r in rows(TABLE_CHUNK - 1) {
            p.write(&r).unwrap();
        }
        drop(p);
        assert!(out.is_empty());
    }
}
