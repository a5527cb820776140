//! Database URLs: which backend, the URL the driver gets, and a form safe to show.

use crate::{Error, Result};

/// Which database a [`Store`](crate::Store) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite: a file (the embedded default) or a private in-memory database.
    Sqlite,
    /// PostgreSQL, shared by several processes.
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A database URL understood by the store.
pub(crate) struct DbUrl {
    /// The backend.
    pub backend: Backend,
    /// The URL handed to the driver (may hold a password: never shown).
    pub driver_url: String,
    /// An in-memory SQLite database, private to one connection.
    pub memory: bool,
    /// The URL with its password replaced by `[REDACTED]`.
    pub redacted: String,
    /// The passwords, to blank them out of driver messages.
    pub passwords: Vec<String>,
    /// The URL as given, to blank it out of driver messages.
    raw: String,
}

impl DbUrl {
    /// Reads `url`: `postgres://…`/`postgresql://…`, `sqlite::memory:`, `sqlite:PATH` /
    /// `sqlite://PATH`, or a bare file path (SQLite).
    pub fn parse(url: &str) -> Result<Self> {
        let redacted = redact(url);
        let passwords = passwords_of(url);
        let raw = url.to_owned();
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::InvalidUrl {
                url: redacted,
                reason: "empty; use a file path such as crmkit.db, sqlite::memory: or postgres://…"
                    .into(),
            });
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres,
                driver_url: url.to_owned(),
                memory: false,
                redacted,
                passwords,
                raw,
            });
        }
        if lower == "sqlite::memory:" || lower == "sqlite://:memory:" || lower == ":memory:" {
            return Ok(Self {
                backend: Backend::Sqlite,
                driver_url: "sqlite::memory:".into(),
                memory: true,
                redacted,
                passwords,
                raw,
            });
        }
        let sqlite_url = if lower.starts_with("sqlite:") {
            url.to_owned()
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(Error::InvalidUrl {
                url: redacted,
                reason: format!(
                    "unsupported scheme {scheme:?}; use postgres://…, sqlite:PATH or a file path"
                ),
            });
        } else {
            format!("sqlite://{url}")
        };
        // A file that does not exist yet is created (the embedded default must just work),
        // unless the URL chose its own mode.
        let driver_url = if sqlite_url.contains("mode=") {
            sqlite_url
        } else if sqlite_url.contains('?') {
            format!("{sqlite_url}&mode=rwc")
        } else {
            format!("{sqlite_url}?mode=rwc")
        };
        Ok(Self {
            backend: Backend::Sqlite,
            driver_url,
            memory: false,
            redacted,
            passwords,
            raw,
        })
    }

    /// Whether the URL opens a SQLite file read-only (`mode=ro`).
    pub fn read_only(&self) -> bool {
        self.backend == Backend::Sqlite && self.driver_url.contains("mode=ro")
    }

    /// Blanks the password out of a driver message (and, should the driver quote the URL,
    /// the whole URL).
    pub fn scrub(&self, message: &str) -> String {
        let mut message = message
            .replace(self.raw.as_str(), &self.redacted)
            .replace(self.driver_url.as_str(), &redact(&self.driver_url));
        for p in &self.passwords {
            message = message.replace(p.as_str(), "[REDACTED]");
        }
        message
    }
}

/// The passwords of `url` (user info, `password=` parameters), longest first, to blank
/// them out of driver messages.
fn passwords_of(url: &str) -> Vec<String> {
    let mut found: Vec<String> = secret_spans(url)
        .into_iter()
        .map(|(a, b)| url[a..b].to_owned())
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found
}

/// The byte ranges of every secret in `url`:
/// - the password of `scheme://user:password@host…`, taken as everything from the first `:`
///   after `://` to the **last** `@` (so an unencoded `/`, `?`, `#` or `@` in the password is
///   covered; if the URL is odd, more than the password is hidden, never less);
/// - the value of every parameter whose key contains `password` in any case (`password=`,
///   `Password=`, `sslpassword=`), in a URL query or a `key=value` connection string
///   (`host=h password='x y'`).
fn secret_spans(url: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if let Some(i) = url.find("://") {
        let start = i + 3;
        let rest = &url[start..];
        if let Some(at) = rest.rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                if colon + 1 < at {
                    spans.push((start + colon + 1, start + at));
                }
            }
        }
    }
    let is_url = url.contains("://");
    let lower = url.to_ascii_lowercase();
    let bytes = url.as_bytes();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password") {
        let key_end = from + found + "password".len();
        from = key_end;
        let mut i = key_end;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue;
        }
        i += 1;
        while !is_url && i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let value_start = i;
        if !is_url && bytes.get(i) == Some(&b'\'') {
            // A quoted value of a connection string: up to the closing quote (a backslash
            // escapes the next character).
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() {
                let c = bytes[i];
                let end = if is_url {
                    c == b'&' || c.is_ascii_whitespace()
                } else {
                    c.is_ascii_whitespace()
                };
                if end {
                    break;
                }
                i += 1;
            }
        }
        if i > value_start {
            spans.push((value_start, i));
        }
        from = from.max(i);
    }
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// `url` with its passwords (in the user info, `password=` parameters in any case, or a
/// `key=value` connection string) replaced by `[REDACTED]`.
pub fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut at = 0;
    for (a, b) in secret_spans(url) {
        out.push_str(&url[at..a]);
        out.push_str("[REDACTED]");
        at = b;
    }
    out.push_str(&url[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://crm:s3cret@db.example:5432/crm"),
            "postgres://crm:[REDACTED]@db.example:5432/crm"
        );
        assert_eq!(
            redact("postgres://db.example/crm?user=crm&password=s3cret&sslmode=require"),
            "postgres://db.example/crm?user=crm&password=[REDACTED]&sslmode=require"
        );
        assert_eq!(
            redact("postgres://crm@db.example/crm"),
            "postgres://crm@db.example/crm"
        );
        // A password that also appears in the user name is replaced where it is a password.
        assert_eq!(
            redact("postgres://ab:ab@h/d"),
            "postgres://ab:[REDACTED]@h/d"
        );
    }

    #[test]
    fn odd_passwords_are_redacted() {
        for (url, shown) in [
            (
                "postgres://crm:ab/cd+ef@127.0.0.1:1/crm",
                "postgres://crm:[REDACTED]@127.0.0.1:1/crm",
            ),
            (
                "postgres://crm:ab#cd@127.0.0.1:1/crm",
                "postgres://crm:[REDACTED]@127.0.0.1:1/crm",
            ),
            (
                "postgres://crm:a?b@c/d@h:5432/crm?sslmode=require",
                "postgres://crm:[REDACTED]@h:5432/crm?sslmode=require",
            ),
            (
                "postgres://127.0.0.1:1/crm?user=crm&Password=s3cret",
                "postgres://127.0.0.1:1/crm?user=crm&Password=[REDACTED]",
            ),
            (
                "postgres://h/crm?PASSWORD=s3cret&sslpassword=k3y&x=1",
                "postgres://h/crm?PASSWORD=[REDACTED]&sslpassword=[REDACTED]&x=1",
            ),
            (
                "host=db user=crm password=s3cret dbname=crm",
                "host=db user=crm password=[REDACTED] dbname=crm",
            ),
            (
                "host=db Password = 's3 c\\'ret' dbname=crm",
                "host=db Password = [REDACTED] dbname=crm",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn errors_never_show_the_raw_url() {
        for url in [
            "postgres://crm:ab/cd@127.0.0.1:notaport/crm",
            "mysql://crm:ab#cd@h/d",
            "host=db password=s3cret",
        ] {
            let shown = match DbUrl::parse(url) {
                Err(e) => format!("{e} {e:?}"),
                Ok(u) => format!("{} {}", u.redacted, u.scrub(&format!("bad {url}"))),
            };
            for secret in ["ab/cd", "ab#cd", "s3cret"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    #[test]
    fn urls_pick_their_backend() {
        let u = DbUrl::parse("crmkit.db").unwrap();
        assert_eq!(u.backend, Backend::Sqlite);
        assert_eq!(u.driver_url, "sqlite://crmkit.db?mode=rwc");
        let u = DbUrl::parse("sqlite::memory:").unwrap();
        assert!(u.memory);
        let u = DbUrl::parse("sqlite:/tmp/x.db?mode=ro").unwrap();
        assert_eq!(u.driver_url, "sqlite:/tmp/x.db?mode=ro");
        let u = DbUrl::parse("postgresql://u:pw@h/d").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(
            u.scrub("bad password pw for u"),
            "bad password [REDACTED] for u"
        );
        let e = DbUrl::parse("mysql://u:pw@h/d").err().unwrap().to_string();
        assert!(e.contains("mysql"), "{e}");
        assert!(!e.contains(":pw@"), "{e}");
    }
}
