//! The store handle, its transactions, and helpers shared by every table module.

use std::fmt;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crmkit_core::{Crm, ObjectKind};
use sqlx::AnyConnection;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Row, Transaction};

use crate::error::db;
use crate::url::DbUrl;
use crate::{Backend, Error, Result};

/// A handle on the sync engine's durable state: a pool of connections to one SQLite or
/// PostgreSQL database whose schema is up to date. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    redacted_url: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.redacted_url)
            .finish()
    }
}

/// The drivers behind `AnyPool`. Installed once per process; if the application installed its
/// own set first, that set stays (opening then fails with the driver's clear error if it
/// lacks one of ours).
fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _already_installed =
            sqlx::any::install_drivers(&[sqlx::postgres::any::DRIVER, sqlx::sqlite::any::DRIVER]);
    });
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date.
    ///
    /// `url` is `postgres://user[:password]@host[:port]/db[?options]` (also `postgresql://`),
    /// `sqlite:PATH` or `sqlite://PATH` (created if missing unless the URL sets `mode=`),
    /// a bare file path such as `crmkit.db` (SQLite), or `sqlite::memory:` (a private
    /// database that lives as long as the store; for tests). Migrations not yet applied are
    /// applied, each in its own transaction; opening an up-to-date database changes nothing.
    pub async fn open(url: &str) -> Result<Store> {
        let parsed = DbUrl::parse(url)?;
        install_drivers();
        let connect_err = |e: sqlx::Error| Error::Connect {
            url: parsed.redacted.clone(),
            message: parsed.scrub(&e.to_string()),
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        options = match (parsed.backend, parsed.memory) {
            // Each connection to `sqlite::memory:` is its own database: keep exactly one,
            // forever.
            (Backend::Sqlite, true) => options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            (Backend::Sqlite, false) if !parsed.read_only() => options
                .max_connections(4)
                .after_connect(|conn, _| Box::pin(sync_normal(conn))),
            (Backend::Sqlite, false) => options.max_connections(4),
            (Backend::Postgres, _) => options.max_connections(8),
        };
        if !parsed.memory {
            // One direct attempt first: a wrong host or password fails at once with the
            // server's answer, instead of after the pool's retries.
            let probe = sqlx::AnyConnection::connect(&parsed.driver_url)
                .await
                .map_err(connect_err)?;
            probe.close().await.map_err(connect_err)?;
        }
        let pool = options
            .connect(&parsed.driver_url)
            .await
            .map_err(connect_err)?;
        if parsed.backend == Backend::Sqlite && !parsed.memory && !parsed.read_only() {
            enable_wal(&pool).await.map_err(connect_err)?;
        }
        let store = Store {
            pool,
            backend: parsed.backend,
            redacted_url: parsed.redacted,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this database lacks and returns how many it applied (0 when
    /// the schema is current). [`Store::open`] already does this; calling it again is
    /// harmless.
    pub async fn migrate(&self) -> Result<usize> {
        crate::migrate::run(&self.pool, self.backend).await
    }

    /// The schema version of the database (the highest applied migration).
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(crate::migrate::applied(&self.pool)
            .await?
            .last()
            .copied()
            .unwrap_or(0))
    }

    /// The schema version this build of crmkit writes.
    pub fn latest_schema_version() -> i64 {
        crate::migrate::latest()
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL with its password replaced by `[REDACTED]`.
    pub fn url(&self) -> &str {
        &self.redacted_url
    }

    /// Starts a transaction: every write made through the returned [`Tx`] becomes visible
    /// at once on [`Tx::commit`], or not at all (dropping it rolls back). Use it to move a
    /// cursor together with the links it covers.
    ///
    /// On SQLite the transaction takes the write lock when it starts (`BEGIN IMMEDIATE`), so
    /// writers queue instead of failing midway. While a `Tx` is open, write through it, not
    /// through the `Store`: on SQLite another writer waits for the `Tx` to end (and gives up
    /// with a "database is locked" error after 5 s), and an in-memory store has a single
    /// connection, which the `Tx` holds.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = begin_on(&self.pool, self.backend)
            .await
            .map_err(db("starting a transaction"))?;
        Ok(Tx {
            inner,
            backend: self.backend,
            broken: false,
        })
    }

    /// Closes every connection; the store cannot be used afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A connection for reads outside a transaction.
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<Any>> {
        self.pool
            .acquire()
            .await
            .map_err(db("taking a connection from the pool"))
    }

    /// The pool, for operations that must run on their own (leases, inbox claims).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Switches a SQLite file to write-ahead logging (readers do not block the writer). The mode
/// is stored in the file; switching needs a lock that the busy timeout does not wait for, so
/// a process opening at the same instant as another retries a few times.
async fn enable_wal(pool: &AnyPool) -> std::result::Result<(), sqlx::Error> {
    let mut attempt = 0;
    loop {
        match sqlx::query("PRAGMA journal_mode = WAL").execute(pool).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 20 && is_busy(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sets `synchronous = NORMAL` on a connection to a SQLite file, which [`Store::open`]
/// puts in write-ahead-log mode: a commit is then appended to the log without waiting for
/// the disk, which is synced at checkpoints instead. With WAL this cannot corrupt the
/// database (sqlite.org/pragma.html#pragma_synchronous: "WAL mode is always consistent
/// with synchronous=NORMAL"), and a process crash loses nothing committed; only a power
/// loss or OS crash may roll back the last transactions. The sync engine is built for
/// that: its creates carry markers looked up before creating, updates are patches planned
/// again from stored hashes, deletions are sent again, and cursors only move after what
/// they cover, so a store rolled back a few commits repeats work without losing or
/// doubling any record. FULL (sqlx's default) waits for the disk on every commit, which
/// made the first sync of 1,000 records spend most of its time in fsync.
async fn sync_normal(conn: &mut AnyConnection) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(conn)
        .await
        .map(drop)
}

/// Whether SQLite answered "database is locked" / "busy".
fn is_busy(e: &sqlx::Error) -> bool {
    let text = e.to_string();
    text.contains("locked") || text.contains("busy")
}

/// Starts a transaction that takes SQLite's write lock at once.
pub(crate) async fn begin_on(
    pool: &AnyPool,
    backend: Backend,
) -> std::result::Result<Transaction<'static, Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// A transaction on the store. Operations on it see its own writes; [`Tx::commit`] makes
/// them durable together; dropping it without committing rolls everything back.
///
/// Each operation runs inside a savepoint of its own: an operation that fails (say
/// [`Error::MarkerTaken`] or [`Error::CrmIdTaken`]) undoes only its own statements and the
/// `Tx` stays usable, with the same outcome on SQLite and PostgreSQL (where a failed
/// statement would otherwise abort the whole transaction). If the store cannot restore the
/// savepoint, or an operation's future was dropped midway, the `Tx` is marked broken: later
/// operations and [`Tx::commit`] fail with [`Error::TxAborted`] and nothing is written.
pub struct Tx {
    inner: Transaction<'static, Any>,
    backend: Backend,
    /// Set when an operation could not be undone to its savepoint (or did not finish):
    /// the transaction must not commit.
    broken: bool,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Tx {
    /// Makes every write of this transaction durable, all at once. Fails with
    /// [`Error::TxAborted`] (and rolls back) if an operation left the transaction broken.
    pub async fn commit(self) -> Result<()> {
        if self.broken {
            self.inner.rollback().await.ok();
            return Err(Error::TxAborted);
        }
        self.inner
            .commit()
            .await
            .map_err(db("committing a transaction"))
    }

    /// Discards every write of this transaction.
    pub async fn rollback(self) -> Result<()> {
        self.inner
            .rollback()
            .await
            .map_err(db("rolling back a transaction"))
    }

    /// Which backend this transaction runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    /// Opens the savepoint one operation runs in. The `Tx` counts as broken until
    /// [`Tx::end_op`] closes it, so an operation whose future is dropped midway cannot
    /// commit half done.
    pub(crate) async fn begin_op(&mut self) -> Result<()> {
        if self.broken {
            return Err(Error::TxAborted);
        }
        self.broken = true;
        sqlx::query("SAVEPOINT crmkit_op")
            .execute(&mut *self.inner)
            .await
            .map_err(db("opening a savepoint"))?;
        Ok(())
    }

    /// Makes the transaction unable to commit (a fence failed).
    pub(crate) fn poison(&mut self) {
        self.broken = true;
    }

    /// Closes the savepoint of [`Tx::begin_op`]: kept on success, undone on failure.
    pub(crate) async fn end_op<T>(&mut self, out: Result<T>) -> Result<T> {
        if out.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT crmkit_op")
                .execute(&mut *self.inner)
                .await
                .map_err(db("undoing a failed operation"))?;
        }
        sqlx::query("RELEASE SAVEPOINT crmkit_op")
            .execute(&mut *self.inner)
            .await
            .map_err(db("releasing a savepoint"))?;
        self.broken = false;
        out
    }
}

/// Declares operations once and exposes each on both [`Tx`] (inside the caller's
/// transaction) and [`Store`] (a `write` in a transaction of its own, a `read` on a pooled
/// connection).
macro_rules! ops {
    (@call read $s:ident, $imp:path, $($arg:ident),*) => {{
        let mut conn = $s.acquire().await?;
        $imp(&mut conn, $($arg),*).await
    }};
    (@call write $s:ident, $imp:path, $($arg:ident),*) => {{
        let mut tx = $s.begin().await?;
        let out = $imp(tx.conn(), $($arg),*).await?;
        tx.commit().await?;
        Ok(out)
    }};
    ($(
        $(#[$meta:meta])*
        $kind:ident fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $imp:path;
    )*) => {
        impl $crate::Tx {
            $(
                $(#[$meta])*
                pub async fn $name(&mut self, $($arg: $ty),*) -> $crate::Result<$ret> {
                    self.begin_op().await?;
                    let out = $imp(self.conn(), $($arg),*).await;
                    self.end_op(out).await
                }
            )*
        }
        impl $crate::Store {
            $(
                $(#[$meta])*
                pub async fn $name(&self, $($arg: $ty),*) -> $crate::Result<$ret> {
                    ops!(@call $kind self, $imp, $($arg),*)
                }
            )*
        }
    };
}
pub(crate) use ops;

/// Milliseconds since the Unix epoch, as stored.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A new time-ordered id (UUID v7 as text): ids made later in one process sort later.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Stored milliseconds as a time.
pub(crate) fn to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A time as stored milliseconds.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The stored name of a CRM.
pub(crate) fn crm_str(crm: Crm) -> &'static str {
    match crm {
        Crm::Close => "close",
        Crm::HubSpot => "hubspot",
        Crm::Salesforce => "salesforce",
    }
}

/// Reads a stored CRM name.
pub(crate) fn parse_crm(s: &str) -> Option<Crm> {
    match s {
        "close" => Some(Crm::Close),
        "hubspot" => Some(Crm::HubSpot),
        "salesforce" => Some(Crm::Salesforce),
        _ => None,
    }
}

/// The stored name of an object kind.
pub(crate) fn object_str(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Company => "company",
        ObjectKind::Person => "person",
        ObjectKind::Deal => "deal",
        ObjectKind::Activity => "activity",
    }
}

/// Reads a stored object kind.
pub(crate) fn parse_object(s: &str) -> Option<ObjectKind> {
    match s {
        "company" => Some(ObjectKind::Company),
        "person" => Some(ObjectKind::Person),
        "deal" => Some(ObjectKind::Deal),
        "activity" => Some(ObjectKind::Activity),
        _ => None,
    }
}

/// Reads the columns of one row, turning any surprise into [`Error::Corrupt`] naming the
/// table, column and row.
pub(crate) struct Reader<'r> {
    row: &'r AnyRow,
    table: &'static str,
    id: String,
}

impl<'r> Reader<'r> {
    /// A reader for `row` of `table`, whose key is in column `id_column`.
    pub fn new(row: &'r AnyRow, table: &'static str, id_column: &str) -> Self {
        let id = row
            .try_get::<String, _>(id_column)
            .unwrap_or_else(|_| "?".into());
        Self { row, table, id }
    }

    /// The row's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A [`Error::Corrupt`] naming this row's `column` and why.
    pub fn corrupt(&self, column: &'static str, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            table: self.table,
            column,
            id: self.id.clone(),
            reason: reason.into(),
        }
    }

    /// A text column.
    pub fn text(&self, column: &'static str) -> Result<String> {
        self.row
            .try_get::<String, _>(column)
            .map_err(|e| self.corrupt(column, e.to_string()))
    }

    /// A nullable text column.
    pub fn opt_text(&self, column: &'static str) -> Result<Option<String>> {
        self.row
            .try_get::<Option<String>, _>(column)
            .map_err(|e| self.corrupt(column, e.to_string()))
    }

    /// A BIGINT column.
    pub fn int(&self, column: &'static str) -> Result<i64> {
        self.row
            .try_get::<i64, _>(column)
            .map_err(|e| self.corrupt(column, e.to_string()))
    }

    /// A nullable BIGINT column.
    pub fn opt_int(&self, column: &'static str) -> Result<Option<i64>> {
        self.row
            .try_get::<Option<i64>, _>(column)
            .map_err(|e| self.corrupt(column, e.to_string()))
    }

    /// A time column.
    pub fn time(&self, column: &'static str) -> Result<DateTime<Utc>> {
        self.int(column).map(to_time)
    }

    /// A nullable time column.
    pub fn opt_time(&self, column: &'static str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.opt_int(column)?.map(to_time))
    }

    /// A CRM column.
    pub fn crm(&self, column: &'static str) -> Result<Crm> {
        let s = self.text(column)?;
        parse_crm(&s).ok_or_else(|| self.corrupt(column, format!("unknown CRM {s:?}")))
    }

    /// A nullable CRM column.
    pub fn opt_crm(&self, column: &'static str) -> Result<Option<Crm>> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(s) => parse_crm(&s)
                .map(Some)
                .ok_or_else(|| self.corrupt(column, format!("unknown CRM {s:?}"))),
        }
    }

    /// An object kind column.
    pub fn object(&self, column: &'static str) -> Result<ObjectKind> {
        let s = self.text(column)?;
        parse_object(&s).ok_or_else(|| self.corrupt(column, format!("unknown object kind {s:?}")))
    }

    /// A column holding one of the names `T` parses.
    pub fn parsed<T: FromStr>(&self, column: &'static str) -> Result<T> {
        let s = self.text(column)?;
        s.parse()
            .map_err(|_| self.corrupt(column, format!("unknown value {s:?}")))
    }

    /// A JSON text column.
    pub fn json(&self, column: &'static str) -> Result<serde_json::Value> {
        let s = self.text(column)?;
        serde_json::from_str(&s).map_err(|e| self.corrupt(column, format!("not JSON: {e}")))
    }

    /// A nullable JSON text column.
    pub fn opt_json(&self, column: &'static str) -> Result<Option<serde_json::Value>> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| self.corrupt(column, format!("not JSON: {e}"))),
        }
    }
}

/// A JSON value as stored text.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Declares a closed set of states stored as lowercase words, with `as_str`, `Display` and
/// `FromStr`.
macro_rules! str_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err($crate::Error::InvalidInput {
                        field: stringify!($name).into(),
                        reason: format!("unknown value {other:?}"),
                    }),
                }
            }
        }
    };
}
pub(crate) use str_enum;
