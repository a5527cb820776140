//! Leases: named, expiring locks shared through the database, so that one process at a time
//! does a piece of work (a sync pair's run, an inbox worker's shard).
//!
//! A lease is free when it has never been taken, was released, or expired. Taking it is one
//! atomic statement (an insert, or an update that only matches an expired row), so two
//! processes never hold the same lease, and a holder that dies loses it when its time to live
//! runs out. Expiry is judged by the database's clock, so the holders' clocks may disagree.
//! Each take increments the lease's fencing `token`.
//!
//! A holder can stall (a pause, a slow CRM call) past its time to live while another process
//! takes the lease over, then wake up and write. Two guards stop it:
//! - **Fencing.** Every transaction doing guarded work (the sync engine: each one that moves
//!   cursors, links or intents of a pair) must call [`Tx::fence`](crate::Tx::fence) (or start
//!   with [`Store::begin_fenced`]). The check runs on the database: if the lease's holder or
//!   token no longer matches, or it expired, it fails with [`Error::LeaseLost`] and the
//!   transaction can no longer commit. On PostgreSQL the check locks the lease row
//!   (`FOR SHARE`), so a takeover waits until the fenced transaction ends; on SQLite the
//!   transaction already holds the write lock.
//! - **A local deadline.** [`Lease::local_deadline`] is this process's monotonic clock at the
//!   request plus the time to live: the lease surely expired by then whatever the database's
//!   clock says, so a holder should stop (or renew) before it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::error::db;
use crate::store::Reader;
use crate::{Backend, Error, Result, Store};

/// A held lease. Two leases compare equal when their stored fields are equal (the local
/// deadline is this process's view, not part of the lease).
#[derive(Debug, Clone, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Lease {
    /// What it guards.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// Fencing token: increases every time the lease is taken.
    pub token: i64,
    /// When it was taken (database clock).
    pub acquired_at: DateTime<Utc>,
    /// When it expires unless renewed (database clock).
    pub expires_at: DateTime<Utc>,
    /// When it expires at the latest by this process's monotonic clock (taken before the
    /// request was sent, plus the time to live): stop or renew before then. `None` for a
    /// lease only read ([`Store::lease`]) or deserialized.
    #[serde(skip)]
    pub local_deadline: Option<Instant>,
}

impl PartialEq for Lease {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.holder == other.holder
            && self.token == other.token
            && self.acquired_at == other.acquired_at
            && self.expires_at == other.expires_at
    }
}

const COLUMNS: &str = "name, holder, token, acquired_at, expires_at";

fn from_row(row: &AnyRow) -> Result<Lease> {
    let r = Reader::new(row, "leases", "name");
    Ok(Lease {
        name: r.text("name")?,
        holder: r.text("holder")?,
        token: r.int("token")?,
        acquired_at: r.time("acquired_at")?,
        expires_at: r.time("expires_at")?,
        local_deadline: None,
    })
}

/// The database's current time in epoch milliseconds, as SQL.
pub(crate) fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// A time to live in milliseconds, refusing zero and absurd values.
pub(crate) fn ttl_ms(what: &str, ttl: Duration) -> Result<i64> {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    if ms <= 0 || ms > 366 * 24 * 3_600_000 {
        return Err(Error::InvalidInput {
            field: format!("time to live of {what}"),
            reason: format!("{ttl:?} is not between 1 ms and a year"),
        });
    }
    Ok(ms)
}

impl Store {
    /// Takes lease `name` for `holder` for `ttl`, if it is free or expired; `None` if another
    /// holder (or this one, earlier) holds it. Use a holder name unique to the process (host,
    /// pid, a random part): a holder must [`renew`](Store::renew_lease) to keep a lease, not
    /// take it again.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let started = Instant::now();
        let ttl_dur = ttl;
        let ttl = ttl_ms(&format!("lease {name:?}"), ttl)?;
        if holder.is_empty() {
            return Err(Error::InvalidInput {
                field: format!("holder of lease {name:?}"),
                reason: "empty".into(),
            });
        }
        let now = db_now(self.backend());
        let row = sqlx::query(&format!(
            "INSERT INTO leases ({COLUMNS}) VALUES ($1, $2, 1, {now}, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             token = leases.token + 1, acquired_at = excluded.acquired_at, \
             expires_at = excluded.expires_at \
             WHERE leases.expires_at <= {now} \
             RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(holder)
        .bind(ttl)
        .fetch_optional(self.pool())
        .await
        .map_err(db(format!("taking lease {name:?} for {holder:?}")))?;
        let lease = row.as_ref().map(from_row).transpose()?;
        Ok(lease.map(|l| Lease {
            local_deadline: started.checked_add(ttl_dur),
            ..l
        }))
    }

    /// Extends a held lease to `ttl` from now. If it expired or was taken over meanwhile, it
    /// is [`Error::LeaseLost`]: stop the work it guarded.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let started = Instant::now();
        let ttl_dur = ttl;
        let ttl = ttl_ms(&format!("lease {:?}", lease.name), ttl)?;
        let now = db_now(self.backend());
        let row = sqlx::query(&format!(
            "UPDATE leases SET expires_at = {now} + $1 \
             WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at > {now} \
             RETURNING {COLUMNS}"
        ))
        .bind(ttl)
        .bind(lease.name.as_str())
        .bind(lease.holder.as_str())
        .bind(lease.token)
        .fetch_optional(self.pool())
        .await
        .map_err(db(format!(
            "renewing lease {:?} for {:?}",
            lease.name, lease.holder
        )))?;
        match row {
            Some(row) => Ok(Lease {
                local_deadline: started.checked_add(ttl_dur),
                ..from_row(&row)?
            }),
            None => Err(Error::LeaseLost {
                name: lease.name.clone(),
                holder: lease.holder.clone(),
                token: lease.token,
            }),
        }
    }

    /// Gives a held lease back so another holder can take it at once; `false` if it was no
    /// longer held (it expired or was taken over). The fencing token is kept, so the next
    /// take still gets a higher one.
    pub async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let now = db_now(self.backend());
        let done = sqlx::query(&format!(
            "UPDATE leases SET expires_at = {now} \
             WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > {now}"
        ))
        .bind(lease.name.as_str())
        .bind(lease.holder.as_str())
        .bind(lease.token)
        .execute(self.pool())
        .await
        .map_err(db(format!(
            "releasing lease {:?} of {:?}",
            lease.name, lease.holder
        )))?;
        Ok(done.rows_affected() > 0)
    }

    /// Starts a transaction fenced by `lease` (see [`Tx::fence`](crate::Tx::fence)): fails
    /// with [`Error::LeaseLost`] if the lease is no longer held.
    pub async fn begin_fenced(&self, lease: &Lease) -> Result<crate::Tx> {
        let mut tx = self.begin().await?;
        tx.fence(lease).await?;
        Ok(tx)
    }

    /// The current holder of lease `name`, if it is held (not expired).
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        let now = db_now(self.backend());
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM leases WHERE name = $1 AND expires_at > {now}"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(db(format!("reading lease {name:?}")))?;
        row.as_ref().map(from_row).transpose()
    }
}

impl crate::Tx {
    /// Checks, on the database and inside this transaction, that `lease` is still held (same
    /// holder and token, not expired). If not, it fails with [`Error::LeaseLost`] and the
    /// transaction can no longer commit (commit fails with [`Error::TxAborted`]): drop it and
    /// stop the guarded work. The sync engine must call it in every transaction that moves a
    /// pair's cursors, links or intents, so a stale holder cannot write after a takeover.
    ///
    /// On PostgreSQL it locks the lease row until the transaction ends, so a concurrent
    /// takeover waits for this transaction instead of overlapping it.
    pub async fn fence(&mut self, lease: &Lease) -> Result<()> {
        self.fence_all(std::slice::from_ref(lease)).await
    }

    /// [`Tx::fence`](crate::Tx::fence) for several leases in one query (a sync run holds a
    /// lease per name of its CRMs and per CRM, and fences every transaction with all of
    /// them): fails with [`Error::LeaseLost`], naming the first of `leases` no longer held,
    /// if any is not. On PostgreSQL it locks every lease row until the transaction ends.
    pub async fn fence_all(&mut self, leases: &[Lease]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let now = db_now(self.backend());
        let lock = match self.backend() {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let placeholders: Vec<String> = (1..=leases.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT name, holder, token FROM leases \
             WHERE name IN ({}) AND expires_at > {now}{lock}",
            placeholders.join(", ")
        );
        self.begin_op().await?;
        let mut query = sqlx::query(&sql);
        for lease in leases {
            query = query.bind(lease.name.as_str());
        }
        let found = query
            .fetch_all(self.conn())
            .await
            .map_err(db(format!("checking leases {:?}", names(leases))));
        let out = found.and_then(|rows| {
            let mut held = Vec::with_capacity(rows.len());
            for row in &rows {
                let r = Reader::new(row, "leases", "name");
                held.push((r.text("name")?, r.text("holder")?, r.int("token")?));
            }
            match leases.iter().find(|l| {
                !held
                    .iter()
                    .any(|(n, h, t)| *n == l.name && *h == l.holder && *t == l.token)
            }) {
                None => Ok(()),
                Some(lost) => Err(Error::LeaseLost {
                    name: lost.name.clone(),
                    holder: lost.holder.clone(),
                    token: lost.token,
                }),
            }
        });
        let out = self.end_op(out).await;
        if out.is_err() {
            self.poison();
        }
        out
    }
}

/// The names of `leases`, for messages.
fn names(leases: &[Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.name.as_str()).collect()
}
