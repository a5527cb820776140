//! The sync engine's durable state, on SQLite or PostgreSQL.
//!
//! (Full documentation follows in this file.)

mod cursors;
mod error;
mod intents;
mod links;
mod migrate;
mod runs;
mod store;
mod url;

pub use cursors::{Cursor, CursorKey};
pub use error::{Error, Result};
pub use intents::{Intent, IntentOp, IntentState, NewIntent};
pub use links::{Link, LinkUpdate, NewLink, Upserted};
pub use runs::{Run, RunCounts, RunStatus};
pub use store::{Store, Tx};
pub use url::{Backend, redact};

crmkit_core::id_type!(LinkId, "The id of a [`Link`] (a UUID v7 as text).");
crmkit_core::id_type!(RunId, "The id of a [`Run`] (a UUID v7 as text).");
crmkit_core::id_type!(IntentId, "The id of an [`Intent`] (a UUID v7 as text).");
