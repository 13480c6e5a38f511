use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::future::BoxFuture;
use serde_json::json;

use super::Lifecycle;

/// How a service says whether it can serve: `Err(reason)` when its backend is unusable.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// `/healthz`: the process answers (touches no backend). `/readyz`: the backend answers and
/// the process is not shutting down.
pub fn routes(ready: ReadyCheck, lifecycle: Lifecycle) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({"status": "alive"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                let lifecycle = lifecycle.clone();
                async move {
                    if lifecycle.is_draining() {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"status": "not ready", "reason": "shutting down"})),
                        )
                            .into_response();
                    }
                    match ready().await {
                        Ok(()) => Json(json!({"status": "ready"})).into_response(),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"status": "not ready", "reason": reason})),
                        )
                            .into_response(),
                    }
                }
            }),
        )
}
