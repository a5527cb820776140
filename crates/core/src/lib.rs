//! The shared vocabulary of crmkit.
//!
//! Every CRM connector maps its own records to the unified model in [`model`], reports failures
//! through the one [`Error`] type, and talks HTTP through the [`http`] transport, which owns
//! authentication, proactive rate budgets, retries and pagination. Nothing above the
//! connectors needs to know a CRM's field names.

pub mod batch;
pub mod connector;
pub mod error;
pub mod http;
pub mod ids;
pub mod keyset;
pub mod model;
pub mod time;

pub use connector::{BatchOutcome, Change, ChangeCursor, Connector, Marked, SkipReason};
pub use error::{Error, ErrorKind, FieldError, Result};
pub use model::{
    Activity, ActivityKind, Company, Crm, Deal, Money, ObjectKind, Person, Record, RecordRef,
    Stage, StageKind,
};
pub use secrecy::{ExposeSecret, SecretString};

// The `id_type!` macro names serde through this path, so crates using it need no serde import.
#[doc(hidden)]
pub use serde as __serde;
