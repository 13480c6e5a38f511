//! The task queue of seed 001, Section 3: a producer API (`statelab queue`) and a worker fleet
//! (`statelab worker`) over a durable queue in PostgreSQL (default) or Redis.
//!
//! Delivery is at least once: a task is claimed with a lease, renewed while it runs; a worker
//! that dies loses its lease and another worker runs the task again. Every claim increments
//! the task's attempt number and acknowledgements are fenced by it, so a stale worker can never
//! overwrite a newer attempt's result. Failed attempts are retried with exponential backoff
//! and jitter up to `max_attempts`, then dead-lettered (inspectable, re-queueable).

pub mod backend;
pub mod config;
pub mod model;
pub mod routes;
pub mod tasks;
pub mod worker;

use std::sync::Arc;

pub use config::{BackendArgs, Config, WorkerConfig};

use crate::server::{App, ReadyCheck};
use tasks::Registry;

/// Default port of the producer API (the seeds' API port).
pub const DEFAULT_PORT: u16 = 8000;

/// Builds the producer API with the built-in task types.
pub async fn build(config: Config) -> anyhow::Result<App> {
    build_with(config, Registry::builtin()).await
}

/// Builds the producer API; `registry` decides which task types and payloads it accepts.
pub async fn build_with(config: Config, registry: Registry) -> anyhow::Result<App> {
    let backend = config.backend.open()?;
    let identity = config.server.identity();
    let ready_backend = backend.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let backend = ready_backend.clone();
        Box::pin(async move { backend.check().await.map_err(|e| e.to_string()) })
    });
    let state = routes::AppState {
        backend,
        registry: Arc::new(registry),
        identity: identity.clone(),
    };
    App::bind(
        &config.server,
        DEFAULT_PORT,
        identity,
        routes::router(state),
        ready,
    )
    .await
}

/// `statelab queue`: serves the producer API until SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

/// `statelab worker`: runs tasks until SIGTERM.
pub async fn run_worker(config: WorkerConfig) -> anyhow::Result<()> {
    worker::run(config).await
}
