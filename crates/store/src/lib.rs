//! The sync engine's durable state, on SQLite or PostgreSQL.
//!
//! A [`Store`] holds what the sync engine must not forget between runs or across a crash:
//! the [links](Link) between one record's ids in Close, HubSpot and Salesforce, the change-feed
//! [cursors](Cursor), the [runs](Run), the [write intents](Intent) logged before each write,
//! [conflicts](Conflict), an [audit](AuditEntry) of every field change, a [review](Review)
//! queue for ambiguous matches, the [retry list](Retry) of records a run could not sync,
//! [leases](Lease) between processes, and the webhook
//! [inbox](InboxItem).
//!
//! ```no_run
//! use crmkit_core::{Crm, ObjectKind};
//! use crmkit_store::{CursorKey, NewLink, Store};
//!
//! # async fn demo() -> crmkit_store::Result<()> {
//! let store = Store::open("crmkit.db").await?; // or std::env::var("DATABASE_URL")
//! let key = CursorKey::new("close-hubspot", Crm::Close, ObjectKind::Company);
//! // The cursor moves only together with the links it covers.
//! let mut tx = store.begin().await?;
//! tx.upsert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_1")).await?;
//! tx.set_cursor(&key, "opaque-cursor-from-the-connector").await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! # Backends and URLs
//! [`Store::open`] takes one URL:
//! - a file path such as `crmkit.db`, or `sqlite:PATH` / `sqlite://PATH`: **SQLite**, the
//!   embedded default. The file is created if missing (unless the URL sets `mode=`) and put in
//!   write-ahead-log mode with `synchronous = NORMAL`: commits do not wait for the disk, a
//!   process crash loses nothing committed, and a power loss may roll back only the last
//!   commits, never corrupt the file (the sync engine repeats such work idempotently; see
//!   the reasoning at `sync_normal` in `store.rs`). Several processes may share the file.
//! - `sqlite::memory:`: a private in-memory SQLite database living as long as the store (one
//!   connection; for tests and dry runs).
//! - `postgres://user[:password]@host[:port]/database[?param=…]` (also `postgresql://`):
//!   **PostgreSQL**, for several processes or machines (typically from `DATABASE_URL`).
//!   `sslmode=require` and friends work (TLS through rustls); `options=-c search_path=NAME`
//!   puts the tables in schema `NAME`.
//!
//! Both backends run the same SQL through one code path: sqlx's `Any` driver with runtime
//! (not macro-checked) queries, `$1…$n` placeholders, and only `TEXT` and `BIGINT` columns.
//! Ids are UUID v7 strings made in Rust, times are `BIGINT` milliseconds since the Unix epoch,
//! JSON is stored as text. The only backend-specific fragments are the database clock used by
//! leases and inbox claims, `BEGIN IMMEDIATE` on SQLite, and on PostgreSQL `FOR UPDATE` on
//! the link an upsert merges into and `FOR UPDATE SKIP LOCKED` in inbox claims. sqlx was chosen over a driver per backend so that no operation
//! exists twice; its compile-time macros and offline data are not used, so building needs no
//! database.
//!
//! # Schema and migrations
//! Migrations are applied by [`Store::open`] (and [`Store::migrate`]), each in its own
//! transaction together with its row in `crmkit_migrations` (version, name, applied_at);
//! applying them again does nothing, two processes migrating at once apply each migration
//! once, and a database migrated by a newer crmkit is refused ([`Error::SchemaTooNew`]).
//! The tables:
//!
//! | table | holds |
//! |---|---|
//! | `crm_sync_records` | links: `id`, `entity_type`, `close_id` / `hubspot_id` / `salesforce_id` (each unique per entity type), `email`, `domain`, `company_name`, `close_hash` / `hubspot_hash` / `salesforce_hash`, `sync_hash`, `sync_source`, `last_synced_at`, `version`, `created_at`, `updated_at` |
//! | `sync_cursors` | one opaque cursor per (`pair`, `crm`, `object`) |
//! | `sync_runs` | `id`, `pair`, `started_at`, `finished_at`, `status`, `counts` (JSON), `errors` (JSON) |
//! | `write_intents` | `id`, `run_id`, `link_id`, `crm`, `object`, `op`, `marker` (unique), `payload` (JSON), `state`, `result_id`, `error`, `created_at`, `updated_at` |
//! | `sync_conflicts` | `id`, `link_id`, `entity_type`, `field`, the value per CRM (JSON), `status`, `resolution`, `resolved_by`, `resolved_at`, `created_at` |
//! | `sync_audit` | `id`, `link_id`, `run_id`, `crm`, `field`, `old_value`, `new_value`, `source`, `changed_at` |
//! | `match_reviews` | `id`, `entity_type`, `candidates` (JSON), `reason`, `status`, `decision`, `decided_by`, `decided_at`, `created_at` |
//! | `leases` | `name`, `holder`, `token`, `acquired_at`, `expires_at` |
//! | `sync_retries` | records a run could not sync: `pair`, `crm`, `object`, `record_id` (the key), `reason`, `attempts`, `first_failed_at`, `last_failed_at`, `next_attempt_at` (NULL once given up) |
//! | `account_facts` | facts learned about a CRM account: `crm`, `name` (the key), `fact_value`, `updated_at` |
//! | `webhook_inbox` | `id`, `crm`, `delivery_id` (unique per CRM), `received_at`, `body` (hex-encoded when `body_encoding = 'hex'`), `headers` (JSON), `claimed_by`, `claimed_until`, `attempts`, `processed_at`, `last_error`, `dead_at` |
//!
//! CRM ids are unique per entity type rather than globally because HubSpot numbers each
//! object type on its own (a company and a contact can both be `101`). The store compares ids
//! as exact strings: give it one spelling per record (Salesforce's 18-character form, for
//! instance, not sometimes the 15-character one).
//!
//! # Guarantees
//! - **Transactions.** Every write method exists on [`Store`] (its own transaction) and on
//!   [`Tx`] (the caller's): links, cursors, intents, runs, conflicts, audit and inbox inserts
//!   written through one `Tx` become visible together on [`Tx::commit`] or not at all, which
//!   is how a cursor moves only after what it covers is stored.
//! - **No silent overwrite.** A [`Link`] carries the `version` it was read at; updates and
//!   deletes write only if the stored link is still at that version, and otherwise fail with
//!   [`Error::VersionConflict`] having written nothing.
//! - **One link per CRM id.** Setting a CRM id that another link of the same kind holds fails
//!   with [`Error::CrmIdTaken`] naming both links; an upsert whose ids point at two links
//!   fails with [`Error::AmbiguousLinks`].
//! - **Writes are logged before they are sent.** An [`Intent`] goes pending → sent → settled
//!   or failed, never back; its marker is unique;
//!   [`Store::unsettled_intents`] lists what a crash left pending or sent.
//! - **Failed records are kept.** A record a run could not sync goes on the
//!   [retry list](Retry) ([`Store::record_retry`]) with exponential, capped back-off; after
//!   the policy's last attempt it stays listed as given up until it syncs
//!   ([`Store::clear_retry`]) or a person re-arms it ([`Store::reset_retry`],
//!   [`Store::reset_given_up`]: attempts from zero, due now); nothing is dropped from it in
//!   silence. An entry may note a merge waiting on the record ([`Store::remember_merge`]).
//! - **Leases exclude.** [`Store::acquire_lease`] is one atomic statement that takes a lease
//!   only if it is free or expired, judged by the database's clock; two processes never hold
//!   one lease at once, and a dead holder's lease expires after its time to live.
//! - **Inbox claims exclude.** [`Store::inbox_claim`] hands each unprocessed row to one worker
//!   until its claim expires; processed rows are never handed out again; only the claimant
//!   settles a row; a row claimed `max_attempts` times becomes a dead letter, kept and
//!   listed ([`Store::inbox_dead_letters`]), never retried forever. Bodies are kept exactly
//!   (NUL characters included) on both backends. A delivery stored
//!   with its CRM's delivery id ([`Store::inbox_insert_once`]) is stored once however often
//!   the CRM retries it.
//! - **Secrets.** A password in the database URL never appears in errors or `Debug` output
//!   ([`Store::url`] and errors show `[REDACTED]`).
//! - **Errors** are one `#[non_exhaustive]` [`Error`] naming the record (and field) concerned.

mod audit;
mod conflicts;
mod cursors;
mod error;
mod facts;
mod inbox;
mod intents;
mod leases;
mod links;
mod migrate;
mod retries;
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
pub use links::{LOOKUP_CHUNK, Link, LinkUpdate, NewLink, UPSERT_ATTEMPTS, Upserted};
pub use retries::{Retry, RetryPolicy};
pub use runs::{PairState, Run, RunCounts, RunStatus};
pub use store::{Store, Tx};
pub use url::{Backend, redact};

crmkit_core::id_type!(LinkId, "The id of a [`Link`] (a UUID v7 as text).");
crmkit_core::id_type!(RunId, "The id of a [`Run`] (a UUID v7 as text).");
crmkit_core::id_type!(IntentId, "The id of an [`Intent`] (a UUID v7 as text).");
crmkit_core::id_type!(ConflictId, "The id of a [`Conflict`] (a UUID v7 as text).");
crmkit_core::id_type!(AuditId, "The id of an [`AuditEntry`] (a UUID v7 as text).");
crmkit_core::id_type!(ReviewId, "The id of a [`Review`] (a UUID v7 as text).");
crmkit_core::id_type!(InboxId, "The id of an [`InboxItem`] (a UUID v7 as text).");
