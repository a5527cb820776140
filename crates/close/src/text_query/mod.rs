//! The Close text query language (as typed in Smart Views and sent as the deprecated
//! `query=` parameter), lexed, parsed and compiled into an Advanced Filtering tree
//! ([`crate::filter`]).
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
//! use crmkit_close::text_query::{compile, parse};
//! let now = chrono::Utc::now();
//! let q = parse(r#"company:Coperniq sort:date_updated asc"#).unwrap();
//! let req = compile(&q, now, &|_name: &str| None).unwrap();
//! assert_eq!(req.sort[0].direction, "asc");
//! let err = parse("company:").unwrap_err();
//! assert_eq!(err.to_string(), "at position 9: expected a value after `:`, found end of input");
//! ```

mod compile;
mod lexer;
mod parser;

use std::fmt;

pub use compile::{compile, custom_field_names};
pub use parser::{Parsed, parse};

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
        // A query the user typed is input to fix, not crmkit misconfigured.
        crmkit_core::Error::new(crmkit_core::ErrorKind::Validation, format!("query {e}"))
            .with_crm(crmkit_core::Crm::Close)
    }
}
