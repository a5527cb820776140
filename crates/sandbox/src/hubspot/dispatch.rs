//! Routing of `/crm/v3/objects/…` requests to the handlers, on the blocking pool: reads
//! (GET, batch read, search) under the shared read lock, writes under the write lock.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api_error::{ApiError, reply};
use super::kinds::ObjectType;
use super::{State, batch, objects, search};

/// Serves one CRM request off the async workers (the handler holds the data lock).
pub(super) async fn api(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    Query(params): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let joined =
        tokio::task::spawn_blocking(move || handle(&state, &method, &path, &params, &body)).await;
    match joined {
        Ok(Ok((status, body))) => reply(status, body),
        Ok(Err(e)) => e.into_response(),
        Err(_) => reply(
            500,
            json!({"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"}),
        ),
    }
}

/// Any path the sandbox does not serve: HubSpot's JSON 404.
pub(super) async fn not_found(uri: Uri) -> Response {
    ApiError::not_found(format!("No route for {}", uri.path())).into_response()
}

fn handle(
    state: &State,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ["crm", "v3", "objects", kind, rest @ ..] = segments.as_slice() else {
        return Err(ApiError::not_found(format!("No route for {path}")));
    };
    let t = ObjectType::parse(kind)
        .ok_or_else(|| ApiError::invalid(format!("Unable to infer object type from: {kind}")))?;
    let json_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("Invalid input JSON: {e}")))
    };
    let read = method == Method::GET || matches!(rest, ["search"] | ["batch", "read"]);
    if read {
        let data = state.read();
        return match (method, rest) {
            (&Method::GET, []) => Ok((200, objects::list(&data, t, params)?)),
            (&Method::GET, [id]) => Ok((200, objects::get(&data, t, id, params)?)),
            (&Method::POST, ["search"]) => Ok((200, search::run(&data, t, &json_body()?)?)),
            (&Method::POST, ["batch", "read"]) => batch::read(&data, t, &json_body()?),
            _ => Err(method_not_allowed()),
        };
    }
    let body = json_body()?;
    let mut data = state.write();
    match (method, rest) {
        (&Method::POST, []) => Ok((201, objects::create(&mut data, t, &body)?)),
        (&Method::PATCH, [id]) => Ok((200, objects::update(&mut data, t, id, params, &body)?)),
        (&Method::DELETE, [id]) => {
            if data.archive(t, id) {
                Ok((204, Value::Null))
            } else {
                Err(ApiError::not_found(format!("resource not found: {id}")))
            }
        }
        (&Method::POST, ["batch", "create"]) => batch::create(&mut data, t, &body),
        (&Method::POST, ["batch", "update"]) => batch::update(&mut data, t, &body),
        (&Method::POST, ["batch", "upsert"]) => batch::upsert(&mut data, t, &body),
        (&Method::POST, ["batch", "archive"]) => batch::archive(&mut data, t, &body),
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError {
        status: 405,
        category: "VALIDATION_ERROR",
        message: "Method not allowed on this path".into(),
        context: Value::Null,
    }
}
