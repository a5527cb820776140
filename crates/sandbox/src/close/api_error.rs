//! Close's error answers and the result of a successful change.

use serde_json::{Map, Value, json};

/// An error answer in Close's shapes.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 `{"errors": [], "field-errors": {...}}`.
    Fields(Map<String, Value>),
    /// 400 `{"errors": [...], "field-errors": {}}`.
    Errors(Vec<String>),
    /// 400 `{"error": "..."}`: the flat body of paging errors (closeio/flask-mongorest,
    /// the REST layer Close is built on, `resources.py` `get_skip_and_limit`).
    Paging(String),
    /// 404 `{"error": "Empty query: X matching query does not exist."}`.
    NotFound(String),
    /// 405.
    MethodNotAllowed,
}

impl ApiError {
    pub(crate) fn field(name: &str, message: &str) -> Self {
        let mut m = Map::new();
        m.insert(name.into(), Value::String(message.into()));
        ApiError::Fields(m)
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::Fields(_) | ApiError::Errors(_) | ApiError::Paging(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            ApiError::Fields(m) => json!({"errors": [], "field-errors": m}),
            ApiError::Errors(e) => json!({"errors": e, "field-errors": {}}),
            ApiError::Paging(message) => json!({"error": message}),
            ApiError::NotFound(model) => {
                json!({"error": format!("Empty query: {model} matching query does not exist.")})
            }
            ApiError::MethodNotAllowed => {
                json!({"error": "The method is not allowed for the requested URL."})
            }
        }
    }
}

/// A successful change: the answer, its status, and the events it caused.
pub(crate) struct Changed {
    pub status: u16,
    pub body: Value,
    pub events: Vec<Value>,
}
