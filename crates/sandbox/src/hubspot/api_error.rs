//! HubSpot's error body (`status`, `message`, `correlationId`, `category`, `errors`; the spec's
//! `Error` schema) and the JSON answers every handler returns.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A refused request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The `category` (VALIDATION_ERROR, OBJECT_NOT_FOUND, CONFLICT…).
    pub category: &'static str,
    /// The human-readable message.
    pub message: String,
    /// Extra `context` and `errors` entries.
    pub context: Value,
}

impl ApiError {
    /// A 400 `VALIDATION_ERROR`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            category: "VALIDATION_ERROR",
            message: message.into(),
            context: Value::Null,
        }
    }

    /// A 404 `OBJECT_NOT_FOUND` (HubSpot answers a missing record with an empty-message 404
    /// in some APIs; the sandbox always names what was missing).
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            category: "OBJECT_NOT_FOUND",
            message: message.into(),
            context: Value::Null,
        }
    }

    /// Adds a `context` object.
    pub(crate) fn with_context(mut self, context: Value) -> Self {
        self.context = context;
        self
    }

    /// The `StandardError` shape used inside batch `errors[]`.
    pub(crate) fn standard(&self) -> Value {
        let context = if self.context.is_object() {
            self.context.clone()
        } else {
            json!({})
        };
        json!({"status": "error", "category": self.category, "message": self.message,
               "context": context, "errors": [], "links": {}})
    }

    /// The body of the whole answer.
    pub(crate) fn body(&self) -> Value {
        let mut b = json!({"status": "error", "message": self.message,
                           "correlationId": correlation_id(), "category": self.category,
                           "errors": []});
        if self.context.is_object() {
            b["context"] = self.context.clone();
        }
        b
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(self.status, self.body())
    }
}

/// A uuid-shaped correlation id, as HubSpot puts on every error.
pub(crate) fn correlation_id() -> String {
    let h = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    format!("{}-{}-4{}-a{}-{}", h(8), h(4), h(3), h(3), h(12))
}

/// A JSON answer with `Content-Type: application/json` (none for 204).
pub(crate) fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}
