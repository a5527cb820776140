//! An expression tree to an Advanced Filtering lead search: field names to Close fields,
//! values to conditions, relative dates to instants.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::json;

use super::QueryError;
use super::parser::{Expr, Parsed};
use crate::filter::{Condition, Field, Query, SearchRequest, Sort};

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Text,
    Term,
    Number,
    Date,
}

struct Target {
    related: Option<&'static str>,
    field: Field,
    ty: Ty,
}

const LEAD_FIELDS: &[(&str, &str, Ty)] = &[
    ("company", "name", Ty::Text),
    ("name", "name", Ty::Text),
    ("lead_name", "name", Ty::Text),
    ("description", "description", Ty::Text),
    ("url", "url", Ty::Text),
    ("status", "status_label", Ty::Term),
    ("lead_status", "status_label", Ty::Term),
    ("status_id", "status_id", Ty::Term),
    ("id", "id", Ty::Term),
    ("date_created", "date_created", Ty::Date),
    ("created", "date_created", Ty::Date),
    ("date_updated", "date_updated", Ty::Date),
    ("updated", "date_updated", Ty::Date),
];
const CONTACT_FIELDS: &[(&str, &str, Ty)] = &[
    ("name", "name", Ty::Text),
    ("title", "title", Ty::Text),
    ("email", "emails", Ty::Text),
    ("emails", "emails", Ty::Text),
    ("phone", "phones", Ty::Text),
    ("phones", "phones", Ty::Text),
    ("id", "id", Ty::Term),
    ("date_created", "date_created", Ty::Date),
    ("date_updated", "date_updated", Ty::Date),
];
const OPPORTUNITY_FIELDS: &[(&str, &str, Ty)] = &[
    ("value", "value", Ty::Number),
    ("confidence", "confidence", Ty::Number),
    ("status_type", "status_type", Ty::Term),
    ("status", "status_label", Ty::Term),
    ("status_label", "status_label", Ty::Term),
    ("status_id", "status_id", Ty::Term),
    ("value_period", "value_period", Ty::Term),
    ("note", "note", Ty::Text),
    ("date_won", "date_won", Ty::Date),
    ("date_created", "date_created", Ty::Date),
    ("date_updated", "date_updated", Ty::Date),
];

fn names(list: &[(&str, &str, Ty)]) -> String {
    list.iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn target(
    name: &str,
    pos: usize,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, QueryError> {
    let unknown = |expected: String| QueryError {
        position: pos,
        expected,
        found: format!("`{name}`"),
    };
    let lookup = |object: &'static str, list: &[(&str, &str, Ty)], f: &str, related| {
        list.iter()
            .find(|(n, _, _)| *n == f)
            .map(|(_, real, ty)| Target {
                related,
                field: Field::RegularField {
                    object_type: object.into(),
                    field_name: (*real).into(),
                },
                ty: *ty,
            })
    };
    if let Some(cf) = name.strip_prefix("custom.") {
        let id = if cf.starts_with("cf_") {
            Some(cf.to_string())
        } else {
            resolve(cf)
        };
        let id = id.ok_or_else(|| unknown(format!("a custom field id (`custom.cf_…`) or the name of a lead custom field; `{cf}` is neither")))?;
        return Ok(Target {
            related: None,
            field: Field::CustomField {
                custom_field_id: id,
            },
            ty: Ty::Text,
        });
    }
    if let Some((rel, f)) = name.split_once('.') {
        return match rel {
            "contacts" | "contact" => lookup("contact", CONTACT_FIELDS, f, Some("contact"))
                .ok_or_else(|| unknown(format!("a contact field ({})", names(CONTACT_FIELDS)))),
            "opportunities" | "opportunity" => {
                lookup("opportunity", OPPORTUNITY_FIELDS, f, Some("opportunity")).ok_or_else(|| {
                    unknown(format!(
                        "an opportunity field ({})",
                        names(OPPORTUNITY_FIELDS)
                    ))
                })
            }
            _ => Err(unknown(
                "a field of `custom.`, `contacts.` or `opportunities.`".into(),
            )),
        };
    }
    if let Some(t) = lookup("lead", LEAD_FIELDS, name, None) {
        return Ok(t);
    }
    if let Some(t) = ["email", "phone"]
        .contains(&name)
        .then(|| lookup("contact", CONTACT_FIELDS, name, Some("contact")))
        .flatten()
    {
        return Ok(t);
    }
    Err(unknown(format!(
        "a known field ({}, email, phone, custom.…, contacts.…, opportunities.…)",
        names(LEAD_FIELDS)
    )))
}

/// A parsed moment and whether it was a whole day.
fn moment(
    value: &str,
    now: DateTime<Utc>,
    pos: usize,
) -> Result<(DateTime<Utc>, bool), QueryError> {
    let v = value.trim().to_lowercase();
    let bad = || {
        QueryError {
        position: pos,
        expected: "a date (`2024-05-01`), a time (`2024-05-01T12:00:00Z`), `today`, `yesterday` or `N days ago`".into(),
        found: format!("\"{value}\""),
    }
    };
    let out_of_range = || QueryError {
        position: pos,
        expected: "a date between the years 1 and 9999".into(),
        found: format!("\"{value}\""),
    };
    let midnight = |t: DateTime<Utc>| t.date_naive().and_time(NaiveTime::MIN).and_utc();
    match v.as_str() {
        "now" => return Ok((now, false)),
        "today" => return Ok((midnight(now), true)),
        "yesterday" => {
            return midnight(now)
                .checked_sub_signed(Duration::days(1))
                .map(|t| (t, true))
                .ok_or_else(out_of_range);
        }
        _ => {}
    }
    let words: Vec<&str> = v.split_whitespace().collect();
    if let [n, unit, "ago"] = words.as_slice() {
        let n: i64 = n.parse().map_err(|_| bad())?;
        let unit = unit.trim_end_matches('s');
        let (per, secs) = match unit {
            "minute" => (1, 60),
            "hour" => (1, 3_600),
            "day" => (1, 86_400),
            "week" => (7, 86_400),
            "month" => (30, 86_400),
            "year" => (365, 86_400),
            _ => return Err(bad()),
        };
        // `1000000 years ago` and the like: out of range is an error, never an overflow.
        return n
            .checked_mul(per)
            .and_then(|n| n.checked_mul(secs))
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_sub_signed(d))
            .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
            .map(|t| (t, false))
            .ok_or_else(out_of_range);
    }
    if let Ok(d) = NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
        return Ok((d.and_time(NaiveTime::MIN).and_utc(), true));
    }
    crmkit_core::time::parse_timestamp(value)
        .map(|t| (t, false))
        .ok_or_else(bad)
}

fn condition(
    t: &Target,
    op: &'static str,
    value: &str,
    pos: usize,
    now: DateTime<Utc>,
) -> Result<(Condition, bool), QueryError> {
    let op_err = |what: &str| QueryError {
        position: pos,
        expected: format!("an operator that applies to {what}"),
        found: format!("`{op}`"),
    };
    let term = || Condition::Term {
        values: vec![json!(value)],
    };
    Ok(match t.ty {
        Ty::Text => match op {
            ":" => (
                Condition::Text {
                    mode: "full_words".into(),
                    value: value.into(),
                },
                false,
            ),
            "=" => (term(), false),
            "!=" => (term(), true),
            _ => return Err(op_err("text (`:`, `=`, `!=`)")),
        },
        Ty::Term => match op {
            ":" | "=" => (term(), false),
            "!=" => (term(), true),
            _ => return Err(op_err("this field (`:`, `=`, `!=`)")),
        },
        Ty::Number => {
            let n: f64 = value
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| QueryError {
                    position: pos,
                    expected: "a finite number".into(),
                    found: format!("\"{value}\""),
                })?;
            let range = |gt, gte, lt, lte| Condition::NumberRange { gt, gte, lt, lte };
            match op {
                ":" | "=" => (range(None, Some(n), None, Some(n)), false),
                "!=" => (range(None, Some(n), None, Some(n)), true),
                "<" => (range(None, None, Some(n), None), false),
                "<=" => (range(None, None, None, Some(n)), false),
                ">" => (range(Some(n), None, None, None), false),
                _ => (range(None, Some(n), None, None), false),
            }
        }
        Ty::Date => {
            let (t0, whole_day) = moment(value, now, pos)?;
            // The smallest step after the value: the next day for a date, 1 µs for a time.
            let step = if whole_day {
                Duration::days(1)
            } else {
                Duration::microseconds(1)
            };
            let next = t0.checked_add_signed(step).ok_or_else(|| QueryError {
                position: pos,
                expected: "a date before the year 262000".into(),
                found: format!("\"{value}\""),
            })?;
            let range = Condition::moment_range;
            match op {
                ":" | "=" => (range(Some(t0), Some(next)), false),
                "!=" => (range(Some(t0), Some(next)), true),
                "<" => (range(None, Some(t0)), false),
                "<=" => (range(None, Some(next)), false),
                ">" => (range(Some(next), None), false),
                _ => (range(Some(t0), None), false),
            }
        }
    })
}

enum Part {
    Plain(Query),
    Related(&'static str, Query),
}

fn wrap(part: Part) -> Query {
    match part {
        Part::Plain(q) => q,
        Part::Related(rel, q) => Query::HasRelated {
            this_object_type: "lead".into(),
            related_object_type: rel.into(),
            related_query: Box::new(q),
            negate: false,
        },
    }
}

fn lower(
    e: &Expr,
    now: DateTime<Utc>,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Part, QueryError> {
    Ok(match e {
        Expr::Cond {
            field,
            op,
            value,
            pos,
        } => {
            let t = target(field, *pos, resolve)?;
            let (cond, negate) = condition(&t, op, value, *pos, now)?;
            let q = Query::FieldCondition {
                field: t.field,
                condition: cond,
                negate,
            };
            match t.related {
                Some(rel) => Part::Related(rel, q),
                None => Part::Plain(q),
            }
        }
        Expr::Not(inner) => Part::Plain(wrap(lower(inner, now, resolve)?).negated()),
        Expr::Or(items) => Part::Plain(Query::or(
            items
                .iter()
                .map(|i| lower(i, now, resolve).map(wrap))
                .collect::<Result<_, _>>()?,
        )),
        Expr::And(items) => {
            // Conditions on the same related object must hold for one object: group them.
            let mut plain = Vec::new();
            let mut related: Vec<(&'static str, Vec<Query>)> = Vec::new();
            for item in items {
                match lower(item, now, resolve)? {
                    Part::Plain(q) => plain.push(q),
                    Part::Related(rel, q) => match related.iter_mut().find(|(r, _)| *r == rel) {
                        Some((_, qs)) => qs.push(q),
                        None => related.push((rel, vec![q])),
                    },
                }
            }
            for (rel, mut qs) in related {
                let q = match (qs.pop(), qs.is_empty()) {
                    (Some(only), true) => only,
                    (Some(last), false) => {
                        qs.push(last);
                        Query::and(qs)
                    }
                    (None, _) => Query::and(qs),
                };
                plain.push(wrap(Part::Related(rel, q)));
            }
            Part::Plain(match (plain.pop(), plain.is_empty()) {
                (Some(only), true) => only,
                (Some(last), false) => {
                    plain.push(last);
                    Query::and(plain)
                }
                (None, _) => Query::and(plain),
            })
        }
    })
}

/// Compiles a parsed query into a lead search. `resolve` maps a custom field name to its id;
/// `now` anchors relative dates.
pub fn compile(
    parsed: &Parsed,
    now: DateTime<Utc>,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<SearchRequest, QueryError> {
    let mut parts = vec![Query::object_type("lead")];
    if let Some(e) = &parsed.expr {
        parts.push(wrap(lower(e, now, resolve)?));
    }
    let mut req = SearchRequest::new(Query::and(parts));
    for (field, desc, pos) in &parsed.sorts {
        let t = target(field, *pos, resolve)?;
        if t.related.is_some() {
            return Err(QueryError {
                position: *pos,
                expected: "a lead field to sort by".into(),
                found: format!("`{field}`"),
            });
        }
        req.sort.push(Sort {
            direction: if *desc { "desc" } else { "asc" }.into(),
            field: t.field,
        });
    }
    Ok(req)
}

/// The custom field names (`custom.Industry`) a query uses, which need resolving to ids.
pub fn custom_field_names(parsed: &Parsed) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Cond { field, .. } => {
                if let Some(n) = field
                    .strip_prefix("custom.")
                    .filter(|n| !n.starts_with("cf_"))
                {
                    out.push(n.to_string());
                }
            }
            Expr::Not(i) => walk(i, out),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|i| walk(i, out)),
        }
    }
    let mut out = Vec::new();
    if let Some(e) = &parsed.expr {
        walk(e, &mut out);
    }
    out
}
