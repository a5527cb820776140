//! The one error type of the store.

use crmkit_core::{Crm, ObjectKind};

use crate::LinkId;

/// What went wrong in the store. Every variant names the record (and field) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL could not be understood. The URL in the message has its password
    /// replaced by `[REDACTED]`.
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The driver's message, with any password blanked.
        message: String,
    },
    /// A schema migration failed; it was rolled back and nothing of it was kept.
    #[error("schema migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version number.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The database's answer.
        #[source]
        source: sqlx::Error,
    },
    /// The database holds migrations this build does not know: it was migrated by a newer
    /// crmkit. Upgrade crmkit rather than run an older one against it.
    #[error(
        "the database is at schema version {found}, newer than this crmkit knows ({known}): upgrade crmkit"
    )]
    SchemaTooNew {
        /// The highest version recorded in the database.
        found: i64,
        /// The highest version this build knows.
        known: i64,
    },
    /// A CRM id is already linked to another record of the same kind.
    #[error(
        "{crm} id {crm_id:?} ({entity}) is already held by link {}; cannot set it on {}",
        held_by.as_ref().map_or_else(|| "another link (written concurrently)".to_owned(), |l| l.to_string()),
        link.as_ref().map_or_else(|| "a new link".to_owned(), |l| format!("link {l}"))
    )]
    CrmIdTaken {
        /// The kind of record.
        entity: ObjectKind,
        /// Whose id it is.
        crm: Crm,
        /// The id.
        crm_id: String,
        /// The link the write was for (`None` for a new link).
        link: Option<LinkId>,
        /// The link that already holds the id (`None` when a concurrent write took it and
        /// the database reported only the violation).
        held_by: Option<LinkId>,
    },
    /// An upsert named a CRM id for a side where the link already holds a different one.
    #[error(
        "link {link} is already linked to {crm} id {existing:?}; refusing to replace it with {requested:?} (unlink it first)"
    )]
    CrmIdMismatch {
        /// The link.
        link: LinkId,
        /// The side.
        crm: Crm,
        /// The id the link holds.
        existing: String,
        /// The id the upsert asked for.
        requested: String,
    },
    /// The CRM ids given to one upsert belong to two different links: merging them is a
    /// decision for a person (or the review queue), not for the store.
    #[error(
        "{first_crm} id {first_id:?} belongs to link {first} but {second_crm} id {second_id:?} belongs to link {second}"
    )]
    AmbiguousLinks {
        /// The first link found.
        first: LinkId,
        /// The side whose id found it.
        first_crm: Crm,
        /// That id.
        first_id: String,
        /// The second link found.
        second: LinkId,
        /// The side whose id found it.
        second_crm: Crm,
        /// That id.
        second_id: String,
    },
    /// An update was based on a version of the row that is no longer current: someone wrote
    /// it in between. Re-read and decide again; nothing was written.
    #[error(
        "stale write to {what} {id}: it was read at version {expected} but is now at version {found}"
    )]
    VersionConflict {
        /// The kind of row (`"link"`, ...).
        what: &'static str,
        /// Its id.
        id: String,
        /// The version the writer read.
        expected: i64,
        /// The version in the database.
        found: i64,
    },
    /// A write intent with this marker (idempotency key) is already recorded.
    #[error("a write intent with marker {marker:?} is already recorded")]
    MarkerTaken {
        /// The marker.
        marker: String,
    },
    /// A row the operation needs does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of row.
        what: &'static str,
        /// Its id or key.
        id: String,
    },
    /// A state change that the row's current state does not allow (settling a failed write
    /// intent, resolving a resolved conflict, ...).
    #[error("{what} {id} is {from}; it cannot become {to}")]
    InvalidState {
        /// The kind of row.
        what: &'static str,
        /// Its id.
        id: String,
        /// Its current state.
        from: String,
        /// The state asked for.
        to: String,
    },
    /// The lease was taken over (it expired) or released: the holder must stop the work it
    /// guarded.
    #[error("lease {name:?} is no longer held by {holder:?} (token {token})")]
    LeaseLost {
        /// The lease's name.
        name: String,
        /// The holder that lost it.
        holder: String,
        /// The fencing token it held.
        token: i64,
    },
    /// A [`Tx`](crate::Tx) was left broken (an operation could not be undone to its
    /// savepoint, or was cancelled midway); it was rolled back and nothing of it was kept.
    #[error("the transaction was aborted and rolled back; nothing of it was written")]
    TxAborted,
    /// An argument was refused before anything was written.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// Which argument or field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A stored value could not be read back (edited by hand, or written by something else).
    #[error("{table}.{column} of row {id}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The row's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database failed a statement.
    #[error("database error while {context}: {source}")]
    Database {
        /// What the store was doing, naming the record.
        context: String,
        /// The database's answer.
        #[source]
        source: sqlx::Error,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps a driver error with what the store was doing.
pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let context = context.into();
    move |source| Error::Database { context, source }
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The constraint name (PostgreSQL) or message (SQLite) of a unique violation, to tell which
/// column it was about.
pub(crate) fn violation_text(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => format!("{} {}", d.constraint().unwrap_or(""), d.message()),
        other => other.to_string(),
    }
}
