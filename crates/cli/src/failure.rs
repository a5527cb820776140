//! Why a command failed: a CRM or configuration error, output that could not be written,
//! or a benchmark whose result is wrong.

use std::fmt;
use std::io;

/// A command's failure, printed as one sentence on stderr.
#[derive(Debug)]
pub enum Failure {
    /// From a CRM client, the sandbox or the settings.
    Crm(crmkit_core::Error),
    /// Writing to stdout failed (a closed pipe ends the command quietly instead).
    Output(io::Error),
    /// A listing broke off after `printed` records (which were printed) of `what`.
    Cut {
        /// Records printed before the failure.
        printed: usize,
        /// What was listed, such as `leads`.
        what: String,
        /// Why it broke off (boxed, so a `Failure` stays small).
        error: Box<crmkit_core::Error>,
    },
    /// A benchmark found a wrong result (missing or repeated records) or could not measure.
    Bench(String),
}

impl Failure {
    /// Whether the reader went away (`crmkit … | head`): not an error worth reporting.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Crm(e) => write!(f, "{e}"),
            Failure::Output(e) => write!(f, "cannot write the output: {e}"),
            Failure::Cut {
                printed,
                what,
                error,
            } => write!(f, "the listing stopped after {printed} {what}: {error}"),
            Failure::Bench(msg) => write!(f, "benchmark failed: {msg}"),
        }
    }
}

impl From<crmkit_core::Error> for Failure {
    fn from(e: crmkit_core::Error) -> Self {
        Failure::Crm(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}
