//! Characters to tokens: words, quoted text, operators and parentheses.

use super::QueryError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
}

pub(super) fn describe(t: Option<&(Tok, usize)>) -> String {
    match t {
        None => "end of input".into(),
        Some((Tok::Word(w), _)) => format!("`{w}`"),
        Some((Tok::Quoted(q), _)) => format!("\"{q}\""),
        Some((Tok::Op(o), _)) => format!("`{o}`"),
        Some((Tok::Open, _)) => "`(`".into(),
        Some((Tok::Close, _)) => "`)`".into(),
    }
}

pub(super) fn lex(input: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
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
