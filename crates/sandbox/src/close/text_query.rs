//! The `query=` text search language of `GET /lead/` (deprecated by Close in favour of
//! Advanced Filtering, developer.close.com changelog 2022-02-14, but still used by real
//! integrations: airbyte PR 31534 sends `sort:updated date_updated > "A" date_updated <= "B"`).
//!
//! This is the sandbox's own reading of the language: terms are joined by juxtaposition
//! (or an explicit `AND`) and all must hold; a term is `field:value`, `field OP value` with
//! `OP` one of `> >= < <= =`, `sort:field` / `sort:-field`, or a bare word matched against
//! the lead's name. Values may be quoted (`status:"Bad Fit"`). Anything else is a syntax
//! error answered with a 400.

use std::ops::Bound;

use serde_json::Value;

use super::api_error::ApiError;
use super::data::{Data, parse_time};
use crate::shared::store::{TimeField, TimeKey};

/// A field the language can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    Name,
    Status,
    StatusId,
    Description,
    Url,
    Email,
    Created,
    Updated,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name.to_ascii_lowercase().as_str() {
            "id" | "lead_id" => Field::Id,
            "name" | "company" => Field::Name,
            "status" | "lead_status" => Field::Status,
            "status_id" => Field::StatusId,
            "description" => Field::Description,
            "url" => Field::Url,
            "email" | "email_address" => Field::Email,
            "created" | "date_created" => Field::Created,
            "updated" | "date_updated" => Field::Updated,
            _ => return None,
        })
    }

    fn time(self) -> Option<TimeField> {
        match self {
            Field::Created => Some(TimeField::Created),
            Field::Updated => Some(TimeField::Updated),
            _ => None,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `field:value`: contains (text) or equals (time).
    Has,
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    /// A text or time comparison.
    Compare { field: Field, op: Op, value: String },
    /// A bare word, matched against the name.
    Word(String),
}

/// A parsed query: conditions that must all hold, and an optional order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TextQuery {
    pub terms: Vec<Term>,
    /// The order: a field and whether it is descending.
    pub sort: Option<(Field, bool)>,
}

fn syntax(msg: impl Into<String>) -> ApiError {
    ApiError::field("query", &format!("Invalid query: {}", msg.into()))
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Colon,
    Op(Op),
}

fn tokens(text: &str) -> Result<Vec<Token>, ApiError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(syntax("unterminated quoted value")),
                        },
                        Some(ch) => s.push(ch),
                        None => return Err(syntax("unterminated quoted value")),
                    }
                }
                out.push(Token::Quoted(s));
            }
            ':' => {
                chars.next();
                out.push(Token::Colon);
            }
            '>' | '<' | '=' => {
                chars.next();
                let eq = chars.peek() == Some(&'=');
                if eq && c != '=' {
                    chars.next();
                }
                out.push(Token::Op(match (c, eq) {
                    ('>', true) => Op::Gte,
                    ('>', false) => Op::Gt,
                    ('<', true) => Op::Lte,
                    ('<', false) => Op::Lt,
                    _ => Op::Eq,
                }));
            }
            '(' | ')' | '|' | '!' => return Err(syntax(format!("unexpected '{c}'"))),
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || "\":<>=()|!".contains(ch) {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

/// Parses `text`; a syntax error is a Close-style 400.
pub(crate) fn parse(text: &str) -> Result<TextQuery, ApiError> {
    let toks = tokens(text)?;
    let mut q = TextQuery::default();
    let mut i = 0;
    let value = |t: Option<&Token>| -> Option<String> {
        match t {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) if !w.is_empty() => Some(w.clone()),
            _ => None,
        }
    };
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1)) {
            (Token::Word(w), _) if w == "AND" || w == "and" => i += 1,
            (Token::Word(w), _) if w == "OR" || w == "or" => {
                return Err(syntax("OR is not supported by the sandbox"));
            }
            (Token::Word(w), Some(Token::Colon)) if w == "sort" => {
                let v = value(toks.get(i + 2)).ok_or_else(|| syntax("sort: needs a field"))?;
                let (name, desc) = match v.strip_prefix('-') {
                    Some(n) => (n, true),
                    None => (v.as_str(), false),
                };
                let field = Field::parse(name)
                    .filter(|f| matches!(f, Field::Created | Field::Updated | Field::Name))
                    .ok_or_else(|| syntax(format!("cannot sort by {name}")))?;
                q.sort = Some((field, desc));
                i += 3;
            }
            (Token::Word(w), Some(Token::Colon | Token::Op(_))) => {
                let field = Field::parse(w).ok_or_else(|| syntax(format!("unknown field {w}")))?;
                let op = match &toks[i + 1] {
                    Token::Op(op) => *op,
                    _ => match toks.get(i + 2) {
                        // `field:>value` is the same as `field > value`.
                        Some(Token::Op(op)) => {
                            i += 1;
                            *op
                        }
                        _ => Op::Has,
                    },
                };
                let v =
                    value(toks.get(i + 2)).ok_or_else(|| syntax(format!("{w} needs a value")))?;
                if field.time().is_some() && parse_time(&v).is_none() {
                    return Err(syntax(format!("{v} is not a date")));
                }
                if field.time().is_none() && !matches!(op, Op::Has | Op::Eq) {
                    return Err(syntax(format!("{w} cannot be compared with < or >")));
                }
                q.terms.push(Term::Compare {
                    field,
                    op,
                    value: v,
                });
                i += 3;
            }
            (Token::Word(w) | Token::Quoted(w), _) => {
                q.terms.push(Term::Word(w.to_lowercase()));
                i += 1;
            }
            (Token::Colon | Token::Op(_), _) => {
                return Err(syntax("an operator needs a field before it"));
            }
        }
    }
    Ok(q)
}

fn contains(hay: &Value, needle: &str) -> bool {
    hay.as_str()
        .is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
}

fn time_cmp(stored: &Value, op: Op, wanted: &str) -> bool {
    let (Some(a), Some(b)) = (stored.as_str().and_then(parse_time), parse_time(wanted)) else {
        return false;
    };
    match op {
        Op::Has | Op::Eq => a == b,
        Op::Gt => a > b,
        Op::Gte => a >= b,
        Op::Lt => a < b,
        Op::Lte => a <= b,
    }
}

impl TextQuery {
    /// Whether the stored lead `row` satisfies every term.
    pub(crate) fn matches(&self, data: &Data, row: &Value) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Word(w) => contains(&row["name"], w),
            Term::Compare { field, op, value } => match field {
                Field::Id => row["id"] == value.as_str(),
                Field::Name => match op {
                    Op::Eq => row["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(value)),
                    _ => contains(&row["name"], value),
                },
                Field::Status => row["status_id"]
                    .as_str()
                    .and_then(|s| data.get("status_lead", s))
                    .and_then(|s| s["label"].as_str())
                    .is_some_and(|l| l.eq_ignore_ascii_case(value)),
                Field::StatusId => row["status_id"] == value.as_str(),
                Field::Description => contains(&row["description"], value),
                Field::Url => contains(&row["url"], value),
                Field::Email => {
                    let id = row["id"].as_str().unwrap_or_default();
                    data.children("contact", id).any(|c| {
                        c["emails"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|e| contains(&e["email"], value))
                    })
                }
                Field::Created => time_cmp(&row["date_created"], *op, value),
                Field::Updated => time_cmp(&row["date_updated"], *op, value),
            },
        })
    }

    /// The time index to walk and its bounds, from the sort and the terms on that field.
    pub(crate) fn time_walk(&self) -> Option<(TimeField, Bound<TimeKey>, Bound<TimeKey>, bool)> {
        let (field, desc) = match self.sort {
            Some((f, desc)) => (f.time()?, desc),
            None => {
                let f = self.terms.iter().find_map(|t| match t {
                    Term::Compare { field, .. } => field.time(),
                    Term::Word(_) => None,
                })?;
                (f, false)
            }
        };
        let mut lower = Bound::Unbounded;
        let mut upper = Bound::Unbounded;
        for t in &self.terms {
            let Term::Compare {
                field: f,
                op,
                value,
            } = t
            else {
                continue;
            };
            let Some(at) = (f.time() == Some(field))
                .then(|| parse_time(value))
                .flatten()
                .map(|t| t.timestamp_micros())
            else {
                continue;
            };
            // Micros are integers, so strict bounds become inclusive ones a micro further.
            let (lo, hi) = match op {
                Op::Gt => (Some(at.saturating_add(1)), None),
                Op::Gte => (Some(at), None),
                Op::Lt => (None, Some(at)),
                Op::Lte => (None, Some(at.saturating_add(1))),
                Op::Has | Op::Eq => (Some(at), Some(at.saturating_add(1))),
            };
            if let Some(lo) = lo
                && !matches!(&lower, Bound::Included((l, _)) if *l >= lo)
            {
                lower = Bound::Included((lo, String::new()));
            }
            if let Some(hi) = hi
                && !matches!(&upper, Bound::Excluded((u, _)) if *u <= hi)
            {
                upper = Bound::Excluded((hi, String::new()));
            }
        }
        Some((field, lower, upper, desc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_airbyte_slice_query() {
        let q = parse(r#"sort:updated date_updated > "2024-01-01" date_updated <= "2024-06-01""#)
            .unwrap();
        assert_eq!(q.sort, Some((Field::Updated, false)));
        assert_eq!(q.terms.len(), 2);
        let (field, lower, upper, desc) = q.time_walk().unwrap();
        assert_eq!(field, TimeField::Updated);
        assert!(!desc);
        assert!(matches!(lower, Bound::Included((_, _))));
        assert!(matches!(upper, Bound::Excluded((_, _))));
    }

    #[test]
    fn fields_words_and_quotes() {
        let q = parse(r#"name:acme AND status:"Bad Fit" widget sort:-created"#).unwrap();
        assert_eq!(q.sort, Some((Field::Created, true)));
        assert_eq!(
            q.terms,
            vec![
                Term::Compare {
                    field: Field::Name,
                    op: Op::Has,
                    value: "acme".into()
                },
                Term::Compare {
                    field: Field::Status,
                    op: Op::Has,
                    value: "Bad Fit".into()
                },
                Term::Word("widget".into()),
            ]
        );
    }

    #[test]
    fn no_input_panics() {
        let alphabet: Vec<char> = "ab:<>=\"\\ -_sortdate_updated2024()|!é0".chars().collect();
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..20_000 {
            let len = rng.usize(0..24);
            let text: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            if let Ok(q) = parse(&text) {
                let _ = q.time_walk();
            }
        }
        for edge in [
            r#"date_updated > "262143-12-31""#,
            r#"created:"-9999-01-01""#,
            "sort:-",
        ] {
            let _ = parse(edge).map(|q| q.time_walk());
        }
    }

    #[test]
    fn syntax_errors_are_400s() {
        for bad in [
            r#"name:"open"#,
            "date_updated >",
            "> 2024-01-01",
            "nosuchfield:1",
            "date_created > yesterday-ish",
            "(name:a)",
            "sort:",
            "name > b",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.status(), 400, "{bad}");
        }
    }
}
