//! `GET query/?q=` and `queryAll/?q=`: runs a SOQL statement, renders records the way the
//! REST API does (`attributes`, parent records as nested objects, child subqueries as
//! their own query results, `null` when empty) and keeps the rest of the rows behind a
//! `nextRecordsUrl` (`/services/data/vXX.X/query/01g…-2000`; restforce
//! `query_paginated_first_page_response.json`). Subqueries page the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::data::Data;
use super::schema::{self, Object};
use super::soql::{self, Item, Query};

/// A query's remaining rows.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    object: &'static Object,
    query: Arc<Query>,
    ids: Arc<Vec<String>>,
    page: usize,
}

/// Open query cursors (the most recent ones; older ones expire like real locators).
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    open: HashMap<String, Cursor>,
    order: VecDeque<String>,
}

const MAX_CURSORS: usize = 2_000;

impl Cursors {
    fn add(&mut self, c: Cursor) -> String {
        let tail: String = (0..15).map(|_| fastrand::alphanumeric()).collect();
        let key = format!("01g{tail}");
        self.open.insert(key.clone(), c);
        self.order.push_back(key.clone());
        while self.order.len() > MAX_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.open.remove(&old);
            }
        }
        key
    }
}

/// What a query answer needs from the running emulator.
pub(crate) struct Ctx<'a> {
    /// The API version in the path (`59.0`).
    pub version: &'a str,
    /// Rows per page.
    pub page_size: usize,
    /// Child rows per subquery page.
    pub sub_page: usize,
    /// Where to keep cursors.
    pub cursors: &'a std::sync::Mutex<Cursors>,
}

impl Ctx<'_> {
    fn keep(&self, c: Cursor) -> String {
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(c)
    }
}

fn attributes(version: &str, o: &Object, id: &str) -> Value {
    json!({"type": o.name, "url": format!("/services/data/v{version}/sobjects/{}/{id}", o.name)})
}

/// Renders one row with the selected items.
pub(crate) fn render(
    ctx: &Ctx,
    data: &Data,
    o: &'static Object,
    row: &Value,
    items: &[Item],
) -> Result<Value, ApiError> {
    let id = row["Id"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert("attributes".into(), attributes(ctx.version, o, id));
    for item in items {
        match item {
            Item::Field(path) if path[0].starts_with("FIELDS(") => {
                for f in &o.fields {
                    if path[0] == "FIELDS(CUSTOM)" && !f.custom {
                        continue;
                    }
                    out.insert(f.name.into(), row[f.name].clone());
                }
            }
            Item::Field(path) => put_path(ctx, data, o, row, path, &mut out),
            Item::Sub(q) => {
                let child = o
                    .child(&q.from)
                    .ok_or_else(|| soql::invalid_type(&q.from))
                    .map_err(|_| {
                        ApiError::bad(
                            "INVALID_TYPE",
                            format!(
                                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                                q.from
                            ),
                        )
                    })?;
                let child_o =
                    schema::object(child.object).ok_or_else(|| soql::invalid_type(child.object))?;
                out.insert(
                    child.name.into(),
                    subquery(ctx, data, child_o, child.field, id, q)?,
                );
            }
            Item::Count | Item::CountOf(..) => {}
        }
    }
    Ok(Value::Object(out))
}

fn put_path(
    ctx: &Ctx,
    data: &Data,
    o: &'static Object,
    row: &Value,
    path: &[String],
    out: &mut Map<String, Value>,
) {
    let path = match path {
        [first, rest @ ..] if !rest.is_empty() && first.eq_ignore_ascii_case(o.name) => rest,
        p => p,
    };
    let [head, rest @ ..] = path else {
        return;
    };
    if rest.is_empty() {
        if let Some(f) = o.field(head) {
            out.insert(f.name.into(), row[f.name].clone());
        }
        return;
    }
    let Some(f) = o.relationship(head) else {
        return;
    };
    let rel = f.relationship.unwrap_or(f.name);
    let parent = row[f.name].as_str().and_then(|id| data.get_any(id));
    let Some((po, prow)) = parent else {
        out.entry(rel.to_string()).or_insert(Value::Null);
        return;
    };
    let entry = out.entry(rel.to_string()).or_insert(Value::Null);
    if !entry.is_object() {
        let pid = prow["Id"].as_str().unwrap_or_default();
        let mut m = Map::new();
        m.insert("attributes".into(), attributes(ctx.version, po, pid));
        *entry = Value::Object(m);
    }
    if let Value::Object(m) = entry {
        put_path(ctx, data, po, prow, rest, m);
    }
}

fn subquery(
    ctx: &Ctx,
    data: &Data,
    child: &'static Object,
    field: &str,
    parent_id: &str,
    q: &Query,
) -> Result<Value, ApiError> {
    let Some(f) = child.field(field) else {
        return Ok(Value::Null);
    };
    let mut ids: Vec<String> = data
        .lookup(child, f, &Value::String(parent_id.to_string()))
        .into_iter()
        .filter(|id| {
            data.get(child.name, id)
                .is_some_and(|r| r["IsDeleted"] != json!(true))
        })
        .collect();
    if q.filter.is_some() || !q.order.is_empty() || q.limit.is_some() || q.offset.is_some() {
        // The subquery's own filter and order over the children of this parent.
        let mut scoped = q.clone();
        scoped.from = child.name.to_string();
        let wanted: std::collections::HashSet<String> = ids.iter().cloned().collect();
        let pin = soql::Cond::In(
            vec!["Id".into()],
            false,
            wanted.into_iter().map(soql::Lit::Str).collect(),
        );
        scoped.filter = Some(match scoped.filter.take() {
            Some(c) => soql::Cond::And(vec![pin, c]),
            None => pin,
        });
        ids = soql::select(data, child, &scoped, false)?;
    } else {
        // Children in creation order, as the parent's related list shows them.
        ids.sort_by_key(|id| data.table(child.name).and_then(|t| t.seq(id)).unwrap_or(0));
    }
    if ids.is_empty() {
        // An empty child relationship is null in REST answers.
        return Ok(Value::Null);
    }
    let mut sub = q.clone();
    sub.from = child.name.to_string();
    let cursor = Cursor {
        object: child,
        query: Arc::new(sub),
        ids: Arc::new(ids),
        page: ctx.sub_page,
    };
    page(ctx, data, cursor, 0)
}

/// One page of a cursor starting at `start`.
fn page(ctx: &Ctx, data: &Data, cursor: Cursor, start: usize) -> Result<Value, ApiError> {
    let total = cursor.ids.len();
    let end = (start + cursor.page).min(total);
    let mut records = Vec::with_capacity(end.saturating_sub(start));
    for id in cursor.ids.get(start..end).unwrap_or_default() {
        if let Some(row) = data.get(cursor.object.name, id) {
            records.push(render(ctx, data, cursor.object, row, &cursor.query.items)?);
        }
    }
    let mut body = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        let key = ctx.keep(cursor);
        body["nextRecordsUrl"] =
            json!(format!("/services/data/v{}/query/{key}-{end}", ctx.version));
    }
    Ok(body)
}

/// Runs `soql` (with deleted rows when `all_rows`) and answers its first page.
pub(crate) fn run(
    ctx: &Ctx,
    data: &Data,
    soql_text: &str,
    all_rows: bool,
) -> Result<Value, ApiError> {
    let q = soql::parse(soql_text)?;
    let o = schema::object(&q.from).ok_or_else(|| soql::invalid_type(&q.from))?;
    let ids = soql::select(data, o, &q, all_rows)?;
    if q.items.iter().any(|i| matches!(i, Item::Count)) {
        return Ok(json!({"totalSize": ids.len(), "done": true, "records": []}));
    }
    let aggregates: Vec<(usize, &Vec<String>, &Option<String>)> = q
        .items
        .iter()
        .filter_map(|i| match i {
            Item::CountOf(p, a) => Some((0, p, a)),
            _ => None,
        })
        .collect();
    if !aggregates.is_empty() {
        // Aggregate rows: `attributes.type` AggregateResult, unnamed columns `expr0`…
        // (restforce `query_aggregate_success_response.json`).
        let mut row = Map::new();
        row.insert("attributes".into(), json!({"type": "AggregateResult"}));
        for (n, (_, path, alias)) in aggregates.iter().enumerate() {
            let count = ids
                .iter()
                .filter_map(|id| data.get(o.name, id))
                .filter(|r| !soql::value_at(data, o, r, path).0.is_null())
                .count();
            let name = (*alias).clone().unwrap_or_else(|| format!("expr{n}"));
            row.insert(name, json!(count));
        }
        return Ok(json!({"totalSize": 1, "done": true, "records": [Value::Object(row)]}));
    }
    let cursor = Cursor {
        object: o,
        query: Arc::new(q),
        ids: Arc::new(ids),
        page: ctx.page_size,
    };
    page(ctx, data, cursor, 0)
}

/// `GET query/{locator}-{offset}`: the next page of an open cursor.
pub(crate) fn more(ctx: &Ctx, data: &Data, locator: &str) -> Result<Value, ApiError> {
    let (key, start) = locator
        .rsplit_once('-')
        .and_then(|(k, s)| Some((k, s.parse::<usize>().ok()?)))
        .ok_or_else(|| ApiError::bad("INVALID_QUERY_LOCATOR", "invalid query locator"))?;
    let cursor = ctx
        .cursors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .open
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::bad("INVALID_QUERY_LOCATOR", "invalid query locator"))?;
    page(ctx, data, cursor, start)
}

/// The rows of a query as flat columns (Bulk 2.0 query results): headers are the
/// selected paths (`Account.Name`), values text.
pub(crate) fn flat(
    data: &Data,
    o: &'static Object,
    q: &Query,
    ids: &[String],
) -> (Vec<String>, Vec<Vec<String>>) {
    let mut headers = Vec::new();
    let mut paths: Vec<Vec<String>> = Vec::new();
    for item in &q.items {
        if let Item::Field(p) = item {
            if p[0].starts_with("FIELDS(") {
                for f in &o.fields {
                    headers.push(f.name.to_string());
                    paths.push(vec![f.name.to_string()]);
                }
            } else {
                let canonical = soql::field_of(o, p).map(|f| f.name).unwrap_or("");
                let mut shown: Vec<String> = p.clone();
                if let Some(last) = shown.last_mut() {
                    *last = canonical.to_string();
                }
                headers.push(shown.join("."));
                paths.push(p.clone());
            }
        }
    }
    let rows = ids
        .iter()
        .filter_map(|id| data.get(o.name, id))
        .map(|r| {
            paths
                .iter()
                .map(|p| match soql::value_at(data, o, r, p).0 {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    (headers, rows)
}
