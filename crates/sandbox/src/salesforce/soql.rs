//! A SOQL parser and evaluator for the subset integrations use: field lists with
//! relationship paths and parent-child subqueries, `COUNT()`, `FIELDS(ALL|STANDARD)`,
//! WHERE with comparisons, `IN`/`NOT IN` (lists and semi-joins), `LIKE`, `INCLUDES` on
//! nothing else, `NOT`/`AND`/`OR`, date and datetime literals and the relative date
//! literals, `ORDER BY … ASC|DESC NULLS FIRST|LAST`, `LIMIT` and `OFFSET`
//! (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm).
//!
//! Evaluation walks an index when the filter allows (an `Id`, reference, external id or
//! email equality or `IN`, a semi-join on `Id`, or a range on `SystemModstamp` or
//! `CreatedDate`) and otherwise scans the object's table once; semi-joins are computed
//! once into a set, so no query is quadratic.

use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use super::api_error::ApiError;
use super::data::{Data, index_key, parse_datetime};
use super::ids;
use super::schema::{self, FType, Field, Object};
use crate::shared::store::TimeField;

/// A parsed query.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// The FROM object (or, in a subquery, the child relationship name).
    pub from: String,
    /// The selected items.
    pub items: Vec<Item>,
    /// The WHERE clause.
    pub filter: Option<Cond>,
    /// ORDER BY: path, descending, nulls last.
    pub order: Vec<(Vec<String>, bool, bool)>,
    /// LIMIT.
    pub limit: Option<usize>,
    /// OFFSET.
    pub offset: Option<usize>,
}

/// One selected item.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A field or relationship path (`Name`, `Account.Owner.Name`).
    Field(Vec<String>),
    /// `COUNT()`: only the number of rows.
    Count,
    /// `COUNT(field) [alias]`: an aggregate.
    CountOf(Vec<String>, Option<String>),
    /// A parent-child subquery.
    Sub(Box<Query>),
}

/// A WHERE condition.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    /// All of them.
    And(Vec<Cond>),
    /// Any of them.
    Or(Vec<Cond>),
    /// The negation.
    Not(Box<Cond>),
    /// `path op literal`.
    Cmp(Vec<String>, Op, Lit),
    /// `path [NOT] IN (literals)`.
    In(Vec<String>, bool, Vec<Lit>),
    /// `path [NOT] IN (SELECT …)`.
    InQuery(Vec<String>, bool, Box<Query>),
    /// `path LIKE 'pattern'`.
    Like(Vec<String>, String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A quoted string.
    Str(String),
    /// `2024-01-31`.
    Date(NaiveDate),
    /// `2024-01-31T00:00:00Z`.
    DateTime(DateTime<Utc>),
    /// A relative date literal: the span `[start, end)` it stands for.
    Range(DateTime<Utc>, DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Lit(Lit),
    Op(Op),
    Open,
    Close,
    Comma,
    Colon,
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::bad("MALFORMED_QUERY", message)
}

/// Splits SOQL into tokens; strings take the escapes of the SOQL reference
/// (sforce_api_calls_soql_select_quotedstringescapes.htm) and any other backslash sequence
/// is an error.
fn lex(q: &str) -> Result<Vec<Tok>, ApiError> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2;
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    out.push(Tok::Op(Op::Le));
                    i += 2;
                }
                Some('>') => {
                    out.push(Tok::Op(Op::Ne));
                    i += 2;
                }
                _ => {
                    out.push(Tok::Op(Op::Lt));
                    i += 1;
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::Op(Op::Ge));
                    i += 2;
                } else {
                    out.push(Tok::Op(Op::Gt));
                    i += 1;
                }
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(malformed("unterminated string literal"));
                    };
                    i += 1;
                    match c {
                        '\'' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err(malformed("unterminated string literal"));
                            };
                            i += 1;
                            s.push_str(match e {
                                'n' => "\n",
                                'r' => "\r",
                                't' => "\t",
                                'b' => "\u{8}",
                                'f' => "\u{c}",
                                '"' => "\"",
                                '\'' => "'",
                                '\\' => "\\\\",
                                // Kept escaped: only LIKE gives them meaning.
                                '%' => "\\%",
                                '_' => "\\_",
                                _ => {
                                    return Err(malformed(format!(
                                        "Invalid string literal: unknown escape \\{e}"
                                    )));
                                }
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit()
                || (c == '-' || c == '+') && chars.get(i + 1).is_some_and(char::is_ascii_digit) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '-' | ':' | '.' | '+'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Lit(number_or_date(&text)?));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(malformed(format!("unexpected character '{other}'"))),
        }
    }
    Ok(out)
}

fn number_or_date(text: &str) -> Result<Lit, ApiError> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Lit::Date(d));
    }
    if text.contains('T') {
        return parse_datetime(text)
            .or_else(|| crate::shared::time::parse_time(text))
            .map(Lit::DateTime)
            .ok_or_else(|| malformed(format!("invalid date/time literal: {text}")));
    }
    text.parse::<f64>()
        .map(Lit::Num)
        .map_err(|_| malformed(format!("invalid number: {text}")))
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    now: DateTime<Utc>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat(&mut self, kw: &str) -> bool {
        if self.keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kw: &str) -> Result<(), ApiError> {
        if self.eat(kw) {
            Ok(())
        } else {
            Err(malformed(format!(
                "expecting '{kw}', found '{}'",
                self.describe()
            )))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "EOF".into(),
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Str(s)) => format!("'{s}'"),
            Some(t) => format!("{t:?}"),
        }
    }

    fn path(&mut self) -> Result<Vec<String>, ApiError> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w.split('.').map(str::to_string).collect()),
            _ => Err(malformed("expecting a field name")),
        }
    }

    fn query(&mut self) -> Result<Query, ApiError> {
        self.expect("SELECT")?;
        let mut items = Vec::new();
        loop {
            items.push(self.item()?);
            if matches!(self.peek(), Some(Tok::Comma)) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.expect("FROM")?;
        let from = match self.next() {
            Some(Tok::Word(w)) => w,
            _ => return Err(malformed("expecting an object name after FROM")),
        };
        let mut q = Query {
            from,
            items,
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
        };
        if self.eat("WHERE") {
            q.filter = Some(self.or()?);
        }
        if self.keyword("GROUP") {
            return Err(malformed("GROUP BY is not supported by this sandbox"));
        }
        if self.eat("ORDER") {
            self.expect("BY")?;
            loop {
                let p = self.path()?;
                let desc = if self.eat("DESC") {
                    true
                } else {
                    self.eat("ASC");
                    false
                };
                // Nulls sort first by default (soql_select_orderby.htm).
                let mut nulls_last = false;
                if self.eat("NULLS") {
                    nulls_last = if self.eat("LAST") {
                        true
                    } else {
                        self.expect("FIRST")?;
                        false
                    };
                }
                q.order.push((p, desc, nulls_last));
                if matches!(self.peek(), Some(Tok::Comma)) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        if self.eat("LIMIT") {
            q.limit = Some(self.count()?);
        }
        if self.eat("OFFSET") {
            let n = self.count()?;
            // "The maximum offset is 2,000 rows. Requesting an offset greater than 2,000
            // results in a NUMBER_OUTSIDE_VALID_RANGE error" (sforce_api_calls_soql_select_offset.htm).
            if n > 2_000 {
                return Err(ApiError::bad(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    format!("Maximum SOQL offset allowed is 2000, found {n}"),
                ));
            }
            q.offset = Some(n);
        }
        Ok(q)
    }

    fn count(&mut self) -> Result<usize, ApiError> {
        match self.next() {
            Some(Tok::Lit(Lit::Num(n))) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            _ => Err(malformed("expecting a non-negative integer")),
        }
    }

    fn item(&mut self) -> Result<Item, ApiError> {
        if matches!(self.peek(), Some(Tok::Open)) {
            self.pos += 1;
            let sub = self.query()?;
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expecting ')' after a subquery"));
            }
            return Ok(Item::Sub(Box::new(sub)));
        }
        if self.keyword("COUNT") && self.toks.get(self.pos + 1) == Some(&Tok::Open) {
            self.pos += 2;
            if self.toks.get(self.pos) == Some(&Tok::Close) {
                self.pos += 1;
                return Ok(Item::Count);
            }
            let p = self.path()?;
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expecting ')'"));
            }
            let alias = match self.peek() {
                Some(Tok::Word(w)) if !w.eq_ignore_ascii_case("FROM") => {
                    let w = w.clone();
                    self.pos += 1;
                    Some(w)
                }
                _ => None,
            };
            return Ok(Item::CountOf(p, alias));
        }
        if self.keyword("FIELDS") && self.toks.get(self.pos + 1) == Some(&Tok::Open) {
            self.pos += 2;
            let which = self.path()?.join(".");
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expecting ')'"));
            }
            return Ok(Item::Field(vec![format!(
                "FIELDS({})",
                which.to_uppercase()
            )]));
        }
        Ok(Item::Field(self.path()?))
    }

    fn or(&mut self) -> Result<Cond, ApiError> {
        let mut parts = vec![self.and()?];
        while self.eat("OR") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Cond, ApiError> {
        let mut parts = vec![self.not()?];
        while self.eat("AND") {
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn not(&mut self) -> Result<Cond, ApiError> {
        if self.eat("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        if matches!(self.peek(), Some(Tok::Open)) {
            self.pos += 1;
            let c = self.or()?;
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expecting ')'"));
            }
            return Ok(c);
        }
        let p = self.path()?;
        let negated = self.eat("NOT");
        if self.eat("IN") {
            if self.next() != Some(Tok::Open) {
                return Err(malformed("expecting '(' after IN"));
            }
            if self.keyword("SELECT") {
                let q = self.query()?;
                if self.next() != Some(Tok::Close) {
                    return Err(malformed("expecting ')' after a semi-join"));
                }
                return Ok(Cond::InQuery(p, negated, Box::new(q)));
            }
            let mut values = Vec::new();
            loop {
                values.push(self.literal()?);
                match self.next() {
                    Some(Tok::Comma) => {}
                    Some(Tok::Close) => break,
                    _ => return Err(malformed("expecting ',' or ')' in an IN list")),
                }
            }
            return Ok(Cond::In(p, negated, values));
        }
        if negated {
            return Err(malformed("expecting IN after NOT"));
        }
        if self.eat("LIKE") {
            return match self.next() {
                Some(Tok::Str(s)) => Ok(Cond::Like(p, s)),
                _ => Err(malformed("LIKE needs a string")),
            };
        }
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            _ => {
                return Err(malformed(format!("unexpected token after {}", p.join("."))));
            }
        };
        Ok(Cond::Cmp(p, op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Lit, ApiError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(unescape_plain(&s))),
            Some(Tok::Lit(l)) => Ok(l),
            Some(Tok::Word(w)) => {
                let upper = w.to_uppercase();
                match upper.as_str() {
                    "NULL" => Ok(Lit::Null),
                    "TRUE" => Ok(Lit::Bool(true)),
                    "FALSE" => Ok(Lit::Bool(false)),
                    _ => {
                        let n = if matches!(self.peek(), Some(Tok::Colon)) {
                            self.pos += 1;
                            Some(self.count()? as i64)
                        } else {
                            None
                        };
                        date_literal(&upper, n, self.now)
                            .map(|(a, b)| Lit::Range(a, b))
                            .ok_or_else(|| malformed(format!("unexpected token: {w}")))
                    }
                }
            }
            _ => Err(malformed("expecting a value")),
        }
    }
}

/// Removes the LIKE-only escapes a string kept (`\%`, `\_`, `\\`) for an ordinary value.
fn unescape_plain(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The span a relative date literal stands for, in UTC
/// (sforce_api_calls_soql_select_dateformats.htm).
fn date_literal(
    word: &str,
    n: Option<i64>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let today = now.date_naive();
    let day = |d: NaiveDate| midnight(d);
    let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_sunday()));
    let month_start = today.with_day(1)?;
    let add_months = |d: NaiveDate, m: i32| -> Option<NaiveDate> {
        let total = d.year() * 12 + d.month0() as i32 + m;
        NaiveDate::from_ymd_opt(total.div_euclid(12), total.rem_euclid(12) as u32 + 1, 1)
    };
    let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1)?;
    let quarter_start = NaiveDate::from_ymd_opt(today.year(), today.month0() / 3 * 3 + 1, 1)?;
    let tomorrow = today + Duration::days(1);
    Some(match (word, n) {
        ("TODAY", None) => (day(today), day(tomorrow)),
        ("YESTERDAY", None) => (day(today - Duration::days(1)), day(today)),
        ("TOMORROW", None) => (day(tomorrow), day(tomorrow + Duration::days(1))),
        ("LAST_WEEK", None) => (day(week_start - Duration::days(7)), day(week_start)),
        ("THIS_WEEK", None) => (day(week_start), day(week_start + Duration::days(7))),
        ("NEXT_WEEK", None) => (
            day(week_start + Duration::days(7)),
            day(week_start + Duration::days(14)),
        ),
        ("LAST_MONTH", None) => (day(add_months(month_start, -1)?), day(month_start)),
        ("THIS_MONTH", None) => (day(month_start), day(add_months(month_start, 1)?)),
        ("NEXT_MONTH", None) => (
            day(add_months(month_start, 1)?),
            day(add_months(month_start, 2)?),
        ),
        ("THIS_QUARTER", None) => (day(quarter_start), day(add_months(quarter_start, 3)?)),
        ("LAST_QUARTER", None) => (day(add_months(quarter_start, -3)?), day(quarter_start)),
        ("NEXT_QUARTER", None) => (
            day(add_months(quarter_start, 3)?),
            day(add_months(quarter_start, 6)?),
        ),
        ("LAST_90_DAYS", None) => (day(today - Duration::days(90)), day(tomorrow)),
        ("NEXT_90_DAYS", None) => (day(tomorrow), day(tomorrow + Duration::days(90))),
        ("THIS_YEAR", None) => (
            day(year_start),
            day(NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)?),
        ),
        ("LAST_YEAR", None) => (
            day(NaiveDate::from_ymd_opt(today.year() - 1, 1, 1)?),
            day(year_start),
        ),
        ("NEXT_YEAR", None) => (
            day(NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)?),
            day(NaiveDate::from_ymd_opt(today.year() + 2, 1, 1)?),
        ),
        // "Starts 00:00:00 of the current day and continues for the past n days."
        ("LAST_N_DAYS", Some(n)) => (day(today - Duration::days(n)), day(tomorrow)),
        ("NEXT_N_DAYS", Some(n)) => (day(tomorrow), day(tomorrow + Duration::days(n))),
        ("N_DAYS_AGO", Some(n)) => (
            day(today - Duration::days(n)),
            day(today - Duration::days(n - 1)),
        ),
        ("LAST_N_WEEKS", Some(n)) => (day(week_start - Duration::days(7 * n)), day(week_start)),
        ("NEXT_N_WEEKS", Some(n)) => (
            day(week_start + Duration::days(7)),
            day(week_start + Duration::days(7 * (n + 1))),
        ),
        ("LAST_N_MONTHS", Some(n)) => {
            (day(add_months(month_start, -(n as i32))?), day(month_start))
        }
        ("NEXT_N_MONTHS", Some(n)) => (
            day(add_months(month_start, 1)?),
            day(add_months(month_start, n as i32 + 1)?),
        ),
        _ => return None,
    })
}

/// Parses a SOQL statement.
pub(crate) fn parse(q: &str) -> Result<Query, ApiError> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
        now: Utc::now(),
    };
    let query = p.query()?;
    if p.pos < p.toks.len() {
        return Err(malformed(format!("unexpected token: '{}'", p.describe())));
    }
    Ok(query)
}

/// The error for a path that names nothing, worded like the real one.
pub(crate) fn no_column(name: &str, object: &str) -> ApiError {
    ApiError::bad(
        "INVALID_FIELD",
        format!(
            "No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

/// Resolves a path's field, checking every step against the schema (polymorphic
/// relationships such as `What` are checked against their first target).
pub(crate) fn field_of(o: &'static Object, path: &[String]) -> Result<&'static Field, ApiError> {
    let mut obj = o;
    let path = match path {
        [first, rest @ ..] if !rest.is_empty() && first.eq_ignore_ascii_case(o.name) => rest,
        p => p,
    };
    for (i, seg) in path.iter().enumerate() {
        if i + 1 == path.len() {
            return obj.field(seg).ok_or_else(|| no_column(seg, obj.name));
        }
        let f = obj
            .relationship(seg)
            .ok_or_else(|| no_column(seg, obj.name))?;
        obj = f
            .refs
            .first()
            .and_then(|r| schema::object(r))
            .ok_or_else(|| no_column(seg, obj.name))?;
    }
    Err(malformed("empty field path"))
}

/// The value of `path` on `row` (following references through `data`).
pub(crate) fn value_at<'a>(
    data: &'a Data,
    o: &'static Object,
    row: &'a Value,
    path: &[String],
) -> (&'a Value, Option<&'static Field>) {
    let path = match path {
        [first, rest @ ..] if !rest.is_empty() && first.eq_ignore_ascii_case(o.name) => rest,
        p => p,
    };
    let mut obj = o;
    let mut row = row;
    for (i, seg) in path.iter().enumerate() {
        if i + 1 == path.len() {
            return match obj.field(seg) {
                Some(f) => (&row[f.name], Some(f)),
                None => (&Value::Null, None),
            };
        }
        let Some(f) = obj.relationship(seg) else {
            return (&Value::Null, None);
        };
        let Some((target, parent)) = row[f.name].as_str().and_then(|id| data.get_any(id)) else {
            return (&Value::Null, None);
        };
        obj = target;
        row = parent;
    }
    (&Value::Null, None)
}

fn lit_as_text(l: &Lit, f: &Field) -> Option<String> {
    match l {
        Lit::Str(s) if matches!(f.ftype, FType::Id | FType::Reference) => {
            Some(ids::to18(s).unwrap_or_else(|| s.clone()))
        }
        Lit::Str(s) if f.case_sensitive => Some(s.clone()),
        Lit::Str(s) => Some(s.to_lowercase()),
        Lit::Num(n) => Some(n.to_string()),
        Lit::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn cmp_values(v: &Value, f: &Field, lit: &Lit) -> Option<Ordering> {
    match (f.ftype, lit) {
        (_, Lit::Null) => None,
        (FType::Boolean, Lit::Bool(b)) => v.as_bool().map(|x| x.cmp(b)),
        (t, Lit::Num(n)) if t.numeric() => v.as_f64().and_then(|x| x.partial_cmp(n)),
        (FType::Date, Lit::Date(d)) => v
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(|x| x.cmp(d)),
        (FType::DateTime, Lit::DateTime(t)) => {
            v.as_str().and_then(parse_datetime).map(|x| x.cmp(t))
        }
        (FType::DateTime, Lit::Date(d)) => v
            .as_str()
            .and_then(parse_datetime)
            .map(|x| x.cmp(&midnight(*d))),
        (FType::Date, Lit::DateTime(t)) => v
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(|x| midnight(x).cmp(t)),
        (_, lit) => {
            let want = lit_as_text(lit, f)?;
            let have = index_key(f, v)?;
            Some(have.cmp(&want))
        }
    }
}

fn time_of(v: &Value, f: &Field) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    match f.ftype {
        FType::Date => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(midnight),
        _ => parse_datetime(s),
    }
}

fn compare(v: &Value, f: &Field, op: Op, lit: &Lit) -> bool {
    if let Lit::Range(start, end) = lit {
        let Some(t) = time_of(v, f) else {
            return op == Op::Ne;
        };
        return match op {
            Op::Eq => t >= *start && t < *end,
            Op::Ne => t < *start || t >= *end,
            Op::Lt => t < *start,
            Op::Le => t < *end,
            Op::Gt => t >= *end,
            Op::Ge => t >= *start,
        };
    }
    if *lit == Lit::Null {
        return match op {
            Op::Eq => v.is_null(),
            Op::Ne => !v.is_null(),
            _ => false,
        };
    }
    if v.is_null() {
        return op == Op::Ne;
    }
    let Some(ord) = cmp_values(v, f, lit) else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}

/// Whether `text` matches a LIKE pattern (`%` any run, `_` one character, `\` escapes),
/// case-insensitively as SOQL's LIKE is.
fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Ch(char),
    }
    let mut pat = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '%' => pat.push(P::Any),
            '_' => pat.push(P::One),
            '\\' => pat.extend(
                it.next()
                    .map(|c| P::Ch(c.to_lowercase().next().unwrap_or(c))),
            ),
            c => pat.push(P::Ch(c.to_lowercase().next().unwrap_or(c))),
        }
    }
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // Classic wildcard matching with one backtrack point, linear in practice.
    let (mut t, mut p) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        match pat.get(p) {
            Some(P::One) => {
                t += 1;
                p += 1;
            }
            Some(P::Ch(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(P::Any) => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|x| *x == P::Any)
}

/// A condition with its semi-joins computed, ready to test rows.
pub(crate) enum Ready {
    And(Vec<Ready>),
    Or(Vec<Ready>),
    Not(Box<Ready>),
    Cmp(Vec<String>, Op, Lit),
    In(Vec<String>, bool, Vec<Lit>),
    InSet(Vec<String>, bool, HashSet<String>),
    Like(Vec<String>, String),
}

/// Checks a condition's paths against `o` and runs its semi-joins.
pub(crate) fn prepare(data: &Data, o: &'static Object, c: &Cond) -> Result<Ready, ApiError> {
    Ok(match c {
        Cond::And(v) => Ready::And(
            v.iter()
                .map(|c| prepare(data, o, c))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(v) => Ready::Or(
            v.iter()
                .map(|c| prepare(data, o, c))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Not(c) => Ready::Not(Box::new(prepare(data, o, c)?)),
        Cond::Cmp(p, op, l) => {
            field_of(o, p)?;
            Ready::Cmp(p.clone(), *op, l.clone())
        }
        Cond::In(p, neg, v) => {
            let f = field_of(o, p)?;
            let ids: Option<HashSet<String>> = if matches!(f.ftype, FType::Id | FType::Reference) {
                // Id lists become a set, so a long list costs one lookup per row.
                v.iter()
                    .map(|l| lit_text(l).map(|s| ids::to18(&s).unwrap_or(s)))
                    .collect()
            } else {
                None
            };
            match ids {
                Some(set) => Ready::InSet(p.clone(), *neg, set),
                None => Ready::In(p.clone(), *neg, v.clone()),
            }
        }
        Cond::Like(p, s) => {
            field_of(o, p)?;
            Ready::Like(p.clone(), s.clone())
        }
        Cond::InQuery(p, neg, q) => {
            let f = field_of(o, p)?;
            if !matches!(f.ftype, FType::Id | FType::Reference) {
                return Err(ApiError::bad(
                    "INVALID_FIELD",
                    format!(
                        "Semi join sub-selects are only allowed on id or reference fields, not {}",
                        f.name
                    ),
                ));
            }
            let inner = schema::object(&q.from).ok_or_else(|| invalid_type(&q.from))?;
            let [Item::Field(path)] = q.items.as_slice() else {
                return Err(malformed("a semi-join selects exactly one id field"));
            };
            field_of(inner, path)?;
            let rows = select(data, inner, q, false)?;
            let set = rows
                .iter()
                .filter_map(|id| data.get(inner.name, id))
                .filter_map(|r| value_at(data, inner, r, path).0.as_str())
                .map(str::to_string)
                .collect();
            Ready::InSet(p.clone(), *neg, set)
        }
    })
}

/// The error for an unknown object.
pub(crate) fn invalid_type(name: &str) -> ApiError {
    ApiError::bad(
        "INVALID_TYPE",
        format!(
            "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

fn test(data: &Data, o: &'static Object, row: &Value, c: &Ready) -> bool {
    match c {
        Ready::And(v) => v.iter().all(|c| test(data, o, row, c)),
        Ready::Or(v) => v.iter().any(|c| test(data, o, row, c)),
        Ready::Not(c) => !test(data, o, row, c),
        Ready::Cmp(p, op, l) => match value_at(data, o, row, p) {
            (v, Some(f)) => compare(v, f, *op, l),
            (_, None) => *l == Lit::Null && *op == Op::Eq,
        },
        Ready::In(p, neg, list) => {
            let hit = match value_at(data, o, row, p) {
                (v, Some(f)) => list.iter().any(|l| compare(v, f, Op::Eq, l)),
                _ => false,
            };
            hit != *neg
        }
        Ready::InSet(p, neg, set) => {
            let hit = value_at(data, o, row, p)
                .0
                .as_str()
                .is_some_and(|s| set.contains(s));
            hit != *neg
        }
        Ready::Like(p, pat) => value_at(data, o, row, p)
            .0
            .as_str()
            .is_some_and(|s| like(s, pat)),
    }
}

/// Candidate ids from an index, when the filter pins an indexed field or a time range.
fn candidates(data: &Data, o: &'static Object, c: &Ready) -> Option<Vec<String>> {
    match c {
        Ready::And(v) => v.iter().find_map(|c| candidates(data, o, c)),
        Ready::Cmp(p, op, l) if p.len() == 1 => {
            let f = o.field(&p[0])?;
            if *op == Op::Eq && f.indexed && !matches!(l, Lit::Null | Lit::Range(..)) {
                if f.ftype == FType::Id {
                    let id = lit_text(l).and_then(|s| ids::to18(&s))?;
                    return Some(data.get(o.name, &id).map(|_| vec![id]).unwrap_or_default());
                }
                return Some(data.lookup(o, f, &lit_value(l)));
            }
            let field = match f.name {
                "SystemModstamp" => TimeField::Updated,
                "CreatedDate" => TimeField::Created,
                _ => return None,
            };
            let t = match l {
                Lit::DateTime(t) => (*t, *t),
                Lit::Date(d) => (midnight(*d), midnight(*d)),
                Lit::Range(a, b) => (*a, *b),
                _ => return None,
            };
            // Bounds are widened by a millisecond and the filter re-checks each row.
            let ms = Duration::milliseconds(1);
            let (from, to) = match op {
                Op::Gt | Op::Ge => (Some(t.0 - ms), None),
                Op::Lt | Op::Le => (None, Some(t.1 + ms)),
                Op::Eq => (Some(t.0 - ms), Some(t.1 + ms)),
                Op::Ne => return None,
            };
            Some(data.by_time(o.name, field, from, to, false))
        }
        Ready::In(p, false, list) if p.len() == 1 => {
            let f = o.field(&p[0])?;
            if !f.indexed {
                return None;
            }
            let mut out: Vec<String> = Vec::new();
            for l in list {
                if f.ftype == FType::Id {
                    if let Some(id) = lit_text(l).and_then(|s| ids::to18(&s))
                        && data.get(o.name, &id).is_some()
                    {
                        out.push(id);
                    }
                } else {
                    out.extend(data.lookup(o, f, &lit_value(l)));
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        }
        Ready::InSet(p, false, set) if p.len() == 1 => {
            let f = o.field(&p[0])?;
            if f.ftype == FType::Id {
                let mut v: Vec<String> = set
                    .iter()
                    .filter(|id| data.get(o.name, id).is_some())
                    .cloned()
                    .collect();
                v.sort();
                return Some(v);
            }
            if !f.indexed {
                return None;
            }
            let mut out: Vec<String> = set
                .iter()
                .flat_map(|s| data.lookup(o, f, &Value::String(s.clone())))
                .collect();
            out.sort();
            out.dedup();
            Some(out)
        }
        _ => None,
    }
}

fn lit_text(l: &Lit) -> Option<String> {
    match l {
        Lit::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn lit_value(l: &Lit) -> Value {
    match l {
        Lit::Str(s) => Value::String(s.clone()),
        Lit::Num(n) => serde_json::json!(n),
        Lit::Bool(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

fn order_cmp(a: &Value, b: &Value, f: Option<&Field>, desc: bool, nulls_last: bool) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => {
            return if nulls_last {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        (false, true) => {
            return if nulls_last {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        _ => {}
    }
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => match f.map(|f| f.ftype) {
            Some(FType::DateTime) => parse_datetime(x).cmp(&parse_datetime(y)),
            Some(FType::Id | FType::Reference) => x.cmp(y),
            _ => x.to_lowercase().cmp(&y.to_lowercase()),
        },
        _ => Ordering::Equal,
    };
    if desc { ord.reverse() } else { ord }
}

/// The ids of the rows a query selects from `o`, filtered, ordered, offset and limited;
/// deleted rows only with `all_rows` (queryAll).
pub(crate) fn select(
    data: &Data,
    o: &'static Object,
    q: &Query,
    all_rows: bool,
) -> Result<Vec<String>, ApiError> {
    for item in &q.items {
        if let Item::Field(p) | Item::CountOf(p, _) = item
            && !p[0].starts_with("FIELDS(")
        {
            field_of(o, p)?;
        }
    }
    for (p, _, _) in &q.order {
        field_of(o, p)?;
    }
    let ready = q.filter.as_ref().map(|c| prepare(data, o, c)).transpose()?;
    let keep = |row: &Value| {
        (all_rows || row["IsDeleted"] != Value::Bool(true))
            && ready.as_ref().is_none_or(|c| test(data, o, row, c))
    };
    let Some(table) = data.table(o.name) else {
        return Ok(Vec::new());
    };
    let indexed = ready.as_ref().and_then(|c| candidates(data, o, c));
    let mut rows: Vec<&Value> = match indexed {
        Some(ids) => ids
            .iter()
            .filter_map(|id| table.get(id))
            .filter(|r| keep(r))
            .collect(),
        None => table.iter().filter(|r| keep(r)).collect(),
    };
    if !q.order.is_empty() {
        let keys: Vec<(Vec<String>, bool, bool, Option<&'static Field>)> = q
            .order
            .iter()
            .map(|(p, d, n)| (p.clone(), *d, *n, field_of(o, p).ok()))
            .collect();
        rows.sort_by(|a, b| {
            for (p, desc, nulls_last, f) in &keys {
                let ord = order_cmp(
                    value_at(data, o, a, p).0,
                    value_at(data, o, b, p).0,
                    *f,
                    *desc,
                    *nulls_last,
                );
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(usize::MAX);
    Ok(rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_subset() {
        let q = parse(
            "SELECT Id, Account.Name, (SELECT LastName FROM Contacts WHERE Email LIKE '%@x.com') \
             FROM Account WHERE (Name = 'O\\'Brien' OR NOT Industry IN ('Retail', 'Energy')) \
             AND CreatedDate = LAST_N_DAYS:30 AND Id IN (SELECT AccountId FROM Opportunity WHERE IsClosed = false) \
             ORDER BY Name DESC NULLS LAST LIMIT 10 OFFSET 5",
        )
        .expect("parses");
        assert_eq!(q.from, "Account");
        assert_eq!(q.items.len(), 3);
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert!(matches!(q.filter, Some(Cond::And(ref v)) if v.len() == 3));
        assert!(parse("SELECT Id FROM Account WHERE Name = 'unterminated").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'bad \\q escape'").is_err());
        assert!(parse("SELECT Id FROM Account LIMIT").is_err());
        assert!(
            parse("SELECT Id FROM Account LIMIT 10 OFFSET 2001")
                .is_err_and(|e| e.code == "NUMBER_OUTSIDE_VALID_RANGE")
        );
    }

    #[test]
    fn relative_date_literals_cover_their_documented_spans() {
        let now = Utc
            .with_ymd_and_hms(2026, 5, 20, 15, 0, 0)
            .single()
            .unwrap_or_default();
        let d = |y, m, day| midnight(NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default());
        assert_eq!(
            date_literal("TODAY", None, now),
            Some((d(2026, 5, 20), d(2026, 5, 21)))
        );
        assert_eq!(
            date_literal("LAST_N_DAYS", Some(30), now),
            Some((d(2026, 4, 20), d(2026, 5, 21)))
        );
        assert_eq!(
            date_literal("THIS_QUARTER", None, now),
            Some((d(2026, 4, 1), d(2026, 7, 1)))
        );
        assert_eq!(
            date_literal("LAST_MONTH", None, now),
            Some((d(2026, 4, 1), d(2026, 5, 1)))
        );
        assert_eq!(
            date_literal("LAST_YEAR", None, now),
            Some((d(2025, 1, 1), d(2026, 1, 1)))
        );
        // 2026-05-20 is a Wednesday; weeks start on Sunday.
        assert_eq!(
            date_literal("THIS_WEEK", None, now),
            Some((d(2026, 5, 17), d(2026, 5, 24)))
        );
        assert_eq!(date_literal("SOMEDAY", None, now), None);
    }

    #[test]
    fn like_is_case_insensitive_with_wildcards_and_escapes() {
        assert!(like("Acme Corp", "acme%"));
        assert!(like("Acme Corp", "%CORP"));
        assert!(like("Acme", "A_me"));
        assert!(!like("Acme", "A_e"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
    }
}
