//! The Close text query language (as typed in Smart Views), parsed and compiled into
//! Advanced Filtering JSON.
//!
//! Supported: `field:value` (word match), `field = "exact"`, `!=`, `<`, `<=`, `>`, `>=`,
//! quoted values, `AND` (also implicit), `OR`, `NOT`, parentheses and `sort:field [asc|desc]`.
//! Fields: `company`/`name`, `description`, `url`, `status`, `status_id`, `id`,
//! `date_created`, `date_updated`, `custom.<field id or name>`, `email`, `phone`,
//! `contacts.<field>` and `opportunities.<field>` (`value` in cents, `status_type`,
//! `status_label`, `confidence`, `date_won`…). Dates take ISO values or relative ones such
//! as `"30 days ago"`, `today`, `yesterday`. Conditions on the same related object joined by
//! AND must hold for one and the same object: `opportunities.value >= 50000
//! opportunities.status_type:active` finds leads with an active opportunity of at least
//! 50000 cents.
//!
//! ```
//! use crmkit_close::query::{compile, parse};
//! let now = chrono::Utc::now();
//! let q = parse(r#"company:Coperniq sort:date_updated asc"#).unwrap();
//! let req = compile(&q, now, &|_name: &str| None).unwrap();
//! assert_eq!(req.sort[0].direction, "asc");
//! let err = parse("company:").unwrap_err();
//! assert_eq!(err.to_string(), "at position 9: expected a value after `:`, found end of input");
//! ```

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use crate::search::{Condition, Field, Query, SearchRequest, Sort};

/// A syntax or meaning error, with the 1-based character position it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 1-based character position.
    pub position: usize,
    /// What would have been valid there.
    pub expected: String,
    /// What was there instead.
    pub found: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at position {}: expected {}, found {}",
            self.position, self.expected, self.found
        )
    }
}

impl std::error::Error for QueryError {}

impl From<QueryError> for crmkit_core::Error {
    fn from(e: QueryError) -> Self {
        crmkit_core::Error::config(format!("query {e}")).with_crm(crmkit_core::Crm::Close)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
}

fn describe(t: Option<&(Tok, usize)>) -> String {
    match t {
        None => "end of input".into(),
        Some((Tok::Word(w), _)) => format!("`{w}`"),
        Some((Tok::Quoted(q), _)) => format!("\"{q}\""),
        Some((Tok::Op(o), _)) => format!("`{o}`"),
        Some((Tok::Open, _)) => "`(`".into(),
        Some((Tok::Close, _)) => "`)`".into(),
    }
}

fn lex(input: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::Open, pos));
                i += 1;
            }
            ')' => {
                out.push((Tok::Close, pos));
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(QueryError {
                                position: pos,
                                expected: "a closing `\"`".into(),
                                found: "end of input".into(),
                            });
                        }
                        Some('\\') if chars.get(i + 1).is_some() => {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Quoted(s), pos));
            }
            ':' | '=' => {
                out.push((Tok::Op(if c == ':' { ":" } else { "=" }), pos));
                i += 1;
            }
            '!' | '<' | '>' => {
                let two = chars.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => {
                        return Err(QueryError {
                            position: pos,
                            expected: "`!=`".into(),
                            found: "`!`".into(),
                        });
                    }
                };
                out.push((Tok::Op(op), pos));
                i += if two { 2 } else { 1 };
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !"()\":=!<>".contains(chars[i])
                {
                    i += 1;
                }
                out.push((Tok::Word(chars[start..i].iter().collect()), pos));
            }
        }
    }
    Ok(out)
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    expr: Option<Expr>,
    sorts: Vec<(String, bool, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cond {
        field: String,
        op: &'static str,
        value: String,
        pos: usize,
    },
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    sorts: Vec<(String, bool, usize)>,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(Tok, usize)> {
        self.toks.get(self.at)
    }

    fn error(&self, expected: &str) -> QueryError {
        QueryError {
            position: self.peek().map(|(_, p)| *p).unwrap_or(self.len + 1),
            expected: expected.into(),
            found: describe(self.peek()),
        }
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some((Tok::Word(w), _)) if w == kw)
    }

    fn or(&mut self) -> Result<Option<Expr>, QueryError> {
        let mut parts = Vec::new();
        if let Some(e) = self.and()? {
            parts.push(e);
        }
        while self.keyword("OR") {
            self.at += 1;
            match self.and()? {
                Some(e) => parts.push(e),
                None => return Err(self.error("a condition after OR")),
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Expr::Or(parts)),
        })
    }

    fn and(&mut self) -> Result<Option<Expr>, QueryError> {
        let mut parts = Vec::new();
        loop {
            if self.keyword("AND") {
                self.at += 1;
                if parts.is_empty() {
                    return Err(QueryError {
                        position: self.toks[self.at - 1].1,
                        expected: "a condition before AND".into(),
                        found: "`AND`".into(),
                    });
                }
                match self.unary()? {
                    Some(e) => parts.push(e),
                    None => return Err(self.error("a condition after AND")),
                }
                continue;
            }
            match self.peek() {
                None | Some((Tok::Close, _)) => break,
                Some((Tok::Word(w), _)) if w == "OR" => break,
                _ => {}
            }
            if let Some(e) = self.unary()? {
                parts.push(e);
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Expr::And(parts)),
        })
    }

    fn unary(&mut self) -> Result<Option<Expr>, QueryError> {
        let Some((tok, pos)) = self.peek().cloned() else {
            return Err(self.error("a condition"));
        };
        match tok {
            Tok::Word(w) if w == "NOT" => {
                self.at += 1;
                match self.unary()? {
                    Some(e) => Ok(Some(Expr::Not(Box::new(e)))),
                    None => Err(self.error("a condition after NOT")),
                }
            }
            Tok::Open => {
                self.at += 1;
                let inner = self.or()?;
                if !matches!(self.peek(), Some((Tok::Close, _))) {
                    return Err(self.error("`)`"));
                }
                self.at += 1;
                inner.map(Some).ok_or(QueryError {
                    position: pos,
                    expected: "a condition inside parentheses".into(),
                    found: "`()`".into(),
                })
            }
            Tok::Word(field) => {
                self.at += 1;
                let Some((Tok::Op(op), op_pos)) = self.peek().cloned() else {
                    return Err(self.error(&format!(
                        "an operator (`:`, `=`, `!=`, `<`, `<=`, `>`, `>=`) after `{field}`"
                    )));
                };
                self.at += 1;
                let value = match self.peek().cloned() {
                    Some((Tok::Word(v), _)) if !["AND", "OR", "NOT"].contains(&v.as_str()) => v,
                    Some((Tok::Quoted(v), _)) => v,
                    _ => {
                        let mut e = self.error(&format!("a value after `{op}`"));
                        if self.peek().is_none() {
                            e.position = op_pos + op.len();
                        }
                        return Err(e);
                    }
                };
                self.at += 1;
                if field == "sort" {
                    let desc = if self.keyword("desc") || self.keyword("asc") {
                        let d = self.keyword("desc");
                        self.at += 1;
                        d
                    } else if let Some(stripped) = value.strip_prefix('-') {
                        self.sorts.push((stripped.to_string(), true, pos));
                        return Ok(None);
                    } else {
                        false
                    };
                    self.sorts.push((value, desc, pos));
                    return Ok(None);
                }
                Ok(Some(Expr::Cond {
                    field,
                    op,
                    value,
                    pos,
                }))
            }
            _ => Err(self.error("a field name, `(` or NOT")),
        }
    }
}

/// Parses a query; a syntax error names the position and what was expected.
pub fn parse(input: &str) -> Result<Parsed, QueryError> {
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        at: 0,
        sorts: Vec::new(),
        len: input.chars().count(),
    };
    let expr = p.or()?;
    if p.at < p.toks.len() {
        return Err(p.error("AND, OR or the end of the query"));
    }
    Ok(Parsed {
        expr,
        sorts: p.sorts,
    })
}

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
    let midnight = |t: DateTime<Utc>| {
        t.date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("valid")
            .and_utc()
    };
    match v.as_str() {
        "now" => return Ok((now, false)),
        "today" => return Ok((midnight(now), true)),
        "yesterday" => return Ok((midnight(now) - Duration::days(1), true)),
        _ => {}
    }
    let words: Vec<&str> = v.split_whitespace().collect();
    if let [n, unit, "ago"] = words.as_slice() {
        let n: i64 = n.parse().map_err(|_| bad())?;
        let unit = unit.trim_end_matches('s');
        let d = match unit {
            "minute" => Duration::minutes(n),
            "hour" => Duration::hours(n),
            "day" => Duration::days(n),
            "week" => Duration::weeks(n),
            "month" => Duration::days(30 * n),
            "year" => Duration::days(365 * n),
            _ => return Err(bad()),
        };
        return Ok((now - d, false));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
        return Ok((d.and_hms_opt(0, 0, 0).expect("valid").and_utc(), true));
    }
    crmkit_core::time::parse_timestamp(value)
        .map(|t| (t, false))
        .ok_or_else(bad)
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
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
    Ok(match t.ty {
        Ty::Text => match op {
            ":" => (
                Condition::Text {
                    mode: "full_words".into(),
                    value: value.into(),
                },
                false,
            ),
            "=" => (
                Condition::Term {
                    values: vec![json!(value)],
                },
                false,
            ),
            "!=" => (
                Condition::Term {
                    values: vec![json!(value)],
                },
                true,
            ),
            _ => return Err(op_err("text (`:`, `=`, `!=`)")),
        },
        Ty::Term => match op {
            ":" | "=" => (
                Condition::Term {
                    values: vec![json!(value)],
                },
                false,
            ),
            "!=" => (
                Condition::Term {
                    values: vec![json!(value)],
                },
                true,
            ),
            _ => return Err(op_err("this field (`:`, `=`, `!=`)")),
        },
        Ty::Number => {
            let n: f64 = value.parse().map_err(|_| QueryError {
                position: pos,
                expected: "a number".into(),
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
            let next = if whole_day {
                t0 + Duration::days(1)
            } else {
                t0 + Duration::microseconds(1)
            };
            let range =
                |gte: Option<DateTime<Utc>>, lt: Option<DateTime<Utc>>| Condition::MomentRange {
                    gte: gte.map(iso),
                    lt: lt.map(iso),
                };
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
                let q = if qs.len() == 1 {
                    qs.pop().expect("one")
                } else {
                    Query::and(qs)
                };
                plain.push(wrap(Part::Related(rel, q)));
            }
            Part::Plain(if plain.len() == 1 {
                plain.pop().expect("one")
            } else {
                Query::and(plain)
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
