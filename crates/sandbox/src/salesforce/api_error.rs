//! Salesforce's error answers: the REST API's JSON array
//! `[{"message":"…","errorCode":"…","fields":[…]}]`, and the `statusCode` form used inside
//! save results (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A refused request or record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The error code (`INVALID_FIELD`, `REQUIRED_FIELD_MISSING`…).
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// The fields concerned.
    pub fields: Vec<String>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A 400 with `code`.
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// A 404 `NOT_FOUND`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }

    /// The record-not-found answer of the sObject resources (404 `NOT_FOUND`).
    pub(crate) fn no_row() -> Self {
        Self::not_found("The requested resource does not exist")
    }

    /// The same error with another code.
    pub(crate) fn code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// Names the fields concerned.
    pub(crate) fn with_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// `{"message","errorCode","fields"}`, one entry of the REST error array.
    pub(crate) fn entry(&self) -> Value {
        json!({"message": self.message, "errorCode": self.code, "fields": self.fields})
    }

    /// `{"statusCode","message","fields"}`, as save results (collections, tree) carry it.
    pub(crate) fn save_error(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(self.status, json!([self.entry()]))
    }
}

/// A JSON answer with `Content-Type: application/json;charset=UTF-8` (no body for 204).
pub(crate) fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// A text answer (CSV of Bulk 2.0, SOAP of outbound messages) with its content type.
pub(crate) fn text(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}
