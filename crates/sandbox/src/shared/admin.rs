//! The admin endpoints every emulator serves under `/_sandbox/`: the request log and
//! counters, and the injected faults.
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET /_sandbox/stats`, `POST /_sandbox/stats/reset` | request log and counters |
//! | `GET`/`PUT /_sandbox/faults` | read or set the [`Faults`] |

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::gate::Gate;
use super::stats::Stats;
use crate::faults::Faults;

/// An emulator's state that holds a request gate.
pub trait HasGate: Send + Sync + 'static {
    /// Its gate.
    fn gate(&self) -> &Gate;
}

/// The admin routes, for any emulator state with a gate.
pub fn routes<S: HasGate>() -> Router<Arc<S>> {
    Router::new()
        .route("/_sandbox/stats", get(stats::<S>))
        .route("/_sandbox/stats/reset", post(reset::<S>))
        .route("/_sandbox/faults", get(faults::<S>).put(set_faults::<S>))
}

async fn stats<S: HasGate>(State(s): State<Arc<S>>) -> Response {
    axum::Json(s.gate().stats.lock().clone()).into_response()
}

async fn reset<S: HasGate>(State(s): State<Arc<S>>) -> Response {
    *s.gate().stats.lock() = Stats::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn faults<S: HasGate>(State(s): State<Arc<S>>) -> Response {
    axum::Json(s.gate().faults()).into_response()
}

async fn set_faults<S: HasGate>(
    State(s): State<Arc<S>>,
    axum::Json(f): axum::Json<Faults>,
) -> Response {
    s.gate().set_faults(f);
    StatusCode::NO_CONTENT.into_response()
}
