//! The one error type every crmkit crate returns.
//!
//! An [`Error`] has a [`ErrorKind`] a caller can act on (refresh credentials, back off, fix the
//! input, give up), a one-sentence message, the record it concerns when there is one, the
//! per-field messages of a validation failure, and the CRM's own error body. It never holds a
//! secret: transports build errors from response bodies and URLs, never from headers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::model::Crm;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as far as a caller needs to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Credentials are missing, wrong, expired or revoked (HTTP 401).
    Auth,
    /// The credentials are valid but may not do this (HTTP 403, or a plan limit such as 402).
    Forbidden,
    /// The record or endpoint does not exist (HTTP 404).
    NotFound,
    /// The CRM rejected the input; see [`Error::field_errors`] (HTTP 400/422).
    Validation,
    /// The write conflicts with the record's current state (HTTP 409/412).
    Conflict,
    /// Too many requests; see [`Error::retry_after`] (HTTP 429).
    RateLimited,
    /// A daily or monthly quota is used up; retrying before it resets is pointless.
    QuotaExhausted,
    /// A failure that may go away by itself: 5xx, timeout, dropped connection.
    Transient,
    /// The CRM answered with something that does not match its documented contract.
    BadResponse,
    /// crmkit itself is misconfigured or was given input it cannot use (bad query, missing key).
    Config,
}

impl ErrorKind {
    /// Maps an HTTP status to the kind a caller acts on.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Auth,
            402 | 403 => Self::Forbidden,
            404 | 410 => Self::NotFound,
            400 | 422 => Self::Validation,
            409 | 412 => Self::Conflict,
            429 => Self::RateLimited,
            s if s >= 500 => Self::Transient,
            _ => Self::BadResponse,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Auth => "authentication failed",
            Self::Forbidden => "not allowed",
            Self::NotFound => "not found",
            Self::Validation => "invalid input",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate limited",
            Self::QuotaExhausted => "quota exhausted",
            Self::Transient => "temporary failure",
            Self::BadResponse => "unexpected response",
            Self::Config => "configuration error",
        }
    }
}

/// One field the CRM (or crmkit) rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the CRM spells it.
    pub field: String,
    /// Why it was rejected.
    pub message: String,
}

/// A failure from a CRM call or from crmkit itself.
///
/// Cheap to clone (the cause is shared), so one failure can be handed to every caller that
/// waited on the same work, such as a token refresh.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    crm: Option<Crm>,
    message: String,
    record: Option<String>,
    status: Option<u16>,
    field_errors: Vec<FieldError>,
    retry_after: Option<Duration>,
    body: Option<Box<serde_json::Value>>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` with a one-sentence `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            crm: None,
            message: message.into(),
            record: None,
            status: None,
            field_errors: Vec::new(),
            retry_after: None,
            body: None,
            source: None,
        }
    }

    /// A configuration or input error raised by crmkit before anything was sent.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// An answer that does not match the CRM's contract.
    pub fn bad_response(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadResponse, message)
    }

    /// The same error as another kind: what the transport makes of a dialect's reading when
    /// the status says otherwise (a 5xx whose body reads as a rate limit is a failure).
    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Names the CRM that produced the error.
    pub fn with_crm(mut self, crm: Crm) -> Self {
        self.crm = Some(crm);
        self
    }

    /// Names the record the error concerns (an id, or a description such as `lead "Acme"`).
    pub fn with_record(mut self, record: impl Into<String>) -> Self {
        self.record = Some(record.into());
        self
    }

    /// Records the HTTP status the CRM answered with.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds per-field messages.
    pub fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.field_errors = errors;
        self
    }

    /// Records how long the server asked us to wait.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Keeps the CRM's own error body.
    pub fn with_body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(Box::new(body));
        self
    }

    /// Keeps the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The CRM that produced it, if any.
    pub fn crm(&self) -> Option<Crm> {
        self.crm
    }

    /// The one-sentence message, without the context prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The record it concerns, if known.
    pub fn record(&self) -> Option<&str> {
        self.record.as_deref()
    }

    /// The HTTP status, if the error came from a response.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Per-field messages of a validation failure.
    pub fn field_errors(&self) -> &[FieldError] {
        &self.field_errors
    }

    /// How long the server asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The CRM's error body, as it was sent.
    pub fn body(&self) -> Option<&serde_json::Value> {
        self.body.as_deref()
    }

    /// A rate-limit error for a wait longer than the caller agreed to (a server's hint or a
    /// budget's own count): the request was not sent, and `wait` says when the allowance
    /// comes back.
    pub fn rate_limited_for(wait: Duration, max_wait: Duration) -> Self {
        Self::new(
            ErrorKind::RateLimited,
            format!(
                "the rate limit admits this request only in {}, longer than the retry policy's maximum wait of {}; not sent",
                human(wait),
                human(max_wait)
            ),
        )
        .with_retry_after(wait)
    }

    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Transient)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(crm) = self.crm {
            write!(f, "{crm}: ")?;
        }
        if let Some(record) = &self.record {
            write!(f, "{record}: ")?;
        }
        write!(f, "{}", self.kind.describe())?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        for (i, fe) in self.field_errors.iter().enumerate() {
            let sep = if i == 0 { " — " } else { "; " };
            write!(f, "{sep}field `{}`: {}", fe.field, fe.message)?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, " (retry after {:.1} s)", wait.as_secs_f64())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("crm", &self.crm)
            .field("message", &self.message)
            .field("record", &self.record)
            .field("status", &self.status)
            .field("field_errors", &self.field_errors)
            .field("retry_after", &self.retry_after)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// A wait as a person reads it (`2.5 s`, `15 min`, `24.0 h`).
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7_200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3_600.0)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::bad_response(format!("invalid JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_crm_record_fields_and_wait() {
        let e = Error::new(ErrorKind::Validation, "the lead was rejected")
            .with_crm(Crm::Close)
            .with_record("lead \"Acme\"")
            .with_status(400)
            .with_field_errors(vec![FieldError {
                field: "status".into(),
                message: "Not a valid choice.".into(),
            }]);
        assert_eq!(
            e.to_string(),
            "close: lead \"Acme\": invalid input (HTTP 400): the lead was rejected — field `status`: Not a valid choice."
        );
        let r = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1500));
        assert!(r.to_string().ends_with("(retry after 1.5 s)"));
        assert!(r.is_retryable());
    }

    #[test]
    fn status_maps_to_actionable_kind() {
        assert_eq!(ErrorKind::from_status(401), ErrorKind::Auth);
        assert_eq!(ErrorKind::from_status(404), ErrorKind::NotFound);
        assert_eq!(ErrorKind::from_status(429), ErrorKind::RateLimited);
        assert_eq!(ErrorKind::from_status(503), ErrorKind::Transient);
        assert_eq!(ErrorKind::from_status(400), ErrorKind::Validation);
    }

    #[test]
    fn a_long_rate_limit_wait_reads_in_hours_and_keeps_the_reset() {
        let e = Error::rate_limited_for(Duration::from_secs(86_400), Duration::from_secs(300));
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(86_400)));
        assert!(e.to_string().contains("24.0 h"), "{e}");
        assert!(e.to_string().contains("5 min"), "{e}");
        let copy = e.clone();
        assert_eq!(copy.to_string(), e.to_string());
    }
}
