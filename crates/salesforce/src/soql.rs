//! A SOQL builder whose values are always literals.
//!
//! Field and object names are checked to be identifiers (with dots for child-to-parent
//! paths such as `Account.Name`); every value goes through [`Literal`], which quotes and
//! escapes strings as the SOQL reference prescribes (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm):
//! `\` `'` `"` and the control characters `\n \r \t \b \f` are backslash-escaped, and in
//! `LIKE` patterns also `%` and `_`. Dates are `YYYY-MM-DD` and datetimes
//! `YYYY-MM-DDThh:mm:ssZ` (with `.SSS` only when the time has milliseconds), unquoted. So no value, whatever it holds, can end its literal
//! early and change the query's structure.
//!
//! ```
//! use crmkit_salesforce::soql::{Condition, Soql};
//! let q = Soql::select(["Id", "Name", "Account.Name"])
//!     .from("Contact")
//!     .filter(Condition::eq("LastName", "O'Brien").and(Condition::like_prefix("Email", "a_b")))
//!     .order_by("SystemModstamp")
//!     .limit(10)
//!     .build()
//!     .expect("only valid names");
//! assert_eq!(
//!     q,
//!     r"SELECT Id, Name, Account.Name FROM Contact WHERE (LastName = 'O\'Brien' AND Email LIKE 'a\_b%') ORDER BY SystemModstamp ASC LIMIT 10"
//! );
//! ```

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use crmkit_core::{Crm, Error, Result};

/// A value as it appears in a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string, quoted and escaped.
    Str(String),
    /// An integer.
    Int(i64),
    /// A decimal number (non-finite numbers are refused when the query is built).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A date (`2024-01-31`).
    Date(NaiveDate),
    /// A datetime in UTC (`2024-01-31T12:00:00Z`).
    DateTime(DateTime<Utc>),
}

impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Str(v.to_string())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Str(v)
    }
}
impl From<&String> for Literal {
    fn from(v: &String) -> Self {
        Literal::Str(v.clone())
    }
}
impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(v.into())
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<NaiveDate> for Literal {
    fn from(v: NaiveDate) -> Self {
        Literal::Date(v)
    }
}
impl From<DateTime<Utc>> for Literal {
    fn from(v: DateTime<Utc>) -> Self {
        Literal::DateTime(v)
    }
}
impl<T: Into<Literal>> From<Option<T>> for Literal {
    fn from(v: Option<T>) -> Self {
        v.map_or(Literal::Null, Into::into)
    }
}

/// Escapes `s` for the inside of a quoted SOQL string.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `s` for a `LIKE` pattern: [`escape`], plus `%` and `_` so they match themselves.
pub fn escape_like(s: &str) -> String {
    escape(s).replace('%', "\\%").replace('_', "\\_")
}

/// `s` as a quoted SOQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", escape(s))
}

/// A datetime literal: `2024-01-31T12:00:00Z`, with milliseconds (`…:00.250Z`) only when
/// the time has them. Salesforce stores whole seconds, so values read from it never do;
/// a value with milliseconds keeps them rather than being moved to another instant.
pub fn datetime(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_millis() == 0 {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl Literal {
    /// The literal as it goes into the query.
    pub fn render(&self) -> Result<String> {
        Ok(match self {
            Literal::Str(s) => quote(s),
            Literal::Int(i) => i.to_string(),
            // Rust writes floats out in full, never as `1e30`, which SOQL would not read.
            Literal::Float(f) if f.is_finite() => f.to_string(),
            Literal::Float(f) => {
                return Err(invalid(format!("{f} is not a number SOQL can hold")));
            }
            Literal::Bool(b) => b.to_string(),
            Literal::Null => "null".into(),
            Literal::Date(d) => d.format("%Y-%m-%d").to_string(),
            Literal::DateTime(t) => datetime(*t),
        })
    }
}

fn invalid(message: String) -> Error {
    Error::config(message).with_crm(Crm::Salesforce)
}

/// Checks a field or object name: letters, digits and `_`, starting with a letter, with `.`
/// between the parts of a relationship path (`Account.Owner.Name`).
pub fn check_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(invalid(format!(
            "{name:?} is not a SOQL field or object name"
        )))
    }
}

/// Checks a select-list item: a field name or an aggregate/`toLabel` call on one
/// (`COUNT()`, `COUNT(Id)`, `MAX(Amount)`).
fn check_select_item(item: &str) -> Result<()> {
    if let Some((func, rest)) = item.split_once('(')
        && let Some(arg) = rest.strip_suffix(')')
    {
        check_name(func)?;
        if arg.is_empty() {
            return Ok(());
        }
        return check_name(arg).map(drop);
    }
    check_name(item).map(drop)
}

#[derive(Debug, Clone)]
enum Cond {
    Compare(String, &'static str, Literal),
    Like(String, Like),
    In(String, bool, Vec<Literal>),
    SemiJoin(String, bool, Box<Soql>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// A `LIKE` pattern: the user's text is matched literally, with wildcards only where the
/// constructor puts them.
#[derive(Debug, Clone)]
pub enum Like {
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Contains.
    Contains(String),
    /// Equals, case-insensitively.
    Exactly(String),
}

impl Like {
    fn render(&self) -> String {
        let (pre, text, post) = match self {
            Like::Prefix(s) => ("", s, "%"),
            Like::Suffix(s) => ("%", s, ""),
            Like::Contains(s) => ("%", s, "%"),
            Like::Exactly(s) => ("", s, ""),
        };
        format!("'{pre}{}{post}'", escape_like(text))
    }
}

/// A `WHERE` condition. Built only from field names and [`Literal`]s.
#[derive(Debug, Clone)]
pub struct Condition(Cond);

impl Condition {
    fn cmp(field: &str, op: &'static str, value: impl Into<Literal>) -> Self {
        Self(Cond::Compare(field.to_string(), op, value.into()))
    }

    /// `field = value`.
    pub fn eq(field: &str, value: impl Into<Literal>) -> Self {
        Self::cmp(field, "=", value)
    }
    /// `field != value`.
    pub fn ne(field: &str, value: impl Into<Literal>) -> Self {
        Self::cmp(field, "!=", value)
    }
    /// `field < value`.
    pub fn lt(field: &str, value: impl Into<Literal>) -> Self {
        Self::cmp(field, "<", value)
    }
    /// `field <= value`.
    pub fn le(field: &str, value: impl Into<Literal>) -> Self {
        Self::cmp(field, "<=", value)
    }
    /// `field > value`.
    pub fn gt(field: &str, value: impl Into<Literal>) -> Self {
        Self::cmp(field, ">", value)
    }
    /// `field >= value`.
    pub fn ge(field: &str, value: impl Into<Literal>) -> Self {
        Self::cmp(field, ">=", value)
    }
    /// `field LIKE pattern`.
    pub fn like(field: &str, pattern: Like) -> Self {
        Self(Cond::Like(field.to_string(), pattern))
    }
    /// `field LIKE 'text%'`.
    pub fn like_prefix(field: &str, text: &str) -> Self {
        Self::like(field, Like::Prefix(text.to_string()))
    }
    /// `field LIKE '%text%'`.
    pub fn like_contains(field: &str, text: &str) -> Self {
        Self::like(field, Like::Contains(text.to_string()))
    }
    /// `field IN (values…)`; an empty list matches nothing.
    pub fn is_in<V: Into<Literal>>(field: &str, values: impl IntoIterator<Item = V>) -> Self {
        Self(Cond::In(
            field.to_string(),
            false,
            values.into_iter().map(Into::into).collect(),
        ))
    }
    /// `field NOT IN (values…)`; an empty list matches everything.
    pub fn not_in<V: Into<Literal>>(field: &str, values: impl IntoIterator<Item = V>) -> Self {
        Self(Cond::In(
            field.to_string(),
            true,
            values.into_iter().map(Into::into).collect(),
        ))
    }
    /// A semi-join: `field IN (SELECT … FROM …)`.
    pub fn in_query(field: &str, subquery: Soql) -> Self {
        Self(Cond::SemiJoin(field.to_string(), false, Box::new(subquery)))
    }
    /// An anti-join: `field NOT IN (SELECT … FROM …)`.
    pub fn not_in_query(field: &str, subquery: Soql) -> Self {
        Self(Cond::SemiJoin(field.to_string(), true, Box::new(subquery)))
    }
    /// Both.
    pub fn and(self, other: Condition) -> Self {
        match self.0 {
            Cond::And(mut v) => {
                v.push(other.0);
                Self(Cond::And(v))
            }
            c => Self(Cond::And(vec![c, other.0])),
        }
    }
    /// Either.
    pub fn or(self, other: Condition) -> Self {
        match self.0 {
            Cond::Or(mut v) => {
                v.push(other.0);
                Self(Cond::Or(v))
            }
            c => Self(Cond::Or(vec![c, other.0])),
        }
    }
    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Self(Cond::Not(Box::new(self.0)))
    }

    /// The condition as SOQL.
    pub fn render(&self) -> Result<String> {
        render(&self.0)
    }
}

fn render(c: &Cond) -> Result<String> {
    Ok(match c {
        Cond::Compare(f, op, v) => format!("{} {op} {}", check_name(f)?, v.render()?),
        Cond::Like(f, p) => format!("{} LIKE {}", check_name(f)?, p.render()),
        Cond::In(f, negated, values) => {
            let f = check_name(f)?;
            if values.is_empty() {
                // `IN ()` is a syntax error; an empty list matches nothing.
                return Ok(if *negated {
                    format!("({f} = null OR {f} != null)")
                } else {
                    format!("({f} = null AND {f} != null)")
                });
            }
            let items = values
                .iter()
                .map(Literal::render)
                .collect::<Result<Vec<_>>>()?
                .join(", ");
            let op = if *negated { "NOT IN" } else { "IN" };
            format!("{f} {op} ({items})")
        }
        Cond::SemiJoin(f, negated, q) => {
            let op = if *negated { "NOT IN" } else { "IN" };
            format!("{} {op} ({})", check_name(f)?, q.build()?)
        }
        Cond::And(v) | Cond::Or(v) => {
            let sep = if matches!(c, Cond::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts = v.iter().map(render).collect::<Result<Vec<_>>>()?;
            format!("({})", parts.join(sep))
        }
        Cond::Not(inner) => format!("(NOT {})", render(inner)?),
    })
}

/// A `SELECT` statement.
#[derive(Debug, Clone, Default)]
pub struct Soql {
    fields: Vec<String>,
    subqueries: Vec<Soql>,
    from: String,
    filter: Option<Condition>,
    order: Vec<(String, bool)>,
    limit: Option<u32>,
}

impl Soql {
    /// `SELECT fields`.
    pub fn select<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Self {
        Self {
            fields: fields.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds a parent-to-child subquery to the select list (`(SELECT Id FROM Contacts)`;
    /// its `from` is the child relationship name).
    pub fn subquery(mut self, child: Soql) -> Self {
        self.subqueries.push(child);
        self
    }

    /// `FROM object`.
    pub fn from(mut self, object: impl Into<String>) -> Self {
        self.from = object.into();
        self
    }

    /// `WHERE condition` (a second call adds with `AND`).
    pub fn filter(mut self, condition: Condition) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(c) => c.and(condition),
            None => condition,
        });
        self
    }

    /// `ORDER BY field ASC` (calls add further keys).
    pub fn order_by(mut self, field: impl Into<String>) -> Self {
        self.order.push((field.into(), true));
        self
    }

    /// `ORDER BY field DESC`.
    pub fn order_by_desc(mut self, field: impl Into<String>) -> Self {
        self.order.push((field.into(), false));
        self
    }

    /// `LIMIT n`.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// The query text, or a [`crmkit_core::ErrorKind::Config`] error naming a bad name.
    pub fn build(&self) -> Result<String> {
        if self.fields.is_empty() && self.subqueries.is_empty() {
            return Err(invalid("a SOQL query needs at least one field".into()));
        }
        let mut items = Vec::new();
        for f in &self.fields {
            check_select_item(f)?;
            items.push(f.clone());
        }
        for s in &self.subqueries {
            items.push(format!("({})", s.build()?));
        }
        let mut q = format!(
            "SELECT {} FROM {}",
            items.join(", "),
            check_name(&self.from)?
        );
        if let Some(c) = &self.filter {
            q.push_str(" WHERE ");
            q.push_str(&c.render()?);
        }
        if !self.order.is_empty() {
            let keys = self
                .order
                .iter()
                .map(|(f, asc)| {
                    check_name(f).map(|f| format!("{f} {}", if *asc { "ASC" } else { "DESC" }))
                })
                .collect::<Result<Vec<_>>>()?;
            q.push_str(" ORDER BY ");
            q.push_str(&keys.join(", "));
        }
        if let Some(n) = self.limit {
            q.push_str(&format!(" LIMIT {n}"));
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits a query into the text outside string literals and the decoded literals, the
    /// way a SOQL lexer does; `None` when a literal is unterminated or has an unknown escape.
    fn lex(q: &str) -> Option<(String, Vec<String>)> {
        let mut outside = String::new();
        let mut literals = Vec::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            if c != '\'' {
                outside.push(c);
                continue;
            }
            outside.push('?');
            let mut lit = String::new();
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => lit.push(match chars.next()? {
                        '\\' => '\\',
                        '\'' => '\'',
                        '"' => '"',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        '%' => '%',
                        '_' => '_',
                        _ => return None,
                    }),
                    c => lit.push(c),
                }
            }
            literals.push(lit);
        }
        Some((outside, literals))
    }

    proptest! {
        #[test]
        fn any_string_stays_one_literal(s in any::<String>(), t in "[\\PC'\\\\%_\n\r]*") {
            for value in [s.clone(), t.clone()] {
                let q = Soql::select(["Id"])
                    .from("Account")
                    .filter(Condition::eq("Name", value.as_str()).or(Condition::is_in("Site", [value.as_str(), "x"])))
                    .build()
                    .expect("builds");
                let (outside, lits) = lex(&q).expect("lexes");
                prop_assert_eq!(
                    outside,
                    "SELECT Id FROM Account WHERE (Name = ? OR Site IN (?, ?))"
                );
                prop_assert_eq!(lits, vec![value.clone(), value.clone(), "x".to_string()]);
                let like = Condition::like_contains("Name", &value).render().expect("renders");
                let (outside, lits) = lex(&like).expect("lexes");
                prop_assert_eq!(outside, "Name LIKE ?");
                prop_assert_eq!(lits, vec![format!("%{value}%")]);
            }
        }
    }

    #[test]
    fn escapes_follow_the_soql_reference() {
        assert_eq!(
            quote("O'Brien \\ \"x\"\n\r\t"),
            r#"'O\'Brien \\ \"x\"\n\r\t'"#
        );
        assert_eq!(escape_like("50%_off"), r"50\%\_off");
        let date = NaiveDate::from_ymd_opt(2024, 1, 31).expect("date");
        let t = DateTime::parse_from_rfc3339("2024-01-31T12:30:05.250Z")
            .expect("time")
            .with_timezone(&Utc);
        let q = Soql::select(["Id"])
            .from("Opportunity")
            .filter(Condition::ge("CloseDate", date))
            .filter(Condition::lt("SystemModstamp", t))
            .filter(Condition::eq("IsWon", true))
            .filter(Condition::ne("Amount", Literal::Null))
            .filter(Condition::gt("Amount", 1.5))
            .build()
            .expect("builds");
        assert_eq!(
            q,
            "SELECT Id FROM Opportunity WHERE (CloseDate >= 2024-01-31 AND SystemModstamp < 2024-01-31T12:30:05.250Z AND IsWon = true AND Amount != null AND Amount > 1.5)"
        );
    }

    #[test]
    fn subqueries_paths_and_semi_joins() {
        let q = Soql::select(["Id", "Name", "Owner.Name"])
            .subquery(Soql::select(["Id", "LastName"]).from("Contacts"))
            .from("Account")
            .filter(Condition::in_query(
                "Id",
                Soql::select(["AccountId"])
                    .from("Opportunity")
                    .filter(Condition::eq("StageName", "Closed Won")),
            ))
            .filter(Condition::is_in::<&str>("Type", []).not())
            .order_by("Name")
            .order_by_desc("Id")
            .limit(5)
            .build()
            .expect("builds");
        assert_eq!(
            q,
            "SELECT Id, Name, Owner.Name, (SELECT Id, LastName FROM Contacts) FROM Account WHERE (Id IN (SELECT AccountId FROM Opportunity WHERE StageName = 'Closed Won') AND (NOT (Type = null AND Type != null))) ORDER BY Name ASC, Id DESC LIMIT 5"
        );
        assert_eq!(
            Soql::select(["COUNT()"])
                .from("Lead")
                .build()
                .expect("count"),
            "SELECT COUNT() FROM Lead"
        );
    }

    #[test]
    fn names_that_could_inject_are_refused() {
        for bad in [
            "Name; DELETE",
            "Name'",
            "",
            "1Id",
            "Account..Name",
            "Name FROM User",
        ] {
            assert!(
                Soql::select([bad]).from("Account").build().is_err(),
                "{bad}"
            );
            assert!(Soql::select(["Id"]).from(bad).build().is_err(), "{bad}");
            assert!(Condition::eq(bad, 1).render().is_err(), "{bad}");
        }
        assert!(Condition::eq("Amount", f64::NAN).render().is_err());
    }
}
