//! Printing a stream of records as it arrives, with a running count on stderr.

use std::future::Future;
use std::io::{BufWriter, IsTerminal};
use std::time::Duration;

use crmkit_core::Result;
use futures::stream::BoxStream;
use futures::{FutureExt, TryStreamExt};
use serde_json::Value;

use crate::failure::Failure;
use crate::output::{Format, Printer};
use crate::progress::Progress;
use crate::waits::Waits;

/// Prints each record of `stream` as it comes, at most `max`; `what` names them in the
/// progress line, which also shows the waits of the client that `waits` observes. Returns
/// how many were printed. When the stream fails part way, the records already fetched are
/// still printed (a JSON array is closed) and the error says how many came before it.
pub async fn print_stream(
    mut stream: BoxStream<'_, Result<Value>>,
    cols: &'static [&'static str],
    format: Format,
    max: Option<usize>,
    what: &str,
    waits: &Waits,
) -> std::result::Result<usize, Failure> {
    let stdout = std::io::stdout();
    // When the records themselves scroll by on the terminal they are the progress; a bar
    // drawn between them would only garble both.
    let progress = if stdout.is_terminal() {
        Progress::hidden()
    } else {
        Progress::counter(what, waits)
    };
    let mut printer = Printer::list(BufWriter::new(stdout), cols, format)?;
    let mut printed = 0;
    let cut = loop {
        if max.is_some_and(|m| printed >= m) {
            break None;
        }
        // Hand over what is printed before waiting for the next page, so a reader (jq, a
        // pager) sees each page as soon as it came, not when a buffer fills.
        let next = match stream.try_next().now_or_never() {
            Some(next) => next,
            None => {
                printer.flush()?;
                patiently(stream.try_next(), &progress).await
            }
        };
        match next {
            Ok(Some(row)) => {
                printer.write(&row)?;
                progress.inc(1);
                printed += 1;
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    progress.done();
    match cut {
        None => {
            printer.finish()?;
            Ok(printed)
        }
        // The rows already fetched are worth keeping: print them (closing a JSON array so
        // it still parses) before the error ends the command.
        Some(error) => {
            printer.finish_cut()?;
            if printed == 0 {
                return Err(error.into());
            }
            Err(Failure::Cut {
                printed,
                what: what.to_string(),
                error: Box::new(error),
            })
        }
    }
}

/// How long a page may take before the progress line says that it is waiting.
const PATIENCE: Duration = Duration::from_secs(1);

/// Awaits `next`, noting on the progress line when it takes longer than [`PATIENCE`]. A
/// rate-limit wait or retry pause shows itself (the client reports it) over this note, so
/// what the note stands for is the server taking its time.
async fn patiently<T>(next: impl Future<Output = T>, progress: &Progress) -> T {
    let mut next = std::pin::pin!(next);
    tokio::select! {
        out = &mut next => out,
        () = tokio::time::sleep(PATIENCE) => {
            progress.note("waiting for the answer");
            let out = next.await;
            progress.note("");
            out
        }
    }
}
