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
    /// The password, to blank it out of driver messages.
    pub password: Option<String>,
}

impl DbUrl {
    /// Reads `url`: `postgres://…`/`postgresql://…`, `sqlite::memory:`, `sqlite:PATH` /
    /// `sqlite://PATH`, or a bare file path (SQLite).
    pub fn parse(url: &str) -> Result<Self> {
        let redacted = redact(url);
        let password = password_of(url);
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
                password,
            });
        }
        if lower == "sqlite::memory:" || lower == "sqlite://:memory:" || lower == ":memory:" {
            return Ok(Self {
                backend: Backend::Sqlite,
                driver_url: "sqlite::memory:".into(),
                memory: true,
                redacted,
                password,
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
            password,
        })
    }

    /// Blanks the password out of a driver message.
    pub fn scrub(&self, message: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => message.replace(p.as_str(), "[REDACTED]"),
            _ => message.to_owned(),
        }
    }
}

/// The password of `scheme://user:password@host…` or of a `password=` query parameter.
fn password_of(url: &str) -> Option<String> {
    if let Some(p) = userinfo_password(url) {
        return Some(p.to_owned());
    }
    query_password(url).map(str::to_owned)
}

/// The byte range of the password in `scheme://user:password@host…`.
fn userinfo_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let at = authority.rfind('@')?;
    let userinfo = &authority[..at];
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}

/// The value of a `password=` query parameter.
fn query_password(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|kv| kv.strip_prefix("password="))
}

/// `url` with its password (in the user info or a `password=` parameter) replaced by
/// `[REDACTED]`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(p) = userinfo_password(url).filter(|p| !p.is_empty()) {
        // The password starts after the first ':' of the user info, which starts right
        // after "://".
        let userinfo_start = url.find("://").map_or(0, |i| i + 3);
        if let Some(colon) = url[userinfo_start..].find(':') {
            let start = userinfo_start + colon + 1;
            out = format!("{}[REDACTED]{}", &url[..start], &url[start + p.len()..]);
        }
    }
    if let Some(p) = query_password(&out.clone()).filter(|p| !p.is_empty()) {
        out = out.replace(&format!("password={p}"), "password=[REDACTED]");
    }
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
