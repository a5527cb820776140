//! The sync engine's durable state, on SQLite or PostgreSQL.
//!
//! (Full documentation follows in this file.)

mod cursors;
mod error;
mod links;
mod migrate;
mod store;
mod url;

pub use cursors::{Cursor, CursorKey};
pub use error::{Error, Result};
pub use links::{Link, LinkUpdate, NewLink, Upserted};
pub use store::{Store, Tx};
pub use url::{Backend, redact};

crmkit_core::id_type!(LinkId, "The id of a [`Link`] (a UUID v7 as text).");
