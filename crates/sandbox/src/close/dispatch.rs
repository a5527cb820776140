//! Routing of `/api/v1/…` requests to the collection handlers, on the blocking pool: reads
//! (GET and `/data/search/`) under a shared read lock, writes under the write lock.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::Data;
use super::kinds::Kind;
use super::listing::{self, Overrides};
use super::{State, events, render, search, writes};

fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(self.status(), self.body())
    }
}

/// Serves one `/api/v1/…` request. The handler holds the data lock and may walk a table, so
/// it runs on the blocking pool, never on the async workers that carry other connections and
/// the webhook deliverer.
pub(super) async fn api(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    Path(path): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let worker = Arc::clone(&state);
    let joined =
        tokio::task::spawn_blocking(move || handle(&worker, &method, &path, &params, &body)).await;
    match joined {
        Ok(Ok((status, body, events))) => {
            for e in events {
                let _ = state.events.send(e);
            }
            reply(status, body)
        }
        Ok(Err(e)) => e.into_response(),
        Err(_) => reply(500, json!({"error": "Internal server error."})),
    }
}

/// The request's answer and the events it caused: reads under the shared read lock, writes
/// under the write lock.
fn handle(
    state: &State,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Result<(u16, Value, Vec<Value>), ApiError> {
    let full_path = format!("/api/v1/{path}");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let json_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::Errors(vec![format!("Invalid JSON body: {e}")]))
    };
    let overrides = Overrides {
        max_limit: state.config.max_limit,
        max_skip: state.config.max_skip,
    };
    let read = method == Method::GET || segments.as_slice() == ["data", "search"];
    if read {
        let data = state.read();
        let body = match (method, segments.as_slice()) {
            (&Method::GET, ["me"]) => me(&data),
            (&Method::GET, ["user"]) => json!({"data": [user(&data)], "has_more": false}),
            (&Method::GET, ["user", id]) if *id == data.user_id => user(&data),
            (&Method::GET, ["organization", id]) if *id == data.org_id => organization(&data),
            (&Method::GET, ["custom_field_schema", object]) => {
                let fields: Vec<Value> = data.children("custom_field", object).cloned().collect();
                json!({"fields": fields})
            }
            (&Method::POST, ["data", "search"]) => search::run(&data, &json_body()?)?,
            (&Method::GET, ["event"]) => events::list(&data, params)?,
            (&Method::GET, ["event", id]) => events::get(&data, id)?,
            (&Method::GET, _) => match Kind::parse(&segments) {
                Some((kind, None)) => listing::list(&data, kind, params, overrides)?,
                Some((kind, Some(id))) => listing::get(&data, kind, &id, params)?,
                None => return Err(ApiError::NotFound("Resource".into())),
            },
            _ => return Err(ApiError::MethodNotAllowed),
        };
        return Ok((200, body, vec![]));
    }
    if method == Method::POST && segments.as_slice() == ["lead", "merge"] {
        let mut data = state.data();
        data.begin_request();
        let done = writes::merge_leads(&mut data, json_body()?, &full_path)?;
        return Ok((done.status, done.body, done.events));
    }
    let Some((kind, id)) = Kind::parse(&segments) else {
        return Err(ApiError::NotFound("Resource".into()));
    };
    if kind.read_only() {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut data = state.data();
    data.begin_request();
    let done = match (method, id) {
        (&Method::POST, None) => writes::create(&mut data, kind, json_body()?, &full_path)?,
        (&Method::PUT, Some(id)) => writes::update(&mut data, kind, &id, json_body()?, &full_path)?,
        (&Method::DELETE, Some(id)) => writes::delete(&mut data, kind, &id, &full_path)?,
        _ => return Err(ApiError::MethodNotAllowed),
    };
    Ok((done.status, done.body, done.events))
}

fn user(data: &Data) -> Value {
    json!({"id": data.user_id, "first_name": "Sandbox", "last_name": "User",
           "email": "sandbox.user@example.com", "organizations": [data.org_id]})
}

fn me(data: &Data) -> Value {
    let mut me = user(data);
    me["organizations"] = json!([{"id": data.org_id, "name": "crmkit Sandbox"}]);
    me
}

fn organization(data: &Data) -> Value {
    let pipelines: Vec<Value> = data
        .rows("pipeline")
        .map(|p| render::render(data, "pipeline", p.clone()))
        .collect();
    json!({"id": data.org_id, "name": "crmkit Sandbox",
           "lead_statuses": data.rows("status_lead").cloned().collect::<Vec<_>>(),
           "opportunity_statuses": data.rows("status_opportunity").cloned().collect::<Vec<_>>(),
           "pipelines": pipelines})
}
