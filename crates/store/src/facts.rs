//! Facts learned about a CRM account, one text per (CRM, name): what the sync engine cannot
//! ask the CRM and sees only in its answers (the country code a Close account adds to a
//! phone number sent without one; the record a merged-away record went into).

use std::collections::BTreeMap;

use crmkit_core::Crm;
use sqlx::{AnyConnection, Row};

use crate::Result;
use crate::error::db;
use crate::store::{crm_str, now_ms, ops};

ops! {
    /// The value learned as `name` for `crm`, if any.
    read fn account_fact(crm: Crm, name: &str) -> Option<String> = get;
    /// The value learned as each of `names` for `crm`, in their order: one query per
    /// [`LOOKUP_CHUNK`](crate::LOOKUP_CHUNK) names.
    read fn account_facts(crm: Crm, names: &[String]) -> Vec<Option<String>> = get_many;
    /// Stores `value` as `name` for `crm`, replacing what was learned before.
    write fn set_account_fact(crm: Crm, name: &str, value: &str) -> () = set;
    /// Forgets what was learned as `name` for `crm` (learned again from later answers);
    /// whether there was anything to forget.
    write fn forget_account_fact(crm: Crm, name: &str) -> bool = forget;
}

async fn get(conn: &mut AnyConnection, crm: Crm, name: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT fact_value FROM account_facts WHERE crm = $1 AND name = $2")
        .bind(crm_str(crm))
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading {crm}'s {name}")))?;
    row.map(|r| r.try_get::<String, _>("fact_value"))
        .transpose()
        .map_err(db(format!("reading {crm}'s {name}")))
}

async fn get_many(
    conn: &mut AnyConnection,
    crm: Crm,
    names: &[String],
) -> Result<Vec<Option<String>>> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for chunk in names.chunks(crate::LOOKUP_CHUNK) {
        let params: Vec<String> = (0..chunk.len()).map(|n| format!("${}", n + 2)).collect();
        let sql = format!(
            "SELECT name, fact_value FROM account_facts WHERE crm = $1 AND name IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(crm_str(crm));
        for name in chunk {
            query = query.bind(name.as_str());
        }
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .map_err(db(format!("reading {} of {crm}'s facts", chunk.len())))?;
        for row in rows {
            let (name, value): (String, String) = (
                row.try_get("name")
                    .map_err(db(format!("reading {crm}'s facts")))?,
                row.try_get("fact_value")
                    .map_err(db(format!("reading {crm}'s facts")))?,
            );
            found.insert(name, value);
        }
    }
    Ok(names
        .iter()
        .map(|n| found.get(n.as_str()).cloned())
        .collect())
}

async fn set(conn: &mut AnyConnection, crm: Crm, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO account_facts (crm, name, fact_value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (crm, name) DO UPDATE \
         SET fact_value = excluded.fact_value, updated_at = excluded.updated_at",
    )
    .bind(crm_str(crm))
    .bind(name)
    .bind(value)
    .bind(now_ms())
    .execute(conn)
    .await
    .map_err(db(format!("storing {crm}'s {name}")))?;
    Ok(())
}

async fn forget(conn: &mut AnyConnection, crm: Crm, name: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM account_facts WHERE crm = $1 AND name = $2")
        .bind(crm_str(crm))
        .bind(name)
        .execute(conn)
        .await
        .map_err(db(format!("forgetting {crm}'s {name}")))?;
    Ok(done.rows_affected() > 0)
}
