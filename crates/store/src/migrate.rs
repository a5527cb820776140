//! The schema and its migrations.
//!
//! Each migration is a list of portable statements (only `TEXT` and `BIGINT` columns, named
//! `UNIQUE` constraints, plain indexes), applied in its own transaction together with its
//! row in `crmkit_migrations`. That row is inserted first: when two processes migrate one
//! PostgreSQL database at once, the second blocks on the first's row, then sees a unique
//! violation, rolls back and finds the migration applied.

use sqlx::{AnyPool, Row};

use crate::error::{db, is_unique_violation};
use crate::{Backend, Error, Result};

/// One schema migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// Every migration, in order. Never edit one that has shipped: add a new one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "links, cursors, runs, write intents",
        statements: &[
            // The link between one record's ids in each CRM. CRM ids are unique per kind of
            // record, not globally: HubSpot numbers each object type separately, so a company
            // and a contact can both be 101.
            "CREATE TABLE crm_sync_records (
                id TEXT PRIMARY KEY,
                entity_type TEXT NOT NULL,
                close_id TEXT,
                hubspot_id TEXT,
                salesforce_id TEXT,
                email TEXT,
                domain TEXT,
                company_name TEXT,
                close_hash TEXT,
                hubspot_hash TEXT,
                salesforce_hash TEXT,
                sync_hash TEXT,
                sync_source TEXT,
                last_synced_at BIGINT,
                version BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                CONSTRAINT crm_sync_records_close_id UNIQUE (entity_type, close_id),
                CONSTRAINT crm_sync_records_hubspot_id UNIQUE (entity_type, hubspot_id),
                CONSTRAINT crm_sync_records_salesforce_id UNIQUE (entity_type, salesforce_id)
            )",
            "CREATE INDEX crm_sync_records_email ON crm_sync_records (email)",
            "CREATE INDEX crm_sync_records_domain ON crm_sync_records (domain)",
            "CREATE TABLE sync_cursors (
                pair TEXT NOT NULL,
                crm TEXT NOT NULL,
                object TEXT NOT NULL,
                cursor_value TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (pair, crm, object)
            )",
            "CREATE TABLE sync_runs (
                id TEXT PRIMARY KEY,
                pair TEXT NOT NULL,
                started_at BIGINT NOT NULL,
                finished_at BIGINT,
                status TEXT NOT NULL,
                counts TEXT NOT NULL,
                errors TEXT NOT NULL
            )",
            "CREATE INDEX sync_runs_pair ON sync_runs (pair, started_at)",
            "CREATE TABLE write_intents (
                id TEXT PRIMARY KEY,
                run_id TEXT,
                link_id TEXT,
                crm TEXT NOT NULL,
                object TEXT NOT NULL,
                op TEXT NOT NULL,
                marker TEXT NOT NULL,
                payload TEXT NOT NULL,
                state TEXT NOT NULL,
                result_id TEXT,
                error TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                CONSTRAINT write_intents_marker UNIQUE (marker)
            )",
            "CREATE INDEX write_intents_state ON write_intents (state, created_at)",
        ],
    },
    Migration {
        version: 2,
        name: "conflicts, audit, review queue, leases, webhook inbox",
        statements: &[
            "CREATE TABLE sync_conflicts (
                id TEXT PRIMARY KEY,
                link_id TEXT NOT NULL,
                entity_type TEXT NOT NULL,
                field TEXT NOT NULL,
                close_value TEXT,
                hubspot_value TEXT,
                salesforce_value TEXT,
                status TEXT NOT NULL,
                resolution TEXT,
                resolved_by TEXT,
                resolved_at BIGINT,
                created_at BIGINT NOT NULL
            )",
            "CREATE INDEX sync_conflicts_status ON sync_conflicts (status, created_at)",
            "CREATE INDEX sync_conflicts_link ON sync_conflicts (link_id)",
            "CREATE TABLE sync_audit (
                id TEXT PRIMARY KEY,
                link_id TEXT NOT NULL,
                run_id TEXT,
                crm TEXT NOT NULL,
                field TEXT NOT NULL,
                old_value TEXT,
                new_value TEXT,
                source TEXT NOT NULL,
                changed_at BIGINT NOT NULL
            )",
            "CREATE INDEX sync_audit_link ON sync_audit (link_id, changed_at)",
            "CREATE INDEX sync_audit_run ON sync_audit (run_id)",
            "CREATE TABLE match_reviews (
                id TEXT PRIMARY KEY,
                entity_type TEXT NOT NULL,
                candidates TEXT NOT NULL,
                reason TEXT NOT NULL,
                status TEXT NOT NULL,
                decision TEXT,
                decided_by TEXT,
                decided_at BIGINT,
                created_at BIGINT NOT NULL
            )",
            "CREATE INDEX match_reviews_status ON match_reviews (status, created_at)",
            "CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                token BIGINT NOT NULL,
                acquired_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )",
            "CREATE TABLE webhook_inbox (
                id TEXT PRIMARY KEY,
                crm TEXT NOT NULL,
                received_at BIGINT NOT NULL,
                body TEXT NOT NULL,
                headers TEXT NOT NULL,
                claimed_by TEXT,
                claimed_until BIGINT,
                attempts BIGINT NOT NULL,
                processed_at BIGINT
            )",
            "CREATE INDEX webhook_inbox_pending ON webhook_inbox (processed_at, received_at)",
        ],
    },
    Migration {
        version: 3,
        name: "webhook inbox delivery ids",
        statements: &[
            // The CRM's own id of a delivery (HubSpot's eventId, Close's event id), so a
            // delivery the CRM retries is stored once. Rows without one never collide.
            "ALTER TABLE webhook_inbox ADD COLUMN delivery_id TEXT",
            "CREATE UNIQUE INDEX webhook_inbox_delivery ON webhook_inbox (crm, delivery_id)",
        ],
    },
    Migration {
        version: 4,
        name: "per-side field values last synced",
        statements: &[
            // Each side's mapped field values as last synced (a JSON object), so a sync tells
            // a field changed or cleared on one side from one that side left alone.
            "ALTER TABLE crm_sync_records ADD COLUMN close_fields TEXT",
            "ALTER TABLE crm_sync_records ADD COLUMN hubspot_fields TEXT",
            "ALTER TABLE crm_sync_records ADD COLUMN salesforce_fields TEXT",
        ],
    },
    Migration {
        version: 5,
        name: "intents per pair, one open conflict per field",
        statements: &[
            // Each intent belongs to a sync pair, so a process reconciles only the pair whose
            // lease it holds. Older intents take their run's pair.
            "ALTER TABLE write_intents ADD COLUMN pair TEXT NOT NULL DEFAULT ''",
            "UPDATE write_intents SET pair = COALESCE(
                (SELECT sync_runs.pair FROM sync_runs WHERE sync_runs.id = write_intents.run_id),
                '')",
            "CREATE INDEX write_intents_pair ON write_intents (pair, state, created_at)",
            // At most one open conflict per (link, field). Older duplicates are resolved as
            // superseded, keeping the newest open.
            "UPDATE sync_conflicts SET status = 'resolved', \
             resolution = '\"superseded by a newer open conflict\"', \
             resolved_by = 'crmkit schema migration 5', resolved_at = created_at \
             WHERE status = 'open' AND EXISTS (SELECT 1 FROM sync_conflicts newer \
                WHERE newer.link_id = sync_conflicts.link_id \
                AND newer.field = sync_conflicts.field AND newer.status = 'open' \
                AND (newer.created_at > sync_conflicts.created_at \
                    OR (newer.created_at = sync_conflicts.created_at \
                        AND newer.id > sync_conflicts.id)))",
            "CREATE UNIQUE INDEX sync_conflicts_open ON sync_conflicts (link_id, field) \
             WHERE status = 'open'",
        ],
    },
    Migration {
        version: 6,
        name: "per-record retry list",
        statements: &[
            // Records a run could not sync, so the feed's cursor can move past them without
            // losing them. `next_attempt_at` is NULL once a record is given up.
            "CREATE TABLE sync_retries (
                pair TEXT NOT NULL,
                crm TEXT NOT NULL,
                object TEXT NOT NULL,
                record_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                first_failed_at BIGINT NOT NULL,
                last_failed_at BIGINT NOT NULL,
                next_attempt_at BIGINT,
                PRIMARY KEY (pair, crm, object, record_id)
            )",
            "CREATE INDEX sync_retries_due ON sync_retries (pair, object, next_attempt_at)",
        ],
    },
    Migration {
        version: 7,
        name: "webhook inbox: encoded bodies, errors, dead letters",
        statements: &[
            // How `body` is stored: NULL (older rows) as received, 'hex' hex-encoded, so a
            // body holding NUL characters (which PostgreSQL text refuses) is kept exactly.
            "ALTER TABLE webhook_inbox ADD COLUMN body_encoding TEXT",
            "ALTER TABLE webhook_inbox ADD COLUMN last_error TEXT",
            // Set when an item used up its attempts: never claimed again, kept for a person.
            "ALTER TABLE webhook_inbox ADD COLUMN dead_at BIGINT",
        ],
    },
    Migration {
        version: 8,
        name: "webhook inbox: attempts of rows from before the attempt cap",
        statements: &[
            // Before migration 7 attempts were counted without a cap; such rows (the only ones
            // without a body encoding) would become dead letters at their first claim after
            // the upgrade. They start afresh.
            "UPDATE webhook_inbox SET attempts = 0 \
             WHERE body_encoding IS NULL AND processed_at IS NULL AND dead_at IS NULL",
        ],
    },
    Migration {
        version: 9,
        name: "facts learned about CRM accounts",
        statements: &[
            // One value per CRM and name, learned from the CRM's answers (the country code a
            // Close account gives phone numbers sent without one).
            "CREATE TABLE account_facts (
                crm TEXT NOT NULL,
                name TEXT NOT NULL,
                fact_value TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (crm, name)
            )",
        ],
    },
    Migration {
        version: 10,
        name: "retry list: merges waiting on their winner",
        statements: &[
            // The id of a record merged into the listed one whose merge waits on it (a winner
            // whose stage is not mapped yet): followed when the listed record syncs, while
            // the kind's cursors move on.
            "ALTER TABLE sync_retries ADD COLUMN merged_from TEXT",
        ],
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates the migrations table if needed.
async fn ensure_table(pool: &AnyPool) -> Result<()> {
    let create = "CREATE TABLE IF NOT EXISTS crmkit_migrations (
        version BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at BIGINT NOT NULL
    )";
    // Two PostgreSQL sessions creating the same table at once can race in the catalog even
    // with IF NOT EXISTS (one gets "type already exists" or a unique violation on pg_type);
    // a later try sees the table and does nothing. Only those race errors are retried;
    // anything else (say, permission denied) fails at once.
    let mut attempt = 0;
    loop {
        match sqlx::query(create).execute(pool).await {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(d))
                if attempt < 5
                    && matches!(d.code().as_deref(), Some("23505" | "42P07" | "42710")) =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => return Err(db("creating the crmkit_migrations table")(e)),
        }
    }
}

/// The versions recorded as applied.
pub(crate) async fn applied(pool: &AnyPool) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT version FROM crmkit_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(db("reading crmkit_migrations"))?;
    rows.iter()
        .map(|r| {
            r.try_get::<i64, _>(0).map_err(|e| Error::Corrupt {
                table: "crmkit_migrations",
                column: "version",
                id: "?".into(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Applies every migration not yet recorded; returns how many this call applied.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<usize> {
    ensure_table(pool).await?;
    let done = applied(pool).await?;
    let found = done.last().copied().unwrap_or(0);
    if found > latest() {
        return Err(Error::SchemaTooNew {
            found,
            known: latest(),
        });
    }
    let mut count = 0;
    for m in MIGRATIONS {
        if done.contains(&m.version) {
            continue;
        }
        if apply(pool, backend, m).await? {
            count += 1;
        }
    }
    Ok(count)
}

/// Applies one migration in a transaction; `false` if another process applied it first.
async fn apply(pool: &AnyPool, backend: Backend, m: &Migration) -> Result<bool> {
    let fail = |source| Error::Migration {
        version: m.version,
        name: m.name,
        source,
    };
    let mut tx = crate::store::begin_on(pool, backend).await.map_err(fail)?;
    let claimed = sqlx::query(
        "INSERT INTO crmkit_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
    )
    .bind(m.version)
    .bind(m.name)
    .bind(crate::store::now_ms())
    .execute(&mut *tx)
    .await;
    match claimed {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(false),
        Err(e) => return Err(fail(e)),
    }
    for statement in m.statements {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(true)
}
