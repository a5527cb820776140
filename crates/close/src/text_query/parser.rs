//! Tokens to an expression tree: AND (also implicit), OR, NOT, parentheses, conditions and
//! `sort:` clauses.

use super::QueryError;
use super::lexer::{Tok, describe, lex};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub(super) expr: Option<Expr>,
    pub(super) sorts: Vec<(String, bool, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
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

/// How deeply parentheses and NOT may nest: deeper input is refused, not recursed into
/// until the stack runs out.
const MAX_DEPTH: usize = 64;

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    depth: usize,
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
                        position: self.toks.get(self.at - 1).map_or(0, |t| t.1),
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
        if self.depth >= MAX_DEPTH {
            return Err(self.error(&format!(
                "at most {MAX_DEPTH} levels of parentheses and NOT"
            )));
        }
        self.depth += 1;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Option<Expr>, QueryError> {
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
        depth: 0,
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
