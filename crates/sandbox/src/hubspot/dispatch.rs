//! Routing of API requests (`/crm/…`, `/properties/v2/…`) to the handlers, on the blocking pool: reads
//! (GET, batch read, search) under the shared read lock, writes under the write lock.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api_error::{ApiError, reply};
use super::kinds::ObjectType;
use super::{
    State, associations, batch, merge, objects, owners, pipelines, properties, search, webhooks,
};

/// Serves one CRM request off the async workers (the handler holds the data lock).
pub(super) async fn api(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    Query(params): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let write = method != Method::GET;
    let shuffle = path.contains("/batch/") && state.gate.faults().shuffles(method.as_str(), &path);
    let worker = Arc::clone(&state);
    let joined =
        tokio::task::spawn_blocking(move || handle(&state, &method, &path, &params, &body)).await;
    match joined {
        Ok(Ok((status, mut body))) => {
            if shuffle && let Some(results) = body["results"].as_array_mut() {
                crate::faults::Faults::shuffle(results);
            }
            if write {
                for e in worker.write().take_events() {
                    let _ = worker.events.send(e);
                }
            }
            reply(status, body)
        }
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

fn parse_type(segment: &str) -> Result<&'static ObjectType, ApiError> {
    ObjectType::parse(segment)
        .ok_or_else(|| ApiError::invalid(format!("Unable to infer object type from: {segment}")))
}

fn handle(
    state: &State,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let json_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("Invalid input JSON: {e}")))
    };
    match segments.as_slice() {
        ["crm", "v3", "objects", kind, rest @ ..] => {
            objects_route(state, method, parse_type(kind)?, rest, params, json_body)
        }
        ["crm", "v3", "pipelines", kind, rest @ ..] if method == Method::GET => {
            Ok((200, pipelines::get(parse_type(kind)?, rest)?))
        }
        ["crm", "v3", "owners", rest @ ..] if method == Method::GET => {
            Ok((200, owners::get(rest, params)?))
        }
        ["crm", "v3", "properties", kind, rest @ ..] => {
            let t = parse_type(kind)?;
            match (method, rest) {
                (&Method::GET, _) => Ok((200, properties::get(&state.read(), t, rest)?)),
                (&Method::POST, []) => {
                    let body = json_body()?;
                    Ok((201, properties::create(&mut state.write(), t, &body)?))
                }
                _ => Err(method_not_allowed()),
            }
        }
        ["properties", "v2", kind, "properties"] if method == Method::GET => {
            Ok((200, properties::get_v2(&state.read(), parse_type(kind)?)))
        }
        [
            "crm",
            "v4",
            "objects",
            from,
            from_id,
            "associations",
            rest @ ..,
        ] => {
            let from = parse_type(from)?;
            match (method, rest) {
                (&Method::GET, [to]) => Ok((
                    200,
                    associations::list(&state.read(), from, from_id, parse_type(to)?)?,
                )),
                (&Method::PUT, ["default", to, to_id]) => associations::put_default(
                    &mut state.write(),
                    from,
                    from_id,
                    parse_type(to)?,
                    to_id,
                ),
                (&Method::PUT, [to, to_id]) => {
                    let body = json_body()?;
                    let to = parse_type(to)?;
                    associations::put_labels(&mut state.write(), from, from_id, to, to_id, &body)
                }
                (&Method::DELETE, [to, to_id]) => Ok(associations::delete(
                    &mut state.write(),
                    from,
                    from_id,
                    parse_type(to)?,
                    to_id,
                )),
                _ => Err(method_not_allowed()),
            }
        }
        ["webhooks", "v3", app_id, rest @ ..] => {
            let body = if method == Method::GET {
                Value::Null
            } else {
                json_body()?
            };
            webhooks::manage(state, method, app_id, rest, &body)
        }
        ["crm", "v4", "associations", from, to, "batch", op @ ..] if method == Method::POST => {
            let (from, to) = (parse_type(from)?, parse_type(to)?);
            let body = json_body()?;
            associations::batch(&mut state.write(), from, to, op, &body)
        }
        _ => Err(ApiError::not_found(format!("No route for {path}"))),
    }
}

fn objects_route(
    state: &State,
    method: &Method,
    t: &'static ObjectType,
    rest: &[&str],
    params: &[(String, String)],
    json_body: impl Fn() -> Result<Value, ApiError>,
) -> Result<(u16, Value), ApiError> {
    let read = method == Method::GET || matches!(rest, ["search"] | ["batch", "read"]);
    if read {
        let data = state.read();
        return match (method, rest) {
            (&Method::GET, []) => Ok((200, objects::list(&data, t, params)?)),
            (&Method::GET, [id]) => Ok((200, objects::get(&data, t, id, params)?)),
            (&Method::POST, ["search"]) => Ok((200, search::run(&data, t, &json_body()?)?)),
            (&Method::POST, ["batch", "read"]) => batch::read(&data, t, params, &json_body()?),
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
        (&Method::POST, ["merge"]) => Ok((200, merge::merge(&mut data, t, &body)?)),
        (&Method::POST, ["gdpr-delete"]) => {
            merge::gdpr_delete(&mut data, t, &body)?;
            Ok((204, Value::Null))
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
