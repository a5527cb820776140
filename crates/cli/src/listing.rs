//! Printing a stream of records as it arrives, with a running count on stderr.

use std::io::{BufWriter, IsTerminal};

use crmkit_core::Result;
use futures::stream::BoxStream;
use futures::{FutureExt, TryStreamExt};
use serde_json::Value;

use crate::failure::Failure;
use crate::output::{Format, Printer};
use crate::progress::Progress;

/// Prints each record of `stream` as it comes, at most `max`; `what` names them in the
/// progress line. Returns how many were printed.
pub async fn print_stream(
    mut stream: BoxStream<'_, Result<Value>>,
    cols: &'static [&'static str],
    format: Format,
    max: Option<usize>,
    what: &str,
) -> std::result::Result<usize, Failure> {
    let stdout = std::io::stdout();
    // When the records themselves scroll by on the terminal they are the progress; a bar
    // drawn between them would only garble both.
    let progress = if stdout.is_terminal() {
        Progress::hidden()
    } else {
        Progress::counter(what)
    };
    let mut printer = Printer::list(BufWriter::new(stdout), cols, format)?;
    let mut printed = 0;
    while max.is_none_or(|m| printed < m) {
        // Hand over what is printed before waiting for the next page, so a reader (jq, a
        // pager) sees each page as soon as it came, not when a buffer fills.
        let next = match stream.try_next().now_or_never() {
            Some(next) => next?,
            None => {
                printer.flush()?;
                stream.try_next().await?
            }
        };
        let Some(row) = next else { break };
        printer.write(&row)?;
        progress.inc(1);
        printed += 1;
    }
    progress.done();
    printer.finish()?;
    Ok(printed)
}
