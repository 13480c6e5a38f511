//! The producer API's handlers. Thin: validate, call the backend, shape the answer.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::backend::{Backend, BackendError};
use super::model::{
    Enqueued, Invalid, MAX_BATCH, MAX_BODY_BYTES, NewTask, RetryOutcome, TaskRequest, TaskState,
};
use super::tasks::Registry;
use crate::server::{ApiError, ApiJson, ApiPath, ApiQuery, Identity};
use crate::server::{method_not_allowed, openapi_document};

#[derive(Clone)]
pub struct AppState {
    pub backend: Backend,
    pub registry: Arc<Registry>,
    pub identity: Identity,
}

/// Served at `/openapi.json`; kept beside this file and checked against real answers by tests.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/tasks", post(create).get(list))
        .route("/tasks/batch", post(create_batch))
        .route("/tasks/{id}", get(show))
        .route("/tasks/{id}/retry", post(retry))
        .route("/stats", get(stats))
        .route("/health", get(health))
        .route("/openapi.json", get(|| async { openapi_document(OPENAPI) }))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A backend failure as the client sees it: Redis out of memory is a 507 with its code (the
/// request was fine; the store is full), everything else by the shared rules.
fn failed(error: BackendError) -> ApiError {
    if error.code() == Some("OOM") {
        tracing::warn!(%error, "answering 507");
        return ApiError::new(StatusCode::INSUFFICIENT_STORAGE, error.message())
            .with("code", "OOM");
    }
    if error.is_unavailable() {
        tracing::warn!(%error, "answering 503");
    }
    error.into()
}

/// A failed write. A 503 may come after the write reached the backend (a deadline ran out
/// while it was queued or running there), so it may still be applied: say so, and how to
/// retry safely.
fn write_failed(error: BackendError) -> ApiError {
    unknown_outcome(
        error,
        "the backend did not confirm the write: the task may have been stored. Retry with the \
         same idempotency_key to get the original task, never a duplicate",
    )
}

fn unknown_outcome(error: BackendError, detail: &'static str) -> ApiError {
    let unavailable = error.is_unavailable();
    let answer = failed(error);
    if unavailable {
        answer.with("outcome", "unknown").with("detail", detail)
    } else {
        answer
    }
}

fn invalid(error: Invalid) -> ApiError {
    ApiError::unprocessable(error.message).with("field", error.field)
}

fn invalid_at(index: usize, error: Invalid) -> ApiError {
    ApiError::unprocessable(format!("task {index}: {}", error.message))
        .with("index", index)
        .with("field", error.field)
}

fn enqueued_metric(backend: &str, created: usize) {
    metrics::counter!("queue_tasks_enqueued_total", "backend" => backend.to_owned())
        .increment(created as u64);
}

/// `POST /tasks`: 201 with the new task, or 200 with the task its idempotency key names.
async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TaskRequest>,
) -> Result<Response, ApiError> {
    let task = request.validate(&state.registry).map_err(invalid)?;
    let enqueued = state
        .backend
        .enqueue(std::slice::from_ref(&task))
        .await
        .map_err(write_failed)?;
    let Some(Enqueued { id, duplicate, .. }) = enqueued.into_iter().next() else {
        return Err(failed(BackendError::other("enqueue returned nothing")));
    };
    // Stored by now; a failure here still leaves the client without its answer.
    let view = state.backend.get(id).await.map_err(write_failed)?;
    let mut body = match view {
        Some(view) => serde_json::to_value(view).unwrap_or(Value::Null),
        // Pruned between the two statements (only possible for an old duplicate).
        None => json!({"id": id}),
    };
    body["duplicate"] = Value::Bool(duplicate);
    if duplicate {
        Ok((StatusCode::OK, Json(body)).into_response())
    } else {
        enqueued_metric(state.backend.kind(), 1);
        Ok((StatusCode::CREATED, Json(body)).into_response())
    }
}

/// `POST /tasks/batch`: a JSON array of tasks, all validated before any is stored.
async fn create_batch(
    State(state): State<AppState>,
    ApiJson(items): ApiJson<Vec<Box<RawValue>>>,
) -> Result<Response, ApiError> {
    if items.is_empty() {
        return Err(ApiError::unprocessable("the batch is empty"));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::unprocessable(format!(
            "a batch holds at most {MAX_BATCH} tasks; this one has {}",
            items.len()
        ))
        .with("limit", MAX_BATCH));
    }
    let mut tasks: Vec<NewTask> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let request: TaskRequest = serde_json::from_str(item.get()).map_err(|e| {
            ApiError::unprocessable(format!("task {index}: {e}")).with("index", index)
        })?;
        let task = request
            .validate(&state.registry)
            .map_err(|e| invalid_at(index, e))?;
        tasks.push(task);
    }
    let enqueued = state.backend.enqueue(&tasks).await.map_err(write_failed)?;
    let created = enqueued.iter().filter(|e| !e.duplicate).count();
    enqueued_metric(state.backend.kind(), created);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "count": enqueued.len(),
            "created": created,
            "duplicates": enqueued.len() - created,
            "tasks": enqueued,
        })),
    )
        .into_response())
}

/// The request was read, but the id in its path is not one a task can have: 422. Digits
/// only (no sign, no spaces), as the API document says.
fn task_id(raw: String) -> Result<i64, ApiError> {
    Some(raw.as_str())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::unprocessable("task id must be a positive integer").with("id", raw)
        })
}

/// `GET /tasks/{id}`.
async fn show(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = task_id(raw)?;
    match state.backend.get(id).await.map_err(failed)? {
        Some(task) => Ok(Json(task).into_response()),
        None => Err(ApiError::not_found(
            "no such task (never created, or pruned after the retention period)",
        )
        .with("id", id)),
    }
}

/// `POST /tasks/{id}/retry`: re-queues a dead task with a fresh attempt budget.
async fn retry(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = task_id(raw)?;
    let requeued = state.backend.retry(id).await.map_err(|e| {
        unknown_outcome(
            e,
            "the backend did not confirm the retry: the task may have been re-queued. Retrying \
             is safe: a task already re-queued answers 409 with its state",
        )
    })?;
    match requeued {
        RetryOutcome::Requeued(task) => Ok(Json(task).into_response()),
        RetryOutcome::NotDead(current) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "only dead tasks can be retried",
        )
        .with("id", id)
        .with("state", current.as_str())),
        RetryOutcome::NotFound => Err(ApiError::not_found("no such task").with("id", id)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /tasks?state=dead&limit=50`: inspect tasks in one state (the dead letter by default).
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let wanted = match query.state.as_deref() {
        None => TaskState::Dead,
        Some(text) => TaskState::parse(text).ok_or_else(|| {
            ApiError::unprocessable("state must be one of queued, running, done, failed, dead")
        })?,
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("limit must be between 1 and 500"));
    }
    let tasks = state.backend.list(wanted, limit).await.map_err(failed)?;
    Ok(Json(json!({"state": wanted, "count": tasks.len(), "tasks": tasks})).into_response())
}

/// `GET /stats`: counts per state, the oldest waiting task's age, recent throughput.
async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.backend.stats().await.map_err(failed)?;
    let mut body = serde_json::to_value(stats).unwrap_or(Value::Null);
    body["pod_name"] = Value::String(state.identity.name().to_owned());
    Ok(Json(body).into_response())
}

/// `GET /health`, in the seeds' shape: healthy when the backend answers.
async fn health(State(state): State<AppState>) -> Response {
    let backend = state.backend.kind();
    match state.backend.check().await {
        Ok(()) => Json(json!({
            "status": "healthy",
            "backend": backend,
            "queue": "connected",
            "pod_name": state.identity.name(),
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unhealthy",
                "backend": backend,
                "queue": "disconnected",
                "error": error,
                "pod_name": state.identity.name(),
            })),
        )
            .into_response(),
    }
}
