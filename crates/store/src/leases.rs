//! Leases: named, expiring locks shared through the database, so that one process at a time
//! does a piece of work (a sync pair's run, an inbox worker's shard).
//!
//! A lease is free when it has never been taken, was released, or expired. Taking it is one
//! atomic statement (an insert, or an update that only matches an expired row), so two
//! processes never hold the same lease, and a holder that dies loses it when its time to live
//! runs out. Expiry is judged by the database's clock, so the holders' clocks may disagree.
//! Each take increments the lease's fencing `token`: work guarded by a lease can carry it and
//! a stale holder's writes can be told apart.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::error::db;
use crate::store::Reader;
use crate::{Backend, Error, Result, Store};

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        row.as_ref().map(from_row).transpose()
    }

    /// Extends a held lease to `ttl` from now. If it expired or was taken over meanwhile, it
    /// is [`Error::LeaseLost`]: stop the work it guarded.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
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
            Some(row) => from_row(&row),
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
