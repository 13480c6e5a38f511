//! The endpoints of seed 003's table (`/ready`, `/health`, `/count`, `/increment`, `/reset`),
//! the visit counter of seeds 002 and 004 (`/`, `/visits`), and `/config`.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::settings::Settings;
use super::store::{Op, StoreError};
use super::writer::Writer;
use crate::server::{ApiError, Identity, Lifecycle};

const STYLESHEET: &str = include_str!("visits.css");

#[derive(Clone)]
pub struct AppState {
    pub identity: Identity,
    pub counter: Writer,
    pub visits: Writer,
    pub settings: Arc<Settings>,
    pub lifecycle: Lifecycle,
}

impl AppState {
    fn pod_name(&self) -> &str {
        self.identity.name()
    }

    fn draining(&self) -> bool {
        self.lifecycle.is_draining()
    }

    /// Readiness in seed 003's sense: the data directory exists and both counter files can be
    /// read (a missing file reads as 0; a corrupt one makes the replica not ready).
    pub async fn check_files(&self) -> Result<(), String> {
        let dir = self.counter.file().dir().to_owned();
        let created = tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir)).await;
        match created {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot create the data directory {}: {e}",
                    self.counter.file().dir().display()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        self.counter.read().await.map_err(|e| e.to_string())?;
        self.visits.read().await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/health", get(health))
        .route("/count", get(count))
        .route("/increment", post(increment))
        .route("/reset", post(reset))
        .route("/", get(page))
        .route("/visits", get(visits))
        .route("/config", get(config))
        .route("/static/counter.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}

/// Largest request body accepted (docs/counter.md); larger ones get 413.
pub const BODY_LIMIT_BYTES: usize = 1024;

/// The body of a POST, read only to hold it to the limit: `DefaultBodyLimit` applies to
/// extractors that read the body, and the counter's handlers need none, so without this any
/// size was accepted (and left unread).
struct CheckedBody;

impl<S: Send + Sync> FromRequest<S> for CheckedBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(|_| CheckedBody)
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is limited to {BODY_LIMIT_BYTES} bytes"),
                )
                .with("limit_bytes", BODY_LIMIT_BYTES),
                status => ApiError::new(status, rejection.body_text()),
            })
    }
}

/// A storage failure as a 503 naming the replica; corrupt files say so in `kind`.
fn store_error(state: &AppState, error: StoreError) -> ApiError {
    ApiError::unavailable(error.to_string())
        .with("kind", error.kind())
        .with("pod_name", state.pod_name())
}

async fn ready(State(state): State<AppState>) -> Response {
    let pod_name = state.pod_name();
    if state.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "pod_name": pod_name, "error": "shutting down"})),
        )
            .into_response();
    }
    match state.check_files().await {
        Ok(()) => Json(json!({"status": "ready", "pod_name": pod_name})).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "pod_name": pod_name, "error": error})),
        )
            .into_response(),
    }
}

/// Liveness: the process answers. It touches no file: restarting cannot repair a corrupt one.
async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "healthy", "pod_name": state.pod_name()}))
}

async fn count(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let count = state
        .counter
        .read()
        .await
        .map_err(|e| store_error(&state, e))?;
    Ok(Json(json!({"count": count, "pod_name": state.pod_name()})))
}

async fn increment(
    State(state): State<AppState>,
    _body: CheckedBody,
) -> Result<Json<Value>, ApiError> {
    let count = state
        .counter
        .apply(Op::Increment)
        .await
        .map_err(|e| store_error(&state, e))?;
    Ok(Json(json!({
        "count": count,
        "pod_name": state.pod_name(),
        "message": "Counter incremented",
    })))
}

async fn reset(State(state): State<AppState>, _body: CheckedBody) -> Result<Json<Value>, ApiError> {
    let count = state
        .counter
        .apply(Op::Reset)
        .await
        .map_err(|e| store_error(&state, e))?;
    Ok(Json(json!({
        "count": count,
        "pod_name": state.pod_name(),
        "message": "Counter reset",
    })))
}

async fn visits(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let visits = state
        .visits
        .read()
        .await
        .map_err(|e| store_error(&state, e))?;
    Ok(Json(
        json!({"visits": visits, "pod_name": state.pod_name()}),
    ))
}

async fn config(State(state): State<AppState>) -> Json<Value> {
    let settings = state.settings.clone();
    let view = tokio::task::spawn_blocking(move || settings.view())
        .await
        .ok()
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    let mut body = json!({"pod_name": state.pod_name()});
    if let (Some(body), Value::Object(view)) = (body.as_object_mut(), view) {
        body.extend(view);
    }
    Json(body)
}

#[derive(Template)]
#[template(path = "counter/visits.html")]
struct VisitsPage<'a> {
    pod_name: &'a str,
    visits: Option<u64>,
    error: Option<String>,
    time: String,
    file: String,
    sample_url: Option<String>,
}

/// The visit page of seeds 002 and 004: each GET counts one visit on this replica's own file.
/// HEAD requests do not count.
async fn page(State(state): State<AppState>, method: Method) -> Response {
    let result = if method == Method::HEAD {
        state.visits.read().await
    } else {
        state.visits.apply(Op::Increment).await
    };
    let (status, visits, error) = match result {
        Ok(n) => (StatusCode::OK, Some(n), None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, None, Some(e.to_string())),
    };
    let time = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    let page = VisitsPage {
        pod_name: state.pod_name(),
        visits,
        error,
        time,
        file: state.visits.file().path().display().to_string(),
        sample_url: state
            .settings
            .config_value("sampleUrl")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "visits page failed to render");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
            .into_response()
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}
