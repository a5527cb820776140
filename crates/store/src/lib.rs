//! The sync engine's durable state, on SQLite or PostgreSQL.
//!
//! (Full documentation follows in this file.)

mod audit;
mod conflicts;
mod cursors;
mod error;
mod inbox;
mod intents;
mod leases;
mod links;
mod migrate;
mod runs;
mod store;
mod url;

pub use audit::{AuditEntry, NewAuditEntry};
pub use conflicts::{Conflict, ConflictStatus, NewConflict, Review, ReviewStatus};
pub use cursors::{Cursor, CursorKey};
pub use error::{Error, Result};
pub use inbox::InboxItem;
pub use intents::{Intent, IntentOp, IntentState, NewIntent};
pub use leases::Lease;
pub use links::{Link, LinkUpdate, NewLink, Upserted};
pub use runs::{Run, RunCounts, RunStatus};
pub use store::{Store, Tx};
pub use url::{Backend, redact};

crmkit_core::id_type!(LinkId, "The id of a [`Link`] (a UUID v7 as text).");
crmkit_core::id_type!(RunId, "The id of a [`Run`] (a UUID v7 as text).");
crmkit_core::id_type!(IntentId, "The id of an [`Intent`] (a UUID v7 as text).");
crmkit_core::id_type!(ConflictId, "The id of a [`Conflict`] (a UUID v7 as text).");
crmkit_core::id_type!(AuditId, "The id of an [`AuditEntry`] (a UUID v7 as text).");
crmkit_core::id_type!(ReviewId, "The id of a [`Review`] (a UUID v7 as text).");
crmkit_core::id_type!(InboxId, "The id of an [`InboxItem`] (a UUID v7 as text).");
